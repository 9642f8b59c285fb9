"""Read a Keras model file as a jaccli spec plus its tensors, without Keras.

A Keras model file needs no spec: when none is given (--spec, a spec file
beside the model, one embedded in the file), its own configuration is read.
Two layouts are read:

* the Keras 3 ``.keras`` archive: a zip holding ``config.json`` (the model's
  architecture) and ``model.weights.h5``, whose variables live in
  ``layers/<class name in snake case, made unique>/vars/<index>``, in the order
  the layer created them (``keras/src/saving/saving_lib.py``: ``_save_state``,
  ``_save_container_state``, ``Layer.save_own_variables``);
* the legacy HDF5 model file of ``model.save("m.h5")`` (Keras 2, tf.keras and
  Keras 3): a ``model_config`` JSON attribute and a ``model_weights`` group
  with one subgroup per layer, listing its datasets in a ``weight_names``
  attribute (``keras/src/legacy/saving/legacy_h5_format.py``). Weight names
  are ``dense/kernel:0`` in Keras 2 and ``sequential/dense/kernel`` or
  ``dense/kernel`` in Keras 3; only the last component is used.

A weights-only file (``model.save_weights``) is read with the model's
architecture JSON (``model.to_json()``: the same configuration, on its own)
by ``read_keras_json``; its weights are in one of the two layouts above.

A ``ReLU``/``LeakyReLU`` after ``relu``, ``sigmoid``, ``softplus`` or
``exponential`` is the identity there and is dropped (jaccli.formats.stack).

The configuration is parsed with ``json.loads`` and nothing else: no Keras
import, no deserialization, no pickle, no eval. A ``Lambda`` layer is refused
from its class name; its code is never looked at.

Supported: Sequential models and single-chain functional models built from
``InputLayer``, ``Dense``, ``Activation`` / ``ReLU`` / ``LeakyReLU`` / ``ELU`` /
``Softmax`` (folded into the preceding linear ``Dense``), ``Dropout`` and the
other layers that are the identity at inference, ``Flatten`` (of a vector),
``Normalization`` (before any ``Dense`` or ``BatchNormalization``: it becomes
the input scaling) and ``BatchNormalization`` (its inference map ``x * s + c``
is folded exactly).

``BatchNormalization`` is reported to the DenseStack (jaccli.formats.stack) with
its own tensors (``<layer>/gamma``, ``<layer>/beta``, ``<layer>/moving_mean``,
``<layer>/moving_variance``): a map after a linear ``Dense``, before the next
``Dense``, or of the outputs after the last activation. jaccli.formats.assemble
folds it, the parameters staying the file's tensors (gamma and beta included).
"""

from __future__ import annotations

import io
import json
import re
import zipfile

import h5py
import numpy as np

from jaccli.errors import JaccliError, param
from jaccli.formats.file_kinds import is_zip
from jaccli.formats.stack import DenseStack, checked_tensor
from jaccli.formats.spec import clip

# Keras activation names (as serialized in a layer config) -> ours.
# `gelu`: keras.activations.gelu(x, approximate=False) in Keras 3
# (keras/src/activations/activations.py) and tf-keras (tf_keras/activations.py),
# so a Dense(activation="gelu") computes the exact erf form.
# `leaky_relu` as a string: Keras 3 keras.activations.leaky_relu has
# negative_slope=0.2; tf-keras resolves it to tf.nn.leaky_relu, alpha=0.2.
_ACTIVATIONS = {
    "linear": ("linear", None),
    "sigmoid": ("sigmoid", None),
    "tanh": ("tanh", None),
    "relu": ("relu", None),
    "elu": ("elu", 1.0),
    "selu": ("selu", None),
    "softplus": ("softplus", None),
    "softsign": ("softsign", None),
    "swish": ("silu", None),
    "silu": ("silu", None),
    "gelu": ("gelu", None),
    "exponential": ("exp", None),
    "softmax": ("softmax", None),
    "softmax_v2": ("softmax", None),  # tf.nn.softmax's name in TF 2.x
    "leaky_relu": ("leaky_relu", 0.2),
}

# Modules under which Keras serializes its own built-in activation functions.
_BUILTIN_ACTIVATION_MODULES = (
    "keras.activations",
    "keras.src.activations",
    "keras.src.activations.activations",
    "tf_keras.activations",
    "builtins",
)

