"""Op type -> handler: one record per ONNX op jaccli reads or names in a refusal.

As in onnx's own reference evaluator, an op type looks up its record and the
record says everything about it: how many inputs a well-formed node has, the
handler that turns the node into layer events (none: the op is read only
inside a pattern of several nodes, see ``patterns.py``, or refused), and the
reason it is refused when jaccli never reads it. Also here: the checks every
node on the chain passes, and the loop turning the chain's steps into events.
"""

from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import numpy as np

from jaccli.formats.onnx import dense
from jaccli.formats.onnx.events import Activation, Affine, Identity, LayerNorm
from jaccli.formats.onnx.nodes import (
    FLOAT_TYPES, ML_DOMAIN, SIXTH, STANDARD_DOMAINS, attribute, close, describe,
    float_attribute, meant_scalar,
)
from jaccli.formats.onnx.shapes import (
    describe_flow, flat, flatten_shape, normalises_features, reshape_shape, reshaped, set_dims,
    squeeze_shape, unsqueeze_shape,
)

ANY = 1 << 30
# ONNX Selu defaults (float32 roundings of Klambauer et al.'s constants).
_SELU_ALPHA = 1.67326319217681884765625
_SELU_GAMMA = 1.05070102214813232421875


@dataclass(frozen=True)
class Op:
    arity: Tuple[int, int] = (0, ANY)  # (fewest, most) inputs; outside them: malformed
    handler: Optional[Callable] = None  # (walker, node, data, events, state) -> events
    reason: Optional[str] = None  # why jaccli never reads it
    ml: bool = False  # an ai.onnx.ml op, not a standard one


# -- handlers of the ops that change no value ---------------------------------


def _identity(walker, node, data, events, state):
    return [Identity(describe(node))]


def _cast(walker, node, data, events, state):
    if attribute(walker, node, "to", 0) not in FLOAT_TYPES:
        walker.refuse(node, "casts to a type that is not float")
    return _identity(walker, node, data, events, state)


def _dropout(walker, node, data, events, state):
    if len(node.input) > 2 and node.input[2]:
        training = walker.constant(node.input[2], node, floats=False)
        if training.size != 1 or bool(training.reshape(-1)[0]):
            walker.refuse(node, "runs in training mode")
    return _identity(walker, node, data, events, state)


def _ints(walker, node, index, role):
    """The constant integer input ``index`` of ``node`` (a shape, axes), 1-D."""
    values = walker.constant(node.input[index], node, role=role, floats=False).reshape(-1)
    if values.dtype.kind not in "iu":
        walker.refuse(node, f"its {role} '{node.input[index]}' is not integers")
    return [int(v) for v in values]


def _axes(walker, node):
    """Squeeze/Unsqueeze axes: the attribute (opset < 13) or the second input."""
    if len(node.input) > 1 and node.input[1]:
        return _ints(walker, node, 1, "axes")
    axes = attribute(walker, node, "axes", None)
    return None if axes is None else list(axes)


def _flatten(walker, node, data, events, state):
    axis = attribute(walker, node, "axis", 1)
    if state["dims"] is None and not state["transposed"]:  # (N, ?): only the identity is sure
        if axis not in (1, -1):
            walker.refuse(node, "flattens across the batch axis")
        return _identity(walker, node, data, events, state)
    reshaped(walker, node, state, lambda full: flatten_shape(full, axis), "flatten")
    return _identity(walker, node, data, events, state)


def _reshape(walker, node, data, events, state):
    shape = _ints(walker, node, 1, "shape")
    allowzero = attribute(walker, node, "allowzero", 0)
    if state["dims"] is None and not state["transposed"]:  # (N, ?): (N, k) or (N, -1) only
        ok = len(shape) == 2 and (shape[1] > 0 or (shape[1] == -1 and shape[0] == 0))
        if not ok:
            walker.refuse(node, f"reshapes its (N, ?) input to {shape}: the result is not "
                                "one row per point")
        if shape[1] > 0:
            set_dims(state, (shape[1],))
        return _identity(walker, node, data, events, state)
    reshaped(walker, node, state, lambda full: reshape_shape(full, shape, allowzero), "reshape",
             target=shape)
    return _identity(walker, node, data, events, state)


