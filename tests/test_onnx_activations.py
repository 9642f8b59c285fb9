"""The activations torch's two ONNX exporters and tf2onnx write, read from the files.

Each file's value is checked with onnxruntime where it has a kernel (it lacks
float64 ones for Softplus, HardSigmoid, PRelu, ...: then the float32 export is
run), and every derivative with torch.func on the module that was exported.
"""

import math
import warnings

import numpy as np
import pytest

import jaccli
from jaccli.errors import JaccliError

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

nn = torch.nn
pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore::FutureWarning")]

MODULES = {
    "Hardtanh": lambda: nn.Hardtanh(-2.0, 0.5), "ReLU6": nn.ReLU6, "Hardsigmoid": nn.Hardsigmoid,
    "Hardswish": nn.Hardswish, "Mish": nn.Mish, "CELU": lambda: nn.CELU(0.5),
    "LogSigmoid": nn.LogSigmoid, "Tanhshrink": nn.Tanhshrink, "Softplus": nn.Softplus,
    "Softplus(2, 3)": lambda: nn.Softplus(2.0, 3.0), "PReLU": lambda: nn.PReLU(4),
    "PReLU(1)": nn.PReLU,
}
# What each reads as (legacy, dynamo): the legacy exporter drops Softplus's threshold
# (the file computes log1p(exp(beta x)) / beta everywhere) and writes beta as maps.
READ_AS = {"ReLU6": "hardtanh", "Hardtanh": "hardtanh", "Hardsigmoid": "hardsigmoid",
           "Hardswish": "hardswish", "Mish": "mish", "CELU": "celu", "LogSigmoid": "log_sigmoid",
           "Tanhshrink": "tanhshrink", "Softplus": "softplus", "Softplus(2, 3)": "softplus",
           "PReLU": "prelu", "PReLU(1)": "prelu"}


def _net(name):
    torch.manual_seed(11)
    net = nn.Sequential(nn.Linear(3, 4), MODULES[name](), nn.Linear(4, 2)).double().eval()
    with torch.no_grad():
        net[0].weight.mul_(4.0)  # pre-activations beyond the kinks and the thresholds
        if isinstance(net[1], nn.PReLU):
            net[1].weight.copy_(torch.linspace(-0.3, 0.6, net[1].weight.numel()))
    return net


def _export(net, path, dynamo, dtype=torch.float64):
    net = net.to(dtype)
    example = (torch.zeros(2, 3, dtype=dtype),)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            torch.onnx.export(net, example, str(path), dynamo=True, input_names=["x"],
                              dynamic_shapes={"input": {0: torch.export.Dim("N")}}, verbose=False)
        else:
            torch.onnx.export(net, example, str(path), dynamo=False, input_names=["x"],
                              dynamic_axes={"x": {0: "N"}})
    return path


def _torch_quantities(net, X):
    x = torch.tensor(X)

    def single(point):
        return net(point[None])[0]

    hessian = np.stack([torch.func.hessian(single)(p).detach().numpy() for p in x])
    return {"value": net(x).detach().numpy(), "hessian": hessian,
            "jacobian": np.stack([torch.func.jacrev(single)(p).detach().numpy() for p in x]),
            "hessdiag": np.diagonal(hessian, axis1=2, axis2=3)}


def _onnxruntime(path, X):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    dtype = np.float32 if session.get_inputs()[0].type == "tensor(float)" else np.float64
    return session.run(None, {"x": X.astype(dtype)})[0]


