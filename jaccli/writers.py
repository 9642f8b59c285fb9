"""Writing results: CSV/TSV (repr-exact), NPY (memory-mapped), NPZ.

A file output is written to a temporary file in the target directory and
renamed into place only when it is complete: an error or Ctrl-C leaves no
partial file and never touches an existing one. Standard output is written
chunk by chunk (a pipeline consumer checks the exit status).
"""

import os
import sys
import tempfile

import numpy as np

from .errors import JaccliError

FORMATS = {".csv": "csv", ".tsv": "tsv", ".npy": "npy", ".npz": "npz"}
DELIMITERS = {"csv": ",", "tsv": "\t"}


def output_format(path, fmt=None):
    """The format for ``-o path`` (``--format`` wins over the extension)."""
    if fmt:
        return fmt
    if path in (None, "-"):
        return "csv"
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in FORMATS:
        raise JaccliError(f"{path}: unknown output format '{suffix}' "
                          f"(use .csv, .tsv, .npy or .npz, or --format)")
    return FORMATS[suffix]


def check_output_path(path, inputs):
    """Refuse, before any work, an output that cannot be written or would clobber an input."""
    if path in (None, "-"):
        return
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise JaccliError(f"{path}: the directory {directory} does not exist")
    if os.path.isdir(path):
        raise JaccliError(f"{path}: is a directory")
    if not os.access(directory, os.W_OK):
        raise JaccliError(f"{path}: the directory {directory} is not writable")
    target = os.path.realpath(path)
    for item in inputs:
        if item and item != "-" and os.path.exists(item) and os.path.realpath(item) == target:
            raise JaccliError(f"{path}: is one of the inputs; refusing to overwrite it")


def format_rows(rows, delimiter):
    """Shortest round-trip text of every float (Python's repr), one line per row."""
    return "".join(delimiter.join(map(repr, row)) + "\n" for row in rows.tolist())


def header_line(columns, delimiter):
    """The header row; a name holding the delimiter (dy/dW0[0,1]) is quoted, as CSV does."""
    import csv
    import io

    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\n").writerow(columns)
    return buffer.getvalue()


class AtomicFile:
    """A temporary file beside ``path``, renamed onto it by ``commit``."""

    def __init__(self, path):
        self.path = path
        directory = os.path.dirname(os.path.abspath(path))
        fd, self.temp_path = tempfile.mkstemp(
            dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".part")
        os.close(fd)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.temp_path, 0o666 & ~umask)  # as an ordinary new file would be

    def commit(self):
        os.replace(self.temp_path, self.path)

    def abort(self):
        try:
            os.unlink(self.temp_path)
        except FileNotFoundError:
            pass


class TableWriter:
    """CSV/TSV to a file or to standard output, chunk by chunk."""

    def __init__(self, path, fmt, columns, stdout=None):
        self.delimiter = DELIMITERS[fmt]
        self.atomic = None
        if path in (None, "-"):
            self.handle = stdout or sys.stdout
        else:
            self.atomic = AtomicFile(path)
            self.handle = open(self.atomic.temp_path, "w", newline="")
        self.handle.write(header_line(columns, self.delimiter))

    def write(self, start, rows):
        self.handle.write(format_rows(rows, self.delimiter))

    def commit(self):
        self.handle.flush()
        if self.atomic:
            self.handle.close()
            self.atomic.commit()

    def abort(self):
        if self.atomic:
            self.handle.close()
            self.atomic.abort()


class NpyWriter:
    """A preallocated NPY file filled in place, so memory stays bounded."""

    def __init__(self, path, shape, dtype):
        self.atomic = AtomicFile(path)
        self.array = np.lib.format.open_memmap(self.atomic.temp_path, mode="w+",
                                               dtype=dtype, shape=shape)

    def write(self, start, block):
        self.array[start:start + len(block)] = block.reshape((len(block),) + self.array.shape[1:])

    def commit(self):
        self.array.flush()
        del self.array
        self.atomic.commit()

    def abort(self):
        self.array = None
        self.atomic.abort()


class NpzWriter:
    """NPZ is a zip archive: the result is gathered in memory, then saved."""

    def __init__(self, path, name, shape, dtype, extras):
        self.atomic = AtomicFile(path)
        self.name = name
        self.array = np.empty(shape, dtype=dtype)
        self.extras = extras

    def write(self, start, block):
        self.array[start:start + len(block)] = block.reshape((len(block),) + self.array.shape[1:])

    def commit(self):
        with open(self.atomic.temp_path, "wb") as handle:
            np.savez(handle, **{self.name: self.array}, **self.extras)
        self.atomic.commit()

    def abort(self):
        self.atomic.abort()


def open_writer(path, fmt, name, shape, dtype, columns, extras=None, stdout=None):
    """A writer with ``write(start, block)``, ``commit()`` and ``abort()``."""
    if fmt in DELIMITERS:
        return TableWriter(path, fmt, columns, stdout)
    if path in (None, "-"):
        raise JaccliError(f"--format {fmt} needs an output file (-o); standard output is CSV")
    if fmt == "npy":
        return NpyWriter(path, shape, dtype)
    if fmt == "npz":
        return NpzWriter(path, name, shape, dtype, extras or {})
    raise JaccliError(f"unknown output format '{fmt}' (csv, tsv, npy or npz)")
