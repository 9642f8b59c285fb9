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
"""

import math
import os
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

from jaccli.errors import JaccliError

FLOAT_TYPES = {1: "float32", 11: "float64", 10: "float16"}  # TensorProto codes
_STANDARD_DOMAINS = ("", "ai.onnx")
_ML_DOMAIN = "ai.onnx.ml"

# GELU written out by exporters; float32 constants are within this of the exact ones.
_CONSTANT_RTOL = 1e-6
_SQRT_2 = math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_TANH_CUBIC = 0.044715
# ONNX Selu defaults (float32 roundings of Klambauer et al.'s constants).
_SELU_ALPHA = 1.67326319217681884765625
_SELU_GAMMA = 1.05070102214813232421875

_SIMPLE_ACTIVATIONS = {
    "Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Softplus": "softplus",
    "Softsign": "softsign", "Exp": "exp", "Sin": "sin",
}
# (fewest, most) inputs of the ops read; a node outside these is malformed.
_ARITY = {"Gemm": (2, 3), "MatMul": (2, 2), "Add": (2, 2), "Sub": (2, 2), "Mul": (2, 2),
          "Div": (2, 2), "Pow": (2, 2), "Concat": (1, 1 << 30), "Reshape": (2, 2),
          "Dropout": (1, 3), "Scaler": (1, 1), "Identity": (1, 1), "Cast": (1, 1),
          "Flatten": (1, 1), "Erf": (1, 1), "Abs": (1, 1), "LeakyRelu": (1, 1), "Elu": (1, 1),
          "Selu": (1, 1), "Gelu": (1, 1), "Softmax": (1, 1), "Relu": (1, 1), "Sigmoid": (1, 1),
          "Tanh": (1, 1), "Softplus": (1, 1), "Softsign": (1, 1), "Exp": (1, 1), "Sin": (1, 1),
          "Transpose": (1, 1)}
_REASONS = {
    "Conv": "a convolution", "ConvTranspose": "a convolution",
    "LSTM": "a recurrent layer", "GRU": "a recurrent layer", "RNN": "a recurrent layer",
    "If": "control flow", "Loop": "control flow", "Scan": "control flow",
}


@dataclass
class Dense:
    """``y = x @ W + b`` (layout ``in_out``) or ``x @ W.T + b`` (``out_in``)."""

    weight: np.ndarray
    bias: Optional[np.ndarray]
    layout: str
    weight_name: str
    bias_name: Optional[str]
    where: str  # "node 'name' (OpType)", for messages
    weight_scale: float = 1.0  # Gemm's alpha and beta: x (alpha W) + beta b
    bias_scale: float = 1.0
    constant: bool = False  # W and b are the graph's constants, not parameters


@dataclass
class Activation:
    name: str  # a jaccli activation name
    params: dict
    where: str


@dataclass
class Affine:
    """``y = x * scale + offset``; scale and offset are 1-D, of size 1 or n."""

    scale: np.ndarray
    offset: np.ndarray
    where: str


@dataclass
class Identity:
    where: str


@dataclass
class OnnxGraph:
    events: list
    input_name: str
    output_name: str
    dtype: str  # the graph input's element type: float32, float64 or float16
    producer: str  # e.g. "pytorch 2.13.0"
    opsets: dict  # domain -> version
    notes: List[str] = field(default_factory=list)  # e.g. the classifier output taken


def describe(node):
    """How messages name a node: its name (or first output) and op type."""
    if node is None:
        return "the model"
    name = node.name or (node.output[0] if node.output else "?")
    return f"node '{_short(name)}' ({_short(node.op_type)})"


def _short(text, most=60):
    """A name from the file as shown in a message: cut, never more than one line."""
    text = text if len(text) <= most else text[:most - 3] + "..."
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _import_onnx(path):
    try:
        import onnx
    except ImportError:
        raise JaccliError(
            f"{path}: reading .onnx files needs the onnx package: pip install 'jaccli[onnx]'"
        ) from None
    return onnx


def _parse(path):
    onnx = _import_onnx(path)
    try:
        model = onnx.load(path, load_external_data=False)
    except OSError as error:
        raise JaccliError(f"{path}: cannot read: {error.strerror or error}") from None
    except Exception as error:  # protobuf's DecodeError and friends: not a model
        raise JaccliError(f"{path}: not an ONNX model ({type(error).__name__})") from None
    return _Walker(path, model, onnx)


def read_onnx(path) -> OnnxGraph:
    """The events of the model in ``path``; JaccliError for anything else."""
    return _parse(str(path)).run()


def read_initializers(path):
    """(getter, names) of the model's initializers, for a spec the user gives."""
    walker = _parse(str(path))

    def get(name):
        if name not in walker.initializers:
            return None
        return walker.constant(name, None, floats=False)
    return get, list(walker.initializers)


