"""The fast text path (pyarrow, when installed) reads and writes exactly what
jaccli's own parser and writer do: the same numbers, the same text, the same
errors; and the counting of a large file's data lines."""

import io
import os

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, strategies as st

from conftest import SAMPLES
from jaccli.cli import cli
from jaccli.io import arrow, points, writers

CANONICAL = os.path.join(SAMPLES, "canonical.npz")
needs_arrow = pytest.mark.skipif(arrow.pyarrow_or_none() is None, reason="pyarrow not installed")
NASTY = [5e-324, -5e-324, 1e-310, 2.2250738585072014e-308, 1.7976931348623157e308,
         -1.7976931348623157e308, -0.0, 0.0, 0.30000000000000004, 1.0, -3.0, 100.0, 1e-4, 1e-05,
         9.99e-05, 1.5e-06, 1e-06, 9.999999999999999e-07, 1e-07, 2.5e-07, 1e10, 9999999999.0,
         123456789012345.6, 1e15, 1e16, 1.2345678901234568e+17, 1e22, 1e300, np.inf, -np.inf, np.nan]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def own_format(rows, delimiter, monkeypatch):
    monkeypatch.setenv("JACCLI_NO_ARROW", "1")
    text = writers.format_rows(rows, delimiter)
    monkeypatch.delenv("JACCLI_NO_ARROW")
    return text


@needs_arrow
@pytest.mark.parametrize("delimiter", [",", "\t"])
def test_arrow_text_is_repr(delimiter, monkeypatch):
    rows = np.array(NASTY + [-v for v in NASTY]).reshape(-1, 2)
    text = arrow.format_rows(rows, delimiter)
    assert text == "".join(delimiter.join(repr(v) for v in row) + "\n" for row in rows.tolist())
    assert text == own_format(rows, delimiter, monkeypatch)


@needs_arrow
@given(st.lists(st.floats(allow_nan=False, width=64), min_size=1, max_size=60),
       st.integers(1, 3))
