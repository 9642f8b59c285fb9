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
from .oracles import OnnxFunction
from .paths import path_named, require_pass

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
nn = torch.nn
pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::UserWarning")]


def exact(build, path_name, tmp_path):
    """``paths.require_pass`` through the path named ``path_name``."""
    require_pass(build, path_named(path_name), tmp_path)


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


# -- inputs of any shape --------------------------------------------------------

def runtime_values(path, X, output=None):
    """onnxruntime on each point in the input's declared shape (a fixed batch filled with copies)."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in feed.shape]
    dtype = np.float32 if feed.type == "tensor(float)" else np.float64
    rows = []
    column = len(shape) == 2 and shape[1] == 1 and shape[0] == X.shape[1] > 1  # one point (n, 1)
    for x in X:
        if column or len(shape) < 2:
            batch = x.reshape(shape)
        else:
            batch = np.broadcast_to(x.reshape([1] + shape[1:]), shape)
        names = [output] if output else None
        result = np.asarray(session.run(names, {feed.name: np.ascontiguousarray(batch, dtype)})[0])
        rows.append(result.reshape(shape[0], -1)[0] if len(shape) > 1 and result.ndim > 1
                    and result.shape[0] == shape[0] and not column else result.reshape(-1))
    return np.stack(rows)


def graph_exact(path, n, output=None, load_kwargs=None):
    """jaccli agrees with the graph evaluated in torch (every quantity, to 1e-12) and with
    onnxruntime (the values, to its float32 or float64 rounding)."""
    import jaccli

    X = np.random.default_rng(0).normal(size=(7, n))
    graph = OnnxFunction(path, output=output)
    outcome = check_file(path, graph.as_reference(), X, own=False, graph=graph, exact=False,
                         load_kwargs=load_kwargs)
    assert outcome.kind == "pass", f"{outcome.key}\n  {outcome.details}"
    value = jaccli.load(str(path), **(load_kwargs or {})).value(X)
    runtime = runtime_values(path, X, output)
    assert value.shape == runtime.shape
    assert np.allclose(value, runtime, rtol=1e-12 if "double" in str(path) else 1e-5, atol=1e-6)
    return value


def _save(tmp_path, name, nodes, inits, in_shape, out_shape, output="y", opset=17, double=True,
          check=True):
    from onnx import TensorProto, helper, numpy_helper

    kind = TensorProto.DOUBLE if double else TensorProto.FLOAT
    dtype = np.float64 if double else np.float32
    initializers = [numpy_helper.from_array(np.asarray(v, dtype if np.asarray(v).dtype.kind == "f"
                                                       else np.int64), k) for k, v in inits.items()]
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", kind, in_shape)],
                              [helper.make_tensor_value_info(output, kind, out_shape)], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    if check:
        onnx.checker.check_model(model)
    path = tmp_path / f"{name}-{'double' if double else 'float'}.onnx"
    path.write_bytes(model.SerializeToString())
    return path


RNG = np.random.default_rng(21)
W1, B1, W2, B2 = RNG.normal(size=(6, 5)), RNG.normal(size=6), RNG.normal(size=(3, 6)), RNG.normal(size=3)
node = onnx.helper.make_node


@pytest.mark.parametrize("double", [True, False])
def test_acas_xu_shape_1_1_1_5_with_flatten(tmp_path, double):
    nodes = [node("Flatten", ["x"], ["f"], axis=1), node("Gemm", ["f", "W1", "B1"], ["h"], transB=1),
             node("Relu", ["h"], ["r"]), node("Gemm", ["r", "W2", "B2"], ["y"], transB=1)]
    path = _save(tmp_path, "acas", nodes, {"W1": W1, "B1": B1, "W2": W2, "B2": B2},
                 [1, 1, 1, 5], [1, 3], double=double)
    graph_exact(path, 5)


def test_nnet_style_vector_input_with_weights_on_the_left(tmp_path):
    nodes = [node("MatMul", ["W1", "x"], ["m"]), node("Add", ["m", "B1"], ["h"]),
             node("Relu", ["h"], ["r"]), node("MatMul", ["W2", "r"], ["m2"]),
             node("Add", ["m2", "B2"], ["y"])]
    path = _save(tmp_path, "nnet", nodes, {"W1": W1, "B1": B1, "W2": W2, "B2": B2}, [5], [3])
    graph_exact(path, 5)


def test_column_input_of_one_point_and_gemm_with_the_weight_first(tmp_path):
    """(5,) unsqueezed to a column (5, 1), W @ x as Gemm(W, x) with the bias a column;
    transA reads W.T."""
    nodes = [node("Unsqueeze", ["x", "ax"], ["c"]),
             node("Gemm", ["W1", "c", "B1c"], ["h"]), node("Tanh", ["h"], ["t"]),
             node("Gemm", ["W2t", "t", "B2c"], ["y"], transA=1)]
    path = _save(tmp_path, "column", nodes, {"W1": W1, "B1c": B1[:, None], "W2t": W2.T,
                                             "B2c": B2[:, None], "ax": np.array([1])}, [5], [3, 1])
    graph_exact(path, 5)


def test_column_input_multiplied_by_the_weight_on_the_left(tmp_path):
    """An input (5, 1) that the graph multiplies as W @ x is one point as a column."""
    nodes = [node("MatMul", ["W1", "x"], ["m"]), node("Add", ["m", "B1c"], ["h"]),
             node("Relu", ["h"], ["r"]), node("Gemm", ["W2", "r", "B2c"], ["y"])]
    path = _save(tmp_path, "colin", nodes, {"W1": W1, "B1c": B1[:, None], "W2": W2,
                                            "B2c": B2[:, None]}, [5, 1], [3, 1])
    graph_exact(path, 5)


def test_gemm_transA_on_transposed_data_and_transB_of_the_data(tmp_path):
    """Gemm(x.T, W.T, transA=1) is x @ W.T; Gemm(W, h, transB=1) is W @ h.T (columns)."""
    nodes = [node("Transpose", ["x"], ["xt"]), node("Gemm", ["xt", "W1t", "B1"], ["h"], transA=1),
             node("Sigmoid", ["h"], ["s"]), node("Gemm", ["W2", "s", "B2c"], ["yt"], transB=1),
             node("Transpose", ["yt"], ["y"])]
    path = _save(tmp_path, "trans", nodes, {"W1t": W1.T, "B1": B1, "W2": W2, "B2c": B2[:, None]},
                 ["N", 5], ["N", 3])
    graph_exact(path, 5)


@pytest.mark.parametrize("shape, reshape", [
    ([128, 5], None), ([1, 5, 1], [1, -1]), (["N", 5, 1], [-1, 5]), (["N", 5, 1], [0, -1]),
])
def test_fixed_batches_and_reshapes_that_keep_one_row_per_point(tmp_path, shape, reshape):
    first = "x"
    nodes, inits = [], {"W1": W1, "B1": B1, "W2": W2, "B2": B2}
    if reshape is not None:
        nodes.append(node("Reshape", ["x", "s"], ["f"]))
        inits["s"] = np.array(reshape, dtype=np.int64)
        first = "f"
    nodes += [node("Gemm", [first, "W1", "B1"], ["h"], transB=1), node("Sigmoid", ["h"], ["r"]),
              node("Gemm", ["r", "W2", "B2"], ["y"], transB=1)]
    path = _save(tmp_path, "batch", nodes, inits, shape, [shape[0], 3])
    graph_exact(path, 5)


def test_image_input_flattened_neg_and_squeezed_output(tmp_path):
    """(N, 1, 5) through Neg; the last layer's (N, 1) squeezed to (N,), then unsqueezed."""
    w = RNG.normal(size=(5, 1))
    nodes = [node("Neg", ["x"], ["n"]), node("Flatten", ["n"], ["f"], axis=1),
             node("MatMul", ["f", "W"], ["m"]), node("Tanh", ["m"], ["t"]),
             node("Squeeze", ["t", "ax"], ["s"]), node("Unsqueeze", ["s", "ax"], ["u"]),
             node("Squeeze", ["u", "ax"], ["y"])]
    path = _save(tmp_path, "squeeze", nodes, {"W": w, "ax": np.array([1], dtype=np.int64)},
                 ["N", 1, 5], ["N"])
    assert graph_exact(path, 5).shape == (7, 1)