class _Walker:
    """One model's graph: constants, producers, and the walk over its chain."""

    def __init__(self, path, model, onnx):
        self.path = path
        self.onnx = onnx
        self.model = model
        self.graph = model.graph
        self.opsets = {o.domain or "": o.version for o in model.opset_import}
        self.functions = {(f.domain, f.name) for f in model.functions}
        self.initializers = {t.name: t for t in self.graph.initializer}
        self.constant_nodes = {}
        self.producer = {}
        for node in self.graph.node:
            for out in node.output:
                if out:
                    self.producer[out] = node
            if node.op_type == "Constant" and node.domain in _STANDARD_DOMAINS:
                self.constant_nodes[node.output[0]] = node
        self._check_order()
        self._cache = {}
        self.notes = []
        self.classifier = None  # (the probabilities taken, the labels dropped), for the note
        self.binary = False  # the probabilities are Concat(1 - p, p): p is taken

    def _check_order(self):
        """ONNX keeps nodes in topological order: each input is a graph input, an
        initializer or an earlier node's output. Checked once here, so the walks
        below can never loop on a cycle (a node fed by its own output)."""
        known = {i.name for i in self.graph.input} | set(self.initializers)
        for node in self.graph.node:
            for name in node.input:
                if name and name not in known:
                    self.refuse(node, f"uses {_short(repr(name), 80)} before any node computes it "
                                      "(the graph is out of order or has a cycle)")
            known.update(out for out in node.output if out)

    def fail(self, what):
        # Names in a hostile file can be long or hold line breaks: one short line still.
        raise JaccliError(f"{self.path}: {_short(what, 400)}")

    def refuse(self, node, why):
        self.fail(f"{describe(node)}: {why}")

    # -- constants ---------------------------------------------------------

    def is_constant(self, name):
        return name in self.initializers or name in self.constant_nodes

    def constant(self, name, node, role="weight", floats=True):
        """The array behind a constant input of ``node``, checked for its role."""
        if name not in self._cache:
            self._cache[name] = self._read_constant(name, node)
        array = self._cache[name]
        if floats and array.dtype.kind != "f":
            self.refuse(node, f"its {role} '{name}' is a tensor of {array.dtype}, not of floats")
        if floats and not np.all(np.isfinite(array)):
            self.refuse(node, f"its {role} '{name}' holds a non-finite value")
        return array

    def _read_constant(self, name, node):
        if name in self.initializers:
            tensor = self.initializers[name]
        else:
            tensor = self._constant_node_tensor(self.constant_nodes[name])
        if tensor.data_location == self.onnx.TensorProto.EXTERNAL:
            tensor = self._with_external_data(tensor, node)
        try:
            return np.asarray(self.onnx.numpy_helper.to_array(tensor))
        except Exception as error:
            self.refuse(node, f"tensor '{name}' cannot be read ({error})")

    def _constant_node_tensor(self, node):
        helper = self.onnx.helper
        for attribute in node.attribute:
            value = helper.get_attribute_value(attribute)
            if attribute.name == "value":
                return value
            if attribute.name in ("value_float", "value_floats"):
                decimals = [float32_as_decimal(v) for v in np.ravel(value)]
                return helper.make_tensor("c", self.onnx.TensorProto.DOUBLE, np.shape(value),
                                          decimals)
            if attribute.name in ("value_int", "value_ints"):
                return helper.make_tensor("c", self.onnx.TensorProto.INT64, np.shape(value),
                                          np.ravel(value).tolist())
        self.refuse(node, "a Constant node with no dense value")

    def _with_external_data(self, tensor, node):
        """A copy of ``tensor`` with its bytes read from the file beside the model."""
        info = {entry.key: entry.value for entry in tensor.external_data}
        location = info.get("location", "")
        where = f"tensor '{tensor.name}' used by {describe(node)}"
        folder = os.path.dirname(os.path.realpath(self.path))
        plain = location and not os.path.isabs(location) and "\0" not in location
        target = os.path.realpath(os.path.join(folder, location)) if plain else ""
        if not plain or os.path.commonpath([folder, target]) != folder:
            self.fail(f"{where}: external data location '{location}' is outside the model's folder")
        if not os.path.isfile(target):
            self.fail(f"{where}: external data file '{location}' not found beside the model")
        dtype = self.onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)
        expected = int(np.prod(tensor.dims, dtype=np.int64)) * np.dtype(dtype).itemsize
        try:
            offset = int(info.get("offset", 0))
            length = int(info.get("length", expected))
        except ValueError:
            self.fail(f"{where}: external data offset/length are not numbers")
        size = os.path.getsize(target)
        if offset < 0 or length != expected or offset + length > size:
            self.fail(f"{where}: external data bytes {offset}..{offset + length} of "
                      f"'{location}' ({size} bytes) do not hold a {tuple(tensor.dims)} "
                      f"{np.dtype(dtype)} tensor")
        with open(target, "rb") as handle:
            handle.seek(offset)
            data = handle.read(length)
        copy = self.onnx.TensorProto()
        copy.CopyFrom(tensor)
        del copy.external_data[:]
        copy.data_location = self.onnx.TensorProto.DEFAULT
        copy.raw_data = data
        return copy

    # -- the walk ----------------------------------------------------------

    def run(self):
        input_name, width, dtype = self._the_input()
        output_name = self._the_output()
        steps = _chain(self, output_name, input_name)
        self._classifier_note()
        events = _events(self, steps, width)
        _check_softmax_last(self, events)
        if not any(isinstance(e, Dense) for e in events):
            self.fail("the graph has no dense layer (Gemm or MatMul with a constant weight)")
        producer = " ".join(p for p in (self.model.producer_name, self.model.producer_version) if p)
        return OnnxGraph(events, input_name, output_name, dtype, producer, self.opsets, self.notes)

    def _the_input(self):
        inputs = [i for i in self.graph.input if i.name not in self.initializers]
        if len(inputs) != 1:
            names = ", ".join(f"'{i.name}'" for i in inputs) or "none"
            self.fail(f"the graph has {len(inputs)} inputs ({names}); jaccli reads "
                      "models of one input tensor (N, n)")
        the_input = inputs[0]
        kind = the_input.type.WhichOneof("value")
        tensor = the_input.type.tensor_type
        if kind != "tensor_type" or tensor.elem_type not in FLOAT_TYPES:
            self.fail(f"input '{the_input.name}' is not a float tensor")
        dims = list(tensor.shape.dim) if tensor.HasField("shape") else None
        if dims is not None and len(dims) != 2:
            self.fail(f"input '{the_input.name}' has {len(dims)} dimensions; jaccli reads "
                      "(N, n) tensors, one row per point")
        width = dims[1].dim_value if dims and dims[1].dim_value > 0 else None
        return the_input.name, width, FLOAT_TYPES[tensor.elem_type]

    def _the_output(self):
        """The one float output; a classifier's labels and ZipMap are dropped."""
        kept, dropped, zipmap = [], [], None
        for out in self.graph.output:
            node = self.producer.get(out.name)
            if node is not None and node.op_type == "ZipMap" and node.domain == _ML_DOMAIN:
                kept.append(node.input[0])
                zipmap = out.name
                continue
            tensor = out.type.tensor_type
            is_tensor = out.type.WhichOneof("value") == "tensor_type"
            if is_tensor and tensor.elem_type in FLOAT_TYPES:
                kept.append(out.name)
            elif is_tensor and tensor.elem_type in (6, 7, 8):  # int32, int64, string: labels
                dropped.append(out.name)
            else:
                self.fail(f"output '{out.name}' is not a float tensor")
        if len(kept) != 1:
            names = ", ".join(f"'{o.name}'" for o in self.graph.output) or "none"
            self.fail(f"the graph has {len(self.graph.output)} outputs ({names}); jaccli "
                      "reads models of one output tensor (or a classifier's probabilities)")
        if dropped or zipmap:
            taken = f"'{kept[0]}'" if zipmap is None else f"(ZipMap '{zipmap}', as an array)"
            labels = ", ".join(f"'{name}'" for name in dropped)
            self.classifier = (taken, f"; the label output {labels} is dropped" if labels else "")
        return kept[0]

    def _classifier_note(self):
        """What ``info`` says about a classifier's outputs, once the chain is known."""
        if self.classifier is None and not self.binary:
            return
        taken, dropped = self.classifier or ("", "")
        if self.binary:
            self.notes.append(f"binary classifier: the outputs are the two class probabilities "
                              f"{taken}, the first 1 minus the second{dropped}")
        else:
            self.notes.append(f"classifier: the outputs are the class probabilities {taken}{dropped}")


