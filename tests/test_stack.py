"""jaccli.formats.stack.DenseStack: the spec it writes computes the chain of events (an
independent forward pass of the events, computed here step by step with numpy), and
the loaded model's parameter Jacobian, w.r.t. the tensors as reported, matches central
differences of that forward pass."""

import numpy as np
import pytest

from jaccli.errors import JaccliError
from jaccli.formats.spec import parse_spec
from jaccli.formats.stack import DenseStack, checked_tensor
from jaccli.formats.tensors import TensorStore
from jaccli.model import build_model
from spec_forward import run_spec as run_spec_with

ACT = {"tanh": np.tanh, "relu": lambda z: np.maximum(z, 0.0), "linear": lambda z: z,
       "softmax": lambda z: np.exp(z) / np.exp(z).sum(1, keepdims=True)}


def run_spec(spec, tensors, x):
    return run_spec_with(spec, tensors, x, lambda z, name, alpha: ACT[name](z))


def run_events(events, x, tensors=None):
    """The chain as given, no folding: what the model computes (``tensors`` replaces the
    dense layers' weights and biases by name, for finite differences)."""
    a = x
    tensors = tensors or {}
    for i, (kind, *args) in enumerate(events):
        if kind == "dense":
            weight, bias = tensors.get(f"W{i}", args[0]), tensors.get(f"b{i}", args[1])
            a = a @ weight + (0.0 if bias is None else bias)
        elif kind == "activation":
            a = ACT[args[0]](a)
        elif kind == "affine":
            a = a * args[0] + args[1]
        elif kind == "batchnorm":
            mean, var, gamma, beta = args
            gamma, beta = tensors.get(f"g{i}", gamma), tensors.get(f"be{i}", beta)
            a = (a - mean) / np.sqrt(var + 1e-3) * gamma + beta
        elif kind == "scale_inputs":
            a = (a - args[0]) / args[1]
        elif kind == "scale_outputs":
            a = a * args[1] + args[0]
    return a


def feed(stack, events, layout="in_out"):
    for i, (kind, *args) in enumerate(events):
        where = f"node {i}"
        if kind == "dense":
            weight, bias = args
            weight = weight.T if layout == "out_in" else weight
            stack.dense(weight, bias, where=where, weight_name=f"W{i}", bias_name=f"b{i}")
        elif kind == "activation":
            stack.activation(args[0], where=where)
        elif kind == "affine":
            stack.affine(args[0], args[1], where=where)
        elif kind == "batchnorm":
            names = {"mean": f"m{i}", "var": f"v{i}", "weight": f"g{i}", "bias": f"be{i}"}
            stack.batchnorm(args[0], args[1], 1e-3, args[2], args[3], names=names, where=where)
        elif kind == "scale_inputs":
            stack.scale_inputs(*args)
        elif kind == "scale_outputs":
            stack.scale_outputs(*args)
        else:
            stack.identity()


def chain(rng, with_softmax=False):
    """Maps of both signs before, between and after layers, BatchNorms among them."""
    def positive(n):
        return rng.uniform(0.5, 2.0, n)

    def batchnorm(n):
        return ("batchnorm", rng.normal(size=n), positive(n), rng.normal(size=n), rng.normal(size=n))
    events = [
        ("scale_inputs", rng.normal(size=3), positive(3)),
        ("affine", positive(3), rng.normal(size=3)),
        ("affine", -1.5, -0.25),  # scalars apply to every feature; a sign flip
        batchnorm(3),  # before the first layer: its before map
        ("dense", rng.normal(size=(3, 4)), rng.normal(size=4)),
        ("affine", -positive(4), rng.normal(size=4)),  # the layer's after map
        batchnorm(4),
        ("activation", "tanh"),
        ("identity",),
        ("affine", rng.normal(size=4), rng.normal(size=4)),  # waits for the next layer
        batchnorm(4),
        ("dense", rng.normal(size=(4, 5)), None),
        ("activation", "relu"),
        ("affine", positive(5), rng.normal(size=5)),
        ("dense", rng.normal(size=(5, 2)), rng.normal(size=2)),
    ]
    if with_softmax:
        events.append(("activation", "softmax"))
    events.append(("affine", -positive(2), rng.normal(size=2)))
    return events


def load(spec, tensors):
    return build_model(parse_spec(spec, "m"), TensorStore("m", tensors.get, list(tensors)))


