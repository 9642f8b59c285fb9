"""jaccli.export: files written from real scikit-learn and PyTorch models.

Each exported file is read back here with numpy / h5py / yaml.safe_load and run
through a forward pass written in this file, independent of jaccli's engine,
and compared with the source library's own predictions in float64.
"""

import math
import os
import warnings

import numpy as np
import pytest
import yaml
from scipy.special import erf, expit

import jaccli
from jaccli.errors import JaccliError
from spec_forward import run_spec

# The fields a spec may have; the core rejects anything else.
SPEC_KEYS = {"inputs", "outputs", "layout", "input_scaling", "output_scaling", "layers", "output_maps"}
LAYER_KEYS = {"units", "activation", "weight", "bias", "alpha", "before", "after", "constant"}
SCALING_KEYS = {"offset", "scale"}

# The forward pass below must agree with the library to this relative error,
# measured against the largest output magnitude.
RTOL = 1e-12

# torch.func imports torch.jit.script, deprecated in torch 2.13: not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


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


@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_sklearn_regressor_round_trip(tmp_path, data, activation, suffix):
    pytest.importorskip("sklearn")
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from jaccli.export import from_sklearn

    X, y = data
    model = fit(make_pipeline(StandardScaler(), mlp_regressor(activation=activation)), X, y)
    path = tmp_path / f"model{suffix}"
    from_sklearn(model, path)
    assert_same(forward(path, X)[:, 0], model.predict(X))
    spec, _ = read_model(path)
    assert spec["inputs"] == 3 and spec["outputs"] == 1 and spec["layout"] == "in_out"
    assert [layer["weight"] for layer in spec["layers"]] == ["coefs_0", "coefs_1", "coefs_2"]
    assert os.listdir(tmp_path) == [path.name]  # no temporary file left behind


def test_sklearn_multi_output_and_names(tmp_path, data):
    pytest.importorskip("sklearn")
    from jaccli.export import from_sklearn

    X, y = data
    Y = np.column_stack([y, X[:, 0] * X[:, 1]])
    model = fit(mlp_regressor(activation="tanh"), X, Y)
    path = tmp_path / "model.npz"
    from_sklearn(model, path, input_names=["a", "b", "c"], output_names=["u", "v"])
    assert_same(forward(path, X), model.predict(X))
    spec, _ = read_model(path)
    assert spec["inputs"] == ["a", "b", "c"] and spec["outputs"] == ["u", "v"]
    assert "input_scaling" not in spec and "output_scaling" not in spec


def test_sklearn_poisson_output_is_exp(tmp_path, data):
    pytest.importorskip("sklearn")
    from jaccli.export import from_sklearn

    X, y = data
    model = fit(mlp_regressor(activation="tanh", loss="poisson"), X, np.exp(y / 4))
    from_sklearn(model, tmp_path / "model.npz")
    spec, _ = read_model(tmp_path / "model.npz")
    assert spec["layers"][-1]["activation"] == "exp"
    assert_same(forward(tmp_path / "model.npz", X)[:, 0], model.predict(X))


@pytest.mark.parametrize(
    "scaler_factory",
    [
        lambda p: p.StandardScaler(),
        lambda p: p.StandardScaler(with_mean=False),
        lambda p: p.StandardScaler(with_std=False),
        lambda p: p.StandardScaler(with_mean=False, with_std=False),
        lambda p: p.MinMaxScaler(),
        lambda p: p.MinMaxScaler(feature_range=(-1, 3)),
        lambda p: p.RobustScaler(),
        lambda p: p.MaxAbsScaler(),
    ],
    ids=["standard", "std-only", "mean-only", "standard-identity", "minmax", "minmax-range", "robust", "maxabs"],
)
def test_sklearn_scalers_as_argument_and_in_pipeline(tmp_path, data, scaler_factory):
    pytest.importorskip("sklearn")
    from sklearn import preprocessing
    from sklearn.pipeline import make_pipeline

    from jaccli.export import from_sklearn

    X, y = data
    scaler = scaler_factory(preprocessing).fit(X)
    mlp = fit(mlp_regressor(activation="tanh"), scaler.transform(X), y)
    expected = mlp.predict(scaler.transform(X))

    from_sklearn(mlp, tmp_path / "argument.npz", scaler=scaler)
    assert_same(forward(tmp_path / "argument.npz", X)[:, 0], expected)
    pipeline = make_pipeline(scaler, mlp)  # already fitted: the same function
    from_sklearn(pipeline, tmp_path / "pipeline.h5")
    assert_same(forward(tmp_path / "pipeline.h5", X)[:, 0], pipeline.predict(X))