# Layers that compute the identity at inference time (no weights used).
_IDENTITY_LAYERS = (
    "Dropout",
    "AlphaDropout",
    "GaussianDropout",
    "GaussianNoise",
    "ActivityRegularization",
    "Identity",
    "Flatten",  # of a (batch, n) input: the input rank is checked separately
)

_SUPPORTED_LAYERS = (
    "Dense",
    "Activation",
    "ReLU",
    "LeakyReLU",
    "ELU",
    "Softmax",
    "Normalization",
    "BatchNormalization",
) + _IDENTITY_LAYERS

# Keras 3 backend.epsilon() default; Normalization divides by
# max(sqrt(variance), epsilon). The value is not stored in the model file.
_KERAS_EPSILON = 1e-7

_DAMAGED = (OSError, RuntimeError, KeyError, ValueError, TypeError, AttributeError, IndexError,
            EOFError, zipfile.BadZipFile, NotImplementedError)

# Refuse to inflate more than this from a zip member (archives of small MLPs
# are far below it; this guards against decompression bombs).
_MAX_MEMBER_BYTES = 1 << 30


def read_keras(path: str) -> tuple[dict, dict[str, np.ndarray]]:
    """Read a Keras model file (.keras archive, or legacy HDF5 full-model file with a
    `model_config` attribute) and return (spec, tensors).

    ``spec`` is a spec as YAML would give it (inputs and outputs as counts,
    layout ``in_out``); ``tensors`` maps every tensor name the spec uses
    (``<layer name>/kernel``, ``<layer name>/bias``) to a float64 array.
    Raises JaccliError, with one line naming the file, for anything that is
    not a readable Keras model made of supported layers.
    """
    fname = str(path)
    try:
        if is_zip(path):
            return _read_archive(path, fname)
        try:
            is_h5 = h5py.is_hdf5(path)
        except OSError as exc:
            raise JaccliError(f"{fname}: cannot read the file ({exc})") from None
        if is_h5:
            return _read_legacy_h5(path, fname)
    except _DAMAGED as exc:
        raise _damaged(fname, exc, "Keras model file") from None
    if fname.lower().endswith(".keras"):
        raise JaccliError(f"{fname}: damaged Keras archive (not a valid zip file)")
    raise JaccliError(
        f"{fname}: not a Keras model file (neither a .keras zip archive nor HDF5)"
    )


def read_keras_json(json_path, weights_path, config=None):
    """(spec, tensors) of a Keras architecture JSON (``model.to_json()``) and the
    HDF5 file its weights were saved in.

    The weights file may be Keras 2's ``model.save_weights("model.h5")`` (one
    group per layer name, as in a model file's ``model_weights``), Keras 3's
    ``model.save_weights("model.weights.h5")`` (``layers/<class>/vars/<i>``,
    as inside a ``.keras`` archive), or a whole model file. ``config``: the
    JSON already parsed (by ``keras_json_config``).
    """
    json_path, weights_path = str(json_path), str(weights_path)
    config = keras_json_config(json_path) if config is None else config
    if config is None:
        raise JaccliError(f"{json_path}: not a Keras model JSON (model.to_json())")
    source = f"{weights_path} (with {json_path})"
    try:
        chain, n_inputs = _model_chain(config, json_path)
    except _DAMAGED as exc:
        raise _damaged(json_path, exc, "Keras model JSON") from None
    try:
        with h5py.File(weights_path, "r") as h5:
            if "layers" in h5 or "_layer_checkpoint_dependencies" in h5:
                weights = _ArchiveWeights(h5, _all_layers(config), weights_path)
            else:
                weights = _LegacyWeights(h5["model_weights"] if "model_weights" in h5 else h5,
                                         weights_path)
            return _build(chain, n_inputs, weights, source)
    except _DAMAGED as exc:
        raise _damaged(source, exc, "Keras weights or model JSON") from None


def keras_json_config(path):
    """The model config in a Keras architecture JSON file, or None if ``path``
    does not hold one (a YAML spec, other JSON, an unreadable file)."""
    from jaccli.formats.spec import MAX_SPEC_BYTES

    try:
        with open(path, "rb") as handle:
            text = handle.read(MAX_SPEC_BYTES + 1)
    except OSError:
        return None
    if not text.removeprefix(b"\xef\xbb\xbf").lstrip().startswith(b"{") or len(text) > MAX_SPEC_BYTES:
        return None
    try:
        config = json.loads(text.decode("utf-8-sig"))
    except (ValueError, RecursionError):
        return None
    return config if isinstance(config, dict) and "class_name" in config else None


