"""JSON outputs: JSON Lines (one object per row) and one JSON document, both streamed.

Each row is an object whose keys are the CSV column names, in order; each
number is written in the CSV's text (the shortest digits that read back as
the same float: Python's repr, or the shortest float32 text), so a JSON
reader and a CSV reader get the same numbers. JSON has no NaN or infinity:
those are written as ``null`` and counted (``nulls``) for the caller to warn
about. ``.json`` is one document, ``{fields of head..., "rows": [objects]}``,
written front to back like the lines, so memory does not grow with the rows.
"""

import json
import sys

import numpy as np

from jaccli.io.writers import Pending, TextStream, float32_texts, writing_to


def json_text(value):
    """One cell of a report as JSON: a finite float as its repr, NaN, infinities and
    None as null, anything else as json.dumps writes it."""
    if value is None:
        return "null"
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return repr(value) if np.isfinite(value) else "null"
    if isinstance(value, (np.integer, np.bool_)):
        value = value.item()
    return json.dumps(value, ensure_ascii=False)


def plain(value):
    """``value`` as JSON can hold it: NumPy scalars and arrays as Python's, NaN and
    infinities as None (null), recursively."""
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [plain(item) for item in value]
    if isinstance(value, (np.generic,)):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def row_template(columns):
    """'{"a":%s,"b":%s}': one row's object, a %-format with a slot per column."""
    keys = [json.dumps(str(name), ensure_ascii=False).replace("%", "%%") for name in columns]
    return "{" + ",".join(f"{key}:%s" for key in keys) + "}"


def number_texts(block):
    """(the text of each number of ``block``, row by row; how many are null)."""
    block = np.asarray(block)
    finite = np.isfinite(block).ravel()
    if block.dtype == np.float32:
        cells = float32_texts(block.ravel())
    else:
        cells = block.astype(np.float64, copy=False).ravel().tolist()  # %s of a float: its repr
    bad = np.flatnonzero(~finite)
    for i in bad.tolist():
        cells[i] = "null"
    return cells, len(bad)


class JsonRowsWriter(TextStream):
    """JSON Lines (``jsonl``) or one JSON document (``json``), to a file or to standard
    output, a few chunks at a time; ``nulls`` counts the NaN and infinities written
    as null."""

    @writing_to
    def __init__(self, path, fmt, columns, stdout=None, head=None):
        self.document = fmt == "json"
        self.template = row_template(columns)
        self.separator = ",\n" if self.document else "\n"
        self.pending = Pending()
        self.nulls, self.rows_written = 0, 0
        self._open(path, stdout, encoding="utf-8")
        if self.document:
            try:
                fields = "".join(f"{json_text(str(key))}: "
                                 f"{json.dumps(plain(value), ensure_ascii=False, allow_nan=False)},\n"
                                 for key, value in (head or {}).items())
                self.handle.write("{\n" + fields + '"rows": [\n')
            except BaseException:
                self.abort()
                raise

    def _lines(self, texts, count):
        """The text of ``count`` rows (their cells ``texts``), after the rows before them."""
        if not count:
            return ""
        body = self.separator.join([self.template] * count) % tuple(texts)
        lead = self.separator if self.document and self.rows_written else ""
        self.rows_written += count
        return lead + body + ("" if self.document else "\n")

    def _emit(self, block):
        texts, nulls = number_texts(block)
        self.nulls += nulls
        self.handle.write(self._lines(texts, len(block)))

    @writing_to
    def write(self, start, rows):
        rows = self.pending.add(rows)
        if rows is not None:
            self._emit(rows)

    def _flush_pending(self):
        rows = self.pending.drain()
        if rows is not None:
            self._emit(rows)

    @writing_to
    def write_cells(self, rows):
        """Rows of mixed cells (text, numbers, None), e.g. a report."""
        self._flush_pending()
        texts = [json_text(value) for row in rows for value in row]
        self.nulls += sum(1 for row in rows for value in row
                          if isinstance(value, float) and not np.isfinite(value))
        self.handle.write(self._lines(texts, len(rows)))

    def _end(self):
        if not self.document:
            return ""
        return "\n]}\n" if self.rows_written else "]}\n"
