"""Every file format jaccli writes, defined once: ``-o``'s suffixes, ``--format``'s
choices, ``--plot``'s suffixes, and the help texts and errors that list them are
generated from here. Pure Python (no NumPy), so ``--help`` stays fast.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Format:
    name: str
    suffixes: tuple  # the first is the one help texts name first
    cells: bool = False  # holds text cells: a report table (names, a verdict) fits in it
    streams: bool = False  # can be written to standard output or a pipe, a chunk at a time


#: The output formats of ``-o`` / ``--format``, in the order help texts list them.
OUTPUTS = (
    Format("csv", (".csv",), cells=True, streams=True),
    Format("tsv", (".tsv", ".txt"), cells=True, streams=True),
    Format("jsonl", (".jsonl", ".ndjson"), cells=True, streams=True),
    Format("json", (".json",), cells=True, streams=True),
    Format("npy", (".npy",)),
    Format("npz", (".npz",)),
    Format("zarr", (".zarr",)),
    Format("parquet", (".parquet",)),
)

#: The figure formats of ``--plot`` (matplotlib's savefig formats of the same names).
FIGURES = (Format("png", (".png",)), Format("svg", (".svg",)), Format("pdf", (".pdf",)))

#: The format of an output path with no extension (/dev/null, a pipe) and of standard output.
DEFAULT_OUTPUT = "csv"


def names(formats=OUTPUTS):
    """The formats' names, in order: ``--format``'s choices."""
    return [f.name for f in formats]


def with_cells(formats=OUTPUTS):
    """The formats a table of mixed cells (a report: names, numbers, a verdict) fits in."""
    return [f.name for f in formats if f.cells]


def streaming(formats=OUTPUTS):
    """The formats standard output (or a pipe) can take."""
    return [f.name for f in formats if f.streams]


def by_suffix(formats=OUTPUTS):
    """{".csv": "csv", ".txt": "tsv", ...}: the format of each suffix."""
    return {suffix: f.name for f in formats for suffix in f.suffixes}


def suffix_list(chosen, formats=OUTPUTS, last="or"):
    """The suffixes of the ``chosen`` formats as a phrase: '.csv, .tsv/.txt or .npz'."""
    parts = ["/".join(f.suffixes) for f in formats if f.name in chosen]
    return join_words(parts, last)


def join_words(parts, last="or"):
    """'a, b or c'."""
    parts = list(parts)
    if len(parts) <= 1:
        return "".join(parts)
    return f"{', '.join(parts[:-1])} {last} {parts[-1]}"