def view(walker, node, shape_of, state):
    """A Reshape whose shape is computed from the data's Shape (pytorch 1.x's
    x.view(x.size(0), -1), Unflatten): ``shape_of`` maps the data's concrete shape to it."""
    allowzero = attribute(walker, node, "allowzero", 0)
    if state["dims"] is None and not state["transposed"]:
        walker.refuse(node, "reshapes data of unknown width (the input declares no shape)")
    reshaped(walker, node, state, lambda full: reshape_shape(full, shape_of(full), allowzero),
             "reshape")
    return [Identity(describe(node))]


def _squeeze(walker, node, data, events, state):
    axes = _axes(walker, node)
    reshaped(walker, node, state, lambda full: squeeze_shape(full, axes), "squeeze")
    return _identity(walker, node, data, events, state)


def _unsqueeze(walker, node, data, events, state):
    axes = _axes(walker, node)
    if axes is None:
        walker.refuse(node, "has no axes")
    reshaped(walker, node, state, lambda full: unsqueeze_shape(full, axes), "unsqueeze")
    return _identity(walker, node, data, events, state)


def _transpose(walker, node, data, events, state):
    perm = attribute(walker, node, "perm", None)
    if state["vector"]:  # a 1-D transpose changes nothing
        return _identity(walker, node, data, events, state)
    if perm is not None and list(perm) != [1, 0] or not flat(state) or \
            (state["dims"] is not None and len(state["dims"]) != 1):
        walker.refuse(node, f"perm={perm and list(perm)} on {describe_flow(state)} data; "
                            "jaccli reads the transpose of 2-D data")
    state["transposed"] = not state["transposed"]
    return _identity(walker, node, data, events, state)


def _neg(walker, node, data, events, state):
    """-x: the constant scaling by -1."""
    return [Affine(np.array(-1.0), np.array(0.0), describe(node))]


# -- handlers of the activations ----------------------------------------------


def _simple(name):
    """An activation node with no attributes jaccli reads: jaccli's ``name``."""
    def handler(walker, node, data, events, state):
        return [Activation(name, {}, describe(node))]
    return handler


def _with_alpha(name, default):
    """An activation node with one float attribute alpha."""
    def handler(walker, node, data, events, state):
        alpha = float_attribute(walker, node, "alpha", default)
        return [Activation(name, {"alpha": alpha}, describe(node))]
    return handler


def _selu(walker, node, data, events, state):
    alpha = float_attribute(walker, node, "alpha", _SELU_ALPHA)
    gamma = float_attribute(walker, node, "gamma", _SELU_GAMMA)
    if not (close(alpha, _SELU_ALPHA) and close(gamma, _SELU_GAMMA)):
        walker.refuse(node, f"alpha={alpha}, gamma={gamma} are not SELU's constants")
    return [Activation("selu", {}, describe(node))]


def _gelu(walker, node, data, events, state):
    approximate = attribute(walker, node, "approximate", "none")
    if approximate not in ("none", "tanh"):
        walker.refuse(node, f"approximate='{approximate}' is not 'none' or 'tanh'")
    return [Activation("gelu" if approximate == "none" else "gelu_tanh", {}, describe(node))]


def clip_bounds(walker, node):
    """(min, max) of a Clip node, None for a bound not given: constant inputs 1 and 2
    (opset 11 on) or the min/max attributes (before)."""
    if walker.opsets.get("", 11) < 11:
        return tuple(float_attribute(walker, node, key, None) for key in ("min", "max"))
    names = (list(node.input[1:3]) + ["", ""])[:2]
    return tuple(meant_scalar(walker, name, node, role) if name else None
                 for name, role in zip(names, ("min", "max")))


