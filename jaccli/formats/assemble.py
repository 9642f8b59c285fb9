"""A checked spec and its tensors -> the engine's network, and the way back to the file.

The engine runs dense layers ``a W + b`` with kernels in (in, out)
orientation. A spec may say more than that: kernels stored (out, in) or as
the vector w of a diagonal kernel diag(w) (a LayerNorm's gamma), a tensor
used by several layers (tied weights), constant scalings and BatchNorm maps
before or after a layer's kernel (``LayerSpec.before``/``after``). Those are
folded into the kernels and biases the engine runs, and the parameters stay
the file's tensors:

- the parameter table lists each tensor the layers take once, in the order
  they are first taken: per layer its weight, its bias, then the trainable
  tensors of its BatchNorm maps (stored statistics, and the tensors of a
  constant layer, are not parameters);
- ``Assembly.parameter_map()`` is d(engine parameters)/d(file parameters), a sparse
  matrix made by folding ``Tracked`` tensors (jaccli.formats.tracked), so the
  parameter Jacobian is carried back through every fold and summed over the
  uses of a tied tensor; it is None when the engine's parameters are the
  file's, in the file's order (``Assembly.layout`` then says how kernels are
  stored), the fast path;
- ``Assembly.at(theta)`` is the assembly at other parameter values (for
  finite differences), folded the same way.
"""

from dataclasses import dataclass, field, replace
from typing import List, Optional, Tuple

import numpy as np

from jaccli.engine.activations import ACTIVATIONS
from jaccli.engine.network import DenseLayer, Network
from jaccli.errors import JaccliError
from jaccli.formats.spec import DIAGONAL, BatchNormMap, LayerSpec, is_per_unit
from jaccli.messages import clip
from jaccli.formats.tracked import Tracked, broadcast, gather, jacobian_rows, value_of

DTYPES = {"float64": np.float64, "float32": np.float32}
IDENTITY = "(identity)"  # the constant kernel of the output maps' layer


@dataclass
class ParameterInfo:
    name: str
    shape: Tuple[int, ...]  # as stored in the file
    offset: int

    @property
    def size(self):
        return int(np.prod(self.shape))


@dataclass(eq=False)
class Assembly:
    """A spec folded over its tensors at parameters ``theta``; picklable (it travels to
    Dask workers with the model)."""

    spec: object
    parameters: List[ParameterInfo]
    theta: np.ndarray  # the file's parameters, flattened in parameter order (float64)
    constants: dict  # the tensors that are not parameters, by name (BatchNorm statistics, ...)
    dtype: str
    path: str
    widths: Tuple[int, int]  # the network's inputs and outputs
    layout: Optional[str]  # how every kernel is stored, when the engine's parameters are
    # the file's in its order (the fast path); None: through ``parameter_map``
    network: Optional[Network] = None
    _map: Optional[object] = field(default=None, repr=False)

    @property
    def layers(self):
        """The spec's layers, and a linear layer of the output maps when there are some
        (its kernel the identity, a constant: the maps fold into it)."""
        if not self.spec.output_maps:
            return self.spec.layers
        return self.spec.layers + [LayerSpec(self.widths[1], "linear", {}, IDENTITY, None,
                                             before=self.spec.output_maps)]

    @property
    def n_parameters(self):
        return int(self.theta.size)

    def parameter_map(self):
        """d(engine parameters)/d(file parameters), CSR (engine parameters, P), made on
        first use; None on the fast path. The engine's parameters: per layer the folded
        kernel (in, out) in C order, the bias, then the activation's tensors, one value
        per unit (``DenseLayer.parameter_arrays``)."""
        if self.layout is None and self._map is None:
            parts = [part for w, b, extra in self._fold(self.theta, track=True)
                     for part in (w, b, *extra.values()) if part is not None]
            self._map = jacobian_rows(parts, self.n_parameters)
        return self._map

    def at(self, theta):
        """The assembly at other parameter values ``theta`` (P,), folded the same way."""
        theta = np.asarray(theta, dtype=np.float64)
        moved = replace(self, theta=theta, _map=None)
        moved.network = moved._network(moved._fold(theta, track=False))
        return moved

    def _fold(self, theta, track):
        """Per layer (kernel (in, out), bias or None, the activation's tensors by parameter
        name, each (units,)) at ``theta``; ``Tracked`` with ``track``."""
        leaves = dict(self.constants)
        for p in self.parameters:
            value = theta[p.offset:p.offset + p.size].reshape(p.shape)
            leaves[p.name] = Tracked.leaf(value, p.offset, self.n_parameters) if track else value
        if self.spec.output_maps:
            leaves[IDENTITY] = np.eye(self.widths[1])
        return [_folded_layer(layer, leaves) for layer in self.layers]

    def _network(self, folded):
        layers = [_dense_layer(ls, value_of(w), None if b is None else value_of(b),
                               {k: value_of(v) for k, v in extra.items()}, self.path, i, self.dtype)
                  for i, (ls, (w, b, extra)) in enumerate(zip(self.layers, folded))]
        scalings = _network_scalings(self.spec, *self.widths)
        return Network(layers, *(s.astype(DTYPES[self.dtype]) for s in scalings))


