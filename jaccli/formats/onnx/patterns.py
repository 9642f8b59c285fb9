"""Composite ops written out in several nodes, recognised from their last node.

SiLU as Sigmoid + Mul, Softsign as Div/Add/Abs, GELU as Div/Erf/Add/Mul/Mul
(or its tanh form, in any order of products), Mish as x * Tanh(Softplus x),
Tanhshrink as x - Tanh x, LogSigmoid as Log(Sigmoid x), torch's Softplus
with its threshold as the dynamo exporter writes it (Where(Greater(beta x,
threshold), x, Softplus(beta x) / beta)), Keras's PReLU as tf2onnx writes
it (Relu x - alpha Relu(-x), or + (-alpha) Relu(-x)), Keras's hard sigmoid
and hard SiLU as tf2onnx writes them (``_hard_sigmoid_of``), LayerNorm as
ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div (+ Mul by gamma, + Add of beta:
torch's exporters before opset 17), a binary classifier's probabilities
Concat(1 - p, p), and pytorch 1.x's ``x.view(x.size(0), -1)`` (Shape ->
Gather(0) -> Unsqueeze -> Concat with -1 -> Reshape) or any Reshape whose
shape is computed from the data's Shape alone. Each match is a step of the
chain: the node it ends at, what it is (a parameter given as (tensor name,
array) is a tensor of the file), and the computed tensor it starts from.
"""

import math

import numpy as np

from jaccli.formats.onnx.nodes import (
    SIXTH, STANDARD_DOMAINS, TORCH_HARD_SIGMOID, attribute, close, meant_scalar, meant_value,
)
from jaccli.formats.onnx.ops import clip_bounds, well_formed

_SQRT_2 = math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_TANH_CUBIC = 0.044715
# Ops a pattern may end at whose other inputs are constants (GELU's final Mul by 0.5,
# LogSigmoid's Log, Keras 2's hard sigmoid's Max, a written-out LayerNorm's Mul or Add of
# gamma or beta): the chain asks for a pattern there too.
ENDS_WITH_ONE_COMPUTED = ("Mul", "Add", "Log", "Max")


def composite(walker, node):
    """An activation written in several nodes ending at ``node``, or None."""
    for match in (_match_silu, _match_mish, _match_hard_swish, _match_hard_sigmoid,
                  _match_softsign, _match_gelu, _match_tanhshrink, _match_log_sigmoid,
                  _match_softplus_threshold, _match_tf2onnx_prelu, _match_layer_norm,
                  _match_binary_probabilities, _match_view):
        found = match(walker, node)
        if found is not None:
            return found
    return None


def _producer_of(walker, name, op_type):
    node = walker.producer.get(name)
    if node is not None and node.op_type == op_type and node.domain in STANDARD_DOMAINS \
            and well_formed(node):
        return node
    return None


def _scalar(walker, name, node, role="constant"):
    """The one number of the constant ``name`` (a float32 one read as the decimal its
    writer meant, ``meant_value``), or None when it holds several: a pattern's constants
    are read here, so that a constant that does not fit means no match, not a refusal."""
    array = walker.constant(name, node, role=role)
    return meant_value(array) if array.size == 1 else None


def _match_silu(walker, node):
    if node.op_type != "Mul" or len(node.input) != 2:
        return None
    for x, s in (node.input, node.input[::-1]):
        sigmoid = _producer_of(walker, s, "Sigmoid")
        if sigmoid is not None and sigmoid.input[0] == x:
            return ("activation", node, "silu", {}, x)
    return None


def _match_mish(walker, node):
    """x * tanh(softplus(x)), as the TorchScript exporter writes Mish before opset 18."""
    if node.op_type != "Mul" or len(node.input) != 2:
        return None
    for x, t in (node.input, node.input[::-1]):
        tanh = _producer_of(walker, t, "Tanh")
        softplus = tanh and _producer_of(walker, tanh.input[0], "Softplus")
        if softplus is not None and softplus.input[0] == x:
            return ("activation", node, "mish", {}, x)
    return None


def _match_tanhshrink(walker, node):
    if node.op_type != "Sub":
        return None
    x, t = node.input
    tanh = _producer_of(walker, t, "Tanh")
    return ("activation", node, "tanhshrink", {}, x) if tanh and tanh.input[0] == x else None