def _clip(walker, node, data, events, state):
    """Clip(x, min, max) as hardtanh (torch's Hardtanh and ReLU6); min 0 alone is relu."""
    low, high = clip_bounds(walker, node)
    if low == 0.0 and high is None:
        return [Activation("relu", {}, describe(node))]
    if low is None or high is None:
        walker.refuse(node, f"clips with one bound ({low}, {high}); jaccli reads Clip with "
                            "both bounds (hardtanh) or min 0 alone (relu)")
    return [Activation("hardtanh", {"min_val": low, "max_val": high}, describe(node))]


def _hard_sigmoid(walker, node, data, events, state):
    """max(0, min(1, alpha x + beta)); torch writes alpha = float32(1/6), meaning 1/6."""
    alpha = float_attribute(walker, node, "alpha", 0.2)
    beta = float_attribute(walker, node, "beta", 0.5)
    alpha = SIXTH if close(alpha, SIXTH) else alpha
    return [Activation("hardsigmoid", {"alpha": alpha, "beta": beta}, describe(node))]


def _prelu(walker, node, data, events, state):
    """PRelu(x, slope): the slope a constant of one value per feature or one for all
    ((d,), (1, d), (1,)), a parameter of the model."""
    name = node.input[1]
    if not walker.is_constant(name):
        walker.refuse(node, f"its slope '{name}' is computed; jaccli reads a stored one")
    slope = walker.constant(name, node, role="slope")
    check_per_feature(walker, node, "slope", name, slope, state)
    return [Activation("prelu", {}, describe(node), tensors={"slope": (name, slope)})]


def check_per_feature(walker, node, role, name, array, state):
    """Refuse an activation's tensor unless it broadcasts as one value per feature of the
    (N, d) rows, or one for all: (d,), (1, d), (1,) (ONNX's broadcasting from the right;
    a (d, 1) one would make (d, d))."""
    width = state["width"]
    per_feature = array.ndim <= 2 and array.shape[:-1] in ((), (1,)) and \
        array.size in (1, width) and not (state["transposed"] and array.size > 1)
    if not per_feature:
        walker.refuse(node, f"its {role} '{name}' has shape {array.shape}; jaccli reads one "
                            f"value per feature ({width},) or one for all")


def _softmax(walker, node, data, events, state):
    """Softmax or LogSoftmax over the features (before opset 13 the axis default is 1,
    and on an (N, d) input the 2-D coercion then is the same thing)."""
    default = -1 if walker.opsets.get("", 13) >= 13 else 1
    features = (0, -1) if state["vector"] else (0, -2) if state["transposed"] else (1, -1)
    if not flat(state) or (state["dims"] is not None and len(state["dims"]) > 1) or \
            attribute(walker, node, "axis", default) not in features:
        walker.refuse(node, "softmax over another axis than the features")
    return [Activation("log_softmax" if node.op_type == "LogSoftmax" else "softmax", {}, describe(node))]


def _layer_normalization(walker, node, data, events, state):
    """LayerNormalization (opset 17) over the features: X, Scale and an optional B."""
    if not normalises_features(state, attribute(walker, node, "axis", -1), through_end=True):
        walker.refuse(node, f"normalises {describe_flow(state)} data over other axes than "
                            "one point's features")
    eps = float_attribute(walker, node, "epsilon", 1e-5)
    scale, scale_name = layer_norm_affine(walker, node, node.input[1], 1.0, state)
    bias, bias_name = layer_norm_affine(walker, node, node.input[2] if len(node.input) > 2 else "",
                                        0.0, state)
    return [LayerNorm(eps, scale, bias, scale_name, bias_name, describe(node), state["width"])]


