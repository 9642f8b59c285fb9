"""Writing results: CSV/TSV (repr-exact), NPY (written front to back), NPZ, Parquet.

A file output is written to a temporary file in the target directory and
renamed into place only when it is complete: an error or Ctrl-C leaves no
partial file and never touches an existing one. Standard output is written
chunk by chunk (a pipeline consumer checks the exit status).
"""

import contextlib
import os
import stat
import sys
import tempfile

import numpy as np

from jaccli.errors import JaccliError, param
from jaccli.io import registry
from jaccli.io.npz_archive import array_entry, npy_header, write_npz
from jaccli.io.parts import by_name, joined
from jaccli.limits import folder_as_written

# Temporary outputs neither committed nor aborted yet. A Ctrl-C can land
# anywhere, even between creating a temporary file and the try block that
# would remove it: the command line calls ``remove_unfinished`` on its way out.
_UNFINISHED = set()

FORMATS = registry.by_suffix()
DELIMITERS = {"csv": ",", "tsv": "\t"}
JSON_FORMATS = ("jsonl", "json")


def output_format(path, fmt=None):
    """The format for ``-o path``: ``--format``, else the extension (.txt is TSV, as
    for the points), else CSV (a path with no extension: /dev/null, a pipe)."""
    if fmt:
        return fmt
    if path in (None, "-"):
        return registry.DEFAULT_OUTPUT
    suffix = os.path.splitext(path.rstrip(os.sep))[1].lower()
    if os.path.isdir(path) and not (suffix == ".zarr" and _replaceable_store(path)):
        raise JaccliError(f"{path}: is a directory; -o needs a file name")
    if not suffix:  # /dev/null, a pipe, a plain name: text, like standard output
        return registry.DEFAULT_OUTPUT
    if suffix not in FORMATS:
        raise JaccliError(f"{path}: unknown output format '{suffix}' "
                          f"(use {registry.suffix_list(registry.names())}, or "
                          f"{param('fmt')})")
    return FORMATS[suffix]


def check_output_path(path, inputs):
    """Refuse, before any work, an output that cannot be written or would clobber an input."""
    if path in (None, "-"):
        return
    directory = folder_as_written(path)
    if not os.path.isdir(directory):
        raise JaccliError(f"{path}: the directory {directory} does not exist")
    if os.path.isdir(path) and not _replaceable_store(path):
        raise JaccliError(f"{path}: is a directory")
    if not os.access(directory, os.W_OK):
        raise JaccliError(f"{path}: the directory {directory} is not writable")
    target = os.path.realpath(path)
    for item in inputs:
        if not item or item == "-" or not os.path.exists(item):
            continue
        if is_special_file(path):
            break  # a pipe or device is no input's file
        inside = os.path.realpath(item).startswith(target + os.sep)  # an array in the store
        if os.path.realpath(item) == target or inside or (os.path.exists(path) and _same_file(item, path)):
            raise JaccliError(f"{path}: is one of the inputs ({item}); refusing to overwrite it")


def _replaceable_store(path):
    """An existing Zarr store may be replaced by -o (a run writes a new one beside it)."""
    from jaccli.io.zarr_store import is_zarr_store

    return is_zarr_store(path)


def _same_file(a, b):
    try:
        return os.path.samefile(a, b)  # also a hard link to the same file
    except OSError:
        return False


# Bytes per number of a CSV/TSV output, for the free-space check: float64 reprs
# take 18-24 characters; a lower figure keeps the check from refusing a run
# that would fit.
CSV_BYTES_PER_NUMBER = 16
MEMORY_ADVICE = ("compute hessdiag instead of hessian, use fewer points, or write -o out.npy "
                 "(streamed to disk) instead of .npz")
DISK_ADVICE = ("compute hessdiag instead of hessian, use fewer points, or write to a disk "
               "with more room")


def check_output_room(path, fmt, shape, dtype):
    """Refuse, before any work, an output that cannot fit: NPZ in memory, any file on disk."""
    from jaccli.limits import check_disk, check_memory

    count = int(np.prod(shape, dtype=object))
    nbytes = count * np.dtype(dtype).itemsize
    what = f"the result {tuple(shape)}"
    if fmt == "npz":
        check_memory(nbytes, f"{path}: {what}, gathered in memory for NPZ,", MEMORY_ADVICE)
    if path in (None, "-") or is_special_file(path):
        return  # standard output and pipes are streamed; their consumer decides
    estimate = nbytes if fmt in ("npy", "npz", "zarr") else count * CSV_BYTES_PER_NUMBER
    check_disk(path, estimate, what, DISK_ADVICE)


