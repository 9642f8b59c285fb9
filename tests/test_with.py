"""Several quantities in one pass: ``model.value_and_jacobian``,
``model.compute_together`` and the computing commands' ``--with``, each
against the independent oracle (tests/oracle.py)."""

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jaccli
import oracle
from conftest import random_model, save_model
from jaccli.cli import cli

RTOL_FIRST = 1e-9
RTOL_SECOND = 1e-7
ORACLES = {
    "value": lambda spec, tensors, x: oracle.forward(spec, tensors, x).real,
    "jacobian": oracle.jacobian,
    "hessdiag": lambda spec, tensors, x: np.diagonal(oracle.hessian(spec, tensors, x), axis1=-2, axis2=-1),
    "laplacian": lambda spec, tensors, x: np.trace(oracle.hessian(spec, tensors, x), axis1=-2, axis2=-1),
    "hessian": oracle.hessian,
}
TOLERANCES = {"value": 1e-12, "jacobian": RTOL_FIRST, "hessdiag": RTOL_SECOND,
              "laplacian": RTOL_SECOND, "hessian": RTOL_SECOND}


def close(actual, expected, rtol):
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=rtol * scale)


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


# widths chosen so both the reverse (m < n) and the forward (m >= n) Jacobian, and
# both second-order paths (tangents + adjoint when m <= n, Taylor mode otherwise), are used
NETS = [([3, 7, 5, 2], ["tanh", "sigmoid", "linear"]),
        ([2, 6, 3], ["gelu", "tanh"]),
        ([2, 5, 4], ["tanh", "linear"]),
        ([3, 4, 3], ["sin", "softmax"]),
        ([4, 6, 6, 1], ["softplus", "tanh", "exp"])]


@pytest.mark.parametrize("widths,activations", NETS)
@pytest.mark.parametrize("scaling", [False, True])
def test_together_against_the_oracle(tmp_path, widths, activations, scaling):
    rng = np.random.default_rng(len(widths) * 10 + widths[0])
    spec, tensors = random_model(rng, widths, activations, scaling=scaling)
    model = jaccli.load(save_model(tmp_path, spec, tensors))
    x = rng.normal(size=(9, widths[0]))
    names = ["value", "jacobian", "hessdiag", "laplacian", "hessian"]
    together = model.compute_together(names, x, chunk_size=4)
    assert list(together) == names
    for name in names:
        close(together[name], ORACLES[name](spec, tensors, x), TOLERANCES[name])
        np.testing.assert_allclose(together[name], model.compute(name, x), rtol=1e-12, atol=1e-14)
    for pair in (["value", "jacobian"], ["jacobian", "laplacian"], ["value", "hessdiag"]):
        part = model.compute_together(pair, x)
        for name in pair:
            np.testing.assert_allclose(part[name], together[name], rtol=1e-12, atol=1e-14)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(1, 4), st.integers(1, 6), st.integers(1, 3),
       st.sampled_from(["tanh", "sigmoid", "gelu", "silu", "sin"]), st.integers(0, 2 ** 31 - 1))
def test_value_and_jacobian_any_shape(tmp_path, n, h, m, activation, seed):
    rng = np.random.default_rng(seed)
    spec, tensors = random_model(rng, [n, h, m], [activation, "linear"], scaling=bool(seed % 2))
    model = jaccli.load(save_model(tmp_path, spec, tensors, stem=f"m{seed}"))
    x = rng.normal(size=(5, n))
    values, jac = model.value_and_jacobian(x)
    close(values, oracle.forward(spec, tensors, x).real, 1e-12)
    close(jac, oracle.jacobian(spec, tensors, x), RTOL_FIRST)
    one_values, one_jac = model.value_and_jacobian(x[0])  # one point, shape (n,)
    assert one_values.shape == (1, m) and one_jac.shape == (1, m, n)


def test_value_and_jacobian_float32(canonical_path):
    model = jaccli.load(canonical_path, dtype="float32")
    values, jac = model.value_and_jacobian(np.ones((3, 2)))
    assert values.dtype == jac.dtype == np.float32
    np.testing.assert_allclose(jac[0, 0], [0.0903533] * 2, atol=1e-6)


def test_together_refuses_unknown_quantities(canonical_path):
    model = jaccli.load(canonical_path)
    with pytest.raises(jaccli.JaccliError, match="unknown quantity 'speed'"):
        model.compute_together(["value", "speed"], np.ones((1, 2)))


# ---------------------------------------------------------------- the CLI


