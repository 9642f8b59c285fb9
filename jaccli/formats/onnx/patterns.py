"""Composite ops written out in several nodes, recognised from their last node.

SiLU as Sigmoid + Mul, Softsign as Div/Add/Abs, GELU as Div/Erf/Add/Mul/Mul
(or its tanh form, in any order of products), and a binary classifier's
probabilities Concat(1 - p, p), and pytorch 1.x's ``x.view(x.size(0), -1)``
(Shape -> Gather(0) -> Unsqueeze -> Concat with -1 -> Reshape). Each match is a step of the chain: the
node it ends at, what it is, and the computed tensor it starts from.
"""

import math

from jaccli.formats.onnx.nodes import STANDARD_DOMAINS, attribute, close
from jaccli.formats.onnx.ops import well_formed

_SQRT_2 = math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_TANH_CUBIC = 0.044715


def composite(walker, node):
    """An activation written in several nodes ending at ``node``, or None."""
    for match in (_match_silu, _match_softsign, _match_gelu, _match_binary_probabilities,
                  _match_view):
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


def _match_view(walker, node):
    """Reshape(x, Concat(Unsqueeze(Gather(Shape(x), 0)), [-1])): x.view(x.size(0), -1)."""
    if node.op_type != "Reshape" or walker.is_constant(node.input[1]):
        return None
    concat = _producer_of(walker, node.input[1], "Concat")
    if concat is None or len(concat.input) != 2 or not walker.is_constant(concat.input[1]):
        return None
    rest = walker.constant(concat.input[1], concat, role="shape", floats=False).reshape(-1)
    unsqueeze = _producer_of(walker, concat.input[0], "Unsqueeze")
    gather = unsqueeze and _producer_of(walker, unsqueeze.input[0], "Gather")
    shape = gather and _producer_of(walker, gather.input[0], "Shape")
    if shape is None or rest.tolist() != [-1] or not walker.is_constant(gather.input[1]) or \
            shape.input[0] != node.input[0] or attribute(walker, gather, "axis", 0) != 0:
        return None
    index = walker.constant(gather.input[1], gather, role="index", floats=False).reshape(-1)
    if index.tolist() != [0]:
        return None
    return ("view", node, node.input[0])
