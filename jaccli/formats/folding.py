"""A chain of dense layers, activations and affine maps -> a jaccli spec and its tensors.

Every reader of a model format (Keras files, the PyTorch and scikit-learn
exporters, ...) walks its layers from input to output and reports each one to
a ``DenseStack``. The stack checks the tensors, folds the affine maps, and
builds the spec dict (the YAML schema) with the tensor dict it names:

    stack = DenseStack("model.onnx", layout="out_in", dense="Gemm")
    stack.scale_inputs(offset, scale)         # optional, first: x -> (x - offset) / scale
    stack.dense(W, b, where="node 'fc1' (Gemm)", weight_name="fc1.weight", bias_name="fc1.bias")
    stack.activation("tanh", where="node 't' (Tanh)")
    stack.affine(scale, offset, where="node 'm' (Mul)")  # y = x * scale + offset, per feature
    stack.identity()
    spec, tensors = stack.build()

Folding (each step is an identity of the composed map, so it is exact up to
rounding):
- an affine map right after a dense layer that has no activation yet is folded
  into that layer's kernel and bias;
- any other affine map waits, composed with the ones that follow, and is
  folded into the next dense layer's kernel and bias; before the first dense
  layer it becomes part of the input scaling instead when the stack was made
  with ``leading_to_input_scaling`` and every scale is positive;
- one still waiting after the last dense layer becomes the output scaling when
  the stack was made with ``trailing_to_output_scaling`` and every scale is
  positive; otherwise it is refused.
An activation applies to the dense layer right before it; one that follows
nothing, an affine map or another activation is refused (except a ReLU or
LeakyReLU after an activation that is never negative: the identity there,
so dropped), and nothing but (when
allowed) an output scaling may follow a softmax. Folded tensors keep the dense
layer's names unless the stack has ``rename_folded``.
"""

from __future__ import annotations

import numpy as np

from jaccli.errors import JaccliError

LAYOUTS = ("in_out", "out_in")

# Activations whose value is never negative, and those that are the identity
# there: a ReLU or LeakyReLU after relu/sigmoid/softplus/exp changes nothing,
# so it is folded away (Keras models often put a LeakyReLU layer after
# Dense(activation="relu")). The derivatives agree too: where the first
# activation's output is 0 (relu at z <= 0, or an underflow) its own
# derivative is 0 (relu's left derivative) or underflows with it, so the
# product is the same whichever derivative the second one takes at 0.
NONNEGATIVE_ACTIVATIONS = ("relu", "sigmoid", "softplus", "exp")
_IDENTITY_ON_NONNEGATIVE = ("relu", "leaky_relu")


def checked_tensor(array, where):
    """A float64 copy of ``array``, refused (naming ``where``) unless real and finite."""
    array = np.asarray(array)
    if array.dtype.kind == "c":
        raise JaccliError(f"{where} is complex ({array.dtype}); jaccli needs real weights")
    if array.dtype.kind not in "fiu":
        raise JaccliError(f"{where} has dtype {array.dtype}, not numbers")
    with np.errstate(over="ignore", invalid="ignore"):
        result = array.astype(np.float64)
    if not np.all(np.isfinite(result)):
        bad = np.argwhere(~np.isfinite(result))[0]
        raise JaccliError(f"{where} holds a non-finite value ({result[tuple(bad)]}) "
                          f"at index {list(map(int, bad))}")
    return result


class _Layer:
    """One dense layer as read, then as folded; ``parts`` names what was folded into it."""

    def __init__(self, weight, bias, weight_name, bias_name, name):
        self.weight, self.bias = weight, bias
        self.weight_name, self.bias_name = weight_name, bias_name
        self.parts = [name]
        self.activation = None  # None: no activation yet (linear unless one follows)
        self.alpha = None


class _Pending:
    """An affine map y = x * scale + offset not folded yet, and where it came from."""

    def __init__(self, scale, offset, where, name):
        self.scale, self.offset = scale, offset
        self.where = where
        self.parts = [name]


