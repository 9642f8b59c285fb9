"""Keras model files read with no spec (the fourth place a spec is looked for: the Keras configuration).

The files in tests/data/keras/ were written by Keras itself
(tests/data/make_keras_files.py); each *_ref.npz holds points X, Keras's
float64 predictions Y and TensorFlow-autodiff derivatives J (and H where TF
has second derivatives). These tests need no Keras.
"""

import csv
import io
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.special import erf

import jaccli
from spec_forward import run_spec
from jaccli.cli import cli
from jaccli.errors import JaccliError
from jaccli.formats.keras import read_keras

DATA = Path(__file__).parent / "data" / "keras"
CANARY = "/tmp/jaccli_keras_lambda_canary_ran"  # see make_keras_files.py

MODELS = [
    "seq_tanh_sigmoid",
    "seq_relu_softmax",
    "seq_gelu_swish_nobias",
    "seq_elu_selu_softplus",
    "seq_activation_layers",
    "seq_norm_batchnorm",
    "func_batchnorm_first",
    "func_chain",
]
MODEL_FILES = [
    DATA / f"{name}{suffix}"
    for name in MODELS
    for suffix in (".keras", ".h5", "_k2.h5")
    if (DATA / f"{name}{suffix}").exists()
]
SPEC_FIELDS = {"inputs", "outputs", "layout", "input_scaling", "output_scaling", "layers",
               "output_maps"}
LAYER_FIELDS = {"units", "activation", "weight", "bias", "alpha", "before", "after"}


# Two TensorFlow float64 imprecisions limit how closely Keras's own numbers
# can be matched (jaccli computes the exact functions):
# - gelu is 0.5 x erfc(-x / sqrt 2), and TF's float64 erfc is off by up to
#   ~5e-9 (near x = -1.41);
# - tf.nn.leaky_relu stores its slope as a float32 attribute, so Keras's
#   negative_slope 0.2 runs as float32(0.2) = 0.2000000029...
TF_ERFC = {"seq_gelu_swish_nobias"}
TF_FLOAT32_SLOPE = {"seq_activation_layers", "func_batchnorm_first"}


def model_name(path):
    return path.name.split(".")[0].removesuffix("_k2")


def tolerance(path, rtol, atol):
    """(rtol, atol) for comparing jaccli with Keras's numbers for this model."""
    if model_name(path) in TF_ERFC | TF_FLOAT32_SLOPE:
        return max(rtol, 1e-6), max(atol, 1e-7)
    return rtol, atol


def reference(path):
    return np.load(DATA / f"{model_name(path)}_ref.npz")


# -- an independent forward pass of the spec, written from the spec rules -----

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def activate(z, name, alpha):
    if name == "linear":
        return z
    if name == "sigmoid":
        return 1 / (1 + np.exp(-z))
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.maximum(z, 0)
    if name == "leaky_relu":
        return np.where(z > 0, z, alpha * z)
    if name == "elu":
        return np.where(z > 0, z, alpha * np.expm1(z))
    if name == "selu":
        return SELU_SCALE * np.where(z > 0, z, SELU_ALPHA * np.expm1(z))
    if name == "softplus":
        return np.logaddexp(0, z)
    if name == "softsign":
        return z / (1 + np.abs(z))
    if name == "silu":
        return z / (1 + np.exp(-z))
    if name == "gelu":
        return 0.5 * z * (1 + erf(z / np.sqrt(2)))
    if name == "exp":
        return np.exp(z)
    if name == "softmax":
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    raise AssertionError(f"activation {name} not expected from Keras files")


def forward(spec, tensors, x, float32_slope=False):
    def act(z, name, alpha):
        if float32_slope and name == "leaky_relu":
            alpha = float(np.float32(alpha))  # as TensorFlow runs it
        return activate(z, name, alpha)

    return run_spec(spec, tensors, x, act)


# -- read_keras on its own ----------------------------------------------------