@pytest.mark.parametrize("dynamo", [False, True], ids=["legacy", "dynamo"])
@pytest.mark.parametrize("name", list(MODULES))
def test_torch_onnx_activation(tmp_path, name, dynamo):
    net = _net(name)
    if name == "Hardsigmoid":  # torch cannot differentiate its own hardsigmoid twice
        from tests.differential.oracles import twice_differentiable
        reference = twice_differentiable(net)
    else:
        reference = net
    model = jaccli.load(str(_export(net, tmp_path / "m.onnx", dynamo)))
    assert model.network.layers[0].activation.name == READ_AS[name]
    X = np.random.default_rng(3).normal(size=(8, 3)) * 2
    expected = _torch_quantities(reference, X)
    if name.startswith("Softplus") and not dynamo:  # the file has no threshold: its function
        expected = _torch_quantities(nn.Sequential(net[0], nn.Softplus(net[1].beta, math.inf),
                                                   net[2]), X)
    for quantity, value in expected.items():
        actual = getattr(model, quantity)(X)
        assert np.abs(actual - value).max() <= 1e-12 * max(1.0, np.abs(value).max()), quantity
    # onnxruntime's float32 Sigmoid clamps its input to [-18, 18]: points where it is exact
    float32, near = _export(_net(name), tmp_path / "m32.onnx", dynamo, torch.float32), X / 4
    np.testing.assert_allclose(jaccli.load(str(float32)).value(near), _onnxruntime(float32, near),
                               rtol=1e-5, atol=1e-5)


def test_torch_onnx_prelu_slope_is_a_parameter(tmp_path):
    """The PRelu slope initializer has its own columns, after the layer's weight and bias."""
    net = _net("PReLU")
    model = jaccli.load(str(_export(net, tmp_path / "m.onnx", False)))
    assert [name for name, _ in model.parameters] == ["0.weight", "0.bias", "1.weight", "2.weight",
                                                      "2.bias"]
    X = np.random.default_rng(4).normal(size=(5, 3))
    params = {k: v.detach() for k, v in net.named_parameters()}
    jac = torch.func.jacrev(lambda p: torch.func.functional_call(net, p, (torch.tensor(X),)))(params)
    expected = np.concatenate([jac[n].reshape(5, 2, -1).numpy() for n in params], axis=2)
    np.testing.assert_allclose(model.param_jacobian(X), expected, rtol=0, atol=1e-13)


# ---------------------------------------------------------------- graphs written by hand


def _graph_file(tmp_path, nodes, initializers, opset=17, dtype=TensorProto.DOUBLE):
    """x (N, 3) -> Gemm(W0, b0) -> ``nodes`` (from 'h' to 'a') -> Gemm(W1, b1) -> y."""
    rng = np.random.default_rng(8)
    np_dtype = np.float32 if dtype == TensorProto.FLOAT else np.float64
    tensors = {"W0": rng.normal(size=(3, 4)) * 3, "b0": rng.normal(size=4),
               "W1": rng.normal(size=(4, 2)), "b1": rng.normal(size=2), **initializers}
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "W0", "b0"], ["h"])] + nodes +
        [helper.make_node("Gemm", ["a", "W1", "b1"], ["y"])], "g",
        [helper.make_tensor_value_info("x", dtype, ["N", 3])],
        [helper.make_tensor_value_info("y", dtype, ["N", 2])],
        [numpy_helper.from_array(np.asarray(v, dtype=np_dtype), k) for k, v in tensors.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model)
    path = tmp_path / "hand.onnx"
    path.write_bytes(model.SerializeToString())
    return path, tensors


def _tf2onnx_prelu(form):
    """Keras's PReLU, relu(x) - alpha relu(-x), as tf2onnx converts the TF ops: Sub of
    alpha * relu(-x), or Add of (-alpha) * relu(-x) with -alpha a Neg node or stored."""
    nodes = [helper.make_node("Relu", ["h"], ["pos"]), helper.make_node("Neg", ["h"], ["nx"]),
             helper.make_node("Relu", ["nx"], ["rn"])]
    if form == "Sub":
        return nodes + [helper.make_node("Mul", ["alpha", "rn"], ["neg"]),
                        helper.make_node("Sub", ["pos", "neg"], ["a"])]
    if form == "Add-Neg":
        nodes += [helper.make_node("Neg", ["alpha"], ["na"])]
    return nodes + [helper.make_node("Mul", ["na" if form == "Add-Neg" else "alpha", "rn"], ["neg"]),
                    helper.make_node("Add", ["pos", "neg"], ["a"])]


