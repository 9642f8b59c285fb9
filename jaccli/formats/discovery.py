"""Where the spec comes from, and which reader a model file goes to.

``load_spec_and_tensors`` tells the file's kind (jaccli.formats.file_kinds:
its structure first, then its extension, case-insensitively), opens its
tensors (jaccli.formats.hdf5, .npz, .safetensors; a Keras or ONNX model is
read whole by jaccli.formats.keras or jaccli.formats.onnx), finds the spec
(given, beside the file, embedded in it, the model's own configuration) and
returns it with a TensorStore holding the tensors it names, read before the
file is closed.

Nothing is executed: NPZ is opened with ``allow_pickle=False``, HDF5 is read
as plain datasets, safetensors as raw bytes, YAML with the safe loader, files
only running code could read (torch.save, pickle) are refused unread.
"""

import os
import re

from jaccli.errors import JaccliError, JaccliWarning, param
from jaccli.formats.file_kinds import model_file_kind, suffix
from jaccli.formats.hdf5 import open_hdf5
from jaccli.formats.npz import open_npz
from jaccli.formats.safetensors import open_safetensors
from jaccli.formats.stack import named_columns
from jaccli.formats.spec import parse_spec, parse_spec_text, read_spec_file, spec_from
from jaccli.formats.tensors import EMBEDDED_SPEC, TensorStore
from jaccli.messages import short_list

# The readers of Keras and ONNX models are imported when such a model is
# read (they bring h5py or onnx: most runs never need them).

# The tensor store of each kind of weight file: (TensorStore, embedded spec text
# or None, holds a Keras model's configuration).
_STORES = {"hdf5": open_hdf5, "npz": open_npz, "safetensors": open_safetensors}


def open_weight_file(path):
    """(kind, TensorStore or None, embedded spec text or None, is a Keras model file).

    The kind is jaccli.formats.file_kinds's; a ``.keras`` archive and an ONNX
    model have no store (each is read whole: with no spec, as a model).
    """
    path = str(path)
    if _URL.match(path):
        raise JaccliError(f"{path}: URLs are not read: download the file first")
    if not os.path.exists(path):
        raise JaccliError(f"{path}: no such model file")
    if os.path.isdir(path):
        raise JaccliError(f"{path}: is a directory, not a model file")
    if os.path.getsize(path) == 0:
        raise JaccliError(f"{path}: the model file is empty")
    kind = model_file_kind(path)
    refuse_code_file(path, kind)
    if kind in ("keras", "onnx"):
        return kind, None, None, kind == "keras"
    if kind in _STORES:
        return (kind, *_STORES[kind](path))
    if kind == "npy":
        raise JaccliError(f"{path}: a single NPY array, not named tensors: save the "
                          f"weights with numpy.savez (NPZ) or as HDF5")
    if suffix(path) in _SPEC_SUFFIXES or _is_spec_text(path):
        raise JaccliError(f"{path}: this is a spec: pass it with {param('spec')} and the "
                          "weights file as the model")
    raise JaccliError(f"{path}: not an HDF5, NPZ or safetensors weight file")


# A URL (s3://, gs://, http(s)://, file://): jaccli reads local files only.
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_SPEC_SUFFIXES = (".yaml", ".yml")


def _is_spec_text(path):
    """Whether a file of no known kind starts as a spec does (a YAML mapping with layers)."""
    with open(path, "rb") as handle:
        head = handle.read(4096)
    return b"layers:" in head and (b"inputs:" in head or b"outputs:" in head)


# Files only running code can read (torch.save, pickle, joblib), refused before
# anything in them is read (jaccli.formats.file_kinds tells them).
CODE_FILE_ADVICE = {
    "torch": ("a PyTorch file (torch.save: pickled Python objects)",
              "export the model with jaccli.export.from_torch(module, 'model.npz') and use that"),
    "pickle": ("a Python pickle",
               "export the model with jaccli.export.from_sklearn(estimator, 'model.npz') "
               "(scikit-learn) or jaccli.export.from_torch(module, 'model.npz') (PyTorch)"),
}


