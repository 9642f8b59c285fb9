"""What every command shares: its options, and loading the model and the points."""

import functools
import sys

import click

from ..errors import JaccliError


def model_options(func):
    @click.argument("model", type=click.Path(dir_okay=True))
    @click.option("--spec", type=click.Path(), default=None,
                  help="Architecture YAML (default: MODEL with .yaml/.yml, or the spec inside MODEL).")
    @click.option("--dtype", type=click.Choice(["float64", "float32"]), default="float64",
                  show_default=True, help="Floating-point type of the computation.")
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper


def compute_options(func):
    @model_options
    @click.option("--points", "-p", "points_path", type=str, default=None,
                  help="Points file: .csv, .tsv/.txt, .npy, .zarr (a store, or an array in one: "
                       "pts.zarr/group/array), or - for CSV on standard input.")
    @click.option("--at", "at", type=str, default=None,
                  help="One point inline, e.g. --at 1,2.5.")
    @click.option("--points-format", type=click.Choice(["csv", "tsv", "txt", "npy", "zarr"]),
                  default=None, help="Format of --points, overriding its extension.")
    @click.option("--chunk-size", type=click.IntRange(min=1), default=None,
                  help="Points per batch (default: chosen from the layer widths).")
    @click.option("-o", "--output", type=str, default=None,
                  help="Output file: .csv, .tsv, .npy, .npz or .zarr (default: CSV on standard "
                       "output).")
    @click.option("--format", "fmt", type=click.Choice(["csv", "tsv", "npy", "npz", "zarr"]),
                  default=None, help="Output format, overriding the extension of -o.")
    @click.option("--quiet", "-q", is_flag=True, help="No summary on standard error.")
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
    from jaccli.formats.tensors import sibling_spec_paths

    return [model, spec, *others] + sibling_spec_paths(model)


def load_model(model, spec, dtype):
    from ..model import load

    return load(model, spec=spec, dtype=dtype)


def load_points(model, points_path, at, points_format=None):
    """(points (N, n), their source's name); a large file is read lazily, a chunk at a time."""
    from jaccli.io.points import parse_inline_point, read_points

    if points_path is not None and at is not None:
        raise JaccliError("give either --points FILE or --at 1,2,..., not both")
    if points_path is None and at is None:
        raise JaccliError("give the points with --points FILE or one point with --at 1,2,...")
    if at is not None:
        return parse_inline_point(at, model.n_inputs), "--at"
    stdin = sys.stdin.buffer if points_path == "-" else None
    return read_points(points_path, model.input_names, stdin, fmt=points_format), points_path


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
