"""What every command shares: its options, loading the model and the points, writing whole."""

import functools
import os
import stat
import sys

import click

from jaccli.errors import JaccliError
from jaccli.io import registry  # pure Python: --help loads no NumPy

POINT_FORMATS = registry.names(registry.POINTS)
OUTPUT_FORMATS = registry.names()
#: The formats a report table (names, numbers, a verdict) can be written in.
TABLE_FORMATS = registry.with_cells()


def model_options(func):
    @click.argument("model", type=click.Path(dir_okay=True))
    @click.option("--spec", type=click.Path(allow_dash=True), default=None,
                  help="Architecture YAML, or - for standard input (default: MODEL with "
                       ".yaml/.yml, or the spec inside MODEL).")
    @click.option("--dtype", type=click.Choice(["float64", "float32"]), default="float64",
                  show_default=True, help="Floating-point type of the computation.")
    @click.option("--output-name", default=None, metavar="NAME",
                  help="Which output of a model with several (an ONNX graph's output or a "
                       "Keras model's output layer: an actor-critic's 'actions' or 'value'); "
                       "without it such a model is refused with their names.")
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper


def point_table_options(name, short, described, columns_tail, required=False):
    """--NAME/SHORT, --NAME-format and the columns option of a table of points (--points and
    --columns, --train and --train-columns): one shape for every such table."""
    columns = "--columns" if name == "points" else f"--{name}-columns"

    def decorate(func):
        for option in reversed([
            # no default=None beside required: click 8.3 reads it as a value given
            click.option(f"--{name}", short, f"{name}_path", type=click.Path(allow_dash=True),
                         required=required, help=f"{described}: {registry.points_sources()}."),
            click.option(f"--{name}-format", f"{name}_fmt", type=click.Choice(POINT_FORMATS),
                         default=None, help=f"Format of --{name} (default: from the extension, "
                                            "else the content)."),
            click.option(columns, default=None, metavar="A,B,...",
                         help=f"Columns of --{name} holding the inputs, in the spec's order: header "
                              f"names or numbers from 1{columns_tail}."),
        ]):
            func = option(func)
        return func

    return decorate


def _output_help(formats):
    listed = registry.suffix_list(formats, last="or")
    return (f"Output file: {listed}; no extension (a pipe, /dev/null): CSV "
            f"(default: CSV on standard output; --format jsonl for JSON Lines there).")


def compute_options(func=None, *, formats=OUTPUT_FORMATS):
    """The options of a command that reads points and writes a table: ``@compute_options``,
    or ``@compute_options(formats=TABLE_FORMATS)`` for one that writes a report table."""
    if func is None:
        return functools.partial(compute_options, formats=formats)

    @model_options
    @point_table_options("points", "-p", "Points", " (default: the header's names of the inputs)")
    @click.option("--at", "at", type=str, default=None,
                  help="One point inline, e.g. --at 1,2.5.")
    @click.option("--chunk-size", type=click.IntRange(min=1), default=None,
                  help="Points per batch (default: chosen from the layer widths).")
    @click.option("-o", "--output", type=click.Path(allow_dash=True), default=None,
                  help=_output_help(formats))
    @click.option("--format", "fmt", type=click.Choice(formats), default=None,
                  help="Output format, overriding the extension of -o.")
    @click.option("--quiet", "-q", is_flag=True,
                  help="No summary on standard error (warnings are still shown).")
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper


def cluster_options(func):
    """--scheduler / --workers: the chunks on a Dask cluster (the jaccli[dask] extra)."""
    @click.option("--scheduler", metavar="ADDRESS", default=None,
                  help="Run the chunks on this Dask scheduler (e.g. tcp://host:8786); the "
                       "workers read NPY and Zarr points at the same path (shared storage).")
    @click.option("--workers", type=click.IntRange(min=1), default=None,
                  help="Run the chunks on a local Dask cluster of N processes, one thread each.")
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper


def input_paths(model, spec, *others):
    """Every file a run reads, for check_output_path: the spec found beside the model too."""
    from jaccli.formats.discovery import sibling_spec_paths

    return [model, spec, *others] + sibling_spec_paths(model)


def one_stdin(**paths):
    """Refuse two options reading standard input (``--spec -`` and ``--points -``)."""
    dashes = [f"--{name.replace('_', '-')} -" for name, path in paths.items() if path == "-"]
    if len(dashes) > 1:
        raise JaccliError(f"{' and '.join(dashes)}: only one of them can be standard input")


def load_model(model, spec, dtype, output_name=None):
    """The model; a warning about its file (tensors its spec never uses) goes to standard
    error whatever --quiet says."""
    import warnings

    from jaccli.errors import JaccliWarning
    from jaccli.model import load

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", JaccliWarning)
        loaded = load(model, spec=spec, dtype=dtype, output_name=output_name)
    for warning in caught:
        if issubclass(warning.category, JaccliWarning):
            from jaccli.cli.summary import warn

            warn(None, warning.message)
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename,
                                   warning.lineno)
    return loaded


def open_point_table(points_path, at, points_fmt=None, columns=None, spec=None):
    """The points table of --points (None with --at), its options checked."""
    from jaccli.io.points import open_points

    if points_path is not None and at is not None:
        raise JaccliError("give either --points FILE or --at 1,2,..., not both")
    if at is not None:
        if columns is not None or points_fmt is not None:
            option = "--columns" if columns is not None else "--points-format"
            raise JaccliError(f"{option} is about a --points file; --at takes the inputs "
                              f"in the spec's order")
        return None
    if points_path is None:
        hint = " (standard input is a pipe: did you mean --points -?)" \
            if spec != "-" and _stdin_holds_data() else ""
        raise JaccliError(f"give the points with --points FILE or one point with --at 1,2,...{hint}")
    return open_points(points_path, points_fmt, sys.stdin.buffer if points_path == "-" else None)


def load_points(model, points_path, at, points_fmt=None, columns=None, spec=None, table=None):
    """(points (N, n), their source's name); a large file is read lazily, a chunk at a time.
    ``table``: the points table if the caller opened it already (``open_point_table``)."""
    from jaccli.io.points import input_columns, parse_inline_point

    if table is None:
        table = open_point_table(points_path, at, points_fmt, columns, spec)
    if table is None:
        return parse_inline_point(at, model.n_inputs), "--at"
    return table.take([input_columns(model.input_names, columns)]), table.source


def _stdin_holds_data():
    """Standard input is a pipe or a file (not a terminal, not /dev/null): data meant for us?"""
    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode
    except (AttributeError, OSError, ValueError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISREG(mode)


def npz_extras(model, points, fields=None, level=None):
    """The arrays an NPZ output holds beside the result, as a function: called only
    when the NPZ is written, so streamed points are not read whole for a CSV output."""
    import numpy as np

    def extras():
        arrays = {"x": np.asarray(points, dtype=np.float64)}
        if fields is not None:
            arrays["fields"] = np.array(fields)
        arrays["input_names"] = np.array(model.input_names)
        arrays["output_names"] = np.array(model.output_names)
        if level is not None:
            arrays["level"] = np.array(level)
        return arrays

    return extras


def store_attributes(model, command):
    """What a Zarr output records beside its arrays."""
    return {"input_names": list(model.input_names), "output_names": list(model.output_names),
            "command": command}


