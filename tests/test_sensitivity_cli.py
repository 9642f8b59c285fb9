"""`jaccli sensitivity` and `jaccli.sensitivity` through the command line and the API."""

import os

import numpy as np
import pytest
from click.testing import CliRunner

import jaccli
from jaccli.cli import cli

from . import nets

W = np.array([1.5, -0.25, 3.0])
NUMERIC = ["nu", "nu_lower", "nu_upper", "mean_abs", "mean_abs_lower", "mean_abs_upper", "mean",
           "share", "output_variance", "bound"]
COLUMNS = ["output", "input"] + NUMERIC + ["bound_kind"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*args, input=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


def table(text, delimiter=","):
    lines = text.strip().splitlines()
    header = lines[0].split(delimiter)
    rows = [line.split(delimiter) for line in lines[1:]]
    return header, rows


def numbers(rows, header, name):
    i = header.index(name)
    return np.array([float(r[i]) if r[i] else np.nan for r in rows])


@pytest.fixture
def files(tmp_path):
    """A linear model y = x W + 0.3 and a tanh net (2 outputs), with their points."""
    linear = nets.write_model(tmp_path, "lin", {"W0": W[:, None], "b0": np.array([0.3])},
                              {"inputs": ["a", "b", "c"], "outputs": ["y"],
                               "layers": [{"units": 1, "activation": "linear"}]})
    rng = np.random.default_rng(3)
    theta = rng.normal(size=3 * 6 + 6 + 6 * 2 + 2)
    net = nets.write_tanh_net(tmp_path, "net", theta, 3, 6, 2)
    X = rng.uniform([0, -1, 2], [1, 3, 2.5], size=(300, 3))
    lin_points = nets.write_csv(tmp_path / "lin_points.csv", ["a", "b", "c"], X)
    net_points = nets.write_csv(tmp_path / "net_points.csv", ["x1", "x2", "x3"], X)
    np.save(tmp_path / "net_points.npy", X)
    return dict(linear=linear, net=net, X=X, lin_points=lin_points, net_points=net_points,
                npy=tmp_path / "net_points.npy", dir=tmp_path)


def test_linear_model_table(files):
    res = run("sensitivity", files["linear"], "--points", files["lin_points"], "--bootstrap", 100)
    assert res.exit_code == 0, res.output
    header, rows = table(res.stdout)
    assert header == COLUMNS
    assert [r[:2] for r in rows] == [["y", "a"], ["y", "b"], ["y", "c"]]
    np.testing.assert_allclose(numbers(rows, header, "nu"), W ** 2, rtol=1e-14)
    np.testing.assert_allclose(numbers(rows, header, "mean"), W, rtol=1e-14)
    np.testing.assert_allclose(numbers(rows, header, "nu_upper"), W ** 2, rtol=1e-13)
    X = files["X"]
    var_y = np.var(X @ W, ddof=1)
    span = X.max(axis=0) - X.min(axis=0)
    np.testing.assert_allclose(numbers(rows, header, "bound"), span ** 2 * W ** 2 / np.pi ** 2 / var_y,
                               rtol=1e-12)
    assert {r[-1] for r in rows} == {"uniform (points)"}
    # the summary: one table sorted by nu (c, a, b), the settings, the bounds
    assert "jaccli sensitivity" in res.stderr and "300 points" in res.stderr
    assert "100 Poisson bootstrap replicates" in res.stderr
    assert "every input uniform" not in res.stderr  # each input has its own range
    first = [res.stderr.index(f"│ {name} ") for name in "cab"]
    assert first == sorted(first)
    assert "█" in res.stderr


def test_outputs_csv_tsv_npz_and_npy_refused(files):
    base = ["sensitivity", files["net"], "--points", files["net_points"], "-B", 50, "-q"]
    out = files["dir"]
    assert run(*base, "-o", out / "s.csv").exit_code == 0
    assert run(*base, "-o", out / "s.tsv").exit_code == 0
    csv_header, csv_rows = table((out / "s.csv").read_text())
    tsv_header, tsv_rows = table((out / "s.tsv").read_text(), "\t")
    assert csv_header == tsv_header == COLUMNS and csv_rows == tsv_rows and len(csv_rows) == 6
    res = run(*base, "--format", "tsv")
    assert table(res.stdout, "\t")[1] == tsv_rows
    assert run(*base, "-o", out / "s.npz").exit_code == 0
    with np.load(out / "s.npz", allow_pickle=False) as npz:
        assert npz["sensitivity"].shape == (2, 3, len(NUMERIC))
        assert list(npz["fields"]) == NUMERIC and list(npz["input_names"]) == ["x1", "x2", "x3"]
        assert list(npz["output_names"]) == ["y1", "y2"] and int(npz["bootstrap"]) == 50
        assert list(npz["bound_kind"]) == ["uniform (points)"] * 3 and int(npz["n_points"]) == 300
        flat = npz["sensitivity"].reshape(6, -1)
    for i, name in enumerate(NUMERIC):
        np.testing.assert_array_equal(flat[:, i], numbers(csv_rows, csv_header, name))
    res = run(*base, "-o", out / "s.npy")
    assert res.exit_code == 2 and "write .csv, .tsv/.txt, .jsonl/.ndjson, .json or .npz" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and not (out / "s.npy").exists()


def test_bootstrap_level_and_seed(files):
    base = ["sensitivity", files["net"], "--points", files["net_points"], "-q"]

    def interval(*options):
        res = run(*base, *options)
        assert res.exit_code == 0, res.output
        header, rows = table(res.stdout)
        return numbers(rows, header, "nu_lower"), numbers(rows, header, "nu_upper")

    low, high = interval("--bootstrap", 400, "--seed", 1)
    again = interval("--bootstrap", 400, "--seed", 1)
    other = interval("--bootstrap", 400, "--seed", 2)
    assert np.array_equal(low, again[0]) and np.array_equal(high, again[1])
    assert not np.array_equal(low, other[0])
    narrow = interval("--bootstrap", 400, "--seed", 1, "--level", 0.5)
    assert np.all(narrow[0] > low) and np.all(narrow[1] < high)
    # the seed keys the weights by row: another chunk size gives the same replicates
    chunked = interval("--bootstrap", 400, "--seed", 1, "--chunk-size", 7)
    np.testing.assert_allclose(chunked[0], low, rtol=1e-12)
    np.testing.assert_allclose(chunked[1], high, rtol=1e-12)


def test_bounds_option(files):
    res = run("sensitivity", files["linear"], "--points", files["lin_points"], "-B", 50,
              "--bounds", "c=normal:0.5,a=uniform:0:1,b=uniform")
    assert res.exit_code == 0, res.output
    header, rows = table(res.stdout)
    assert [r[-1] for r in rows] == ["uniform (bounds)", "uniform (points)", "normal (bounds)"]
    var_y = np.var(files["X"] @ W, ddof=1)
    bound = numbers(rows, header, "bound")
    np.testing.assert_allclose(bound[[0, 2]], [W[0] ** 2 / np.pi ** 2 / var_y, 0.25 * W[2] ** 2 / var_y],
                               rtol=1e-12)
    assert "a uniform [0, 1] (--bounds)" in res.stderr and "c normal sd 0.5 (--bounds)" in res.stderr
    res = run("sensitivity", files["linear"], "--points", files["lin_points"], "-B", 50,
              "--bounds", "uniform:0:1")
    assert "every input uniform [0, 1] (--bounds)" in res.stderr


@pytest.mark.parametrize("options, message", [
    (["--bootstrap", "0"], "--bootstrap must be a positive number of replicates (got 0)"),
    (["--bootstrap", "10"], "--bootstrap 10 is too few for --level 0.95"),
    (["--level", "1"], "--level must lie strictly between 0 and 1"),
    (["--level", "0"], "--level must lie strictly between 0 and 1"),
    (["--bounds", "uniform:0:1,normal:1"], "--bounds gives 2 bound(s); the model has 3 inputs"),
    (["--bounds", "uniform:1:0"], "needs A < B"),
    (["--bounds", "a=uniform:0:1,b=normal:1,d=normal:1"], "no input named 'd'"),
    (["--seed", "-3"], "--seed must be a non-negative integer"),
    (["--at", "1,2,3", "--points", None], "at least 2 points"),
])
def test_bad_input_exit_2_one_line(files, options, message):
    out = files["dir"] / "kept.csv"
    out.write_text("precious\n")
    args = ["sensitivity", files["linear"], "--points", files["lin_points"], "-o", out] + options
    if None in options:  # --at instead of --points
        args = ["sensitivity", files["linear"], "-o", out] + options[:2]
    res = run(*args)
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], lines
    assert out.read_text() == "precious\n"  # an error never touches the output