def _damaged(fname, exc, what):
    # h5py, zipfile and json raise these for a damaged file or a config of
    # unexpected types; the user can only replace the file.
    detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    return JaccliError(f"{fname}: damaged or unexpected {what} ({detail})")


# --------------------------------------------------------------------------
# Reading the two file layouts
# --------------------------------------------------------------------------


def _read_archive(path, fname):
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            if "config.json" not in names:
                raise JaccliError(f"{fname}: the Keras archive has no config.json")
            config_text = _zip_read(zf, "config.json", fname)
            if "model.weights.h5" not in names:
                if "model.weights.npz" in names:
                    raise JaccliError(
                        f"{fname}: weights stored as model.weights.npz are not "
                        "supported (save with the default .h5 weights)"
                    )
                raise JaccliError(
                    f"{fname}: the Keras archive has no model.weights.h5"
                )
            weights_bytes = _zip_read(zf, "model.weights.h5", fname)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
        raise JaccliError(f"{fname}: damaged Keras archive ({exc})") from None
    config = _parse_json(config_text, fname, "config.json")
    try:
        h5 = h5py.File(io.BytesIO(weights_bytes), "r")
    except OSError:
        raise JaccliError(
            f"{fname}: model.weights.h5 in the archive is not a readable HDF5 file"
        ) from None
    with h5:
        chain, n_inputs = _model_chain(config, fname)
        weights = _ArchiveWeights(h5, _all_layers(config), fname)
        return _build(chain, n_inputs, weights, fname)


def _read_legacy_h5(path, fname):
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise JaccliError(f"{fname}: cannot open the HDF5 file ({exc})") from None
    with h5:
        if "model_config" not in h5.attrs:
            raise JaccliError(
                f"{fname}: no 'model_config' attribute: not a Keras model file "
                f"(a weights-only file needs a spec, see {param('spec')})"
            )
        raw = h5.attrs["model_config"]
        if isinstance(raw, np.ndarray) and raw.shape == ():
            raw = raw[()]
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", errors="replace")
        if not isinstance(raw, str):
            raise JaccliError(f"{fname}: the 'model_config' attribute is not text")
        config = _parse_json(raw, fname, "model_config")
        group = h5["model_weights"] if "model_weights" in h5 else h5
        chain, n_inputs = _model_chain(config, fname)
        weights = _LegacyWeights(group, fname)
        return _build(chain, n_inputs, weights, fname)


def _zip_read(zf, member, fname):
    info = zf.getinfo(member)
    if info.file_size > _MAX_MEMBER_BYTES:
        raise JaccliError(
            f"{fname}: {member} in the archive is too large "
            f"({info.file_size} bytes uncompressed)"
        )
    return zf.read(member)


def _parse_json(text, fname, what):
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    try:
        config = json.loads(text)
    except ValueError as exc:
        raise JaccliError(f"{fname}: {what} is not valid JSON ({exc})") from None
    except RecursionError:
        raise JaccliError(f"{fname}: {what} is nested too deeply to be a Keras model") from None
    if not isinstance(config, dict) or "class_name" not in config:
        raise JaccliError(f"{fname}: {what} does not describe a Keras model")
    return config


# --------------------------------------------------------------------------
# The model configuration: from Sequential / Functional to a chain of layers
# --------------------------------------------------------------------------


def _layer_name(entry):
    config = entry.get("config") if isinstance(entry.get("config"), dict) else {}
    return str(entry.get("name") or config.get("name") or "?")


def _layer_class(entry):
    return str(entry.get("class_name", "?"))


def _all_layers(model_config):
    """All layer entries of the model's config, in the model's layer order."""
    config = model_config.get("config")
    layers = config.get("layers") if isinstance(config, dict) else config
    if not isinstance(layers, list):
        return []
    return [e for e in layers if isinstance(e, dict)]