def test_arrow_text_is_repr_for_any_float(values, width):
    rows = np.array(values[: len(values) // width * width] or values[:1] * width).reshape(-1, width)
    expected = "".join(",".join(repr(v) for v in row) + "\n" for row in rows.tolist())
    assert arrow.format_rows(rows, ",") == expected


@needs_arrow
def test_arrow_text_is_repr_across_magnitudes():
    rng = np.random.default_rng(15)
    values = rng.normal(size=200_000) * 10.0 ** rng.uniform(-12, 20, 200_000)
    values[::5] = np.round(values[::5])
    rows = values.reshape(-1, 4)
    expected = "".join(",".join(repr(v) for v in row) + "\n" for row in rows.tolist())
    assert arrow.format_rows(rows, ",") == expected


CELLS = ["1.5", " 1.5", "1.5 ", '"1.5"', "'1.5'", "+1.5", "-1.5", ".5", "5.", "1e5", "1E5",
         "1e+05", "1.5d3", "0x1p3", "inf", "-inf", "Infinity", "nan", "NA", "", "1_000", "1,5",
         "00012", "1e400", "1e-400", "0.1e", "e5", "--1", "true", "1.5 2", "0.30000000000000004",
         "5e-324", "2.4703282292062328e-324", "1.7976931348623157e308", "-0.0",
         "3.14159265358979323846264338327950288", "# c"]


@needs_arrow
@pytest.mark.parametrize("cell", CELLS)
def test_arrow_reads_a_cell_as_loadtxt_does_or_hands_it_back(cell):
    body = f"{cell},2\n3,4\n".encode()
    fast = arrow.parse_table(body, ",", 2, [0, 1])
    try:
        own = np.loadtxt(io.BytesIO(body), delimiter=",", ndmin=2, comments="#", quotechar='"')
    except ValueError:
        own = None
    if fast is not None:  # what pyarrow takes, numpy takes, bit for bit
        assert own is not None
        assert np.array_equal(fast.view(np.uint64), own.view(np.uint64)) or np.isnan(own[0, 0])


@needs_arrow
@given(st.lists(st.floats(width=64, allow_nan=False), min_size=2, max_size=40))
def test_arrow_reads_floats_exactly(values):
    rows = np.array(values[: len(values) // 2 * 2]).reshape(-1, 2)
    for form in (repr, lambda v: "%.17g" % v, lambda v: "%.25e" % v):
        body = "".join(f"{form(a)},{form(b)}\n" for a, b in rows.tolist()).encode()
        got = arrow.parse_table(body, ",", 2, [0, 1])
        assert np.array_equal(got.view(np.uint64), rows.view(np.uint64))


@needs_arrow
def test_arrow_refuses_ragged_rows_comments_and_whitespace_columns():
    assert arrow.parse_table(b"1,2\n3,4,5\n", ",", 2, [0, 1]) is None
    assert arrow.parse_table(b"1,2\n# c\n3,4\n", ",", 2, [0, 1]) is None
    assert arrow.parse_table(b"1 2\n3 4\n", None, 2, [0, 1]) is None
    np.testing.assert_array_equal(arrow.parse_table(b"a,1,2\r\nb,3,4\r\n\r\n", ",", 3, [2, 1]),
                                  [[2, 1], [4, 3]])


def test_without_pyarrow_nothing_is_fast(monkeypatch):
    monkeypatch.setenv("JACCLI_NO_ARROW", "1")
    assert arrow.pyarrow_or_none() is None
    assert arrow.parse_table(b"1,2\n", ",", 2, [0, 1]) is None
    assert arrow.format_rows(np.ones((1, 2)), ",") is None


@pytest.fixture(params=["pyarrow", "own parser"])
def tiny_blocks(request, monkeypatch):
    """Every text file streamed in blocks of a few lines, with pyarrow and without."""
    if request.param != "pyarrow":
        monkeypatch.setenv("JACCLI_NO_ARROW", "1")
    monkeypatch.setattr(points, "STREAM_TEXT_BYTES", 0)
    monkeypatch.setattr(points.TextRows, "BLOCK_BYTES", 64)


def test_streamed_bad_cell_named_with_or_without_pyarrow(tmp_path, tiny_blocks):
    csv = tmp_path / "p.csv"
    csv.write_text("x1,x2\n" + "".join(f"{i}.5,1\n" for i in range(60)) + "7,oops\n1,2\n")
    result = run("value", CANONICAL, "-p", csv, "--chunk-size", "8")
    assert result.exit_code == 2
    assert result.stderr.strip() == f"Error: {csv}: line 62, column 2: 'oops' is not a number"


def test_streamed_nasty_values_round_trip(tmp_path, tiny_blocks):
    finite = [v for v in NASTY if np.isfinite(v)]
    x = np.array(finite + finite[::-1]).reshape(-1, 2)
    csv = tmp_path / "p.csv"
    csv.write_text("x1,x2\n" + "".join(f"{a!r},{b!r}\n" for a, b in x.tolist()))
    rows = points.read_points(str(csv), ["x1", "x2"])
    assert isinstance(rows, points.TextRows)
    got = np.concatenate([rows[i:i + 3] for i in range(0, len(rows), 3)])
    assert np.array_equal(got.view(np.uint64), x.view(np.uint64))
    again = rows[0:len(rows)]  # read again from the top (an NPZ's x)
    assert np.array_equal(again.view(np.uint64), x.view(np.uint64))


@pytest.mark.parametrize("block", [1, 2, 3, 5, 8, 1 << 24])
@pytest.mark.parametrize("text", ["\n1,2\n", "  \n1,2\n\n", "1,2\n \t\r\n3,4", "# h\n1,2\n\n\n3,4\n",
                                  "1,2\r\n\r\n3,4\r\n", "\n\n\n", "1,2\n3,4\n"])
def test_counting_data_lines_at_every_block_edge(tmp_path, block, text):
    path = tmp_path / "c.csv"
    path.write_bytes(text.encode())
    expected = sum(1 for line in text.split("\n") if line.strip() and not line.strip().startswith("#"))
    assert points._count_data_lines(str(path), 0, block=block) == expected


@pytest.mark.parametrize("args", [["-p", "POINTS"], ["--at", "1,1", "-o", "OUT"],
                                  ["--at", "1,1", "--format", "parquet", "-o", "OUT2"]])
def test_parquet_without_pyarrow_is_one_line_naming_the_extra(tmp_path, monkeypatch, args):
    points = tmp_path / "p.parquet"
    points.write_bytes(b"PAR1 not read: the missing package is said first")
    monkeypatch.setenv("JACCLI_NO_ARROW", "1")
    args = [str(points) if a == "POINTS" else str(tmp_path / "o.parquet") if a == "OUT"
            else str(tmp_path / "o.bin") if a == "OUT2" else a for a in args]
    result = run("value", CANONICAL, *args)
    assert result.exit_code == 2
    assert "pip install 'jaccli[arrow]'" in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "o.parquet").exists() and not (tmp_path / "o.bin").exists()
