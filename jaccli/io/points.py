"""Reading the points in any of ``registry.POINTS``'s formats (CSV, TSV, whitespace
text, NPY, Zarr, Parquet) from any readable path or standard input, or ``--at``.

The format is the one asked for (``--points-format``), else the extension's
(any case), else the content's: NPY by its magic bytes, otherwise text, whose
delimiter is found in the first data line as the format's record says (csv: a
comma, or a tab when the line has tabs and no comma; tsv, txt or unknown: a
tab, else a comma, else spaces).
A text table may start with a header: a first row most of whose cells are
not numbers (``is_header``, the one rule every reader uses). Which columns
hold the inputs is ``selection.select_columns``'s one rule.

A regular file is read lazily when large (NPY by pread, text and Parquet a
block at a time), so memory stays bounded. Anything else (a pipe, ``/dev/stdin``,
``<(cmd)``, standard input) is read once, front to back, as it cannot be
read twice: held in memory when small, else copied to a temporary file as
it is read and then read from there like a large file.
"""

import io
import os
import re
import stat
from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from jaccli.errors import JaccliError, ParameterError, param
from jaccli.messages import clip
from jaccli.io import registry
from jaccli.io.blocks import BlockRows
from jaccli.io.npy_points import NpyRows, NpyTable
from jaccli.io.selection import Wanted, names_all, parse_picks, placeholder_names, select_columns
from jaccli.io.zarr_store import ZarrTable, is_zarr_path

# A larger CSV/TSV file is parsed a block at a time (TextRows), so memory stays
# bounded; a smaller one is read whole. Blocks are faster too (a 63 MB file with
# pyarrow: 2.8 s and 145 MB peak in 4 MB blocks, 6.8 s and 440 MB whole), so only
# a file of about two blocks is read whole.
STREAM_TEXT_BYTES = int(os.environ.get("JACCLI_STREAM_TEXT_BYTES", 8 << 20))


def parse_inline_point(text, n_inputs):
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise ParameterError(f"{param('at')} {clip(text)!r}: expected {n_inputs} comma-separated "
                             "numbers") from None
    if len(values) != n_inputs:
        raise ParameterError(f"{param('at')} {clip(text)!r}: the model has {n_inputs} inputs, "
                             f"got {len(values)} numbers")
    return np.array([values])


def input_columns(input_names, columns=None, option=param("columns")):
    """What a points file must hold: the inputs, in the spec's order, by header name or
    picked by ``columns`` (the text of the parameter ``option``: header names or numbers from 1)."""
    return Wanted(list(input_names), picks=parse_picks(columns), option=option,
                  placeholders=placeholder_names(input_names, "x"))


def read_points(path, input_names, stdin=None, fmt=None, columns=None):
    """An (N, n) array (read lazily for a large file) of the points in ``path``.

    ``path``: a file, a pipe, or ``-`` for ``stdin`` (a binary stream);
    ``fmt``: a name in ``registry.POINTS`` (default: from the extension, else the
    content); ``columns``: --columns (header names or numbers from 1).
    """
    return open_points(path, fmt, stdin).take([input_columns(input_names, columns)])