def _model_chain(model_config, fname):
    """(layers from input to output without the InputLayer, input width or None)."""
    cls = _layer_class(model_config)
    layers = _all_layers(model_config)
    if cls == "Sequential":
        chain = layers
    elif cls in ("Functional", "Model"):
        chain = _functional_chain(model_config.get("config") or {}, layers, fname)
    else:
        raise JaccliError(
            f"{fname}: model class '{cls}' is not supported: jaccli reads "
            "Sequential and functional Keras models only"
        )
    if not chain:
        raise JaccliError(f"{fname}: the model configuration lists no layers")

    input_shape = None
    body = []
    for i, entry in enumerate(chain):
        config = entry.get("config") if isinstance(entry.get("config"), dict) else {}
        if _layer_class(entry) == "InputLayer":
            if i != 0:
                _refuse(fname, entry, "an InputLayer inside the model")
            input_shape = config.get("batch_shape") or config.get("batch_input_shape")
            continue
        if input_shape is None and i == 0:
            # Keras 2 Sequential without an InputLayer keeps the shape on layer 0.
            build = entry.get("build_config") or {}
            input_shape = config.get("batch_input_shape") or build.get("input_shape")
        body.append(entry)
    # Refuse unknown layers before anything else, so the message names them.
    for entry in body:
        if _layer_class(entry) not in _SUPPORTED_LAYERS:
            why = "jaccli reads Dense stacks only"
            if _layer_class(entry) == "Lambda":
                why += " (Lambda code is never run)"
            _refuse(fname, entry, why)
    n_inputs = None
    if isinstance(input_shape, list):
        if len(input_shape) != 2:
            shape = tuple(input_shape)
            raise JaccliError(
                f"{fname}: the model's input has shape {shape}: jaccli reads "
                "models of a vector input (batch, n) only"
            )
        if isinstance(input_shape[1], int):
            n_inputs = input_shape[1]
    return body, n_inputs


def _tensor_sources(obj, out):
    """Append the names of the layers whose output tensors `obj` refers to.

    Keras 3 nodes hold ``{"class_name": "__keras_tensor__", "config":
    {"keras_history": [layer, node, tensor]}}``; Keras 2 nodes hold
    ``[layer, node, tensor, kwargs]`` lists.
    """
    if isinstance(obj, dict):
        if obj.get("class_name") == "__keras_tensor__":
            history = (obj.get("config") or {}).get("keras_history") or ["?"]
            out.append(str(history[0]))
            return
        for value in obj.values():
            _tensor_sources(value, out)
    elif isinstance(obj, list):
        if (
            len(obj) >= 3
            and isinstance(obj[0], str)
            and isinstance(obj[1], int)
            and isinstance(obj[2], int)
        ):
            out.append(obj[0])
            for extra in obj[3:]:
                _tensor_sources(extra, out)
            return
        for value in obj:
            _tensor_sources(value, out)


def _endpoints(spec):
    """Layer names of a functional model's input_layers / output_layers."""
    if isinstance(spec, dict):
        spec = list(spec.values())
    if (
        isinstance(spec, list)
        and len(spec) >= 3
        and isinstance(spec[0], str)
        and isinstance(spec[1], int)
    ):
        return [spec[0]]  # a single [name, node, tensor] (Keras 3)
    names = []
    _tensor_sources(spec, names)
    return names


def _functional_chain(config, layers, fname):
    inputs = _endpoints(config.get("input_layers"))
    outputs = _endpoints(config.get("output_layers"))
    if len(inputs) != 1 or len(outputs) != 1:
        raise JaccliError(
            f"{fname}: the model has {len(inputs)} inputs and {len(outputs)} "
            "outputs: jaccli reads single-input, single-output chains only"
        )
    by_name = {_layer_name(e): e for e in layers}
    chain = []
    name = outputs[0]
    while True:
        entry = by_name.get(name)
        if entry is None:
            raise JaccliError(
                f"{fname}: the model configuration refers to an unknown layer '{name}'"
            )
        if any(entry is seen for seen in chain):
            _refuse(fname, entry, "a cycle in the layer graph")
        chain.append(entry)
        nodes = entry.get("inbound_nodes") or []
        if _layer_class(entry) == "InputLayer" or (name == inputs[0] and not nodes):
            break
        if len(nodes) != 1:
            _refuse(
                fname,
                entry,
                f"a layer used {len(nodes)} times (shared layers are not supported)",
            )
        sources = []
        _tensor_sources(nodes[0], sources)
        if len(sources) != 1:
            raise JaccliError(
                f"{fname}: layer '{name}' ({_layer_class(entry)}) is not supported: "
                f"it takes {len(sources)} inputs, jaccli reads single-chain models only"
            )
        name = sources[0]
    chain.reverse()
    on_chain = {id(e) for e in chain}
    for entry in layers:
        if id(entry) not in on_chain:
            raise JaccliError(
                f"{fname}: layer '{_layer_name(entry)}' ({_layer_class(entry)}) is "
                "not supported: it is off the single input-to-output chain "
                "(branches are not supported)"
            )
    return chain