def refuse_code_file(path, kind):
    """Refuse a file of ``kind`` torch or pickle, saying how to export it. Nothing is unpickled."""
    if kind in CODE_FILE_ADVICE:
        what, advice = CODE_FILE_ADVICE[kind]
        raise JaccliError(f"{path}: {what}, which only running its code could read; jaccli "
                          f"never unpickles: {advice}")


def sibling_spec_paths(path):
    """The spec files beside a model file (model.yaml, model.yml), which win over its embedded spec."""
    stem = os.path.splitext(str(path))[0]  # not pathlib: "./model" keeps its "./"
    return [stem + ".yaml", stem + ".yml"]


def keras_json_paths(path):
    """The Keras architecture JSONs that may stand beside an HDF5 weights file:
    ``<stem>.json`` (which wins over the spec embedded in the file) and
    ``model.json`` in the same folder (tried after everything else)."""
    stem = os.path.splitext(str(path))[0]
    folder = os.path.dirname(str(path))
    generic = os.path.join(folder, "model.json") if folder else "model.json"
    return [stem + ".json"] + ([generic] if generic != stem + ".json" else [])


def load_spec_and_tensors(path, spec_path=None, output_name=None):
    """The spec and the tensors it names; the file is closed when this returns.

    The spec is the first found of: ``spec_path`` (--spec: a YAML spec, or a
    Keras architecture JSON; from Python also a dict or a YAML text,
    ``spec.spec_from``), a spec file beside the model
    (``sibling_spec_paths``), a Keras JSON ``<stem>.json`` beside an HDF5
    weights file, the spec embedded in the weight file, a Keras model's own
    configuration, an ONNX model's graph, a Keras JSON ``model.json`` in the
    weights file's folder. ``output_name``: the ONNX graph output or Keras output layer to
    read (jaccli.load's).
    """
    kind, store, embedded, keras = open_weight_file(path)
    hdf5 = kind == "hdf5"
    try:
        if spec_path is not None:
            config = _keras_json(spec_path)
            if config is not None:
                return _keras_json_model(spec_path, config, path, hdf5, output_name)
            spec = spec_from(spec_path)
        else:
            siblings = [p for p in sibling_spec_paths(path) if os.path.isfile(p)]
            stem_json, folder_json = _keras_jsons_beside(path, hdf5)
            if siblings:
                spec = read_spec_file(siblings[0])
            elif stem_json is not None:
                return _keras_json_model(*stem_json, path, hdf5, output_name)
            elif embedded is not None:
                spec = parse_spec_text(embedded, f"{path} ({EMBEDDED_SPEC})")
            elif keras:
                return _keras_model(path, output_name)
            elif kind == "onnx":
                return _onnx_model(path, output_name)
            elif folder_json is not None:
                return _keras_json_model(*folder_json, path, hdf5, output_name)
            else:
                raise _no_spec(path, hdf5)
        if output_name is not None:
            raise JaccliError(f"{spec.source}: {param('output_name')} picks one output of an "
                              "ONNX graph or a Keras model with several; a spec names the "
                              "model's outputs itself")
        if store is None:  # a .keras archive or an ONNX model with a user spec
            store = _onnx_initializers(path) if kind == "onnx" else _keras_weights_store(path)
        used = _tensor_names(spec)
        _warn_unused(store, used)
        return spec, store.read(used)
    finally:
        if store is not None:
            store.close()


def _no_spec(path, hdf5):
    stem = os.path.splitext(str(path))[0]
    if suffix(path) == ".safetensors":  # a PyTorch state dict, most often
        return JaccliError(
            f"{path}: no spec found: the file holds only weights; pass {param('spec')} SPEC.yaml "
            f"naming its tensors, with 'layout: out_in' for a PyTorch state dict (nn.Linear "
            f"stores (out, in)), or put it beside the file as {stem}.yaml")
    if hdf5:
        beside = [stem + ".{yaml,yml,json}"] + keras_json_paths(path)[1:]
    else:
        beside = [stem + ".{yaml,yml}"]
    tried = [param("spec")] + beside + [
        f"the '{EMBEDDED_SPEC}' entry inside {path}", "a Keras model config"]
    return JaccliError(f"{path}: no spec found: the file holds only weights; pass {param('spec')} "
                       f"SPEC.yaml, or for Keras weights {param('spec')} with the model's JSON "
                       f"(model.to_json()); tried {', '.join(tried)}")


