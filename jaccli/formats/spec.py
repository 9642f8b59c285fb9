"""The architecture spec: YAML (safe loader only) -> a checked ``Spec``.

Every field a spec may have is read here and nothing else is accepted: an
unknown field (a typo such as ``activaton``) is an error, never ignored.
"""

import math
import os
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np
import yaml

from jaccli.engine.activations import ACTIVATIONS, KNOWN_NAMES, canonical_name
from jaccli.errors import JaccliError
from jaccli.messages import clip

TOP_FIELDS = {"inputs", "outputs", "layout", "input_scaling", "output_scaling", "layers",
              "output_maps"}
# Every parameter an activation declares is a layer field of that name: a number
# (leaky_relu's alpha, ...) or the name of a file tensor (prelu's slope).
ACTIVATION_FIELDS = {p for a in ACTIVATIONS.values() for p in a.params}
TENSOR_FIELDS = {p for a in ACTIVATIONS.values() for p in a.tensors}
LAYER_FIELDS = {"units", "activation", "weight", "bias", "layout", "before", "after",
                "weight_scale", "bias_scale", "constant"} | ACTIVATION_FIELDS | TENSOR_FIELDS
SCALING_FIELDS = {"offset", "scale"}
BATCHNORM_FIELDS = {"weight", "bias", "mean", "var", "eps"}
LAYOUTS = ("in_out", "out_in")
# A layer may also be diagonal: its weight is a vector w and its kernel diag(w) (a
# LayerNorm's gamma); weight null there means w = 1 (a LayerNorm with a bias only).
DIAGONAL = "diagonal"


@dataclass
class ScaleMap:
    """x -> x * scale + offset, feature by feature: constants, not parameters."""

    scale: object  # a number or a list, one per feature
    offset: object


@dataclass
class BatchNormMap:
    """BatchNorm at inference: (x - mean) / sqrt(var + eps) * weight + bias.

    weight and bias (gamma, beta) name trainable tensors, parameters of the
    model (None: 1 and 0); mean and var name stored statistics, constants.
    """

    weight: Optional[str]
    bias: Optional[str]
    mean: str
    var: str
    eps: float


@dataclass
class LayerSpec:
    units: Optional[int]
    activation: str  # canonical name
    params: dict
    weight: Optional[str]  # None only for a diagonal layer: the identity kernel
    bias: Optional[str]
    layout: str = "in_out"  # how this layer's kernel is stored (the spec's layout unless given;
    # "diagonal": the weight is a vector w, the kernel diag(w))
    before: tuple = ()  # ScaleMap/BatchNormMap applied to the layer's input, in order
    after: tuple = ()  # ... to its pre-activation a W + b, before the activation
    weight_scale: float = 1.0  # the layer computes a (weight_scale W) + bias_scale b
    bias_scale: float = 1.0  # (ONNX Gemm's alpha and beta)
    constant: bool = False  # its weight and bias are constants of the graph, not parameters
    # the activation's parameters that are file tensors (prelu's slope): name -> tensor name
    activation_tensors: dict = field(default_factory=dict)

    @property
    def tensors(self):
        """The parameters this layer takes, in parameter order: weight, bias, BatchNorm's,
        the activation's (prelu's slope)."""
        maps = [m for m in self.before + self.after if isinstance(m, BatchNormMap)]
        names = [] if self.constant else [self.weight, self.bias]
        names += [n for m in maps for n in (m.weight, m.bias)]
        names += [] if self.constant else list(self.activation_tensors.values())
        return [n for n in names if n is not None]

    @property
    def constants(self):
        """The tensors this layer takes that are not parameters: BatchNorm's stored
        statistics (mean and var), a constant layer's weight, bias and activation tensors."""
        names = [self.weight, self.bias, *self.activation_tensors.values()] if self.constant else []
        names += [n for m in self.before + self.after if isinstance(m, BatchNormMap)
                  for n in (m.mean, m.var)]
        return [n for n in names if n is not None]