def _refuse(fname, entry, why):
    raise JaccliError(
        f"{fname}: layer '{_layer_name(entry)}' ({_layer_class(entry)}) is not "
        f"supported: {why}"
    )


# --------------------------------------------------------------------------
# Weights: by layer and role ("kernel", "bias", "gamma", ...)
# --------------------------------------------------------------------------


def _weight_roles(entry):
    """The variables a layer saves, in the order it creates them (Keras 3
    ``.keras`` files address them by that index)."""
    cls = _layer_class(entry)
    config = entry.get("config") or {}
    if cls == "Dense":
        return ["kernel", "bias"] if config.get("use_bias", True) else ["kernel"]
    if cls == "BatchNormalization":
        roles = []
        if config.get("scale", True):
            roles.append("gamma")
        if config.get("center", True):
            roles.append("beta")
        return roles + ["moving_mean", "moving_variance"]
    if cls == "Normalization":
        return ["mean", "variance", "count"]
    return []


def _read_dataset(dataset, fname, where, home):
    """A dataset's values as checked float64, after refusing data kept in other
    files or too large to hold."""
    from jaccli.limits import check_memory

    if dataset.file != home.file or dataset.external or dataset.is_virtual:
        raise JaccliError(f"{fname}: '{where}' keeps its data in external files; refused")
    nbytes = int(np.prod(dataset.shape or (), dtype=object)) * max(dataset.dtype.itemsize, 1)
    check_memory(nbytes, f"{fname}: '{where}' {dataset.shape}",
                 "a dense MLP's weights are far smaller: is this the right file?")
    return checked_tensor(dataset[()], f"{fname}: weight '{where}'")


class _ArchiveWeights:
    """Variables of a ``.keras`` archive's model.weights.h5."""

    def __init__(self, h5, all_layers, fname):
        self.h5 = h5
        self.fname = fname
        # Keras addresses each layer by its class name in snake case, made
        # unique in layer order (dense, dense_1, ...), not by the layer name.
        self.paths = {}
        used = {}
        for entry in all_layers:
            base = _snake_case(_layer_class(entry))
            if base in used:
                used[base] += 1
                unique = f"{base}_{used[base]}"
            else:
                used[base] = 0
                unique = base
            self.paths[_layer_name(entry)] = unique

    def get(self, entry):
        name = _layer_name(entry)
        where = f"layers/{self.paths.get(name, '?')}/vars"
        group = self.h5.get(where)
        if group is None:
            # tf.keras 2.13-2.15 archives (see H5IOStore.get).
            legacy = where.replace("layers/", "_layer_checkpoint_dependencies/", 1)
            group = self.h5.get(legacy)
            if group is not None:
                where = legacy
        if not isinstance(group, h5py.Group):
            raise JaccliError(
                f"{self.fname}: model.weights.h5 has no '{where}' group for "
                f"layer '{name}'"
            )
        stored_name = group.attrs.get("name")
        if isinstance(stored_name, bytes):
            stored_name = stored_name.decode("utf-8", errors="replace")
        if stored_name is not None and stored_name != name:
            raise JaccliError(
                f"{self.fname}: model.weights.h5 '{where}' belongs to layer "
                f"'{stored_name}', not '{name}': weights and config do not match"
            )
        arrays = {}
        for index, role in enumerate(_weight_roles(entry)):
            dataset = group.get(str(index))
            if not isinstance(dataset, h5py.Dataset):
                raise JaccliError(
                    f"{self.fname}: model.weights.h5 has no '{where}/{index}' "
                    f"({role} of layer '{name}')"
                )
            arrays[role] = _read_dataset(dataset, self.fname, f"{where}/{index}", self.h5)
        return arrays