def _match_log_sigmoid(walker, node):
    sigmoid = _producer_of(walker, node.input[0], "Sigmoid") if node.op_type == "Log" else None
    return ("activation", node, "log_sigmoid", {}, sigmoid.input[0]) if sigmoid else None


def _with_constant(walker, node, op_type):
    """(u, c) for ``node`` = op_type(u, c) or op_type(c, u) with c a constant of one value
    (a float32 one read as the decimal meant), u computed; else None. Commutative ops only."""
    if node is None or node.op_type != op_type or len(node.input) != 2 or \
            node.domain not in STANDARD_DOMAINS:
        return None
    for u, c in (node.input, node.input[::-1]):
        value = _scalar(walker, c, node) if walker.is_constant(c) and not walker.is_constant(u) \
            else None
        if value is not None:
            return u, value
    return None


def _hard_sigmoid_of(walker, node):
    """(x, alpha, beta) when ``node`` ends a written-out hard sigmoid, else None:
    Mul(Clip(Add(x, 3), 0, 6), 1/6) (Keras 3's relu6(x + 3) / 6 as tf2onnx writes it,
    the 1/6 stored as float32: read as 1/6 exactly), or Max(Min(Add(Mul(x, a), b), 1), 0)
    (Keras 2's, a = 0.2, b = 0.5)."""
    scaled = _with_constant(walker, node, "Mul")
    clip = scaled and close(scaled[1], SIXTH) and _producer_of(walker, scaled[0], "Clip")
    bounds_stored = clip and all(walker.is_constant(n) for n in clip.input[1:3] if n)
    shifted = bounds_stored and clip_bounds(walker, clip) == (0.0, 6.0) and \
        _with_constant(walker, _producer_of(walker, clip.input[0], "Add"), "Add")
    if shifted and shifted[1] == 3.0:
        return (shifted[0],) + TORCH_HARD_SIGMOID
    floor = _with_constant(walker, node, "Max")
    ceiling = floor and floor[1] == 0.0 and \
        _with_constant(walker, _producer_of(walker, floor[0], "Min"), "Min")
    shift = ceiling and ceiling[1] == 1.0 and \
        _with_constant(walker, _producer_of(walker, ceiling[0], "Add"), "Add")
    slope = shift and _with_constant(walker, _producer_of(walker, shift[0], "Mul"), "Mul")
    return (slope[0], slope[1], shift[1]) if slope and slope[1] > 0 else None


def _match_hard_sigmoid(walker, node):
    found = _hard_sigmoid_of(walker, node)
    if found is None:
        return None
    x, alpha, beta = found
    return ("activation", node, "hardsigmoid", {"alpha": alpha, "beta": beta}, x)


def _match_hard_swish(walker, node):
    """x * hard_sigmoid(x) with torch's constants: Keras 3's hard_silu as tf2onnx writes it."""
    if node.op_type != "Mul" or len(node.input) != 2:
        return None
    for x, h in (node.input, node.input[::-1]):
        found = _hard_sigmoid_of(walker, walker.producer.get(h))
        if found == (x,) + TORCH_HARD_SIGMOID:
            return ("activation", node, "hardswish", {}, x)
    return None


def _scaled_by(walker, name, op_type):
    """(u, k) for u = Mul(u, k) or Div(u, k) with a constant k (Mul's in either order), or
    (name, 1.0) when ``name`` is not such a product."""
    node = _producer_of(walker, name, op_type)
    if node is not None:
        for u, k in ((node.input, node.input[::-1]) if op_type == "Mul" else (node.input,)):
            if walker.is_constant(k) and not walker.is_constant(u):
                return u, meant_scalar(walker, k, node, "beta")
    return name, 1.0


def _match_softplus_threshold(walker, node):
    """Where(Greater(u, threshold), x, Softplus(u) / beta), u = beta x: torch's Softplus
    as the dynamo exporter writes it (beta 1: no Mul, no Div)."""
    if node.op_type != "Where":
        return None
    condition, x, other = node.input
    greater = _producer_of(walker, condition, "Greater")
    div = _producer_of(walker, other, "Div")
    inner = div.input[0] if div is not None and walker.is_constant(div.input[1]) else other
    softplus = _producer_of(walker, inner, "Softplus")
    if greater is None or softplus is None or greater.input[0] != softplus.input[0] or \
            not walker.is_constant(greater.input[1]):
        return None
    _, beta_after = _scaled_by(walker, other, "Div")
    u, beta = _scaled_by(walker, softplus.input[0], "Mul")
    if u != x or beta != beta_after:
        return None
    threshold = meant_scalar(walker, greater.input[1], greater, "threshold")
    return ("activation", node, "softplus", {"beta": beta, "threshold": threshold}, x)


