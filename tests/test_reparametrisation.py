"""Folds change the parameters, not the model: confidence intervals are the same
whether a constant scaling is stored in the file's weights or applied by a map
jaccli folds (the parameter Jacobians differ by an invertible diagonal, so Z spans
the same space), and `check` confirms a folded model's parameter derivatives by
finite differences of the refolded network."""

import numpy as np

import jaccli
from jaccli.formats.spec import parse_spec
from jaccli.formats.tensors import TensorStore
from jaccli.model import build_model


def load(spec, tensors):
    return build_model(parse_spec(spec, "m"), TensorStore("m", tensors.get, list(tensors)))


def two_forms(rng):
    """(map form, stored form): tanh(x W0 + b0) then a layer whose input is scaled by s."""
    w0, b0, w1, b1 = rng.normal(size=(2, 6)), rng.normal(size=6), rng.normal(size=(6, 1)), rng.normal(size=1)
    s = np.array([2.0, -0.5, 1.5, -3.0, 0.25, 1.0])
    layers = [{"units": 6, "activation": "tanh"}, {"units": 1, "activation": "linear"}]
    mapped = load({"layers": [layers[0], {**layers[1], "before": [{"scale": s.tolist()}]}]},
                  {"W0": w0, "b0": b0, "W1": w1, "b1": b1})
    stored = load({"layers": layers}, {"W0": w0, "b0": b0, "W1": s[:, None] * w1, "b1": b1})
    return mapped, stored


def test_confidence_intervals_do_not_change_when_a_scaling_is_folded():
    rng = np.random.default_rng(0)
    mapped, stored = two_forms(rng)
    X = rng.uniform(-2, 2, size=(60, 2))
    Y = stored.value(X) + 0.05 * rng.normal(size=(60, 1))
    points = rng.uniform(-2, 2, size=(7, 2))
    np.testing.assert_allclose(mapped.value(points), stored.value(points), rtol=1e-13)
    assert not np.allclose(mapped.param_jacobian(points), stored.param_jacobian(points))
    a = jaccli.confint(mapped, (X, Y), points).intervals
    b = jaccli.confint(stored, (X, Y), points).intervals
    np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)


def test_check_passes_on_a_folded_model_with_tied_weights_and_batchnorm():
    rng = np.random.default_rng(1)
    w, b = rng.normal(size=(3, 3)), rng.normal(size=3)
    norm = {"batchnorm": {"weight": "g", "bias": "be", "mean": "m", "var": "v", "eps": 1e-3}}
    spec = {"layers": [{"activation": "tanh", "weight": "W", "bias": "b", "after": [norm]},
                       {"activation": "sigmoid", "weight": "W", "bias": "b",
                        "before": [{"scale": -2.0, "offset": 0.5}]},
                       {"units": 1, "weight": "W2", "bias": None}]}
    tensors = {"W": w, "b": b, "g": rng.normal(size=3), "be": rng.normal(size=3),
               "m": rng.normal(size=3), "v": rng.uniform(0.5, 2, 3), "W2": rng.normal(size=(3, 1))}
    model = load(spec, tensors)
    assert [name for name, _ in model.parameters] == ["W", "b", "g", "be", "W2"]
    report = jaccli.check(model, rng.uniform(-1, 1, size=(5, 3)), what="params", sample=False)
    assert report.passed, report.failures
