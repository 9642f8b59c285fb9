"""Every derivative against an independent oracle (tests/oracle.py) or a closed form."""

import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import jaccli
import oracle
from conftest import SMOOTH, random_model, save_model
from jaccli.engine import sweeps as engine

RTOL_FIRST = 1e-9  # complex step is exact to rounding
RTOL_SECOND = 1e-7  # Richardson-extrapolated differences of complex-step derivatives


def close(actual, expected, rtol):
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=rtol * scale)


# ---------------------------------------------------------------- published and closed forms


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def test_canonical_example_published_value(canonical_path):
    """2-2-1 sigmoid net, weights 1, biases 1, output [1, 1]: dy/dx at [1, 1] = 0.0903533."""
    model = jaccli.load(canonical_path)
    jac = model.jacobian([1.0, 1.0])
    assert jac.shape == (1, 1, 2)
    np.testing.assert_allclose(jac[0, 0], [0.0903533, 0.0903533], atol=5e-8)
    s = sigmoid(3.0)  # z = 1 + 1 + 1 in both hidden units
    np.testing.assert_allclose(jac[0, 0], [2 * s * (1 - s)] * 2, rtol=1e-13)


def test_canonical_second_derivatives_closed_form(canonical_path):
    """d2y/dx_j2 = 2 s''(3) = 2 s(1-s)(1-2s), and NOT the first derivative applied twice."""
    model = jaccli.load(canonical_path)
    s = sigmoid(3.0)
    expected = 2 * s * (1 - s) * (1 - 2 * s)
    np.testing.assert_allclose(model.hessdiag([1.0, 1.0])[0, 0], [expected] * 2, rtol=1e-13)
    np.testing.assert_allclose(model.hessian([1.0, 1.0])[0, 0], np.full((2, 2), expected), rtol=1e-13)
    np.testing.assert_allclose(model.laplacian([1.0, 1.0])[0], [2 * expected], rtol=1e-13)
    wrong = 2 * (s * (1 - s)) * (1 - s * (1 - s))  # "s' applied twice", a common mistake
    assert abs(expected - wrong) > 0.1


def test_sigmoid_2221_closed_form():
    import os

    from conftest import SAMPLES

    model = jaccli.load(os.path.join(SAMPLES, "sigmoid_2221.h5"))
    x = np.array([[1.0, 1.0], [0.3, -0.7]])
    h1 = sigmoid(x.sum(axis=1) + 1)  # both first-layer units are equal
    z2 = 2 * h1 + 1
    s2 = sigmoid(z2)
    # y = 2 s(z2), z2 = 2 s(z1) + 1, z1 = x1 + x2 + 1: the chain rule by hand
    dy = 2 * s2 * (1 - s2) * 2 * h1 * (1 - h1)
    np.testing.assert_allclose(model.jacobian(x)[:, 0, :], np.stack([dy, dy], 1), rtol=1e-13)
    dz2 = 2 * h1 * (1 - h1)
    d2z2 = 2 * h1 * (1 - h1) * (1 - 2 * h1)
    d2y = 2 * (s2 * (1 - s2) * (1 - 2 * s2) * dz2 ** 2 + s2 * (1 - s2) * d2z2)
    np.testing.assert_allclose(model.hessdiag(x)[:, 0, :], np.stack([d2y, d2y], 1), rtol=1e-13)


# ---------------------------------------------------------------- every activation vs the oracle


def matches_oracle(model, spec, tensors, x):
    """Every quantity of ``model`` at x against the oracle; both Jacobian sweeps agree."""
    close(model.value(x), oracle.forward(spec, tensors, x).real, 1e-13)
    close(model.jacobian(x), oracle.jacobian(spec, tensors, x), RTOL_FIRST)
    close(engine.jacobian_forward(model.network, x), engine.jacobian_reverse(model.network, x), 1e-13)
    close(model.param_jacobian(x), oracle.param_jacobian(spec, tensors, x), RTOL_FIRST)
    hess = oracle.hessian(spec, tensors, x)
    close(model.hessian(x), hess, RTOL_SECOND)
    close(model.hessdiag(x), np.diagonal(hess, axis1=2, axis2=3), RTOL_SECOND)
    close(model.laplacian(x), np.trace(hess, axis1=2, axis2=3), RTOL_SECOND)


