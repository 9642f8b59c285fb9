"""Zarr stores: points read a chunk at a time, results written a chunk at a time.

Points: an (N, n) array (or (n,) for one point) of real numbers, given as
the store (``pts.zarr``, when it holds one array) or as the array's path
inside it (``pts.zarr/group/array``: on disk that is the array's own
directory). Checked like an NPY file: its shape and dtype up front, NaN and
inf chunk by chunk, naming the row.

Results: a store with one array per quantity (``value``, ``jacobian``, ...),
chunked by rows, and the input and output names as attributes. It is built
in a temporary directory beside the target and renamed into place only when
complete, so a failed or interrupted run leaves no half-written store and
never touches an existing one. Needs the ``zarr`` package (version 3).
"""

import functools
import os
import shutil
import tempfile
import threading
import uuid
from collections import OrderedDict

import numpy as np

from jaccli.errors import JaccliError
from jaccli.numeric import dtype_problem
from jaccli.io import registry
from jaccli.io.parts import by_name
from jaccli.io.writers import track_unfinished

SUFFIX = registry.points_format("zarr").suffixes[0]
#: Files that mark a directory as a Zarr array or group (format 3, then 2).
MARKERS = ("zarr.json", ".zarray", ".zgroup")
#: Rows of an output chunk: about this many bytes each (uncompressed).
OUTPUT_CHUNK_BYTES = 4 << 20
#: Decoded input chunks kept for the next reads (a compute chunk is often
#: smaller than a Zarr chunk: each Zarr chunk is then decoded once, not once
#: per compute chunk).
CACHED_CHUNKS = 2


def _zarr():
    from jaccli.extras import require

    return require("zarr", "Zarr points and outputs (.zarr)")


def is_zarr_path(path):
    """``path`` names a Zarr store or an array inside one (by name, or by its marker files)."""
    if not isinstance(path, str) or path == "-":
        return False
    parts = os.path.normpath(path).split(os.sep)
    if any(part.lower().endswith(SUFFIX) for part in parts):
        return True
    return os.path.isdir(path) and any(os.path.exists(os.path.join(path, m)) for m in MARKERS)


def is_zarr_store(path):
    """An existing directory that Zarr wrote (so -o may replace it)."""
    return os.path.isdir(path) and any(os.path.exists(os.path.join(path, m)) for m in MARKERS)


def _open_array(path):
    """The Zarr array at ``path``: the store's only array, or the array the path names."""
    zarr = _zarr()
    if not os.path.exists(path):
        raise JaccliError(f"{path}: no such Zarr store")
    if not is_zarr_store(path):
        raise JaccliError(f"{path}: not a Zarr store (no zarr.json, .zarray or .zgroup in it)")
    try:
        node = zarr.open(path, mode="r")
    except Exception as exc:  # zarr raises many types for a damaged store
        raise JaccliError(f"{path}: not a readable Zarr store ({type(exc).__name__}: {exc})") from None
    if isinstance(node, zarr.Group):
        arrays = sorted(name for name, _ in node.arrays())
        if len(arrays) != 1:
            groups = sorted(node.group_keys())
            inside = "; ".join(part for part in (", ".join(arrays[:10]),
                                                 groups and f"groups {', '.join(groups[:10])}") if part)
            example = os.path.join(path, arrays[0] if arrays else (groups or ["group"])[0] + "/ARRAY")
            raise JaccliError(f"{path}: a Zarr group holding {len(arrays)} arrays ({inside or 'nothing'}); "
                              f"name the points array, e.g. {example}")
        node = node[arrays[0]]
    return node


class ZarrTable:
    """A Zarr array of points: like an NPY array, it has no header and its columns
    are chosen by number (``--columns 3,1``) or taken whole."""

    header = None

    def __init__(self, path, source=None):
        self.path, self.source = path, source or path
        array = _open_array(path)
        if dtype_problem(array.dtype):
            raise JaccliError(f"{self.source}: the array {dtype_problem(array.dtype)}")
        if array.ndim not in (1, 2):
            raise JaccliError(f"{self.source}: the array has shape {tuple(array.shape)}; expected "
                              f"(N, n) or (n,)")
        self.array = array
        self.width = array.shape[-1]

    def names(self, names):
        """An array has no header: it names nothing."""
        return False

    def take(self, groups):
        from jaccli.io.npy_points import array_columns

        shape = (1,) + self.array.shape if self.array.ndim == 1 else self.array.shape
        columns = array_columns(shape, groups, self.source)
        return ZarrRows(self.path, None if columns == list(range(self.width)) else columns,
                        self.source, self.array)