# -- the chain, from the output back to the input -------------------------


def _chain(walker, output_name, input_name):
    """The steps from input to output: ("node", node, data_input) or ("activation", ...)."""
    steps = []
    current = output_name
    for _ in range(len(walker.graph.node) + 1):
        if current == input_name:
            return steps[::-1]
        node = walker.producer.get(current)
        if node is None:
            walker.fail(f"tensor '{current}' is not computed from the input '{input_name}'")
        _check_node_kind(walker, node)
        computed = [name for name in node.input if name and not walker.is_constant(name)]
        # A written-out activation may end in a Mul by a constant (GELU's 0.5).
        composite = _composite(walker, node) if len(computed) > 1 or node.op_type == "Mul" \
            else None
        if len(computed) == 1 and composite is None:
            steps.append(("node", node, computed[0]))
            current = computed[0]
            continue
        if not computed:
            walker.refuse(node, "computes a constant, not a function of the input")
        if composite is None:
            walker.refuse(node, f"combines {len(computed)} computed tensors "
                                f"({', '.join(repr(c) for c in computed)}): jaccli reads a "
                                "single chain of layers, not branches")
        steps.append(composite)
        current = composite[-1]
    walker.fail("the graph has a cycle")


def _well_formed(node):
    """Whether ``node`` has the inputs (none of them empty but an optional last) and an
    output its op type needs; unknown op types are judged later."""
    fewest, most = _ARITY.get(node.op_type, (0, 1 << 30))
    inputs = list(node.input)
    return fewest <= len(inputs) <= most and all(inputs[:fewest]) and \
        len(node.output) >= 1 and bool(node.output[0])