def test_minmax_scaler_as_offset_and_scale(tmp_path, data):
    """x * scale_ + min_ == (x - offset) / scale with offset = -min_/scale_, scale = 1/scale_."""
    pytest.importorskip("sklearn")
    from sklearn.preprocessing import MinMaxScaler

    from jaccli.export import from_sklearn

    X, y = data
    scaler = MinMaxScaler(feature_range=(-2, 5)).fit(X)
    mlp = fit(mlp_regressor(activation="relu"), scaler.transform(X), y)
    from_sklearn(mlp, tmp_path / "model.npz", scaler=scaler)
    spec, _ = read_model(tmp_path / "model.npz")
    offset = np.array(spec["input_scaling"]["offset"])
    scale = np.array(spec["input_scaling"]["scale"])
    np.testing.assert_array_equal(offset, -scaler.min_ / scaler.scale_)  # YAML floats are exact
    np.testing.assert_array_equal(scale, 1.0 / scaler.scale_)
    assert_same((X - offset) / scale, scaler.transform(X), rtol=1e-14)


def test_sklearn_scaler_argument_composes_with_pipeline(tmp_path, data):
    pytest.importorskip("sklearn")
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    from jaccli.export import from_sklearn

    X, y = data
    outer = StandardScaler().fit(X)
    pipeline = fit(make_pipeline(MinMaxScaler(), "passthrough", mlp_regressor(activation="tanh")), outer.transform(X), y)
    from_sklearn(pipeline, tmp_path / "model.npz", scaler=outer)
    assert_same(forward(tmp_path / "model.npz", X)[:, 0], pipeline.predict(outer.transform(X)))


@pytest.mark.parametrize("target_scaler", ["standard", "minmax", "none"])
def test_sklearn_transformed_target_regressor(tmp_path, data, target_scaler):
    pytest.importorskip("sklearn")
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    from jaccli.export import from_sklearn

    X, y = data
    transformer = {"standard": StandardScaler(), "minmax": MinMaxScaler(), "none": None}[target_scaler]
    regressor = make_pipeline(StandardScaler(), mlp_regressor(activation="tanh"))
    model = fit(TransformedTargetRegressor(regressor=regressor, transformer=transformer), X, 5 * y + 100)
    from_sklearn(model, tmp_path / "model.npz")
    spec, _ = read_model(tmp_path / "model.npz")
    assert ("output_scaling" in spec) == (target_scaler != "none")
    assert_same(forward(tmp_path / "model.npz", X)[:, 0], model.predict(X))


def test_sklearn_nested_target_regressors_apply_inner_inverse_first(tmp_path, data):
    """predict = outer.inverse(inner.inverse(net)): the output scalings compose in that order."""
    pytest.importorskip("sklearn")
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    from jaccli.export import from_sklearn

    X, y = data
    inner = TransformedTargetRegressor(regressor=mlp_regressor(activation="tanh"), transformer=StandardScaler())
    model = fit(TransformedTargetRegressor(regressor=inner, transformer=MinMaxScaler()), X, 5 * y + 100)
    from_sklearn(model, tmp_path / "model.npz")
    assert_same(forward(tmp_path / "model.npz", X)[:, 0], model.predict(X))


def test_sklearn_binary_classifier_has_both_probabilities(tmp_path, data):
    pytest.importorskip("sklearn")
    from sklearn.neural_network import MLPClassifier

    from jaccli.export import from_sklearn

    X, y = data
    labels = np.where(y > np.median(y), "high", "low")
    model = fit(MLPClassifier(hidden_layer_sizes=(5,), solver="lbfgs", max_iter=60, random_state=0), X, labels)
    from_sklearn(model, tmp_path / "model.npz")
    spec, _ = read_model(tmp_path / "model.npz")
    assert spec["outputs"] == ["high", "low"] and spec["layers"][-2]["activation"] == "sigmoid"
    # Two columns, as predict_proba: 1 - p and p; the complement is a constant layer.
    assert spec["layers"][-1]["constant"] is True
    assert_same(forward(tmp_path / "model.npz", X), model.predict_proba(X))
    loaded = jaccli.load(tmp_path / "model.npz")
    assert not any(name.startswith("complement") for name, _ in loaded.parameters)
    assert_same(loaded.value(X), model.predict_proba(X))


