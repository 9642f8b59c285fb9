"""jaccli.export end to end: exported models through jaccli.load and the CLI.

Derivatives of exported PyTorch modules against torch autograd, of exported
scikit-learn models against finite differences of predict / predict_proba;
the CLI on exported files; no file left open; importing jaccli.export needs
neither torch nor scikit-learn.
"""

import os

import numpy as np
import pytest

from export_helpers import (IGNORE_TORCH_JIT_WARNING, TORCH_ACTIVATIONS, assert_same, fit, mlp_regressor,
                            points, torch_net)
from export_helpers import data  # noqa: F401 -- a fixture

pytestmark = IGNORE_TORCH_JIT_WARNING


# ---------------------------------------------------------------- end to end: jaccli.load and the CLI


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