def assemble(spec, store, dtype="float64"):
    """The ``Assembly`` of ``spec`` over the tensors of ``store``, every shape checked."""
    if dtype not in DTYPES:
        raise JaccliError(f"unknown dtype '{dtype}' (float64 or float32)")
    values = {name: store.take(name) for name in spec.parameter_names + spec.constants}
    widths = _check_chain(spec, values, store.path)
    table = _parameter_table(spec, values)
    theta = np.concatenate([np.asarray(values[p.name], dtype=np.float64).ravel() for p in table])
    parameter_names = {p.name for p in table}
    constants = {name: np.asarray(value, dtype=np.float64) for name, value in values.items()
                 if name not in parameter_names}
    return Assembly(spec, table, theta, constants, dtype, store.path, widths,
                    _plain_layout(spec, values)).at(theta)


def _parameter_table(spec, values):
    table, offset = [], 0
    for name in spec.parameter_names:
        shape = tuple(np.shape(values[name]))
        table.append(ParameterInfo(name, shape, offset))
        offset += int(np.prod(shape))
    return table


def _plain_layout(spec, values):
    """The one layout of every kernel when the engine's parameters are the file's in its
    order (no maps or scales, no tensor taken twice, one bias value per unit); else None."""
    names = [n for layer in spec.layers for n in layer.tensors]
    layouts = {layer.layout for layer in spec.layers}
    plain = len(layouts) == 1 and len(set(names)) == len(names) and not spec.output_maps and \
        not any(layer.constant for layer in spec.layers) and DIAGONAL not in layouts
    for layer in spec.layers:
        if not plain:
            return None
        units = np.shape(values[layer.weight])[0 if layer.layout == "out_in" else 1]
        per_unit = [layer.bias] * (layer.bias is not None) + list(layer.activation_tensors.values())
        plain = plain and not (layer.before or layer.after) and \
            layer.weight_scale == layer.bias_scale == 1.0 and \
            all(np.size(values[name]) == units for name in per_unit)
    return layouts.pop() if plain else None


# -- shapes ---------------------------------------------------------------------


def _check_chain(spec, values, path):
    """Each kernel 2-D and chained to the one before; biases and map vectors sized.
    Returns the numbers of inputs and outputs."""
    expected_in = len(spec.inputs) if spec.inputs else None
    widths = []
    for index, layer in enumerate(spec.layers):
        if layer.layout == DIAGONAL:
            d_in = d_out = _diagonal_width(layer, values, path, index, expected_in)
        else:
            d_in, d_out = _kernel_shape(spec, layer, values[layer.weight], path, index, expected_in)
        widths.append(d_in)
        per_unit = {"bias": layer.bias, **layer.activation_tensors}
        for field, name in per_unit.items():
            _check_per_unit(values, name, d_out, f"{path}: tensor '{name}' (layers[{index}] {field})")
        for field, maps, width in (("before", layer.before, d_in), ("after", layer.after, d_out)):
            for k, item in enumerate(maps):
                _check_map(item, values, width, f"{path}: layers[{index}].{field}[{k}]")
        expected_in = d_out
    for k, item in enumerate(spec.output_maps):
        _check_map(item, values, expected_in, f"{path}: output_maps[{k}]")
    return widths[0], expected_in


