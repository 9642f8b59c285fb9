"""`jaccli check` through the command line (click.testing.CliRunner)."""

import dataclasses

import numpy as np
import pytest
from click.testing import CliRunner

from jaccli.engine import activations
from jaccli.cli import cli

from . import nets


def run(*args, input=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


@pytest.fixture
def tanh_model(tmp_path):
    rng = np.random.default_rng(21)
    theta = rng.normal(size=2 * 4 + 4 + 4 * 2 + 2)
    model = nets.write_tanh_net(tmp_path, "net", theta, 2, 4, m=2)
    X = rng.uniform(-2, 2, size=(12, 2))
    points = nets.write_csv(tmp_path / "p.csv", ["x1", "x2"], X)
    return dict(model=model, points=points, theta=theta, X=X, dir=tmp_path)


def table(res):
    header, rows = res.stdout.splitlines()[0].split(","), [r.split(",") for r in res.stdout.splitlines()[1:]]
    return [dict(zip(header, r)) for r in rows]


def test_passes_on_a_correct_model(tanh_model):
    res = run("check", tanh_model["model"], "--points", tanh_model["points"])
    assert res.exit_code == 0, res.output
    rows = table(res)
    assert [(r["quantity"], r["method"]) for r in rows] == [
        (q, m) for q in ("jacobian", "hessdiag", "params") for m in ("analytic", "central", "richardson")]
    for r in rows:
        if r["method"] == "richardson":
            assert r["status"] == "PASS" and float(r["max_rel_error"]) < 1e-8
    for text in ("max abs err", "richardson", "PASS", "tolerance"):
        assert text in res.stderr


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "elu", "softplus", "sigmoid", "gelu"])
def test_passes_on_other_activations_including_kinks(tmp_path, activation):
    rng = np.random.default_rng(22)
    model = nets.write_tanh_net(tmp_path, "net", rng.normal(size=3 * 16 + 16 + 16 + 1), 3, 16,
                                activation=activation)
    points = nets.write_csv(tmp_path / "p.csv", ["x1", "x2", "x3"], rng.normal(size=(40, 3)))
    res = run("check", model, "--points", points, "-q")
    assert res.exit_code == 0, res.stdout


def test_a_wrong_derivative_in_the_engine_fails(tanh_model, monkeypatch):
    def wrong_tanh(z):
        t = np.tanh(z)
        return t, (1.0 - t * t) * 1.001, -2.0 * t * (1.0 - t * t)

    monkeypatch.setitem(activations.ACTIVATIONS, "tanh", activations.Activation("tanh", wrong_tanh))
    out = tanh_model["dir"] / "report.csv"
    res = run("check", tanh_model["model"], "--points", tanh_model["points"], "-o", out)
    assert res.exit_code == 1
    status = {r["quantity"]: r["status"] for r in table(type("R", (), {"stdout": out.read_text()}))
              if r["method"] == "richardson"}
    assert status == {"jacobian": "FAIL", "hessdiag": "PASS", "params": "FAIL"}
    assert "FAIL jacobian" in res.stderr and "worst at point" in res.stderr
    # A tolerance wider than the bug lets it through.
    assert run("check", tanh_model["model"], "--points", tanh_model["points"], "--tol", "0.01").exit_code == 0


def reference_file(tanh_model, values):
    return nets.write_csv(tanh_model["dir"] / "ref.csv", ["x1", "x2", "y1", "y2"],
                          np.column_stack([tanh_model["X"], values]))


def test_wrong_spec_transposed_square_kernel_fails(tmp_path):
    """The spec says in_out but the square hidden kernel was stored (out, in)."""
    rng = np.random.default_rng(23)
    W0, b0 = rng.normal(size=(3, 3)), rng.normal(size=3)
    W1, b1 = rng.normal(size=(3, 1)), rng.normal(size=1)
    X = rng.normal(size=(10, 3))
    truth = np.tanh(X @ W0 + b0) @ W1 + b1  # what the training framework computes
    spec = {"inputs": ["x1", "x2", "x3"], "outputs": ["y"],
            "layers": [{"units": 3, "activation": "tanh"}, {"units": 1, "activation": "linear"}]}
    model = nets.write_model(tmp_path, "bad", {"W0": W0.T, "b0": b0, "W1": W1, "b1": b1}, spec)
    points = nets.write_csv(tmp_path / "ref.csv", ["x1", "x2", "x3", "y"], np.column_stack([X, truth]))
    res = run("check", model, "--points", points)
    assert res.exit_code == 1
    rows = {(r["quantity"], r["method"]): r for r in table(res)}
    assert rows[("value", "reference")]["status"] == "FAIL"
    assert rows[("jacobian", "richardson")]["status"] == "PASS"  # consistent, but of the wrong function
    assert "FAIL value" in res.stderr and "reference" in res.stderr
    good = nets.write_model(tmp_path, "good", {"W0": W0, "b0": b0, "W1": W1, "b1": b1}, spec)
    assert run("check", good, "--points", points, "-q").exit_code == 0