@pytest.mark.parametrize("path", MODEL_FILES, ids=lambda p: p.name)
def test_read_keras_reproduces_keras_predictions(path):
    spec, tensors = read_keras(str(path))
    ref = reference(path)
    # With TensorFlow's float32 slope, the structure is checked to 1e-10.
    values = forward(spec, tensors, ref["X"], float32_slope=True)
    rtol = 1e-8 if model_name(path) in TF_ERFC else 1e-10
    np.testing.assert_allclose(values, ref["Y"], rtol=rtol, atol=1e-13)


@pytest.mark.parametrize("path", MODEL_FILES, ids=lambda p: p.name)
def test_spec_uses_only_spec_fields_and_keras_names(path):
    spec, tensors = read_keras(str(path))
    assert set(spec) <= SPEC_FIELDS
    assert spec["layout"] == "in_out"
    used = set()
    maps = spec.get("output_maps", [])
    for layer in spec["layers"]:
        assert set(layer) <= LAYER_FIELDS
        used.update(name for name in (layer["weight"], layer["bias"]) if name)
        assert layer["weight"].endswith("/kernel")
        maps += layer.get("before", []) + layer.get("after", [])
    used.update(name for m in maps if "batchnorm" in m for key, name in m["batchnorm"].items()
                if key != "eps" and name)
    assert used == set(tensors)
    assert all(t.dtype == np.float64 for t in tensors.values())


def test_keras_3_and_keras_2_files_give_the_same_spec():
    for name in ("seq_activation_layers", "func_chain", "seq_norm_batchnorm"):
        spec3, tensors3 = read_keras(str(DATA / f"{name}.keras"))
        spec2, tensors2 = read_keras(str(DATA / f"{name}_k2.h5"))
        assert spec3["layers"] == spec2["layers"]
        for key in tensors3:
            np.testing.assert_allclose(tensors3[key], tensors2[key], rtol=1e-13)


def test_activation_layers_fold_with_their_saved_parameters():
    spec, _ = read_keras(str(DATA / "seq_activation_layers.keras"))
    folded = [(layer["activation"], layer.get("alpha")) for layer in spec["layers"]]
    # LeakyReLU(negative_slope=0.15), Activation(tanh), ELU(), ReLU(), Softmax()
    assert folded == [("leaky_relu", 0.15), ("tanh", None), ("elu", 1.0), ("relu", None),
                      ("softmax", None)]


def test_leaky_relu_by_name_uses_keras_default_slope():
    # keras.activations.leaky_relu(x, negative_slope=0.2)
    spec, _ = read_keras(str(DATA / "func_batchnorm_first.keras"))
    assert spec["layers"][0]["activation"] == "leaky_relu"
    assert spec["layers"][0]["alpha"] == 0.2


def test_gelu_is_the_exact_form():
    spec, _ = read_keras(str(DATA / "seq_gelu_swish_nobias.keras"))
    assert [layer["activation"] for layer in spec["layers"]] == ["gelu", "silu", "linear"]


def test_normalization_is_the_input_scaling_and_batchnorm_keeps_its_tensors():
    spec, tensors = read_keras(str(DATA / "seq_norm_batchnorm.keras"))
    assert "input_scaling" in spec  # Normalization: constants
    # BatchNormalization after the last (tanh) Dense: its gamma and beta are parameters
    assert spec["output_maps"][0]["batchnorm"]["weight"].endswith("/gamma")
    model = jaccli.load(DATA / "seq_norm_batchnorm.keras")
    names = [name for name, _ in model.parameters]
    assert [name.split("/")[1] for name in names[-2:]] == ["gamma", "beta"]
    assert not any("moving" in name for name in names)  # statistics are not parameters
    spec, _ = read_keras(str(DATA / "func_batchnorm_first.keras"))
    assert "batchnorm" in spec["layers"][0]["before"][0]  # before the first Dense


# -- refusals -------------------------------------------------------------------

