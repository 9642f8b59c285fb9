"""Every command and option through click's CliRunner: data on stdout, summary on stderr."""

import csv
import io
import os

import numpy as np
import pytest
from click.testing import CliRunner

import jaccli
import oracle
from conftest import SAMPLES, random_model, save_model
from jaccli.cli import cli

CANONICAL = os.path.join(SAMPLES, "canonical.npz")
COMMANDS = ["value", "jacobian", "hessdiag", "hessian", "laplacian"]


def run(*args, input=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input, catch_exceptions=False)


def parse_csv(text):
    rows = list(csv.reader(io.StringIO(text)))
    return rows[0], np.array(rows[1:], dtype=float)


@pytest.fixture
def model3(tmp_path):
    """A 3-input, 2-output model with named inputs a, b, c and outputs u, v."""
    rng = np.random.default_rng(11)
    spec, tensors = random_model(rng, [3, 5, 2], ["tanh", "linear"], scaling=True)
    spec["inputs"], spec["outputs"] = ["a", "b", "c"], ["u", "v"]
    path = save_model(tmp_path, spec, tensors)
    return path, spec, tensors


def points_file(tmp_path, x, name="pts.csv", header="a,b,c", delimiter=","):
    path = tmp_path / name
    lines = ([header] if header else []) + [delimiter.join(map(repr, row)) for row in x.tolist()]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_jacobian_canonical_at():
    result = run("jacobian", CANONICAL, "--at", "1,1")
    assert result.exit_code == 0
    header, values = parse_csv(result.stdout)
    assert header == ["dy/dx1", "dy/dx2"]
    np.testing.assert_allclose(values, [[0.0903533194618242] * 2], rtol=1e-15)
    assert "0.0903533" in result.stderr  # the summary table
    assert "jaccli jacobian" not in result.stdout


@pytest.mark.parametrize("command, header", [
    ("value", ["u", "v"]),
    ("jacobian", ["du/da", "du/db", "du/dc", "dv/da", "dv/db", "dv/dc"]),
    ("hessdiag", ["d2u/da2", "d2u/db2", "d2u/dc2", "d2v/da2", "d2v/db2", "d2v/dc2"]),
    ("laplacian", ["lap(u)", "lap(v)"]),
])
def test_headers_and_values_match_oracle(tmp_path, model3, command, header):
    path, spec, tensors = model3
    x = np.random.default_rng(1).normal(size=(4, 3))
    result = run(command, path, "--points", points_file(tmp_path, x), "--quiet")
    assert result.exit_code == 0, result.stderr
    got_header, values = parse_csv(result.stdout)
    assert got_header == header
    expected = {
        "value": lambda: oracle.forward(spec, tensors, x).real,
        "jacobian": lambda: oracle.jacobian(spec, tensors, x),
        "hessdiag": lambda: np.diagonal(oracle.hessian(spec, tensors, x), axis1=2, axis2=3),
        "laplacian": lambda: np.trace(oracle.hessian(spec, tensors, x), axis1=2, axis2=3),
    }[command]().reshape(len(x), -1)
    np.testing.assert_allclose(values, expected, rtol=1e-6, atol=1e-8)
    assert result.stderr == ""


def test_hessian_header_is_output_major(model3, tmp_path):
    path, _, _ = model3
    result = run("hessian", path, "--at", "0.1,0.2,0.3", "-q")
    header, values = parse_csv(result.stdout)
    assert header[:4] == ["d2u/dada", "d2u/dadb", "d2u/dadc", "d2u/dbda"]
    assert header[9] == "d2v/dada" and len(header) == 18
    np.testing.assert_allclose(values.reshape(2, 3, 3), jaccli.load(path).hessian([0.1, 0.2, 0.3])[0],
                               rtol=0, atol=0)


def test_param_jacobian_header_and_values(model3):
    path, spec, tensors = model3
    result = run("jacobian", path, "--at", "0.1,0.2,0.3", "--wrt", "params", "-q")
    assert result.exit_code == 0
    header, values = parse_csv(result.stdout)
    assert header[:3] == ["du/dW0[0,0]", "du/dW0[0,1]", "du/dW0[0,2]"]
    assert "du/db0[4]" in header and "dv/db1[1]" == header[-1]
    P = 3 * 5 + 5 + 5 * 2 + 2
    assert len(header) == 2 * P
    expected = oracle.param_jacobian(spec, tensors, np.array([[0.1, 0.2, 0.3]]))
    np.testing.assert_allclose(values.reshape(1, 2, P), expected, rtol=1e-9, atol=1e-12)