def _check_node_kind(walker, node):
    if not _well_formed(node):
        walker.refuse(node, f"malformed: {len(node.input)} inputs {list(node.input)} and "
                            f"outputs {list(node.output)}")
    if (node.domain, node.op_type) in walker.functions:
        walker.refuse(node, "calls a local function of the model; jaccli reads plain graphs")
    if node.domain not in _STANDARD_DOMAINS + (_ML_DOMAIN,):
        walker.refuse(node, f"custom domain '{node.domain}' is not a standard ONNX op")
    if node.op_type in _REASONS:
        walker.refuse(node, f"{_REASONS[node.op_type]}; jaccli reads dense layers only")
    if any(a.type in (5, 10) for a in node.attribute):  # GRAPH, GRAPHS: subgraphs
        walker.refuse(node, "control flow (a subgraph); jaccli reads dense layers only")


def _composite(walker, node):
    """An activation written in several nodes ending at ``node``, or None."""
    for match in (_match_silu, _match_softsign, _match_gelu, _match_binary_probabilities):
        found = match(walker, node)
        if found is not None:
            return found
    return None


def _producer_of(walker, name, op_type):
    node = walker.producer.get(name)
    if node is not None and node.op_type == op_type and node.domain in _STANDARD_DOMAINS \
            and _well_formed(node):
        return node
    return None


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


