"""Reading the points: CSV, TSV, NPY, standard input, or ``--at`` inline.

A CSV/TSV may start with a header: a first row most of whose cells are not
numbers (``is_header``, the one rule every reader uses). If the header names
every input of the spec, those columns are taken by name (in the spec's
order) and the rest are ignored; otherwise the file must have exactly n
columns, in order.
NPY files are read a chunk at a time (pread), so a huge file streams.
"""

import io
import os

import numpy as np

from jaccli.errors import JaccliError
from jaccli.formats.spec import clip

# A larger CSV/TSV file is parsed a chunk at a time (TextRows), so memory stays
# bounded; a smaller one is read whole, which is faster.
STREAM_TEXT_BYTES = int(os.environ.get("JACCLI_STREAM_TEXT_BYTES", 64 << 20))
TEXT_SUFFIXES = {".csv": ",", ".tsv": "\t", ".txt": "\t"}


def parse_inline_point(text, n_inputs):
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise JaccliError(f"--at {clip(text)!r}: expected {n_inputs} comma-separated numbers") from None
    if len(values) != n_inputs:
        raise JaccliError(f"--at {clip(text)!r}: the model has {n_inputs} inputs, "
                          f"got {len(values)} numbers")
    return np.array([values])


def read_points(path, input_names, stdin=None, extra_names=(), fmt=None):
    """An (N, n) array (read lazily for a large file) of the points in ``path``.

    ``extra_names`` (e.g. a training file's targets) are read too, by the same
    rules, as further columns after the inputs: (N, n + k). A text file whose
    header names every input but not every extra name is refused
    (``MissingColumns``). ``fmt`` (``--points-format``) overrides the extension.
    """
    from jaccli.io.zarr_store import ZarrRows, is_zarr_path

    names = list(input_names) + list(extra_names)
    if path == "-":
        data = stdin.read() if stdin is not None else b""
        return parse_text_points(data, ",", "<stdin>", names)
    if fmt == "zarr" or (fmt is None and is_zarr_path(path)):
        return ZarrRows(path, len(names))
    if os.path.isdir(path):
        raise JaccliError(f"{path}: is a directory, not a points file")
    if not os.path.isfile(path):
        raise JaccliError(f"{path}: no such points file")
    suffix = f".{fmt}" if fmt else os.path.splitext(path)[1].lower()
    if suffix == ".npy":
        return read_npy_points(path, len(names))
    if suffix not in TEXT_SUFFIXES:
        raise JaccliError(f"{path}: unknown points format '{suffix}' "
                          f"(use .csv, .tsv, .txt, .npy or .zarr)")
    if extra_names:
        header = text_header(path)
        missing = [name for name in extra_names if header is not None and name not in header]
        if missing and all(name in header for name in input_names):
            raise MissingColumns(path, missing, header)
    if os.path.getsize(path) > STREAM_TEXT_BYTES and not _starts_utf16(path):
        return TextRows(path, TEXT_SUFFIXES[suffix], names, suffix == ".txt")
    with open(path, "rb") as handle:
        data = handle.read()
    return parse_text_points(data, TEXT_SUFFIXES[suffix], path, names, suffix == ".txt")


class MissingColumns(JaccliError):
    """A header names every input but not every extra column asked for."""

    def __init__(self, path, missing, header):
        self.path, self.missing, self.header = path, missing, header
        super().__init__(f"{path}: no column {', '.join(repr(n) for n in missing)} "
                         f"(the header has {', '.join(header)})")


