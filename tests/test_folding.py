"""jaccli.formats.folding.DenseStack: every fold checked against the unfolded chain, computed
here step by step with numpy (an independent forward pass of the events)."""

import numpy as np
import pytest

from jaccli.errors import JaccliError
from jaccli.formats.folding import DenseStack, checked_tensor

ACT = {"tanh": np.tanh, "relu": lambda z: np.maximum(z, 0.0), "softmax": lambda z: np.exp(z) / np.exp(z).sum(1, keepdims=True)}


def run_events(events, x):
    """The chain as given, no folding: what the model computes."""
    a = x
    for kind, *args in events:
        if kind == "dense":
            weight, bias = args
            a = a @ weight + (0.0 if bias is None else bias)
        elif kind == "activation":
            a = ACT[args[0]](a)
        elif kind == "affine":
            a = a * args[0] + args[1]
        elif kind == "scale_inputs":
            a = (a - args[0]) / args[1]
        elif kind == "scale_outputs":
            a = a * args[1] + args[0]
    return a


def run_spec(spec, tensors, x):
    """What the built spec computes."""
    a = x
    if "input_scaling" in spec:
        a = (a - np.array(spec["input_scaling"]["offset"])) / np.array(spec["input_scaling"]["scale"])
    for layer in spec["layers"]:
        weight = tensors[layer["weight"]]
        a = a @ (weight.T if spec["layout"] == "out_in" else weight)
        if layer["bias"] is not None:
            a = a + tensors[layer["bias"]]
        a = a if layer["activation"] == "linear" else ACT[layer["activation"]](a)
    if "output_scaling" in spec:
        a = a * np.array(spec["output_scaling"]["scale"]) + np.array(spec["output_scaling"]["offset"])
    return a


def feed(stack, events, layout="in_out"):
    for i, (kind, *args) in enumerate(events):
        where = f"node {i}"
        if kind == "dense":
            weight, bias = args
            weight = weight.T if layout == "out_in" else weight
            stack.dense(weight, bias, where=where, weight_name=f"W{i}", bias_name=f"b{i}", name=str(i))
        elif kind == "activation":
            stack.activation(args[0], where=where)
        elif kind == "affine":
            stack.affine(args[0], args[1], where=where, name=str(i))
        elif kind == "scale_inputs":
            stack.scale_inputs(*args)
        elif kind == "scale_outputs":
            stack.scale_outputs(*args)
        else:
            stack.identity()


def chain(rng, with_softmax=False):
    """affine, affine, dense, affine, tanh, affine, dense (no bias), affine, dense, affine."""
    def positive(n):
        return rng.uniform(0.5, 2.0, n)
    events = [
        ("scale_inputs", rng.normal(size=3), positive(3)),
        ("affine", positive(3), rng.normal(size=3)),
        ("affine", 1.5, -0.25),  # scalars apply to every feature
        ("dense", rng.normal(size=(3, 4)), rng.normal(size=4)),
        ("affine", -positive(4), rng.normal(size=4)),  # folded into the layer's outputs
        ("activation", "tanh"),
        ("identity",),
        ("affine", rng.normal(size=4), rng.normal(size=4)),  # waits for the next layer
        ("dense", rng.normal(size=(4, 5)), None),
        ("activation", "relu"),
        ("affine", positive(5), rng.normal(size=5)),
        ("dense", rng.normal(size=(5, 2)), rng.normal(size=2)),
    ]
    if with_softmax:
        events.append(("activation", "softmax"))
    events.append(("affine", positive(2), rng.normal(size=2)))
    return events


@pytest.mark.parametrize("layout", ["in_out", "out_in"])
@pytest.mark.parametrize("leading", [False, True])
@pytest.mark.parametrize("softmax", [False, True])
def test_folded_spec_computes_the_chain(layout, leading, softmax):
    rng = np.random.default_rng(0)
    events = chain(rng, softmax)
    stack = DenseStack("m", layout=layout, leading_to_input_scaling=leading, trailing_to_output_scaling=True)
    feed(stack, events, layout)
    spec, tensors = stack.build()
    x = rng.normal(size=(7, 3))
    np.testing.assert_allclose(run_spec(spec, tensors, x), run_events(events, x), rtol=1e-12, atol=1e-12)
    assert [layer["activation"] for layer in spec["layers"]] == ["tanh", "relu", "softmax" if softmax else "linear"]
    assert ("output_scaling" in spec) == softmax  # else folded into the linear last layer
    assert spec["layout"] == layout
    assert spec["layers"][1]["bias"] == "b8"  # the folded shift made a bias