@pytest.mark.parametrize("shape, reshape, expect", [
    (["N", 5], [1, -1], "not one row per point"),
    ([128, 5], [1, -1], "not one row per point"),
    (["N", 5, 2], None, "flatten them first"),
    # (N, 5) -> (5, N) is no transpose: the points' numbers are reinterleaved
    (["N", 5], [5, -1], "not one row per point"),
    ([128, 5], [5, 128], "not one row per point"),
])
def test_shape_ops_that_mix_points_are_refused(tmp_path, shape, reshape, expect):
    import jaccli
    from jaccli.errors import JaccliError

    nodes, inits, first = [], {"W1": W1}, "x"
    if reshape is not None:
        nodes.append(node("Reshape", ["x", "s"], ["f"]))
        inits["s"] = np.array(reshape, dtype=np.int64)
        first = "f"
    columns = reshape is not None and reshape[0] == 5  # (5, N) read as W @ x would be wrong
    nodes.append(node("MatMul", ["W1", first] if columns else [first, "W1t"], ["y"]))
    inits = {"W1t": W1.T if shape[-1] == 5 else np.ones((2, 6)), **inits}
    path = _save(tmp_path, "mix", nodes, inits, shape, ["N", 6])
    with pytest.raises(JaccliError) as caught:
        jaccli.load(str(path))
    assert expect in str(caught.value) and "\n" not in str(caught.value)