@dataclass
class Spec:
    inputs: Optional[List[str]]  # None: not given, taken from the first kernel
    outputs: Optional[List[str]]
    layout: str
    input_scaling: Optional[dict]  # {"offset": [...], "scale": [...]}
    output_scaling: Optional[dict]
    layers: List[LayerSpec]
    source: str  # where the spec came from, for error messages
    notes: tuple = ()  # what a reader chose for the user to know (shown by `info`)
    output_maps: tuple = ()  # maps applied to the last layer's activation, before output_scaling

    @property
    def constants(self):
        """Names of every tensor the layers and output maps take that is not a parameter."""
        maps = [m for m in self.output_maps if isinstance(m, BatchNormMap)]
        return [n for layer in self.layers for n in layer.constants] + \
            [n for m in maps for n in (m.mean, m.var)]

    @property
    def parameter_names(self):
        """The tensors that are parameters, each once, in parameter order."""
        maps = [m for m in self.output_maps if isinstance(m, BatchNormMap)]
        names = [n for layer in self.layers for n in layer.tensors] + \
            [n for m in maps for n in (m.weight, m.bias) if n is not None]
        return list(dict.fromkeys(names))


# A spec is a few hundred bytes; anything near this is not a spec (and a bound
# keeps a hostile file from costing time or memory).
MAX_SPEC_BYTES = 1 << 20
# Aliases (*name) are followed by the loader without copying, but whatever walks
# the result sees the expanded tree: a "billion laughs" document of a few
# hundred bytes expands to 10**9 nodes. Expansion beyond this is refused.
MAX_SPEC_NODES = 1_000_000
MAX_NAMES = 1_000_000  # inputs or outputs given as a count
MAX_UNITS = 2**31 - 1


def _where(mark):
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""


def _check_nodes(root, source):
    """Refuse duplicate keys, recursive aliases and an alias expansion beyond MAX_SPEC_NODES."""
    sizes, active = {}, set()

    def size(node):
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise JaccliError(f"{source}: an alias refers to itself{_where(node.start_mark)}; "
                              f"a spec is a finite tree")
        active.add(key)
        total = 1
        if isinstance(node, yaml.MappingNode):
            seen = {}
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                    ident = (key_node.tag, key_node.value)
                    if ident in seen:
                        raise JaccliError(f"{source}: duplicate key {clip(key_node.value)!r}"
                                          f"{_where(key_node.start_mark)} (first at line "
                                          f"{seen[ident].line + 1}); a key may appear once")
                    seen[ident] = key_node.start_mark
                total += size(key_node) + size(value_node)
                if total > MAX_SPEC_NODES:
                    break
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                total += size(item)
                if total > MAX_SPEC_NODES:
                    break
        if total > MAX_SPEC_NODES:
            raise JaccliError(f"{source}: YAML aliases (*name) expand to more than "
                              f"{MAX_SPEC_NODES:,} nodes; refused")
        active.discard(key)
        sizes[key] = total
        return total

    size(root)


