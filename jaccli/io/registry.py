"""Every file format jaccli reads points from or writes, defined once: ``-o``'s
suffixes, ``--format``'s choices, ``--plot``'s suffixes, ``--points-format``'s
choices, how ``io.points`` recognises a points file, and the help texts and
errors that list them are generated from here. Pure Python (no NumPy), so
``--help`` stays fast.

One suffix means two things: ``.txt`` points are whitespace-separated text
(``POINTS``: as numpy.savetxt writes them), a ``.txt`` output is TSV (``OUTPUTS``).
"""

from dataclasses import dataclass
from typing import Optional


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


@dataclass(frozen=True)
class PointsFormat:
    """A format the points (``--points``, ``--train``) are read in."""

    name: str
    suffixes: tuple
    reader: str  # text, npy, parquet or zarr: the reader in io.points that opens it
    note: str = ""  # what help texts say of it beside its suffix
    names: bool = False  # it can name its columns (a header): --columns picks them by name
    delimiters: tuple = ()  # text: the first of these in the first data line splits it...
    otherwise: Optional[str] = None  # ...else this one (None: runs of spaces)
    magic: bytes = b""  # content sniffer: what a file of this format starts with
    store: bool = False  # a directory (or an array inside one), not a file
    package: Optional[str] = None  # the optional package that reads it (extras.EXTRAS)


#: The points formats, in the order help texts and ``--points-format`` list them.
POINTS = (
    PointsFormat("csv", (".csv",), "text", names=True, delimiters=(",", "\t"), otherwise=","),
    PointsFormat("tsv", (".tsv",), "text", names=True, delimiters=("\t", ",")),
    PointsFormat("txt", (".txt",), "text", "whitespace-separated", names=True,
                 delimiters=("\t", ",")),
    PointsFormat("npy", (".npy",), "npy", magic=b"\x93NUMPY"),
    PointsFormat("zarr", (".zarr",), "zarr", "or an array in one: pts.zarr/group/array",
                 store=True, package="zarr"),
    PointsFormat("parquet", (".parquet",), "parquet", names=True, package="pyarrow"),
)

#: The format of text that no suffix or option names: a tab, else a comma, else spaces.
TEXT_BY_CONTENT = "txt"


def points_format(name):
    """The points format called ``name`` (None: None; an unknown name: None too)."""
    return next((f for f in POINTS if f.name == name), None)


def points_format_of(suffix):
    """The points format of a file suffix ('.CSV' as '.csv'), or None."""
    suffix = suffix.lower()
    return next((f for f in POINTS if suffix in f.suffixes), None)


def sniff_points(head):
    """The points format whose magic bytes ``head`` starts with, or None (text, maybe)."""
    return next((f for f in POINTS if f.magic and head.startswith(f.magic)), None)


def points_sources(formats=POINTS):
    """What a points option reads, for help texts: 'a .csv, .tsv, ... file, a .zarr
    store (...), a pipe, or - for standard input'."""
    def named(f, what=""):
        return "/".join(f.suffixes) + what + (f" ({f.note})" if f.note else "")

    files = join_words([named(f) for f in formats if not f.store])
    stores = [f"a {named(f, ' store')}" for f in formats if f.store]
    return ", ".join([f"a {files} file", *stores, "a pipe, or - for standard input"])


def points_suffixes(formats=POINTS):
    """'.csv, .tsv, .txt, .npy, .parquet or .zarr': the suffixes errors list."""
    return join_words("/".join(f.suffixes) for f in formats)