def _keras_jsons_beside(path, hdf5):
    """(<stem>.json, model.json) beside an HDF5 weights file: each (path, its
    Keras model config), or None unless it exists and holds one."""
    found = [None, None]
    if hdf5:
        for i, candidate in enumerate(keras_json_paths(path)):
            config = _keras_json(candidate)
            found[i] = None if config is None else (candidate, config)
    return found


def _keras_json(path):
    from jaccli.formats.keras import keras_json_config

    is_file = isinstance(path, (str, os.PathLike)) and os.path.isfile(path)
    return keras_json_config(path) if is_file else None


def _keras_json_model(json_path, config, path, hdf5, output_name=None):
    """The spec and tensors of a Keras architecture JSON (``config``, parsed) and
    the HDF5 weights file ``path``."""
    from jaccli.formats.keras import read_keras_json

    if not hdf5:
        raise JaccliError(f"{json_path}: a Keras model JSON goes with the HDF5 weights file Keras "
                          f"saved (model.save_weights); {path} is not HDF5")
    spec_dict, tensors = read_keras_json(json_path, path, config, output_name)
    _name_outputs(spec_dict, output_name)
    return parse_spec(spec_dict, f"{json_path} (Keras model JSON)"), \
        TensorStore(path, tensors.get, list(tensors))


def _tensor_names(spec):
    """The tensors a spec's layers take, in the order they take them."""
    return spec.parameter_names + spec.constants


# Keras files keep the optimizer's state beside the weights: not the network's tensors.
TRAINING_STATE = ("optimizer_weights/", "optimizer/")


def _warn_unused(store, used):
    """Warn about tensors the spec never takes (a 2-layer spec against a 3-layer file)."""
    import warnings

    used = set(used)
    unused = [name for name in store.names
              if name not in used and not name.startswith(TRAINING_STATE)]
    if unused:
        warnings.warn(JaccliWarning(
            f"{store.path}: the spec never uses the tensor(s) {short_list(unused)}; "
            f"is it the spec of this file (a layer missing)?"), stacklevel=2)


def _keras_model(path, output_name=None):
    from jaccli.formats.keras import read_keras

    spec_dict, tensors = read_keras(path, output_name)
    _name_outputs(spec_dict, output_name)
    store = TensorStore(path, tensors.get, list(tensors))
    return parse_spec(spec_dict, f"{path} (Keras config)"), store


def _name_outputs(spec_dict, output_name):
    """A chosen output's columns named after it (a Keras output layer's name)."""
    if output_name is not None and isinstance(spec_dict.get("outputs"), int):
        names = named_columns(output_name, spec_dict["outputs"])
        spec_dict["outputs"] = names if names is not None else spec_dict["outputs"]


def _onnx_model(path, output_name=None):
    """An ONNX graph read with no spec; the notes say what was chosen (a classifier's output)."""
    from jaccli.formats.onnx import onnx_spec_and_tensors

    spec_dict, tensors, notes = onnx_spec_and_tensors(path, output_name)
    spec = parse_spec(spec_dict, f"{path} (ONNX graph)")
    spec.notes = tuple(notes)
    return spec, TensorStore(path, tensors.get, list(tensors))


def _onnx_initializers(path):
    """An ONNX model's initializers by name, for a spec given by the user."""
    from jaccli.formats.onnx import read_initializers

    getter, names = read_initializers(path)
    return TensorStore(path, getter, names)


def _keras_weights_store(path):
    from jaccli.formats.keras import keras_weights_store

    return keras_weights_store(path)