def test_sklearn_multiclass_classifier_is_softmax(tmp_path, data):
    pytest.importorskip("sklearn")
    from sklearn.neural_network import MLPClassifier

    from jaccli.export import from_sklearn

    X, y = data
    labels = np.digitize(y, np.quantile(y, [0.33, 0.66]))
    model = fit(MLPClassifier(hidden_layer_sizes=(5,), activation="tanh", solver="lbfgs", max_iter=60, random_state=0), X, labels)
    from_sklearn(model, tmp_path / "model.h5")
    spec, _ = read_model(tmp_path / "model.h5")
    assert spec["outputs"] == ["0", "1", "2"] and spec["layers"][-1]["activation"] == "softmax"
    assert_same(forward(tmp_path / "model.h5", X), model.predict_proba(X))


def test_sklearn_feature_names_become_input_names(tmp_path, data):
    pytest.importorskip("sklearn")
    pd = pytest.importorskip("pandas")
    from jaccli.export import from_sklearn

    X, y = data
    frame = pd.DataFrame(X, columns=["temperature", "pressure", "flow"])
    model = fit(mlp_regressor(), frame, y)
    from_sklearn(model, tmp_path / "model.npz")
    assert read_model(tmp_path / "model.npz")[0]["inputs"] == ["temperature", "pressure", "flow"]


def test_sklearn_refusals(tmp_path, data):
    pytest.importorskip("sklearn")
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.decomposition import PCA
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler
    from sklearn.svm import SVR

    from jaccli.export import from_sklearn

    X, y = data
    path = tmp_path / "model.npz"
    cases = [
        (lambda: from_sklearn(fit(SVR(), X, y), path), ["SVR is not supported"]),
        (lambda: from_sklearn(mlp_regressor(), path), ["MLPRegressor is not fitted"]),
        (lambda: from_sklearn(fit(make_pipeline(PCA(2), mlp_regressor()), X, y), path), ["PCA is not supported"]),
        (lambda: from_sklearn(fit(make_pipeline(MinMaxScaler(clip=True), mlp_regressor()), X, y), path), ["clip=True"]),
        (
            lambda: from_sklearn(fit(TransformedTargetRegressor(mlp_regressor(), func=np.log1p, inverse_func=np.expm1), X, y**2), path),
            ["func"],
        ),
        (lambda: from_sklearn(fit(mlp_regressor(), X, y), path, input_names=["a", "b"]), ["2 input names", "3 inputs"]),
        (lambda: from_sklearn(fit(mlp_regressor(), X, y), path, output_names=["y", "z"]), ["2 output names"]),
        (lambda: from_sklearn(fit(mlp_regressor(), X, y), path, input_names=["a", "a", "b"]), ["distinct"]),
        (lambda: from_sklearn(fit(mlp_regressor(), X, y), tmp_path / "model.pkl"), [".npz, .h5, .hdf5 or .safetensors"]),
        (
            lambda: from_sklearn(fit(make_pipeline(MinMaxScaler(), mlp_regressor()), X, y), path, scaler=MinMaxScaler().fit(X[:, :2])),
            ["from_sklearn(Pipeline): two scalings of 2 and 3 columns"],
        ),
        (lambda: from_sklearn(fit(mlp_regressor(), X, y), tmp_path / "missing" / "m.npz"), ["does not exist"]),
    ]
    for call, fragments in cases:
        with pytest.raises(JaccliError) as excinfo:
            call()
        assert_one_line_error(excinfo, *fragments)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("sidecar, text, model", [
    ("model.yaml", "inputs: 1\n", "model.npz"),
    # a Keras model's to_json() beside an HDF5 file wins over the embedded spec too
    ("model.json", '{"class_name": "Sequential", "config": {"layers": []}}', "model.h5"),
])
def test_refuses_when_a_sidecar_spec_would_win(tmp_path, data, sidecar, text, model):
    """model.yaml next to model.npz takes precedence over the embedded spec (the first match wins)."""
    pytest.importorskip("sklearn")
    from jaccli.export import from_sklearn

    X, y = data
    (tmp_path / sidecar).write_text(text)
    with pytest.raises(JaccliError) as excinfo:
        from_sklearn(fit(mlp_regressor(), X, y), tmp_path / model)
    assert_one_line_error(excinfo, sidecar, "instead of the spec embedded")
    assert sorted(os.listdir(tmp_path)) == [sidecar]


def test_a_json_beside_that_would_not_be_read_does_not_matter(tmp_path, data):
    pytest.importorskip("sklearn")
    from jaccli.export import from_sklearn

    X, y = data
    (tmp_path / "model.json").write_text('{"class_name": "Sequential", "config": {"layers": []}}')
    from_sklearn(fit(mlp_regressor(), X, y), tmp_path / "model.npz")  # NPZ: a Keras JSON is not its spec
    (tmp_path / "model.json").write_text('{"learning_rate": 0.1}')  # not a Keras model
    from_sklearn(fit(mlp_regressor(), X, y), tmp_path / "model.h5")


