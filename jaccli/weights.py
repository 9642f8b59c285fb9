"""Weight files (HDF5, NPZ) and where the spec comes from.

Nothing is executed: NPZ is opened with ``allow_pickle=False``, HDF5 is read
as plain datasets, YAML with the safe loader. ``open_model_file`` returns
the spec and a ``TensorStore`` (name -> array); the arrays are checked for
dtype and finiteness when a layer asks for them.
"""

import os
import zipfile
from pathlib import Path

import numpy as np

from .errors import JaccliError
from .spec import parse_spec, parse_spec_text, read_spec_file

EMBEDDED_SPEC = "jaccli_spec"
HDF5_SUFFIXES = (".h5", ".hdf5", ".keras")
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


class TensorStore:
    """Named tensors of one file, read lazily, checked when taken."""

    def __init__(self, path, getter, names):
        self.path = str(path)
        self._get = getter
        self.names = names

    def take(self, name):
        array = self._get(name)
        if array is None:
            raise JaccliError(f"{self.path}: no tensor '{name}' in the file "
                              f"(it has: {_short_list(self.names)})")
        return checked_tensor(array, f"{self.path}: tensor '{name}'")


def checked_tensor(array, where):
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


def _short_list(names, most=12):
    names = sorted(names)
    shown = ", ".join(names[:most]) or "nothing"
    return shown + (f", ... ({len(names)} in all)" if len(names) > most else "")


def _is_hdf5(path):
    with open(path, "rb") as handle:
        head = handle.read(8)
    return head == HDF5_SIGNATURE


def _open_hdf5(path):
    import h5py

    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise JaccliError(f"{path}: not a readable HDF5 file ({exc})") from None
    names = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            names.append(name)

    handle.visititems(visit)

    def get(name):
        obj = handle.get(name)
        if not isinstance(obj, h5py.Dataset):
            return None
        try:
            return obj[()]
        except (OSError, TypeError, ValueError) as exc:
            raise JaccliError(f"{path}: cannot read tensor '{name}': {exc}") from None

    spec_text = handle.attrs.get(EMBEDDED_SPEC)
    if isinstance(spec_text, bytes):
        spec_text = spec_text.decode("utf-8", errors="replace")
    keras = "model_config" in handle.attrs
    return TensorStore(path, get, names), spec_text, keras


def _open_npz(path):
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise JaccliError(f"{path}: not a readable NPZ file ({exc})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise JaccliError(f"{path}: holds a single array, not named tensors (expected NPZ)")
    names = [name for name in archive.files if name != EMBEDDED_SPEC]

    def get(name):
        if name not in archive.files:
            return None
        try:
            return archive[name]
        except ValueError:
            raise JaccliError(f"{path}: tensor '{name}' is a pickled object array; "
                              f"refused (jaccli never unpickles)") from None
        except (OSError, EOFError, zipfile.BadZipFile) as exc:
            raise JaccliError(f"{path}: tensor '{name}' is damaged ({exc})") from None

    spec_text = None
    if EMBEDDED_SPEC in archive.files:
        raw = get(EMBEDDED_SPEC)
        if raw.dtype.kind not in "US" or raw.size != 1:
            raise JaccliError(f"{path}: '{EMBEDDED_SPEC}' must be a 0-d string array")
        spec_text = raw.item()
        if isinstance(spec_text, bytes):
            spec_text = spec_text.decode("utf-8", errors="replace")
    return TensorStore(path, get, names), spec_text, False


def open_weight_file(path):
    """(TensorStore, embedded spec text or None, looks like a Keras model file)."""
    path = str(path)
    if not os.path.exists(path):
        raise JaccliError(f"{path}: no such model file")
    if os.path.isdir(path):
        raise JaccliError(f"{path}: is a directory, not a model file")
    if os.path.getsize(path) == 0:
        raise JaccliError(f"{path}: the model file is empty")
    if path.endswith(".keras"):
        return None, None, True
    if _is_hdf5(path):
        return _open_hdf5(path)
    if zipfile.is_zipfile(path):
        return _open_npz(path)
    raise JaccliError(f"{path}: not an HDF5 or NPZ weight file")


def sibling_spec_paths(path):
    stem = Path(path).with_suffix("")
    return [str(stem) + ".yaml", str(stem) + ".yml"]


def load_spec_and_tensors(path, spec_path=None):
    """Find the spec (contract 1, first match wins) and the tensors it names."""
    store, embedded, keras = open_weight_file(path)
    if spec_path is not None:
        spec = read_spec_file(spec_path)
    else:
        siblings = [p for p in sibling_spec_paths(path) if os.path.isfile(p)]
        if siblings:
            spec = read_spec_file(siblings[0])
        elif embedded is not None:
            spec = parse_spec_text(embedded, f"{path} ({EMBEDDED_SPEC})")
        elif keras:
            return _keras_model(path)
        else:
            tried = sibling_spec_paths(path) + [
                f"the '{EMBEDDED_SPEC}' entry inside {path}", "a Keras model config"]
            raise JaccliError(f"{path}: no spec found; tried --spec, {', '.join(tried)}")
    if store is None:  # a .keras archive with a user spec: read its weights file
        return spec, _keras_weights_store(path)
    return spec, store


def _keras_model(path):
    try:
        from .keras import read_keras
    except ImportError:
        raise JaccliError(f"{path}: Keras model files are not supported yet; give a --spec") from None
    spec_dict, tensors = read_keras(path)
    store = TensorStore(path, tensors.get, list(tensors))
    return parse_spec(spec_dict, f"{path} (Keras config)"), store


def _keras_weights_store(path):
    import io

    import h5py

    try:
        with zipfile.ZipFile(path) as archive:
            data = archive.read("model.weights.h5")
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise JaccliError(f"{path}: not a readable .keras archive ({exc})") from None
    handle = h5py.File(io.BytesIO(data), "r")
    names = []
    handle.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)

    def get(name):
        obj = handle.get(name)
        return obj[()] if isinstance(obj, h5py.Dataset) else None

    return TensorStore(path, get, names)