class ZarrRows:
    """The rows of an (N, n) Zarr array (its ``columns``, None: all), read a slice
    at a time; each Zarr chunk is decoded once for the next few reads.

    Pickles as its path, so a Dask worker re-opens the store itself (it must
    see the same path: shared storage). Thread-safe.
    """

    streamed = True  # read and checked chunk by chunk, never held whole
    reopens_by_path = True  # a Dask worker opens the store itself

    def __init__(self, path, columns=None, source=None, array=None):
        self.path, self.columns, self.source = path, columns, source or path
        array = _open_array(path) if array is None else array
        self.one_point = array.ndim == 1
        n_rows = 1 if self.one_point else array.shape[0]
        self.shape = (n_rows, array.shape[-1] if columns is None else len(columns))
        self.ndim = 2
        self.dtype = array.dtype
        self.chunk_rows = n_rows if self.one_point else int(array.chunks[0])
        self._array = array
        self.token = uuid.uuid4().hex
        self._cache = OrderedDict()
        self._lock = threading.Lock()

    def __reduce__(self):
        # The path, and a token of this opening: a worker's tasks of one run
        # share one opened store (and its decoded chunks); a later run opens afresh.
        return _reopen, (self.path, None if self.columns is None else tuple(self.columns),
                         self.source, self.token)

    def __len__(self):
        return self.shape[0]

    def _chunk(self, index):
        """Rows of Zarr chunk ``index``, decoded once and kept for the next few reads."""
        with self._lock:
            block = self._cache.get(index)
            if block is not None:
                self._cache.move_to_end(index)
                return block
        start = index * self.chunk_rows
        try:
            raw = self._array[...] if self.one_point else self._array[start:start + self.chunk_rows]
            block = np.asarray(raw).reshape(-1, self._array.shape[-1])
        except Exception as exc:  # a missing or damaged chunk file
            raise JaccliError(f"{self.source}: cannot read rows {start + 1:,}-"
                              f"{min(start + self.chunk_rows, len(self)):,} "
                              f"({type(exc).__name__}: {exc})") from None
        if self.columns is not None:
            block = block[:, self.columns]
        with self._lock:
            self._cache[index] = block
            while len(self._cache) > CACHED_CHUNKS:
                self._cache.popitem(last=False)
        return block

    def __getitem__(self, rows):
        from jaccli.io.npy_points import row_range

        start, stop = row_range(self, rows)
        if stop <= start:
            return np.empty((0, self.shape[1]), dtype=self.dtype)
        first, last = start // self.chunk_rows, (stop - 1) // self.chunk_rows
        parts = [self._chunk(k)[max(start - k * self.chunk_rows, 0):stop - k * self.chunk_rows]
                 for k in range(first, last + 1)]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def __array__(self, dtype=None, copy=None):
        whole = np.concatenate([self._chunk(k) for k in range(-(-len(self) // self.chunk_rows))])
        return whole if dtype is None else whole.astype(dtype)


@functools.lru_cache(maxsize=8)
def _reopen(path, columns, source, token):
    return ZarrRows(path, None if columns is None else list(columns), source)


#: Dimension names of each result array (xarray reads them), by quantity.
DIMENSIONS = {
    "value": ("point", "output"),
    "jacobian": ("point", "output", "input"),
    "param_jacobian": ("point", "output", "parameter"),
    "hessdiag": ("point", "output", "input"),
    "hessian": ("point", "output", "input", "input_2"),
    "laplacian": ("point", "output"),
    "confint": ("point", "output", "field"),
}


def output_chunk_rows(shape, dtype):
    """Rows per output chunk: about OUTPUT_CHUNK_BYTES, at least one row, at most all of them."""
    target = OUTPUT_CHUNK_BYTES
    row_bytes = max(int(np.prod(shape[1:], dtype=object)) * np.dtype(dtype).itemsize, 1)
    return int(max(1, min(shape[0], target // row_bytes)))


class ZarrWriter:
    """A Zarr store of one array per quantity, written in row order.

    ``arrays``: {name: shape}. ``write(start, block)`` takes a chunk as
    ``jaccli.io.parts`` says: {name: rows}, or rows holding the arrays' columns
    side by side (one quantity's rows in any shape). Rows are
    buffered up to a whole output chunk, so every chunk is written once.
    """

    def __init__(self, path, arrays, dtype, attributes=None):
        zarr = _zarr()
        self.target = self.path = path
        self.dtype = np.dtype(dtype)
        directory = os.path.dirname(os.path.abspath(path))
        try:
            self.temp_path = tempfile.mkdtemp(dir=directory, prefix=f".{os.path.basename(path)}.",
                                              suffix=".part")
        except OSError as exc:
            raise JaccliError(f"{path}: cannot write the output: {exc.strerror or exc}") from None
        track_unfinished(self.temp_path)
        try:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(self.temp_path, 0o777 & ~umask)  # as an ordinary new directory would be
            self.group = zarr.open_group(self.temp_path, mode="w")
            self.group.attrs.update(attributes or {})
            self.arrays, self.pending, self.written = {}, {}, {}
            for name, shape in arrays.items():
                rows = output_chunk_rows(shape, self.dtype)
                self.arrays[name] = self.group.create_array(
                    name, shape=tuple(shape), chunks=(rows,) + tuple(shape[1:]), dtype=self.dtype,
                    dimension_names=DIMENSIONS.get(name), fill_value=np.nan)
                self.pending[name], self.written[name] = [], 0
        except BaseException as exc:
            self.abort()
            if isinstance(exc, OSError):
                raise JaccliError(f"{path}: cannot write the output: {exc.strerror or exc}") from None
            raise

    def write(self, start, block):
        shapes = [(name, array.shape) for name, array in self.arrays.items()]
        for name, rows in by_name(block, shapes).items():
            self._append(name, start, rows)

    def _append(self, name, start, rows):
        array = self.arrays[name]
        queued = self.written[name] + sum(len(part) for part in self.pending[name])
        if start != queued:
            raise ValueError(f"Zarr chunks must come in order: got row {start}, expected {queued}")
        self.pending[name].append(np.asarray(rows, dtype=self.dtype).reshape((len(rows),) + array.shape[1:]))
        if queued + len(rows) - self.written[name] >= array.chunks[0]:
            self._flush(name, final=False)

    def _flush(self, name, final):
        """Write the buffered rows of ``name`` up to the last whole chunk (all of them if final)."""
        array, pending = self.arrays[name], self.pending[name]
        if not pending:
            return
        rows = np.concatenate(pending) if len(pending) > 1 else pending[0]
        step = array.chunks[0]
        whole = len(rows) if final else len(rows) // step * step
        start = self.written[name]
        try:
            array[start:start + whole] = rows[:whole]
        except OSError as exc:
            raise JaccliError(f"{self.path}: cannot write the output: {exc.strerror or exc}") from None
        self.written[name] = start + whole
        self.pending[name] = [rows[whole:]] if whole < len(rows) else []

    def commit(self):
        for name, array in self.arrays.items():
            self._flush(name, final=True)
            if self.written[name] != array.shape[0]:
                raise ValueError(f"Zarr output incomplete: {self.written[name]} of "
                                 f"{array.shape[0]} rows of {name}")
        replace_directory(self.temp_path, self.path)
        track_unfinished(self.temp_path, done=True)

    def abort(self):
        shutil.rmtree(self.temp_path, ignore_errors=True)
        track_unfinished(self.temp_path, done=True)


def replace_directory(source, target):
    """Move the finished store ``source`` onto ``target``, an earlier store there removed.

    A directory cannot be renamed over a non-empty one, so the old store is
    first renamed aside; if the second rename fails it is put back.
    """
    try:
        if not os.path.lexists(target):
            os.rename(source, target)
            return
        aside = tempfile.mkdtemp(dir=os.path.dirname(os.path.abspath(target)),
                                 prefix=f".{os.path.basename(target)}.", suffix=".old")
        os.rmdir(aside)
        os.rename(target, aside)
        try:
            os.rename(source, target)
        except OSError:
            os.rename(aside, target)
            raise
        shutil.rmtree(aside, ignore_errors=True)
    except OSError as exc:
        raise JaccliError(f"{target}: cannot write the output: {exc.strerror or exc}") from None
