"""jaccli.export.from_torch: files written from real PyTorch modules.

Each exported file is read back with an independent reader and forward pass
(export_helpers.py) and compared with the module's own output in float64;
BatchNorm folding and tied modules are checked against torch.func; refusals
are one line and leave no file.
"""

import os

import numpy as np
import pytest

import jaccli
from export_helpers import (IGNORE_TORCH_JIT_WARNING, TORCH_ACTIVATIONS, assert_one_line_error,
                            assert_same, forward, points, read_model, torch_net, torch_predict)
from jaccli.errors import JaccliError

pytestmark = IGNORE_TORCH_JIT_WARNING


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


def test_torch_softplus_threshold_is_torchs(tmp_path):
    """torch's Softplus returns x itself where beta x > threshold (20 by default): the
    spec says so, and jaccli computes what torch does on both sides of it."""
    torch = pytest.importorskip("torch")
    import jaccli
    from jaccli.export import from_torch

    module = torch.nn.Sequential(torch.nn.Linear(1, 1), torch.nn.Softplus(beta=0.5)).double()
    with torch.no_grad():
        module[0].weight.fill_(1.0)
        module[0].bias.fill_(0.0)
    from_torch(module, tmp_path / "model.npz")
    spec, _ = read_model(tmp_path / "model.npz")
    assert (spec["layers"][0]["beta"], spec["layers"][0]["threshold"]) == (0.5, 20.0)
    X = np.array([[19.0], [39.5], [40.0], [40.5], [25.0], [-30.0]])
    np.testing.assert_allclose(jaccli.load(str(tmp_path / "model.npz")).value(X),
                               torch_predict(module, X), rtol=1e-15, atol=0)


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
        (nn.Sequential(nn.Linear(3, 4), nn.Softmax(dim=0)), ["module 1 (Softmax) is not supported (dim=0; only dim=-1 or 1)"]),
        (nn.Sequential(nn.Linear(3, 4), nn.Hardshrink()), ["module 1 (Hardshrink) is not supported"]),
        (nn.Sequential(nn.PReLU(), nn.Linear(3, 4)), ["module 0 (PReLU)", "directly follow a Linear"]),
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
