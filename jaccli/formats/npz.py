"""NPZ weight files: a TensorStore over the archive's NPY members (opened with
``allow_pickle=False``; an object array refused from its header), the spec
embedded as the member ``jaccli_spec``; and the NPY header reader the points
reader shares (jaccli.io.npy_points)."""

import struct
import tokenize
import zipfile
import zlib

import numpy as np

from jaccli.errors import JaccliError
from jaccli.messages import clip
from jaccli.formats.tensors import (
    EMBEDDED_SPEC,
    TensorStore,
    check_tensor_size,
    embedded_spec_text,
    tensor_bytes,
)

# Errors zipfile / zlib / numpy raise for a damaged archive member.
ZIP_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, RuntimeError,
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


def open_npz(path):
    try:
        archive = zipfile.ZipFile(path)
    except ZIP_ERRORS as exc:
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
    except ZIP_ERRORS as exc:
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
                nbytes = tensor_bytes(shape, dtype)
                if nbytes > info.file_size - header:
                    raise JaccliError(f"{where} is truncated: its header promises {nbytes:,} bytes "
                                      f"of data, the archive holds {info.file_size - header:,}")
                check_tensor_size(nbytes, f"{where} {shape}")
            with archive.open(info) as handle:
                return np.lib.format.read_array(handle, allow_pickle=False)
        except JaccliError:
            raise
        except ZIP_ERRORS as exc:
            raise JaccliError(f"{where} is damaged ({clip(str(exc), 200)})") from None

    spec_text = None
    if EMBEDDED_SPEC in members:
        raw = get(EMBEDDED_SPEC)
        if raw.dtype.kind not in "US" or raw.size != 1:
            raise JaccliError(f"{path}: '{EMBEDDED_SPEC}' must be a 0-d string array holding the "
                              f"YAML spec, not {raw.dtype} {raw.shape}")
        spec_text = embedded_spec_text(raw, path, f"'{EMBEDDED_SPEC}'")
    return TensorStore(path, get, names, close=archive.close), spec_text, False