def test_constant_output_warns_even_when_quiet(tmp_path):
    model = nets.write_model(tmp_path, "flat", {"W0": np.zeros((2, 1)), "b0": np.array([4.0])},
                             {"inputs": 2, "outputs": ["y"],
                              "layers": [{"units": 1, "activation": "linear"}]})
    points = nets.write_csv(tmp_path / "p.csv", ["x1", "x2"], np.random.default_rng(0).uniform(size=(20, 2)))
    res = run("sensitivity", model, "--points", points, "-B", 50, "--quiet")
    assert res.exit_code == 0, res.output
    assert "warning: y is constant over the points" in res.stderr
    assert "jaccli sensitivity" not in res.stderr  # --quiet: no table
    header, rows = table(res.stdout)
    assert [r[header.index("bound")] for r in rows] == ["", ""]
    assert numbers(rows, header, "nu").tolist() == [0.0, 0.0]


def test_points_from_npy_stdin_spec_and_float32(files, tmp_path):
    base = ["-B", 50, "-q"]
    csv = run("sensitivity", files["net"], "--points", files["net_points"], *base)
    npy = run("sensitivity", files["net"], "--points", files["npy"], *base)
    stdin = run("sensitivity", files["net"], "--points", "-", *base,
                input=open(files["net_points"]).read())
    assert csv.exit_code == npy.exit_code == stdin.exit_code == 0
    assert csv.stdout == npy.stdout == stdin.stdout
    spec = tmp_path / "other.yaml"
    spec.write_text((tmp_path / "net.yaml").read_text())
    with_spec = run("sensitivity", files["net"], "--spec", spec, "--points", files["net_points"], *base)
    assert with_spec.stdout == csv.stdout
    single = run("sensitivity", files["net"], "--points", files["net_points"], *base, "--dtype", "float32")
    assert single.exit_code == 0, single.output
    header, rows = table(csv.stdout)
    header32, rows32 = table(single.stdout)
    np.testing.assert_allclose(numbers(rows32, header32, "nu"), numbers(rows, header, "nu"), rtol=1e-5)