REFUSALS = [
    ("lambda_canary.keras", "layer 'lambda' (Lambda)"),
    ("lambda_canary.h5", "layer 'lambda' (Lambda)"),
    ("conv2d.keras", "layer 'conv2d' (Conv2D)"),
    ("conv2d.h5", "layer 'conv2d' (Conv2D)"),
    ("two_branch.keras", "layer 'add' (Add)"),
    ("two_branch.h5", "layer 'add' (Add)"),
    ("two_inputs.keras", "2 inputs"),
    ("double_activation.keras", "layer 'activation' (Activation)"),
    ("corrupt_truncated.keras", "damaged Keras archive"),
    ("corrupt_no_config.keras", "no config.json"),
    ("corrupt_no_weights.keras", "no model.weights.h5"),
    ("corrupt_bad_json.keras", "config.json is not valid JSON"),
    ("corrupt_missing_dataset.keras", "layers/dense_1/vars/1"),
    ("weights_only.weights.h5", "no 'model_config' attribute"),
    ("weights_only_k2.h5", "no 'model_config' attribute"),
]


@pytest.mark.parametrize("name, expected", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusals_are_one_line_naming_file_and_problem(name, expected):
    with pytest.raises(JaccliError) as info:
        read_keras(str(DATA / name))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{DATA / name}: ")  # the path as given
    assert expected in message


def test_lambda_code_never_runs():
    if os.path.exists(CANARY):
        os.remove(CANARY)
    for name in ("lambda_canary.keras", "lambda_canary.h5"):
        with pytest.raises(JaccliError, match="Lambda code is never run"):
            read_keras(str(DATA / name))
        with pytest.raises(JaccliError):
            jaccli.load(DATA / name)
        result = CliRunner().invoke(cli, ["value", str(DATA / name), "--at", "1,2"])
        assert result.exit_code == 2
    assert not os.path.exists(CANARY)


def test_model_without_dense_layers_is_refused(tmp_path):
    import zipfile

    config = ('{"class_name": "Sequential", "config": {"layers": ['
              '{"class_name": "InputLayer", "config": {"batch_shape": [null, 2], "name": "in"}},'
              '{"class_name": "Dropout", "config": {"name": "dropout", "rate": 0.5}}]}}')
    path = tmp_path / "empty.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", config)
        with zipfile.ZipFile(DATA / "seq_tanh_sigmoid.keras") as good:
            archive.writestr("model.weights.h5", good.read("model.weights.h5"))
    with pytest.raises(JaccliError, match="no Dense layer"):
        read_keras(str(path))


# -- through the core: jaccli.load with no spec, and the CLI ---------------------

LOADABLE = [p for p in MODEL_FILES]


@pytest.mark.parametrize("path", LOADABLE, ids=lambda p: p.name)
def test_load_without_spec_matches_keras_and_autodiff(path):
    ref = reference(path)
    model = jaccli.load(path)
    np.testing.assert_allclose(model.value(ref["X"]), ref["Y"], *tolerance(path, 1e-10, 1e-13))
    np.testing.assert_allclose(model.jacobian(ref["X"]), ref["J"], *tolerance(path, 1e-9, 1e-12))
    if "H" in ref.files:
        rtol, atol = tolerance(path, 1e-8, 1e-11)
        np.testing.assert_allclose(model.hessian(ref["X"]), ref["H"], rtol, atol)
        diagonal = np.diagonal(ref["H"], axis1=2, axis2=3)
        np.testing.assert_allclose(model.hessdiag(ref["X"]), diagonal, rtol, atol)


def test_parameter_names_are_keras_names():
    model = jaccli.load(DATA / "func_chain.keras")
    assert [name for name, _ in model.parameters] == [
        "hidden_a/kernel", "hidden_a/bias", "hidden_b/kernel", "hidden_b/bias",
        "head/kernel", "head/bias"]