def tanh_net(tmp_path):
    rng = np.random.default_rng(3)
    spec, tensors = random_model(rng, [3, 6, 2], ["tanh", "linear"])
    spec["inputs"] = ["a", "b", "c"]
    spec["outputs"] = ["u", "v"]
    x = rng.normal(size=(7, 3))
    points = tmp_path / "p.csv"
    points.write_text("a,b,c\n" + "".join(",".join(map(repr, row)) + "\n" for row in x.tolist()))
    return save_model(tmp_path, spec, tensors), spec, tensors, x, points


def csv_table(text):
    lines = text.strip().splitlines()
    return lines[0].split(","), np.array([[float(c) for c in line.split(",")] for line in lines[1:]])


def test_with_csv_columns_come_first(tmp_path):
    model, spec, tensors, x, points = tanh_net(tmp_path)
    result = run("hessdiag", model, "-p", points, "--with", "value,jacobian", "-q")
    assert result.exit_code == 0, result.stderr
    header, table = csv_table(result.stdout)
    assert header == (["u", "v"] + [f"d{y}/d{x}" for y in "uv" for x in "abc"]
                      + [f"d2{y}/d{x}2" for y in "uv" for x in "abc"])
    close(table[:, :2], ORACLES["value"](spec, tensors, x), 1e-12)
    close(table[:, 2:8], oracle.jacobian(spec, tensors, x).reshape(7, -1), RTOL_FIRST)
    close(table[:, 8:], ORACLES["hessdiag"](spec, tensors, x).reshape(7, -1), RTOL_SECOND)


@pytest.mark.parametrize("command,with_", [("value", "jacobian"), ("jacobian", "value"),
                                           ("laplacian", "hessdiag,value"),
                                           ("hessian", "laplacian"), ("value", "laplacian,jacobian")])
def test_with_npz_holds_each_array_by_name(tmp_path, command, with_):
    model, spec, tensors, x, points = tanh_net(tmp_path)
    out = tmp_path / "out.npz"
    result = run(command, model, "-p", points, "--with", with_, "-o", out, "-q")
    assert result.exit_code == 0, result.stderr
    archive = np.load(out)
    for name in with_.split(",") + [command]:
        close(archive[name], ORACLES[name](spec, tensors, x), TOLERANCES[name])
    np.testing.assert_array_equal(archive["x"], x)


def test_with_the_commands_own_quantity_is_not_repeated(tmp_path):
    model, _, _, _, points = tanh_net(tmp_path)
    alone = run("value", model, "-p", points, "-q").stdout
    assert run("value", model, "-p", points, "--with", "value", "-q").stdout == alone


def test_with_parameter_jacobian(tmp_path):
    model, spec, tensors, x, points = tanh_net(tmp_path)
    out = tmp_path / "out.npz"
    assert run("jacobian", model, "-p", points, "--wrt", "params", "--with", "value", "-o", out,
               "-q").exit_code == 0
    archive = np.load(out)
    close(archive["value"], ORACLES["value"](spec, tensors, x), 1e-12)
    close(archive["param_jacobian"], oracle.param_jacobian(spec, tensors, x), RTOL_FIRST)


def test_with_npy_is_refused_in_one_line(tmp_path):
    model, _, _, _, points = tanh_net(tmp_path)
    out = tmp_path / "out.npy"
    result = run("jacobian", model, "-p", points, "--with", "value", "-o", out)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "Error:" in result.stderr
    assert "NPY holds one array" in result.stderr
    assert not out.exists()


@pytest.mark.parametrize("bad", ["speed", "value,", "hessian", "param_jacobian"])
def test_with_unknown_quantity_is_a_usage_error(tmp_path, bad):
    model, _, _, _, points = tanh_net(tmp_path)
    result = run("value", model, "-p", points, "--with", bad)
    assert result.exit_code == 2
    assert result.stderr.startswith("Error:") and result.stderr.count("\n") == 1


def test_with_zarr_holds_each_array_by_name(tmp_path):
    zarr = pytest.importorskip("zarr")
    model, spec, tensors, x, points = tanh_net(tmp_path)
    out = tmp_path / "out.zarr"
    assert run("hessdiag", model, "-p", points, "--with", "value,jacobian", "-o", out,
               "-q").exit_code == 0
    store = zarr.open_group(str(out), mode="r")
    for name in ("value", "jacobian", "hessdiag"):
        close(store[name][:], ORACLES[name](spec, tensors, x), TOLERANCES[name])
