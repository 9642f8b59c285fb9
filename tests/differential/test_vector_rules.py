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

from .paths import exported_module, path_named, run_source, torch_source_of

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
    """Build the net (seed 0, float64, eval), send it through ``path_name``, and require a pass."""
    path = path_named(path_name) if path_name != "onnx-legacy-16" else dataclasses.replace(
        path_named("onnx-legacy"), name=path_name, write=write_opset_16)
    for module in path.needs:
        pytest.importorskip(module)
    torch.manual_seed(0)
    net = build().double().eval()
    source = torch_source_of(net)
    outcome = run_source(path, source, tmp_path)
    assert outcome.kind == "pass", f"{outcome.key}\n  model: {source.text}\n  {outcome.details}"


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