def test_output_scalings_compose_in_order():
    rng = np.random.default_rng(1)
    events = [("dense", rng.normal(size=(2, 3)), rng.normal(size=3)), ("activation", "tanh"),
              ("affine", np.array([0.5, 2.0, 3.0]), np.array([1.0, -1.0, 0.0])),
              ("scale_outputs", np.array([1.0, 2.0, 3.0]), np.array([2.0, 0.5, 1.0])),
              ("scale_outputs", 10.0, 4.0)]
    stack = DenseStack("m", trailing_to_output_scaling=True)
    feed(stack, events)
    spec, tensors = stack.build()
    x = rng.normal(size=(5, 2))
    np.testing.assert_allclose(run_spec(spec, tensors, x), run_events(events, x), rtol=1e-13)


def test_renamed_folded_layers_list_their_parts_in_order():
    rng = np.random.default_rng(2)
    stack = DenseStack("m", layout="out_in", rename_folded=lambda parts: ("+".join(parts) + ".w", "+".join(parts) + ".b"))
    stack.affine(np.ones(3), np.zeros(3), where="bn", name="0")
    stack.dense(rng.normal(size=(4, 3)), None, where="fc", weight_name="1.w", bias_name="1.b", name="1")
    stack.affine(np.ones(4), np.ones(4), where="bn", name="2")
    stack.dense(rng.normal(size=(1, 4)), None, where="fc", weight_name="3.w", bias_name="3.b", name="3")
    spec, tensors = stack.build()
    assert [(layer["weight"], layer["bias"]) for layer in spec["layers"]] == [("0+1+2.w", "0+1+2.b"), ("3.w", None)]
    assert set(tensors) == {"0+1+2.w", "0+1+2.b", "3.w"}


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
    assert "no Gemm layer" in refusal({}, [])
    assert "act: an activation must directly follow a Gemm layer" in refusal({}, [tanh])
    assert "act: an activation must directly follow" in refusal({}, [dense(2, 2), tanh, negative, tanh])
    assert "two activations in a row" in refusal({}, [dense(2, 2), tanh, tanh])
    assert "fc2 follows a Softmax" in refusal({}, [dense(2, 2), lambda s: s.activation("softmax", where="sm"),
                                                   dense(2, 1, "fc2")])
    assert "mul at the end has no Gemm layer" in refusal({}, [dense(2, 2), tanh, negative])
    assert "mul: a zero or negative scale" in refusal({"trailing_to_output_scaling": True},
                                                      [dense(2, 2), tanh, negative])
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
    for bad, words in [(np.ones(2, complex), "is complex"), (np.array(["a"]), "not numbers"),
                       (np.array([True]), "not numbers"), (np.array([1.0, np.inf]), "non-finite value (inf) at index [1]")]:
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
    stack.activation(second.removesuffix("_steep"), alpha, where="act2")
    stack.dense(w1, None, where="fc2", weight_name="W1", bias_name="b1")
    spec, tensors = stack.build()
    assert [layer["activation"] for layer in spec["layers"]] == [first, "linear"]
    assert "alpha" not in spec["layers"][0]
    x = rng.normal(size=(9, 3)) * 3
    expected = apply(NON_NEGATIVE[first](x @ w0 + b0)) @ w1  # the chain as given, second activation too
    monkeypatch.setitem(ACT, first, NON_NEGATIVE[first])
    np.testing.assert_allclose(run_spec(spec, tensors, x), expected, rtol=1e-13)


@pytest.mark.parametrize("first, second", [("tanh", "relu"), ("leaky_relu", "relu"), ("elu", "leaky_relu"),
                                           ("relu", "elu"), ("relu", "tanh"), ("sigmoid", "softplus")])
def test_other_pairs_of_activations_are_still_refused(first, second):
    assert "two activations in a row" in refusal({}, [dense(2, 2), lambda s: s.activation(first, where="a"),
                                                      lambda s: s.activation(second, where="b")])