def test_param_jacobian_matches_finite_differences():
    model = jaccli.load(DATA / "seq_tanh_sigmoid.h5")
    x = reference(DATA / "seq_tanh_sigmoid.h5")["X"][:2]
    analytic = model.param_jacobian(x)
    theta = model.parameter_vector()
    h = 1e-6
    for p in range(0, theta.size, 7):
        step = np.zeros_like(theta)
        step[p] = h
        numeric = (model.with_parameters(theta + step).value(x)
                   - model.with_parameters(theta - step).value(x)) / (2 * h)
        np.testing.assert_allclose(analytic[:, :, p], numeric, rtol=1e-6, atol=1e-8)


def read_csv(text):
    rows = list(csv.reader(io.StringIO(text)))
    return rows[0], np.array(rows[1:], dtype=np.float64)


def test_cli_jacobian_on_a_legacy_h5_file():
    ref = reference(DATA / "func_chain.h5")
    at = ",".join(repr(float(v)) for v in ref["X"][0])
    result = CliRunner().invoke(cli, ["jacobian", str(DATA / "func_chain.h5"), "--at", at,
                                      "--quiet"])
    assert result.exit_code == 0, result.output
    header, values = read_csv(result.stdout)
    assert len(header) == 2 * 3
    np.testing.assert_allclose(values[0], ref["J"][0].ravel(), rtol=1e-9, atol=1e-12)


def test_cli_hessdiag_on_a_keras_archive():
    ref = reference(DATA / "seq_norm_batchnorm.keras")
    at = ",".join(repr(float(v)) for v in ref["X"][1])
    result = CliRunner().invoke(cli, ["hessdiag", str(DATA / "seq_norm_batchnorm.keras"),
                                      "--at", at, "--quiet"])
    assert result.exit_code == 0, result.output
    _, values = read_csv(result.stdout)
    diagonal = np.diagonal(ref["H"][1], axis1=1, axis2=2)
    np.testing.assert_allclose(values[0], diagonal.ravel(), rtol=1e-8, atol=1e-11)


def test_cli_param_headers_use_keras_names():
    result = CliRunner().invoke(cli, ["jacobian", str(DATA / "func_chain.keras"),
                                      "--at", "0.1,0.2,0.3", "--wrt", "params", "--quiet"])
    assert result.exit_code == 0, result.output
    header_line = result.stdout.splitlines()[0]
    assert "dy1/dhidden_a/kernel[0,1]" in header_line


def test_cli_refusal_is_one_error_line_exit_2():
    result = CliRunner().invoke(cli, ["value", str(DATA / "conv2d.keras"), "--at", "1"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert "(Conv2D)" in lines[0]


# -- weights-only files with a user spec (docs/keras.md) --------------------------

WEIGHTS_ONLY_SPECS = {
    "weights_only.weights.h5": ("layers/dense/vars/0", "layers/dense/vars/1",
                                "layers/dense_1/vars/0", "layers/dense_1/vars/1"),
    "weights_only_k2.h5": ("dense/dense/kernel:0", "dense/dense/bias:0",
                           "dense_1/dense_1/kernel:0", "dense_1/dense_1/bias:0"),
}


@pytest.mark.parametrize("name", sorted(WEIGHTS_ONLY_SPECS))
def test_weights_only_files_with_a_spec(tmp_path, name):
    k0, b0, k1, b1 = WEIGHTS_ONLY_SPECS[name]
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "inputs: 3\noutputs: 1\nlayers:\n"
        f"  - {{units: 4, activation: tanh, weight: '{k0}', bias: '{b0}'}}\n"
        f"  - {{units: 1, activation: linear, weight: '{k1}', bias: '{b1}'}}\n")
    ref = np.load(DATA / "weights_only_ref.npz")
    model = jaccli.load(DATA / name, spec=spec)
    np.testing.assert_allclose(model.value(ref["X"]), ref["Y"], rtol=1e-10, atol=1e-13)


# -- optional: a model made right now by an installed Keras -------------------------


# Keras 3 on the torch backend (make test-ci) calls np.array on its tensors the NumPy 1 way.
@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")
def test_live_keras_model(tmp_path):
    keras = pytest.importorskip("keras")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="tanh"),
                              keras.layers.Dense(2, activation="softmax")])
    x = np.random.default_rng(0).normal(size=(5, 3))
    expected = np.asarray(model.predict(x, verbose=0), dtype=np.float64)
    for suffix in (".keras", ".h5"):
        path = tmp_path / f"live{suffix}"
        model.save(path)
        np.testing.assert_allclose(jaccli.load(path).value(x), expected, rtol=1e-5, atol=1e-6)