def load_yaml(text, source):
    """YAML with the safe loader (no tag constructs an object), checked as _check_nodes says."""
    if len(text) > MAX_SPEC_BYTES:
        raise JaccliError(f"{source}: {len(text):,} characters; a spec is limited to "
                          f"{MAX_SPEC_BYTES // (1 << 20)} MB")
    loader = None
    try:
        loader = yaml.SafeLoader(text)  # its reader refuses control characters at once
        node = loader.get_single_node()
        if node is None:
            return None
        _check_nodes(node, source)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) \
            or str(exc).splitlines()[0]
        if isinstance(exc, yaml.constructor.ConstructorError) and "for the tag" in problem:
            tag = problem.split("for the tag", 1)[1].strip().strip("'")
            tag = tag.replace("tag:yaml.org,2002:", "!!")
            raise JaccliError(f"{source}{_where(mark)}: the YAML tag '{clip(tag, 100)}' is refused "
                              f"(specs are read with the safe loader: no tag constructs "
                              f"Python objects)") from None
        raise JaccliError(f"{source}: not valid YAML{_where(mark)}: {clip(problem, 200)}") from None
    except RecursionError:
        raise JaccliError(f"{source}: the YAML is nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()


def parse_spec_text(text, source):
    if not isinstance(text, str):
        raise JaccliError(f"{source}: the spec is not text")
    data = load_yaml(text, source)
    if data is None:
        raise JaccliError(f"{source}: the spec is empty; it needs at least a 'layers' list")
    return parse_spec(data, source)


# ``--spec -``: standard input, read once per stream (check --dtype float32 loads
# the model twice, and a pipe cannot be read twice).
_STDIN_SPEC = {"stream": None, "raw": b""}


def _read_stdin_spec():
    import sys

    if _STDIN_SPEC["stream"] is not sys.stdin:
        _STDIN_SPEC.update(stream=sys.stdin, raw=sys.stdin.buffer.read(MAX_SPEC_BYTES + 1))
    return _STDIN_SPEC["raw"]


def read_spec_file(path):
    """The spec in the YAML file ``path`` (``-``: standard input)."""
    if path == "-":
        return _parse_spec_bytes(_read_stdin_spec(), "<stdin>")
    try:
        size = os.path.getsize(path)
        if os.path.isdir(path):
            raise IsADirectoryError
        if size > MAX_SPEC_BYTES:
            raise JaccliError(f"{path}: {size:,} bytes; a spec is limited to "
                              f"{MAX_SPEC_BYTES // (1 << 20)} MB")
        with open(path, "rb") as handle:
            raw = handle.read(MAX_SPEC_BYTES + 1)
    except IsADirectoryError:
        raise JaccliError(f"{path}: is a directory, not a spec file") from None
    except OSError as exc:
        raise JaccliError(f"{path}: cannot read the spec: {exc.strerror}") from None
    return _parse_spec_bytes(raw, str(path))


def _parse_spec_bytes(raw, source):
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise JaccliError(f"{source}: the spec is not UTF-8 text (byte {exc.start})") from None
    return parse_spec_text(text, source)


def spec_from(value):
    """A ``Spec`` from what the Python API accepts as one: a path (str or
    os.PathLike), a dict (the YAML's mapping), or a YAML text (a str holding a
    newline or ': ', which no spec file name does)."""
    if isinstance(value, dict):
        return parse_spec(value, "the spec dict")
    if isinstance(value, str) and ("\n" in value or ": " in value) and not os.path.isfile(value):
        return parse_spec_text(value, "the spec text")
    if isinstance(value, (str, os.PathLike)):
        return read_spec_file(os.fspath(value))
    raise JaccliError(f"spec: expected a path, a dict or a YAML text, not {type(value).__name__}")


def _names(value, field, source, prefix):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, list)):
        raise JaccliError(f"{source}: '{field}' must be a list of names or a count")
    if isinstance(value, int):
        if value > MAX_NAMES:
            raise JaccliError(f"{source}: '{field}' counts {clip(value)}; at most {MAX_NAMES:,}")
        if value < 1:
            raise JaccliError(f"{source}: '{field}' must be a positive count, not {clip(value)}")
        return [f"{prefix}{i + 1}" for i in range(value)]
    if not value:
        raise JaccliError(f"{source}: '{field}' is an empty list")
    names = []
    for item in value:
        if isinstance(item, (dict, list)) or item is None:
            raise JaccliError(f"{source}: '{field}' must hold names, not {clip(item)}")
        names.append(str(item))
    if len(set(names)) != len(names):
        raise JaccliError(f"{source}: '{field}' names a column twice: {names}")
    return names


