"""Safetensors files (``.safetensors``): named tensors, read without the safetensors package.

The format (https://github.com/huggingface/safetensors) is an 8-byte
little-endian header length N, N bytes of a JSON object, then the raw tensor
bytes. The JSON maps each tensor name to ``{"dtype": "F32", "shape": [16, 2],
"data_offsets": [begin, end]}`` (offsets into the raw bytes, little-endian,
C order); the optional ``__metadata__`` entry maps strings to strings, and
jaccli keeps its spec there as ``jaccli_spec`` (a YAML text).

A reader of our own, of about a hundred lines, rather than the safetensors
package: the format is that simple, the package would be one more compiled
dependency for every user, and its errors (a Rust panic message, an exception
per problem) would need translating into one line each anyway. The checks are
the package's own (``safetensors/src/tensor.py``'s ``validate``): a header
length within the file and at most 100 MB, strict UTF-8 JSON, each tensor's
bytes exactly ``prod(shape) * itemsize``, the tensors covering the data
exactly with no gap or overlap; plus duplicate keys and offsets that are not
a multiple of the element size (the package writes them aligned), refused here.
"""

import json
import os

import numpy as np

from jaccli.errors import JaccliError
from jaccli.messages import clip
from jaccli.formats.tensors import EMBEDDED_SPEC, TensorStore, check_tensor_size

# The safetensors package's own limit (MAX_HEADER_SIZE); a small MLP's header is a few hundred bytes.
MAX_HEADER_BYTES = 100_000_000
METADATA = "__metadata__"

# Safetensors dtype -> the little-endian NumPy dtype its bytes are (BF16: the
# high half of a float32, widened when read).
DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2",
    "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
    "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1",
}
# Dtypes the format defines that are not real numbers jaccli can compute with.
REFUSED_DTYPES = {
    "BOOL": "booleans", "C64": "complex numbers", "C128": "complex numbers",
    "F8_E4M3": "8-bit floats", "F8_E5M2": "8-bit floats", "F8_E8M0": "8-bit floats",
    "F4": "4-bit floats", "F6_E2M3": "6-bit floats", "F6_E3M2": "6-bit floats",
}


def is_safetensors(handle, size):
    """Whether the open file (``size`` bytes) is built as safetensors: an 8-byte
    little-endian length N within the file and the limit, then N bytes of UTF-8
    JSON holding an object. The reader checks the entries, with its own errors."""
    handle.seek(0)
    head = handle.read(9)
    if len(head) < 9 or head[8:9] != b"{":
        return False
    length = int.from_bytes(head[:8], "little")
    if length > min(size - 8, MAX_HEADER_BYTES):
        return False
    handle.seek(8)
    try:
        return isinstance(json.loads(handle.read(length).decode("utf-8")), dict)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False


def open_safetensors(path):
    """(TensorStore, embedded spec text or None, False) of a safetensors file."""
    handle = open(path, "rb")
    try:
        size = os.fstat(handle.fileno()).st_size
        header = _read_header(handle, size, path)
        entries, metadata = _parse_header(header, path)
        data_start = 8 + len(header)
        _check_layout(entries, size - data_start, path)
    except BaseException:
        handle.close()
        raise

    def get(name):
        entry = entries.get(name)
        if entry is None:
            return None
        dtype, shape, (begin, end) = entry
        check_tensor_size(end - begin, f"{path}: tensor '{name}' {tuple(shape)}")
        handle.seek(data_start + begin)
        raw = handle.read(end - begin)
        if len(raw) != end - begin:
            raise JaccliError(f"{path}: tensor '{name}': the file changed while it was read")
        array = np.frombuffer(raw, dtype=DTYPES[dtype]).reshape(shape)
        if dtype == "BF16":  # bfloat16 is the upper 16 bits of a float32: widening is exact
            array = (array.astype(np.uint32) << 16).view(np.float32)
        return array

    spec_text = metadata.get(EMBEDDED_SPEC)
    return TensorStore(path, get, list(entries), close=handle.close), spec_text, False


def _read_header(handle, size, path):
    if size < 8:
        raise JaccliError(f"{path}: not a safetensors file ({size} bytes; the header length "
                          f"alone takes 8)")
    length = int.from_bytes(handle.read(8), "little")
    if length > MAX_HEADER_BYTES:
        raise JaccliError(f"{path}: the safetensors header length is {length:,} bytes; "
                          f"at most {MAX_HEADER_BYTES:,} are read (is this a safetensors file?)")
    if length > size - 8:
        raise JaccliError(f"{path}: the safetensors header length ({length:,} bytes) runs past "
                          f"the end of the file ({size:,} bytes): truncated or not safetensors")
    return handle.read(length)