def _scalar(walker, name, node):
    array = walker.constant(name, node, role="constant")
    return float(array.reshape(-1)[0]) if array.size == 1 else None


def _close(value, exact):
    return value is not None and abs(value - exact) <= _CONSTANT_RTOL * abs(exact)


def _one_plus(walker, name, op_type):
    """The input u of ``1 + op(u)`` (an Add of the constant 1), or None."""
    add = _producer_of(walker, name, "Add")
    if add is None:
        return None
    for a, b in (add.input, add.input[::-1]):
        if walker.is_constant(b) and _close(_scalar(walker, b, add), 1.0):
            inner = _producer_of(walker, a, op_type)
            return inner.input[0] if inner is not None else None
    return None


def _match_gelu(walker, node):
    """x * 0.5 * (1 + erf(x / sqrt 2)), or its tanh form, in any order of products."""
    scalar, factors = _factors(walker, node.output[0])
    if factors is None or len(factors) != 2 or not _close(scalar, 0.5):
        return None
    for x, other in (factors, factors[::-1]):
        u = _one_plus(walker, other, "Erf")
        if u is not None:
            k, inner = _factors(walker, u)
            if inner == [x] and _close(k, 1.0 / _SQRT_2):
                return ("activation", node, "gelu", {}, x)
        u = _one_plus(walker, other, "Tanh")
        if u is not None and _is_gelu_tanh_argument(walker, u, x):
            return ("activation", node, "gelu_tanh", {}, x)
    return None


def _is_gelu_tanh_argument(walker, u, x):
    """Whether u = sqrt(2/pi) * (x + 0.044715 x^3)."""
    k, inner = _factors(walker, u)
    if inner is None or len(inner) != 1 or not _close(k, _SQRT_2_OVER_PI):
        return False
    add = _producer_of(walker, inner[0], "Add")
    if add is None:
        return False
    for a, b in (add.input, add.input[::-1]):
        if a != x:
            continue
        k3, cube = _factors(walker, b)
        if cube == [x, x, x] and _close(k3, _GELU_TANH_CUBIC):
            return True
        power = _producer_of(walker, cube[0], "Pow") if cube and len(cube) == 1 else None
        if power is not None and power.input[0] == x and _close(k3, _GELU_TANH_CUBIC) \
                and walker.is_constant(power.input[1]) \
                and _close(_scalar(walker, power.input[1], power), 3.0):
            return True
    return False


def _match_binary_probabilities(walker, node):
    """Concat(c - p, p) of a binary classifier (c = 1): both columns, as the file has them."""
    if node.op_type != "Concat" or len(node.input) != 2 or \
            _attribute(walker, node, "axis", None) not in (1, -1):
        return None
    sub = _producer_of(walker, node.input[0], "Sub")
    p = node.input[1]
    if sub is None or sub.input[1] != p or not walker.is_constant(sub.input[0]):
        return None
    walker.binary = True
    return ("complement", node, float(_scalar(walker, sub.input[0], sub)), p)


# -- the events, from the input to the output ------------------------------


def _events(walker, steps, width):
    events = []
    # transposed: the data flows as (features, N) between a Transpose and the one undoing it
    state = {"width": width, "transposed": False}
    for step in steps:
        if step[0] == "activation":
            _, node, name, params, _ = step
            events.append(Activation(name, params, describe(node)))
        elif step[0] == "identity":
            events.append(Identity(describe(step[1])))
        elif step[0] == "complement":
            events.append(_complement(walker, step[1], step[2], state))
        else:
            _, node, data = step
            events.extend(_node_events(walker, node, data, events, state))
    if state["transposed"]:
        walker.fail("the output is transposed, (features, N); jaccli reads models whose "
                    "output is (N, features), one row per point")
    return events