@pytest.mark.parametrize("activation", SMOOTH)
@pytest.mark.parametrize("last", ["linear", "tanh", "softmax", "log_softmax"])
def test_all_quantities_against_oracle(tmp_path, activation, last):
    rng = np.random.default_rng(zlib.crc32(f"{activation}-{last}".encode()))
    spec, tensors = random_model(rng, [3, 5, 4, 3], [activation, activation, last], scaling=True)
    model = jaccli.load(save_model(tmp_path, spec, tensors))
    x = oracle.away_from_kinks(spec, tensors, rng.normal(size=(12, 3)))
    matches_oracle(model, spec, tensors, x)


@pytest.mark.parametrize("activations", [["softmax", "tanh", "linear"], ["tanh", "softmax", "softmax"],
                                         ["softmax", "softmax", "sigmoid"], ["tanh", "tanh", "log_softmax"],
                                         ["log_softmax", "softmax", "log_softmax"]])
@pytest.mark.parametrize("widths", [[3, 5, 4, 2], [2, 5, 4, 3]])
def test_vector_activations_on_any_layer_against_oracle(tmp_path, activations, widths):
    """Softmax and log_softmax anywhere: m < n and m > n (the tangent-adjoint and the Taylor paths)."""
    rng = np.random.default_rng(zlib.crc32(f"{activations}-{widths}".encode()))
    spec, tensors = random_model(rng, widths, activations, scaling=True)
    model = jaccli.load(save_model(tmp_path, spec, tensors))
    x = rng.normal(size=(9, widths[0]))
    matches_oracle(model, spec, tensors, x)
    together = model.compute_together(["value", "jacobian", "hessdiag", "hessian"], x)
    close(together["hessian"], model.hessian(x), 1e-13)
    close(together["hessdiag"], model.hessdiag(x), 1e-13)


def layer_norm_model(rng, n_in, width, n_out, gamma=True, beta=True, after="relu", eps=1e-5):
    """x -> Linear -> layer_norm -> (gamma, beta: a diagonal layer) -> after -> Linear."""
    tensors = {"W0": rng.normal(size=(n_in, width)), "b0": rng.normal(size=width),
               "W2": rng.normal(size=(width, n_out)), "b2": rng.normal(size=n_out)}
    diagonal = {"units": width, "layout": "diagonal", "activation": after, "weight": None, "bias": None}
    if gamma:
        tensors["g"] = rng.uniform(0.5, 1.5, size=width) * rng.choice([-1, 1], size=width)
        diagonal["weight"] = "g"
    if beta:
        tensors["be"] = rng.normal(size=width)
        diagonal["bias"] = "be"
    spec = {"layers": [{"units": width, "activation": "layer_norm", "eps": eps}, diagonal,
                       {"units": n_out, "weight": "W2", "bias": "b2"}],
            "input_scaling": {"offset": [0.5] * n_in, "scale": [2.0] * n_in}}
    return spec, tensors


@pytest.mark.parametrize("affine", [(True, True), (True, False), (False, True), (False, False)])
@pytest.mark.parametrize("shape", [(4, 5, 2), (2, 5, 3)])
def test_layer_norm_against_oracle(tmp_path, affine, shape):
    """layer_norm then its affine as a diagonal layer: gamma's columns are its d elements."""
    rng = np.random.default_rng(zlib.crc32(f"{affine}-{shape}".encode()))
    spec, tensors = layer_norm_model(rng, *shape, *affine, after="tanh", eps=1e-3)
    model = jaccli.load(save_model(tmp_path, spec, tensors))
    assert [name for name, _ in model.parameters] == oracle.parameter_names(spec)
    assert dict(model.parameters).get("g", (shape[1],)) == (shape[1],)
    x = rng.normal(size=(9, shape[0]))
    matches_oracle(model, spec, tensors, x)


