"""Vector activations (softmax, log_softmax, layer_norm) on any layer, through the export paths.

Each net is float64, seeded, exported through one path of paths.PATHS and
checked by harness.check_file against torch.func on the net itself (value,
Jacobian, Hessian diagonal, Hessian, and the parameter Jacobian by the file's
tensor names in the file's shapes, to 1e-12). A refusal fails: these nets
must be read, and read exactly.
"""

import dataclasses
import warnings

import pytest

import numpy as np

from . import harness, oracles
from .architectures import random_points
from .paths import exported_module, path_named, require_pass

torch = pytest.importorskip("torch")
nn = torch.nn
pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore::FutureWarning")]

TORCH_PATHS = ["from_torch-npz", "onnx-legacy", "onnx-dynamo"]


def write_opset_16(source, folder):
    """The legacy exporter at opset 16, before LayerNormalization: it writes LayerNorm out
    as ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div (+ Mul, + Add)."""
    file = folder / "model.onnx"
    x = torch.as_tensor(source.X[:1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(exported_module(source), (x,), str(file), dynamo=False, opset_version=16,
                          input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
    return file, {}


def exact(build, path_name, tmp_path):
    """``paths.require_pass`` through ``path_name``, or the legacy exporter at opset 16."""
    path = path_named(path_name) if path_name != "onnx-legacy-16" else dataclasses.replace(
        path_named("onnx-legacy"), name=path_name, write=write_opset_16)
    require_pass(build, path, tmp_path)


SOFTMAX_NETS = {
    # a hidden softmax, m < n: the tangent-adjoint sweeps
    "hidden": lambda: nn.Sequential(nn.Linear(4, 5), nn.Softmax(dim=-1), nn.Linear(5, 6), nn.Tanh(),
                                    nn.Linear(6, 2)),
    # the first layer's softmax, then another at the output, m > n: the Taylor path
    "first-and-last": lambda: nn.Sequential(nn.Linear(2, 5), nn.Softmax(dim=-1), nn.Linear(5, 3),
                                            nn.Softmax(dim=-1)),
    "last": lambda: nn.Sequential(nn.Linear(3, 6), nn.SiLU(), nn.Linear(6, 3), nn.Softmax(dim=-1)),
}


@pytest.mark.parametrize("path_name", TORCH_PATHS)
@pytest.mark.parametrize("net", sorted(SOFTMAX_NETS))
def test_softmax_on_any_layer(net, path_name, tmp_path):
    exact(SOFTMAX_NETS[net], path_name, tmp_path)


LOG_SOFTMAX_NETS = {
    "head": lambda: nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 4), nn.LogSoftmax(dim=-1)),
    "hidden": lambda: nn.Sequential(nn.Linear(4, 5), nn.LogSoftmax(dim=1), nn.Linear(5, 2), nn.Sigmoid()),
}


@pytest.mark.parametrize("path_name", TORCH_PATHS)
@pytest.mark.parametrize("net", sorted(LOG_SOFTMAX_NETS))
def test_log_softmax(net, path_name, tmp_path):
    exact(LOG_SOFTMAX_NETS[net], path_name, tmp_path)


LAYER_NORM_NETS = {
    "affine-relu": lambda: nn.Sequential(nn.Linear(3, 5), nn.LayerNorm(5), nn.ReLU(), nn.Linear(5, 2)),
    "affine-last": lambda: nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3), nn.LayerNorm(3)),
    "no-bias-then-linear": lambda: nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4, bias=False),
                                                 nn.Linear(4, 2)),
    "no-affine-tanh": lambda: nn.Sequential(nn.Linear(2, 6), nn.LayerNorm(6, elementwise_affine=False),
                                            nn.Tanh(), nn.Linear(6, 4), nn.LogSoftmax(dim=-1)),
    "of-the-inputs": lambda: nn.Sequential(nn.LayerNorm(3), nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)),
    "of-the-inputs-no-affine": lambda: nn.Sequential(nn.LayerNorm(4, elementwise_affine=False), nn.Linear(4, 2)),
    "eps-and-softmax": lambda: nn.Sequential(nn.Linear(3, 5), nn.LayerNorm(5, eps=0.1), nn.Softmax(dim=-1),
                                             nn.Linear(5, 1)),
}