def _no_duplicates(pairs):
    """json.loads's object hook: a key given twice is refused, not overwritten."""
    result = {}
    for key, value in pairs:
        if key in result:
            raise _Duplicate(key)
        result[key] = value
    return result


class _Duplicate(Exception):
    pass


def _parse_header(header, path):
    """({tensor name: (dtype, shape, (begin, end))}, metadata {str: str})."""
    try:
        text = header.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JaccliError(f"{path}: the safetensors header is not UTF-8 (byte {exc.start})") from None
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates)
    except _Duplicate as exc:
        raise JaccliError(f"{path}: the safetensors header names {clip(exc.args[0])!r} twice") from None
    except ValueError as exc:
        raise JaccliError(f"{path}: the safetensors header is not valid JSON ({clip(str(exc), 120)})") \
            from None
    except RecursionError:
        raise JaccliError(f"{path}: the safetensors header is nested too deeply") from None
    if not isinstance(data, dict):
        raise JaccliError(f"{path}: the safetensors header is not a JSON object")
    metadata = data.pop(METADATA, None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise JaccliError(f"{path}: the safetensors '{METADATA}' must map names to strings")
    return {name: _entry(name, info, path) for name, info in data.items()}, metadata


def _entry(name, info, path):
    where = f"{path}: tensor '{clip(name)}'"
    if not isinstance(info, dict):
        raise JaccliError(f"{where}: its header entry is {clip(info)}, not "
                          f"{{dtype, shape, data_offsets}}")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if not isinstance(dtype, str):  # a list or an object is no dtype name (and is unhashable)
        raise JaccliError(f"{where} has dtype {clip(dtype)}, not a dtype name such as F64")
    if dtype in REFUSED_DTYPES:
        raise JaccliError(f"{where} has dtype {dtype} ({REFUSED_DTYPES[dtype]}); jaccli needs "
                          f"real weights: F64, F32, F16, BF16 or integers")
    if dtype not in DTYPES:
        raise JaccliError(f"{where} has unknown dtype {clip(dtype)} (known: {', '.join(DTYPES)})")
    if not isinstance(shape, list) or not all(_is_count(n) for n in shape):
        raise JaccliError(f"{where} has shape {clip(shape)}, not a list of sizes")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_is_count, offsets))
            and offsets[0] <= offsets[1]):
        raise JaccliError(f"{where} has data_offsets {clip(offsets)}, not [begin, end]")
    itemsize = np.dtype(DTYPES[dtype]).itemsize
    expected = int(np.prod(shape, dtype=object)) * itemsize
    if offsets[1] - offsets[0] != expected:
        raise JaccliError(f"{where}: data_offsets {offsets} span {offsets[1] - offsets[0]:,} bytes; "
                          f"shape {shape} of {dtype} takes {expected:,}")
    if offsets[0] % itemsize:
        raise JaccliError(f"{where}: data_offsets start at byte {offsets[0]:,}, not a multiple of "
                          f"its {itemsize}-byte {dtype} elements (misaligned)")
    return dtype, shape, tuple(offsets)


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_layout(entries, data_bytes, path):
    """The tensors cover the data bytes exactly, in order, with no gap or overlap."""
    position, previous = 0, None
    for name, (_, _, (begin, end)) in sorted(entries.items(), key=lambda item: item[1][2]):
        if end > data_bytes:
            raise JaccliError(f"{path}: tensor '{clip(name)}' has data_offsets [{begin}, {end}] past "
                              f"the end of the data ({data_bytes:,} bytes): truncated file?")
        if begin < position:
            raise JaccliError(f"{path}: tensors '{clip(previous)}' and '{clip(name)}' overlap "
                              f"(bytes {begin:,} to {position:,})")
        if begin > position:
            raise JaccliError(f"{path}: bytes {position:,} to {begin:,} of the data belong to no "
                              f"tensor (before '{clip(name)}')")
        position, previous = end, name
    if position != data_bytes:
        raise JaccliError(f"{path}: {data_bytes - position:,} bytes after the last tensor belong "
                          f"to no tensor")


def write_safetensors(stream, tensors, metadata):
    """Write float64 ``tensors`` (name -> array) and ``metadata`` (str -> str) as safetensors.

    As the safetensors package lays them out: the header padded with spaces to
    a multiple of 8 bytes, then each tensor's bytes in turn, so every tensor
    starts aligned.
    """
    header, arrays, offset = {METADATA: dict(metadata)}, [], 0
    for name, array in tensors.items():
        array = np.ascontiguousarray(array, dtype="<f8")
        header[name] = {"dtype": "F64", "shape": list(array.shape),
                        "data_offsets": [offset, offset + array.nbytes]}
        arrays.append(array)
        offset += array.nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    stream.write(len(text).to_bytes(8, "little"))
    stream.write(text)
    for array in arrays:
        stream.write(array.tobytes())