def test_wrong_spec_activation_fails(tanh_model):
    truth = nets.value(tanh_model["theta"], tanh_model["X"], 4, 2)
    points = reference_file(tanh_model, truth)
    assert run("check", tanh_model["model"], "--points", points, "-q").exit_code == 0
    wrong = nets.write_tanh_net(tanh_model["dir"], "sig", tanh_model["theta"], 2, 4, m=2,
                                activation="sigmoid")
    res = run("check", wrong, "--points", points, "--what", "value")
    assert res.exit_code == 1 and "FAIL value" in res.stderr


def test_value_tol(tanh_model):
    truth = nets.value(tanh_model["theta"], tanh_model["X"], 4, 2)
    points = reference_file(tanh_model, truth * (1 + 1e-7))  # e.g. a float32 framework
    assert run("check", tanh_model["model"], "--points", points, "--what", "value").exit_code == 0
    res = run("check", tanh_model["model"], "--points", points, "--what", "value", "--value-tol", "1e-9")
    assert res.exit_code == 1


def test_what_option(tanh_model):
    res = run("check", tanh_model["model"], "--points", tanh_model["points"], "--what", "hessdiag,params")
    assert res.exit_code == 0
    assert {r["quantity"] for r in table(res)} == {"hessdiag", "params"}
    res = run("check", tanh_model["model"], "--points", tanh_model["points"], "--what", "jacobain")
    assert res.exit_code == 2 and "unknown quantity jacobain" in res.stderr
    res = run("check", tanh_model["model"], "--points", tanh_model["points"], "--what", "value")
    assert res.exit_code == 2 and "--what value needs reference outputs" in res.stderr


def test_output_format_quiet_at_chunk_dtype_spec(tanh_model, tmp_path):
    base = ["check", tanh_model["model"]]
    res = run(*base, "--at", "0.3,-0.2", "--quiet")
    assert res.exit_code == 0 and res.stderr == ""
    out = tmp_path / "r.txt"
    assert run(*base, "--at", "0.3,-0.2", "-o", out, "--format", "tsv", "-q").exit_code == 0
    assert out.read_text().startswith("quantity\tmethod\t")
    res = run(*base, "--at", "0.3,-0.2", "-o", tmp_path / "r.npy")
    assert res.exit_code == 2 and "use .csv, .tsv/.txt, .jsonl/.ndjson or .json" in res.stderr
    assert run(*base, "--points", tanh_model["points"], "--chunk-size", "3", "-q").exit_code == 0
    res = run(*base, "--points", tanh_model["points"], "--dtype", "float32")
    assert res.exit_code == 0, res.output
    assert "analytic in float32, finite differences in float64" in res.stderr
    spec = tmp_path / "s.yaml"
    spec.write_text((tanh_model["dir"] / "net.yaml").read_text())
    assert run(*base, "--spec", spec, "--at", "0,0", "-q").exit_code == 0


def test_python_api_check_returns_a_report(tmp_path):
    import jaccli
    from conftest import random_model, save_model

    rng = np.random.default_rng(4)
    spec, tensors = random_model(rng, [2, 5, 1], ["tanh", "linear"])
    model = jaccli.load(save_model(tmp_path, spec, tensors))
    x = rng.normal(size=(4, 2))
    report = jaccli.check(model, x)
    assert report.passed and report.failures == []
    assert [(r["quantity"], r["method"]) for r in report.rows][:3] == [
        ("jacobian", "analytic"), ("jacobian", "central"), ("jacobian", "richardson")]
    assert report.columns[0] == "quantity" and report.n_points == 4
    wrong = model.value(x) + 1.0
    bad = jaccli.check(model, x, what="value", reference=wrong)
    assert not bad.passed and bad.failures[0][0] == "value"
    with pytest.raises(jaccli.JaccliError, match="^what value needs reference outputs"):
        jaccli.check(model, x, what=["value"])


def relu_net(directory, seed, n_points, gain=1.0, half_width=1.0):
    """A random relu 8-64-64-1 network (weights N(0, gain^2 / fan-in)) and points
    uniform in [-half_width, half_width]^8."""
    rng = np.random.default_rng(seed)
    widths, arrays, layers = [8, 64, 64, 1], {}, []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        arrays[f"W{i}"] = rng.normal(size=(a, b)) * (gain / np.sqrt(a))
        arrays[f"b{i}"] = rng.normal(size=b) * 0.1
        layers.append({"units": b, "activation": "relu" if i < 2 else "linear"})
    model = nets.write_model(directory, "relu", arrays, {"inputs": 8, "outputs": 1, "layers": layers})
    X = rng.uniform(-half_width, half_width, size=(n_points, 8))
    return model, nets.write_csv(directory / "p.csv", [f"x{i + 1}" for i in range(8)], X)


