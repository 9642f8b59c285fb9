"""The architecture spec: YAML (safe loader only) -> a checked ``Spec``.

Every field of the contract is read here and nothing else is accepted: an
unknown field (a typo such as ``activaton``) is an error, never ignored.
"""

from dataclasses import dataclass
from typing import List, Optional

import yaml

from .activations import ACTIVATIONS, KNOWN_NAMES, SOFTMAX, canonical_name
from .errors import JaccliError

TOP_FIELDS = {"inputs", "outputs", "layout", "input_scaling", "output_scaling", "layers"}
LAYER_FIELDS = {"units", "activation", "weight", "bias", "alpha"}
SCALING_FIELDS = {"offset", "scale"}
LAYOUTS = ("in_out", "out_in")
_DEFAULT = object()


@dataclass
class LayerSpec:
    units: Optional[int]
    activation: str  # canonical name
    params: dict
    weight: str
    bias: Optional[str]


@dataclass
class Spec:
    inputs: Optional[List[str]]  # None: not given, taken from the first kernel
    outputs: Optional[List[str]]
    layout: str
    input_scaling: Optional[dict]  # {"offset": [...], "scale": [...]}
    output_scaling: Optional[dict]
    layers: List[LayerSpec]
    source: str  # where the spec came from, for error messages


def parse_spec_text(text, source):
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise JaccliError(f"{source}: not valid YAML{where}: {problem}") from None
    return parse_spec(data, source)


def read_spec_file(path):
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except IsADirectoryError:
        raise JaccliError(f"{path}: is a directory, not a spec file") from None
    except OSError as exc:
        raise JaccliError(f"{path}: cannot read the spec: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise JaccliError(f"{path}: the spec is not UTF-8 text") from None
    return parse_spec_text(text, str(path))


def _names(value, field, source, prefix):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, list)):
        raise JaccliError(f"{source}: '{field}' must be a list of names or a count")
    if isinstance(value, int):
        if value < 1:
            raise JaccliError(f"{source}: '{field}' must be a positive count, not {value}")
        return [f"{prefix}{i + 1}" for i in range(value)]
    if not value:
        raise JaccliError(f"{source}: '{field}' is an empty list")
    names = []
    for item in value:
        if isinstance(item, (dict, list)) or item is None:
            raise JaccliError(f"{source}: '{field}' must hold names, not {item!r}")
        names.append(str(item))
    if len(set(names)) != len(names):
        raise JaccliError(f"{source}: '{field}' names a column twice: {names}")
    return names


def _scaling(value, field, source):
    if value is None:
        return None
    if not isinstance(value, dict):
        raise JaccliError(f"{source}: '{field}' must be a mapping with offset and scale")
    unknown = set(value) - SCALING_FIELDS
    if unknown:
        raise JaccliError(f"{source}: unknown field '{field}.{sorted(unknown)[0]}' "
                          f"(known: offset, scale)")
    return {"offset": value.get("offset"), "scale": value.get("scale")}


def _layer(index, item, source):
    where = f"{source}: layers[{index}]"
    if not isinstance(item, dict):
        raise JaccliError(f"{where} must be a mapping such as {{units: 16, activation: tanh}}")
    unknown = set(item) - LAYER_FIELDS
    if unknown:
        raise JaccliError(f"{where}: unknown field '{sorted(unknown)[0]}' "
                          f"(known: {', '.join(sorted(LAYER_FIELDS))})")
    units = item.get("units")
    if units is not None and (isinstance(units, bool) or not isinstance(units, int) or units < 1):
        raise JaccliError(f"{where}: 'units' must be a positive integer, not {units!r}")
    raw_name = item.get("activation", "linear")
    if not isinstance(raw_name, str):
        raise JaccliError(f"{where}: 'activation' must be a name, not {raw_name!r}")
    name = canonical_name(raw_name.strip().lower())
    if name not in ACTIVATIONS and name != SOFTMAX:
        raise JaccliError(f"{where}: unknown activation '{raw_name}' "
                          f"(known: {', '.join(KNOWN_NAMES)})")
    defaults = ACTIVATIONS[name].params if name in ACTIVATIONS else {}
    params = dict(defaults)
    if "alpha" in item:
        if "alpha" not in defaults:
            raise JaccliError(f"{where}: activation '{raw_name}' takes no 'alpha'")
        alpha = item["alpha"]
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
            raise JaccliError(f"{where}: 'alpha' must be a number, not {alpha!r}")
        params["alpha"] = float(alpha)
    weight = item.get("weight", f"W{index}")
    bias = item.get("bias", f"b{index}")
    for field, tensor in (("weight", weight), ("bias", bias)):
        if tensor is not None and not isinstance(tensor, str):
            raise JaccliError(f"{where}: '{field}' must be a tensor name, not {tensor!r}")
    if weight is None:
        raise JaccliError(f"{where}: 'weight' cannot be null: a dense layer needs a kernel")
    return LayerSpec(units, name, params, weight, bias)


def parse_spec(data, source):
    if not isinstance(data, dict):
        raise JaccliError(f"{source}: the spec must be a YAML mapping with a 'layers' list")
    unknown = set(data) - TOP_FIELDS
    if unknown:
        raise JaccliError(f"{source}: unknown field '{sorted(unknown, key=str)[0]}' "
                          f"(known: {', '.join(sorted(TOP_FIELDS))})")
    layers = data.get("layers")
    if not isinstance(layers, list) or not layers:
        raise JaccliError(f"{source}: 'layers' must be a non-empty list of layers")
    layout = data.get("layout", "in_out")
    if layout not in LAYOUTS:
        raise JaccliError(f"{source}: 'layout' must be in_out or out_in, not {layout!r}")
    parsed = [_layer(i, item, source) for i, item in enumerate(layers)]
    for i, layer in enumerate(parsed[:-1]):
        if layer.activation == SOFTMAX:
            raise JaccliError(f"{source}: layers[{i}]: softmax is allowed on the last layer only")
    return Spec(
        inputs=_names(data.get("inputs"), "inputs", source, "x"),
        outputs=_names(data.get("outputs"), "outputs", source, "y"),
        layout=layout,
        input_scaling=_scaling(data.get("input_scaling"), "input_scaling", source),
        output_scaling=_scaling(data.get("output_scaling"), "output_scaling", source),
        layers=parsed,
        source=source,
    )
