"""The Python API as people use it: load with a spec dict or text, Model.from_arrays, repr."""

import os

import numpy as np
import pytest
import yaml

import jaccli
from conftest import SAMPLES, random_model

from . import oracle


def test_load_takes_a_spec_path_dict_or_yaml_text():
    path = os.path.join(SAMPLES, "canonical.npz")
    spec_path = os.path.join(SAMPLES, "canonical.yaml")
    with open(spec_path) as handle:
        text = handle.read()
    want = jaccli.load(path, spec=spec_path).jacobian([1, 1])
    for spec in (yaml.safe_load(text), text, spec_path):
        np.testing.assert_array_equal(jaccli.load(path, spec=spec).jacobian([1, 1]), want)
    with pytest.raises(jaccli.JaccliError, match=r"^the spec dict: layers\[0\]: unknown field .activaton."):
        jaccli.load(path, spec={"layers": [{"units": 2, "activaton": "tanh"}]})
    with pytest.raises(jaccli.JaccliError, match="^the spec text: not valid YAML"):
        jaccli.load(path, spec="layers: [\n")
    with pytest.raises(jaccli.JaccliError, match="expected a path, a dict or a YAML text, not int"):
        jaccli.load(path, spec=3)
    with pytest.raises(jaccli.JaccliError, match="nowhere.yaml: cannot read the spec: No such file"):
        jaccli.load(path, spec="nowhere.yaml")


@pytest.mark.parametrize("layout", ["in_out", "out_in"])
def test_from_arrays_matches_the_oracle(layout):
    rng = np.random.default_rng(8)
    spec, tensors = random_model(rng, [3, 5, 4, 2], ["tanh", "leaky_relu", "sigmoid"],
                                 layout=layout, biases=[True, False, True], scaling=True)
    model = jaccli.Model.from_arrays(
        [tensors[f"W{i}"] for i in range(3)], [tensors["b0"], None, tensors["b2"]],
        ["tanh", {"activation": "leaky_relu", "alpha": 0.1}, "sigmoid"], layout=layout,
        inputs=spec["inputs"], outputs=2, input_scaling=spec["input_scaling"],
        output_scaling=spec["output_scaling"])
    X = oracle.away_from_kinks(spec, tensors, rng.uniform(-1, 1, size=(6, 3)))
    np.testing.assert_allclose(model.value(X), oracle.forward(spec, tensors, X), rtol=1e-12)
    np.testing.assert_allclose(model.jacobian(X), oracle.jacobian(spec, tensors, X),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(model.hessian(X), oracle.hessian(spec, tensors, X),
                               rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(model.param_jacobian(X), oracle.param_jacobian(spec, tensors, X),
                               rtol=1e-10, atol=1e-12)
    assert model.parameters == [("W0", tensors["W0"].shape), ("b0", (5,)),
                                ("W1", tensors["W1"].shape), ("W2", tensors["W2"].shape),
                                ("b2", (2,))]
    assert model.input_names == spec["inputs"] and model.output_names == ["y1", "y2"]


def test_from_arrays_is_validated_like_a_file():
    ok = [np.ones((2, 3)), np.ones((3, 1))]
    with pytest.raises(jaccli.JaccliError, match=r"tensor 'W1' \(layers\[1\] weight\) has shape "
                                                 r"\(2, 1\); .* expects \(3, 1\)"):
        jaccli.Model.from_arrays([ok[0], np.ones((2, 1))], None, ["tanh", "linear"])
    with pytest.raises(jaccli.JaccliError, match="NaN|not finite|finite"):
        jaccli.Model.from_arrays([ok[0], np.full((3, 1), np.nan)], None, ["tanh", "linear"])
    with pytest.raises(jaccli.JaccliError, match="unknown activation|activation"):
        jaccli.Model.from_arrays(ok, None, ["tanhh", "linear"])
    with pytest.raises(jaccli.JaccliError, match="2 kernels, 2 biases and 1 activations"):
        jaccli.Model.from_arrays(ok, None, ["tanh"])
    with pytest.raises(jaccli.JaccliError, match="tensor 'W0'"):
        jaccli.Model.from_arrays([np.array([["a", "b"]]), ok[1]], None, ["tanh", "linear"])
    model = jaccli.Model.from_arrays(ok, [np.zeros(3), None], ["tanh", "linear"], dtype="float32")
    assert model.value([0.5, 0.5]).dtype == np.float32


def test_repr_says_what_the_model_is():
    model = jaccli.load(os.path.join(SAMPLES, "sincos.npz"))
    assert repr(model) == "<jaccli.Model 2 in -> 32 tanh -> 32 tanh -> 1 linear, 1185 parameters>"
    small = jaccli.Model.from_arrays([np.ones((2, 32)), np.ones((32, 1))], None, ["tanh", "linear"])
    assert repr(small) == "<jaccli.Model 2 in -> 32 tanh -> 1 linear, 96 parameters>"