def test_failed_write_leaves_the_old_file_untouched(tmp_path, data, monkeypatch):
    pytest.importorskip("sklearn")
    from jaccli.export import from_sklearn

    X, y = data
    path = tmp_path / "model.npz"
    path.write_bytes(b"previous model")

    def broken_savez(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError):
        from_sklearn(fit(mlp_regressor(), X, y), path)
    assert path.read_bytes() == b"previous model"
    assert os.listdir(tmp_path) == ["model.npz"]


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


@pytest.mark.parametrize("name,kwargs,ours", TORCH_ACTIVATIONS, ids=[f"{n}{k}" for n, k, _ in TORCH_ACTIVATIONS])
@pytest.mark.parametrize("suffix", [".npz", ".hdf5"])
def test_torch_activation_round_trip(tmp_path, name, kwargs, ours, suffix):
    torch = pytest.importorskip("torch")
    from jaccli.export import from_torch

    module = torch_net(getattr(torch.nn, name)(**kwargs))
    path = tmp_path / f"model{suffix}"
    from_torch(module, path)
    X = points()
    assert_same(forward(path, X), torch_predict(module, X))
    spec, tensors = read_model(path)
    assert spec["layout"] == "out_in"
    assert [layer["weight"] for layer in spec["layers"]] == ["0.weight", "2.weight"]
    assert spec["layers"][0]["activation"] == (ours or "linear")
    if "alpha" in spec["layers"][0]:
        assert spec["layers"][0]["alpha"] == kwargs.get("negative_slope", kwargs.get("alpha", 0.01))
    np.testing.assert_array_equal(tensors["0.weight"], module[0].weight.detach().numpy())


def test_torch_softplus_threshold_difference_is_below_exp_minus_20(tmp_path):
    """torch's Softplus returns x itself above threshold=20; ours is log(1 + e^x) everywhere."""
    torch = pytest.importorskip("torch")
    from jaccli.export import from_torch

    module = torch.nn.Sequential(torch.nn.Linear(1, 1), torch.nn.Softplus()).double()
    with torch.no_grad():
        module[0].weight.fill_(1.0)
        module[0].bias.fill_(0.0)
    from_torch(module, tmp_path / "model.npz")
    X = np.array([[19.0], [20.5], [25.0], [-30.0]])
    difference = np.abs(forward(tmp_path / "model.npz", X) - torch_predict(module, X))
    assert np.all(difference <= math.exp(-20))


def test_torch_nested_sequential_dropout_flatten_no_bias_softmax(tmp_path):
    torch = pytest.importorskip("torch")
    nn = torch.nn
    from jaccli.export import from_torch

    torch.manual_seed(0)
    module = nn.Sequential(
        nn.Flatten(),
        nn.Sequential(nn.Linear(4, 6, bias=False), nn.Tanh(), nn.Dropout(0.5)),
        nn.Sequential(nn.Sequential(nn.Linear(6, 5), nn.Identity(), nn.ELU())),
        nn.AlphaDropout(0.1),
        nn.Linear(5, 3),
        nn.Softmax(dim=1),
    ).double()
    path = tmp_path / "model.h5"
    from_torch(module, path, input_names=["a", "b", "c", "d"], output_names=["p", "q", "r"])
    X = points(n_in=4)
    assert_same(forward(path, X), torch_predict(module, X))
    spec, tensors = read_model(path)
    assert spec["inputs"] == ["a", "b", "c", "d"] and spec["outputs"] == ["p", "q", "r"]
    assert [(layer["weight"], layer["bias"], layer["activation"]) for layer in spec["layers"]] == [
        ("1.0.weight", None, "tanh"),
        ("2.0.0.weight", "2.0.0.bias", "elu"),
        ("4.weight", "4.bias", "softmax"),
    ]
    assert set(tensors) == set(dict(module.named_parameters()))  # the state_dict names