class _LegacyWeights:
    """Datasets of a legacy HDF5 model file's ``model_weights`` group, or of the
    root of a Keras 2 ``save_weights`` file (the same layout)."""

    def __init__(self, group, fname):
        self.group = group
        self.fname = fname
        self.prefix = group.name.strip("/")  # 'model_weights', or '' for the root

    def _path(self, *parts):
        return "/".join(filter(None, (self.prefix,) + parts))

    def get(self, entry):
        name = _layer_name(entry)
        layer_group = self.group.get(name)
        if not isinstance(layer_group, h5py.Group):
            if not _weight_roles(entry):
                return {}
            raise JaccliError(
                f"{self.fname}: no weights group '{self._path(name)}' for layer '{name}'"
            )
        arrays = {}
        for weight_name in _attribute_list(layer_group, "weight_names"):
            dataset = layer_group.get(weight_name)
            where = self._path(name, weight_name)
            if not isinstance(dataset, h5py.Dataset):
                raise JaccliError(f"{self.fname}: missing weight dataset '{where}'")
            # 'dense/kernel:0' (Keras 2), 'sequential/dense/kernel' (Keras 3).
            role = weight_name.rsplit("/", 1)[-1].split(":", 1)[0]
            arrays[role] = _read_dataset(dataset, self.fname, where, self.group)
        for role in _weight_roles(entry):
            if role not in arrays and role != "count":
                raise JaccliError(
                    f"{self.fname}: layer '{name}' has no '{role}' weight in "
                    f"'{self._path(name)}'"
                )
        return arrays


def _attribute_list(group, name):
    """A list-of-strings attribute; Keras splits big ones into name0, name1, ...
    (legacy_h5_format.save_attributes_to_hdf5_group)."""
    if name in group.attrs:
        values = list(np.atleast_1d(group.attrs[name]))
    else:
        values, chunk = [], 0
        while f"{name}{chunk}" in group.attrs:
            values.extend(np.atleast_1d(group.attrs[f"{name}{chunk}"]))
            chunk += 1
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


def _snake_case(name):
    # keras/src/utils/naming.py: to_snake_case
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


# --------------------------------------------------------------------------
# From layers to the spec: activations and maps, reported to the DenseStack
# --------------------------------------------------------------------------


def _activation(identifier, fname, entry):
    """Our (name, alpha) for a serialized Keras activation."""
    if identifier is None:
        return "linear", None
    if isinstance(identifier, dict):
        module = str(identifier.get("module") or "")
        inner = identifier.get("config")
        if (
            identifier.get("class_name") == "function"
            and isinstance(inner, str)
            and module in _BUILTIN_ACTIVATION_MODULES
        ):
            identifier = inner
        else:
            _refuse(fname, entry, f"a custom activation ({clip(identifier)})")
    if not isinstance(identifier, str) or identifier not in _ACTIVATIONS:
        _refuse(
            fname,
            entry,
            f"activation '{identifier}' has no exact jaccli equivalent",
        )
    return _ACTIVATIONS[identifier]


def _is_last_axis(axis):
    if isinstance(axis, list) and len(axis) == 1:
        axis = axis[0]
    return axis in (-1, 1)


def _layer_activation(entry, fname):
    """(name, alpha) of an activation-only layer (Activation, ReLU, LeakyReLU, ELU, Softmax)."""
    cls = _layer_class(entry)
    config = entry.get("config") or {}
    if cls == "Activation":
        return _activation(config.get("activation"), fname, entry)
    if cls == "ReLU":
        slope = config.get("negative_slope", 0.0) or 0.0
        if config.get("max_value") is not None or (config.get("threshold") or 0.0) != 0:
            _refuse(fname, entry, "ReLU with max_value or threshold")
        return ("relu", None) if slope == 0 else ("leaky_relu", float(slope))
    if cls == "LeakyReLU":
        # Keras 3 saves negative_slope, Keras 2 alpha (both default 0.3).
        slope = config.get("negative_slope", config.get("alpha"))
        if slope is None:
            _refuse(fname, entry, "LeakyReLU without a saved slope")
        return "leaky_relu", float(slope)
    if cls == "ELU":
        # Keras 3's ELU layer does not save alpha; Keras reloads it with the
        # class default 1.0, and so do we.
        return "elu", float(config.get("alpha", 1.0))
    # Softmax: _model_chain refused every other class.
    if not _is_last_axis(config.get("axis", -1)):
        _refuse(fname, entry, f"softmax over axis {config.get('axis')}")
    return "softmax", None


