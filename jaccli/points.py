"""Reading the points: CSV, TSV, NPY, standard input, or ``--at`` inline.

A CSV/TSV may start with a header. If the header names every input of the
spec, those columns are taken by name (in the spec's order) and the rest
are ignored; otherwise the file must have exactly n columns, in order.
NPY files are memory-mapped, so a huge file is read chunk by chunk.
"""

import io
import os

import numpy as np

from .errors import JaccliError

TEXT_SUFFIXES = {".csv": ",", ".tsv": "\t", ".txt": "\t"}


def parse_inline_point(text, n_inputs):
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise JaccliError(f"--at {text!r}: expected {n_inputs} comma-separated numbers") from None
    if len(values) != n_inputs:
        raise JaccliError(f"--at {text!r}: the model has {n_inputs} inputs, got {len(values)} numbers")
    return np.array([values])


def read_points(path, input_names, stdin=None):
    """An (N, n) array (a read-only memory map for NPY) of the points in ``path``."""
    n_inputs = len(input_names)
    if path == "-":
        data = stdin.read() if stdin is not None else b""
        return parse_text_points(data, ",", "<stdin>", input_names)
    if os.path.isdir(path):
        raise JaccliError(f"{path}: is a directory, not a points file")
    if not os.path.isfile(path):
        raise JaccliError(f"{path}: no such points file")
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".npy":
        return read_npy_points(path, n_inputs)
    if suffix not in TEXT_SUFFIXES:
        raise JaccliError(f"{path}: unknown points format '{suffix}' "
                          f"(use .csv, .tsv, .txt or .npy)")
    with open(path, "rb") as handle:
        data = handle.read()
    return parse_text_points(data, TEXT_SUFFIXES[suffix], path, input_names, suffix == ".txt")


def read_npy_points(path, n_inputs):
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        reason = "holds Python objects; refused" if "pickle" in str(exc) else str(exc)
        raise JaccliError(f"{path}: not a readable NPY file ({reason})") from None
    except (OSError, EOFError) as exc:
        raise JaccliError(f"{path}: not a readable NPY file ({exc})") from None
    if not isinstance(array, np.ndarray):
        raise JaccliError(f"{path}: expected a single NPY array")
    if array.dtype.kind not in "fiu":
        raise JaccliError(f"{path}: the array has dtype {array.dtype}, not real numbers")
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] != n_inputs:
        raise JaccliError(f"{path}: the array has shape {array.shape}; expected (N, {n_inputs}) "
                          f"or ({n_inputs},)")
    if array.shape[0] == 0:
        raise JaccliError(f"{path}: zero points")
    return array


def _decode(data, source):
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"
    else:
        encoding = "utf-8-sig"  # a UTF-8 byte order mark is dropped
    if b"\x00" in data and encoding != "utf-16":
        raise JaccliError(f"{source}: binary data, not a text table")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise JaccliError(f"{source}: not UTF-8 text (byte {exc.start})") from None


def _is_number(cell):
    try:
        float(cell)
        return True
    except ValueError:
        return False


def _split(line, delimiter):
    cells = line.split(delimiter) if delimiter else line.split()
    return [cell.strip().strip('"').strip("'").strip() for cell in cells]


def parse_text_points(data, delimiter, source, input_names, whitespace_ok=False):
    text = _decode(data, source)
    lines = text.splitlines()
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        raise JaccliError(f"{source}: zero points (the file is empty)")
    if whitespace_ok and delimiter == "\t" and "\t" not in lines[first]:
        delimiter = None  # a .txt written by numpy.savetxt: space-separated
    head = _split(lines[first], delimiter)
    has_header = not all(_is_number(cell) for cell in head)
    body_start = first + 1 if has_header else first
    columns = _select_columns(head if has_header else None, len(head), input_names, source)
    body = "\n".join(lines[body_start:])
    if not body.strip():
        raise JaccliError(f"{source}: zero points (a header and no rows)")
    try:
        with np.errstate(all="ignore"):
            table = np.loadtxt(io.StringIO(body), delimiter=delimiter, ndmin=2,
                               dtype=np.float64, comments="#", quotechar='"')
    except ValueError as exc:
        raise JaccliError(f"{source}: {_loadtxt_problem(exc, body_start)}") from None
    if table.shape[1] != len(head):
        raise JaccliError(f"{source}: the first row has {len(head)} columns, the data "
                          f"{table.shape[1]}")
    return table[:, columns] if columns is not None else table


def _loadtxt_problem(exc, line_offset):
    """loadtxt counts rows from the start of what it was given: count from the file's."""
    import re

    message = str(exc).splitlines()[0]

    def shift(match):
        return f"{match.group(1)} {int(match.group(2)) + line_offset}"

    return re.sub(r"(row|line) (\d+)", shift, message).replace("row", "line")


def _select_columns(header, n_columns, input_names, source):
    """Column indices to take, or None for all columns in order."""
    n_inputs = len(input_names)
    if header is not None and all(name in header for name in input_names):
        return [header.index(name) for name in input_names]
    if n_columns == n_inputs:
        return None
    if header is not None:
        missing = [name for name in input_names if name not in header]
        raise JaccliError(f"{source}: the header does not name the inputs {missing} and has "
                          f"{n_columns} columns; expected the inputs by name or exactly "
                          f"{n_inputs} columns")
    raise JaccliError(f"{source}: {n_columns} columns; the model has {n_inputs} inputs "
                      f"({', '.join(input_names)})")