def _match_tf2onnx_prelu(walker, node):
    """Relu(x) -/+ k * Relu(Neg x): Keras's PReLU, relu(x) - alpha relu(-x), as tf2onnx
    writes it, k = alpha (Sub), Neg(alpha) or a stored -alpha (Add). The stored tensor is
    the parameter; the slope is it times ``slope_scale`` (-1 for a stored -alpha)."""
    if node.op_type not in ("Sub", "Add"):
        return None
    relu = _producer_of(walker, node.input[0], "Relu")
    mul = _producer_of(walker, node.input[1], "Mul")
    if relu is None or mul is None:
        return None
    x = relu.input[0]
    for k, r in (mul.input, mul.input[::-1]):
        negative = _producer_of(walker, r, "Relu")
        negated = negative and _producer_of(walker, negative.input[0], "Neg")
        if negated is None or negated.input[0] != x:
            continue
        scale = 1.0 if node.op_type == "Sub" else -1.0
        neg = _producer_of(walker, k, "Neg")
        stored, scale = (neg.input[0], -scale) if neg is not None else (k, scale)
        if walker.is_constant(stored):
            slope = (stored, walker.constant(stored, mul, role="slope"))
            return ("activation", node, "prelu", {"slope": slope, "slope_scale": scale}, x)
    return None


def _match_softsign(walker, node):
    """x / (1 + |x|), as the TorchScript exporter writes Softsign."""
    if node.op_type != "Div" or len(node.input) != 2:
        return None
    x = node.input[0]
    if _one_plus(walker, node.input[1], "Abs") == x:
        return ("activation", node, "softsign", {}, x)
    return None


def _factors(walker, name, scalar=1.0):
    """A product of Mul/Div-by-constant nodes as (constant factor, computed factors)."""
    mul = _producer_of(walker, name, "Mul")
    div = _producer_of(walker, name, "Div")
    if mul is not None:
        total, found = scalar, []
        for operand in mul.input:
            if walker.is_constant(operand):
                value = _scalar(walker, operand, mul)
                if value is None:
                    return None, None
                total *= value
            else:
                inner_scalar, inner = _factors(walker, operand)
                if inner is None:
                    return None, None
                total *= inner_scalar
                found += inner
        return total, found
    if div is not None and walker.is_constant(div.input[1]):
        value = _scalar(walker, div.input[1], div)
        if not value:
            return None, None
        inner_scalar, inner = _factors(walker, div.input[0])
        return (None, None) if inner is None else (inner_scalar / value, inner)
    return scalar, [name]


def _one_plus(walker, name, op_type):
    """The input u of ``1 + op(u)`` (an Add of the constant 1), or None."""
    add = _producer_of(walker, name, "Add")
    if add is None:
        return None
    for a, b in (add.input, add.input[::-1]):
        if walker.is_constant(b) and close(_scalar(walker, b, add), 1.0):
            inner = _producer_of(walker, a, op_type)
            return inner.input[0] if inner is not None else None
    return None


def _match_gelu(walker, node):
    """x * 0.5 * (1 + erf(x / sqrt 2)), or its tanh form, in any order of products."""
    scalar, factors = _factors(walker, node.output[0])
    if factors is None or len(factors) != 2 or not close(scalar, 0.5):
        return None
    for x, other in (factors, factors[::-1]):
        u = _one_plus(walker, other, "Erf")
        if u is not None:
            k, inner = _factors(walker, u)
            if inner == [x] and close(k, 1.0 / _SQRT_2):
                return ("activation", node, "gelu", {}, x)
        u = _one_plus(walker, other, "Tanh")
        if u is not None and _is_gelu_tanh_argument(walker, u, x):
            return ("activation", node, "gelu_tanh", {}, x)
    return None


