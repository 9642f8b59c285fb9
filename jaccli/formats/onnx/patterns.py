"""Composite ops written out in several nodes, recognised from their last node.

SiLU as Sigmoid + Mul, Softsign as Div/Add/Abs, GELU as Div/Erf/Add/Mul/Mul
(or its tanh form, in any order of products), LayerNorm as
ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div (+ Mul by gamma, + Add of beta:
torch's exporters before opset 17), and a binary classifier's
probabilities Concat(1 - p, p). Each match is a step of the chain: the
node it ends at, what it is, and the computed tensor it starts from.
"""

import math

import numpy as np

from jaccli.formats.onnx.nodes import STANDARD_DOMAINS, attribute, close, float32_as_decimal
from jaccli.formats.onnx.ops import well_formed

_SQRT_2 = math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_TANH_CUBIC = 0.044715


def composite(walker, node):
    """An activation written in several nodes ending at ``node``, or None."""
    for match in (_match_silu, _match_softsign, _match_gelu, _match_layer_norm,
                  _match_binary_probabilities):
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


def _scalar(walker, name, node):
    array = walker.constant(name, node, role="constant")
    return float(array.reshape(-1)[0]) if array.size == 1 else None


def _match_silu(walker, node):
    if node.op_type != "Mul" or len(node.input) != 2:
        return None
    for x, s in (node.input, node.input[::-1]):
        sigmoid = _producer_of(walker, s, "Sigmoid")
        if sigmoid is not None and sigmoid.input[0] == x:
            return ("activation", node, "silu", {}, x)
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
    ("layernorm", node, eps, gamma's name, beta's name, x); gamma and beta initializers."""
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
    eps, x = core
    return ("layernorm", top, eps, names["weight"], names["bias"], x)


def _layer_norm_core(walker, div):
    """(eps, x) of Div(x - mean(x), Sqrt(mean((x - mean(x))^2) + eps)), or None."""
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
    if mean is None or mean.input[0] != x or power is None or power.input[0] != div.input[0] \
            or not (_over_features(walker, mean) and _over_features(walker, variance)) \
            or not walker.is_constant(power.input[1]) or _scalar(walker, power.input[1], power) != 2.0 \
            or not walker.is_constant(eps_name):
        return None
    eps = walker.constant(eps_name, add, role="epsilon")
    if eps.size != 1:
        return None
    value = float(eps.reshape(-1)[0])
    return (float32_as_decimal(value) if eps.dtype == np.float32 else value), x


def _over_features(walker, reduce_mean):
    """Whether a ReduceMean averages over the last axis of (N, d) data, keeping it."""
    if len(reduce_mean.input) > 1 and reduce_mean.input[1]:  # opset 18: the axes as an input
        if not walker.is_constant(reduce_mean.input[1]):
            return False
        axes = walker.constant(reduce_mean.input[1], reduce_mean, role="axes", floats=False).tolist()
    else:
        axes = attribute(walker, reduce_mean, "axes", None)
    return list(axes or []) in ([-1], [1]) and attribute(walker, reduce_mean, "keepdims", 1) == 1


def _match_binary_probabilities(walker, node):
    """Concat(c - p, p) of a binary classifier (c = 1): both columns, as the file has them."""
    if node.op_type != "Concat" or len(node.input) != 2 or \
            attribute(walker, node, "axis", None) not in (1, -1):
        return None
    sub = _producer_of(walker, node.input[0], "Sub")
    p = node.input[1]
    if sub is None or sub.input[1] != p or not walker.is_constant(sub.input[0]):
        return None
    walker.binary = True
    return ("complement", node, float(_scalar(walker, sub.input[0], sub)), p)