@pytest.mark.parametrize("layout", ["in_out", "out_in"])
@pytest.mark.parametrize("softmax", [False, True])
def test_spec_computes_the_chain_and_its_parameter_jacobian(layout, softmax):
    rng = np.random.default_rng(0)
    events = chain(rng, softmax)
    stack = DenseStack("m", layout=layout)
    feed(stack, events, layout)
    spec, tensors = stack.build()
    x = rng.normal(size=(7, 3))
    expected = run_events(events, x)
    np.testing.assert_allclose(run_spec(spec, tensors, x), expected, rtol=1e-12, atol=1e-12)
    assert [layer["activation"] for layer in spec["layers"]] == ["tanh", "relu", "softmax" if softmax else "linear"]
    assert "output_scaling" in spec  # the trailing constant map, sign flip included
    model = load(spec, tensors)
    np.testing.assert_allclose(model.value(x), expected, rtol=1e-12, atol=1e-12)
    jac = model.param_jacobian(x)
    for info in model.parameter_table:
        stored = tensors[info.name]
        for flat in range(stored.size):
            steps = []
            for sign in (1, -1):
                moved = stored.copy()
                moved.flat[flat] += sign * 1e-6
                moved = moved.T if layout == "out_in" and info.name.startswith("W") else moved
                steps.append(run_events(events, x, {info.name: moved}))
            np.testing.assert_allclose(jac[:, :, info.offset + flat], (steps[0] - steps[1]) / 2e-6,
                                       atol=2e-8, err_msg=info.name)


def test_a_tensor_used_twice_is_one_parameter_whose_columns_add_up():
    rng = np.random.default_rng(4)
    w, b = rng.normal(size=(3, 3)), rng.normal(size=3)
    stack = DenseStack("m")
    for i in range(2):
        stack.dense(w, b, where=f"fc{i}", weight_name="W", bias_name="b")
        stack.activation("tanh", where=f"t{i}")
    spec, tensors = stack.build()
    model = load(spec, tensors)
    assert [name for name, _ in model.parameters] == ["W", "b"]
    x = rng.normal(size=(4, 3))

    def f(w, b):
        return np.tanh(np.tanh(x @ w + b) @ w + b)
    jac = model.param_jacobian(x)
    for k in range(9):
        step = np.zeros(9)
        step[k] = 1e-6
        numeric = (f(w + step.reshape(3, 3), b) - f(w - step.reshape(3, 3), b)) / 2e-6
        np.testing.assert_allclose(jac[:, :, k], numeric, atol=1e-8)
    with pytest.raises(JaccliError, match="'W' names two different tensors"):
        stack.dense(w + 1, b, where="fc2", weight_name="W", bias_name="b")


def test_output_scalings_compose_in_order():
    rng = np.random.default_rng(1)
    events = [("dense", rng.normal(size=(2, 3)), rng.normal(size=3)), ("activation", "tanh"),
              ("affine", np.array([0.5, 2.0, 3.0]), np.array([1.0, -1.0, 0.0])),
              ("scale_outputs", np.array([1.0, 2.0, 3.0]), np.array([2.0, 0.5, 1.0])),
              ("scale_outputs", 10.0, 4.0)]
    stack = DenseStack("m")
    feed(stack, events)
    spec, tensors = stack.build()
    x = rng.normal(size=(5, 2))
    np.testing.assert_allclose(run_spec(spec, tensors, x), run_events(events, x), rtol=1e-13)


def refusal(stack_kwargs, calls):
    stack = DenseStack("m.onnx", dense="Gemm", **stack_kwargs)
    with pytest.raises(JaccliError) as info:
        for call in calls:
            call(stack)
        stack.build()
    message = str(info.value)
    assert message.startswith("m.onnx: ") and "\n" not in message
    return message


def dense(n_in, n_out, where="fc"):
    return lambda s: s.dense(np.ones((n_in, n_out)), None, where=where, weight_name="W", bias_name="b")


