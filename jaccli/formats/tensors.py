"""Weight files (HDF5, NPZ, safetensors) and where the spec comes from.

Nothing is executed: NPZ is opened with ``allow_pickle=False``, HDF5 is read
as plain datasets, safetensors as raw bytes (jaccli.formats.safetensors),
YAML with the safe loader. ``load_spec_and_tensors`` returns the spec and a
``TensorStore`` (name -> array) holding the tensors the spec names, read
before the file is closed; each array is checked for dtype and finiteness
when a layer takes it.
"""

import os
import struct
import tokenize
import zipfile
import zlib

import numpy as np

from jaccli.errors import JaccliError, JaccliWarning, param
from jaccli.formats.file_kinds import is_hdf5, model_file_kind, suffix
from jaccli.formats.safetensors import open_safetensors
from jaccli.formats.stack import checked_tensor
from jaccli.formats.spec import clip, parse_spec, parse_spec_text, read_spec_file, spec_from

EMBEDDED_SPEC = "jaccli_spec"


class TensorStore:
    """Named tensors of one file, read when asked for, checked when taken.

    ``close`` (if given) releases the open file; ``read`` first copies out the
    tensors that will be taken.
    """

    def __init__(self, path, getter, names, close=None):
        self.path = str(path)
        self._get = getter
        self.names = names
        self._close = close

    def read(self, names):
        """A store of ``names`` read now, which outlives this store's open file.

        A tensor that cannot be read keeps its error until it is taken, so
        errors still come in the order the layers take their tensors.
        """
        values = {}
        for name in dict.fromkeys(names):
            try:
                values[name] = self._get(name)
            except JaccliError as exc:
                values[name] = exc

        def get(name):
            value = values.get(name)
            if isinstance(value, JaccliError):
                raise value
            return value

        return TensorStore(self.path, get, self.names)

    def close(self):
        if self._close is not None:
            close, self._close = self._close, None
            close()

    def take(self, name):
        array = self._get(name)
        if array is None:
            raise JaccliError(f"{self.path}: no tensor '{name}' in the file "
                              f"(it has: {_short_list(self.names)})")
        return checked_tensor(array, f"{self.path}: tensor '{name}'")


def _short_list(names, most=12):
    names = sorted(names)
    shown = ", ".join(names[:most]) or "nothing"
    return shown + (f", ... ({len(names)} in all)" if len(names) > most else "")


def _tensor_bytes(shape, dtype):
    return int(np.prod(shape, dtype=object)) * max(np.dtype(dtype).itemsize, 1)


def _check_tensor_size(nbytes, where):
    from jaccli.limits import check_memory

    check_memory(nbytes, where, "a dense MLP's weights are far smaller: is this the right file?")


# Errors h5py raises for a damaged or unusual file (it has no single base class).
_H5_ERRORS = (OSError, RuntimeError, KeyError, ValueError, TypeError, AttributeError)


def _open_hdf5(path):
    import h5py

    try:
        handle = h5py.File(path, "r")
    except _H5_ERRORS as exc:
        raise JaccliError(f"{path}: not a readable HDF5 file ({clip(str(exc), 200)})") from None
    try:
        store = hdf5_store(handle, path)
        try:
            spec_text = handle.attrs.get(EMBEDDED_SPEC)
            keras = "model_config" in handle.attrs
        except _H5_ERRORS as exc:
            raise JaccliError(f"{path}: damaged HDF5 file: cannot read its attributes "
                              f"({clip(str(exc), 200)})") from None
        return store, _spec_text(spec_text, path, f"the HDF5 attribute '{EMBEDDED_SPEC}'"), keras
    except BaseException:
        handle.close()
        raise


def _spec_text(value, path, what):
    """An embedded spec as text: a str, bytes, or a one-element string array."""
    if value is None:
        return None
    if isinstance(value, np.ndarray) and value.dtype.kind in "USO" and value.size == 1:
        if value.dtype.kind == "U":  # UCS-4 code units: a damaged file may hold impossible ones
            codes = np.ascontiguousarray(value.astype(value.dtype.newbyteorder("="))).view(np.uint32)
            if codes.size and int(codes.max()) > 0x10FFFF:
                raise JaccliError(f"{path}: {what} is not valid text (a code point beyond U+10FFFF)")
        value = value.reshape(()).item()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        return value
    raise JaccliError(f"{path}: {what} must be a string holding the YAML spec, "
                      f"not {type(value).__name__} {clip(value)}")