def test_kinks_take_the_left_derivative(tmp_path):
    """relu and leaky_relu at exactly 0: the left derivative, second derivative 0."""
    tensors = {"W0": np.eye(2), "b0": np.zeros(2), "W1": np.ones((2, 1)), "b1": np.zeros(1)}
    for activation, slope in [("relu", 0.0), ("leaky_relu", 0.01)]:
        spec = {"layers": [{"units": 2, "activation": activation}, {"units": 1}]}
        model = jaccli.load(save_model(tmp_path, spec, tensors, stem=activation))
        np.testing.assert_array_equal(model.jacobian([0.0, 1.0])[0, 0], [slope, 1.0])
        np.testing.assert_array_equal(model.hessdiag([0.0, 1.0])[0, 0], [0.0, 0.0])


# ---------------------------------------------------------------- property tests


architectures = st.fixed_dictionaries({
    "widths": st.lists(st.integers(1, 5), min_size=2, max_size=5),
    "activations": st.lists(st.sampled_from(SMOOTH + ["softmax", "log_softmax"]), min_size=4, max_size=4),
    "last": st.sampled_from(["linear", "sigmoid", "softmax", "log_softmax", "tanh", "exp"]),
    "layout": st.sampled_from(["in_out", "out_in"]),
    "scaling": st.booleans(),
    "biases": st.lists(st.booleans(), min_size=4, max_size=4),
    "seed": st.integers(0, 2 ** 32 - 1),
    "n_points": st.integers(1, 6),
    "fmt": st.sampled_from(["npz", "h5"]),
})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(arch=architectures)
def test_random_architectures_against_oracle(tmp_path, arch):
    rng = np.random.default_rng(arch["seed"])
    widths = arch["widths"]
    n_layers = len(widths) - 1
    activations = arch["activations"][:n_layers - 1] + [arch["last"]]
    if arch["last"] == "softmax" and widths[-1] == 1:
        activations[-1] = "linear"
    spec, tensors = random_model(rng, widths, activations, arch["layout"],
                                 arch["biases"][:n_layers], arch["scaling"], names=True)
    model = jaccli.load(save_model(tmp_path, spec, tensors, arch["fmt"]))
    x = rng.normal(size=(arch["n_points"], widths[0])) * 1.5
    x = oracle.away_from_kinks(spec, tensors, x)
    if len(x) == 0:
        return
    expected = oracle.forward(spec, tensors, x).real
    assume(np.isfinite(expected).all())  # exp of exp overflows the oracle's own arithmetic
    close(model.value(x), expected, 1e-12)
    close(model.jacobian(x), oracle.jacobian(spec, tensors, x), RTOL_FIRST)
    close(model.param_jacobian(x), oracle.param_jacobian(spec, tensors, x), RTOL_FIRST)
    hess = oracle.hessian(spec, tensors, x)
    # The oracle's differences resolve a strongly curved net (exp of exp) only to their
    # own truncation error: allow ten times its change when the steps are halved.
    resolved = 10 * float(np.abs(hess - oracle.hessian(spec, tensors, x, oracle.H_SECOND / 2)).max())
    rtol_hess = max(RTOL_SECOND, resolved / max(1.0, float(np.abs(hess).max())))
    close(model.hessian(x), hess, rtol_hess)
    hd = model.hessdiag(x)
    close(hd, np.diagonal(hess, axis1=2, axis2=3), rtol_hess)
    # the Taylor-mode diagonal and the adjoint-mode full Hessian are separate code paths; both
    # contract the curvature of the last layer's pre-activation z_L (large when exp follows
    # exp), and agree to rounding of that: 1e-12 of |d2 z_L/dx2|
    inner = {**spec, "layers": spec["layers"][:-1] + [{**spec["layers"][-1], "activation": "linear"}]}
    curvature = np.abs(jaccli.load(save_model(tmp_path, inner, tensors, stem="inner")).hessian(x)).max()
    close(hd, np.diagonal(model.hessian(x), axis1=2, axis2=3), 1e-12 * max(1.0, curvature))
    close(model.laplacian(x), hd.sum(axis=-1), 1e-12)
    # forward and reverse mode agree whichever the engine picks
    close(engine.jacobian_forward(model.network, x), engine.jacobian_reverse(model.network, x), 1e-12)
    assert [name for name, _ in model.parameters] == oracle.parameter_names(spec)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), activation=st.sampled_from(["tanh", "gelu", "softplus", "sin"]))