def test_torch_batchnorm_folded_exactly(tmp_path):
    torch = pytest.importorskip("torch")
    nn = torch.nn
    from jaccli.export import from_torch

    torch.manual_seed(0)
    module = nn.Sequential(
        nn.BatchNorm1d(3),  # first: folded into the next Linear's columns
        nn.Linear(3, 6),
        nn.BatchNorm1d(6),  # right after a Linear: folded into its rows
        nn.ReLU(),
        nn.BatchNorm1d(6, affine=False),  # after an activation: into the next Linear
        nn.BatchNorm1d(6),  # two in a row compose
        nn.Linear(6, 2, bias=False),
    ).double()
    with torch.no_grad():  # non-trivial running statistics and affine parameters
        for bn in (module[0], module[2], module[4], module[5]):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
            if bn.affine:
                bn.weight.uniform_(0.5, 1.5)
                bn.bias.uniform_(-0.5, 0.5)
    path = tmp_path / "model.npz"
    from_torch(module, path)
    X = points()
    assert_same(forward(path, X), torch_predict(module, X))
    spec, _ = read_model(path)
    assert [(layer["weight"], layer["bias"]) for layer in spec["layers"]] == [
        ("1.weight", "1.bias"), ("6.weight", None)]
    # The parameters are torch's own (BatchNorm weight and bias after the weight and
    # bias of the layer they fold into, running statistics not at all), each column the
    # derivative torch.func gives.
    model = jaccli.load(path)
    assert [name for name, _ in model.parameters] == [
        "1.weight", "1.bias", "0.weight", "0.bias", "2.weight", "2.bias", "6.weight",
        "5.weight", "5.bias"]
    assert_torch_parameter_columns(module, model, X)


def assert_torch_parameter_columns(module, model, X):
    """Each column block of ``model.param_jacobian`` against torch.func, by tensor name."""
    import torch
    from torch.func import functional_call, jacrev

    module.eval()
    params = {name: p.detach() for name, p in module.named_parameters()}

    def f(p, x):
        return functional_call(module, p, (x[None],))[0]

    ours = model.param_jacobian(X)
    for i, x in enumerate(X):
        theirs = jacrev(f)(params, torch.tensor(x))
        for info in model.parameter_table:
            block = ours[i, :, info.offset:info.offset + info.size].reshape(-1, *info.shape)
            np.testing.assert_allclose(block, theirs[info.name].numpy(), rtol=0, atol=1e-12)


def test_torch_trailing_batchnorm_and_reused_modules(tmp_path):
    """A BatchNorm after the last activation (its parameters are the output maps'), an
    activation object and a Linear each run twice (tied weights: listed once, summed)."""
    torch = pytest.importorskip("torch")
    nn = torch.nn
    from jaccli.export import from_torch

    torch.manual_seed(1)
    act, shared = nn.Tanh(), nn.Linear(4, 4)
    module = nn.Sequential(nn.Linear(3, 4), act, shared, act, shared, nn.Sigmoid(),
                           nn.BatchNorm1d(4)).double()
    with torch.no_grad():
        module[6].running_mean.uniform_(-1, 1)
        module[6].running_var.uniform_(0.5, 2)
        module[6].weight.uniform_(-1.5, 1.5)
    module.eval()
    path = tmp_path / "model.safetensors"
    from_torch(module, path)
    X = points()
    model = jaccli.load(path)
    assert model.architecture == "3 in -> 4 tanh -> 4 tanh -> 4 sigmoid -> 4 linear"
    assert [name for name, _ in model.parameters] == [
        "0.weight", "0.bias", "2.weight", "2.bias", "6.weight", "6.bias"]
    assert_same(model.value(X), torch_predict(module, X))
    assert_torch_parameter_columns(module, model, X)


def test_torch_scalings(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    from sklearn.preprocessing import StandardScaler

    from jaccli.export import from_torch

    module = torch_net(torch.nn.Tanh())
    X = points() * [1.0, 10.0, 0.1] + [5.0, -3.0, 0.0]
    scaler = StandardScaler().fit(X)
    offset, scale = np.array([100.0, -1.0]), np.array([3.0, 0.5])
    expected = torch_predict(module, scaler.transform(X)) * scale + offset

    from_torch(module, tmp_path / "a.npz", input_scaling=scaler, output_scaling={"offset": offset, "scale": scale})
    assert_same(forward(tmp_path / "a.npz", X), expected)
    from_torch(
        module,
        tmp_path / "b.npz",
        input_scaling={"offset": scaler.mean_, "scale": scaler.scale_},
        output_scaling={"offset": 0.0, "scale": 2.0},  # scalars apply to every output
    )
    spec, _ = read_model(tmp_path / "b.npz")
    assert spec["output_scaling"] == {"offset": [0.0, 0.0], "scale": [2.0, 2.0]}


def test_torch_float32_module_is_written_as_float64(tmp_path):
    torch = pytest.importorskip("torch")
    from jaccli.export import from_torch

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))  # float32
    from_torch(module, tmp_path / "model.npz")
    _, tensors = read_model(tmp_path / "model.npz")
    np.testing.assert_array_equal(tensors["0.weight"], module[0].weight.detach().double().numpy())


