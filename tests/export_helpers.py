"""Shared by the test_export_*.py files (jaccli.export): an independent reader.

Each exported file is read back here with numpy / h5py / yaml.safe_load and run
through a forward pass written here (and in spec_forward.py), independent of
jaccli's engine, to compare with the source library's own predictions in float64.
Also the small scikit-learn and PyTorch models the tests export.
"""

import math
import warnings

import numpy as np
import pytest
import yaml
from scipy.special import erf, expit

from spec_forward import run_spec

# The fields a spec may have; the core rejects anything else.
SPEC_KEYS = {"inputs", "outputs", "layout", "input_scaling", "output_scaling", "layers", "output_maps"}
LAYER_KEYS = {"units", "activation", "weight", "bias", "alpha", "beta", "threshold", "min_val",
              "max_val", "slope", "slope_scale", "before", "after", "constant"}
SCALING_KEYS = {"offset", "scale"}

# The forward pass below must agree with the library to this relative error,
# measured against the largest output magnitude.
RTOL = 1e-12

# torch.func imports torch.jit.script, deprecated in torch 2.13: not ours to fix.
IGNORE_TORCH_JIT_WARNING = pytest.mark.filterwarnings(
    "ignore:`torch.jit.script` is deprecated:DeprecationWarning")


# ---------------------------------------------------------------- independent reader


def read_model(path):
    """(spec dict, {tensor name: array}) straight from the file, no jaccli code."""
    path = str(path)
    if path.endswith(".npz"):
        with np.load(path, allow_pickle=False) as archive:
            tensors = {name: archive[name] for name in archive.files}
        spec_text = tensors.pop("jaccli_spec")
        assert spec_text.shape == () and spec_text.dtype.kind == "U"
        spec_text = spec_text.item()
    else:
        import h5py

        with h5py.File(path, "r") as h5:
            spec_text = h5.attrs["jaccli_spec"]
            tensors = {name: h5[name][()] for name in h5}
    assert isinstance(spec_text, str)
    spec = yaml.safe_load(spec_text)
    check_schema(spec, tensors)
    return spec, tensors


def check_schema(spec, tensors):
    assert set(spec) <= SPEC_KEYS and {"inputs", "outputs", "layers"} <= set(spec)
    assert spec["layout"] in ("in_out", "out_in")
    for key in ("input_scaling", "output_scaling"):
        if key in spec:
            assert set(spec[key]) == SCALING_KEYS
    used, maps = set(), list(spec.get("output_maps", []))
    for layer in spec["layers"]:
        assert set(layer) <= LAYER_KEYS
        used.update(name for name in (layer["weight"], layer["bias"]) if name is not None)
        maps += layer.get("before", []) + layer.get("after", [])
    used.update(name for item in maps for key, name in item["batchnorm"].items()
                if key != "eps" and name is not None)
    assert used == set(tensors), "every tensor is used, and only those"
    for array in tensors.values():
        assert array.dtype == np.float64


SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946

ACTIVATIONS = {
    "linear": lambda z, a: z,
    "identity": lambda z, a: z,
    "sigmoid": lambda z, a: expit(z),
    "tanh": lambda z, a: np.tanh(z),
    "relu": lambda z, a: np.maximum(z, 0.0),
    "leaky_relu": lambda z, a: np.where(z > 0, z, (0.01 if a is None else a) * z),
    "elu": lambda z, a: np.where(z > 0, z, (1.0 if a is None else a) * np.expm1(z)),
    "selu": lambda z, a: SELU_SCALE * np.where(z > 0, z, SELU_ALPHA * np.expm1(z)),
    "softplus": lambda z, a: np.logaddexp(0.0, z),
    "softsign": lambda z, a: z / (1.0 + np.abs(z)),
    "silu": lambda z, a: z * expit(z),
    "gelu": lambda z, a: 0.5 * z * (1.0 + erf(z / math.sqrt(2.0))),
    "gelu_tanh": lambda z, a: 0.5 * z * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (z + 0.044715 * z**3))),
    "exp": lambda z, a: np.exp(z),
    "softmax": lambda z, a: np.exp(z - z.max(axis=1, keepdims=True))
    / np.exp(z - z.max(axis=1, keepdims=True)).sum(axis=1, keepdims=True),
}


def forward(path, X):
    spec, tensors = read_model(path)
    return run_spec(spec, tensors, X, lambda z, name, alpha: ACTIVATIONS[name](z, alpha))


def relative_error(ours, reference):
    ours, reference = np.asarray(ours, float), np.asarray(reference, float)
    assert ours.shape == reference.shape
    return float(np.max(np.abs(ours - reference)) / max(np.max(np.abs(reference)), 1e-300))


def assert_same(ours, reference, rtol=RTOL):
    error = relative_error(ours, reference)
    assert error <= rtol, f"relative error {error:.3g} > {rtol}"


def assert_one_line_error(excinfo, *fragments):
    message = str(excinfo.value)
    assert "\n" not in message and message
    for fragment in fragments:
        assert fragment in message, message


# ---------------------------------------------------------------- scikit-learn


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3)) * [1.0, 3.0, 0.5] + [0.0, 10.0, -2.0]
    y = np.sin(X[:, 0]) + 0.1 * X[:, 1] * X[:, 2]
    return X, y


def fit(estimator, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: a few iterations are enough here
        return estimator.fit(X, y)


def mlp_regressor(**kwargs):
    from sklearn.neural_network import MLPRegressor

    options = dict(hidden_layer_sizes=(6, 5), solver="lbfgs", max_iter=60, random_state=0)
    options.update(kwargs)
    return MLPRegressor(**options)


# ---------------------------------------------------------------- PyTorch


def torch_net(*middle, n_in=3, hidden=5, n_out=2, seed=0):
    """Linear(n_in, hidden), *middle, Linear(hidden, n_out), in float64."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(n_in, hidden), *middle, torch.nn.Linear(hidden, n_out)).double()


def torch_predict(module, X):
    import torch

    with torch.no_grad():
        return module.eval()(torch.as_tensor(X, dtype=torch.float64)).numpy()


def points(n=50, n_in=3, seed=1, spread=2.0):
    return np.random.default_rng(seed).normal(size=(n, n_in)) * spread


TORCH_ACTIVATIONS = [
    ("Identity", {}, None),
    ("Tanh", {}, "tanh"),
    ("Sigmoid", {}, "sigmoid"),
    ("ReLU", {}, "relu"),
    ("LeakyReLU", {"negative_slope": 0.2}, "leaky_relu"),
    ("LeakyReLU", {}, "leaky_relu"),
    ("ELU", {"alpha": 0.7}, "elu"),
    ("SELU", {}, "selu"),
    ("Softplus", {}, "softplus"),
    ("Softsign", {}, "softsign"),
    ("SiLU", {}, "silu"),
    ("GELU", {}, "gelu"),
    ("GELU", {"approximate": "tanh"}, "gelu_tanh"),
]
