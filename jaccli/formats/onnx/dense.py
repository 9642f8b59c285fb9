"""The nodes that carry numbers: dense layers (Gemm, MatMul), affine maps
(a constant Add/Sub/Mul/Div, ai.onnx.ml Scaler), BatchNormalization, and a
binary classifier's complement written as a constant dense layer.

Each handler takes ``(walker, node, data, events, state)``: ``data`` is the
node's computed input, ``events`` those read so far, ``state`` the data's
shape and orientation (rows, columns or a vector: ``shapes.py``). It returns
the node's events.
"""

import numpy as np

from jaccli.formats.onnx.events import Affine, BatchNorm, Dense
from jaccli.formats.onnx.nodes import attribute, describe, float_attribute
from jaccli.formats.onnx.shapes import describe_flow, flat, per_feature, set_width


def _check_width(walker, node, state, n, what):
    if state["width"] is not None and n != state["width"]:
        walker.refuse(node, f"{what} has {n} rows but its input has {state['width']} features")


def _check_flat(walker, node, state):
    if not flat(state):
        walker.refuse(node, f"multiplies {describe_flow(state)} data: a dense layer applies to "
                            "flat points (N, n); flatten them first")


def _weight(walker, node, name, state, layout, out_transposed):
    """A dense node's constant 2-D weight ``name`` read as ``layout``: (weight, n_out)."""
    weight = walker.constant(name, node)
    name = walker.tensor_name(name)
    if weight.ndim != 2:
        walker.refuse(node, f"its weight '{name}' has shape {weight.shape}, not 2-D")
    n_in, n_out = weight.shape[::-1] if layout == "out_in" else weight.shape
    _check_width(walker, node, state, n_in, f"its weight '{name}'")
    state["transposed"] = out_transposed
    set_width(state, n_out)
    return weight, name, n_out


_BATCH_AXIS = ("the data's batch axis is multiplied (the points would mix); jaccli reads "
               "x @ W, and W @ x on (features, N) or 1-D data")


def _operands(walker, node, data, state, trans_a=0, trans_b=0):
    """(weight name, layout, output transposed) of a product with the data, or refuse.

    On rows (N, n), x @ op(W), or op(W) @ x.T when x is transposed by transB; on
    columns (n, N), op(W) @ x, or x.T @ op(W) by transA; on a vector, both sides.
    """
    _check_flat(walker, node, state)
    first = node.input[0] == data
    other = node.input[1] if first else node.input[0]
    if node.input[0] == node.input[1]:
        walker.refuse(node, "multiplies the data by itself")
    if state["vector"]:
        if trans_a or trans_b:
            walker.refuse(node, "transposes 1-D data")
        return other, "in_out" if first else "out_in", False
    rows = not state["transposed"]
    if first:  # data @ W: the data's rows are the points when op(data) is (N, n)
        if rows == bool(trans_a):
            walker.refuse(node, _BATCH_AXIS)
        return other, "out_in" if trans_b else "in_out", False
    if rows != bool(trans_b):  # W @ data: op(data) must be (n, N)
        walker.refuse(node, _BATCH_AXIS)
    return other, "in_out" if trans_a else "out_in", True


def gemm(walker, node, data, events, state):
    """Gemm: alpha * op(A) @ op(B) + beta * C, the data one of A and B."""
    trans_a, trans_b = attribute(walker, node, "transA", 0), attribute(walker, node, "transB", 0)
    name, layout, out_transposed = _operands(walker, node, data, state, trans_a, trans_b)
    weight, name, n_out = _weight(walker, node, name, state, layout, out_transposed)
    alpha = float_attribute(walker, node, "alpha", 1.0)
    beta = float_attribute(walker, node, "beta", 1.0)
    bias_name = node.input[2] if len(node.input) > 2 and node.input[2] else None
    bias = None if bias_name is None else _bias(walker, node, bias_name, n_out, state)
    bias_name = bias_name and walker.tensor_name(bias_name)
    return [Dense(weight, bias, layout, name, bias_name, describe(node), alpha, beta)]


def matmul(walker, node, data, events, state):
    """MatMul with a constant weight; its bias, if any, is the Add that follows."""
    name, layout, out_transposed = _operands(walker, node, data, state)
    weight, name, _ = _weight(walker, node, name, state, layout, out_transposed)
    return [Dense(weight, None, layout, name, None, describe(node))]


def _bias(walker, node, name, n_out, state):
    bias = walker.constant(name, node, role="bias")
    if per_feature(bias, state, n_out) is None:
        walker.refuse(node, f"its bias '{name}' has shape {bias.shape}; it must broadcast "
                            f"to one value per output")
    return bias


