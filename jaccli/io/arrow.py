"""pyarrow, when it is installed (``pip install 'jaccli[arrow]'``).

Three things are faster with it, none different:
- parsing a CSV/TSV body (``parse_table``): pyarrow's parser reads the same
  numbers as numpy.loadtxt, correctly rounded, several times faster. Any
  block it will not take whole (a comment, a bad cell, a ragged row) goes
  back to jaccli's own parser, which names the line and column;
- formatting results (``format_rows``): pyarrow writes the shortest
  round-trip digits of each float64; its notation is turned into Python's
  repr (``1.0``, ``-0.0``, ``1e-05``, ``1e-07``), so the text is byte for
  byte what jaccli writes without pyarrow;
- Parquet points and outputs (``ParquetRows``, ``ParquetWriter``).
``JACCLI_NO_ARROW=1`` makes jaccli behave as if pyarrow were missing.
"""

import os

import numpy as np

from jaccli.extras import install_hint

INSTALL_HINT = install_hint("pyarrow")
_MODULE = []


def pyarrow_or_none():
    """The pyarrow module, or None when it is missing (or JACCLI_NO_ARROW is set)."""
    if os.environ.get("JACCLI_NO_ARROW"):
        return None
    if not _MODULE:
        try:
            import pyarrow
            import pyarrow.compute  # noqa: F401
            import pyarrow.csv  # noqa: F401
        except ImportError:
            pyarrow = None
        _MODULE.append(pyarrow)
    return _MODULE[0]


# ---------------------------------------------------------------- reading text


def parse_table(data, delimiter, n_columns, columns):
    """The float64 cells of ``columns`` of a headerless CSV/TSV body (bytes), or None.

    None when pyarrow is missing or cannot take the block whole: a '#'
    anywhere (numpy.loadtxt reads it as a comment), whitespace-separated
    columns, or any cell or row it refuses. The caller's own parser then
    reads the block, or names its bad cell.
    """
    pa = pyarrow_or_none()
    if pa is None or delimiter is None or b"#" in data:
        return None
    import pyarrow.csv as pacsv

    names = [f"c{i}" for i in range(n_columns)]
    wanted = [names[i] for i in columns]
    # use_threads=False: pyarrow's own reader threads could outlive the interpreter and
    # abort it at exit ("terminate called without an active exception", exit 134, after
    # the output was written: apache/arrow#34314), 2 runs in 16 of a piped CSV here.
    # jaccli's chunk threads parse blocks in parallel already; a 4 MiB block parses as fast.
    try:
        table = pacsv.read_csv(
            pa.py_buffer(data),
            read_options=pacsv.ReadOptions(column_names=names, use_threads=False),
            parse_options=pacsv.ParseOptions(delimiter=delimiter),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.float64() for name in wanted}, include_columns=wanted,
                null_values=[], strings_can_be_null=False, quoted_strings_can_be_null=False))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None
    out = np.empty((table.num_rows, len(wanted)))
    for k, name in enumerate(wanted):
        out[:, k] = table.column(name).to_numpy()
    return out


# ---------------------------------------------------------------- writing text

# Python's repr writes a float in positional notation when 1e-4 <= |x| < 1e16,
# else in scientific notation with at least two exponent digits; pyarrow (its
# shortest round-trip formatter) switches at 1e-6 and 1e10 and writes one
# exponent digit. The digits are the same; these rules fix the notation.
_REPR_FIXED = (1e-4, 1e16)
_ARROW_FIXED = (1e-6, 1e10)


def _patch(pa, text, mask, fix):
    """``text`` with ``fix`` applied to the strings under ``mask`` (a boolean array) only."""
    where = np.flatnonzero(mask)
    if len(where) == 0:
        return text
    import pyarrow.compute as pc

    return pc.replace_with_mask(text, pa.array(mask), fix(pc.take(text, pa.array(where))))


def repr_strings(values):
    """Python's repr of each float64 of a 1-D array, as a pyarrow string array."""
    pa = pyarrow_or_none()
    import pyarrow.compute as pc

    text = pc.cast(pa.array(values), pa.string())
    mag = np.abs(values)
    both_positional = (mag >= _REPR_FIXED[0]) & (mag < _ARROW_FIXED[1])
    # "1" and "-0" are "1.0" and "-0.0" in repr
    integral = (both_positional & (values == np.round(values))) | (values == 0)
    text = _patch(pa, text, integral, lambda s: pc.binary_join_element_wise(s, ".0", ""))
    # both scientific: "1e-7" is "1e-07"
    both_scientific = ((mag < _ARROW_FIXED[0]) & (mag > 0)) | (mag >= _REPR_FIXED[1])
    text = _patch(pa, text, both_scientific,
                  lambda s: pc.replace_substring_regex(s, r"e([+-])(\d)$", r"e\10\2"))  # RE2: \1, "0", \2

    def scientific(s):  # 1e-6 <= |x| < 1e-4: "0.0000125" is "1.25e-05"
        for zeros, exponent in (("0000", "05"), ("00000", "06")):
            s = pc.replace_substring_regex(s, rf"^(-?)0\.{zeros}([1-9])(\d+)$",
                                           rf"\1\2.\3e-{exponent}")
            s = pc.replace_substring_regex(s, rf"^(-?)0\.{zeros}([1-9])$", rf"\1\2e-{exponent}")
        return s

    text = _patch(pa, text, (mag >= _ARROW_FIXED[0]) & (mag < _REPR_FIXED[0]), scientific)
    # 1e10 <= |x| < 1e16 is positional in repr: rare, written by repr itself
    large = (mag >= _ARROW_FIXED[1]) & (mag < _REPR_FIXED[1])
    return _patch(pa, text, large, lambda s: pa.array([repr(v) for v in values[large].tolist()],
                                                      pa.string()))


def format_rows(rows, delimiter):
    """The text ``writers.format_rows`` writes for float64 rows (repr of each
    float, one line per row), or None: pyarrow missing, or not float64."""
    pa = pyarrow_or_none()
    if pa is None or rows.size == 0 or rows.dtype != np.float64 or rows.ndim != 2:
        return None
    import pyarrow.compute as pc

    cells = [repr_strings(np.ascontiguousarray(rows[:, k])) for k in range(rows.shape[1])]
    lines = pc.binary_join_element_wise(*cells, delimiter) if len(cells) > 1 else cells[0]
    lines = pc.binary_join_element_wise(lines, "", "\n")  # each line, then "\n"
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32 if lines.type == pa.string()
                            else np.int64)
    start, stop = offsets[lines.offset], offsets[lines.offset + len(lines)]
    return lines.buffers()[2].to_pybytes()[start:stop].decode("ascii")