# -- the real exporters: image-shaped inputs, view, fixed batches ------------------

class _Image(nn.Module):
    """An MLP on image-shaped input, flattened by nn.Flatten or by x.view(x.size(0), -1)."""

    def __init__(self, shape, how):
        super().__init__()
        self.how = how
        n = int(np.prod(shape))
        self.body = nn.Sequential(nn.Linear(n, 6), nn.Tanh(), nn.Linear(6, 2))
        self.flatten = nn.Flatten()

    def forward(self, x):
        if self.how == "unflatten":  # (N, 12) -> (N, 4, 3) -> (N, 12), and the output (N, 2, 1)
            return self.body(self.flatten(x.unflatten(1, (4, 3)))).unflatten(1, (2, 1))
        if self.how == "view":
            x = x.view(x.size(0), -1)
        elif self.how == "reshape":
            x = x.reshape(1, -1)
        else:
            x = self.flatten(x)
        return self.body(x)


def _shaped_reference(net, shape):
    from .oracles import torch_reference

    base = torch_reference(net)
    inner = base.forward

    def forward(X, p):  # one point at a time, in the shape the net takes
        rows = [inner(X[i:i + 1].reshape((1,) + shape), p) for i in range(X.shape[0])]
        return torch.cat(rows).reshape(X.shape[0], -1)
    base.forward = forward
    return base


@pytest.mark.parametrize("shape, how, batch, dynamo", [
    ((1, 1, 5), "flatten", None, False), ((1, 1, 5), "flatten", None, True),
    ((4, 3), "view", None, False), ((4, 3), "flatten", 1, False), ((4, 3), "reshape", 1, False),
    ((4, 3), "flatten", 128, False), ((4, 3), "view", 1, True),
    ((12,), "unflatten", None, False), ((12,), "unflatten", None, True),
])
def test_torch_exports_of_image_inputs(tmp_path, shape, how, batch, dynamo):
    if dynamo:
        pytest.importorskip("onnxscript")
    torch.manual_seed(0)
    net = _Image(shape, how).double().eval()
    example = torch.randn((batch or 2,) + shape, dtype=torch.float64)
    path = tmp_path / "image.onnx"
    kwargs = {}
    if batch is None:
        kwargs = ({"dynamic_shapes": ({0: torch.export.Dim("N")},)} if dynamo
                  else {"dynamic_axes": {"x": {0: "N"}}})
    torch.onnx.export(net, (example,), str(path), input_names=["x"], output_names=["y"],
                      dynamo=dynamo, **kwargs)
    n = int(np.prod(shape))
    X = np.random.default_rng(1).normal(size=(5, n))
    outcome = check_file(path, _shaped_reference(net, shape), X, own=False,
                         graph=OnnxFunction(path))
    assert outcome.kind == "pass", f"{outcome.key}\n  {outcome.details}"
    import jaccli

    assert np.allclose(jaccli.load(str(path)).value(X), runtime_values(path, X), rtol=1e-12, atol=0)


