"""NPY points: a regular file read a chunk at a time (pread), anything else read once.

Nothing is unpickled: the header is read first, and an object array is
refused before any data is.
"""

import io
import os

import numpy as np

from jaccli.errors import JaccliError
from jaccli.numeric import dtype_problem
from jaccli.messages import clip
from jaccli.io import registry
from jaccli.io.selection import select_columns

NPY_MAGIC = registry.points_format("npy").magic


def _check_npy_header(handle, size, source):
    """(shape, dtype) from the header alone: object arrays and short files refused."""
    from jaccli.formats.npz import NPY_HEADER_ERRORS, read_npy_header

    try:
        if handle.read(6) != NPY_MAGIC:
            raise JaccliError(f"{source}: not an NPY file (no NPY header)")
        handle.seek(0)
        shape, _, dtype, header = read_npy_header(handle)
    except NPY_HEADER_ERRORS as exc:
        raise JaccliError(f"{source}: not a readable NPY file (damaged header: "
                          f"{clip(str(exc) or type(exc).__name__, 200)})") from None
    if dtype.hasobject:
        raise JaccliError(f"{source}: holds Python objects (a pickle); refused, never unpickled")
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if nbytes > size - header:
        raise JaccliError(f"{source}: truncated: the header promises {nbytes:,} bytes of data, "
                          f"the file holds {size - header:,}")
    return shape, dtype


class NpyTable:
    """An NPY array of points: its columns chosen by number (it has no header)."""

    header = None

    def __init__(self, source, array, path=None):
        self.source, self.path = source, path
        self.keep = None  # what the rows must keep alive (a spooled pipe's temporary file)
        if not isinstance(array, np.ndarray):
            getattr(array, "close", lambda: None)()
            raise JaccliError(f"{source}: expected a single NPY array")
        if dtype_problem(array.dtype):
            raise JaccliError(f"{source}: the array {dtype_problem(array.dtype)}")
        if array.ndim == 1:
            array = array[None, :]
        if array.ndim != 2:
            raise JaccliError(f"{source}: the array has shape {array.shape}; expected (N, n) "
                              f"or (n,)")
        self.array, self.width = array, array.shape[1]

    @classmethod
    def from_file(cls, path, source=None):
        source = source or path
        with open(path, "rb") as handle:
            _check_npy_header(handle, os.fstat(handle.fileno()).st_size, source)
        return cls(source, _load(path, source, mmap_mode="r"), path)

    @classmethod
    def from_bytes(cls, data, source):
        _check_npy_header(io.BytesIO(data), len(data), source)
        return cls(source, _load(io.BytesIO(data), source))

    def names(self, names):
        """An array has no header: it names nothing."""
        return False

    def take(self, groups):
        columns = array_columns(self.array.shape, groups, self.source)
        every = columns == list(range(self.width))
        array = self.array
        if isinstance(array, np.memmap) and array.flags.c_contiguous:
            rows = NpyRows(self.path, array, None if every else columns, self.source)
            rows.keep = self.keep
            return rows
        return array if every else array[:, columns]


def array_columns(shape, groups, source):
    """The columns of an (N, width) array (it has no header) holding ``groups``: its
    width must be theirs unless the columns are picked; zero rows are an error."""
    total = sum(len(group.names) for group in groups)
    if all(group.picks is None for group in groups) and shape[1] != total:
        raise JaccliError(f"{source}: the array has shape {tuple(shape)}; "
                          f"expected (N, {total}) or ({total},), or pick the columns "
                          f"with {groups[0].option}")
    columns = select_columns(None, shape[1], groups, source)
    if shape[0] == 0:
        raise JaccliError(f"{source}: zero points")
    return columns


def _load(file, source, mmap_mode=None):
    try:
        return np.load(file, mmap_mode=mmap_mode, allow_pickle=False)
    except ValueError as exc:
        reason = "holds Python objects; refused" if "pickle" in str(exc) else str(exc)
        raise JaccliError(f"{source}: not a readable NPY file ({reason})") from None
    except (OSError, EOFError) as exc:
        raise JaccliError(f"{source}: not a readable NPY file ({exc})") from None


def _read_into(fd, view, offset):
    """Bytes read from ``offset`` into ``view``: ``os.preadv`` where the platform has it
    (no copy), else ``os.pread`` and a copy (it is missing on some systems)."""
    if hasattr(os, "preadv"):
        return os.preadv(fd, [view], offset)
    data = os.pread(fd, len(view), offset)
    view[:len(data)] = np.frombuffer(data, dtype=np.uint8)
    return len(data)


class NpyRows:
    """The rows of a 2-D C-order NPY file, read a slice at a time with pread.

    Not a memory map: a map's pages stay resident as it is read, so the
    process would grow with N; a read of one chunk at a time does not.
    Thread-safe (pread has no shared file position). ``columns``: the
    columns to return (None: all, in order).
    """

    def __init__(self, path, mapped, columns=None, source=None):
        self.path, self.source = path, source or path
        self.keep = None
        self.dtype = mapped.dtype
        self.columns = columns
        self.shape = (mapped.shape[0], mapped.shape[1] if columns is None else len(columns))
        self.ndim = 2
        self._width = mapped.shape[1]
        self._offset = mapped.offset
        self._row_bytes = mapped.shape[1] * mapped.dtype.itemsize
        self._fd = os.open(path, os.O_RDONLY)
        mapped._mmap.close()

    def __len__(self):
        return self.shape[0]

    @property
    def reopens_by_path(self):
        """A Dask worker opens the file itself (shared storage); not a pipe's spooled copy."""
        return self.keep is None

    def __reduce__(self):
        return _reopen_npy, (self.path, self.columns, self.source)

    def __getitem__(self, rows):
        start, stop = row_range(self, rows)
        block = self._read(start, max(stop - start, 0))
        return block if self.columns is None else block[:, self.columns]

    def _read(self, start, count):
        """``count`` rows from ``start``, every column, read straight into a new array
        (a read returns at most ~2 GB: as many reads as it takes)."""
        block = np.empty((count, self._width), dtype=self.dtype)
        flat, done = block.reshape(-1).view(np.uint8), 0
        while done < len(flat):
            read = _read_into(self._fd, flat[done:], self._offset + start * self._row_bytes + done)
            if not read:
                raise JaccliError(f"{self.source}: the file is shorter than its header says")
            done += read
        return block

    def __array__(self, dtype=None, copy=None):
        whole = self[0:len(self)]  # a new array: no second copy for the dtype it has
        return whole if dtype is None else whole.astype(dtype, copy=False)

    def __del__(self):
        try:
            os.close(self._fd)
        except (OSError, AttributeError):
            pass


def _reopen_npy(path, columns, source):
    return NpyRows(path, _load(path, source, mmap_mode="r"), columns, source)


def row_range(source, rows):
    """(start, stop) of ``rows``, a contiguous slice of a row source's rows (all a
    chunk loop asks of a source read lazily)."""
    if not isinstance(rows, slice):
        raise TypeError(f"{type(source).__name__} takes a slice of rows")
    start, stop, step = rows.indices(len(source))
    if step != 1:
        raise TypeError(f"{type(source).__name__} takes a contiguous slice of rows")
    return start, stop