def _is_gelu_tanh_argument(walker, u, x):
    """Whether u = sqrt(2/pi) * (x + 0.044715 x^3)."""
    k, inner = _factors(walker, u)
    if inner is None or len(inner) != 1 or not close(k, _SQRT_2_OVER_PI):
        return False
    add = _producer_of(walker, inner[0], "Add")
    if add is None:
        return False
    for a, b in (add.input, add.input[::-1]):
        if a != x:
            continue
        k3, cube = _factors(walker, b)
        if cube == [x, x, x] and close(k3, _GELU_TANH_CUBIC):
            return True
        power = _producer_of(walker, cube[0], "Pow") if cube and len(cube) == 1 else None
        if power is not None and power.input[0] == x and close(k3, _GELU_TANH_CUBIC) \
                and walker.is_constant(power.input[1]) \
                and close(_scalar(walker, power.input[1], power), 3.0):
            return True
    return False


def _match_layer_norm(walker, node):
    """(x - mean) / sqrt(var + eps) [* gamma] [+ beta] over the features, written out:
    ("layernorm", node, eps, gamma's name, beta's name, the axis averaged over, x); gamma
    and beta initializers (the reader checks the axis against the data's shape)."""
    names, top = {"bias": None, "weight": None}, node
    for field, op_type in (("bias", "Add"), ("weight", "Mul")):
        if node is not None and node.op_type == op_type and len(node.input) == 2:
            inner, constant = node.input
            if walker.is_constant(inner):
                inner, constant = constant, inner
            if constant in walker.initializers and not walker.is_constant(inner):
                names[field] = constant
                node = walker.producer.get(inner)
    core = _layer_norm_core(walker, node) if node is not None and node.op_type == "Div" else None
    if core is None:
        return None
    eps, axis, x = core
    return ("layernorm", top, eps, names["weight"], names["bias"], axis, x)


def _layer_norm_core(walker, div):
    """(eps, axis, x) of Div(x - mean(x), Sqrt(mean((x - mean(x))^2) + eps)), both means
    over the one ``axis``, or None."""
    sub = _producer_of(walker, div.input[0], "Sub")
    sqrt = _producer_of(walker, div.input[1], "Sqrt")
    add = sqrt and _producer_of(walker, sqrt.input[0], "Add")
    if sub is None or add is None:
        return None
    x = sub.input[0]
    mean = _producer_of(walker, sub.input[1], "ReduceMean")
    variance, eps_name = add.input if walker.is_constant(add.input[1]) else add.input[::-1]
    variance = _producer_of(walker, variance, "ReduceMean")
    power = variance and _producer_of(walker, variance.input[0], "Pow")
    axis = _mean_axis(walker, mean) if mean is not None else None
    if axis is None or mean.input[0] != x or power is None or power.input[0] != div.input[0] \
            or _mean_axis(walker, variance) != axis \
            or not walker.is_constant(power.input[1]) or _scalar(walker, power.input[1], power) != 2.0 \
            or not walker.is_constant(eps_name):
        return None
    eps = _scalar(walker, eps_name, add, role="epsilon")
    return None if eps is None else (eps, axis, x)


def _mean_axis(walker, reduce_mean):
    """The one axis a ReduceMean averages over, keeping it (None: several, or not kept)."""
    if len(reduce_mean.input) > 1 and reduce_mean.input[1]:  # opset 18: the axes as an input
        if not walker.is_constant(reduce_mean.input[1]):
            return None
        axes = np.ravel(walker.constant(reduce_mean.input[1], reduce_mean, role="axes",
                                        floats=False)).tolist()
    else:
        axes = attribute(walker, reduce_mean, "axes", None)
    axes = list(axes or [])
    return int(axes[0]) if len(axes) == 1 and attribute(walker, reduce_mean, "keepdims", 1) == 1 else None


def _match_binary_probabilities(walker, node):
    """Concat(c - p, p) of a binary classifier (c = 1): both columns, as the file has them."""
    if node.op_type != "Concat" or len(node.input) != 2 or \
            attribute(walker, node, "axis", None) not in (1, -1):
        return None
    sub = _producer_of(walker, node.input[0], "Sub")
    p = node.input[1]
    c = _scalar(walker, sub.input[0], sub) if sub is not None and sub.input[1] == p and \
        walker.is_constant(sub.input[0]) else None
    if c is None:  # a vector c: not this pattern
        return None
    walker.binary = True
    return ("complement", node, c, p)