def test_csv_round_trips_exactly(model3):
    path, _, _ = model3
    x = [0.1, 0.2, 0.3]
    header, values = parse_csv(run("jacobian", path, "--at", "0.1,0.2,0.3", "-q").stdout)
    np.testing.assert_array_equal(values.reshape(1, 2, 3), jaccli.load(path).jacobian(x))


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".csv", ".tsv"])
def test_output_files(tmp_path, model3, suffix):
    path, _, _ = model3
    x = np.random.default_rng(2).normal(size=(5, 3))
    out = tmp_path / f"out{suffix}"
    result = run("hessdiag", path, "-p", points_file(tmp_path, x), "-o", out)
    assert result.exit_code == 0 and result.stdout == ""
    expected = jaccli.load(path).hessdiag(x)
    if suffix == ".npy":
        np.testing.assert_array_equal(np.load(out), expected)
    elif suffix == ".npz":
        archive = np.load(out)
        np.testing.assert_array_equal(archive["hessdiag"], expected)
        np.testing.assert_array_equal(archive["x"], x)
        assert list(archive["input_names"]) == ["a", "b", "c"]
    else:
        delimiter = "," if suffix == ".csv" else "\t"
        lines = out.read_text().splitlines()
        assert lines[0].split(delimiter)[0] == "d2u/da2"
        table = np.array([line.split(delimiter) for line in lines[1:]], dtype=float)
        np.testing.assert_array_equal(table, expected.reshape(5, -1))
    assert [p for p in os.listdir(tmp_path) if p.endswith(".part")] == []


def test_format_overrides_extension(tmp_path, model3):
    path, _, _ = model3
    out = tmp_path / "result.dat"
    assert run("value", path, "--at", "1,2,3", "-o", out, "--format", "npy", "-q").exit_code == 0
    assert np.load(out).shape == (1, 2)
    result = run("value", path, "--at", "1,2,3", "--format", "tsv", "-q")
    assert result.stdout.splitlines()[0] == "u\tv"


def test_output_dash_is_stdout(model3):
    path, _, _ = model3
    assert run("value", path, "--at", "1,2,3", "-o", "-", "-q").stdout.startswith("u,v\n")


@pytest.mark.parametrize("kind", ["csv-by-name", "csv-no-header", "tsv", "txt-spaces", "npy", "npy-1d", "stdin"])
def test_points_formats(tmp_path, model3, kind):
    path, _, _ = model3
    x = np.random.default_rng(5).normal(size=(3, 3))
    stdin = None
    if kind == "csv-by-name":  # columns out of order plus an extra one: taken by name
        extra = np.column_stack([x[:, 2], np.ones(3), x[:, 0], x[:, 1]])
        points = points_file(tmp_path, extra, header="c,other,a,b")
    elif kind == "csv-no-header":
        points = points_file(tmp_path, x, header=None)
    elif kind == "tsv":
        points = points_file(tmp_path, x, "p.tsv", header="a\tb\tc", delimiter="\t")
    elif kind == "txt-spaces":
        points = tmp_path / "p.txt"
        np.savetxt(points, x)  # numpy's default: space-separated
    elif kind == "npy":
        points = tmp_path / "p.npy"
        np.save(points, x)
    elif kind == "npy-1d":
        points, x = tmp_path / "p.npy", x[:1]
        np.save(points, x[0])
    else:
        points, stdin = "-", "a,b,c\n" + "\n".join(",".join(map(repr, r)) for r in x.tolist())
    result = run("value", path, "--points", points, "-q", input=stdin)
    assert result.exit_code == 0, result.stderr
    np.testing.assert_allclose(parse_csv(result.stdout)[1], jaccli.load(path).value(x), rtol=1e-15)


def test_spec_option_and_dtype(tmp_path):
    rng = np.random.default_rng(6)
    spec, tensors = random_model(rng, [2, 3, 1], ["tanh", "linear"])
    path = save_model(tmp_path, spec, tensors, stem="weights")
    moved = tmp_path / "elsewhere.yaml"
    os.rename(tmp_path / "weights.yaml", moved)
    assert run("value", path, "--at", "1,2").exit_code == 2  # no spec to be found
    result = run("value", path, "--at", "1,2", "--spec", moved, "--dtype", "float32", "-q")
    assert result.exit_code == 0
    value = float(parse_csv(result.stdout)[1][0, 0])
    assert value == float(np.float32(jaccli.load(path, spec=moved).value([1, 2])[0, 0])) or \
        abs(value - jaccli.load(path, spec=moved).value([1, 2])[0, 0]) < 1e-6