def _scaling(value, field, source):
    if value is None:
        return None
    if not isinstance(value, dict):
        raise JaccliError(f"{source}: '{field}' must be a mapping with offset and scale")
    reject_unknown(value, SCALING_FIELDS, source, prefix=f"{field}.")
    return {"offset": value.get("offset"), "scale": value.get("scale")}


def is_per_unit(shape, units):
    """Whether a tensor of ``shape`` holds one value per unit of a layer of ``units``, or
    one for all: (units,), (1, units), (units, 1), (1,) or a scalar (a bias, prelu's slope)."""
    size = int(np.prod(shape))
    return size in (1, units) and len(shape) <= 2 and (len(shape) < 2 or 1 in shape)


def reject_unknown(mapping, known, where, prefix=""):
    """A field outside ``known`` is an error (a typo is not silently ignored)."""
    unknown = set(mapping) - known
    if unknown:
        raise JaccliError(f"{where}: unknown field '{prefix}{clip(sorted(unknown, key=str)[0])}' "
                          f"(known: {', '.join(sorted(known))})")


def _layer(index, item, source, default_layout):
    where = f"{source}: layers[{index}]"
    if not isinstance(item, dict):
        raise JaccliError(f"{where} must be a mapping such as {{units: 16, activation: tanh}}")
    reject_unknown(item, LAYER_FIELDS, where)
    units = item.get("units")
    if units is not None and (isinstance(units, bool) or not isinstance(units, int) or units < 1
                              or units > MAX_UNITS):
        raise JaccliError(f"{where}: 'units' must be a positive integer, not {clip(units)}")
    raw_name = item.get("activation", "linear")
    if not isinstance(raw_name, str):
        raise JaccliError(f"{where}: 'activation' must be a name, not {clip(raw_name)}")
    name = canonical_name(raw_name.strip().lower())
    if name not in ACTIVATIONS:
        raise JaccliError(f"{where}: unknown activation '{clip(raw_name)}' "
                          f"(known: {', '.join(KNOWN_NAMES)})")
    params, activation_tensors = _activation_params(item, name, raw_name, where, index)
    weight = item.get("weight", f"W{index}")
    bias = item.get("bias", f"b{index}")
    for field, tensor in (("weight", weight), ("bias", bias)):
        if tensor is not None and not isinstance(tensor, str):
            raise JaccliError(f"{where}: '{field}' must be a tensor name, not {clip(tensor)}")
    layout = _layout(item.get("layout", default_layout), f"{where}: 'layout'", LAYOUTS + (DIAGONAL,))
    if weight is None and layout != DIAGONAL:
        raise JaccliError(f"{where}: 'weight' cannot be null: a dense layer needs a kernel "
                          f"(only a diagonal layer's may be, meaning the identity)")
    if weight is None and units is None:
        raise JaccliError(f"{where}: a diagonal layer without a weight needs 'units'")
    before, after = (_maps(item.get(field, ()), f"{where}.{field}") for field in ("before", "after"))
    scales = [_number(item.get(field, 1.0), f"{where}: '{field}'")
              for field in ("weight_scale", "bias_scale")]
    constant = item.get("constant", False)
    if not isinstance(constant, bool):
        raise JaccliError(f"{where}: 'constant' must be true or false, not {clip(constant)}")
    return LayerSpec(units, name, params, weight, bias, layout, before, after, *scales, constant,
                     activation_tensors)