def hdf5_store(handle, path, prefix=""):
    """A TensorStore over the datasets of an open HDF5 file (links to other files
    refused); closing the store closes the file."""
    import h5py

    names = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            names.append(name)

    try:
        handle.visititems(visit)
    except _H5_ERRORS as exc:
        raise JaccliError(f"{path}: damaged HDF5 file ({clip(str(exc), 200)})") from None

    def get(name):
        where = f"{path}: {prefix}tensor '{name}'"
        try:
            parts = [part for part in name.split("/") if part]
            for depth in range(1, len(parts) + 1):
                link = handle.get("/".join(parts[:depth]), getlink=True)
                if link is None:
                    return None
                if isinstance(link, h5py.ExternalLink):
                    raise JaccliError(f"{where} is a link to another file ({link.filename}); "
                                      f"refused: a model file is read on its own")
            obj = handle.get(name)
            if obj is None:
                return None
            if isinstance(obj, h5py.Group):
                raise JaccliError(f"{where} is an HDF5 group, not a dataset "
                                  f"(it holds: {_short_list(list(obj.keys()), 6)})")
            if not isinstance(obj, h5py.Dataset):
                return None
            if obj.external or obj.is_virtual:
                raise JaccliError(f"{where} keeps its data in external files; refused: "
                                  f"a model file is read on its own")
            if obj.dtype.kind not in "fiuc":
                raise JaccliError(f"{where} has dtype {obj.dtype}, not numbers")
            _check_tensor_size(_tensor_bytes(obj.shape or (), obj.dtype), f"{where} {obj.shape}")
            return obj[()]
        except JaccliError:
            raise
        except _H5_ERRORS as exc:
            raise JaccliError(f"{where} cannot be read: {clip(str(exc), 200)}") from None

    return TensorStore(path, get, names, close=handle.close)


# Errors zipfile / zlib / numpy raise for a damaged archive member.
_ZIP_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, RuntimeError,
               NotImplementedError, KeyError, struct.error, SyntaxError, tokenize.TokenError)
# What numpy's NPY header parser (tokenize + ast.literal_eval) raises for a damaged header.
NPY_HEADER_ERRORS = (ValueError, OSError, EOFError, SyntaxError, tokenize.TokenError,
                     RecursionError, struct.error, TypeError)


def read_npy_header(handle):
    """(shape, fortran_order, dtype, header bytes) of an NPY stream; never unpickles."""
    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
    else:
        reader = _private_header_reader()
        if version != (3, 0) or reader is None:
            raise ValueError(f"unsupported NPY format version {version[0]}.{version[1]}")
        shape, fortran, dtype = reader(handle, version)
    return shape, fortran, dtype, handle.tell()


def _private_header_reader():
    """numpy's reader of any NPY version (3.0: UTF-8 headers), wherever this numpy keeps it."""
    for module in ("numpy.lib._format_impl", "numpy.lib.format"):
        try:
            reader = getattr(__import__(module, fromlist=["_"]), "_read_array_header", None)
        except ImportError:
            continue
        if reader is not None:
            return reader
    return None


def _open_npz(path):
    try:
        archive = zipfile.ZipFile(path)
    except _ZIP_ERRORS as exc:
        raise JaccliError(f"{path}: not a readable NPZ file ({clip(str(exc), 200)})") from None
    try:
        return _npz_store(archive, path)
    except BaseException:
        archive.close()
        raise