def test_help_example_runs():
    res = run("sensitivity", "--help")
    assert res.exit_code == 0 and "jaccli sensitivity sample_models/screen7.npz" in res.stdout
    for option in ("--bootstrap", "--level", "--bounds", "--seed", "--chunk-size", "--dtype",
                   "--spec", "--quiet", "--format"):
        assert option in res.stdout
    assert "[csv|tsv|jsonl|json|npz]" in res.stdout
    assert ".csv, .tsv/.txt, .jsonl/.ndjson, .json or .npz;" in " ".join(res.stdout.split())
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        res = run("sensitivity", "sample_models/screen7.npz", "--points",
                  "sample_models/screen7_points.csv", "--bounds", "uniform:0:1")
    finally:
        os.chdir(cwd)
    assert res.exit_code == 0, res.output
    header, rows = table(res.stdout)
    nu = numbers(rows, header, "nu")
    # the net approximates f = x1 + 0.4 sin(2 pi x2) + 0.5 tanh(12 (x3 - 1/2)) + 2 x4 x5 + 0.3 x6^2:
    # nu of f is 1, 3.16, 4.00, 1.34, 1.34, 0.12, 0 (sample_models/make_screen7.py)
    np.testing.assert_allclose(nu, [1, 3.16, 4.0, 1.34, 1.34, 0.12, 0], rtol=0.05, atol=1e-3)


def test_api_matches_the_cli_and_takes_a_path(files):
    model = jaccli.load(files["net"])
    by_path = jaccli.sensitivity(model, str(files["net_points"]), bootstrap=50)
    by_array = jaccli.sensitivity(model, files["X"], bootstrap=50, chunk_size=11)
    for name in NUMERIC:
        np.testing.assert_allclose(by_path.column(name), by_array.column(name), rtol=1e-12)
    res = run("sensitivity", files["net"], "--points", files["net_points"], "-B", 50, "-q")
    header, rows = table(res.stdout)
    for name in NUMERIC:
        np.testing.assert_array_equal(numbers(rows, header, name), by_path.column(name))
    assert by_path.rows()[0]["input"] == "x1" and by_path.nu.shape == (2, 3)


def test_overflow_is_one_warning_and_a_bad_row_leaves_no_output(tmp_path):
    model = nets.write_model(tmp_path, "exp", {"W0": np.ones((2, 1)), "b0": np.zeros(1),
                                                "W1": np.ones((1, 1)), "b1": np.zeros(1)},
                             {"inputs": 2, "outputs": ["y"],
                              "layers": [{"units": 1, "activation": "exp"},
                                         {"units": 1, "activation": "linear"}]})
    points = nets.write_csv(tmp_path / "p.csv", ["x1", "x2"], [[0, 0], [1, 1], [800, 0], [2, 3]])
    res = run("sensitivity", model, "--points", points, "-B", 50)
    assert res.exit_code == 0, res.output
    assert res.stderr.count("warning:") == 1 and "overflows" in res.stderr
    assert "RuntimeWarning" not in res.stderr and "inf" in res.stderr
    header, rows = table(res.stdout)
    assert np.all(np.isinf(numbers(rows, header, "nu")))
    bad = tmp_path / "bad.npy"
    np.save(bad, np.array([[0, 0], [1, 1], [np.nan, 0], [2, 3.0]]))
    res = run("sensitivity", model, "--points", bad, "-B", 50, "--chunk-size", 2,
              "-o", tmp_path / "out.csv")
    assert res.exit_code == 2 and "point 3, column 1 is nan" in res.stderr
    assert not (tmp_path / "out.csv").exists()