# -- BatchNormalization folding on hand-made legacy HDF5 files --------------------


def write_legacy_h5(path, layers, weights, split_weight_names=False):
    """A minimal Keras-2-style model file: model_config + model_weights."""
    import json

    import h5py

    entries = [{"class_name": "InputLayer",
                "config": {"batch_input_shape": [None, 2], "name": "input_1"}}]
    entries += [{"class_name": cls, "config": dict(config, name=name)}
                for name, cls, config in layers]
    config = {"class_name": "Sequential", "config": {"name": "sequential", "layers": entries}}
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(config).encode()
        group = f.create_group("model_weights")
        for name, cls, _ in layers:
            layer = group.create_group(name)
            names = [f"{name}/{role}:0".encode() for role in weights.get(name, {})]
            if split_weight_names and len(names) > 1:  # as Keras does for huge lists
                layer.attrs["weight_names0"] = names[:1]
                layer.attrs["weight_names1"] = names[1:]
            else:
                layer.attrs["weight_names"] = names
            for role, value in weights.get(name, {}).items():
                layer.create_dataset(f"{name}/{role}:0", data=value)


def keras_batchnorm(x, w, epsilon=1e-3):
    return (x - w["moving_mean"]) / np.sqrt(w["moving_variance"] + epsilon) * w["gamma"] + w["beta"]


def batchnorm_weights(rng, n, gamma):
    return {"gamma": np.asarray(gamma, dtype=float), "beta": rng.normal(size=n),
            "moving_mean": rng.normal(size=n), "moving_variance": rng.uniform(0.5, 2, size=n)}


BN = {"epsilon": 1e-3, "axis": -1, "center": True, "scale": True}


def test_batchnorm_with_negative_gamma_before_the_first_dense(tmp_path):
    rng = np.random.default_rng(1)
    w = {"bn": batchnorm_weights(rng, 2, [-1.5, 0.7]),
         "d1": {"kernel": rng.normal(size=(2, 3)), "bias": rng.normal(size=3)},
         "d2": {"kernel": rng.normal(size=(3, 1)), "bias": rng.normal(size=1)}}
    path = tmp_path / "bn_first.h5"
    write_legacy_h5(path, [("bn", "BatchNormalization", BN),
                           ("d1", "Dense", {"units": 3, "activation": "tanh"}),
                           ("d2", "Dense", {"units": 1, "activation": "linear"})], w,
                    split_weight_names=True)
    x = rng.normal(size=(5, 2))
    h = np.tanh(keras_batchnorm(x, w["bn"]) @ w["d1"]["kernel"] + w["d1"]["bias"])
    expected = h @ w["d2"]["kernel"] + w["d2"]["bias"]
    spec, tensors = read_keras(str(path))
    assert "input_scaling" not in spec  # a negative scale: folded into d1 instead
    np.testing.assert_allclose(forward(spec, tensors, x), expected, rtol=1e-12)
    np.testing.assert_allclose(jaccli.load(path).value(x), expected, rtol=1e-12)