def test_torch_refusals(tmp_path):
    torch = pytest.importorskip("torch")
    nn = torch.nn
    from jaccli.export import from_torch

    class Custom(nn.Module):
        def forward(self, x):
            return x

    class MySequential(nn.Sequential):
        def forward(self, x):
            return super().forward(x) * 2

    class MyLinear(nn.Linear):
        def forward(self, x):
            return super().forward(x) + 1

    hooked = nn.Sequential(nn.Linear(3, 2))
    hooked[0].register_forward_hook(lambda module, inputs, output: output * 2)
    path = tmp_path / "model.npz"
    cases = [
        (nn.Sequential(nn.Linear(3, 4), nn.Conv1d(1, 1, 1)), ["module 1 (Conv1d) is not supported (supported: Linear"]),
        (nn.Sequential(nn.Linear(3, 4), nn.Sequential(nn.Tanh(), Custom())), ["module 1.1 (Custom)"]),
        (nn.Sequential(nn.Tanh(), nn.Linear(3, 4)), ["module 0 (Tanh)", "directly follow a Linear"]),
        (nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.ReLU()), ["module 2 (ReLU)", "two activations"]),
        (nn.Sequential(nn.Linear(3, 4), nn.Softmax(dim=-1), nn.Linear(4, 2)), ["module 2 (Linear)", "Softmax must be the last"]),
        (nn.Sequential(nn.Linear(3, 4), nn.Softmax(dim=0)), ["module 1 (Softmax) is not supported (dim=0; only dim=-1 or 1)"]),
        (nn.Sequential(nn.Linear(3, 4), nn.Softplus(beta=2)), ["module 1 (Softplus) is not supported (only beta=1"]),
        (nn.Sequential(nn.Linear(3, 4), nn.ReLU6()), ["module 1 (ReLU6)"]),
        (nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4, track_running_stats=False)), ["running statistics"]),
        (nn.Sequential(nn.Flatten(0)), ["module 0 (Flatten) is not supported (only Flatten()"]),
        (nn.Sequential(nn.Dropout()), ["no Linear layer"]),
        (nn.Sequential(nn.Linear(3, 4), nn.Linear(5, 1)), ["module 1 (Linear) takes 5 inputs but receives 4"]),
        (nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(5), nn.Linear(5, 1)), ["module 1 (BatchNorm1d) takes 5 inputs but receives 4"]),
        (nn.Sequential(nn.LazyLinear(4)), ["lazy"]),
        (nn.Sequential(MyLinear(3, 4)), ["module 0 (MyLinear)"]),
        (MySequential(nn.Linear(3, 4)), ["only torch.nn.Sequential"]),
        (nn.Linear(3, 4), ["only torch.nn.Sequential"]),
        (hooked, ["module 0 (Linear) has forward hooks"]),
    ]
    for module, fragments in cases:
        with pytest.raises(JaccliError) as excinfo:
            from_torch(module, path)
        assert_one_line_error(excinfo, *fragments)
    with pytest.raises(JaccliError) as excinfo:
        from_torch(torch_net(), path, input_scaling={"offset": [0, 0, 0], "scale": [1, 0, 1]})
    assert_one_line_error(excinfo, "zero scale")
    with pytest.raises(JaccliError) as excinfo:
        from_torch(torch_net(), path, input_scaling={"mean": 0, "scale": 1})
    assert_one_line_error(excinfo, "offset and scale")
    module = torch_net()
    with torch.no_grad():
        module[0].weight[0, 0] = float("nan")
    with pytest.raises(JaccliError) as excinfo:
        from_torch(module, path)
    assert_one_line_error(excinfo, "module 0 (Linear) weight holds a non-finite value (nan)")
    assert os.listdir(tmp_path) == []


def test_import_needs_neither_torch_nor_sklearn():
    import subprocess
    import sys

    # Make both imports fail, then import the module: it must not touch them.
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['sklearn'] = None\n"
        "import jaccli.export\n"
        "from jaccli.export import from_sklearn, from_torch\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------- end to end: jaccli.load and the CLI


def torch_derivatives(module, X):
    """value (N, m), jacobian (N, m, n), hessian (N, m, n, n) and the parameter
    Jacobian {name: (N, m, *shape)} of a float64 module, by torch autograd."""
    import torch
    from torch.func import functional_call, hessian, jacrev, vmap

    module = module.eval()
    x = torch.as_tensor(X, dtype=torch.float64)
    params = {name: p.detach() for name, p in module.named_parameters()}

    def single(point):  # one point (n,) -> (m,)
        return module(point.unsqueeze(0)).squeeze(0)

    with torch.no_grad():
        value = module(x)
    jacobian = vmap(jacrev(single))(x)
    hess = vmap(hessian(single))(x)
    param_jacobian = jacrev(lambda p: functional_call(module, p, (x,)))(params)
    detached = lambda tensor: tensor.detach().numpy()
    return detached(value), detached(jacobian), detached(hess), {k: detached(v) for k, v in param_jacobian.items()}


