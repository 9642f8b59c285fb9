"""What kind of file a model file is: told by the format's own structure first.

Each format is recognised by what its specification puts where, never by a
few bytes found somewhere else in the file:

- HDF5: its 8-byte signature at byte 0;
- safetensors: an 8-byte little-endian header length within the file, then
  that many bytes of JSON holding an object (``safetensors.is_safetensors``);
- zip (NPZ, a ``.keras`` archive, a ``torch.save`` file): the
  end-of-central-directory record whose comment ends the file, with the
  central directory it points to just before it (a ``PK\\x05\\x06`` inside a
  tensor's bytes is not one);
- NPY: its magic string at byte 0.

Only when no structure matches is a pickle recognised by its opening bytes
(PROTO, 0x80, then 2 to 5): a safetensors file whose header is 896 bytes
long opens with the bytes ``80 03`` too. Last, the extension decides
(case-insensitively), so that a damaged file gets its format's own error.
"""

import os
import zipfile

from jaccli.formats.safetensors import is_safetensors

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
NPY_MAGIC = b"\x93NUMPY"

# The zip end-of-central-directory record: signature, fixed part, comment of at most 64 KiB.
_EOCD_SIGNATURE = b"PK\x05\x06"
_EOCD_SIZE = 22
_MAX_COMMENT = 0xFFFF
_CENTRAL_DIRECTORY_SIGNATURE = b"PK\x01\x02"
_ZIP64 = 0xFFFFFFFF  # a size or offset kept in the Zip64 record instead

# Files only running code can read (torch.save, pickle, joblib).
CODE_FILE_SUFFIXES = {".pt": "torch", ".pth": "torch", ".ckpt": "torch",
                      ".pkl": "pickle", ".pickle": "pickle", ".joblib": "pickle"}
# Formats whose reader has errors of its own for a damaged file, or no structure to tell
# (ONNX is protobuf); a file not HDF5 or NPY is named neither.
_SUFFIX_KINDS = {".npz": "npz", ".safetensors": "safetensors", ".keras": "keras",
                 ".onnx": "onnx", **CODE_FILE_SUFFIXES}


def model_file_kind(path):
    """``hdf5``, ``safetensors``, ``npz``, ``keras``, ``npy``, ``onnx``, ``torch``,
    ``pickle`` (the last two: files only running code could read), or None."""
    path = str(path)
    with open(path, "rb") as handle:
        kind = _kind_by_structure(handle, os.fstat(handle.fileno()).st_size)
        if kind is None and _opens_as_a_pickle(handle):
            kind = "pickle"
    if kind == "zip":
        return _zip_kind(path)
    if kind == "pickle":  # a .pt file is refused as PyTorch's
        return CODE_FILE_SUFFIXES.get(suffix(path), kind)
    if kind is None:
        return _SUFFIX_KINDS.get(suffix(path))
    return kind


def suffix(path):
    """The extension, lower case: ``.NPZ`` is ``.npz``."""
    return os.path.splitext(str(path))[1].lower()


def is_hdf5(path):
    with open(path, "rb") as handle:
        return handle.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE


def is_zip(path):
    """Whether ``path`` ends as a zip archive does (see ``_ends_as_a_zip``)."""
    with open(path, "rb") as handle:
        return _ends_as_a_zip(handle, os.fstat(handle.fileno()).st_size)


def _kind_by_structure(handle, size):
    head = handle.read(len(HDF5_SIGNATURE))
    if head == HDF5_SIGNATURE:
        return "hdf5"
    if is_safetensors(handle, size):
        return "safetensors"
    if _ends_as_a_zip(handle, size):
        return "zip"
    if head.startswith(NPY_MAGIC):
        return "npy"
    return None


def _ends_as_a_zip(handle, size):
    """An end-of-central-directory record whose comment runs exactly to the end
    of the file, pointing at a central directory that starts right before it."""
    tail_size = min(size, _EOCD_SIZE + _MAX_COMMENT)
    handle.seek(size - tail_size)
    tail = handle.read(tail_size)
    # the last place a record fits, then each earlier one
    start = tail.rfind(_EOCD_SIGNATURE, 0, tail_size - _EOCD_SIZE + len(_EOCD_SIGNATURE))
    while start >= 0:
        if _is_end_record(handle, tail, start, size - tail_size + start):
            return True
        start = tail.rfind(_EOCD_SIGNATURE, 0, start)
    return False


def _is_end_record(handle, tail, start, position):
    record = tail[start:start + _EOCD_SIZE]
    comment = int.from_bytes(record[20:22], "little")
    if start + _EOCD_SIZE + comment != len(tail):
        return False
    directory_size = int.from_bytes(record[12:16], "little")
    directory_offset = int.from_bytes(record[16:20], "little")
    if _ZIP64 in (directory_size, directory_offset):
        return True  # the Zip64 record before this one holds them
    if directory_offset + directory_size > position:
        return False
    if directory_size == 0:
        return True  # an empty archive
    # Where the directory ends is certain (right before this record); data
    # prepended to the archive may shift where its offset says it starts.
    handle.seek(position - directory_size)
    return handle.read(len(_CENTRAL_DIRECTORY_SIGNATURE)) == _CENTRAL_DIRECTORY_SIGNATURE


def _opens_as_a_pickle(handle):
    handle.seek(0)
    head = handle.read(2)
    return len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def _zip_kind(path):
    """A zip archive: a torch.save file (it holds a data.pkl), a Keras archive, or NPZ."""
    if _zip_holds_a_pickle(path):
        return "torch"
    return "keras" if suffix(path) == ".keras" else "npz"


def _zip_holds_a_pickle(path):
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name == "data.pkl" or name.endswith("/data.pkl")
                       for name in archive.namelist())
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, RuntimeError, NotImplementedError):
        return False