def _activation_params(item, name, raw_name, where, index):
    """(numbers, tensor names) of the activation's parameters: its defaults, overridden by
    the layer's fields; a tensor not named is '<parameter><index>' (slope0)."""
    activation = ACTIVATIONS.get(name)
    params = dict(activation.params if activation else {})
    tensors = {key: f"{key}{index}" for key in (activation.tensors if activation else {})}
    for key in sorted((ACTIVATION_FIELDS | TENSOR_FIELDS) & set(item)):
        if key not in params and key not in tensors:
            raise JaccliError(f"{where}: activation '{raw_name}' takes no '{key}'")
        if key in tensors and not isinstance(item[key], str):
            raise JaccliError(f"{where}: '{key}' must be a tensor name, not {clip(item[key])}")
        if key in tensors:
            tensors[key] = item[key]
        else:
            params[key] = _number(item[key], f"{where}: '{key}'")
    why = activation.valid(**params) if activation and activation.valid else None
    if why:
        raise JaccliError(f"{where}: {why}")
    return params, tensors


def _number(value, where):
    try:
        number = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
            else math.nan
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise JaccliError(f"{where} must be a finite number, not {clip(value)}")
    return number


def _layout(value, where, allowed=LAYOUTS):
    if isinstance(value, str):
        value = value.strip().lower()  # like activation names, case does not matter
    if value not in allowed:
        raise JaccliError(f"{where} must be {', '.join(allowed[:-1])} or {allowed[-1]}, not {clip(value)}")
    return value


def _maps(value, where):
    """A layer's ``before`` or ``after``: a list of {scale, offset} and {batchnorm: ...} maps."""
    items = [value] if isinstance(value, dict) else value
    if not isinstance(items, (list, tuple)):
        raise JaccliError(f"{where} must be a list of maps ({{scale: ..., offset: ...}} or "
                          f"{{batchnorm: {{...}}}})")
    return tuple(_map(item, f"{where}[{i}]") for i, item in enumerate(items))


def _map(item, where):
    if isinstance(item, dict) and set(item) == {"batchnorm"}:
        norm = item["batchnorm"]
        if not isinstance(norm, dict):
            raise JaccliError(f"{where}.batchnorm must be a mapping of {sorted(BATCHNORM_FIELDS)}")
        reject_unknown(norm, BATCHNORM_FIELDS, where, prefix="batchnorm.")
        names = {}
        for field in ("weight", "bias", "mean", "var"):
            name = norm.get(field)
            if name is None and field in ("mean", "var"):
                raise JaccliError(f"{where}.batchnorm: '{field}' names a stored tensor; it is required")
            if name is not None and not isinstance(name, str):
                raise JaccliError(f"{where}.batchnorm: '{field}' must be a tensor name, not {clip(name)}")
            names[field] = name
        eps = norm.get("eps", 1e-5)
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 <= eps < math.inf:
            raise JaccliError(f"{where}.batchnorm: 'eps' must be a number >= 0, not {clip(eps)}")
        return BatchNormMap(eps=float(eps), **names)
    if not isinstance(item, dict):
        raise JaccliError(f"{where} must be a mapping ({{scale: ..., offset: ...}} or {{batchnorm: ...}})")
    reject_unknown(item, SCALING_FIELDS, where)
    return ScaleMap(item.get("scale", 1.0), item.get("offset", 0.0))


def parse_spec(data, source):
    if not isinstance(data, dict):
        raise JaccliError(f"{source}: the spec must be a YAML mapping with a 'layers' list")
    reject_unknown(data, TOP_FIELDS, source)
    layers = data.get("layers")
    if not isinstance(layers, list) or not layers:
        raise JaccliError(f"{source}: 'layers' must be a non-empty list of layers")
    layout = _layout(data.get("layout", "in_out"), f"{source}: 'layout'")
    parsed = [_layer(i, item, source, layout) for i, item in enumerate(layers)]
    return Spec(
        inputs=_names(data.get("inputs"), "inputs", source, "x"),
        outputs=_names(data.get("outputs"), "outputs", source, "y"),
        layout=layout,
        input_scaling=_scaling(data.get("input_scaling"), "input_scaling", source),
        output_scaling=_scaling(data.get("output_scaling"), "output_scaling", source),
        layers=parsed,
        source=source,
        output_maps=_maps(data.get("output_maps", ()), f"{source}: output_maps"),
    )
