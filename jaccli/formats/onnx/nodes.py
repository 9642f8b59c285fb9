"""What one ONNX node says: its name in messages, its attributes, its domain.

Float attributes are stored in float32 by ONNX; they are read as the decimal
their writer meant (``float32_as_decimal``).
"""

import numpy as np

from jaccli.engine.activations import ACTIVATIONS
from jaccli.messages import printable

FLOAT_TYPES = {1: "float32", 11: "float64", 10: "float16"}  # TensorProto codes
STANDARD_DOMAINS = ("", "ai.onnx")
ML_DOMAIN = "ai.onnx.ml"

# Constants written out by exporters (GELU's, SELU's) are float32: within this of the exact ones.
CONSTANT_RTOL = 1e-6
# torch's and Keras 3's hard sigmoid, relu6(x + 3) / 6: the slope exporters write as
# float32(1/6) and the offset, as the activation table's defaults
SIXTH = ACTIVATIONS["hardsigmoid"].params["alpha"]
TORCH_HARD_SIGMOID = (SIXTH, ACTIVATIONS["hardsigmoid"].params["beta"])


def describe(node):
    """How messages name a node: its name (or first output) and op type."""
    if node is None:
        return "the model"
    name = node.name or (node.output[0] if node.output else "?")
    return f"node '{printable(name)}' ({printable(node.op_type)})"


def attribute(walker, node, name, default):
    for entry in node.attribute:
        if entry.name == name:
            value = walker.onnx.helper.get_attribute_value(entry)
            return value.decode() if isinstance(value, bytes) else value
    return default


def float_attribute(walker, node, name, default):
    """A FLOAT or FLOATS attribute, each value read as the decimal its writer meant."""
    value = attribute(walker, node, name, None)
    if value is None:
        return default
    if isinstance(value, (list, tuple)):
        return [float32_as_decimal(v) for v in value]
    return float32_as_decimal(value)


def float32_as_decimal(value):
    """The float64 of the shortest decimal that rounds to the float32 ``value``.

    ONNX stores float attributes (LeakyRelu's alpha, Gemm's alpha and beta,
    Scaler's offset and scale, a Constant's value_float) in float32: a 0.05
    arrives as 0.0500000007. Its shortest round-tripping decimal, 0.05, is what
    was written, so a float64 model matches its framework to the last digits.
    """
    return float(np.format_float_scientific(np.float32(value), unique=True))


def close(value, exact):
    """Whether a constant read from the file is ``exact`` up to float32 rounding."""
    return value is not None and abs(value - exact) <= CONSTANT_RTOL * abs(exact)


def meant_scalar(walker, name, node, role):
    """The one number of a constant input (a Clip bound, softplus's beta), a float32 one
    read as the decimal its writer meant; refused if computed or of several values."""
    if not walker.is_constant(name):
        walker.refuse(node, f"its {role} '{name}' is computed; jaccli reads a constant one")
    array = walker.constant(name, node, role=role)
    if array.size != 1:
        walker.refuse(node, f"its {role} '{name}' holds {array.size} values; jaccli reads one")
    return meant_value(array)


def meant_value(array):
    """The one number of a one-value array, a float32 one read as the decimal its writer
    meant (``float32_as_decimal``)."""
    value = array.reshape(-1)[0]
    return float32_as_decimal(value) if array.dtype == np.float32 else float(value)