def trained_affine(build):
    """The net with LayerNorm's gamma and beta moved off their initial 1 and 0."""
    def made():
        net = build()
        with torch.no_grad():
            for module in net:
                if isinstance(module, nn.LayerNorm) and module.weight is not None:
                    module.weight.mul_(torch.empty_like(module.weight).uniform_(0.5, 1.5))
                    module.weight[0] *= -1
                    if module.bias is not None:
                        module.bias.add_(torch.randn_like(module.bias))
        return net
    return made


@pytest.mark.parametrize("path_name", TORCH_PATHS + ["onnx-legacy-16"])
@pytest.mark.parametrize("net", sorted(LAYER_NORM_NETS))
def test_layer_norm(net, path_name, tmp_path):
    exact(trained_affine(LAYER_NORM_NETS[net]), path_name, tmp_path)


def keras_layer_norm_reference(model, eps):
    """torch.func's reference of Dense -> LayerNormalization -> tanh -> Dense(log_softmax),
    written here from the Keras model's arrays (as float64)."""
    dense, norm, _, head = model.layers
    params = {}
    for layer in (dense, norm, head):
        for variable in layer.weights:
            params[variable.path] = torch.as_tensor(np.asarray(variable.numpy(), dtype=np.float64))
    names = {layer: [v.path for v in layer.weights] for layer in (dense, norm, head)}

    def forward(X, p):
        z = X @ p[names[dense][0]] + p[names[dense][1]]
        centred = z - z.mean(dim=-1, keepdim=True)
        y = centred / torch.sqrt((centred * centred).mean(dim=-1, keepdim=True) + eps)
        for path in names[norm]:
            y = y * p[path] if path.endswith("gamma") else y + p[path]
        z = torch.tanh(y) @ p[names[head][0]] + p[names[head][1]]
        return torch.log_softmax(z, dim=-1)

    return oracles.Reference(forward, params, {name: name for name in params})


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
@pytest.mark.parametrize("center,scale", [(True, True), (False, True), (True, False), (False, False)])
def test_keras_layer_normalization(center, scale, suffix, tmp_path):
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(3)
    # named as a .keras archive names them (as paths.keras_source does)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(5, name="dense"),
                              keras.layers.LayerNormalization(epsilon=0.01, center=center, scale=scale,
                                                              name="layer_normalization"),
                              keras.layers.Activation("tanh", name="activation"),
                              keras.layers.Dense(3, activation="log_softmax", name="dense_1")])
    for layer in model.layers:
        layer.set_weights([rng.normal(size=w.shape) for w in layer.get_weights()])
    path = tmp_path / f"model{suffix}"
    model.save(str(path))
    X = random_points(rng, 3)
    outcome = harness.check_file(path, keras_layer_norm_reference(model, 0.01), X, own=False)
    assert outcome.kind == "pass", f"{outcome.key}\n  {outcome.details}"


def test_keras_rms_scaling_is_refused_in_one_line(tmp_path):
    keras = pytest.importorskip("keras")
    import jaccli
    from jaccli.errors import JaccliError

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4),
                              keras.layers.LayerNormalization(rms_scaling=True), keras.layers.Dense(1)])
    model.save(str(tmp_path / "m.keras"))
    with pytest.raises(JaccliError, match=r"\(LayerNormalization\) is not supported: rms_scaling=True"):
        jaccli.load(str(tmp_path / "m.keras"))


@pytest.mark.parametrize("opset", [16, 17])
def test_the_example_files_of_the_docs(opset):
    """tests/data/vector/layernorm_opset*.onnx (docs/models.md) against torch.func on the net
    that made them (tests/data/make_vector_files.py)."""
    import importlib.util
    from pathlib import Path

    data = Path(__file__).parent.parent / "data"
    spec = importlib.util.spec_from_file_location("make_vector_files", data / "make_vector_files.py")
    maker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(maker)
    reference = oracles.torch_reference(maker.net())
    X = random_points(np.random.default_rng(opset), 3, count=6)
    outcome = harness.check_file(data / "vector" / f"layernorm_opset{opset}.onnx", reference, X, own=False)
    assert outcome.kind == "pass", f"{outcome.key}\n  {outcome.details}"