def test_chunk_size_option(tmp_path, model3):
    path, _, _ = model3
    x = np.random.default_rng(7).normal(size=(9, 3))
    points = points_file(tmp_path, x)
    outputs = [parse_csv(run("hessian", path, "-p", points, "--chunk-size", c, "-q").stdout)[1]
               for c in (1, 4, 100)]
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(outputs[0], outputs[2], rtol=1e-13, atol=1e-15)
    assert np.array_equal(outputs[0].reshape(9, 2, 3, 3), outputs[0].reshape(9, 2, 3, 3).transpose(0, 1, 3, 2))
    assert run("value", path, "-p", points, "--chunk-size", 0).exit_code == 2


def test_info_lists_parameters(model3):
    path, _, _ = model3
    result = run("info", path)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert "inputs: a, b, c" in lines
    table = lines[lines.index("name\tshape\toffset\tsize") + 1:]
    assert table[:4] == ["W0\t(3, 5)\t0\t15", "b0\t(5,)\t15\t5", "W1\t(5, 2)\t20\t10", "b1\t(2,)\t30\t2"]


@pytest.mark.parametrize("command", ["info", "value", "jacobian", "hessdiag", "hessian", "laplacian"])
def test_help_has_an_example(command):
    result = run(command, "--help")
    assert result.exit_code == 0 and "Example" in result.stdout


def test_top_level_help_and_version():
    assert "Example" in run("--help").stdout
    assert run("--version").exit_code == 0


# ---------------------------------------------------------------- errors: exit 2, one line, no file


def one_line_error(result):
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.mark.parametrize("args, words", [
    (["--at", "1"], "2 inputs"),
    (["--at", "1,x"], "numbers"),
    ([], "--points"),
    (["--at", "1,1", "--points", "p.csv"], "--points"),
    (["--points", "missing.csv"], "missing.csv"),
    (["--at", "1,nan"], "finite"),
    (["--at", "1,1", "-o", "no/such/dir/out.csv"], "does not exist"),
    (["--at", "1,1", "-o", "out.xyz"], "out.xyz"),
])
def test_bad_usage_is_one_line(tmp_path, args, words):
    os.chdir(tmp_path)
    message = one_line_error(run("value", CANONICAL, *args))
    assert words in message


def test_failed_run_leaves_existing_output_untouched(tmp_path, model3):
    path, _, _ = model3
    out = tmp_path / "out.csv"
    out.write_text("precious\n")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,c\n1,2,3\n4,nan,6\n")
    message = one_line_error(run("value", path, "-p", bad, "-o", out))
    assert "point 2" in message and "bad.csv" in message
    assert out.read_text() == "precious\n"
    assert sorted(os.listdir(tmp_path)) == sorted(["bad.csv", "model.npz", "model.yaml", "out.csv"])


def test_late_bad_row_in_npy_stream_leaves_no_file(tmp_path, model3):
    path, _, _ = model3
    x = np.random.default_rng(8).normal(size=(50, 3))
    x[47, 1] = np.inf
    np.save(tmp_path / "p.npy", x)
    message = one_line_error(run("jacobian", path, "-p", tmp_path / "p.npy", "-o",
                                 tmp_path / "j.npy", "--chunk-size", 5))
    assert "point 48" in message
    assert not (tmp_path / "j.npy").exists()
    assert [p for p in os.listdir(tmp_path) if p.endswith(".part")] == []


def test_refuses_to_overwrite_an_input(tmp_path, model3):
    path, _, _ = model3
    x = points_file(tmp_path, np.ones((2, 3)))
    before = x.read_text()
    assert "inputs" in one_line_error(run("value", path, "-p", x, "-o", x))
    assert x.read_text() == before


def test_unknown_spec_field_is_an_error(tmp_path):
    rng = np.random.default_rng(9)
    spec, tensors = random_model(rng, [2, 3, 1], ["tanh", "linear"])
    spec["layers"][0]["activaton"] = "relu"
    path = save_model(tmp_path, spec, tensors)
    message = one_line_error(run("value", path, "--at", "1,2"))
    assert "activaton" in message and "model.yaml" in message


# ---------------------------------------------------------------- from a new-user review


def test_output_through_a_symlink_replaces_the_target_and_keeps_its_mode(tmp_path):
    target = tmp_path / "target.csv"
    target.write_text("old\n")
    os.chmod(target, 0o640)
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    assert run("value", CANONICAL, "--at", "1,1", "-q", "-o", link).exit_code == 0
    assert link.is_symlink() and target.read_text().startswith("y\n")
    assert os.stat(target).st_mode & 0o777 == 0o640


def test_debug_shows_a_traceback_and_keeps_exit_2():
    result = run("--debug", "value", "missing.npz", "--at", "1,1")
    assert result.exit_code == 2
    assert "Traceback" in result.stderr and result.stderr.rstrip().splitlines()[-1].startswith("Error: ")