def _complement(walker, node, c, state):
    """[c - p, p] of the k columns p, as a constant dense layer: p [-I, I] + [c, 0]."""
    k = state["width"] or 1
    if state["transposed"]:
        walker.refuse(node, "concatenates transposed (features, N) data")
    name = f"{node.output[0]}:complement"
    weight = np.hstack([-np.eye(k), np.eye(k)])
    bias = np.concatenate([np.full(k, c), np.zeros(k)])
    state["width"] = 2 * k
    return Dense(weight, bias, "in_out", name, f"{name}:bias", describe(node), constant=True)


def _check_width(walker, node, state, n, what):
    if state["width"] is not None and n != state["width"]:
        walker.refuse(node, f"{what} has {n} rows but its input has {state['width']} features")


def _node_events(walker, node, data, events, state):
    op = node.op_type
    if node.domain == _ML_DOMAIN:
        if op == "Scaler":
            return [_scaler(walker, node, state)]
        walker.refuse(node, "is not a layer jaccli reads (from ai.onnx.ml only Scaler)")
    if op == "Gemm":
        return [_gemm(walker, node, data, state)]
    if op == "MatMul":
        return [_matmul(walker, node, data, state)]
    if op in ("Add", "Sub", "Mul", "Div"):
        return _arithmetic(walker, node, data, events, state)
    if op in ("Identity", "Dropout", "Cast", "Flatten", "Reshape"):
        _check_identity(walker, node, state)
        return [Identity(describe(node))]
    if op == "Transpose":
        perm = _attribute(walker, node, "perm", None)
        if perm is not None and list(perm) != [1, 0]:
            walker.refuse(node, f"perm={list(perm)} on a 2-D tensor")
        state["transposed"] = not state["transposed"]
        return [Identity(describe(node))]
    return [_activation(walker, node, state)]


def _attribute(walker, node, name, default):
    for attribute in node.attribute:
        if attribute.name == name:
            value = walker.onnx.helper.get_attribute_value(attribute)
            return value.decode() if isinstance(value, bytes) else value
    return default


def _float_attribute(walker, node, name, default):
    """A FLOAT or FLOATS attribute, each value read as the decimal its writer meant."""
    value = _attribute(walker, node, name, None)
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


def _weight(walker, node, data, state, layout):
    """A dense node's constant weight, checked: (weight, its name, layout, n_out).

    x @ W on (N, n) data; W @ x on transposed (n, N) data, which stores W as (out, in).
    """
    if state["transposed"]:
        if node.op_type != "MatMul" or node.input[1] != data:
            walker.refuse(node, "on transposed (features, N) data jaccli reads W @ x only")
        name, layout = node.input[0], "out_in"
    elif node.input[0] != data:
        walker.refuse(node, "the weight is the first operand, so it multiplies the batch "
                            "axis; jaccli reads x @ W (or W @ x between two Transposes)")
    else:
        name = node.input[1]
    weight = walker.constant(name, node)
    if weight.ndim != 2:
        walker.refuse(node, f"its weight '{name}' has shape {weight.shape}, not 2-D")
    n_in, n_out = weight.shape[::-1] if layout == "out_in" else weight.shape
    _check_width(walker, node, state, n_in, f"its weight '{name}'")
    state["width"] = n_out
    return weight, name, layout, n_out


def _gemm(walker, node, data, state):
    """Gemm: alpha * x @ op(B) + beta * C, with op(B) = B.T when transB."""
    if _attribute(walker, node, "transA", 0):
        walker.refuse(node, "transA=1 transposes the batch axis; jaccli reads x @ W")
    layout = "out_in" if _attribute(walker, node, "transB", 0) else "in_out"
    weight, name, layout, n_out = _weight(walker, node, data, state, layout)
    alpha = _float_attribute(walker, node, "alpha", 1.0)
    beta = _float_attribute(walker, node, "beta", 1.0)
    bias_name = node.input[2] if len(node.input) > 2 and node.input[2] else None
    bias = None if bias_name is None else _bias(walker, node, bias_name, n_out, state)
    return Dense(weight, bias, layout, name, bias_name, describe(node), alpha, beta)