def _match_view(walker, node):
    """Reshape(x, shape) whose shape is computed from Shape(x) and constants alone, as
    torch writes x.view(x.size(0), -1) and Unflatten for a free batch: a step carrying
    the shape as a function of x's concrete shape."""
    if node.op_type != "Reshape" or walker.is_constant(node.input[1]):
        return None
    data = node.input[0]
    if not _shape_only(walker, node.input[1], data, set()):
        return None

    def shape_of(full):
        return _evaluate(walker, node.input[1], data, full, {})
    return ("view", node, shape_of, data)


# Integer ops a shape computation uses (Shape of the data, then arithmetic on it).
_SHAPE_OPS = ("Shape", "Gather", "Slice", "Concat", "Unsqueeze", "Squeeze", "Reshape", "Cast",
              "Add", "Sub", "Mul", "Div", "Mod", "Identity")


_LONGEST_SHAPE_COMPUTATION = 64  # nodes; torch writes a dozen for an Unflatten


def _shape_only(walker, name, data, seen):
    """Whether ``name`` is computed from constants and Shape(``data``) alone."""
    if walker.is_constant(name) or name in seen:
        return True
    seen.add(name)
    if len(seen) > _LONGEST_SHAPE_COMPUTATION:
        return False
    node = walker.producer.get(name)
    if node is None or node.op_type not in _SHAPE_OPS or node.domain not in STANDARD_DOMAINS:
        return False
    if node.op_type == "Shape":
        return node.input[0] == data and not node.attribute  # start/end: not read
    return all(_shape_only(walker, i, data, seen) for i in node.input if i)


def _evaluate(walker, name, data, full, cache):
    """The integer tensor ``name`` for the data's concrete shape ``full``."""
    if name in cache:
        return cache[name]
    if walker.is_constant(name):
        value = walker.constant(name, None, floats=False)
    elif walker.producer[name].op_type == "Shape":  # of the data (checked by _shape_only)
        value = np.array(full, dtype=np.int64)
    else:
        node = walker.producer[name]
        args = [_evaluate(walker, i, data, full, cache) if i else None for i in node.input]
        value = _SHAPE_FUNCTIONS[node.op_type](walker, node, args, full)
    cache[name] = np.asarray(value)
    return cache[name]


def _slice(walker, node, args, full):
    data, starts, ends = args[:3]
    axes = args[3] if len(args) > 3 and args[3] is not None else range(len(starts))
    steps = args[4] if len(args) > 4 and args[4] is not None else [1] * len(starts)
    index = [slice(None)] * data.ndim
    for axis, start, end, step in zip(axes, starts, ends, steps):
        index[int(axis)] = slice(int(start), int(end), int(step))
    return data[tuple(index)]


def _axes_of(node, args, walker):
    return [int(a) for a in (args[1] if len(args) > 1 and args[1] is not None
                             else attribute(walker, node, "axes", []))]


_SHAPE_FUNCTIONS = {
    "Gather": lambda w, n, a, full: np.take(a[0], a[1], axis=attribute(w, n, "axis", 0)),
    "Slice": _slice,
    "Concat": lambda w, n, a, full: np.concatenate([np.atleast_1d(x) for x in a],
                                                   axis=attribute(w, n, "axis", 0)),
    "Unsqueeze": lambda w, n, a, full: np.expand_dims(a[0], tuple(_axes_of(n, a, w))),
    "Squeeze": lambda w, n, a, full: np.squeeze(a[0], tuple(_axes_of(n, a, w)) or None),
    "Reshape": lambda w, n, a, full: a[0].reshape([int(d) for d in a[1]]),
    "Cast": lambda w, n, a, full: a[0], "Identity": lambda w, n, a, full: a[0],
    "Add": lambda w, n, a, full: a[0] + a[1], "Sub": lambda w, n, a, full: a[0] - a[1],
    "Mul": lambda w, n, a, full: a[0] * a[1],
    "Div": lambda w, n, a, full: np.trunc(a[0] / a[1]).astype(np.int64),
    "Mod": lambda w, n, a, full: np.mod(a[0], a[1]),
}