def layer_norm_affine(walker, node, name, neutral, state):
    """(array, name) of a LayerNorm's gamma or beta: an initializer is a parameter; a
    Constant node (what torch writes without elementwise_affine) must be ``neutral``
    (1 or 0) and is dropped, as is an absent input."""
    if not name:
        return None, None
    array = walker.constant(name, node, role="scale" if neutral else "bias")
    if name in walker.initializers:
        if array.shape != (state["width"] or array.size,):
            walker.refuse(node, f"its '{name}' has shape {array.shape}, not one value per feature")
        return array, name
    if np.any(array != neutral):
        walker.refuse(node, f"its '{name}' is a computed constant other than {neutral:g}")
    return None, None


# -- the table ----------------------------------------------------------------

_UNARY, _BINARY = (1, 1), (2, 2)
_CONVOLUTION, _RECURRENT, _CONTROL = "a convolution", "a recurrent layer", "control flow"

OPS = {
    "Gemm": Op((2, 3), dense.gemm),
    "MatMul": Op(_BINARY, dense.matmul),
    "Add": Op(_BINARY, dense.arithmetic),
    "Sub": Op(_BINARY, dense.arithmetic),
    "Mul": Op(_BINARY, dense.arithmetic),
    "Div": Op(_BINARY, dense.arithmetic),
    "Scaler": Op(_UNARY, dense.scaler, ml=True),
    "BatchNormalization": Op((5, 5), dense.batchnorm),
    "Identity": Op(_UNARY, _identity),
    "Dropout": Op((1, 3), _dropout),
    "Cast": Op(_UNARY, _cast),
    "Flatten": Op(_UNARY, _flatten),
    "Reshape": Op(_BINARY, _reshape),
    "Squeeze": Op((1, 2), _squeeze),
    "Unsqueeze": Op((1, 2), _unsqueeze),
    "Transpose": Op(_UNARY, _transpose),
    "Neg": Op(_UNARY, _neg),
    "Relu": Op(_UNARY, _simple("relu")),
    "Sigmoid": Op(_UNARY, _simple("sigmoid")),
    "Tanh": Op(_UNARY, _simple("tanh")),
    "Softplus": Op(_UNARY, _simple("softplus")),
    "Softsign": Op(_UNARY, _simple("softsign")),
    "Exp": Op(_UNARY, _simple("exp")),
    "Sin": Op(_UNARY, _simple("sin")),
    "LeakyRelu": Op(_UNARY, _with_alpha("leaky_relu", 0.01)),
    "Elu": Op(_UNARY, _with_alpha("elu", 1.0)),
    "Selu": Op(_UNARY, _selu),
    "Gelu": Op(_UNARY, _gelu),
    "Softmax": Op(_UNARY, _softmax),
    "Clip": Op((1, 3), _clip),
    "HardSigmoid": Op(_UNARY, _hard_sigmoid),
    "HardSwish": Op(_UNARY, _simple("hardswish")),
    "Mish": Op(_UNARY, _simple("mish")),
    "Celu": Op(_UNARY, _with_alpha("celu", 1.0)),
    "PRelu": Op(_BINARY, _prelu),
    "LogSoftmax": Op(_UNARY, _softmax),
    "LayerNormalization": Op((2, 3), _layer_normalization),
    # Read only inside an activation or classifier output written out in several nodes.
    "Erf": Op(_UNARY), "Abs": Op(_UNARY), "Pow": Op(_BINARY), "Concat": Op((1, ANY)),
    "Shape": Op((1, 1)), "Gather": Op(_BINARY), "Slice": Op((3, 5)), "Mod": Op(_BINARY),
    "Log": Op(_UNARY), "Greater": Op(_BINARY), "Where": Op((3, 3)),
    "Min": Op((1, ANY)), "Max": Op((1, ANY)),
    # Refused by name.
    "Conv": Op(reason=_CONVOLUTION), "ConvTranspose": Op(reason=_CONVOLUTION),
    "LSTM": Op(reason=_RECURRENT), "GRU": Op(reason=_RECURRENT), "RNN": Op(reason=_RECURRENT),
    "If": Op(reason=_CONTROL), "Loop": Op(reason=_CONTROL), "Scan": Op(reason=_CONTROL),
}
_UNKNOWN = Op()
_ML_OPS = ", ".join(name for name, op in OPS.items() if op.ml)