def _npz_store(archive, path):
    """(TensorStore, embedded spec text or None, False) of an open NPZ archive."""
    members = {}
    try:
        for info in archive.infolist():
            if not info.is_dir():
                members[info.filename[:-4] if info.filename.endswith(".npy") else info.filename] = info
    except _ZIP_ERRORS as exc:
        raise JaccliError(f"{path}: not a readable NPZ file ({clip(str(exc), 200)})") from None
    names = [name for name in members if name != EMBEDDED_SPEC]

    def get(name):
        info = members.get(name)
        if info is None:
            return None
        where = f"{path}: tensor '{name}'"
        try:
            with archive.open(info) as handle:
                shape, fortran, dtype, header = read_npy_header(handle)
                if dtype.hasobject:
                    raise JaccliError(f"{where} is a pickled object array; refused "
                                      f"(jaccli never unpickles)")
                nbytes = _tensor_bytes(shape, dtype)
                if nbytes > info.file_size - header:
                    raise JaccliError(f"{where} is truncated: its header promises {nbytes:,} bytes "
                                      f"of data, the archive holds {info.file_size - header:,}")
                _check_tensor_size(nbytes, f"{where} {shape}")
            with archive.open(info) as handle:
                return np.lib.format.read_array(handle, allow_pickle=False)
        except JaccliError:
            raise
        except _ZIP_ERRORS as exc:
            raise JaccliError(f"{where} is damaged ({clip(str(exc), 200)})") from None

    spec_text = None
    if EMBEDDED_SPEC in members:
        raw = get(EMBEDDED_SPEC)
        if raw.dtype.kind not in "US" or raw.size != 1:
            raise JaccliError(f"{path}: '{EMBEDDED_SPEC}' must be a 0-d string array holding the "
                              f"YAML spec, not {raw.dtype} {raw.shape}")
        spec_text = _spec_text(raw, path, f"'{EMBEDDED_SPEC}'")
    return TensorStore(path, get, names, close=archive.close), spec_text, False


def open_weight_file(path):
    """(TensorStore, embedded spec text or None, looks like a Keras model file)."""
    path = str(path)
    if not os.path.exists(path):
        raise JaccliError(f"{path}: no such model file")
    if os.path.isdir(path):
        raise JaccliError(f"{path}: is a directory, not a model file")
    if os.path.getsize(path) == 0:
        raise JaccliError(f"{path}: the model file is empty")
    kind = model_file_kind(path)
    refuse_code_file(path, kind)
    if kind == "keras":
        return None, None, True
    if kind == "onnx":  # read in load_spec_and_tensors: with no spec, as a graph
        return None, None, False
    if kind == "hdf5":
        return _open_hdf5(path)
    if kind == "npz":
        return _open_npz(path)
    if kind == "safetensors":
        return open_safetensors(path)
    if kind == "npy":
        raise JaccliError(f"{path}: a single NPY array, not named tensors: save the "
                          f"weights with numpy.savez (NPZ) or as HDF5")
    raise JaccliError(f"{path}: not an HDF5, NPZ or safetensors weight file")


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


def load_spec_and_tensors(path, spec_path=None):
    """The spec and the tensors it names; the file is closed when this returns.

    The spec is the first found of: ``spec_path`` (--spec: a YAML spec, or a
    Keras architecture JSON; from Python also a dict or a YAML text,
    ``spec.spec_from``), a spec file beside the model
    (``sibling_spec_paths``), a Keras JSON ``<stem>.json`` beside an HDF5
    weights file, the spec embedded in the weight file, a Keras model's own
    configuration, an ONNX model's graph, a Keras JSON ``model.json`` in the
    weights file's folder.
    """
    store, embedded, keras = open_weight_file(path)
    try:
        if spec_path is not None:
            config = _keras_json(spec_path)
            if config is not None:
                return _keras_json_model(spec_path, config, path, store)
            spec = spec_from(spec_path)
        else:
            siblings = [p for p in sibling_spec_paths(path) if os.path.isfile(p)]
            stem_json, folder_json = _keras_jsons_beside(path, store)
            if siblings:
                spec = read_spec_file(siblings[0])
            elif stem_json is not None:
                return _keras_json_model(*stem_json, path, store)
            elif embedded is not None:
                spec = parse_spec_text(embedded, f"{path} ({EMBEDDED_SPEC})")
            elif keras:
                return _keras_model(path)
            elif _is_onnx(path):
                return _onnx_model(path)
            elif folder_json is not None:
                return _keras_json_model(*folder_json, path, store)
            else:
                raise _no_spec(path, _is_hdf5_store(store, path))
        if store is None:  # a .keras archive or an ONNX model with a user spec
            store = _onnx_initializers(path) if _is_onnx(path) else _keras_weights_store(path)
        used = _tensor_names(spec)
        _warn_unused(store, used)
        return spec, store.read(used)
    finally:
        if store is not None:
            store.close()


