"""Vector activations (softmax, log_softmax, layer_norm) on any layer, through the export paths.

Each net is float64, seeded, exported through one path of paths.PATHS and
checked by harness.check_file against torch.func on the net itself (value,
Jacobian, Hessian diagonal, Hessian, and the parameter Jacobian by the file's
tensor names in the file's shapes, to 1e-12). A refusal fails: these nets
must be read, and read exactly.
"""

import pytest

from .paths import path_named, run_source, torch_source_of

torch = pytest.importorskip("torch")
nn = torch.nn
pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore::FutureWarning")]

TORCH_PATHS = ["from_torch-npz", "onnx-legacy", "onnx-dynamo"]


def exact(build, path_name, tmp_path):
    """Build the net (seed 0, float64, eval), send it through ``path_name``, and require a pass."""
    path = path_named(path_name)
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