def open_points(path, fmt=None, stdin=None):
    """A points table (``TextTable``, ``NpyTable``, ``ZarrTable``): its format found and its head read,
    its columns chosen by ``take``. A regular file is not read whole when large."""
    form = registry.points_format(fmt)
    if fmt is not None and form is None:
        raise JaccliError(f"unknown points format {fmt!r} "
                          f"(use {', '.join(registry.names(registry.POINTS))})")
    if path == "-":
        return _read_stream(stdin if stdin is not None else io.BytesIO(), "<stdin>", form)
    if (form.store if form else is_zarr_path(path)):  # a directory, read by zarr
        return ZarrTable(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise JaccliError(f"{path}: no such points file") from None
    except OSError as exc:
        raise JaccliError(f"{path}: cannot read the points: {exc.strerror or exc}") from None
    if stat.S_ISDIR(mode):
        raise JaccliError(f"{path}: is a directory, not a points file")
    suffix = os.path.splitext(path)[1]
    form = form or registry.points_format_of(suffix)
    if form is not None or not suffix:
        return _open_path(path, mode, form)
    try:  # an extension that names no format (.json, .dat): the content decides
        return _open_path(path, mode, None)
    except JaccliError as exc:
        raise JaccliError(f"{exc.marked} (read by its content: '{suffix.lower()}' is no points "
                          f"format; {param('points_fmt')} "
                          f"{'|'.join(registry.names(registry.POINTS))} names one)") from None


def _open_path(path, mode, form):
    """``form``: the ``registry.PointsFormat`` asked for or named by the suffix, or None."""
    try:
        if not stat.S_ISREG(mode):  # a pipe or a device: read once, front to back
            with open(path, "rb") as handle:
                return _read_stream(handle, path, form)
        return _open_regular(path, form, path)
    except OSError as exc:
        raise JaccliError(f"{path}: cannot read the points: {exc.strerror or exc}") from None


def _reader(form, head):
    """Which reader opens a file of format ``form`` (None: found from ``head``, its first bytes)."""
    form = form or registry.sniff_points(head)
    return form.reader if form else "text"


def _name(form):
    return form.name if form else None


def _open_regular(path, form, source):
    if form is not None and form.reader == "parquet":
        from jaccli.io.parquet import ParquetTable

        return ParquetTable(path, source)
    with open(path, "rb") as handle:
        head = handle.read(TextRows.HEAD_BYTES)
        size = os.fstat(handle.fileno()).st_size
    if _reader(form, head) == "npy":
        return NpyTable.from_file(path, source)
    if size > STREAM_TEXT_BYTES and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return TextTable.streamed(path, head, _name(form), source)
    with open(path, "rb") as handle:
        return TextTable(_decode(handle.read(), source), source, _name(form))


def _read_stream(handle, source, form):
    """A pipe, a device or standard input, read once, front to back: held in memory
    up to STREAM_TEXT_BYTES; a larger one is copied to a temporary file as it is
    read, then read from there as a large file is, so memory stays bounded."""
    import shutil
    import tempfile

    data = handle.read(STREAM_TEXT_BYTES + 1)
    if len(data) <= STREAM_TEXT_BYTES:
        if _reader(form, data) == "npy":
            return NpyTable.from_bytes(data, source)
        return TextTable(_decode(data, source), source, _name(form))
    spool = tempfile.NamedTemporaryFile(prefix="jaccli-points-", suffix=".part")
    try:
        try:
            spool.write(data)
            del data
            shutil.copyfileobj(handle, spool, 1 << 20)
            spool.flush()
        except OSError as exc:
            raise JaccliError(f"{source}: cannot copy the points to a temporary file in "
                              f"{tempfile.gettempdir()}: {exc.strerror or exc}") from None
        table = _open_regular(spool.name, form, source)
    except BaseException:
        spool.close()
        raise
    table.keep = spool  # deleted when the table and the rows it gave are gone
    return table


def text_header(path):
    """The header cells of a text points file, or None (no header, not text, unreadable)."""
    try:
        return open_points(path).header
    except JaccliError:
        return None


def is_streamed(points):
    """Points read chunk by chunk (so checked chunk by chunk) rather than held whole."""
    return isinstance(points, (NpyRows, BlockRows, np.memmap)) or getattr(points, "streamed", False)


@dataclass
class Layout:
    """A text table's head: how to split it, its header, and where its data start."""

    delimiter: Optional[str]  # None: runs of spaces
    width: int
    header: Optional[List[str]]
    body_line: int  # the 0-based line number of the first line after the header
    body_offset: int  # that line's offset in the text the layout was read from


def sniff_delimiter(line, fmt):
    """The delimiter of text format ``fmt``'s record found in ``line``: csv: a comma (a
    tab if the line has tabs and no comma); tsv, txt or unknown: a tab, else a comma,
    else runs of spaces (numpy.savetxt's .txt). None: runs of spaces."""
    form = registry.points_format(fmt)
    if form is None or form.reader != "text":
        form = registry.points_format(registry.TEXT_BY_CONTENT)
    return next((d for d in form.delimiters if d in line), form.otherwise)


def text_layout(text, fmt, source):
    """The ``Layout`` of a table from its head (whole lines, '\\r' already removed)."""
    first, offset, line = _first_data_line(text)
    if first is None:
        raise JaccliError(f"{source}: zero points (the file is empty)")
    delimiter = sniff_delimiter(line, fmt)
    cells = _split(line.rstrip("\r"), delimiter)
    if not is_header(cells):
        return Layout(delimiter, len(cells), None, first, offset)
    end = text.find("\n", offset)
    return Layout(delimiter, len(cells), cells, first + 1, len(text) if end < 0 else end + 1)


class TextTable:
    """A CSV/TSV/TXT table: its layout read from its head; ``take`` parses its columns.

    Held as text (a small file, a pipe, standard input), or ``streamed``: a
    large regular file, parsed a chunk at a time (``TextRows``).
    """

    def __init__(self, text, source, fmt, path=None, layout=None, start=None):
        if text is not None and "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        self.text, self.source, self.path, self.start = text, source, path, start
        self.keep = None  # what the rows must keep alive (a spooled pipe's temporary file)
        self.layout = layout or text_layout(text, fmt, source)
        self.header, self.width = self.layout.header, self.layout.width
        if text is not None and _first_data_line(text[self.layout.body_offset:])[0] is None:
            raise JaccliError(f"{source}: zero points (a header and no rows)")

    @classmethod
    def streamed(cls, path, head, fmt, source):
        """A large file: the layout from its first megabyte, the rows read when taken."""
        bom = 3 if head.startswith(b"\xef\xbb\xbf") else 0
        cut = head.rfind(b"\n")
        text = _decode(head[:cut + 1] if cut >= 0 else head, source)
        layout = text_layout(text, fmt, source)
        start = bom + len(text[:layout.body_offset].encode("utf-8"))
        return cls(None, source, fmt, path=path, layout=layout, start=start)

    def names(self, names):
        """Whether the header names every one of ``names`` (case-insensitively)."""
        return names_all(self.header, names, self.source)

    def take(self, groups):
        """The columns holding ``groups`` (a list of ``selection.Wanted``), (N, k)."""
        columns = select_columns(self.header, self.width, groups, self.source)
        layout = self.layout
        if self.text is None:
            rows = TextRows(self.path, layout, columns, self.start, self.source)
            rows.keep = self.keep
            return rows
        return _parse_body(self.text[layout.body_offset:], layout.delimiter, layout.width,
                           columns, layout.body_line, self.source)


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
        raise JaccliError(f"{source}: binary data, not a text table (points files are "
                          f"{registry.points_suffixes()}; {param('points_fmt')} names the format)")
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


def _parse_body(body, delimiter, n_columns, columns, body_start, source):
    """The numbers of the data lines in ``body`` (text, or ASCII bytes); errors
    counted from the file's lines.

    pyarrow, when installed, parses a block it can take whole (the same
    numbers, several times faster); anything else, and every error, goes
    through numpy.loadtxt and the checks below, which name the bad cell.
    """
    from jaccli.io.arrow import parse_table

    data = body if isinstance(body, bytes) else body.encode("utf-8")
    table = parse_table(data, delimiter, n_columns, columns)
    if table is not None:
        return table
    if isinstance(body, bytes):
        body = body.decode("ascii")
        if "\r" in body:
            body = body.replace("\r\n", "\n").replace("\r", "\n")
            data = body.encode("ascii")
    try:
        with np.errstate(all="ignore"):
            # bytes: loadtxt's C reader parses them faster than a StringIO
            table = np.loadtxt(io.BytesIO(data), delimiter=delimiter, ndmin=2,
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


class TextRows(BlockRows):
    """The rows of a large CSV/TSV file, parsed a block (4 MB of text) at a time.

    The file's data lines are counted first, so that N is known up front.
    """

    HEAD_BYTES = 1 << 20
    # 4 MB: a 63 MB file in 2.8 s and 145 MB peak; 16 MB blocks: 3.8 s, 220 MB; 1 MB: 4.9 s
    BLOCK_BYTES = 1 << 22

    def __init__(self, path, layout, columns, start, source=None):
        self.path, self.source = path, source or path
        self.delimiter, self.n_columns, self.columns = layout.delimiter, layout.width, columns
        n_rows = _count_data_lines(path, start)
        if n_rows == 0:
            raise JaccliError(f"{self.source}: zero points (a header and no rows)")
        super().__init__(n_rows, len(self.columns))
        self._handle = open(path, "rb")
        self._start, self._first_line = start, layout.body_line
        self._rewind()

    def _rewind(self):
        self._handle.seek(self._start)
        self._line, self._carry = self._first_line, b""

    def _read_block(self):
        """The rows of the next whole lines, about BLOCK_BYTES of them."""
        data = self._carry + self._handle.read(self.BLOCK_BYTES)
        cut = data.rfind(b"\n")
        while cut < 0:  # a line longer than a block, or the last line
            more = self._handle.read(self.BLOCK_BYTES)
            if not more:
                cut = len(data) - 1
                break
            data += more
            cut = data.rfind(b"\n")
        if not data:
            return None
        raw, self._carry = data[:cut + 1], data[cut + 1:]
        first_line, self._line = self._line, self._line + raw.count(b"\n")
        if not raw.isascii():
            try:
                raw = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise JaccliError(f"{self.source}: not UTF-8 text after line {first_line}") from None
            if "\r" in raw:
                raw = raw.replace("\r\n", "\n").replace("\r", "\n")
        return _parse_body(raw, self.delimiter, self.n_columns, self.columns, first_line,
                           self.source)


# A blank line inside a block is "\n", spaces, "\n"; a blank first line has no
# "\n" before it and is matched on its own: an alternation "(?:^|\n)" in one
# pattern makes the regex engine try a match at every byte (30x slower).
_BLANK_LINE = re.compile(rb"\n[ \t\r]*\n")
_BLANK_FIRST_LINE = re.compile(rb"[ \t\r]*\n")


def _count_data_lines(path, offset, block=1 << 24):
    """Data lines (not blank, not '#' comments) from ``offset`` on, a block at a time."""
    count, carry = 0, b""
    with open(path, "rb") as handle:
        handle.seek(offset)
        for data in iter(lambda: handle.read(block), b""):
            data = carry + data
            cut = data.rfind(b"\n")
            complete, carry = data[:cut + 1], data[cut + 1:]
            if (b"#" in complete or _BLANK_FIRST_LINE.match(complete)
                    or _BLANK_LINE.search(complete)):
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


