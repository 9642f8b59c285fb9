"""HDF5 weight files: a TensorStore over the file's datasets (read as plain
datasets; links to other files and external data refused), and the spec
embedded in the file's attribute ``jaccli_spec``."""

from jaccli.errors import JaccliError
from jaccli.numeric import dtype_problem
from jaccli.messages import clip, short_list
from jaccli.formats.tensors import (
    EMBEDDED_SPEC,
    TensorStore,
    check_tensor_size,
    embedded_spec_text,
    tensor_bytes,
)

# Errors h5py raises for a damaged or unusual file (it has no single base class).
H5_ERRORS = (OSError, RuntimeError, KeyError, ValueError, TypeError, AttributeError)


def open_hdf5(path):
    """(TensorStore, embedded spec text or None, holds a Keras model's configuration)."""
    import h5py

    try:
        handle = h5py.File(path, "r")
    except H5_ERRORS as exc:
        raise JaccliError(f"{path}: not a readable HDF5 file ({clip(str(exc), 200)})") from None
    try:
        store = hdf5_store(handle, path)
        try:
            spec_text = handle.attrs.get(EMBEDDED_SPEC)
            keras = "model_config" in handle.attrs
        except H5_ERRORS as exc:
            raise JaccliError(f"{path}: damaged HDF5 file: cannot read its attributes "
                              f"({clip(str(exc), 200)})") from None
        what = f"the HDF5 attribute '{EMBEDDED_SPEC}'"
        return store, embedded_spec_text(spec_text, path, what), keras
    except BaseException:
        handle.close()
        raise


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
    except H5_ERRORS as exc:
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
                                  f"(it holds: {short_list(list(obj.keys()), 6)})")
            if not isinstance(obj, h5py.Dataset):
                return None
            if obj.external or obj.is_virtual:
                raise JaccliError(f"{where} keeps its data in external files; refused: "
                                  f"a model file is read on its own")
            if dtype_problem(obj.dtype):
                raise JaccliError(f"{where} {dtype_problem(obj.dtype)}")
            check_tensor_size(tensor_bytes(obj.shape or (), obj.dtype), f"{where} {obj.shape}")
            return obj[()]
        except JaccliError:
            raise
        except H5_ERRORS as exc:
            raise JaccliError(f"{where} cannot be read: {clip(str(exc), 200)}") from None

    return TensorStore(path, get, names, close=handle.close)
