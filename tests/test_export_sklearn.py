"""jaccli.export.from_sklearn: files written from real scikit-learn models.

Each exported file is read back with an independent reader and forward pass
(export_helpers.py) and compared with the model's own predict / predict_proba
in float64; refusals are one line and leave no file.
"""

import os

import numpy as np
import pytest

import jaccli
from export_helpers import (IGNORE_TORCH_JIT_WARNING, assert_one_line_error, assert_same, fit, forward,
                            mlp_regressor, read_model)
from export_helpers import data  # noqa: F401 -- a fixture
from jaccli.errors import JaccliError

pytestmark = IGNORE_TORCH_JIT_WARNING


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