def _check_per_unit(values, name, units, where):
    """A tensor of one value per unit: (units,), (1, units), (units, 1), or one for all."""
    shape = np.shape(values[name]) if name is not None else (units,)
    if not is_per_unit(shape, units):
        raise JaccliError(f"{where} has shape {shape}; expected ({units},)")


def _kernel_shape(spec, layer, kernel, path, index, expected_in):
    """(d_in, d_out) of layer ``index``'s kernel; a shape that does not chain is an error
    naming what was expected (and the layout, if the transpose would fit)."""
    where = f"layers[{index}] weight"
    shape = np.shape(kernel)
    if len(shape) != 2:
        raise JaccliError(f"{path}: tensor '{layer.weight}' ({where}) has shape {shape}; "
                          f"a dense kernel is 2-D")
    if 0 in shape:
        raise JaccliError(f"{path}: tensor '{layer.weight}' ({where}) has shape {shape}; "
                          f"a layer needs at least one unit and input")
    d_in, d_out = shape[::-1] if layer.layout == "out_in" else shape
    if (expected_in is None or d_in == expected_in) and (layer.units is None or d_out == layer.units):
        return d_in, d_out
    want_in = expected_in if expected_in is not None else d_in
    want_out = layer.units if layer.units is not None else d_out
    want = (want_out, want_in) if layer.layout == "out_in" else (want_in, want_out)
    hint = ""
    if tuple(reversed(shape)) == want:
        other = "in_out" if layer.layout == "out_in" else "out_in"
        hint = f" (the transpose fits: is the layout {other}?)"
    raise JaccliError(f"{path}: tensor '{layer.weight}' ({where}) has shape {shape}; "
                      f"{spec.source} (layout {layer.layout}) expects {want}{hint}")


def _diagonal_width(layer, values, path, index, expected_in):
    """The width of a diagonal layer: its weight vector's size (or ``units`` without one)."""
    where = f"layers[{index}] weight"
    if layer.weight is None:
        width = layer.units
    else:
        shape = np.shape(values[layer.weight])
        if len(shape) != 1 or 0 in shape:
            raise JaccliError(f"{path}: tensor '{layer.weight}' ({where}) has shape {shape}; "
                              f"a diagonal layer's weight is a vector, one value per unit")
        width = shape[0]
    for expected, what in ((expected_in, "its input has"), (layer.units, "'units' says")):
        if expected is not None and width != expected:
            raise JaccliError(f"{path}: layers[{index}] is diagonal with {width} units but "
                              f"{what} {expected}")
    return width


def _check_map(item, values, width, where):
    if isinstance(item, BatchNormMap):
        for field in ("weight", "bias", "mean", "var"):
            name = getattr(item, field)
            if name is not None and np.shape(values[name]) != (width,):
                raise JaccliError(f"{where}: batchnorm {field} '{name}' has shape "
                                  f"{np.shape(values[name])}; expected ({width},)")
        if np.any(np.asarray(values[item.var], dtype=np.float64) + item.eps <= 0):
            raise JaccliError(f"{where}: batchnorm var '{item.var}' + eps is not positive")
        return
    for field in ("scale", "offset"):
        _constant_vector(getattr(item, field), width, f"{where}.{field}")


def _constant_vector(values, width, where):
    array = np.atleast_1d(np.asarray(values, dtype=object))
    try:
        array = array.astype(np.float64)
    except (TypeError, ValueError, OverflowError):
        raise JaccliError(f"{where} must be finite numbers, not {clip(values)}") from None
    if array.ndim != 1 or array.size not in (1, width):
        raise JaccliError(f"{where} has {array.size} values; expected {width}")
    if not np.all(np.isfinite(array)):
        raise JaccliError(f"{where} holds a non-finite value")
    return np.broadcast_to(array, (width,)).copy()


# -- folding ----------------------------------------------------------------------


def _map_coefficients(item, leaves, width):
    """(s, c) of a map x -> x * s + c, each of shape (width,): arrays or ``Tracked``."""
    if isinstance(item, BatchNormMap):
        mean = np.asarray(leaves[item.mean], dtype=np.float64)
        var = np.asarray(leaves[item.var], dtype=np.float64)
        inverse = 1.0 / np.sqrt(var + item.eps)
        s = inverse if item.weight is None else leaves[item.weight] * inverse
        c = -mean * s
        return s, (c if item.bias is None else c + leaves[item.bias])
    return (_constant_vector(item.scale, width, "scale"),
            _constant_vector(item.offset, width, "offset"))