def test_a_correct_relu_net_passes_with_kink_crossings_skipped(tmp_path, monkeypatch):
    model, points = relu_net(tmp_path, 2, 300)
    res = run("check", model, "--points", points, "--what", "jacobian,hessdiag")
    assert res.exit_code == 0, res.output
    rows = {(r["quantity"], r["method"]): r for r in table(res)}
    skipped = int(rows[("hessdiag", "richardson")]["n_skipped"])
    assert skipped > 0 and rows[("hessdiag", "richardson")]["n_checked"] == str(300 * 8)
    assert f"skipped: {skipped} element(s) whose difference stencil crosses a kink" in res.stderr

    def wrong_relu(z):  # a derivative rule 0.1% off
        return np.maximum(z, 0.0), (z > 0) * 1.001, np.zeros_like(z)

    monkeypatch.setitem(activations.ACTIVATIONS, "relu",
                        dataclasses.replace(activations.ACTIVATIONS["relu"], rule=wrong_relu))
    res = run("check", model, "--points", points, "--what", "jacobian,hessdiag")
    assert res.exit_code == 1
    assert "FAIL jacobian" in res.stderr


def issue_relu_net(directory, seed):
    """The issue's net: 8-64-64-1 ReLU, He-scaled, 1,000 points uniform in [-2, 2]."""
    return relu_net(directory, seed, 1000, gain=np.sqrt(2.0), half_width=2.0)


# Seeds whose net FAILed before the rounding floor (hessdiag exactly 0, differences ~1e-11).
@pytest.mark.parametrize("seed", [0, 1, 2, 5])
def test_a_correct_relu_net_passes_and_shows_no_infinite_relative_error(tmp_path, seed):
    model, points = issue_relu_net(tmp_path, seed)
    res = run("check", model, "--points", points, "--what", "jacobian,hessdiag")
    assert res.exit_code == 0, res.stderr
    rows = {(r["quantity"], r["method"]): r for r in table(res)}
    assert rows[("hessdiag", "richardson")]["status"] == "PASS"
    assert rows[("hessdiag", "richardson")]["max_rel_error"] == ""  # none: the derivative is 0
    assert "inf" not in res.stderr
    hessdiag_row = next(line for line in res.stderr.splitlines()
                        if "hessdiag" in line and "richardson" in line)
    assert " - " in hessdiag_row and "PASS" in hessdiag_row
    assert "max rel err -: the analytic derivative is exactly 0 everywhere" in res.stderr


@pytest.mark.parametrize("curvature", [1e-3, 1e-6])
def test_a_wrong_second_derivative_of_relu_still_fails(tmp_path, monkeypatch, curvature):
    """relu'' = curvature on the positive side: a small wrong Hessian is not noise."""
    def wrong_relu(z):
        positive = z > 0
        return np.where(positive, z, 0.0), positive.astype(z.dtype), curvature * positive

    monkeypatch.setitem(activations.ACTIVATIONS, "relu",
                        dataclasses.replace(activations.ACTIVATIONS["relu"], rule=wrong_relu))
    model, points = issue_relu_net(tmp_path, 0)
    res = run("check", model, "--points", points, "--what", "hessdiag")
    assert res.exit_code == 1
    assert "FAIL hessdiag" in res.stderr


def test_params_are_sampled_by_default_and_all_on_request(tmp_path):
    model, points = relu_net(tmp_path, 3, 1000)
    res = run("check", model, "--points", points, "--what", "params")
    assert res.exit_code == 0, res.output
    assert ("params: a seeded sample of 64 of 1,000 points and 128 of 4,801 parameters "
            "(--all for every one)") in res.stderr
    (row,) = [r for r in table(res) if r["method"] == "richardson"]
    assert row["n_checked"] == str(64 * 128)
    assert run("check", model, "--points", points, "--what", "params", "-q").stdout == res.stdout


def test_check_all_checks_every_parameter(tanh_model):
    res = run("check", tanh_model["model"], "--points", tanh_model["points"], "--what", "params",
              "--all")
    assert res.exit_code == 0, res.output
    (row,) = [r for r in table(res) if r["method"] == "richardson"]
    assert row["n_checked"] == str(12 * 2 * 22)  # N x m x P
    assert "seeded sample" not in res.stderr


def test_check_output_is_reproducible_and_says_only_what_was_checked(tanh_model):
    args = ["check", tanh_model["model"], "--points", tanh_model["points"]]
    first, second = run(*args), run(*args)
    assert first.exit_code == second.exit_code == 0
    assert first.stdout == second.stdout
    assert "seconds" not in first.stdout.splitlines()[0]
    assert "time (s)" in first.stderr  # the timings are in the summary
    assert "tolerance:" in first.stderr and "value:" not in first.stderr
    truth = nets.value(tanh_model["theta"], tanh_model["X"], 4, 2)
    res = run("check", tanh_model["model"], "--points", reference_file(tanh_model, truth))
    assert res.exit_code == 0 and "value: 1e-05 x largest |reference|" in res.stderr
