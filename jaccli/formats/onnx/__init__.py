"""Read an ONNX model as an ordered list of simple layer events.

The file is parsed as protobuf by the ``onnx`` package and nothing in it is
run. External data is read here, not by ``onnx``: a location outside the
model's folder (symlinks resolved) or bytes past the end of the data file
are refused.

The walk starts at the one output the model computes (a classifier's
probabilities; its label and ZipMap branch are dropped and a note says so)
and follows the single chain of computed tensors back to the one graph
input. Each node on it becomes an event:

- ``Dense``: Gemm, or MatMul with a constant weight (plus the constant Add
  that follows it as its bias); between two Transposes, MatMul(W, x);
- ``Activation``: an elementwise activation node, or one written out in
  several nodes (SiLU as Sigmoid + Mul, Softsign as Div/Add/Abs, GELU as
  Div/Erf/Add/Mul/Mul or its tanh form), with jaccli's activation name;
- ``Affine``: ``y = x * scale + offset`` from constant Add/Sub/Mul/Div and
  ``ai.onnx.ml`` Scaler nodes;
- ``Identity``: Identity, Dropout, Flatten/Reshape of an (N, n) tensor,
  Cast between float types, and Transpose (the data then flows as
  (features, N) until the next one; the output must be (N, features)).

What the graph computes is read, not what it declares: fixed batch sizes
in the declared shapes are ignored, Gemm's alpha/beta/transB are applied,
bias shapes only have to broadcast over the rows. Anything else is refused
with one line naming the node and its op type.

The package, each module importing only those above it:

- ``nodes``: how a node is named in messages, its attributes, the domains;
- ``events``: the event dataclasses and ``OnnxGraph``;
- ``dense``: the handlers of Gemm, MatMul, constant arithmetic and Scaler;
- ``ops``: the op type -> record table (arity, handler, refusal reason),
  the checks of each node on the chain, and steps -> events;
- ``patterns``: composite ops written out in several nodes;
- ``graph``: parsing the file, constants, external data, the walk;
- ``to_spec``: events -> DenseStack -> spec (``onnx_spec_and_tensors``).
"""

from jaccli.formats.onnx.events import Activation, Affine, Dense, Identity, OnnxGraph
from jaccli.formats.onnx.graph import read_initializers, read_onnx
from jaccli.formats.onnx.nodes import FLOAT_TYPES, describe, float32_as_decimal
from jaccli.formats.onnx.to_spec import onnx_spec_and_tensors

__all__ = [
    "Activation", "Affine", "Dense", "FLOAT_TYPES", "Identity", "OnnxGraph", "describe",
    "float32_as_decimal", "onnx_spec_and_tensors", "read_initializers", "read_onnx",
]