def _add_batchnorm(stack, entry, arrays, fname, where):
    """BatchNormalization at inference, its tensors named '<layer>/gamma' and so on:
    keras/src/backend/*/nn.py batch_normalization computes x * inv + (beta - mean * inv)
    with inv = gamma / sqrt(variance + epsilon)."""
    config = entry.get("config") or {}
    if not _is_last_axis(config.get("axis", -1)):
        _refuse(fname, entry, f"normalization over axis {config.get('axis')}")
    if config.get("renorm"):
        _refuse(fname, entry, "batch renormalization (renorm=True)")
    name = _layer_name(entry)
    roles = {"weight": "gamma", "bias": "beta", "mean": "moving_mean", "var": "moving_variance"}
    stack.batchnorm(arrays["moving_mean"], arrays["moving_variance"],
                    float(config.get("epsilon", 1e-3)), arrays.get("gamma"), arrays.get("beta"),
                    names={field: f"{name}/{role}" for field, role in roles.items()}, where=where)


def _normalization_scaling(entry, arrays, fname):
    """Normalization as (offset, scale): y = (x - offset) / scale."""
    config = entry.get("config") or {}
    if config.get("invert"):
        _refuse(fname, entry, "Normalization with invert=True")
    axis = config.get("axis", [-1])
    if axis not in (None, []) and not _is_last_axis(axis):
        _refuse(fname, entry, f"normalization over axis {axis}")
    if config.get("mean") is not None:
        where = f"{fname}: layer '{_layer_name(entry)}' (Normalization)"
        mean = checked_tensor(config["mean"], f"{where} mean")
        variance = checked_tensor(config.get("variance"), f"{where} variance")
    else:
        mean, variance = arrays["mean"], arrays["variance"]
    # keras/src/layers/preprocessing/normalization.py (and tf-keras):
    # (x - mean) / maximum(sqrt(variance), backend.epsilon())
    return mean, np.maximum(np.sqrt(variance), _KERAS_EPSILON)


def _check_dense(entry, arrays, fname):
    """Refuse quantized weights and a kernel that disagrees with the layer's units."""
    config = entry.get("config") or {}
    policy = config.get("dtype")
    policy_name = ""
    if isinstance(policy, dict):
        policy_name = str((policy.get("config") or {}).get("name", ""))
        if "Quantized" in str(policy.get("class_name", "")):
            policy_name = policy_name or "quantized"
    if any(q in policy_name for q in ("int8", "int4", "float8", "quantized", "gptq")):
        _refuse(fname, entry, f"quantized weights (dtype policy '{policy_name}')")
    kernel = arrays["kernel"]
    units = config.get("units")
    if kernel.ndim != 2 or (units is not None and kernel.shape[1] != units):
        raise JaccliError(
            f"{fname}: kernel of layer '{_layer_name(entry)}' has shape {kernel.shape}, the "
            f"config says {units} units"
        )


def _build(chain, n_inputs, weights, fname):
    """(spec, tensors) of the layer chain: each layer reported to a DenseStack in order."""
    stack = DenseStack(fname, layout="in_out", dense="Dense", inputs=n_inputs)
    for entry in chain:
        cls = _layer_class(entry)
        where = f"layer '{_layer_name(entry)}' ({cls})"
        if cls in _IDENTITY_LAYERS:
            stack.identity()
        elif cls == "Dense":
            arrays = weights.get(entry)
            _check_dense(entry, arrays, fname)
            act, alpha = _activation((entry.get("config") or {}).get("activation"), fname, entry)
            name = _layer_name(entry)
            stack.dense(arrays["kernel"], arrays.get("bias"), where=where,
                        weight_name=f"{name}/kernel", bias_name=f"{name}/bias")
            stack.activation(act, alpha, where=where)
        elif cls == "Normalization":
            _add_normalization(stack, entry, weights, fname, where)
        elif cls == "BatchNormalization":
            _add_batchnorm(stack, entry, weights.get(entry), fname, where)
        else:
            act, alpha = _layer_activation(entry, fname)
            stack.activation(act, alpha, where=where)
    return stack.build()


def _add_normalization(stack, entry, weights, fname, where):
    """Normalization as the input scaling, one value per input."""
    from_config = (entry.get("config") or {}).get("mean") is not None
    arrays = {} if from_config else weights.get(entry)
    offset, scale = _normalization_scaling(entry, arrays, fname)
    width = stack.width
    if width is None:
        width = offset.size if offset.ndim == 1 else None
    if width is None:
        _refuse(fname, entry, "the number of inputs is unknown")
    offset = np.broadcast_to(offset, (width,)).astype(np.float64)
    scale = np.broadcast_to(scale, (width,)).astype(np.float64)
    stack.scale_inputs(offset, scale, where=where)