def _no_spec(path, hdf5):
    stem = os.path.splitext(str(path))[0]
    if hdf5:
        beside = [stem + ".{yaml,yml,json}"] + keras_json_paths(path)[1:]
    else:
        beside = [stem + ".{yaml,yml}"]
    tried = [param("spec")] + beside + [
        f"the '{EMBEDDED_SPEC}' entry inside {path}", "a Keras model config"]
    return JaccliError(f"{path}: no spec found: the file holds only weights; pass {param('spec')} "
                       f"SPEC.yaml, or for Keras weights {param('spec')} with the model's JSON "
                       f"(model.to_json()); tried {', '.join(tried)}")


def _keras_jsons_beside(path, store):
    """(<stem>.json, model.json) beside an HDF5 weights file: each (path, its
    Keras model config), or None unless it exists and holds one."""
    found = [None, None]
    if _is_hdf5_store(store, path):
        for i, candidate in enumerate(keras_json_paths(path)):
            config = _keras_json(candidate)
            found[i] = None if config is None else (candidate, config)
    return found


def _is_hdf5_store(store, path):
    return store is not None and os.path.isfile(path) and is_hdf5(path)


def _keras_json(path):
    from jaccli.formats.keras import keras_json_config

    is_file = isinstance(path, (str, os.PathLike)) and os.path.isfile(path)
    return keras_json_config(path) if is_file else None


def _keras_json_model(json_path, config, path, store):
    """The spec and tensors of a Keras architecture JSON (``config``, parsed) and
    the HDF5 weights file ``path``."""
    from jaccli.formats.keras import read_keras_json

    if not _is_hdf5_store(store, path):
        raise JaccliError(f"{json_path}: a Keras model JSON goes with the HDF5 weights file Keras "
                          f"saved (model.save_weights); {path} is not HDF5")
    spec_dict, tensors = read_keras_json(json_path, path, config)
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
            f"{store.path}: the spec never uses the tensor(s) {_short_list(unused)}; "
            f"is it the spec of this file (a layer missing)?"), stacklevel=2)


def _keras_model(path):
    from jaccli.formats.keras import read_keras

    spec_dict, tensors = read_keras(path)
    store = TensorStore(path, tensors.get, list(tensors))
    return parse_spec(spec_dict, f"{path} (Keras config)"), store


def _is_onnx(path):
    return suffix(path) == ".onnx"


def _onnx_model(path):
    """An ONNX graph read with no spec; the notes say what was chosen (a classifier's output)."""
    from jaccli.formats.onnx import onnx_spec_and_tensors

    spec_dict, tensors, notes = onnx_spec_and_tensors(path)
    spec = parse_spec(spec_dict, f"{path} (ONNX graph)")
    spec.notes = tuple(notes)
    return spec, TensorStore(path, tensors.get, list(tensors))


def _onnx_initializers(path):
    """An ONNX model's initializers by name, for a spec given by the user."""
    from jaccli.formats.onnx import read_initializers

    getter, names = read_initializers(path)
    return TensorStore(path, getter, names)


def _keras_weights_store(path):
    import io

    import h5py

    from jaccli.formats.keras import _zip_read

    try:
        with zipfile.ZipFile(path) as archive:
            if "model.weights.h5" not in archive.namelist():
                raise JaccliError(f"{path}: the Keras archive has no model.weights.h5")
            data = _zip_read(archive, "model.weights.h5", path)
    except _ZIP_ERRORS as exc:
        raise JaccliError(f"{path}: not a readable .keras archive ({clip(str(exc), 200)})") from None
    try:
        handle = h5py.File(io.BytesIO(data), "r")
    except _H5_ERRORS:
        raise JaccliError(f"{path}: model.weights.h5 in the archive is not a readable "
                          f"HDF5 file") from None
    try:
        return hdf5_store(handle, path, "model.weights.h5 ")
    except BaseException:
        handle.close()
        raise