def _vector(walker, node, name, state):
    """A constant operand of an elementwise node as a 1-D array of size 1 or width."""
    array = walker.constant(name, node, role="constant")
    values = per_feature(array, state)
    if values is None:
        walker.refuse(node, f"its constant '{name}' has shape {array.shape}; it must "
                            f"broadcast to one value per feature of {describe_flow(state)} data")
    return values


def arithmetic(walker, node, data, events, state):
    """A constant Add/Sub/Mul/Div: a Dense's bias, or an affine map."""
    first = node.input[0] == data
    constant_name = node.input[1] if first else node.input[0]
    value = _vector(walker, node, constant_name, state)
    op = node.op_type
    last = events[-1] if events else None
    if op == "Add" and isinstance(last, Dense) and last.bias is None:
        last.bias = _bias(walker, node, constant_name, state["width"], state)
        last.bias_name = walker.tensor_name(constant_name)
        return []
    one, zero = np.ones_like(value), np.zeros_like(value)
    if op == "Add":
        return [Affine(one, value, describe(node))]
    if op == "Sub":
        return [Affine(one, -value, describe(node)) if first else Affine(-one, value, describe(node))]
    if op == "Mul":
        return [Affine(value, zero, describe(node))]
    if not first:
        walker.refuse(node, "divides a constant by the data: not an affine map")
    if np.any(value == 0):
        walker.refuse(node, f"divides by zero (constant '{constant_name}')")
    # The reciprocal of the file's constant in float64, not in the constant's float32.
    return [Affine(1.0 / value.astype(np.float64), zero, describe(node))]


def scaler(walker, node, data, events, state):
    """ai.onnx.ml Scaler: y = (x - offset) * scale."""
    offset = np.asarray(float_attribute(walker, node, "offset", [0.0]), dtype=np.float64)
    scale = np.asarray(float_attribute(walker, node, "scale", [1.0]), dtype=np.float64)
    for array in (offset, scale):
        if array.size != 1 and state["transposed"]:
            walker.refuse(node, "scales the columns of transposed (features, N) data")
        if array.size != 1 and state["width"] is not None and array.size != state["width"]:
            walker.refuse(node, f"scales {array.size} features, its input has {state['width']}")
    return [Affine(scale, -offset * scale, describe(node))]


def batchnorm(walker, node, data, events, state):
    """BatchNormalization at inference on (N, C) data: its four constants, per feature.

    The statistics are the file's stored running mean and variance; epsilon is
    a float32 attribute, read as the decimal its writer meant (torch's 1e-5).
    """
    if attribute(walker, node, "training_mode", 0):
        walker.refuse(node, "runs in training mode (batch statistics mix the rows)")
    if state["transposed"] or state["vector"] or not flat(state):
        walker.refuse(node, f"normalizes {describe_flow(state)} data: jaccli reads "
                            "BatchNormalization of flat rows (N, features) only")
    roles = ("scale", "bias", "mean", "var")
    names = dict(zip(roles, node.input[1:5]))
    arrays = {}
    for role, name in names.items():
        if not walker.is_constant(name):
            walker.refuse(node, f"its {role} '{name}' is computed in the graph, not stored")
        array = walker.constant(name, node, role=role)
        if array.ndim != 1 or (state["width"] is not None and array.size != state["width"]):
            walker.refuse(node, f"its {role} '{name}' has shape {array.shape}; expected one "
                                f"value per feature ({state['width']})")
        arrays[role] = array
        names[role] = walker.tensor_name(name)
    eps = float_attribute(walker, node, "epsilon", 1e-5)
    if np.any(arrays["var"].astype(np.float64) + eps <= 0):
        walker.refuse(node, f"its variance '{names['var']}' + epsilon is not positive")
    set_width(state, arrays["scale"].size)
    return [BatchNorm(arrays["scale"], arrays["bias"], arrays["mean"], arrays["var"], eps,
                      names, describe(node))]


def complement(walker, node, c, state):
    """[c - p, p] of the k columns p, as a constant dense layer: p [-I, I] + [c, 0]."""
    k = state["width"] or 1
    if state["transposed"] or not flat(state):
        walker.refuse(node, f"concatenates {describe_flow(state)} data")
    name = f"{node.output[0]}:complement"
    weight = np.hstack([-np.eye(k), np.eye(k)])
    bias = np.concatenate([np.full(k, c), np.zeros(k)])
    set_width(state, 2 * k)
    return Dense(weight, bias, "in_out", name, f"{name}:bias", describe(node), constant=True)