@pytest.mark.parametrize("form", ["Sub", "Add-Neg", "Add-stored"])
def test_tf2onnx_prelu_form(tmp_path, form):
    """Read as prelu with the stored tensor the parameter (slope_scale -1 where it holds
    -alpha); value vs onnxruntime, derivatives and its columns vs torch.func."""
    alpha = np.array([0.3, -0.2, 0.05, 0.6])
    stored = -alpha if form == "Add-stored" else alpha
    path, tensors = _graph_file(tmp_path, _tf2onnx_prelu(form), {"alpha": stored})
    model = jaccli.load(str(path))
    assert [name for name, _ in model.parameters] == ["W0", "b0", "alpha", "W1", "b1"]
    X = np.random.default_rng(1).normal(size=(6, 3))
    np.testing.assert_allclose(model.value(X), _onnxruntime(path, X), rtol=1e-13, atol=1e-13)
    p = {k: torch.tensor(v) for k, v in tensors.items()}
    sign = -1.0 if form == "Add-stored" else 1.0

    def forward(x, p):
        z = x @ p["W0"] + p["b0"]
        return torch.where(z > 0, z, sign * p["alpha"] * z) @ p["W1"] + p["b1"]

    x = torch.tensor(X)
    jac = torch.func.jacrev(lambda q: forward(x, q))(p)
    names = [name for name, _ in model.parameters]
    expected = np.concatenate([jac[n].reshape(6, 2, -1).numpy() for n in names], axis=2)
    np.testing.assert_allclose(model.param_jacobian(X), expected, rtol=0, atol=1e-13)
    single = torch.func.jacrev(lambda point: forward(point[None], p)[0])
    np.testing.assert_allclose(model.jacobian(X), np.stack([single(r).numpy() for r in x]),
                               rtol=0, atol=1e-13)


def test_clip_forms(tmp_path):
    """Clip's bounds as attributes (opset 6), and min 0 alone as relu; a computed bound refused."""
    path, _ = _graph_file(tmp_path, [helper.make_node("Clip", ["h"], ["a"], min=-0.5, max=2.0)],
                          {}, opset=6, dtype=TensorProto.FLOAT)
    layer = jaccli.load(str(path)).network.layers[0]
    assert (layer.activation.name, layer.params) == ("hardtanh", {"min_val": -0.5, "max_val": 2.0})
    path, _ = _graph_file(tmp_path, [helper.make_node("Clip", ["h", "zero"], ["a"])],
                          {"zero": np.array(0.0)})
    assert jaccli.load(str(path)).network.layers[0].activation.name == "relu"
    path, _ = _graph_file(tmp_path, [helper.make_node("Abs", ["h"], ["m"]),
                                     helper.make_node("Clip", ["h", "m", "six"], ["a"])],
                          {"six": np.array(6.0)})
    with pytest.raises(JaccliError, match=r"\(Clip\): combines 2 computed tensors \('h', 'm'\)"):
        jaccli.load(str(path))


def test_hardsigmoid_onnx_defaults_and_torch_alpha(tmp_path):
    """ONNX's defaults (0.2, 0.5) when the node has none; torch's float32(1/6) is 1/6."""
    path, _ = _graph_file(tmp_path, [helper.make_node("HardSigmoid", ["h"], ["a"])], {})
    assert jaccli.load(str(path)).network.layers[0].params == {"alpha": 0.2, "beta": 0.5}
    node = helper.make_node("HardSigmoid", ["h"], ["a"], alpha=float(np.float32(1 / 6)))
    path, _ = _graph_file(tmp_path, [node], {})
    assert jaccli.load(str(path)).network.layers[0].params == {"alpha": 1 / 6, "beta": 0.5}


def test_prelu_slope_of_another_shape_is_refused(tmp_path):
    path, _ = _graph_file(tmp_path, [helper.make_node("PRelu", ["h", "s"], ["a"])],
                          {"s": np.ones((4, 1))})
    with pytest.raises(JaccliError, match=r"its slope 's' has shape \(4, 1\); jaccli reads one "
                                          r"value per feature \(4,\) or one for all"):
        jaccli.load(str(path))
