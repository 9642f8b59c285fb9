"""Read an ONNX model as an ordered list of simple layer events.

The file is parsed as protobuf by the ``onnx`` package and nothing in it is
run. External data is read here, not by ``onnx``: a location outside the
model's folder (symlinks resolved) or bytes past the end of the data file
are refused.

The walk starts at the one output the model computes (a classifier's
probabilities, named by class label; its label and ZipMap branch are dropped
and a note says so), or the one chosen by ``output_name``, and follows the
single chain of computed tensors back to the one graph input, of any shape
(``shapes.py``: its dimensions after the batch are the columns, in C order).
Each node on it becomes an event:

- ``Dense``: Gemm (any transA/transB), or MatMul with a constant weight
  (plus the constant Add that follows it as its bias); the weight on the
  left, W @ x, on a 1-D input or on (features, N) data;
- ``Activation``: an activation node (elementwise, or Softmax/LogSoftmax over
  the features), or one written out in several nodes (``patterns``: SiLU as
  Sigmoid + Mul, GELU as Div/Erf/Add/Mul/Mul or its tanh form, Mish,
  tf2onnx's PReLU and hard sigmoid, ...), with jaccli's activation name and
  parameters (a PRelu's slope initializer a parameter);
- ``LayerNorm``: LayerNormalization (opset 17+) or its written-out
  ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div form, gamma and beta parameters;
- ``Affine``: ``y = x * scale + offset`` from constant Add/Sub/Mul/Div, Neg
  and ``ai.onnx.ml`` Scaler nodes;
- ``BatchNorm``: BatchNormalization at inference, its stored statistics;
- ``Identity``: Identity, Dropout, Cast between float types, the shape ops
  (Flatten, Reshape, Squeeze, Unsqueeze, x.view(x.size(0), -1)) that keep
  one row per point, and Transpose (the data then flows as (features, N)
  until the next one).

What the graph computes is read, not what it declares: a fixed batch size
does not limit the points when no op mixes rows, Gemm's alpha/beta/transB are applied,
bias shapes only have to broadcast over the rows. Anything else is refused
with one line naming the node and its op type.

The package, each module importing only those above it:

- ``nodes``: how a node is named in messages, its attributes, the domains;
- ``events``: the event dataclasses and ``OnnxGraph``;
- ``shapes``: the data's shape along the chain, and the shape ops kept;
- ``dense``: the handlers of Gemm, MatMul, constant arithmetic and Scaler;
- ``ops``: the op type -> record table (arity, handler, refusal reason),
  the checks of each node on the chain, and steps -> events;
- ``patterns``: composite ops written out in several nodes;
- ``graph``: parsing the file, constants, external data, the walk;
- ``to_spec``: events -> DenseStack -> spec (``onnx_spec_and_tensors``).
"""

from jaccli.formats.onnx.events import Activation, Affine, BatchNorm, Dense, Identity, OnnxGraph
from jaccli.formats.onnx.graph import read_initializers, read_onnx
from jaccli.formats.onnx.nodes import FLOAT_TYPES, describe, float32_as_decimal
from jaccli.formats.onnx.to_spec import onnx_spec_and_tensors

__all__ = [
    "Activation", "Affine", "BatchNorm", "Dense", "FLOAT_TYPES", "Identity", "OnnxGraph", "describe",
    "float32_as_decimal", "onnx_spec_and_tensors", "read_initializers", "read_onnx",
]
