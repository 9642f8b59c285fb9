"""Large CSV/TSV points are parsed a chunk at a time (points.TextRows): the same
results as reading the file whole, the same errors, bounded memory."""

import os

import numpy as np
import pytest
from click.testing import CliRunner

import jaccli
from conftest import SAMPLES
from nets import SAME_RESULT_RTOL, assert_same_table
from jaccli.io import points
from jaccli.cli import cli

CANONICAL = os.path.join(SAMPLES, "canonical.npz")


@pytest.fixture
def streamed(monkeypatch):
    monkeypatch.setattr(points, "STREAM_TEXT_BYTES", 0)  # every file streams


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def awkward_csv(path, x):
    """Header after a comment, blank and comment lines between rows, CRLF line ends."""
    lines = ["# made by a test", "x2,label,x1"]
    for i, (a, b) in enumerate(x.tolist()):
        if i % 7 == 3:
            lines += ["", "# a comment row"]
        lines.append(f"{b!r},row{i},{a!r}")
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    return path


def test_streamed_equals_whole(tmp_path, monkeypatch):
    x = np.random.default_rng(0).normal(size=(101, 2))
    csv = awkward_csv(tmp_path / "p.csv", x)
    whole = run("jacobian", CANONICAL, "-p", csv, "-q").stdout
    monkeypatch.setattr(points, "STREAM_TEXT_BYTES", 0)
    assert isinstance(points.read_points(str(csv), ["x1", "x2"]), points.TextRows)
    for chunk in ("1", "3", "1000"):  # other chunks: the same numbers, not the same bytes
        assert_same_table(run("jacobian", CANONICAL, "-p", csv, "-q", "--chunk-size", chunk).stdout,
                          whole)
    expected = jaccli.load(CANONICAL).jacobian(x)
    out = tmp_path / "j.npz"
    assert run("jacobian", CANONICAL, "-p", csv, "-q", "-o", out, "--chunk-size", "10").exit_code == 0
    archive = np.load(out)
    np.testing.assert_allclose(archive["jacobian"], expected, rtol=SAME_RESULT_RTOL, atol=0)
    np.testing.assert_array_equal(archive["x"], x)  # the points read again from the top


def test_late_bad_row_names_its_line_and_leaves_no_file(tmp_path, streamed):
    rows = "\n".join(f"{i}.5,1" for i in range(60))
    csv = tmp_path / "p.csv"
    csv.write_text("x1,x2\n" + rows + "\n7,oops\n1,2\n")
    out = tmp_path / "v.npy"
    result = run("value", CANONICAL, "-p", csv, "-o", out, "--chunk-size", "8")
    assert result.exit_code == 2
    assert result.stderr.strip() == f"Error: {csv}: line 62, column 2: 'oops' is not a number"
    assert os.listdir(tmp_path) == ["p.csv"]


def test_ragged_and_empty_files(tmp_path, streamed):
    ragged = tmp_path / "r.csv"
    ragged.write_text("x1,x2\n1,2\n3,4,5\n")
    assert "line 3 has 3 columns" in run("value", CANONICAL, "-p", ragged).stderr
    empty = tmp_path / "e.csv"
    empty.write_text("x1,x2\n# nothing\n\n")
    assert "zero points" in run("value", CANONICAL, "-p", empty).stderr


@pytest.mark.parametrize("tail", ["", "\n", "\n\n  \n# end\n"])
def test_counting_data_lines(tmp_path, tail):
    body = "1,2\n\n# c\n3,4\n   \n5,6" + tail
    path = tmp_path / "c.csv"
    path.write_text(body)
    assert points._count_data_lines(str(path), 0, block=4) == 3
    assert points._count_data_lines(str(path), 0) == 3