@pytest.mark.parametrize("name,kwargs,ours", TORCH_ACTIVATIONS, ids=[f"{n}{k}" for n, k, _ in TORCH_ACTIVATIONS])
def test_torch_derivatives_match_autograd(tmp_path, name, kwargs, ours):
    torch = pytest.importorskip("torch")
    import jaccli
    from jaccli.export import from_torch

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(3, 5), getattr(torch.nn, name)(**kwargs),
                                 torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)).double()
    path = tmp_path / "model.npz"
    from_torch(module, path)
    model = jaccli.load(path)
    X = points(n=6)
    value, jacobian, hess, param_jacobian = torch_derivatives(module, X)
    assert_same(model.value(X), value)
    assert_same(model.jacobian(X), jacobian)
    assert_same(model.hessian(X), hess)
    assert_same(model.hessdiag(X), np.diagonal(hess, axis1=2, axis2=3))
    assert_same(model.laplacian(X), np.trace(hess, axis1=2, axis2=3))
    # Parameter order: layer by layer, weight then bias, each flattened in its stored shape.
    assert [name for name, _ in model.parameters] == [name for name, _ in module.named_parameters()]
    expected = np.concatenate([param_jacobian[name].reshape(len(X), 2, -1) for name, _ in model.parameters], axis=2)
    assert_same(model.param_jacobian(X), expected)


def test_torch_softmax_and_batchnorm_through_jaccli(tmp_path):
    torch = pytest.importorskip("torch")
    nn = torch.nn
    import jaccli
    from jaccli.export import from_torch

    torch.manual_seed(3)
    module = nn.Sequential(nn.Linear(3, 6), nn.BatchNorm1d(6), nn.SiLU(), nn.Linear(6, 3), nn.Softmax(dim=-1)).double()
    with torch.no_grad():
        module[1].running_mean.uniform_(-1, 1)
        module[1].running_var.uniform_(0.5, 2)
    path = tmp_path / "model.h5"
    from_torch(module, path, input_scaling={"offset": [1.0, 2.0, 3.0], "scale": [2.0, 0.5, 4.0]})
    model = jaccli.load(path)
    X = points(n=6)
    value, jacobian, hess, _ = torch_derivatives(module, (X - [1.0, 2.0, 3.0]) / [2.0, 0.5, 4.0])
    chain = 1.0 / np.array([2.0, 0.5, 4.0])  # d(scaled x)/dx
    assert_same(model.value(X), value)
    assert_same(model.jacobian(X), jacobian * chain)
    assert_same(model.hessdiag(X), np.diagonal(hess, axis1=2, axis2=3) * chain**2)


def central_differences(f, X, h):
    """df/dx_j and d2f/dx_j2 for f: (N, n) -> (N, m), by central differences."""
    base = f(X)
    first, second = [], []
    for j in range(X.shape[1]):
        step = np.zeros(X.shape[1])
        step[j] = h
        plus, minus = f(X + step), f(X - step)
        first.append((plus - minus) / (2 * h))
        second.append((plus - 2 * base + minus) / h**2)
    return np.stack(first, axis=2), np.stack(second, axis=2)


def as_columns(y):
    return y.reshape(len(y), -1)


@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
def test_sklearn_regressor_derivatives_match_finite_differences(tmp_path, data, activation):
    pytest.importorskip("sklearn")
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    import jaccli
    from jaccli.export import from_sklearn

    X, y = data
    pipeline = make_pipeline(MinMaxScaler(), mlp_regressor(activation=activation))
    model = fit(TransformedTargetRegressor(regressor=pipeline, transformer=StandardScaler()), X, 3 * y + 7)
    path = tmp_path / "model.npz"
    from_sklearn(model, path)
    loaded = jaccli.load(path)
    Xq = X[:8]
    predict = lambda points: as_columns(model.predict(points))
    assert_same(loaded.value(Xq), predict(Xq))
    jacobian, _ = central_differences(predict, Xq, 1e-6)
    assert_same(loaded.jacobian(Xq), jacobian, rtol=1e-7)
    if activation in ("logistic", "tanh"):  # smooth: the second differences mean something
        _, hessdiag = central_differences(predict, Xq, 1e-4)
        assert_same(loaded.hessdiag(Xq), hessdiag, rtol=1e-4)
    if activation == "relu":  # piecewise linear: second derivatives are 0
        assert np.all(loaded.hessdiag(Xq) == 0)