def _folded_layer(layer, leaves):
    """(kernel (in, out), bias or None, the activation's tensors) with the layer's maps folded in:
    W (s x + c) + b == (diag(s) W) x + (c W + b);  (x W + b) s + c == x (W diag(s)) + (b s + c)."""
    if layer.layout == DIAGONAL:
        kernel = _diagonal_kernel(layer, leaves) * layer.weight_scale
    else:
        kernel = leaves[layer.weight]
        kernel = (kernel.T if layer.layout == "out_in" else kernel) * layer.weight_scale
    d_in, d_out = np.shape(value_of(kernel))
    bias = None
    if layer.bias is not None:  # a bias stored (1, n) or (n, 1), or one value for every unit
        bias = broadcast(_flat(leaves[layer.bias]), (d_out,)) * layer.bias_scale
    for item in reversed(layer.before):  # the map nearest the kernel folds first
        s, c = _map_coefficients(item, leaves, d_in)
        if isinstance(c, Tracked) or np.any(c != 0):
            bias = c @ kernel if bias is None else c @ kernel + bias
        kernel = s[:, None] * kernel
    for item in layer.after:
        s, c = _map_coefficients(item, leaves, d_out)
        kernel = kernel * s[None, :]
        if bias is not None:
            bias = bias * s + c
        elif isinstance(c, Tracked) or np.any(c != 0):
            bias = c
    extra = {key: broadcast(_flat(leaves[name]), (d_out,))
             for key, name in layer.activation_tensors.items()}
    return kernel, bias, extra


def _diagonal_kernel(layer, leaves):
    """diag(w) (d, d) of a diagonal layer's vector w: the identity without a weight."""
    if layer.weight is None:
        return np.eye(layer.units)
    w = _flat(leaves[layer.weight])
    width = value_of(w).size
    return broadcast(w, (width, width)) * np.eye(width)  # column j holds w_j on the diagonal


def _flat(x):
    """x as a 1-D tensor, in C order."""
    return gather(x, np.arange(x.value.size)) if isinstance(x, Tracked) else np.ravel(x)


def _dense_layer(layer_spec, kernel, bias, extra, path, index, dtype):
    """The layer in the model's dtype; a weight that overflows it is an error. ``extra``:
    the activation's tensors by parameter name, (units,) each."""
    np_dtype = DTYPES[dtype]
    with np.errstate(over="ignore"):
        kernel = np.ascontiguousarray(kernel, dtype=np_dtype)
        if bias is not None:
            bias = np.asarray(bias).astype(np_dtype)
        extra = {key: np.asarray(value).astype(np_dtype) for key, value in extra.items()}
    named = [(layer_spec.weight, kernel), (layer_spec.bias, bias)] + \
        [(layer_spec.activation_tensors[key], value) for key, value in extra.items()]
    for name, tensor in named:
        if tensor is not None and not np.isfinite(tensor).all():
            raise JaccliError(f"{path}: tensor '{name}' (layers[{index}]) overflows {dtype}")
    return DenseLayer(kernel, bias, ACTIVATIONS[layer_spec.activation],
                      {**layer_spec.params, **extra})


# -- the input and output scalings ------------------------------------------------------


def _network_scalings(spec, n_in, n_out):
    """(in_offset, in_inv_scale, out_offset, out_scale) as float64 vectors."""
    in_offset, in_scale = _scaling(spec.input_scaling, n_in, "input_scaling", spec.source)
    out_offset, out_scale = _scaling(spec.output_scaling, n_out, "output_scaling", spec.source)
    return in_offset, 1.0 / in_scale, out_offset, out_scale


def _scaling(scaling, length, field, source):
    scaling = scaling or {}
    offset, scale = (_constant_vector(default if scaling.get(key) is None else scaling[key],
                                      length, f"{source}: '{field}.{key}'")
                     for key, default in (("offset", 0.0), ("scale", 1.0)))
    if np.any(scale == 0):
        raise JaccliError(f"{source}: '{field}.scale' must not be zero, got {scale.tolist()}")
    return offset, scale
