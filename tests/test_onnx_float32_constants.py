"""ONNX float32 numbers read without a float32 rounding of jaccli's own.

Real PyTorch models exported by ``torch.onnx.export`` (the TorchScript
exporter, dynamo=False) are compared with torch.func on the same weights to
1e-12 in float64:

- float attributes are float32 by the ONNX schema (LeakyReLU's 0.05 arrives
  as 0.0500000007): jaccli reads the decimal that was written;
- a division by a float32 constant ``(x - b) / 3`` is a scaling by the
  reciprocal taken in float64, not in float32 (which gave 2.9999999105930355).
"""

import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")

import jaccli  # noqa: E402
from jaccli.formats.onnx import float32_as_decimal  # noqa: E402

# torch.func imports torch.jit.script, deprecated in torch 2.13: not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

TOLERANCE = 1e-12


class Scaled(torch.nn.Module):
    """(x - 0.25) / 3, then Linear, activation, Linear."""

    def __init__(self, activation, width=6):
        super().__init__()
        self.first = torch.nn.Linear(3, width)
        self.activation = activation
        self.last = torch.nn.Linear(width, 2)

    def forward(self, x):
        return self.last(self.activation(self.first((x - 0.25) / 3)))


def exported(net, path, dtype):
    """``net`` in ``dtype`` written by the TorchScript exporter, batch axis dynamic."""
    torch.manual_seed(0)
    net = net.to(dtype).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(1, 3, dtype=dtype),), str(path), dynamo=False,
                          input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "N"}})
    return net


def torch_reference(net, points):
    """(value, Jacobian) by torch.func on the float64 copy of the same weights."""
    net = net.double()
    x = torch.tensor(points)
    one = lambda row: net(row[None])[0]  # noqa: E731
    jacobian = torch.func.vmap(torch.func.jacrev(one))(x)
    return net(x).detach().numpy(), jacobian.detach().numpy()


def assert_matches_torch(path, net):
    points = np.random.default_rng(1).uniform(-3, 3, size=(40, 3))
    model = jaccli.load(str(path))
    value, jacobian = torch_reference(net, points)
    np.testing.assert_allclose(model.value(points), value, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(model.jacobian(points), jacobian, rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("activation", [torch.nn.LeakyReLU(0.05), torch.nn.ELU(0.7),
                                        torch.nn.LeakyReLU(0.3)], ids=repr)
def test_float_attributes_are_the_decimals_written(activation, tmp_path):
    path = tmp_path / "net.onnx"
    net = exported(Scaled(activation), path, torch.float64)
    assert_matches_torch(path, net)


@pytest.mark.parametrize("activation", [torch.nn.Tanh(), torch.nn.LeakyReLU(0.05)], ids=repr)
def test_a_float32_divisor_is_inverted_in_float64(activation, tmp_path):
    """A float32 export holds 3 and 0.25 exactly: its float64 reading is the float64 net's."""
    path = tmp_path / "net.onnx"
    net = exported(Scaled(activation), path, torch.float32)
    assert_matches_torch(path, net)


@pytest.mark.parametrize("stored, meant", [(np.float32(0.05), 0.05), (np.float32(0.7), 0.7),
                                           (np.float32(1e-3), 1e-3), (np.float32(3.0), 3.0),
                                           (np.float32(-0.1), -0.1), (np.float32(1e30), 1e30),
                                           (np.float32(1.6732632), 1.6732632)])
def test_float32_as_decimal_gives_the_shortest_decimal(stored, meant):
    assert float32_as_decimal(float(stored)) == meant
    assert np.float32(float32_as_decimal(float(stored))) == stored


def test_gemm_alpha_and_beta_are_the_decimals_written(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(2)
    weight, bias = rng.normal(size=(3, 2)), rng.normal(size=2)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "W", "b"], ["y"], alpha=0.1, beta=0.3)], "gemm",
        [helper.make_tensor_value_info("x", TensorProto.DOUBLE, [None, 3])],
        [helper.make_tensor_value_info("y", TensorProto.DOUBLE, [None, 2])],
        [numpy_helper.from_array(weight, "W"), numpy_helper.from_array(bias, "b")])
    path = tmp_path / "gemm.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    points = rng.normal(size=(10, 3))
    np.testing.assert_allclose(jaccli.load(str(path)).value(points),
                               0.1 * points @ weight + 0.3 * bias, rtol=0, atol=TOLERANCE)
