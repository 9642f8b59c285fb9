"""A chain of dense layers, activations and elementwise maps -> a jaccli spec and its tensors.

Every reader of a model format (Keras files, ONNX graphs, the PyTorch and
scikit-learn exporters) walks its layers from input to output and reports each
one to a ``DenseStack``, which checks the order and the tensors and writes the
spec dict (the YAML schema) with the tensor dict it names:

    stack = DenseStack("model.onnx", layout="out_in", dense="Gemm")
    stack.scale_inputs(offset, scale)         # optional, first: x -> (x - offset) / scale
    stack.dense(W, b, where="node 'fc1' (Gemm)", weight_name="fc1.weight", bias_name="fc1.bias")
    stack.affine(scale, offset, where="node 'm' (Mul)")  # y = x * scale + offset, constants
    stack.batchnorm(mean, var, eps, gamma, beta, names={...}, where=...)
    stack.activation("tanh", where="node 't' (Tanh)")
    stack.layernorm(eps, gamma, beta, names={...}, where=...)
    spec, tensors = stack.build()

Nothing is folded here: the tensors are the file's, under the file's names
(a tensor used twice, tied weights, is one entry), so the parameters stay the
file's tensors. Where a map goes (``jaccli.formats.assemble`` folds it
later, carrying the chain rule back through the fold):
- a constant map before any layer joins the input scaling, one after the
  last layer's activation the output scaling (any non-zero scale; a map
  after a linear last layer too);
- a map right after a dense layer that has no activation yet is part of that
  layer's ``after`` (applied to its pre-activation);
- any other map waits for the next dense layer and becomes its ``before``;
  maps after the last activation that hold a BatchNorm are the spec's
  ``output_maps`` (its weight and bias are parameters, so they cannot be a
  constant output scaling).
An activation applies to the dense layer right before it; one that follows
nothing, a waiting map or another activation is refused (except a ReLU or
LeakyReLU after an activation that is never negative: the identity there,
so dropped). A LayerNorm is two things: the ``layer_norm`` activation (the
normalisation, over the features) of the dense layer right before it, and,
when it has gamma or beta, a ``layout: diagonal`` layer (kernel diag(gamma),
bias beta: parameters of their own) whose activation is the next event's;
without them, an activation that follows it (or a LayerNorm that follows an
activation), with any maps between them, gets a diagonal layer of its own
without weight or bias (the identity), the maps its ``after``.
"""

from __future__ import annotations

import re

import numpy as np

from jaccli.errors import JaccliError
from jaccli.formats.spec import LAYOUTS, is_per_unit
from jaccli.numeric import dtype_problem

# Activations whose value is never negative, and those that are the identity
# there: a ReLU or LeakyReLU after one of them changes nothing, so it is dropped
# (Keras models often put a LeakyReLU layer after Dense(activation="relu")). The derivatives agree too: where the first
# activation's output is 0 (relu at z <= 0, or an underflow) its own
# derivative is 0 (relu's left derivative) or underflows with it, so the
# product is the same whichever derivative the second one takes at 0.
# (softplus only with a threshold >= 0: torch's Softplus(threshold=-5) is z itself, negative,
# on (-5 / beta, 0).)
NONNEGATIVE_ACTIVATIONS = ("relu", "sigmoid", "softplus", "exp", "relu6", "hardsigmoid")
LAYER_NORM = "layer_norm"
_IDENTITY_ON_NONNEGATIVE = ("relu", "leaky_relu")


def never_negative(entry):
    """Whether the activation of the layer ``entry`` (a spec dict) never gives a negative value."""
    name = entry.get("activation")
    return name in NONNEGATIVE_ACTIVATIONS and \
        not (name == "softplus" and entry.get("threshold", 0.0) < 0)


def checked_tensor(array, where):
    """A float64 copy of ``array``, refused (naming ``where``) unless real and finite."""
    array = np.asarray(array)
    problem = dtype_problem(array.dtype)
    if problem:
        raise JaccliError(f"{where} {problem}")
    with np.errstate(over="ignore", invalid="ignore"):
        result = array.astype(np.float64)
    if not np.all(np.isfinite(result)):
        bad = np.argwhere(~np.isfinite(result))[0]
        raise JaccliError(f"{where} holds a non-finite value ({result[tuple(bad)]}) "
                          f"at index {list(map(int, bad))}")
    return result