def test_at_and_points_together_is_an_error():
    assert "not both" in one_line_error(run("value", CANONICAL, "--at", "1,1", "-p", "x.csv"))


def test_float32_overflow_in_points_is_an_error():
    message = one_line_error(run("value", CANONICAL, "--at", "1e39,1", "--dtype", "float32"))
    assert "overflows float32" in message


def test_non_finite_results_are_reported_once(tmp_path):
    spec = {"layers": [{"units": 1, "activation": "exp"}]}
    path = save_model(tmp_path, spec, {"W0": np.ones((1, 1)), "b0": np.zeros(1)})
    result = run("value", path, "--at", "800")
    assert result.exit_code == 0 and "inf" in result.stdout
    assert result.stderr.count("warning: 1 result(s) are NaN or infinite") == 1
    assert "RuntimeWarning" not in result.stderr


def test_info_has_no_chunk_size():
    """info computes nothing: it takes no --chunk-size (a usage error, exit 2)."""
    result = run("info", CANONICAL, "--chunk-size", "3")
    assert result.exit_code == 2 and "--chunk-size" in result.stderr


def test_layout_is_case_insensitive(tmp_path):
    rng = np.random.default_rng(12)
    spec, tensors = random_model(rng, [2, 3, 1], ["tanh", "linear"], layout="out_in")
    spec["layout"] = "OUT_IN"
    path = save_model(tmp_path, spec, tensors)
    assert run("value", path, "--at", "1,2", "-q").exit_code == 0


@pytest.mark.parametrize("text, words", [
    ("x1,x2,x1\n1,2,3\n", "twice"),
    ("1;2\n3;4\n", "separated by ';'"),
    ("1,2,a\n3,4,b\n", "give a header"),
])
def test_confusing_points_files_get_a_hint(tmp_path, text, words):
    points = tmp_path / "p.csv"
    points.write_text(text)
    assert words in one_line_error(run("value", CANONICAL, "-p", points))


@pytest.mark.parametrize("first_row, bad_cell", [("id,1.5,2.5", "'id'"), ("1_000,2,3", "'1_000'")])
def test_one_header_rule_for_points_check_and_confint(model3, tmp_path, first_row, bad_cell):
    """A first row most of whose cells are not numbers is a header; 'id,1.5,2.5' (a label
    among numbers) and '1_000,2,3' (a number loadtxt does not read) are data rows, so every
    command reading the file refuses the cell, by line and column, the same way."""
    from jaccli.io.points import is_header, text_header

    path, _, _ = model3
    points = tmp_path / "first.csv"
    points.write_text(f"{first_row}\n0.1,0.2,0.3\n")
    train = tmp_path / "train.csv"  # the inputs, then the targets u, v
    train.write_text(f"{first_row},0.5,0.5\n" + "0.1,0.2,0.3,0.4,0.5\n" * 30)
    assert not is_header(first_row.split(",")) and text_header(str(points)) is None
    assert is_header(["a", "b", "1"]) and text_header(str(points_file(tmp_path, np.ones((1, 3))))) == ["a", "b", "c"]
    for args in (["value", path, "-p", points],
                 ["check", path, "-p", points],
                 ["confint", path, "--train", train, "--at", "1,2,3"]):
        error = one_line_error(CliRunner().invoke(cli, [str(a) for a in args]))
        assert f"line 1, column 1: {bad_cell} is not a number" in error, error


def test_python_m_jaccli_cli_runs_every_command(tmp_path):
    import subprocess
    import sys

    for args in (["info", CANONICAL], ["check", CANONICAL, "--at", "1,1", "-q"]):
        proc = subprocess.run([sys.executable, "-m", "jaccli.cli", *args], capture_output=True,
                              text=True)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout


def test_one_quiet_point_imports_nothing_it_does_not_use():
    """A one-point call's start-up is most of its time (``make bench`` measures it):
    a quiet run writing one CSV row imports neither pyarrow (worth it for large
    blocks only) nor rich (the summary and the progress bar)."""
    import subprocess
    import sys

    probe = ("import sys\nfrom jaccli.cli import cli\n"
             "try:\n    cli.main(sys.argv[1:])\nexcept SystemExit as exit:\n"
             "    assert not exit.code, exit.code\n"
             "print(sorted(m for m in ('pyarrow', 'rich', 'scipy') if m in sys.modules), "
             "file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", probe, "jacobian",
                           os.path.join(SAMPLES, "canonical.npz"), "--at", "1,1", "--quiet"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("dy/dx1")
    assert done.stderr.strip().splitlines()[-1] == "[]"
