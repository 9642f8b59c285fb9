"""Parsing an ONNX file and the walk from its output back to its input.

The file is parsed as protobuf by the ``onnx`` package and nothing in it is
run. External data is read here, not by ``onnx``: a location outside the
model's folder (symlinks resolved) or bytes past the end of the data file
are refused. The walk follows the single chain of computed tensors from the
one output back to the one graph input; ``ops.py`` turns its steps into
events.
"""

import os

import numpy as np

from jaccli.errors import JaccliError, param
from jaccli.extras import install_hint
from jaccli.formats.onnx.events import Dense, OnnxGraph
from jaccli.formats.onnx.nodes import (
    FLOAT_TYPES, ML_DOMAIN, STANDARD_DOMAINS, attribute, describe, float32_as_decimal,
)
from jaccli.formats.onnx.ops import check_node_kind, events_of
from jaccli.formats.onnx.patterns import ENDS_WITH_ONE_COMPUTED, composite
from jaccli.formats.onnx.shapes import new_state
from jaccli.formats.stack import named_columns, plain_name
from jaccli.messages import printable


def _import_onnx(path):
    try:
        import onnx
    except ImportError:
        raise JaccliError(
            f"{path}: reading .onnx files needs the onnx package: {install_hint('onnx')}"
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


def read_onnx(path, output_name=None) -> OnnxGraph:
    """The events of the model in ``path`` (its output ``output_name`` when it has several);
    JaccliError for anything else."""
    return _parse(str(path)).run(output_name)


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
            if node.op_type == "Constant" and node.domain in STANDARD_DOMAINS:
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
                    self.refuse(node, f"uses {printable(repr(name), 80)} before any node computes it "
                                      "(the graph is out of order or has a cycle)")
            known.update(out for out in node.output if out)

    def fail(self, what, then=""):
        # Names in a hostile file can be long or hold line breaks: one short line still.
        # ``then``: jaccli's own words (a parameter's name), not the file's.
        raise JaccliError(f"{self.path}: {printable(what, 400)}{then}")

    def refuse(self, node, why):
        self.fail(f"{describe(node)}: {why}")

    # -- constants ---------------------------------------------------------

    def is_constant(self, name):
        """An initializer, a Constant node's output, or an Identity of one (the legacy
        exporter writes Identity nodes for a tensor stored once and used twice)."""
        return name in self.initializers or name in self.constant_nodes or \
            self._identity_source(name) is not None

    def tensor_name(self, name):
        """The file's name of the constant ``name`` (an Identity's source)."""
        return self._identity_source(name) or name

    def _identity_source(self, name):
        node = self.producer.get(name)
        if node is None or node.op_type != "Identity" or node.domain not in STANDARD_DOMAINS \
                or len(node.input) != 1:
            return None
        source = node.input[0]
        return source if source in self.initializers or source in self.constant_nodes else None

    def constant(self, name, node, role="weight", floats=True):
        """The array behind a constant input of ``node``, checked for its role."""
        if name not in self._cache:
            self._cache[name] = self._read_constant(name, node)
        array = self._cache[name]
        if floats and array.dtype.kind != "f":  # ONNX computes an op in one type: the data's
            self.refuse(node, f"its {role} '{name}' is a tensor of {array.dtype}, not of floats "
                              f"(ONNX computes the op in one type, the input's)")
        if floats and not np.all(np.isfinite(array)):
            self.refuse(node, f"its {role} '{name}' holds a non-finite value")
        return array

    def _read_constant(self, name, node):
        name = self._identity_source(name) or name
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

    def run(self, chosen=None):
        input_name, state, dtype = self._the_input()
        output_name = self._the_output() if chosen is None else self._chosen_output(chosen)
        steps = _chain(self, output_name, input_name)
        self._classifier_note()
        events = events_of(self, steps, state)
        if not any(isinstance(e, Dense) for e in events):
            self.fail("the graph has no dense layer (Gemm or MatMul with a constant weight)")
        producer = " ".join(p for p in (self.model.producer_name, self.model.producer_version) if p)
        labels = self._class_labels(output_name) if self.classifier or self.binary else None
        notes = [printable(note, 400) for note in self.notes]  # they name the file's tensors
        return OnnxGraph(events, input_name, output_name, dtype, producer, self.opsets, notes,
                         _column_names(labels, chosen))

    def _the_input(self):
        inputs = [i for i in self.graph.input if i.name not in self.initializers]
        if len(inputs) != 1:
            names = ", ".join(f"'{i.name}'" for i in inputs) or "none"
            self.fail(f"the graph has {len(inputs)} inputs ({names}); jaccli reads "
                      "models of one input tensor")
        the_input = inputs[0]
        kind = the_input.type.WhichOneof("value")
        tensor = the_input.type.tensor_type
        if kind != "tensor_type" or tensor.elem_type not in FLOAT_TYPES:
            self.fail(f"input '{the_input.name}' is not a float tensor")
        dims = [d.dim_value if d.dim_value > 0 else None for d in tensor.shape.dim] \
            if tensor.HasField("shape") else None
        self.input_name = the_input.name
        return the_input.name, self._input_state(the_input.name, dims), \
            FLOAT_TYPES[tensor.elem_type]

    def _input_state(self, name, dims):
        """The flow's state at the input: (N, n), (N, d1, d2, ...) or a 1-D (n,)."""
        if dims is None:
            return new_state(None, None)
        shown = "(" + ", ".join("N" if d is None else str(d) for d in dims) + \
            ("," if len(dims) == 1 else "") + ")"
        if not dims:
            self.fail(f"input '{name}' is a scalar; jaccli reads inputs of one or more columns")
        if len(dims) == 1:
            if dims[0] is None:
                self.fail(f"input '{name}' of shape {shown} has no declared length")
            self.notes.append(f"input '{name}' of shape {shown}: one point, {dims[0]} columns")
            return new_state(dims, 1, vector=True)
        batch, rest = dims[0], dims[1:]
        if len(dims) == 2 and rest == [1] and batch is not None and batch > 1 and \
                self._weights_on_the_left(name):
            self.notes.append(f"input '{name}' of shape {shown}: one point as a column, "
                              f"{batch} columns of the points file")
            return new_state((batch,), 1, column=True)
        if len(dims) == 2 and rest[0] is None:
            return new_state(None, batch)
        if None in rest:
            self.fail(f"input '{name}' of shape {shown}: jaccli needs the size of every "
                      "dimension after the batch")
        if len(dims) > 2 or batch is not None:
            width = int(np.prod(rest))
            self.notes.append(f"input '{name}' of shape {shown}: {width} columns"
                              + (", C order" if len(rest) > 1 else "")
                              + ("" if batch is None else f"; the declared batch of {batch} "
                                 "does not limit the points (no op mixes rows)"))
        return new_state(rest, batch)

    def _the_output(self):
        """The one float output; a classifier's labels and ZipMap are dropped."""
        kept, dropped, zipmap = [], [], None
        for out in self.graph.output:
            node = self.producer.get(out.name)
            if node is not None and node.op_type == "ZipMap" and node.domain == ML_DOMAIN:
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
                      "reads models of one output tensor (or a classifier's probabilities)",
                      then=f": pick one with {param('output_name')}")
        if dropped or zipmap:
            taken = f"'{kept[0]}'" if zipmap is None else f"(ZipMap '{zipmap}', as an array)"
            labels = ", ".join(f"'{name}'" for name in dropped)
            self.classifier = (taken, f"; the label output {labels} is dropped" if labels else "")
        return kept[0]

    def _chosen_output(self, chosen):
        """The output named ``chosen`` (jaccli.load's output_name), a float tensor."""
        names = [o.name for o in self.graph.output]
        if chosen not in names:
            listed = ", ".join(f"'{name}'" for name in names)
            self.fail(f"'{chosen}' is not an output of the graph (its outputs: {listed})",
                      then=f": check {param('output_name')}")
        out = self.graph.output[names.index(chosen)]
        node = self.producer.get(chosen)
        if node is not None and node.op_type == "ZipMap" and node.domain == ML_DOMAIN:
            self.classifier = (f"(ZipMap '{chosen}', as an array)", "")
            return node.input[0]
        if out.type.WhichOneof("value") != "tensor_type" or \
                out.type.tensor_type.elem_type not in FLOAT_TYPES:
            self.fail(f"output '{chosen}' is not a float tensor")
        if not self._depends_on_input(chosen):
            self.fail(f"output '{chosen}' does not depend on the input '{self.input_name}' "
                      "(a constant): jaccli reads outputs computed from the input")
        if len(names) > 1:
            self.notes.append(f"output '{chosen}' of the graph's {len(names)} ({', '.join(names)})")
        return chosen

    def _class_labels(self, probabilities):
        """A classifier's class labels, as its ZipMap or its label branch
        (ArrayFeatureExtractor(classes, ArgMax(probabilities))) holds them, or None."""
        labels = None
        for node in self.graph.node:
            if node.domain != ML_DOMAIN or not node.input:
                continue
            if node.op_type == "ZipMap" and node.input[0] == probabilities:
                labels = attribute(self, node, "classlabels_strings", None) or \
                    attribute(self, node, "classlabels_int64s", None)
            elif node.op_type == "ArrayFeatureExtractor" and len(node.input) == 2 \
                    and self.is_constant(node.input[0]) and labels is None:
                argmax = self.producer.get(node.input[1])
                if argmax is not None and argmax.op_type == "ArgMax" and \
                        argmax.input[0] == probabilities:
                    labels = self.constant(node.input[0], node, floats=False).reshape(-1).tolist()
        if labels is None:
            return None
        labels = [label.decode() if isinstance(label, bytes) else str(label) for label in labels]
        plain = all(plain_name(label) for label in labels)
        return labels if plain and len(set(labels)) == len(labels) else None

    def _weights_on_the_left(self, name):
        """Whether ``name`` is first multiplied as W @ x (an (n, 1) input is then one point)."""
        for node in self.graph.node:
            if node.op_type in ("MatMul", "Gemm") and len(node.input) > 1 and \
                    node.input[1] == name and self.is_constant(node.input[0]):
                return not (node.op_type == "Gemm" and attribute(self, node, "transB", 0))
        return False

    def _depends_on_input(self, name):
        seen, todo = set(), [name]
        while todo:
            current = todo.pop()
            if current == self.input_name:
                return True
            node = self.producer.get(current)
            if current in seen or node is None:
                continue
            seen.add(current)
            todo.extend(n for n in node.input if n)
        return False

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


def _column_names(labels, chosen):
    """The output columns' names, given their number: by class label, or after the chosen output."""
    def names(count):
        if labels is not None:
            return labels if len(labels) == count else None
        return None if chosen is None else named_columns(chosen, count)
    return names


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
        check_node_kind(walker, node)
        computed = [name for name in node.input if name and not walker.is_constant(name)]
        # A written-out activation may end in a Mul by a constant (GELU's 0.5), or a Log;
        # a LayerNorm written out may end in a Mul or Add of its gamma or beta.
        found = composite(walker, node) if len(computed) > 1 or \
            node.op_type in ENDS_WITH_ONE_COMPUTED else None
        if len(computed) == 1 and found is None:
            steps.append(("node", node, computed[0]))
            current = computed[0]
            continue
        if not computed:
            walker.refuse(node, "computes a constant, not a function of the input")
        if found is None:
            walker.refuse(node, f"combines {len(computed)} computed tensors "
                                f"({', '.join(repr(c) for c in computed)}): jaccli reads a "
                                "single chain of layers, not branches")
        steps.append(found)
        current = found[-1]
    walker.fail("the graph has a cycle")