def _per_feature(array, n, transposed):
    """Whether a constant broadcasts to one value per feature: over the rows of (N, n)
    data ((), (n,), (1, n)), or over the columns of transposed data ((), (n, 1))."""
    if array.size not in (1, n) or array.ndim > 2:
        return False
    if transposed:
        return array.size == 1 or (array.ndim == 2 and array.shape[1] == 1)
    return array.ndim < 2 or array.shape[0] == 1


def _bias(walker, node, name, n_out, state):
    bias = walker.constant(name, node, role="bias")
    if not _per_feature(bias, n_out, state["transposed"]):
        walker.refuse(node, f"its bias '{name}' has shape {bias.shape}; it must broadcast "
                            f"to one value per output")
    return bias


def _matmul(walker, node, data, state):
    weight, name, layout, _ = _weight(walker, node, data, state, "in_out")
    return Dense(weight, None, layout, name, None, describe(node))


def _vector(walker, node, name, state):
    """A constant operand of an elementwise node as a 1-D array of size 1 or width."""
    array = walker.constant(name, node, role="constant")
    n = state["width"] if state["width"] is not None else max(array.shape, default=1)
    if not _per_feature(array, n, state["transposed"]):
        walker.refuse(node, f"its constant '{name}' has shape {array.shape}; it must "
                            f"broadcast to one value per feature")
    return array.reshape(-1)


def _arithmetic(walker, node, data, events, state):
    """A constant Add/Sub/Mul/Div: a Dense's bias, or an affine map."""
    first = node.input[0] == data
    constant_name = node.input[1] if first else node.input[0]
    value = _vector(walker, node, constant_name, state)
    op = node.op_type
    last = events[-1] if events else None
    if op == "Add" and isinstance(last, Dense) and last.bias is None:
        last.bias = _bias(walker, node, constant_name, state["width"], state)
        last.bias_name = constant_name
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


def _scaler(walker, node, state):
    """ai.onnx.ml Scaler: y = (x - offset) * scale."""
    offset = np.asarray(_float_attribute(walker, node, "offset", [0.0]), dtype=np.float64)
    scale = np.asarray(_float_attribute(walker, node, "scale", [1.0]), dtype=np.float64)
    for array in (offset, scale):
        if array.size != 1 and state["transposed"]:
            walker.refuse(node, "scales the columns of transposed (features, N) data")
        if array.size != 1 and state["width"] is not None and array.size != state["width"]:
            walker.refuse(node, f"scales {array.size} features, its input has {state['width']}")
    return Affine(scale, -offset * scale, describe(node))


def _check_identity(walker, node, state):
    op = node.op_type
    if op in ("Flatten", "Reshape") and state["transposed"]:
        walker.refuse(node, "reshapes transposed (features, N) data")
    if op == "Cast" and _attribute(walker, node, "to", 0) not in FLOAT_TYPES:
        walker.refuse(node, "casts to a type that is not float")
    if op == "Flatten" and _attribute(walker, node, "axis", 1) not in (1, -1):
        walker.refuse(node, "flattens across the batch axis")
    if op == "Dropout" and len(node.input) > 2 and node.input[2]:
        training = walker.constant(node.input[2], node, floats=False)
        if training.size != 1 or bool(training.reshape(-1)[0]):
            walker.refuse(node, "runs in training mode")
    if op == "Reshape":
        shape = walker.constant(node.input[1], node, role="shape", floats=False).reshape(-1)
        ok = shape.dtype.kind in "iu" and shape.size == 2 and (
            shape[1] == state["width"] or (state["width"] is None and shape[1] > 0)
            or (shape[1] == -1 and shape[0] == 0))
        if not ok:
            walker.refuse(node, f"reshapes its (N, {state['width']}) input to {shape.tolist()}: "
                                "the result is not one row per point")
        if shape[1] > 0:
            state["width"] = int(shape[1])