# -- one output of several --------------------------------------------------------

class _ActorCritic(nn.Module):
    """Stable-Baselines3's shape: actions and value from one body, a constant log-std."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 8), nn.Tanh())
        self.pi, self.v = nn.Linear(8, 2), nn.Linear(8, 1)
        self.log_std = nn.Parameter(torch.zeros(2))

    def forward(self, x):
        h = self.body(x)
        return self.pi(h), self.v(h), self.log_std * 1.0


@pytest.fixture
def actor_critic(tmp_path):
    torch.manual_seed(0)
    net = _ActorCritic().double().eval()
    path = tmp_path / "ac.onnx"
    torch.onnx.export(net, (torch.randn(1, 4, dtype=torch.float64),), str(path), dynamo=False,
                      input_names=["obs"], output_names=["actions", "value", "log_std"],
                      dynamic_axes={"obs": {0: "N"}})
    return path


@pytest.mark.parametrize("output", ["actions", "value"])
def test_output_name_picks_one_output(actor_critic, output):
    graph_exact(actor_critic, 4, output=output, load_kwargs={"output_name": output})


def test_several_outputs_without_output_name_and_a_constant_output_are_refused(actor_critic):
    import jaccli
    from jaccli.errors import JaccliError

    constant = onnx.load(str(actor_critic)).graph.output[2].name  # the exporter renames it
    for kwargs, expect in (({}, "pick one with output_name"),
                           ({"output_name": constant}, f"output '{constant}' does not depend"),
                           ({"output_name": "nope"}, "'nope' is not an output")):
        with pytest.raises(JaccliError) as caught:
            jaccli.load(str(actor_critic), **kwargs)
        assert expect in str(caught.value) and "\n" not in str(caught.value)


def test_output_name_on_the_command_line(actor_critic, tmp_path):
    from click.testing import CliRunner

    from jaccli.cli import cli

    points = tmp_path / "p.csv"
    points.write_text("0.1,0.2,0.3,0.4\n")
    result = CliRunner().invoke(cli, ["value", str(actor_critic), "--points", str(points),
                                       "--output-name", "value"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(cli, ["jacobian", str(actor_critic), "--points", str(points)])
    assert result.exit_code == 2 and "pick one with --output-name" in result.output


def test_constants_behind_identity_nodes_are_the_file_tensors(tmp_path):
    """The legacy exporter writes Identity(initializer) for a tensor used twice: a constant,
    named by the initializer (the stored statistics are not 'computed tensors')."""
    nodes = [node("Identity", ["W1"], ["W1b"]), node("Identity", ["mean"], ["mean_id"]),
             node("Gemm", ["x", "W1b", "B1"], ["h"], transB=1),
             node("BatchNormalization", ["h", "g", "b", "mean_id", "var"], ["n"], epsilon=1e-5),
             node("Tanh", ["n"], ["t"]), node("Gemm", ["t", "W2", "B2"], ["y"], transB=1)]
    inits = {"W1": W1, "B1": B1, "W2": W2, "B2": B2, "g": RNG.normal(size=6),
             "b": RNG.normal(size=6), "mean": RNG.normal(size=6), "var": RNG.uniform(0.5, 2, 6)}
    path = _save(tmp_path, "identity", nodes, inits, ["N", 5], ["N", 3])
    graph_exact(path, 5)
    import jaccli

    names = [name for name, _ in jaccli.load(str(path)).parameters]
    assert names == ["W1", "B1", "g", "b", "W2", "B2"]


# -- Keras: an input of known shape that a Flatten layer flattens first --------------

@pytest.mark.parametrize("shape, batch", [((4, 3), None), ((1, 1, 5), 1)])
@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_keras_image_input_then_flatten(tmp_path, shape, batch, suffix):
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    pytest.importorskip("h5py")
    from .oracles import dense_stack_reference

    rng = np.random.default_rng(0)
    model = keras.Sequential([keras.Input(shape, batch_size=batch), keras.layers.Flatten(),
                              keras.layers.Dense(6, activation="tanh", name="dense"),
                              keras.layers.Dense(2, name="dense_1")])
    layers = []
    for i, layer in enumerate(model.layers[1:]):
        layer.set_weights([rng.normal(size=w.shape) for w in layer.get_weights()])
        kernel, bias = layer.get_weights()
        layers.append((f"k{i}", kernel, f"b{i}", bias, layer.get_config()["activation"]))
    path = tmp_path / f"image{suffix}"
    model.save(str(path))
    X = rng.normal(size=(5, int(np.prod(shape))))
    outcome = check_file(path, dense_stack_reference(layers), X, own=False)
    assert outcome.kind == "pass", f"{outcome.key}\n  {outcome.details}"
    import jaccli

    predicted = model.predict(X.reshape((5,) + shape).astype(np.float32), verbose=0)
    assert np.allclose(jaccli.load(str(path)).value(X), predicted, rtol=1e-5, atol=1e-5)


# -- random shape ops: each graph is read right or refused in one line ---------------

def _random_shape_graph(rng, tmp_path, index):
    """An input of a random shape, 1-3 random shape ops (valid for onnxruntime at the
    declared batch), a MatMul to 2 outputs on the flattened point, Tanh."""
    batch = [None, 1, 3][rng.integers(3)]
    dims = [int(d) for d in rng.choice([1, 2, 3], size=rng.integers(0, 3))] + [int(rng.integers(2, 5))]
    shape = [batch or "N"] + dims if rng.random() < 0.85 else dims
    concrete = [batch or 2] + dims if len(shape) > len(dims) else dims
    nodes, inits, current = [], {}, "x"
    for k in range(int(rng.integers(1, 4))):
        op = rng.choice(["Flatten", "Reshape", "Unsqueeze", "Squeeze"])
        out = f"s{k}"
        if op == "Flatten":
            axis = int(rng.integers(0, len(concrete) + 1))
            nodes.append(node("Flatten", [current], [out], axis=axis))
            concrete = [int(np.prod(concrete[:axis])), int(np.prod(concrete[axis:]))]
        elif op == "Reshape":
            target = [[0, -1], [-1, int(np.prod(concrete[1:]) if len(concrete) > 1 else 1)],
                      [1, -1], [-1], [int(np.prod(concrete)), 1], [-1, 1]][rng.integers(6)]
            inits[f"shape{k}"] = np.array(target, dtype=np.int64)
            nodes.append(node("Reshape", [current, f"shape{k}"], [out]))
            concrete = list(np.empty(concrete).reshape(
                [concrete[i] if d == 0 else d for i, d in enumerate(target)]).shape)
        elif op == "Unsqueeze":
            axis = int(rng.integers(0, len(concrete) + 1))
            inits[f"axes{k}"] = np.array([axis], dtype=np.int64)
            nodes.append(node("Unsqueeze", [current, f"axes{k}"], [out]))
            concrete.insert(axis, 1)
        else:
            ones = [i for i, d in enumerate(concrete) if d == 1]
            if not ones:
                continue
            inits[f"axes{k}"] = np.array([int(rng.choice(ones))], dtype=np.int64)
            nodes.append(node("Squeeze", [current, f"axes{k}"], [out]))
            del concrete[int(inits[f"axes{k}"][0])]
        current = out
    n = int(np.prod(dims))
    inits["W"] = rng.normal(size=(concrete[-1], 2))
    nodes += [node("MatMul", [current, "W"], ["m"]), node("Tanh", ["m"], ["y"])]
    path = _save(tmp_path, f"random{index}", nodes, inits, shape, None, check=False)
    return path, n


@pytest.mark.parametrize("seed", range(12))
def test_random_shape_ops_are_read_right_or_refused(tmp_path, seed):
    import jaccli
    import onnxruntime
    from jaccli.errors import JaccliError

    rng = np.random.default_rng(seed)
    read = 0
    for index in range(25):
        path, n = _random_shape_graph(rng, tmp_path, index)
        try:
            onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception:
            continue  # not a graph onnxruntime runs at its declared shape
        try:
            model = jaccli.load(str(path))
        except JaccliError as error:
            assert "\n" not in str(error)
            continue
        X = rng.normal(size=(3, n))
        try:
            runtime = runtime_values(path, X)
        except Exception:
            continue  # onnxruntime cannot run it one point at a time: jaccli read it anyway
        read += 1
        assert model.value(X).shape == runtime.shape, path
        assert np.allclose(model.value(X), runtime, rtol=1e-12, atol=1e-14), path
    assert read > 0


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_keras_output_name_picks_one_head(tmp_path, suffix):
    """A functional Keras actor-critic: one shared body, two heads; output_name picks one."""
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    pytest.importorskip("h5py")
    import jaccli
    from jaccli.errors import JaccliError

    from .oracles import dense_stack_reference

    rng = np.random.default_rng(1)
    obs = keras.Input((4,))
    body = keras.layers.Dense(8, activation="tanh", name="body")(obs)
    actions = keras.layers.Dense(2, name="actions")(body)
    value = keras.layers.Dense(1, activation="sigmoid", name="value")(body)
    model = keras.Model(obs, [actions, value])
    for layer in model.layers[1:]:
        layer.set_weights([rng.normal(size=w.shape) for w in layer.get_weights()])
    path = tmp_path / f"ac{suffix}"
    model.save(str(path))
    X = rng.normal(size=(5, 4))
    predicted = model.predict(X.astype(np.float32), verbose=0)
    for index, head in enumerate(["actions", "value"]):
        layers = [("k0", *_kernel_bias(model.get_layer("body")), "tanh"),
                  ("k1", *_kernel_bias(model.get_layer(head)),
                   model.get_layer(head).get_config()["activation"])]
        layers = [(k, kernel, k.replace("k", "b"), bias, act) for k, kernel, bias, act in layers]
        if suffix == ".h5":  # the harness names a .keras archive's tensors by class, not layer
            outcome = check_file(path, dense_stack_reference(layers), X, own=False,
                                 load_kwargs={"output_name": head})
            assert outcome.kind == "pass", f"{outcome.key}\n  {outcome.details}"
        loaded = jaccli.load(str(path), output_name=head)
        assert np.allclose(loaded.value(X), predicted[index], rtol=1e-5, atol=1e-5)
        assert loaded.output_names[0].startswith(head)
    for kwargs, expect in (({}, "pick one with output_name"),
                           ({"output_name": "nope"}, "'nope' is not an output layer")):
        with pytest.raises(JaccliError) as caught:
            jaccli.load(str(path), **kwargs)
        assert expect in str(caught.value) and "\n" not in str(caught.value)


def _kernel_bias(layer):
    kernel, bias = layer.get_weights()
    return kernel, bias


class _ActorCriticTimesZero(_ActorCritic):
    """gym2real's form of the constant: actions * 0 + sigma, computed from the input."""

    def forward(self, x):
        actions, value, _ = super().forward(x)
        return actions, value, actions * 0.0 + self.log_std


def test_an_output_multiplied_by_zero_is_refused_by_its_name(tmp_path):
    import jaccli
    from jaccli.errors import JaccliError

    torch.manual_seed(0)
    path = tmp_path / "ac0.onnx"
    torch.onnx.export(_ActorCriticTimesZero().double().eval(), (torch.randn(1, 4, dtype=torch.float64),),
                      str(path), dynamo=False, input_names=["obs"],
                      output_names=["actions", "value", "sigma"], dynamic_axes={"obs": {0: "N"}})
    with pytest.raises(JaccliError) as caught:
        jaccli.load(str(path), output_name="sigma")
    message = str(caught.value)
    assert "output 'sigma'" in message and "does not depend on the input" in message, message
    assert "\n" not in message and "None" not in message
