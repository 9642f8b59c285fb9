"""Issue 21: ONNX files as people publish them (any input shape, the ops exporters write).

Each file is made by the real exporter (torch.onnx legacy and dynamo) or, where
the exporter that writes the pattern is not installable (NNet converters,
nnenum, Stable-Baselines3, the ACAS Xu files), by onnx.helper in the same
shape. Each is checked by harness.check_file: against torch.func on the net
where the file is the net, else against the graph itself evaluated op by op in
torch (oracles.OnnxFunction), plus onnxruntime for the values.
"""

import numpy as np
import pytest

from .harness import check_file
from .oracles import OnnxFunction, onnxruntime_values
from .paths import path_named, run_source, torch_source_of

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
nn = torch.nn
pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::UserWarning")]


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


def graph_exact(path, n, output=None, load_kwargs=None):
    """The file read by jaccli agrees with the graph in torch (all quantities) and onnxruntime (values)."""
    X = np.random.default_rng(0).normal(size=(7, n))
    graph = OnnxFunction(path, output=output)
    outcome = check_file(path, graph.as_reference(), X, own=False, graph=graph, exact=False,
                         load_kwargs=load_kwargs)
    assert outcome.kind == "pass", f"{outcome.key}\n  {outcome.details}"
    import jaccli

    model = jaccli.load(str(path), **(load_kwargs or {}))
    runtime = onnxruntime_values(path, X, output=output)
    assert np.allclose(model.value(X), runtime, rtol=1e-5, atol=1e-6)


def _batchnorm(width):
    bn = nn.BatchNorm1d(width)
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(-2, 2)
        bn.bias.uniform_(-1, 1)
    return bn


# -- BatchNormalization nodes (the legacy exporter writes them unfolded) -------

@pytest.mark.parametrize("path_name", ["onnx-legacy", "onnx-dynamo"])
def test_batchnorm_between_layers(path_name, tmp_path):
    exact(lambda: nn.Sequential(nn.Linear(3, 4), _batchnorm(4), nn.Tanh(), nn.Linear(4, 2)),
          path_name, tmp_path)


@pytest.mark.parametrize("path_name", ["onnx-legacy", "onnx-dynamo"])
def test_batchnorm_after_an_activation_and_last(path_name, tmp_path):
    exact(lambda: nn.Sequential(nn.Linear(3, 5), nn.Tanh(), _batchnorm(5), nn.Linear(5, 2),
                                _batchnorm(2)), path_name, tmp_path)
