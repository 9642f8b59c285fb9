"""-o out.jsonl / .ndjson / --format jsonl and -o out.json: every line parsed by a strict
parser, keys = the CSV columns, numbers in the CSV's own text, NaN and infinities as
null with a warning, memory independent of the number of rows."""

import io
import json
import os
import tracemalloc

import numpy as np
import pytest
from click.testing import CliRunner

from jaccli.cli import cli
from jaccli.io.json_rows import JsonRowsWriter

from conftest import SAMPLES
from . import nets

SINCOS = os.path.join(SAMPLES, "sincos.npz")
UNIFORM = os.path.join(SAMPLES, "sincos_uniform.csv")


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def refuse(constant):
    raise ValueError(f"not JSON: {constant}")  # NaN, Infinity, -Infinity


def strict(line):
    """A JSON value, every number kept as its text; NaN or Infinity is an error."""
    return json.loads(line, parse_constant=refuse, parse_float=str, parse_int=str)


def csv_rows(text):
    lines = text.splitlines()
    import csv

    header = next(csv.reader([lines[0]]))
    return header, [line.split(",") for line in lines[1:]]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_jsonl_lines_are_the_csv_rows_number_for_number(tmp_path, dtype):
    base = ["jacobian", SINCOS, "--points", UNIFORM, "--with", "value,hessdiag", "-q",
            "--dtype", dtype]
    header, rows = csv_rows(run(*base).stdout)
    assert run(*base, "-o", tmp_path / "out.jsonl").exit_code == 0
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert len(lines) == len(rows) == 1000
    for line, row in zip(lines, rows):
        record = strict(line)
        assert list(record) == header  # keys in the CSV's order
        assert list(record.values()) == row  # each number in the CSV's text
    # .ndjson, and --format jsonl on standard output, are the same lines
    assert run(*base, "-o", tmp_path / "out.ndjson").exit_code == 0
    assert (tmp_path / "out.ndjson").read_text() == (tmp_path / "out.jsonl").read_text()
    assert run(*base, "--format", "jsonl").stdout == (tmp_path / "out.jsonl").read_text()


def test_json_numbers_read_back_as_the_same_floats(tmp_path):
    res = run("hessian", SINCOS, "--points", UNIFORM, "-q", "--format", "jsonl")
    header, rows = csv_rows(run("hessian", SINCOS, "--points", UNIFORM, "-q").stdout)
    for line, row in zip(res.stdout.splitlines(), rows):
        values = list(json.loads(line, parse_constant=refuse).values())
        assert values == [float(cell) for cell in row]


def test_nan_and_infinity_are_null_with_a_warning(tmp_path):
    model = nets.write_tanh_net(tmp_path, "big", np.ones(2 * 2 + 2 + 2 + 1), 2, 2,
                                activation="exp")
    points = nets.write_csv(tmp_path / "p.csv", ["x1", "x2"], [[0.0, 0.0], [400.0, 400.0]])
    res = run("value", model, "--points", points, "-o", tmp_path / "v.jsonl", "-q")
    assert res.exit_code == 0, res.output
    assert "NaN or infinite" in res.stderr and "written as null" in res.stderr
    records = [strict(line) for line in (tmp_path / "v.jsonl").read_text().splitlines()]
    assert records[0]["y"] is not None and records[1]["y"] is None


def test_sensitivity_and_check_tables_as_one_document_and_as_lines(tmp_path):
    base = ["sensitivity", SINCOS, "--points", UNIFORM, "-B", "50", "-q"]
    header, rows = csv_rows(run(*base).stdout)
    assert run(*base, "-o", tmp_path / "s.json").exit_code == 0
    document = json.loads((tmp_path / "s.json").read_text(), parse_constant=refuse,
                          parse_float=str, parse_int=str)
    assert document["command"] == "sensitivity" and document["bootstrap"] == "50"
    assert document["bounds"] == {"x1": "uniform (points)", "x2": "uniform (points)"}
    assert [list(r) for r in document["rows"]] == [header] * len(rows)
    assert [list(r.values()) for r in document["rows"]] == rows
    lines = run(*base, "--format", "jsonl").stdout.splitlines()
    assert [strict(line) for line in lines] == document["rows"]
    points = os.path.join(SAMPLES, "noisy_points.csv")
    check = ["check", os.path.join(SAMPLES, "noisy.npz"), "--points", points, "-q"]
    res = run(*check, "-o", tmp_path / "c.json")
    assert res.exit_code == 0, res.output
    document = json.loads((tmp_path / "c.json").read_text(), parse_constant=refuse)
    assert document["passed"] is True and document["n_points"] == 5
    header, rows = csv_rows(run(*check).stdout)
    assert list(document["rows"][0]) == header and len(document["rows"]) == len(rows)
    # an empty CSV cell (no value for that method) is null
    assert document["rows"][0]["max_abs_error"] is None and rows[0][2] == ""


def test_confint_json_holds_the_fit_then_the_rows(tmp_path):
    base = ["confint", os.path.join(SAMPLES, "noisy.npz"), "--train",
            os.path.join(SAMPLES, "noisy_train.csv"), "--points",
            os.path.join(SAMPLES, "noisy_points.csv"), "-q"]
    assert run(*base, "-o", tmp_path / "ci.json").exit_code == 0
    document = json.loads((tmp_path / "ci.json").read_text(), parse_constant=refuse)
    (fit,) = document["fit"]
    assert fit["output"] == "y" and fit["rank"] == 21 and fit["n_train"] == 200
    assert document["level"] == 0.95 and len(document["rows"]) == 5
    header, rows = csv_rows(run(*base).stdout)
    assert [list(map(str, r.values())) for r in document["rows"]] == rows
    assert list(document["rows"][0]) == header


def test_a_json_document_of_a_computing_command(tmp_path):
    res = run("jacobian", SINCOS, "--at", "0.5,-0.2", "-q", "--format", "json")
    document = json.loads(res.stdout, parse_constant=refuse)
    assert document["command"] == "jacobian" and document["inputs"] == ["x1", "x2"]
    assert list(document["rows"][0]) == ["df/dx1", "df/dx2"] and document["n_points"] == 1
    empty = io.StringIO()
    writer = JsonRowsWriter("-", "json", ["a"], stdout=empty)
    writer.commit()
    assert json.loads(empty.getvalue()) == {"rows": []}


def test_json_is_written_as_it_goes_in_bounded_memory():
    columns = [f"c{i}" for i in range(8)]
    block = np.random.default_rng(0).normal(size=(1000, 8))

    def peak(n_blocks, stdout):
        tracemalloc.start()
        writer = JsonRowsWriter("-", "jsonl", columns, stdout=stdout)
        for i in range(n_blocks):
            writer.write(i * 1000, block)
        written_before_commit = stdout.tell()
        writer.commit()
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top, written_before_commit

    class Sink(io.TextIOBase):  # counts what it is given, keeps nothing
        def __init__(self):
            self.count = 0

        def write(self, text):
            self.count += len(text)
            return len(text)

        def tell(self):
            return self.count

    small, _ = peak(20, Sink())
    sink = Sink()
    large, before_commit = peak(400, sink)
    assert before_commit > 0.95 * sink.count  # streamed, not gathered until the end
    assert large < 2 * small + (1 << 20)  # 20 times the rows, about the same memory
