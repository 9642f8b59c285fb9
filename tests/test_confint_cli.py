"""`jaccli confint` through the command line (click.testing.CliRunner)."""

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import stats

from jaccli.cli import cli

from . import nets
from .test_confint import ols_intervals

FIELDS = ["", "_se", "_lower", "_upper", "_pred_lower", "_pred_upper"]
KEYS = ["value", "se", "lower", "upper", "pred_lower", "pred_upper"]


def run(*args, input=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


@pytest.fixture
def linear(tmp_path):
    """A network with no hidden layer (2 inputs, 2 outputs) fitted by OLS to noisy data."""
    rng = np.random.default_rng(11)
    X = rng.uniform(-1, 1, size=(25, 2))
    Y = np.column_stack([X @ [2.0, -1.0] + 0.5, X @ [0.3, 0.7] - 1.0]) + 0.1 * rng.normal(size=(25, 2))
    A = np.column_stack([X, np.ones(25)])
    coef = np.linalg.lstsq(A, Y, rcond=None)[0]  # (3, 2): rows W (2) then b
    model = nets.write_model(tmp_path, "lin", {"W0": coef[:2], "b0": coef[2]},
                             {"inputs": ["a", "b"], "outputs": ["u", "v"],
                              "layers": [{"units": 2, "activation": "linear"}]})
    train = nets.write_csv(tmp_path / "train.csv", ["a", "b", "u", "v"], np.column_stack([X, Y]))
    Xq = rng.uniform(-2, 2, size=(6, 2))
    points = nets.write_csv(tmp_path / "points.csv", ["a", "b"], Xq)
    return dict(model=model, train=train, points=points, X=X, Y=Y, Xq=Xq, dir=tmp_path)


def test_linear_network_equals_textbook_ols(linear):
    res = run("confint", linear["model"], "--train", linear["train"], "--points", linear["points"],
              "--level", "0.9")
    assert res.exit_code == 0, res.output
    header, rows = nets.read_csv(res.stdout)
    assert header == [f"{y}{f}" for y in "uv" for f in FIELDS]
    worst = 0.0
    for k, y in enumerate("uv"):
        _, _, want, _ = ols_intervals(linear["X"], linear["Y"][:, k], linear["Xq"], 0.9)
        for f, key in zip(FIELDS, KEYS):
            got = rows[:, header.index(f"{y}{f}")]
            np.testing.assert_allclose(got, want[key], rtol=1e-10, atol=1e-12)
            worst = max(worst, np.max(np.abs(got - want[key]) / np.maximum(np.abs(want[key]), 1e-300)))
    print(f"largest relative difference to textbook OLS: {worst:.2e}")


def test_summary_on_stderr(linear):
    res = run("confint", linear["model"], "--train", linear["train"], "--at", "0.1,0.2")
    assert res.exit_code == 0
    for text in ("N_train", "25", "q (parameters)", "rank of Z", "condition number",
                 "dof = N_train - rank", "22", "s (residual std)", "sum of leverages", "LOO score"):
        assert text in res.stderr
    assert "warning" not in res.stderr
    assert res.stdout.count("\n") == 2  # header + the --at point


def test_quiet(linear):
    res = run("confint", linear["model"], "--train", linear["train"], "--at", "0,0", "--quiet")
    assert res.exit_code == 0 and res.stderr == ""


def test_leverage_file_is_the_hat_matrix_diagonal(linear):
    out = linear["dir"] / "lev.csv"
    res = run("confint", linear["model"], "--train", linear["train"], "--at", "0,0",
              "--leverage", out)
    assert res.exit_code == 0, res.output
    header, rows = nets.read_csv(out)
    assert header == ["u_residual", "u_leverage", "u_loo_residual",
                      "v_residual", "v_leverage", "v_loo_residual"]
    _, resid, _, H = ols_intervals(linear["X"], linear["Y"][:, 0], linear["X"][:1], 0.95)
    np.testing.assert_allclose(rows[:, 0], resid, atol=1e-12)
    np.testing.assert_allclose(rows[:, 1], H, rtol=1e-10)
    np.testing.assert_allclose(rows[:, 2], resid / (1 - H), rtol=1e-10)
    assert rows[:, 4].sum() == pytest.approx(3)


def test_leverage_to_stdout_needs_intervals_in_a_file(linear):
    res = run("confint", linear["model"], "--train", linear["train"], "--at", "0,0", "--leverage", "-")
    assert res.exit_code == 2 and "Error: --leverage - needs the intervals in a file" in res.stderr
    out = linear["dir"] / "ci.npz"
    res = run("confint", linear["model"], "--train", linear["train"], "--at", "0,0", "--leverage", "-",
              "-o", out, "-q")
    assert res.exit_code == 0 and res.stdout.startswith("u_residual,u_leverage")
    assert out.exists()


def test_npy_npz_tsv_outputs_and_chunk_size(linear):
    base = ["confint", linear["model"], "--train", linear["train"], "--points", linear["points"], "-q"]
    ref = nets.read_csv(run(*base).stdout)[1]
    npy = linear["dir"] / "ci.npy"
    assert run(*base, "-o", npy, "--chunk-size", "2").exit_code == 0
    arr = np.load(npy)
    assert arr.shape == (6, 2, 6)
    np.testing.assert_allclose(arr.reshape(6, -1), ref, rtol=1e-13)
    npz = linear["dir"] / "ci.npz"
    assert run(*base, "-o", npz).exit_code == 0
    with np.load(npz) as data:
        assert list(data["fields"]) == KEYS
        np.testing.assert_allclose(data["confint"].reshape(6, -1), ref, rtol=1e-13)
        assert float(data["level"]) == 0.95
    tsv = linear["dir"] / "ci.out"
    assert run(*base, "-o", tsv, "--format", "tsv").exit_code == 0
    assert tsv.read_text().splitlines()[0].split("\t")[:2] == ["u", "u_se"]


def test_dtype_float32_and_spec_option(linear, tmp_path):
    spec = tmp_path / "elsewhere.yaml"
    spec.write_text((linear["dir"] / "lin.yaml").read_text())
    (linear["dir"] / "lin.yaml").unlink()
    base = ["confint", linear["model"], "--train", linear["train"], "--points", linear["points"], "-q"]
    assert run(*base).exit_code == 2  # no spec to be found any more
    ref = nets.read_csv(run(*base, "--spec", spec).stdout)[1]
    res = run(*base, "--spec", spec, "--dtype", "float32")
    assert res.exit_code == 0
    np.testing.assert_allclose(nets.read_csv(res.stdout)[1], ref, rtol=1e-4, atol=1e-5)


def test_target_option_and_missing_target_column(linear, tmp_path):
    table = np.column_stack([linear["X"], linear["Y"]])
    renamed = nets.write_csv(tmp_path / "obs.csv", ["a", "b", "obs_u", "obs_v"], table)
    base = ["confint", linear["model"], "--points", linear["points"], "-q"]
    res = run(*base, "--train", renamed)
    assert res.exit_code == 2
    assert res.stderr.startswith("Error: ") and res.stderr.count("\n") == 1
    assert "no target column 'u', 'v'" in res.stderr and "--target" in res.stderr
    ok = run(*base, "--train", renamed, "--target", "obs_u", "--target", "obs_v")
    assert ok.exit_code == 0
    assert ok.stdout == run(*base, "--train", linear["train"]).stdout
    res = run(*base, "--train", renamed, "--target", "obs_u")
    assert res.exit_code == 2 and "--target given 1 time(s); the model has 2 outputs" in res.stderr


def test_headerless_and_stdin_training_files(linear):
    table = np.column_stack([linear["X"], linear["Y"]])
    plain = linear["dir"] / "plain.csv"
    np.savetxt(plain, table, delimiter=",", fmt="%.17g")
    base = ["confint", linear["model"], "--points", linear["points"], "-q"]
    ref = run(*base, "--train", linear["train"]).stdout
    assert run(*base, "--train", plain).stdout == ref
    assert run(*base, "--train", "-", input=plain.read_text()).stdout == ref
    bad = linear["dir"] / "three.csv"
    np.savetxt(bad, table[:, :3], delimiter=",")
    res = run(*base, "--train", bad)
    assert res.exit_code == 2 and "a training file holds the inputs and the targets" in res.stderr


@pytest.mark.parametrize("level", ["0", "1", "1.5", "-0.1", "nan"])
def test_level_outside_open_interval(linear, level):
    out = linear["dir"] / "ci.csv"
    res = run("confint", linear["model"], "--train", linear["train"], "--at", "0,0",
              "--level", level, "-o", out)
    assert res.exit_code == 2
    assert "Error: --level must lie strictly between 0 and 1" in res.stderr
    assert not out.exists()


def test_no_residual_degrees_of_freedom(linear, tmp_path):
    few = nets.write_csv(tmp_path / "few.csv", ["a", "b", "u", "v"],
                         np.column_stack([linear["X"], linear["Y"]])[:3])
    out = tmp_path / "ci.csv"
    res = run("confint", linear["model"], "--train", few, "--at", "0,0", "-o", out)
    assert res.exit_code == 2 and res.stderr.count("\n") == 1
    assert "no residual degrees of freedom: N_train = 3 training points <= rank" in res.stderr
    assert not out.exists()


def test_nonfinite_training_value(linear, tmp_path):
    table = np.column_stack([linear["X"], linear["Y"]])
    table[4, 2] = np.nan
    path = nets.write_csv(tmp_path / "nan.csv", ["a", "b", "u", "v"], table)
    res = run("confint", linear["model"], "--train", path, "--at", "0,0")
    assert res.exit_code == 2 and "point 5, column 3" in res.stderr


def test_rank_deficient_duplicate_hidden_units_warn(tmp_path):
    rng = np.random.default_rng(12)
    X = rng.uniform(-2, 2, size=(30, 1))
    theta = np.array([0.7, 0.7, 0.1, 0.1, 1.2, -0.4, 0.3])  # two identical hidden units
    y = nets.value(theta, X, 2)[:, 0] + 0.1 * rng.normal(size=30)
    model = nets.write_tanh_net(tmp_path, "dup", theta, 1, 2)
    train = nets.write_csv(tmp_path / "t.csv", ["x1", "y"], np.column_stack([X, y]))
    res = run("confint", model, "--train", train, "--at", "0.5")
    assert res.exit_code == 0, res.output
    assert "rank-deficient: rank 4 < q = 7" in res.stderr
    assert "dof = N_train - rank" in res.stderr and "26" in res.stderr
    _, rows = nets.read_csv(res.stdout)
    assert np.all(np.isfinite(rows))


def test_nonlinear_against_independent_delta_method(tmp_path):
    """The real loader and engine against finite differences of a hand-written net."""
    rng = np.random.default_rng(13)
    h = 3
    X = rng.uniform(-2, 2, size=(40, 2))
    theta0 = rng.normal(size=13)
    y = nets.value(theta0, X, h)[:, 0] + 0.05 * rng.normal(size=40)
    theta = nets.levenberg_marquardt(theta0, X, y, h)
    model = nets.write_tanh_net(tmp_path, "net", theta, 2, h,
                                input_scaling={"offset": [0.5, -0.5], "scale": [2.0, 1.0]})
    # The spec scales the inputs: the hand-written net sees (x - offset) / scale.
    Xraw = X * [2.0, 1.0] + [0.5, -0.5]
    train = nets.write_csv(tmp_path / "t.csv", ["x1", "x2", "y"], np.column_stack([Xraw, y]))
    Xq = rng.uniform(-2, 2, size=(5, 2))
    points = nets.write_csv(tmp_path / "p.csv", ["x1", "x2"], Xq * [2.0, 1.0] + [0.5, -0.5])
    res = run("confint", model, "--train", train, "--points", points, "--level", "0.99", "-q")
    assert res.exit_code == 0, res.output
    header, rows = nets.read_csv(res.stdout)

    def fd(points):
        return nets.finite_difference_param_jacobian(theta, points, h)

    resid = y - nets.value(theta, X, h)[:, 0]
    Z, z = fd(X), fd(Xq)
    dof = 40 - 13
    s2 = resid @ resid / dof
    quad = np.einsum("ij,jk,ik->i", z, np.linalg.inv(Z.T @ Z), z)
    t = stats.t.ppf(0.995, dof)
    f = nets.value(theta, Xq, h)[:, 0]
    np.testing.assert_allclose(rows[:, 0], f, rtol=1e-12)
    np.testing.assert_allclose(rows[:, 1], np.sqrt(s2 * quad), rtol=1e-6)
    np.testing.assert_allclose(rows[:, 5], f + t * np.sqrt(s2 * (1 + quad)), rtol=1e-8)


def test_multi_output_counts_only_each_outputs_parameters_any_layout(linear, tmp_path):
    """Output u's q excludes v's last-layer weights and bias (zero by construction)."""
    with np.load(linear["model"]) as data:
        W, b = data["W0"], data["b0"]
    model = nets.write_model(tmp_path, "lin_oi", {"W0": W.T, "b0": b},
                             {"inputs": ["a", "b"], "outputs": ["u", "v"], "layout": "out_in",
                              "layers": [{"units": 2, "activation": "linear"}]})
    args = ["--train", linear["train"], "--points", linear["points"]]
    res = run("confint", model, *args)
    assert res.exit_code == 0 and "warning" not in res.stderr
    assert res.stdout == run("confint", linear["model"], *args, "-q").stdout


def test_streamed_points_are_not_read_whole_for_a_csv_output(linear, monkeypatch):
    """The NPZ extras (x) are built only when an NPZ is written: a CSV output of an
    NPY points file reads the points a chunk at a time, never the whole array."""
    from jaccli.io import points as points_module

    np.save(linear["dir"] / "q.npy", linear["Xq"])

    def whole(self, dtype=None, copy=None):
        raise AssertionError("the whole points file was read")

    monkeypatch.setattr(points_module.NpyRows, "__array__", whole)
    base = ["confint", linear["model"], "--train", linear["train"], "--points",
            linear["dir"] / "q.npy", "-q", "--chunk-size", "2"]
    res = run(*base)
    assert res.exit_code == 0, res.output
    # chunks of 2 points against one chunk of all: the same numbers, not the same bytes
    nets.assert_same_table(res.stdout, run("confint", linear["model"], "--train", linear["train"],
                                           "--points", linear["points"], "-q").stdout)
    monkeypatch.undo()
    out = linear["dir"] / "ci.npz"
    assert run(*base, "-o", out).exit_code == 0
    np.testing.assert_array_equal(np.load(out)["x"], linear["Xq"])


def test_python_api_confint_matches_the_command(linear):
    import jaccli

    model = jaccli.load(linear["model"])
    cli_rows = nets.read_csv(run("confint", linear["model"], "--train", linear["train"],
                                 "--points", linear["points"], "--level", "0.9", "-q").stdout)[1]
    result = jaccli.confint(model, str(linear["train"]), linear["Xq"], level=0.9)
    assert result.intervals.shape == (6, 2, 6)
    assert result.columns[:2] == ["u", "u_se"]
    np.testing.assert_array_equal(result.table(), cli_rows)
    from_arrays = jaccli.confint(model, (linear["X"], linear["Y"]), linear["points"], level=0.9)
    np.testing.assert_allclose(from_arrays.table(), cli_rows, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(result["v_upper"], result.intervals[:, 1, 3])
    assert [st.rank for st in result.fit.stats] == [3, 3]
    with pytest.raises(jaccli.JaccliError, match="no target column 'u', 'v'"):
        renamed = nets.write_csv(linear["dir"] / "obs.csv", ["a", "b", "p", "q"],
                                 np.column_stack([linear["X"], linear["Y"]]))
        jaccli.confint(model, str(renamed), linear["Xq"])
    ok = jaccli.confint(model, str(renamed), linear["Xq"], level=0.9, targets=["p", "q"])
    np.testing.assert_array_equal(ok.table(), cli_rows)