def test_parameter_jacobian_predicts_parameter_steps(seed, activation):
    """f(theta + d) - f(theta) = J d + O(|d|^2): a first-order Taylor check."""
    rng = np.random.default_rng(seed)
    spec, tensors = random_model(rng, [2, 6, 5, 2], [activation, activation, "linear"])
    from jaccli.model import build_model
    from jaccli.formats.spec import parse_spec
    from jaccli.formats.tensors import TensorStore

    model = build_model(parse_spec(spec, "spec"), TensorStore("mem", tensors.get, list(tensors)))
    x = rng.normal(size=(4, 2))
    theta = model.parameter_vector()
    direction = rng.normal(size=theta.shape)
    direction /= np.linalg.norm(direction)
    predicted = model.param_jacobian(x) @ direction
    errors = []
    for eps in (1e-3, 1e-4):
        actual = (model.with_parameters(theta + eps * direction).value(x) - model.value(x)) / eps
        errors.append(np.abs(actual - predicted).max())
    assert errors[1] < 1e-4 * max(1.0, np.abs(predicted).max())
    assert errors[1] < errors[0] / 5 or errors[1] < 1e-9  # the remainder is O(eps)


# ---------------------------------------------------------------- dtype and chunking


def test_float32_matches_float64(tmp_path):
    rng = np.random.default_rng(3)
    spec, tensors = random_model(rng, [3, 8, 2], ["tanh", "linear"])
    path = save_model(tmp_path, spec, tensors)
    x = rng.normal(size=(10, 3))
    m64, m32 = jaccli.load(path), jaccli.load(path, dtype="float32")
    for name in ["value", "jacobian", "hessdiag", "hessian", "laplacian", "param_jacobian"]:
        single = getattr(m32, name)(x)
        assert single.dtype == np.float32
        close(single, getattr(m64, name)(x), 1e-5)


@pytest.mark.parametrize("chunk", [1, 3, 1000])
def test_chunk_sizes_give_the_same_result(tmp_path, chunk):
    rng = np.random.default_rng(4)
    spec, tensors = random_model(rng, [3, 6, 2], ["tanh", "linear"])
    model = jaccli.load(save_model(tmp_path, spec, tensors))
    x = rng.normal(size=(10, 3))
    for name in ["value", "jacobian", "hessdiag", "hessian", "laplacian", "param_jacobian"]:
        np.testing.assert_allclose(getattr(model, name)(x, chunk_size=chunk),
                                   getattr(model, name)(x), rtol=1e-13, atol=1e-15)


def test_api_accepts_one_point_and_lists(canonical_path):
    model = jaccli.load(canonical_path)
    assert model.value([1, 1]).shape == (1, 1)
    assert model.value([[1, 1], [2, 2]]).shape == (2, 1)
    assert model.parameters == [("W0", (2, 2)), ("b0", (2,)), ("W1", (2, 1)), ("b1", (1,))]
    assert model.param_jacobian([1, 1]).shape == (1, 1, 9)
    assert model.hessian([1, 1]).shape == (1, 1, 2, 2)