def text_header(path):
    """The header cells of a CSV/TSV/TXT points file, or None: no header (the
    first row is data), not a text file by its extension, or standard input."""
    if path in (None, "-") or not os.path.isfile(path):
        return None
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in TEXT_SUFFIXES:
        return None
    try:
        with open(path, "rb") as handle:
            head = handle.read(TextRows.HEAD_BYTES)
        if head.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16: whole code units
            head = head[:len(head) // 2 * 2]
        else:  # whole lines (a UTF-8 character is never cut)
            head = head[:head.rfind(b"\n") + 1] or head
        text = _decode(head, path)
    except (OSError, JaccliError):
        return None
    _, _, _, cells = _first_row(text.replace("\r", ""), TEXT_SUFFIXES[suffix], suffix == ".txt")
    return cells if cells and is_header(cells) else None


def _starts_utf16(path):
    with open(path, "rb") as handle:
        return handle.read(2) in (b"\xff\xfe", b"\xfe\xff")


def _check_npy_header(path):
    """Refuse, from the header alone, object arrays and files shorter than the header promises."""
    from jaccli.formats.tensors import NPY_HEADER_ERRORS, read_npy_header

    try:
        with open(path, "rb") as handle:
            if handle.read(6) != b"\x93NUMPY":
                raise JaccliError(f"{path}: not an NPY file (no NPY header)")
            handle.seek(0)
            shape, _, dtype, header = read_npy_header(handle)
    except NPY_HEADER_ERRORS as exc:
        raise JaccliError(f"{path}: not a readable NPY file (damaged header: "
                          f"{clip(str(exc) or type(exc).__name__, 200)})") from None
    if dtype.hasobject:
        raise JaccliError(f"{path}: holds Python objects (a pickle); refused, never unpickled")
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    have = os.path.getsize(path) - header
    if nbytes > have:
        raise JaccliError(f"{path}: truncated: the header promises {nbytes:,} bytes of data, "
                          f"the file holds {have:,}")


def read_npy_points(path, n_inputs):
    _check_npy_header(path)
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        reason = "holds Python objects; refused" if "pickle" in str(exc) else str(exc)
        raise JaccliError(f"{path}: not a readable NPY file ({reason})") from None
    except (OSError, EOFError) as exc:
        raise JaccliError(f"{path}: not a readable NPY file ({exc})") from None
    if not isinstance(array, np.ndarray):
        getattr(array, "close", lambda: None)()
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
    if isinstance(array, np.memmap) and array.flags.c_contiguous and array.ndim == 2:
        return NpyRows(path, array)
    return array


class NpyRows:
    """The rows of a 2-D C-order NPY file, read a slice at a time with pread.

    Not a memory map: a map's pages stay resident as it is read, so the
    process would grow with N; a read of one chunk at a time does not.
    Thread-safe (pread has no shared file position).
    """

    reopens_by_path = True  # a Dask worker opens the file itself (shared storage)

    def __init__(self, path, mapped):
        self.path = path
        self.dtype = mapped.dtype
        self.shape = mapped.shape
        self.ndim = 2
        self._offset = mapped.offset
        self._row_bytes = mapped.shape[1] * mapped.dtype.itemsize
        self._fd = os.open(path, os.O_RDONLY)
        mapped._mmap.close()

    def __len__(self):
        return self.shape[0]

    def __reduce__(self):
        return read_npy_points, (self.path, self.shape[1])

    def __getitem__(self, rows):
        start, stop = row_range(self, rows)
        count = max(stop - start, 0)
        data = os.pread(self._fd, count * self._row_bytes, self._offset + start * self._row_bytes)
        if len(data) != count * self._row_bytes:
            raise JaccliError(f"{self.path}: the file is shorter than its header says")
        return np.frombuffer(data, dtype=self.dtype).reshape(count, self.shape[1])

    def __array__(self, dtype=None, copy=None):
        whole = self[0:len(self)]
        return whole if dtype is None else whole.astype(dtype)

    def __del__(self):
        try:
            os.close(self._fd)
        except (OSError, AttributeError):
            pass


def row_range(source, rows):
    """(start, stop) of ``rows``, a contiguous slice of a row source's rows (all a
    chunk loop asks of a source read lazily)."""
    if not isinstance(rows, slice):
        raise TypeError(f"{type(source).__name__} takes a slice of rows")
    start, stop, step = rows.indices(len(source))
    if step != 1:
        raise TypeError(f"{type(source).__name__} takes a contiguous slice of rows")
    return start, stop


def is_streamed(points):
    """Points read chunk by chunk (so checked chunk by chunk) rather than held whole."""
    return isinstance(points, (NpyRows, TextRows, np.memmap)) or getattr(points, "streamed", False)


def _decode(data, source):
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"
    else:
        encoding = "utf-8-sig"  # a UTF-8 byte order mark is dropped
    if b"\x00" in data and encoding != "utf-16":
        head = data[:4096]
        if _looks_like_utf16(head[0::2], head[1::2]) or _looks_like_utf16(head[1::2], head[0::2]):
            raise JaccliError(f"{source}: looks like UTF-16 text without a byte order mark; "
                              f"save it as UTF-8 (or UTF-16 with a BOM)")
        raise JaccliError(f"{source}: binary data, not a text table")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise JaccliError(f"{source}: not UTF-8 text (byte {exc.start})") from None


def _looks_like_utf16(text_bytes, zero_bytes):
    """ASCII text in UTF-16 without a BOM: every other byte is 0, the others printable."""
    if len(zero_bytes) < 2 or zero_bytes.count(0) < 0.9 * len(zero_bytes):
        return False
    printable = sum(1 for b in text_bytes if 9 <= b <= 13 or 32 <= b < 127)
    return printable >= 0.9 * len(text_bytes)


def is_number(cell):
    """A number, as the points reader parses it (numpy.loadtxt): ASCII only, no
    '_' digit separators (Python's float() takes '1_000' and non-ASCII digits,
    loadtxt does not). 'inf' and 'nan' are numbers: they are refused later, by
    row and column, as not finite."""
    if "_" in cell or not cell.isascii():
        return False
    try:
        float(cell)
        return True
    except ValueError:
        return False


def is_header(cells):
    """The one header rule: a first row most of whose cells are not numbers is a
    header. A row of numbers with a label in it ('id,1.5,2.5') is data, and so
    is a row with a malformed number ('1_000,2'): both fail with the cell named."""
    return 2 * sum(not is_number(cell) for cell in cells) > len(cells)


def _split(line, delimiter):
    cells = line.split(delimiter) if delimiter else line.split()
    return [cell.strip().strip('"').strip("'").strip() for cell in cells]


def _first_data_line(text):
    """(line index, start offset, the line) of the first line that is not blank or a comment."""
    offset = index = 0
    while offset < len(text):
        end = text.find("\n", offset)
        end = len(text) if end < 0 else end
        line = text[offset:end]
        if line.strip() and not line.lstrip().startswith("#"):
            return index, offset, line
        offset, index = end + 1, index + 1
    return None, len(text), ""


def _first_row(text, delimiter, whitespace_ok):
    """(delimiter, line index, offset, cells) of the first data line of a table's head.

    A .txt (``whitespace_ok``) whose first line has no tab is space-separated,
    as numpy.savetxt writes it. No data line: (delimiter, None, len(text), []).
    """
    first, offset, line = _first_data_line(text)
    if first is None:
        return delimiter, None, offset, []
    if whitespace_ok and delimiter == "\t" and "\t" not in line:
        delimiter = None
    return delimiter, first, offset, _split(line.rstrip("\r"), delimiter)


def _text_layout(text, delimiter, source, input_names, whitespace_ok):
    """Where the data starts and which columns to take, from the head of a table.

    Returns (delimiter, number of columns, columns to take, the body's first
    line number (0-based), the body's offset in ``text``).
    """
    delimiter, first, offset, head = _first_row(text, delimiter, whitespace_ok)
    if first is None:
        raise JaccliError(f"{source}: zero points (the file is empty)")
    has_header = is_header(head)
    columns = _select_columns(head if has_header else None, len(head), input_names, source)
    if columns is None:
        columns = list(range(len(head)))
    if has_header:
        end = text.find("\n", offset)
        return delimiter, len(head), columns, first + 1, len(text) if end < 0 else end + 1
    return delimiter, len(head), columns, first, offset


def parse_text_points(data, delimiter, source, input_names, whitespace_ok=False):
    text = _decode(data, source)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    delimiter, n_columns, columns, body_start, body_offset = _text_layout(
        text, delimiter, source, input_names, whitespace_ok)
    body = text[body_offset:]
    if _first_data_line(body)[0] is None:
        raise JaccliError(f"{source}: zero points (a header and no rows)")
    return _parse_body(body, delimiter, n_columns, columns, body_start, source)


def _parse_body(body, delimiter, n_columns, columns, body_start, source):
    """The numbers of the data lines in ``body``; errors counted from the file's lines."""
    try:
        with np.errstate(all="ignore"):
            # bytes: loadtxt's C reader parses them faster than a StringIO
            table = np.loadtxt(io.BytesIO(body.encode("utf-8")), delimiter=delimiter, ndmin=2,
                               dtype=np.float64, comments="#", usecols=columns, quotechar='"',
                               encoding="utf-8")
    except ValueError as exc:
        body_lines = body.splitlines()
        _check_row_lengths(body_lines, body_start, delimiter, n_columns, source)
        problem = _first_bad_cell(body_lines, body_start, delimiter, columns)
        raise JaccliError(f"{source}: {problem or str(exc).splitlines()[0]}") from None
    # loadtxt with usecols does not see extra cells: a ragged row is still an error.
    # One count over the whole text settles it for a plain file; only a file with
    # comments or whitespace columns is walked line by line.
    plain = delimiter is not None and "#" not in body
    if not (plain and body.count(delimiter) == (n_columns - 1) * len(table)):
        _check_row_lengths(body.splitlines(), body_start, delimiter, n_columns, source)
    return table


class TextRows:
    """The rows of a large CSV/TSV file, parsed a chunk at a time, in order.

    The file is counted once (its data lines) so that N is known up front,
    then read sequentially: chunk k+1 waits until chunk k has taken its
    lines, and only the reading is serialised, not the parsing. Memory stays
    one chunk of text whatever the file's size.
    """

    HEAD_BYTES = 1 << 20

    def __init__(self, path, delimiter, input_names, whitespace_ok):
        import threading

        self.path = path
        with open(path, "rb") as handle:
            head = handle.read(self.HEAD_BYTES)
        bom = 3 if head.startswith(b"\xef\xbb\xbf") else 0
        cut = head.rfind(b"\n")
        text = _decode(head[:cut + 1] if cut >= 0 else head, path)
        (self.delimiter, self.n_columns, self.columns, self._next_line,
         body_offset) = _text_layout(text, delimiter, path, input_names, whitespace_ok)
        start = bom + len(text[:body_offset].encode("utf-8"))
        n_rows = _count_data_lines(path, start)
        if n_rows == 0:
            raise JaccliError(f"{path}: zero points (a header and no rows)")
        self.shape = (n_rows, len(self.columns))
        self.ndim, self.dtype = 2, np.dtype(np.float64)
        self._handle = open(path, "rb")
        self._handle.seek(start)
        self._start, self._first_line = start, self._next_line
        self._next_row = 0
        self._failed = False
        self._turn = threading.Condition()

    def __len__(self):
        return self.shape[0]

    def _take_lines(self, start, count):
        """The raw lines holding the next ``count`` data rows, and the first one's number."""
        with self._turn:
            if start < self._next_row:
                if start != 0:
                    raise ValueError("TextRows reads forward, or again from the start")
                self._handle.seek(self._start)  # read again from the top (e.g. for an NPZ's x)
                self._next_row, self._next_line = 0, self._first_line
            self._turn.wait_for(lambda: self._next_row == start or self._failed)
            if self._failed:
                raise JaccliError(f"{self.path}: reading stopped at an earlier error")
            try:
                lines, rows, first_line = [], 0, self._next_line
                while rows < count:
                    line = self._handle.readline()
                    if not line:
                        break
                    lines.append(line)
                    stripped = line.strip()
                    if stripped and not stripped.startswith(b"#"):
                        rows += 1
                if rows < count:
                    raise JaccliError(f"{self.path}: the file changed while it was read")
            except BaseException:
                self._failed = True
                self._turn.notify_all()
                raise
            self._next_line += len(lines)
            self._next_row = start + rows
            self._turn.notify_all()
        return b"".join(lines), first_line

    def __getitem__(self, rows):
        if not isinstance(rows, slice):
            raise TypeError("TextRows takes a slice of rows")
        start, stop, _ = rows.indices(len(self))
        raw, first_line = self._take_lines(start, max(stop - start, 0))
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise JaccliError(f"{self.path}: not UTF-8 text after line {first_line}") from None
        if "\r" in body:
            body = body.replace("\r\n", "\n").replace("\r", "\n")
        return _parse_body(body, self.delimiter, self.n_columns, self.columns, first_line,
                           self.path)

    def __array__(self, dtype=None, copy=None):
        whole = np.concatenate([self[i:i + 65536] for i in range(0, len(self), 65536)])
        return whole if dtype is None else whole.astype(dtype)


_BLANK_LINE = None


def _count_data_lines(path, offset, block=1 << 24):
    """Data lines (not blank, not '#' comments) from ``offset`` on, a block at a time."""
    import re

    global _BLANK_LINE
    if _BLANK_LINE is None:
        _BLANK_LINE = re.compile(rb"(?:^|\n)[ \t\r]*\n")
    count, carry = 0, b""
    with open(path, "rb") as handle:
        handle.seek(offset)
        for data in iter(lambda: handle.read(block), b""):
            data = carry + data
            cut = data.rfind(b"\n")
            complete, carry = data[:cut + 1], data[cut + 1:]
            if b"#" in complete or _BLANK_LINE.search(complete):
                count += sum(1 for line in complete.split(b"\n")[:-1]
                             if line.strip() and not line.strip().startswith(b"#"))
            else:
                count += complete.count(b"\n")
    if carry.strip() and not carry.strip().startswith(b"#"):
        count += 1
    return count


def _data_lines(lines, first_line):
    for number, line in enumerate(lines, first_line + 1):
        if line.strip() and not line.lstrip().startswith("#"):
            yield number, line


def _check_row_lengths(lines, first_line, delimiter, n_columns, source):
    """Every row as wide as the first: a ragged row is an error, not a guess."""
    for number, line in _data_lines(lines, first_line):
        width = line.count(delimiter) + 1 if delimiter else len(line.split())
        if width != n_columns:
            raise JaccliError(f"{source}: line {number} has {width} columns; "
                              f"the first row has {n_columns}")


def _first_bad_cell(lines, first_line, delimiter, columns):
    """The first cell that is not a number, counted from the file's first line."""
    for number, line in _data_lines(lines, first_line):
        cells = [cell.strip() for cell in (line.split(delimiter) if delimiter else line.split())]
        for index in columns:
            if not is_number(cells[index].strip('"')) or cells[index].startswith(' "'):
                return f"line {number}, column {index + 1}: {cells[index][:40]!r} is not a number"
    return None


def _select_columns(header, n_columns, input_names, source):
    """Column indices to take, or None for all columns in order."""
    n_inputs = len(input_names)
    if header is not None and all(name in header for name in input_names):
        twice = [name for name in input_names if header.count(name) > 1]
        if twice:
            raise JaccliError(f"{source}: the header names the input {twice[0]!r} twice")
        return [header.index(name) for name in input_names]
    if n_columns == n_inputs:
        return None
    hint = ""
    if n_columns == 1 and header is not None and any(sep in header[0] for sep in ";| "):
        hint = " (is it separated by ';' or spaces? .csv is read with ',', .tsv/.txt with tabs)"
    if header is not None:
        missing = [name for name in input_names if name not in header]
        raise JaccliError(f"{source}: the header does not name the inputs {missing} and has "
                          f"{n_columns} column(s); expected the inputs by name or exactly "
                          f"{n_inputs} columns{hint}")
    raise JaccliError(f"{source}: {n_columns} columns; the model has {n_inputs} inputs "
                      f"({', '.join(input_names)}): give a header naming them to pick "
                      f"columns by name")