# -- the nodes on the chain -----------------------------------------------------


def well_formed(node):
    """Whether ``node`` has the inputs (none of them empty but an optional last) and an
    output its op type needs; unknown op types are judged later."""
    fewest, most = OPS.get(node.op_type, _UNKNOWN).arity
    inputs = list(node.input)
    return fewest <= len(inputs) <= most and all(inputs[:fewest]) and \
        len(node.output) >= 1 and bool(node.output[0])


def check_node_kind(walker, node):
    """Refuse a node on the chain that no handler or pattern can read, whatever it is."""
    if not well_formed(node):
        walker.refuse(node, f"malformed: {len(node.input)} inputs {list(node.input)} and "
                            f"outputs {list(node.output)}")
    if (node.domain, node.op_type) in walker.functions:
        walker.refuse(node, "calls a local function of the model; jaccli reads plain graphs")
    if node.domain not in STANDARD_DOMAINS + (ML_DOMAIN,):
        walker.refuse(node, f"custom domain '{node.domain}' is not a standard ONNX op")
    reason = OPS.get(node.op_type, _UNKNOWN).reason
    if reason is not None:
        walker.refuse(node, f"{reason}; jaccli reads dense layers only")
    if any(a.type in (5, 10) for a in node.attribute):  # GRAPH, GRAPHS: subgraphs
        walker.refuse(node, "control flow (a subgraph); jaccli reads dense layers only")


def _node_events(walker, node, data, events, state):
    """The events of one node, by its op's handler."""
    op = OPS.get(node.op_type, _UNKNOWN)
    ml = node.domain == ML_DOMAIN
    if op.handler is None or op.ml != ml:
        if ml:
            walker.refuse(node, f"is not a layer jaccli reads (from {ML_DOMAIN} only {_ML_OPS})")
        walker.refuse(node, "is not a layer jaccli reads (dense layers, elementwise "
                            "activations and constant scalings only)")
    return op.handler(walker, node, data, events, state)


def events_of(walker, steps, state):
    """The events of the chain's steps, from the input to the output; ``state``: the
    input's (``shapes.new_state``)."""
    events = []
    for step in steps:
        if step[0] == "activation":  # a parameter given as (tensor name, array) is a tensor
            _, node, name, params, _ = step
            tensors = {k: v for k, v in params.items() if isinstance(v, tuple)}
            numbers = {k: v for k, v in params.items() if k not in tensors}
            for role, (tensor_name, array) in tensors.items():
                check_per_feature(walker, node, role, tensor_name, array, state)
            events.append(Activation(name, numbers, describe(node), tensors=tensors))
        elif step[0] == "view":
            events.extend(view(walker, step[1], step[2], state))
        elif step[0] == "layernorm":
            _, node, eps, weight, bias, axis, _ = step
            if not normalises_features(state, axis, through_end=False):
                walker.refuse(node, f"normalises {describe_flow(state)} data over another axis "
                                    "than one point's features")
            events.append(LayerNorm(eps, *(None if name is None else walker.constant(name, node)
                                           for name in (weight, bias)), weight, bias, describe(node),
                                    state["width"]))
        elif step[0] == "complement":
            events.append(dense.complement(walker, step[1], step[2], state))
        else:
            _, node, data = step
            events.extend(_node_events(walker, node, data, events, state))
    if state["transposed"] and state["batch"] != 1:
        walker.fail("the output is transposed, (features, N); jaccli reads models whose "
                    "output is (N, features), one row per point")
    return events
