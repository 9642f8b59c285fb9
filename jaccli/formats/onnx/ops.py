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
from jaccli.formats.onnx.events import Activation, Identity, LayerNorm
from jaccli.formats.onnx.nodes import (
    FLOAT_TYPES, ML_DOMAIN, STANDARD_DOMAINS, attribute, close, describe, float_attribute,
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


def _not_transposed(walker, node, state):
    if state["transposed"]:
        walker.refuse(node, "reshapes transposed (features, N) data")


def _cast(walker, node, data, events, state):
    if attribute(walker, node, "to", 0) not in FLOAT_TYPES:
        walker.refuse(node, "casts to a type that is not float")
    return _identity(walker, node, data, events, state)


def _flatten(walker, node, data, events, state):
    _not_transposed(walker, node, state)
    if attribute(walker, node, "axis", 1) not in (1, -1):
        walker.refuse(node, "flattens across the batch axis")
    return _identity(walker, node, data, events, state)


def _dropout(walker, node, data, events, state):
    if len(node.input) > 2 and node.input[2]:
        training = walker.constant(node.input[2], node, floats=False)
        if training.size != 1 or bool(training.reshape(-1)[0]):
            walker.refuse(node, "runs in training mode")
    return _identity(walker, node, data, events, state)


def _reshape(walker, node, data, events, state):
    _not_transposed(walker, node, state)
    shape = walker.constant(node.input[1], node, role="shape", floats=False).reshape(-1)
    ok = shape.dtype.kind in "iu" and shape.size == 2 and (
        shape[1] == state["width"] or (state["width"] is None and shape[1] > 0)
        or (shape[1] == -1 and shape[0] == 0))
    if not ok:
        walker.refuse(node, f"reshapes its (N, {state['width']}) input to {shape.tolist()}: "
                            "the result is not one row per point")
    if shape[1] > 0:
        state["width"] = int(shape[1])
    return _identity(walker, node, data, events, state)


def _transpose(walker, node, data, events, state):
    perm = attribute(walker, node, "perm", None)
    if perm is not None and list(perm) != [1, 0]:
        walker.refuse(node, f"perm={list(perm)} on a 2-D tensor")
    state["transposed"] = not state["transposed"]
    return _identity(walker, node, data, events, state)


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


def _softmax(walker, node, data, events, state):
    """Softmax or LogSoftmax over the features (before opset 13 the axis default is 1,
    and on an (N, d) input the 2-D coercion then is the same thing)."""
    default = -1 if walker.opsets.get("", 13) >= 13 else 1
    features = (0, -2) if state["transposed"] else (1, -1)
    if attribute(walker, node, "axis", default) not in features:
        walker.refuse(node, "softmax over another axis than the features")
    return [Activation("log_softmax" if node.op_type == "LogSoftmax" else "softmax", {}, describe(node))]


def _layer_normalization(walker, node, data, events, state):
    """LayerNormalization (opset 17) over the features: X, Scale and an optional B."""
    if state["transposed"] or attribute(walker, node, "axis", -1) not in (-1, 1):
        walker.refuse(node, "normalises over another axis than the features")
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
    "Identity": Op(_UNARY, _identity),
    "Dropout": Op((1, 3), _dropout),
    "Cast": Op(_UNARY, _cast),
    "Flatten": Op(_UNARY, _flatten),
    "Reshape": Op(_BINARY, _reshape),
    "Transpose": Op(_UNARY, _transpose),
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
    "LogSoftmax": Op(_UNARY, _softmax),
    "LayerNormalization": Op((2, 3), _layer_normalization),
    # Read only inside an activation or classifier output written out in several nodes.
    "Erf": Op(_UNARY), "Abs": Op(_UNARY), "Pow": Op(_BINARY), "Concat": Op((1, ANY)),
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


def events_of(walker, steps, width):
    """The events of the chain's steps, from the input to the output."""
    events = []
    # transposed: the data flows as (features, N) between a Transpose and the one undoing it
    state = {"width": width, "transposed": False}
    for step in steps:
        if step[0] == "activation":
            _, node, name, params, _ = step
            events.append(Activation(name, params, describe(node)))
        elif step[0] == "layernorm":
            _, node, eps, weight, bias, _ = step
            events.append(LayerNorm(eps, *(None if name is None else walker.constant(name, node)
                                           for name in (weight, bias)), weight, bias, describe(node),
                                    state["width"]))
        elif step[0] == "complement":
            events.append(dense.complement(walker, step[1], step[2], state))
        else:
            _, node, data = step
            events.extend(_node_events(walker, node, data, events, state))
    if state["transposed"]:
        walker.fail("the output is transposed, (features, N); jaccli reads models whose "
                    "output is (N, features), one row per point")
    return events