class DenseStack:
    """Collects a model's layers in order; ``build`` returns (spec dict, tensors).

    source: names the model in every error (a file name, ``from_torch(...)``).
    layout: how the reader's kernels are stored, ``in_out`` (n_in, n_out) or
        ``out_in``; the spec keeps it and the tensors stay in it.
    dense: what the format calls a dense layer (``Dense``, ``Linear``), for errors.
    inputs: the number of inputs when the format states it.
    rename_folded: parts -> (weight name, bias name) for a layer that had
        affine maps folded into it (parts: their names and the layer's, in order).
    """

    def __init__(self, source, *, layout="in_out", dense="dense", inputs=None,
                 leading_to_input_scaling=False, trailing_to_output_scaling=False,
                 rename_folded=None):
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, not {layout!r}")
        self.source, self.layout, self.dense_word = source, layout, dense
        self.width = inputs  # features flowing out of the last event, when known
        self._width_from = "the model's input"  # that event, for errors
        self.leading_to_input_scaling = leading_to_input_scaling
        self.trailing_to_output_scaling = trailing_to_output_scaling
        self.rename_folded = rename_folded
        self.layers = []
        self.input_scaling = None  # (offset, scale): the network sees (x - offset) / scale
        self.output_scaling = None  # (offset, scale): y = y_net * scale + offset
        self._pending = None
        self._outputs_scaled = False  # scale_outputs was called: no layer may follow

    # -- events, in the order the data flows --------------------------------

    def scale_inputs(self, offset, scale, *, where="input scaling"):
        """The inputs go through (x - offset) / scale (after any earlier input scaling)."""
        if self.layers or self._pending is not None:
            raise JaccliError(f"{self.source}: {where}: an input scaling must come before any "
                              f"{self.dense_word} layer or affine map")
        # (((x - o1) / s1) - o2) / s2  ==  (x - (o1 + o2 s1)) / (s1 s2)
        self.input_scaling = self._chained(self.input_scaling, offset, scale, where,
                                           lambda o1, s1, o2, s2: (o1 + o2 * s1, s1 * s2))
        scale = self.input_scaling[1]
        if self.width is None and scale.ndim == 1:
            self._set_width(scale.size, where)

    def dense(self, weight, bias, *, where, weight_name, bias_name, name=None):
        """x -> x W + b (layout in_out) or W x + b (out_in); ``bias`` may be None.

        ``bias_name`` names the bias even when there is none: folding may make one.
        """
        self._check_not_after_softmax(where)
        self._check_outputs_not_scaled()
        label = f"{self.source}: {where}"
        weight = checked_tensor(weight, f"{label} weight")
        if weight.ndim != 2:
            raise JaccliError(f"{label} weight has shape {weight.shape}; a dense kernel is 2-D")
        n_in, n_out = weight.shape if self.layout == "in_out" else weight.shape[::-1]
        if bias is not None:
            bias = checked_tensor(bias, f"{label} bias")
            if bias.shape != (n_out,):
                raise JaccliError(f"{label} bias has shape {bias.shape}, expected ({n_out},)")
        self._check_width(n_in, label)
        layer = _Layer(weight, bias, weight_name, bias_name, name)
        if self._pending is not None:
            self._fold_pending_into(layer, n_in)
        self.layers.append(layer)
        self._set_width(n_out, where)

    def activation(self, name, alpha=None, *, where):
        """The activation ``name`` (jaccli's name; ``alpha`` for leaky_relu/elu) on the last dense layer."""
        if name == "linear":
            return
        self._check_not_after_softmax(where)
        self._check_outputs_not_scaled()
        if not self.layers or self._pending is not None:
            raise JaccliError(f"{self.source}: {where}: an activation must directly follow a "
                              f"{self.dense_word} layer")
        last = self.layers[-1]
        if name in _IDENTITY_ON_NONNEGATIVE and last.activation in NONNEGATIVE_ACTIVATIONS:
            return  # relu(y) == leaky_relu(y) == y for y >= 0, derivatives included (see below)
        if last.activation is not None:
            raise JaccliError(f"{self.source}: {where}: two activations in a row cannot be one "
                              f"{self.dense_word} layer (it already applies {last.activation})")
        last.activation, last.alpha = name, alpha

    def affine(self, scale, offset, *, where, name=None):
        """y = x * scale + offset, feature by feature (scalars apply to every feature)."""
        if not self.trailing_to_output_scaling:
            self._check_not_after_softmax(where)
        self._check_outputs_not_scaled()
        label = f"{self.source}: {where}"
        scale = checked_tensor(scale, f"{label} scale")
        offset = checked_tensor(offset, f"{label} offset")
        scale, offset = self._as_feature_vectors(scale, offset, where)
        last = self.layers[-1] if self.layers else None
        if last is not None and last.activation is None and self._pending is None:
            self._fold_into_outputs(last, scale, offset)
            last.parts.append(name)
        elif self._pending is None:
            self._pending = _Pending(scale, offset, where, name)
        else:
            pending = self._pending
            pending.scale, pending.offset = pending.scale * scale, pending.offset * scale + offset
            pending.parts.append(name)

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
        n_in = self._in_out(self.layers[0].weight).shape[0]
        n_out = self._in_out(self.layers[-1].weight).shape[1]
        spec = {
            "inputs": self._names(input_names, n_in, "input"),
            "outputs": self._names(output_names, n_out, "output"),
            "layout": self.layout,
        }
        if self.input_scaling is not None:
            spec["input_scaling"] = self._scaling_entry(self.input_scaling, n_in, "input scaling")
        if self.output_scaling is not None:
            spec["output_scaling"] = self._scaling_entry(self.output_scaling, n_out, "output scaling")
        spec["layers"], tensors = [], {}
        for layer in self.layers:
            weight_name, bias_name = layer.weight_name, layer.bias_name
            if self.rename_folded is not None and len(layer.parts) > 1:
                weight_name, bias_name = self.rename_folded(layer.parts)
            tensors[weight_name] = np.ascontiguousarray(layer.weight, dtype=np.float64)
            if layer.bias is not None:
                tensors[bias_name] = np.ascontiguousarray(layer.bias, dtype=np.float64)
            entry = {
                "units": int(self._in_out(layer.weight).shape[1]),
                "activation": layer.activation or "linear",
                "weight": weight_name,
                "bias": None if layer.bias is None else bias_name,
            }
            if layer.alpha is not None:
                entry["alpha"] = float(layer.alpha)
            spec["layers"].append(entry)
        return spec, tensors

    # -- folding ---------------------------------------------------------------

    def _in_out(self, weight):
        return weight if self.layout == "in_out" else weight.T

    def _fold_pending_into(self, layer, n_in):
        pending, self._pending = self._pending, None
        scale = np.broadcast_to(pending.scale, (n_in,))
        offset = np.broadcast_to(pending.offset, (n_in,))
        if not self.layers and self.leading_to_input_scaling and np.all(scale > 0):
            # Before the first dense layer: part of the input scaling, so the
            # layer keeps its own weights.
            first_offset, first_scale = self.input_scaling or (0.0, 1.0)
            self.input_scaling = (first_offset - offset * first_scale / scale, first_scale / scale)
            return
        # W (s x + c) + b  ==  (W diag(s)) x + (W c + b)
        bias = 0.0 if layer.bias is None else layer.bias
        if self.layout == "in_out":
            layer.bias = offset @ layer.weight + bias
            layer.weight = scale[:, None] * layer.weight
        else:
            layer.bias = layer.weight @ offset + bias
            layer.weight = layer.weight * scale[None, :]
        layer.parts[:0] = pending.parts

    def _fold_into_outputs(self, layer, scale, offset):
        # (x W + b) s + c  ==  x (W diag(s)) + (b s + c)
        bias = 0.0 if layer.bias is None else layer.bias
        n_out = self.width
        scale, offset = np.broadcast_to(scale, (n_out,)), np.broadcast_to(offset, (n_out,))
        layer.bias = bias * scale + offset
        layer.weight = layer.weight * scale if self.layout == "in_out" else layer.weight * scale[:, None]

    def _resolve_trailing(self):
        """After the last layer: the waiting affine map becomes the output scaling, or is refused."""
        if not self.layers:
            raise JaccliError(f"{self.source}: the model has no {self.dense_word} layer")
        pending, self._pending = self._pending, None
        if pending is None:
            return
        label = f"{self.source}: {pending.where}"
        if not self.trailing_to_output_scaling:
            raise JaccliError(f"{label} at the end has no {self.dense_word} layer to fold into")
        if np.any(pending.scale <= 0):
            # After a non-linear last layer there is no kernel to fold a sign flip into.
            raise JaccliError(f"{label}: a zero or negative scale after the last non-linear "
                              f"{self.dense_word} layer cannot become the output scaling, "
                              f"which must be positive")
        self.output_scaling = (pending.offset, pending.scale)

    # -- checks ----------------------------------------------------------------

    def _check_not_after_softmax(self, where):
        if self.layers and self.layers[-1].activation == "softmax":
            raise JaccliError(f"{self.source}: {where} follows a Softmax; Softmax must be the last layer")

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
        # tolist() gives Python floats, which yaml.safe_dump writes with repr: exact.
        return {"offset": offset.tolist(), "scale": scale.tolist()}