class _Layer:
    """One dense layer's spec entry in the making."""

    def __init__(self, entry):
        self.entry = entry
        self.activation = None  # None: no activation yet (linear unless one follows)


class DenseStack:
    """Collects a model's layers in order; ``build`` returns (spec dict, tensors).

    source: names the model in every error (a file name, ``from_torch(...)``).
    layout: how the reader's kernels are stored, ``in_out`` (n_in, n_out) or
        ``out_in``; a layer may say otherwise (``dense(..., layout=)``).
    dense: what the format calls a dense layer (``Dense``, ``Linear``), for errors.
    inputs: the number of inputs when the format states it.
    """

    def __init__(self, source, *, layout="in_out", dense="dense", inputs=None):
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, not {layout!r}")
        self.source, self.layout, self.dense_word = source, layout, dense
        self.width = inputs  # features flowing out of the last event, when known
        self._width_from = "the model's input"  # that event, for errors
        self.layers = []
        self.tensors = {}
        self.input_scaling = None  # (offset, scale): the network sees (x - offset) / scale
        self.output_scaling = None  # (offset, scale): y = y_net * scale + offset
        self._pending = []  # maps waiting for the next dense layer (its ``before``)
        self.output_maps = []  # maps after the last activation that hold parameters (BatchNorm)
        self._pending_where = None
        self._after_where = None  # where the last map joined a layer's ``after`` came from
        self._outputs_scaled = False  # scale_outputs was called: no layer may follow

    # -- events, in the order the data flows --------------------------------

    def scale_inputs(self, offset, scale, *, where="input scaling"):
        """The inputs go through (x - offset) / scale (after any earlier input scaling)."""
        if self.layers or self._pending:
            raise JaccliError(f"{self.source}: {where}: an input scaling must come before any "
                              f"{self.dense_word} layer or map")
        # (((x - o1) / s1) - o2) / s2  ==  (x - (o1 + o2 s1)) / (s1 s2)
        self.input_scaling = self._chained(self.input_scaling, offset, scale, where,
                                           lambda o1, s1, o2, s2: (o1 + o2 * s1, s1 * s2))
        scale = self.input_scaling[1]
        if self.width is None and scale.ndim == 1:
            self._set_width(scale.size, where)

    def dense(self, weight, bias, *, where, weight_name, bias_name, layout=None, weight_scale=1.0,
              bias_scale=1.0, constant=False):
        """x -> x W + b (layout in_out) or W x + b (out_in); ``bias`` may be None; the
        scales make it x (weight_scale W) + bias_scale b (ONNX Gemm's alpha and beta);
        ``constant``: W and b are constants of the graph, not parameters."""
        self._check_outputs_not_scaled()
        layout = layout or self.layout
        label = f"{self.source}: {where}"
        weight = checked_tensor(weight, f"{label} weight")
        if weight.ndim != 2:
            raise JaccliError(f"{label} weight has shape {weight.shape}; a dense kernel is 2-D")
        n_in, n_out = weight.shape if layout == "in_out" else weight.shape[::-1]
        if bias is not None:  # in the file's shape: (n,), (1, n), (n, 1), or one value for all
            bias = checked_tensor(bias, f"{label} bias")
            if not is_per_unit(bias.shape, n_out):
                raise JaccliError(f"{label} bias has shape {bias.shape}, expected ({n_out},)")
        self._check_width(n_in, label)
        self._register(weight_name, weight, f"{label} weight")
        if bias is not None:
            self._register(bias_name, bias, f"{label} bias")
        entry = {"units": int(n_out), "activation": "linear", "weight": weight_name,
                 "bias": None if bias is None else bias_name}
        if layout != self.layout:
            entry["layout"] = layout
        for field, value in (("weight_scale", weight_scale), ("bias_scale", bias_scale)):
            if value != 1.0:
                entry[field] = float(value)
        if constant:
            entry["constant"] = True
        if self._pending:
            entry["before"], self._pending, self._pending_where = self._pending, [], None
        self.layers.append(_Layer(entry))
        self._set_width(n_out, where)

    def activation(self, name, params=None, *, where, tensors=None):
        """The activation ``name`` (jaccli's name) on the last dense layer; ``params``: its
        numbers ({"alpha": 0.2}), ``tensors``: its parameters that are tensors of the
        file, {parameter: (tensor name, array)} (prelu's slope: one value per unit or
        one for all)."""
        if name == "linear":
            return
        self._check_outputs_not_scaled()
        if name == LAYER_NORM and not self.layers and not self._pending and self.width is not None:
            self._identity_layer()  # a LayerNorm of the inputs
        joins = self.layers and self._pending and LAYER_NORM in (name, self.layers[-1].activation)
        if not self.layers or (self._pending and not joins):
            raise JaccliError(f"{self.source}: {where}: an activation must directly follow a "
                              f"{self.dense_word} layer")
        last = self.layers[-1]
        if joins:  # LayerNorm, maps, an activation (or the other way round): the maps join
            last = self._identity_layer()  # the identity layer that carries it
            last.entry["after"], self._pending, self._pending_where = self._pending, [], None
        if name in _IDENTITY_ON_NONNEGATIVE and last.activation is not None and \
                never_negative(last.entry):
            return  # relu(y) == leaky_relu(y) == y for y >= 0, derivatives included (see above)
        if last.activation is not None and LAYER_NORM in (name, last.activation):
            last = self._identity_layer()  # LayerNorm then ReLU, or Tanh then LayerNorm
        if last.activation is not None:
            raise JaccliError(f"{self.source}: {where}: two activations in a row cannot be one "
                              f"{self.dense_word} layer (it already applies {last.activation})")
        last.activation = name
        last.entry["activation"] = name
        last.entry.update({key: float(value) for key, value in (params or {}).items()})
        for key, (tensor_name, array) in (tensors or {}).items():
            label = f"{self.source}: {where} {key}"
            array = checked_tensor(array, label)
            if not is_per_unit(array.shape, last.entry["units"]):
                raise JaccliError(f"{label} has shape {array.shape}; expected one value per unit "
                                  f"({last.entry['units']},) or one for all")
            self._register(tensor_name, array, label)
            last.entry[key] = tensor_name

    def layernorm(self, eps, weight=None, bias=None, *, names, where, features=None):
        """LayerNorm over the features, (x - mean) / sqrt(var + eps) * weight + bias (var
        the biased one); ``names``: the file's names of weight and bias (parameters);
        ``features``: their number, when the format states it (else gamma's size)."""
        features = features or next((np.size(a) for a in (weight, bias) if a is not None), None)
        if features is not None:
            self._check_width(int(features), f"{self.source}: {where}")
            self._set_width(int(features), where)
        self.activation(LAYER_NORM, where=where)
        self.layers[-1].entry["eps"] = float(eps)
        if weight is None and bias is None:
            return
        label = f"{self.source}: {where}"
        entry = self._identity_layer().entry
        for field, array in (("weight", weight), ("bias", bias)):
            if array is None:
                continue
            array = checked_tensor(array, f"{label} {field}")
            if array.ndim != 1:
                raise JaccliError(f"{label} {field} has shape {array.shape}; expected one value "
                                  f"per feature")
            self._check_width(array.size, label)
            self._register(names[field], array, f"{label} {field}")
            entry[field] = names[field]

    def _identity_layer(self):
        """A diagonal layer without weight or bias (the identity, no parameters), appended:
        it carries a LayerNorm of the inputs, a LayerNorm's gamma and beta (``layernorm``
        fills them in), or an activation that follows a LayerNorm (or the other way round)."""
        layer = _Layer({"units": self.width, "activation": "linear", "layout": "diagonal",
                        "weight": None, "bias": None})
        self.layers.append(layer)
        return layer

    def affine(self, scale, offset, *, where):
        """y = x * scale + offset, feature by feature (scalars apply to every feature); constants."""
        self._check_outputs_not_scaled()
        label = f"{self.source}: {where}"
        scale = checked_tensor(scale, f"{label} scale")
        offset = checked_tensor(offset, f"{label} offset")
        scale, offset = self._as_feature_vectors(scale, offset, where)
        if not self.layers and not self._pending:
            if np.any(scale == 0):
                raise JaccliError(f"{label} multiplies an input by zero")
            # x * s + o  ==  (x - (-o / s)) / (1 / s)
            self.scale_inputs(-offset / scale, 1.0 / scale, where=where)
            return
        self._add_map({"scale": _listed(scale), "offset": _listed(offset)}, where)

    def batchnorm(self, mean, var, eps, weight=None, bias=None, *, names, where):
        """BatchNorm at inference, (x - mean) / sqrt(var + eps) * weight + bias, per feature.

        ``names``: the file's names of the tensors given ({"mean", "var", "weight", "bias"});
        weight and bias (gamma, beta) are parameters, mean and var stored statistics.
        """
        label = f"{self.source}: {where}"
        norm = {"eps": float(eps)}
        for field, array in (("weight", weight), ("bias", bias), ("mean", mean), ("var", var)):
            if array is None:
                continue
            array = checked_tensor(array, f"{label} {field}")
            if array.ndim != 1:
                raise JaccliError(f"{label} {field} has shape {array.shape}; expected one value per feature")
            self._check_width(array.size, label)
            self._register(names[field], array, f"{label} {field}")
            norm[field] = names[field]
        self._add_map({"batchnorm": norm}, where)

    def identity(self):
        """A layer that computes the identity (Dropout at inference, Flatten of a vector)."""

    def scale_outputs(self, offset, scale, *, where="output scaling"):
        """The outputs go through y * scale + offset, after every layer (no layer may follow)."""
        self._resolve_trailing()
        # (y s1 + o1) s2 + o2  ==  y (s1 s2) + (o1 s2 + o2)
        self.output_scaling = self._chained(self.output_scaling, offset, scale, where,
                                            lambda o1, s1, o2, s2: (o1 * s2 + o2, s1 * s2))
        self._outputs_scaled = True

    # -- the result ----------------------------------------------------------

    def build(self, input_names=None, output_names=None):
        """(spec dict, {tensor name: float64 array}); names default to counts."""
        self._resolve_trailing()
        first, last = self.layers[0].entry, self.layers[-1].entry
        n_in = first["units"] if first["weight"] is None else self._shape_in_out(first)[0]
        n_out = last["units"]
        spec = {
            "inputs": self._names(input_names, n_in, "input"),
            "outputs": self._names(output_names, n_out, "output"),
            "layout": self.layout,
        }
        if self.input_scaling is not None:
            spec["input_scaling"] = self._scaling_entry(self.input_scaling, n_in, "input scaling")
        if self.output_scaling is not None:
            spec["output_scaling"] = self._scaling_entry(self.output_scaling, n_out, "output scaling")
        spec["layers"] = [layer.entry for layer in self.layers]
        if self.output_maps:
            spec["output_maps"] = self.output_maps
        return spec, dict(self.tensors)

    # -- where maps go -----------------------------------------------------------

    def _add_map(self, item, where):
        last = self.layers[-1] if self.layers else None
        if last is not None and last.activation is None and not self._pending:
            last.entry.setdefault("after", []).append(item)
            self._after_where = where
        else:
            self._pending.append(item)
            self._pending_where = self._pending_where or where

    def _resolve_trailing(self):
        """After the last layer: constant maps become the output scaling; a BatchNorm
        waiting there is refused. A linear last layer's trailing constant maps move
        to the output scaling too, so its kernel stays the file's."""
        if not self.layers:
            raise JaccliError(f"{self.source}: the model has no {self.dense_word} layer")
        last = self.layers[-1]
        if last.activation is None:
            after = last.entry.get("after", [])
            while after and "scale" in after[-1]:
                self._pending.insert(0, after.pop())
            if not after:
                last.entry.pop("after", None)
        pending, self._pending = self._pending, []
        if any("batchnorm" in item for item in pending):  # trainable: the output maps
            if self.output_scaling is not None:
                raise ValueError("scale_outputs comes after every map")
            self.output_maps = pending
            return
        for item in pending:
            scale, offset = np.asarray(item["scale"]), np.asarray(item["offset"])
            if np.any(scale == 0):
                where = self._pending_where or self._after_where
                raise JaccliError(f"{self.source}: {where}: multiplies an output by zero after "
                                  f"the last layer (it does not depend on the input)")
            self.output_scaling = self._chained(self.output_scaling, offset, scale, "output map",
                                                lambda o1, s1, o2, s2: (o1 * s2 + o2, s1 * s2))

    # -- checks ----------------------------------------------------------------

    def _register(self, name, array, where):
        """The file's (checked) tensor ``name``; a name given twice must hold the same values."""
        known = self.tensors.get(name)
        if known is not None and (known.shape != array.shape or not np.array_equal(known, array)):
            raise JaccliError(f"{where}: '{name}' names two different tensors")
        self.tensors[name] = array

    def _shape_in_out(self, entry):
        shape = self.tensors[entry["weight"]].shape
        return shape if entry.get("layout", self.layout) == "in_out" else shape[::-1]

    def _check_outputs_not_scaled(self):
        if self._outputs_scaled:
            raise ValueError("scale_outputs comes after every layer")

    def _set_width(self, width, where):
        self.width, self._width_from = width, where

    def _check_width(self, n_in, label):
        if self.width is not None and n_in != self.width:
            raise JaccliError(f"{label} takes {n_in} inputs but receives {self.width} "
                              f"from {self._width_from}")

    def _as_feature_vectors(self, scale, offset, where):
        """Scale and offset as vectors over the features, when their number is known."""
        label = f"{self.source}: {where}"
        if scale.ndim > 1 or offset.ndim > 1:
            raise JaccliError(f"{label} has scale shape {scale.shape} and offset shape "
                              f"{offset.shape}; an elementwise map of a vector needs at most 1-D")
        sizes = {array.size for array in (scale, offset) if array.ndim == 1}
        if len(sizes) > 1:
            raise JaccliError(f"{label} has {scale.size} scales but {offset.size} offsets")
        size = sizes.pop() if sizes else None
        if size is not None:
            self._check_width(size, label)
            self._set_width(size, where)
        size = self.width
        if size is None:
            return scale, offset
        return np.broadcast_to(scale, (size,)), np.broadcast_to(offset, (size,))

    def _chained(self, first, offset, scale, where, compose):
        """The scaling (offset, scale), checked, after ``first`` (if any) by ``compose``."""
        offset = checked_tensor(offset, f"{self.source}: {where} offset")
        scale = checked_tensor(scale, f"{self.source}: {where} scale")
        if first is None:
            return offset, scale
        first_offset, first_scale = first
        if first_scale.shape != scale.shape and first_scale.ndim and scale.ndim:
            raise JaccliError(f"{self.source}: two scalings of {first_scale.size} and "
                              f"{scale.size} columns cannot be chained")
        return compose(first_offset, first_scale, offset, scale)

    def _names(self, given, count, what):
        """The spec's ``inputs``/``outputs`` entry: a list of names, or the count."""
        if given is None:
            return int(count)
        names = [str(name) for name in given]
        if len(names) != count:
            raise JaccliError(f"{self.source}: {len(names)} {what} names given but the model "
                              f"has {count} {what}s")
        if len(set(names)) != len(names) or any(not name for name in names):
            raise JaccliError(f"{self.source}: {what} names must be distinct and non-empty, got {names}")
        return names

    def _scaling_entry(self, scaling, count, what):
        offset, scale = (np.asarray(value, dtype=np.float64) for value in scaling)
        offset = np.broadcast_to(offset, (count,)) if offset.ndim == 0 else offset
        scale = np.broadcast_to(scale, (count,)) if scale.ndim == 0 else scale
        if offset.shape != (count,) or scale.shape != (count,):
            raise JaccliError(f"{self.source}: {what} has offset shape {offset.shape} and scale "
                              f"shape {scale.shape}; the model has {count}")
        if np.any(scale == 0):
            raise JaccliError(f"{self.source}: {what} has a zero scale")
        return {"offset": _listed(offset), "scale": _listed(scale)}


# An output's name or class label used as column names: a short plain word (a file's
# text goes into CSV headers).
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.+-]{1,40}")


def plain_name(name):
    """Whether ``name`` (from a file) is a short plain word, fit for a column's name."""
    return bool(_PLAIN_NAME.fullmatch(str(name)))


def named_columns(name, count):
    """The columns of the output ``name``: the name itself, or name1, name2, ...; None
    when the name is not a plain word."""
    if not plain_name(name):
        return None
    return [name] if count == 1 else [f"{name}{i + 1}" for i in range(count)]


def _listed(array):
    """A spec's numbers: tolist() gives Python floats, which yaml.safe_dump writes with repr (exact)."""
    array = np.asarray(array, dtype=np.float64)
    return array.tolist() if array.ndim else float(array)