def _activation(walker, node, state):
    op = node.op_type
    if op in _SIMPLE_ACTIVATIONS:
        return Activation(_SIMPLE_ACTIVATIONS[op], {}, describe(node))
    if op == "LeakyRelu":
        return Activation("leaky_relu", {"alpha": _float_attribute(walker, node, "alpha", 0.01)},
                          describe(node))
    if op == "Elu":
        return Activation("elu", {"alpha": _float_attribute(walker, node, "alpha", 1.0)},
                          describe(node))
    if op == "Selu":
        alpha = _float_attribute(walker, node, "alpha", _SELU_ALPHA)
        gamma = _float_attribute(walker, node, "gamma", _SELU_GAMMA)
        if not (_close(alpha, _SELU_ALPHA) and _close(gamma, _SELU_GAMMA)):
            walker.refuse(node, f"alpha={alpha}, gamma={gamma} are not SELU's constants")
        return Activation("selu", {}, describe(node))
    if op == "Gelu":
        approximate = _attribute(walker, node, "approximate", "none")
        if approximate not in ("none", "tanh"):
            walker.refuse(node, f"approximate='{approximate}' is not 'none' or 'tanh'")
        return Activation("gelu" if approximate == "none" else "gelu_tanh", {}, describe(node))
    if op == "Softmax":
        default = -1 if walker.opsets.get("", 13) >= 13 else 1
        features = (0, -2) if state["transposed"] else (1, -1)
        if _attribute(walker, node, "axis", default) not in features:
            walker.refuse(node, "softmax over another axis than the features")
        return Activation("softmax", {}, describe(node))
    walker.refuse(node, "is not a layer jaccli reads (dense layers, elementwise "
                        "activations and constant scalings only)")


def _check_softmax_last(walker, events):
    for i, event in enumerate(events):
        if isinstance(event, Activation) and event.name == "softmax":
            later = [e for e in events[i + 1:] if not isinstance(e, Identity)]
            if later:
                walker.fail(f"{event.where}: softmax before the last layer (jaccli "
                            "supports softmax on the last layer only)")


# -- the events as a jaccli spec ----------------------------------------------


def onnx_spec_and_tensors(path):
    """(spec dict, tensors, notes) for the model in ``path``, through the one DenseStack.

    Constant affine maps before the first dense layer become the input
    scaling and those after the last layer (and its activation) the output
    scaling; one between two layers is a map of the next layer (folded when
    the model is assembled, the parameters staying the file's initializers).
    Each dense layer keeps its initializer's layout: a MatMul's (in, out)
    weight beside Gemm's (out, in) ones is listed in the shape the file holds.
    """
    from jaccli.formats.stack import DenseStack

    graph = read_onnx(path)
    events = [e for e in graph.events if not isinstance(e, Identity)]
    layout = next(e.layout for e in events if isinstance(e, Dense))
    stack = DenseStack(str(path), layout=layout, dense="dense (Gemm/MatMul)")
    for event in events:
        if isinstance(event, Dense):
            stack.dense(event.weight, event.bias, where=event.where,
                        weight_name=event.weight_name, layout=event.layout,
                        bias_name=event.bias_name or f"{event.weight_name}:bias",
                        weight_scale=event.weight_scale, bias_scale=event.bias_scale,
                        constant=event.constant)
        elif isinstance(event, Activation):
            stack.activation(event.name, event.params.get("alpha"), where=event.where)
        else:
            stack.affine(_scalar_or_vector(event.scale), _scalar_or_vector(event.offset),
                         where=event.where)
    spec, tensors = stack.build()
    return spec, tensors, list(graph.notes)


def _scalar_or_vector(array):
    """A size-1 array as a 0-d one: it applies to every feature, whatever their number."""
    array = np.asarray(array, dtype=np.float64)
    return array.reshape(()) if array.size == 1 else array.reshape(-1)