def test_refusals_name_the_node_and_the_rule():
    tanh = lambda s: s.activation("tanh", where="act")  # noqa: E731
    negative = lambda s: s.affine(-1.0, 0.0, where="mul")  # noqa: E731
    zero = lambda s: s.affine(0.0, 1.0, where="mul0")  # noqa: E731
    assert "no Gemm layer" in refusal({}, [])
    assert "act: an activation must directly follow a Gemm layer" in refusal({}, [tanh])
    assert "act: an activation must directly follow" in refusal({}, [dense(2, 2), tanh, negative, tanh])
    assert "mul0 multiplies an input by zero" in refusal({}, [zero])
    assert "two activations in a row" in refusal({}, [dense(2, 2), tanh, tanh])
    assert "mul0: multiplies an output by zero after the last layer" in refusal({}, [dense(2, 2), tanh, zero])
    assert "fc2 takes 3 inputs but receives 2 from fc" in refusal({}, [dense(2, 2), dense(3, 1, "fc2")])
    assert "fc takes 2 inputs but receives 4 from the model's input" in refusal({"inputs": 4}, [dense(2, 1)])
    assert "fc bias has shape (3,), expected (2,)" in refusal(
        {}, [lambda s: s.dense(np.ones((2, 2)), np.ones(3), where="fc", weight_name="W", bias_name="b")])
    assert "fc weight holds a non-finite value (nan)" in refusal(
        {}, [lambda s: s.dense(np.full((2, 2), np.nan), None, where="fc", weight_name="W", bias_name="b")])
    assert "an input scaling must come before" in refusal({}, [dense(2, 2), lambda s: s.scale_inputs(0.0, 1.0)])
    assert "two scalings of 2 and 3 columns" in refusal(
        {}, [lambda s: s.scale_inputs(np.zeros(2), np.ones(2)), lambda s: s.scale_inputs(np.zeros(3), np.ones(3))])
    assert "input scaling has a zero scale" in refusal(
        {}, [lambda s: s.scale_inputs(np.zeros(2), np.array([1.0, 0.0])), dense(2, 1)])


def test_checked_tensor():
    assert checked_tensor([1, 2], "t").dtype == np.float64
    source = np.ones(2)
    assert checked_tensor(source, "t") is not source  # a copy: folding never aliases the source
    for bad, words in [(np.ones(2, complex), "is complex"), (np.array(["a"]), "not real numbers"),
                       (np.array([True]), "not real numbers"), (np.array([1.0, np.inf]), "non-finite value (inf) at index [1]")]:
        with pytest.raises(JaccliError, match=words.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
            checked_tensor(bad, "t")


NON_NEGATIVE = {"relu": lambda z: np.maximum(z, 0.0), "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
                "softplus": lambda z: np.logaddexp(0.0, z), "exp": np.exp}
SECOND = {"relu": (None, lambda a: np.maximum(a, 0.0)),
          "leaky_relu": (0.1, lambda a: np.where(a > 0, a, 0.1 * a)),
          "leaky_relu_steep": (-2.0, lambda a: np.where(a > 0, a, -2.0 * a))}


@pytest.mark.parametrize("first", sorted(NON_NEGATIVE))
@pytest.mark.parametrize("second", sorted(SECOND))
def test_relu_after_a_non_negative_activation_is_folded_away(first, second, monkeypatch):
    rng = np.random.default_rng(3)
    w0, b0, w1 = rng.normal(size=(3, 4)), rng.normal(size=4), rng.normal(size=(4, 2))
    alpha, apply = SECOND[second]
    stack = DenseStack("m")
    stack.dense(w0, b0, where="fc", weight_name="W0", bias_name="b0")
    stack.activation(first, where="act")
    stack.activation(second.removesuffix("_steep"), None if alpha is None else {"alpha": alpha},
                     where="act2")
    stack.dense(w1, None, where="fc2", weight_name="W1", bias_name="b1")
    spec, tensors = stack.build()
    assert [layer["activation"] for layer in spec["layers"]] == [first, "linear"]
    assert "alpha" not in spec["layers"][0]
    x = rng.normal(size=(9, 3)) * 3
    expected = apply(NON_NEGATIVE[first](x @ w0 + b0)) @ w1  # the chain as given, second activation too
    monkeypatch.setitem(ACT, first, NON_NEGATIVE[first])
    np.testing.assert_allclose(run_spec(spec, tensors, x), expected, rtol=1e-13)


def test_a_relu_after_a_softplus_with_a_negative_threshold_is_not_dropped():
    """torch's Softplus(threshold=-5) is z itself on (-5, 0), negative: a ReLU after it is no
    identity (it was dropped: 0.17 off torch with exit 0)."""
    softplus = lambda s: s.activation("softplus", {"threshold": -5.0}, where="a")  # noqa: E731
    relu = lambda s: s.activation("relu", where="b")  # noqa: E731
    assert "two activations in a row" in refusal({}, [dense(2, 2), softplus, relu])
    stack = DenseStack("m")
    for call in (dense(2, 2), lambda s: s.activation("softplus", {"threshold": 20.0}, where="a"), relu):
        call(stack)
    assert [layer["activation"] for layer in stack.build()[0]["layers"]] == ["softplus"]


@pytest.mark.parametrize("first, second", [("tanh", "relu"), ("leaky_relu", "relu"), ("elu", "leaky_relu"),
                                           ("relu", "elu"), ("relu", "tanh"), ("sigmoid", "softplus")])
def test_other_pairs_of_activations_are_still_refused(first, second):
    assert "two activations in a row" in refusal({}, [dense(2, 2), lambda s: s.activation(first, where="a"),
                                                      lambda s: s.activation(second, where="b")])