def test_batchnorm_between_nonlinear_denses_folds_into_the_next(tmp_path):
    rng = np.random.default_rng(2)
    w = {"d1": {"kernel": rng.normal(size=(2, 3)), "bias": rng.normal(size=3)},
         "bn": batchnorm_weights(rng, 3, [-0.5, 1.2, 2.0]),
         "d2": {"kernel": rng.normal(size=(3, 2))}}
    path = tmp_path / "bn_middle.h5"
    write_legacy_h5(path, [("d1", "Dense", {"units": 3, "activation": "sigmoid"}),
                           ("bn", "BatchNormalization", BN),
                           ("d2", "Dense", {"units": 2, "activation": "linear",
                                            "use_bias": False})], w)
    x = rng.normal(size=(5, 2))
    h = 1 / (1 + np.exp(-(x @ w["d1"]["kernel"] + w["d1"]["bias"])))
    expected = keras_batchnorm(h, w["bn"]) @ w["d2"]["kernel"]
    spec, tensors = read_keras(str(path))
    assert spec["layers"][1]["before"][0]["batchnorm"]["weight"] == "bn/gamma"
    np.testing.assert_allclose(forward(spec, tensors, x), expected, rtol=1e-12)
    np.testing.assert_allclose(jaccli.load(path).value(x), expected, rtol=1e-12)


def test_trailing_batchnorm_with_negative_gamma_after_nonlinear_dense(tmp_path):
    """A BatchNorm after the last activation: its values, and the derivatives w.r.t.
    its gamma and beta, against central differences of the unfolded forward pass."""
    rng = np.random.default_rng(3)
    w = {"d1": {"kernel": rng.normal(size=(2, 3)), "bias": rng.normal(size=3)},
         "bn": batchnorm_weights(rng, 3, [1.0, -1.0, 1.0])}
    path = tmp_path / "bn_last.h5"
    write_legacy_h5(path, [("d1", "Dense", {"units": 3, "activation": "tanh"}),
                           ("bn", "BatchNormalization", BN)], w)
    x = rng.normal(size=(4, 2))

    def unfolded(gamma, beta):
        h = np.tanh(x @ w["d1"]["kernel"] + w["d1"]["bias"])
        return keras_batchnorm(h, {**w["bn"], "gamma": gamma, "beta": beta})

    model = jaccli.load(path)
    np.testing.assert_allclose(model.value(x), unfolded(w["bn"]["gamma"], w["bn"]["beta"]),
                               rtol=1e-12)
    table = {p.name: p for p in model.parameter_table}
    jac = model.param_jacobian(x)
    for name, role in (("bn/gamma", "gamma"), ("bn/beta", "beta")):
        info = table[name]
        for j in range(3):
            step = np.zeros(3)
            step[j] = 1e-6
            args = {"gamma": w["bn"]["gamma"], "beta": w["bn"]["beta"]}
            plus = unfolded(**{**args, role: args[role] + step})
            minus = unfolded(**{**args, role: args[role] - step})
            np.testing.assert_allclose(jac[:, :, info.offset + j], (plus - minus) / 2e-6,
                                       atol=1e-8)


def test_keras_archive_with_a_user_spec_reads_its_datasets(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "inputs: 3\noutputs: 2\nlayers:\n"
        "  - {units: 5, activation: tanh, weight: layers/dense/vars/0, bias: layers/dense/vars/1}\n"
        "  - {units: 4, activation: sigmoid, weight: layers/dense_1/vars/0,"
        " bias: layers/dense_1/vars/1}\n"
        "  - {units: 2, activation: linear, weight: layers/dense_2/vars/0,"
        " bias: layers/dense_2/vars/1}\n")
    ref = reference(DATA / "seq_tanh_sigmoid.keras")
    model = jaccli.load(DATA / "seq_tanh_sigmoid.keras", spec=spec)
    np.testing.assert_allclose(model.value(ref["X"]), ref["Y"], rtol=1e-10, atol=1e-13)


def test_hard_sigmoid_of_keras_3_is_relu6_of_x_plus_3_over_6():
    """The file records Keras 3 (metadata.json), whose hard_sigmoid is relu6(x + 3) / 6
    (Keras 2's was 0.2 x + 0.5 clipped: a file recording neither is refused)."""
    model = jaccli.load(os.path.join(DATA, "hard_sigmoid.keras"))
    assert model.network.layers[0].params == {"alpha": 1 / 6, "beta": 0.5}
