"""Keras architecture JSON (``model.to_json()``) beside weights-only HDF5 files,
and a ReLU/LeakyReLU after a non-negative activation folded away.

The files were written by Keras itself (tests/data/make_keras_json_files.py:
tf_keras 2.21 for Keras 2, keras 3.15.1); each NAME_ref.npz holds points X,
Keras's float64 predictions Y and TensorFlow-autodiff derivatives J, H.
These tests need no Keras.
"""

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

import jaccli
import oracle
from hostile_helpers import assert_one_line_error, invoke
from jaccli.formats.keras import read_keras
from jaccli.formats.discovery import load_spec_and_tensors

DATA = Path(__file__).parent / "data" / "keras"

# (architecture JSON, weights-only file, reference)
PAIRS = [
    ("k2_seq.json", "k2_seq.h5", "k2_seq"),  # Keras 2 Sequential, input_shape on the first Dense
    ("k2_func.json", "k2_func.h5", "k2_func"),  # Keras 2 functional
    ("k3_seq.json", "k3_seq.weights.h5", "k3_seq"),  # Keras 3: layers/<class>/vars/<i>
    ("relu_leaky_k2.json", "relu_leaky_k2_weights.h5", "relu_leaky"),
]


def check_against_reference(model, ref):
    x = ref["X"]
    np.testing.assert_allclose(model.value(x), ref["Y"], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(model.jacobian(x), ref["J"], rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(model.hessian(x), ref["H"], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("json_name, weights, ref", PAIRS, ids=[p[0] for p in PAIRS])
def test_spec_option_takes_a_keras_json(json_name, weights, ref):
    model = jaccli.load(DATA / weights, spec=DATA / json_name)
    check_against_reference(model, np.load(DATA / f"{ref}_ref.npz"))


@pytest.mark.parametrize("json_name, weights, ref", PAIRS, ids=[p[0] for p in PAIRS])
def test_a_json_beside_the_weights_is_found(tmp_path, json_name, weights, ref):
    shutil.copy(DATA / weights, tmp_path / "model.h5")
    shutil.copy(DATA / json_name, tmp_path / "model.json")
    check_against_reference(jaccli.load(tmp_path / "model.h5"), np.load(DATA / f"{ref}_ref.npz"))
    # model.json stands for any weights file in its folder; <stem>.json for its own.
    (tmp_path / "model.h5").rename(tmp_path / "weights.h5")
    assert jaccli.load(tmp_path / "weights.h5").n_inputs == np.load(DATA / f"{ref}_ref.npz")["X"].shape[1]


def old_keras_json(style):
    """k2_seq.json as Keras 2.2.4 (config {name, layers}) or Keras 2.1 (config a list)
    wrote it: no module / registered_name / build_config keys, version and backend beside."""
    config = json.loads((DATA / "k2_seq.json").read_text())
    layers = [{"class_name": layer["class_name"], "config": layer["config"]}
              for layer in config["config"]["layers"] if layer["class_name"] != "InputLayer"]
    body = {"name": "sequential_1", "layers": layers} if style == "2.2.4" else layers
    return json.dumps({"class_name": "Sequential", "config": body,
                       "keras_version": "2.2.4" if style == "2.2.4" else "2.1.6",
                       "backend": "tensorflow"})


@pytest.mark.parametrize("style", ["2.2.4", "2.1.6"])
def test_older_keras_2_json_formats(tmp_path, style):
    spec = tmp_path / "arch.json"
    spec.write_text(old_keras_json(style))
    check_against_reference(jaccli.load(DATA / "k2_seq.h5", spec=spec), np.load(DATA / "k2_seq_ref.npz"))


def embed_spec(path, text):
    with h5py.File(path, "a") as handle:
        handle.attrs["jaccli_spec"] = text


EMBEDDED = """\
outputs: [a, b]
layers:
  - {activation: tanh, weight: dense/dense/kernel:0, bias: dense/dense/bias:0}
  - {activation: relu, weight: dense_1/dense_1/kernel:0, bias: dense_1/dense_1/bias:0}
  - {weight: dense_2/dense_2/kernel:0, bias: dense_2/dense_2/bias:0}
"""


def test_discovery_order(tmp_path):
    """<stem>.yaml, then <stem>.json, then the embedded spec, then model.json in the folder."""
    weights = tmp_path / "net.h5"
    shutil.copy(DATA / "k2_seq.h5", weights)
    embed_spec(weights, EMBEDDED)
    shutil.copy(DATA / "k2_seq.json", tmp_path / "model.json")
    assert jaccli.load(weights).output_names == ["a", "b"]  # embedded wins over model.json
    shutil.copy(DATA / "k2_seq.json", tmp_path / "net.json")
    assert jaccli.load(weights).output_names == ["y1", "y2"]  # <stem>.json wins over embedded
    (tmp_path / "net.yaml").write_text(EMBEDDED.replace("[a, b]", "[c, d]"))
    assert jaccli.load(weights).output_names == ["c", "d"]  # <stem>.yaml wins over all


def test_a_keras_model_file_keeps_its_own_config_over_model_json(tmp_path):
    shutil.copy(DATA / "relu_leaky.h5", tmp_path / "full.h5")
    shutil.copy(DATA / "k2_seq.json", tmp_path / "model.json")
    assert jaccli.load(tmp_path / "full.h5").n_inputs == 4


def test_a_json_that_is_not_a_keras_model_is_not_a_spec(tmp_path):
    shutil.copy(DATA / "k2_seq.h5", tmp_path / "model.h5")
    (tmp_path / "model.json").write_text('{"learning_rate": 0.01}')
    line = assert_one_line_error(invoke(["info", tmp_path / "model.h5"]))
    assert "holds only weights" in line and "model.{yaml,yml,json}" in line


def test_weights_only_file_without_a_spec_says_what_to_pass():
    line = assert_one_line_error(invoke(["info", DATA / "weights_only_k2.h5"]))
    assert f"{DATA / 'weights_only_k2.h5'}: no spec found: the file holds only weights" in line
    assert "--spec SPEC.yaml" in line and "model.to_json()" in line


def test_a_keras_json_with_weights_that_are_not_hdf5(tmp_path):
    np.savez(tmp_path / "w.npz", W0=np.ones((3, 5)))
    assert_one_line_error(invoke(["info", tmp_path / "w.npz", "--spec", DATA / "k2_seq.json"]),
                          words=["k2_seq.json", "HDF5 weights file", "w.npz"])


def test_a_keras_json_for_another_model(tmp_path):
    assert_one_line_error(invoke(["info", DATA / "k2_func.h5", "--spec", DATA / "k2_seq.json"]),
                          words=["k2_func.h5", "layer 'dense'"])


def test_a_refused_layer_in_a_keras_json_names_the_json(tmp_path):
    config = json.loads((DATA / "k2_seq.json").read_text())
    config["config"]["layers"][2]["class_name"] = "Lambda"
    spec = tmp_path / "bad.json"
    spec.write_text(json.dumps(config))
    assert_one_line_error(invoke(["info", DATA / "k2_seq.h5", "--spec", spec]),
                          words=[f"{spec}: layer 'dense_1' (Lambda)", "never run"])


def test_the_keras_json_is_never_read_as_yaml_when_it_is_keras():
    spec, _ = load_spec_and_tensors(str(DATA / "k3_seq.weights.h5"), str(DATA / "k3_seq.json"))
    assert spec.source.endswith("k3_seq.json (Keras model JSON)")


# -- Dense(relu) -> LeakyReLU(0.1), twice: the LeakyReLU is the identity there ------


RELU_LEAKY = ["relu_leaky.keras", "relu_leaky.h5", "relu_leaky_k2.h5"]


@pytest.mark.parametrize("name", RELU_LEAKY)
def test_relu_then_leaky_relu_folds_and_matches_keras(name):
    spec, tensors = read_keras(str(DATA / name))
    assert [layer["activation"] for layer in spec["layers"]] == ["relu", "relu", "linear"]
    ref = np.load(DATA / "relu_leaky_ref.npz")
    x = ref["X"]
    # An independent NumPy forward pass of the Keras layers, LeakyReLU included.
    a = x
    for i, layer in enumerate(spec["layers"]):
        z = a @ tensors[layer["weight"]] + tensors[layer["bias"]]
        a = z if i == 2 else np.where(np.maximum(z, 0) > 0, np.maximum(z, 0), 0.1 * np.maximum(z, 0))
    np.testing.assert_allclose(a, ref["Y"], rtol=1e-12, atol=1e-14)
    model = jaccli.load(DATA / name)
    check_against_reference(model, ref)
    np.testing.assert_allclose(model.jacobian(x), oracle.jacobian(spec, tensors, x), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(model.param_jacobian(x), oracle.param_jacobian(spec, tensors, x),
                               rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("change", ["layers-not-a-list", "layer-config-a-list", "units-a-string",
                                    "byte-order-mark"])
def test_odd_keras_json_is_one_line_naming_it(tmp_path, change):
    config = json.loads((DATA / "k2_seq.json").read_text())
    layers = config["config"]["layers"]
    if change == "layers-not-a-list":
        config["config"]["layers"] = {"a": 1}
    elif change == "layer-config-a-list":
        layers[1]["config"] = [1, 2]
    elif change == "units-a-string":
        layers[1]["config"]["units"] = "five"
    spec = tmp_path / "odd.json"
    text = json.dumps(config)
    spec.write_bytes((b"\xef\xbb\xbf" if change == "byte-order-mark" else b"") + text.encode())
    result = invoke(["info", DATA / "k2_seq.h5", "--spec", spec])
    if change == "byte-order-mark":
        assert result.exit_code == 0, result.stderr
    else:
        assert_one_line_error(result, words=[str(spec)])
