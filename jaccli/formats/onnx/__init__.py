"""Reading an ONNX model: a package, split from one module in the next commits."""

from jaccli.formats.onnx.graph import (  # noqa: F401
    FLOAT_TYPES, Activation, Affine, Dense, Identity, OnnxGraph, describe, float32_as_decimal,
    onnx_spec_and_tensors, read_initializers, read_onnx,
)