def test_sklearn_classifiers_derivatives_match_finite_differences(tmp_path, data):
    pytest.importorskip("sklearn")
    from sklearn.neural_network import MLPClassifier

    import jaccli
    from jaccli.export import from_sklearn

    X, y = data
    for labels in (y > np.median(y), np.digitize(y, np.quantile(y, [0.33, 0.66]))):
        model = fit(MLPClassifier(hidden_layer_sizes=(5,), activation="tanh", solver="lbfgs", max_iter=60, random_state=0), X, labels)
        path = tmp_path / "model.npz"
        from_sklearn(model, path)
        loaded = jaccli.load(path)
        probability = model.predict_proba
        jacobian, _ = central_differences(probability, X[:8], 1e-6)
        assert_same(loaded.value(X[:8]), probability(X[:8]))
        assert_same(loaded.jacobian(X[:8]), jacobian, rtol=1e-7)
        _, hessdiag = central_differences(probability, X[:8], 1e-4)
        assert_same(loaded.hessdiag(X[:8]), hessdiag, rtol=1e-4)


def test_sklearn_parameter_jacobian_matches_finite_differences(tmp_path, data):
    """Parameter order: coefs_0 (in, out) in C order, intercepts_0, coefs_1, ..."""
    pytest.importorskip("sklearn")
    import jaccli
    from jaccli.export import from_sklearn

    X, y = data
    mlp = fit(mlp_regressor(activation="tanh", hidden_layer_sizes=(4,)), X, y)
    from_sklearn(mlp, tmp_path / "model.npz")
    loaded = jaccli.load(tmp_path / "model.npz")
    assert loaded.parameters == [("coefs_0", (3, 4)), ("intercepts_0", (4,)), ("coefs_1", (4, 1)), ("intercepts_1", (1,))]
    Xq, h, columns = X[:5], 1e-6, []
    for tensor in [t for pair in zip(mlp.coefs_, mlp.intercepts_) for t in pair]:
        for index in np.ndindex(tensor.shape):
            saved = tensor[index]
            tensor[index] = saved + h
            plus = mlp.predict(Xq)
            tensor[index] = saved - h
            minus = mlp.predict(Xq)
            tensor[index] = saved
            columns.append((plus - minus) / (2 * h))
    assert_same(loaded.param_jacobian(Xq), np.stack(columns, axis=1)[:, np.newaxis, :], rtol=1e-7)


def run_cli(*args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-c", "from jaccli.cli import main; main()", *map(str, args)],
                          capture_output=True, text=True)


def test_cli_on_exported_models(tmp_path, data):
    pytest.importorskip("sklearn")
    torch = pytest.importorskip("torch")
    import jaccli
    from jaccli.export import from_sklearn, from_torch

    X, y = data
    from_sklearn(fit(mlp_regressor(activation="tanh"), X, y), tmp_path / "sk.npz", input_names=["a", "b", "c"])
    from_torch(torch_net(torch.nn.GELU()), tmp_path / "torch.h5")

    info = run_cli("info", tmp_path / "torch.h5")
    assert info.returncode == 0, info.stderr
    assert "0.weight" in info.stdout + info.stderr and "2.bias" in info.stdout + info.stderr

    np.savetxt(tmp_path / "pts.csv", X[:4], delimiter=",", header="a,b,c", comments="")
    jacobian = run_cli("jacobian", tmp_path / "sk.npz", "--points", tmp_path / "pts.csv", "--quiet")
    assert jacobian.returncode == 0, jacobian.stderr
    header, *rows = jacobian.stdout.strip().splitlines()
    assert header == "dy1/da,dy1/db,dy1/dc"
    expected = jaccli.load(tmp_path / "sk.npz").jacobian(X[:4]).reshape(4, -1)
    np.testing.assert_array_equal(np.array([[float(v) for v in row.split(",")] for row in rows]), expected)


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_loading_an_exported_model_leaves_no_file_open(tmp_path, data, suffix):
    pytest.importorskip("sklearn")
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc/self/fd")
    import jaccli
    from jaccli.export import from_sklearn

    X, y = data
    path = tmp_path / f"model{suffix}"
    from_sklearn(fit(mlp_regressor(), X, y), path)
    model = jaccli.load(path)

    def open_files():
        names = set()
        for fd in os.listdir("/proc/self/fd"):
            try:
                names.add(os.readlink(f"/proc/self/fd/{fd}"))
            except OSError:
                pass
        return names

    assert str(path) not in open_files()
    assert model.value(X[:2]).shape == (2, 1)  # the tensors were read before closing