def writing_to(method):
    """Report an OSError while writing (disk full, quota, I/O error) as one line naming the file."""
    import functools

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except BrokenPipeError:
            raise
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise JaccliError(f"{self.target}: cannot write the output: {reason}") from None

    return wrapper


#: Numbers in a block from which formatting them with pyarrow pays for importing it
#: (~0.14 s, about what Python's repr loop takes for a million numbers).
ARROW_MIN_CELLS = 1 << 20


def format_rows(rows, delimiter):
    """Shortest round-trip text of every number, one line per row.

    float64: Python's repr. One %-format over the whole block runs the repr
    loop in C, about as fast as numpy.savetxt's "%.17g" and with the shortest
    exact digits. float32: the shortest text that reads back as the same
    float32 (``float32_texts``), not the float64 digits of it. With pyarrow
    installed, large float64 blocks go through its formatter: the same text,
    about 3x faster (importing it costs as much as formatting ``ARROW_MIN_CELLS``
    numbers, so a small result, one point's, is not worth it).
    """
    rows = np.asarray(rows)
    if rows.size >= ARROW_MIN_CELLS or "pyarrow" in sys.modules:
        from jaccli.io.arrow import format_rows as arrow_format_rows

        text = arrow_format_rows(rows, delimiter)
        if text is not None:
            return text
    width = max(rows.shape[1], 1)
    # a few hundred thousand numbers at a time, however wide the rows
    step = max(1, (1 << 17) // width)
    parts = []
    for block in (rows[i:i + step] for i in range(0, len(rows), step)):
        if block.dtype == np.float32:
            cells = float32_texts(block.ravel())
            row_format = delimiter.join(["%s"] * width) + "\n"
        else:
            cells = tuple(block.ravel().tolist())
            row_format = delimiter.join(["%r"] * width) + "\n"
        parts.append((row_format * len(block)) % tuple(cells))
    return "".join(parts)


def float32_texts(values):
    """The shortest decimal text of each float32 that reads back as the same float32
    (numpy's float32 repr, np.format_float_scientific(unique=True), in %g notation).

    A whole block is formatted with "%.6g", then "%.7g", "%.8g", "%.9g" (one
    %-format each, in C), and each number keeps the first that round-trips:
    "%.pg" is the nearest p-digit decimal, so it round-trips if any p-digit
    decimal does, and a normal float32 is closer to a 6-digit decimal that
    reads back as itself than half a 6-digit step, so fewer digits need no
    pass of their own. Subnormals (fewer significant bits) go through numpy.
    """
    values = np.asarray(values, dtype=np.float32)
    with np.errstate(invalid="ignore"):  # a signalling NaN stays a NaN
        wide = values.astype(np.float64)
    texts = np.empty(values.size, dtype=object)
    pending = np.arange(values.size)
    for digits in (6, 7, 8, 9):
        numbers = wide[pending].tolist()
        text = (f"%.{digits}g " * len(numbers)) % tuple(numbers)
        candidates = text.split()
        if digits == 9:  # nine significant digits always identify a float32
            texts[pending] = candidates
            break
        back = np.fromstring(text, dtype=np.float64, sep=" ").astype(np.float32)
        exact = (back == values[pending]) | ~np.isfinite(values[pending])
        texts[pending[exact]] = np.array(candidates, dtype=object)[exact]
        pending = pending[~exact]
        if not pending.size:
            break
    tiny = np.flatnonzero((values != 0) & (np.abs(values) < np.finfo(np.float32).tiny))
    for i in tiny:
        texts[i] = np.format_float_scientific(values[i], unique=True, trim="-")
    return texts.tolist()


def format_cells(rows, delimiter):
    """Rows of mixed cells (a report): floats as their repr, None as an empty cell."""
    def cell(value):
        if value is None:
            return ""
        return repr(float(value)) if isinstance(value, float) else str(value)

    return "".join(delimiter.join(cell(value) for value in row) + "\n" for row in rows)


def header_line(columns, delimiter):
    """The header row; a name holding the delimiter (dy/dW0[0,1]) is quoted, as CSV does."""
    import csv
    import io

    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\n").writerow(columns)
    return buffer.getvalue()


def is_special_file(path):
    """An existing target that is not a regular file: a pipe, a device (/dev/null, /dev/stdout)."""
    try:
        return not stat.S_ISREG(os.stat(path).st_mode) and not stat.S_ISDIR(os.stat(path).st_mode)
    except OSError:
        return False


class AtomicFile:
    """A temporary file beside ``path``, renamed onto it by ``commit``.

    A pipe or a device (``-o /dev/null``, a named pipe) is written directly:
    renaming a file over it would replace it, and there is nothing to roll back.
    """

    @writing_to
    def __init__(self, path):
        self.direct = is_special_file(path)
        if self.direct:  # opened by its own name (/dev/fd/63 links to "pipe:[...]")
            self.path = self.target = self.temp_path = path
            return
        self.target = path  # errors name the output as the user wrote it
        # A symbolic link is followed: its target is what gets replaced, not the link.
        path = os.path.realpath(path) if os.path.islink(path) else path
        self.path = path
        directory = os.path.dirname(os.path.abspath(path))
        fd, self.temp_path = tempfile.mkstemp(
            dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".part")
        _UNFINISHED.add(self.temp_path)
        os.close(fd)
        if os.path.isfile(path):
            mode = os.stat(path).st_mode & 0o7777  # an overwritten file keeps its permissions
        else:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask  # as an ordinary new file would be
        os.chmod(self.temp_path, mode)

    @writing_to
    def commit(self):
        if not self.direct:
            os.replace(self.temp_path, self.path)
            _UNFINISHED.discard(self.temp_path)

    def abort(self, handle=None):
        """Close ``handle`` (the temporary file's, if open) and remove the temporary file.

        Closing flushes what is buffered, which fails again after a full disk
        or a file-size limit (EFBIG): that second error is dropped, the first
        one is being reported, and the file goes anyway."""
        try:
            if handle is not None:
                handle.close()
        except OSError:
            pass
        finally:
            if not self.direct:  # never unlink a device or a pipe
                _remove(self.temp_path)


def _remove(temp_path):
    try:
        if os.path.isdir(temp_path) and not os.path.islink(temp_path):
            import shutil

            shutil.rmtree(temp_path)  # a store being built (Zarr)
        else:
            os.unlink(temp_path)
    except FileNotFoundError:
        pass
    _UNFINISHED.discard(temp_path)


def track_unfinished(temp_path, done=False):
    """Have a temporary output built elsewhere (a Zarr store, a directory) removed
    like the files here if the run stops first; ``done``: committed or removed."""
    (_UNFINISHED.discard if done else _UNFINISHED.add)(temp_path)


def remove_unfinished():
    """Remove every temporary output still open (an interrupted or failed run)."""
    for temp_path in list(_UNFINISHED):
        _remove(temp_path)


class Pending:
    """Chunks of rows gathered until there are ``cells`` numbers: formatting
    (pyarrow's especially) and Parquet row groups pay per call, chunks are small."""

    def __init__(self, cells=1 << 16):
        self.cells, self.blocks, self.count = cells, [], 0

    def add(self, block):
        """The gathered rows once there are enough of them, else None; ``block``: a
        chunk (``parts``), its parts joined side by side."""
        rows = joined(block, copy=True)  # a copy: the caller may reuse its buffer
        self.blocks.append(rows)
        self.count += rows.size
        return self.drain() if self.count >= self.cells else None

    def drain(self):
        """Every row gathered so far (None if there are none), and start again."""
        blocks, self.blocks, self.count = self.blocks, [], 0
        if not blocks:
            return None
        return blocks[0] if len(blocks) == 1 else np.concatenate(blocks)


class TextStream:
    """A text output, a few chunks at a time: to a file, written whole or not at all
    (``AtomicFile``), or to standard output. Subclasses write their rows, flush
    what they hold back in ``_flush_pending`` and may close the text (``_end``)."""

    def _open(self, path, stdout=None, encoding=None):
        self.target = "<stdout>" if path in (None, "-") else path
        self.atomic = None
        if path in (None, "-"):
            self.handle = stdout or sys.stdout
            return
        self.atomic = AtomicFile(path)
        try:
            self.handle = open(self.atomic.temp_path, "w", encoding=encoding, newline="")
        except BaseException:
            self.atomic.abort()
            raise

    def _flush_pending(self):
        """Write what is held back (subclasses)."""

    def _end(self):
        """The text that closes the output (subclasses)."""
        return ""

    @writing_to
    def commit(self):
        self._flush_pending()
        self.handle.write(self._end())
        self.handle.flush()
        if self.atomic:
            self.handle.close()
            self.atomic.commit()

    def abort(self):
        if self.atomic:
            self.atomic.abort(self.handle)


class TableWriter(TextStream):
    """CSV/TSV to a file or to standard output, a few chunks at a time."""

    @writing_to
    def __init__(self, path, fmt, columns, stdout=None):
        self.delimiter = DELIMITERS[fmt]
        self.pending = Pending()
        self._open(path, stdout)
        try:
            self.handle.write(header_line(columns, self.delimiter))
        except BaseException:
            self.abort()
            raise

    @writing_to
    def write(self, start, rows):
        rows = self.pending.add(rows)
        if rows is not None:
            self.handle.write(format_rows(rows, self.delimiter))

    def _flush_pending(self):
        rows = self.pending.drain()
        if rows is not None:
            self.handle.write(format_rows(rows, self.delimiter))

    @writing_to
    def write_cells(self, rows):
        """Rows of mixed cells (text, numbers, None for an empty cell)."""
        self._flush_pending()  # after the numbers written before them
        self.handle.write(format_cells(rows, self.delimiter))

class NpyWriter:
    """An NPY file written front to back: its header (the shape is known up
    front), then each chunk's bytes as they come, in order. Nothing is mapped,
    so memory stays one chunk whatever N is (the page cache is the kernel's)."""

    @writing_to
    def __init__(self, path, shape, dtype):
        self.target = path
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self.atomic = AtomicFile(path)
        self.written = 0
        try:
            self.handle = open(self.atomic.temp_path, "wb")
            self.handle.write(npy_header(self.shape, self.dtype))
        except BaseException:
            self.abort()
            raise

    @writing_to
    def write(self, start, block):
        if start != self.written:
            raise ValueError(f"NPY chunks must come in order: got row {start}, expected {self.written}")
        block = np.ascontiguousarray(block, dtype=self.dtype)
        self.handle.write(memoryview(block).cast("B"))
        self.written += len(block)

    @writing_to
    def commit(self):
        if self.written != self.shape[0]:
            raise ValueError(f"NPY output incomplete: {self.written} of {self.shape[0]} rows")
        self.handle.close()
        self.atomic.commit()

    def abort(self):
        self.atomic.abort(getattr(self, "handle", None))


class NpzWriter:
    """NPZ is a zip archive: the results are gathered in memory, then saved.

    ``parts`` is [(name, shape)] of the arrays a chunk holds (several with
    ``--with``: by name, or side by side in a block of rows), each saved under
    its name. Each chunk's rows are kept as they come (a copy only when they
    are not one C-ordered array of the output's type, e.g. cut from a block)
    and written one after another by ``commit``: no array of the whole result
    is filled, nor copied on its way to the file (``npz_archive``).
    """

    @writing_to
    def __init__(self, path, parts, dtype, extras):
        self.target = path
        self.atomic = AtomicFile(path)
        self.shapes, self.dtype = {name: tuple(shape) for name, shape in parts}, np.dtype(dtype)
        self.chunks = {name: {} for name in self.shapes}  # {name: {start: rows}}
        self.extras = extras

    def write(self, start, block):
        for name, rows in by_name(block, list(self.shapes.items())).items():
            rows = np.ascontiguousarray(rows, dtype=self.dtype)
            self.chunks[name][start] = rows.reshape((len(rows),) + self.shapes[name][1:])

    def _rows(self, name, n_rows):
        """The chunks of ``name`` in row order; they must cover its rows exactly."""
        chunks, done = [], 0
        for start, rows in sorted(self.chunks[name].items(), key=lambda item: item[0]):
            if start != done:
                break
            chunks.append(rows)
            done += len(rows)
        if done != n_rows:
            raise ValueError(f"NPZ output incomplete: {name} has rows 0-{done} of {n_rows} in order")
        return chunks

    @writing_to
    def commit(self):
        extras = self.extras() if callable(self.extras) else self.extras
        entries = {name: (npy_header(shape, self.dtype), self._rows(name, shape[0]))
                   for name, shape in self.shapes.items()}
        entries.update((name, array_entry(array)) for name, array in extras.items())
        # Chunks of tens of kB each: a 1 MiB buffer writes them in 1 MiB system calls
        # (W6's 80 MB archive: 53 -> 41 ms; whole arrays go past the buffer as before).
        with open(self.atomic.temp_path, "wb", buffering=1 << 20) as handle:
            write_npz(handle, entries)
        self.atomic.commit()

    def abort(self):
        self.atomic.abort()


def open_writer(path, fmt, name, shape, dtype, columns, extras=None, stdout=None,
                attributes=None, parts=None, head=None):
    """A writer with ``write(start, block)``, ``commit()`` and ``abort()``.

    ``extras`` (NPZ only): a dict of arrays saved beside the result, or a
    function returning it, called only when the NPZ is written.
    ``attributes`` (Zarr only): the store's attributes (the input and output names).
    ``head`` (JSON only): the document's fields before its ``rows``.
    ``parts``: [(name, shape)] of several results written in each chunk
    (``--with``; a chunk as ``jaccli.io.parts`` says); by default the one result
    (name, shape). A table (CSV, TSV, JSON, Parquet) has their columns one after
    another; NPZ and Zarr hold each by name; NPY holds one array and refuses several.
    """
    parts = parts or [(name, shape)]
    if len(parts) > 1:  # for the room check: every number written
        shape = (shape[0], sum(int(np.prod(part[1:], dtype=int)) for _, part in parts))
    check_output_room(path, fmt, shape, dtype)
    if fmt in DELIMITERS:
        return TableWriter(path, fmt, columns, stdout)
    if fmt in JSON_FORMATS:
        from jaccli.io.json_rows import JsonRowsWriter

        return JsonRowsWriter(path, fmt, columns, stdout, head)
    if path in (None, "-"):
        raise JaccliError(f"{param('fmt')} {fmt} needs an output file (-o); standard output takes "
                          f"{registry.join_words(registry.streaming())}")
    if fmt == "npy":
        if len(parts) > 1:
            others = [f for f in registry.names() if f != "npy"]
            raise JaccliError(f"{path}: NPY holds one array and {param('with_')} asks for {len(parts)} "
                              f"({', '.join(n for n, _ in parts)}): write "
                              f"{registry.suffix_list(others)}")
        return NpyWriter(path, shape, dtype)
    if fmt == "npz":
        return NpzWriter(path, parts, dtype, extras or {})
    if fmt == "parquet":
        from jaccli.io.parquet import ParquetWriter

        return ParquetWriter(path, columns, dtype)
    if fmt == "zarr":
        from jaccli.io.zarr_store import ZarrWriter

        return ZarrWriter(path, dict(parts), dtype, attributes)
    raise JaccliError(f"unknown output format '{fmt}' ({registry.join_words(registry.names())})")


class Together:
    """Several outputs of one run written as one: each block goes to every one;
    ``commit`` first ``prepare``s the others (a figure is drawn into its
    temporary file), then commits ``first`` (the data), then the others, so an
    error while drawing leaves neither; ``abort`` aborts them all."""

    def __init__(self, first, *others):
        self.first, self.others = first, [w for w in others if w is not None]

    def __getattr__(self, name):  # the data writer's own attributes (target, nulls, ...)
        if name in ("first", "others"):  # not set yet (a copy being built)
            raise AttributeError(name)
        return getattr(self.first, name)

    def write(self, start, block):
        self.first.write(start, block)
        for writer in self.others:
            writer.write(start, block)

    def write_cells(self, rows):
        self.first.write_cells(rows)

    def commit(self):
        for writer in self.others:
            getattr(writer, "prepare", lambda: None)()
        self.first.commit()
        for writer in self.others:
            writer.commit()

    def abort(self):
        for writer in [self.first] + self.others:
            writer.abort()


@contextlib.contextmanager
def written_whole(writer):
    """Commit ``writer`` when the block ends, abort it on any error (Ctrl-C too):
    an output is written whole or not at all."""
    try:
        yield writer
        writer.commit()
    except BaseException:
        writer.abort()
        raise
