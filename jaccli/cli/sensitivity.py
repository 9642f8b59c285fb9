"""The ``sensitivity`` command: parse, call the library, write the table."""

import sys
import time
import warnings

import click

from jaccli.cli.options import (cluster_options, compute_options, input_paths, load_model,
                                load_points, one_stdin)
from jaccli.cli.plotting import plot_options
from jaccli.errors import JaccliError
from jaccli.io import registry

# The table has text columns: -o and --format offer only the formats that can hold it,
# and NPZ (its numbers as an array, the names beside them).
SENSITIVITY_FORMATS = registry.with_cells() + ["npz"]

BOUNDS_HELP = ("Each input's distribution, for the Sobol' bound: one item for every input "
               "(uniform:0:1 or normal:SD), one per input in order (uniform:0:1,normal:0.5), or by "
               "name (x1=uniform:0:1,x2=normal:0.5); 'uniform' or 'normal' alone takes the range "
               "or the standard deviation from the points. Default: uniform on the points' range.")


@click.command()
@compute_options(formats=SENSITIVITY_FORMATS)
@cluster_options
@click.option("--bootstrap", "-B", type=int, default=1000, show_default=True,
              help="Poisson bootstrap replicates for the intervals of nu and E|dy/dx|.")
@click.option("--level", type=float, default=0.95, show_default=True,
              help="Confidence level of the intervals, strictly between 0 and 1.")
@click.option("--bounds", type=str, default=None, metavar="SPEC", help=BOUNDS_HELP)
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the bootstrap weights (the same seed gives the same intervals "
                   "whatever the chunk size).")
@plot_options
def sensitivity(model, spec, dtype, points_path, points_fmt, columns, at, chunk_size, output,
                fmt, quiet, scheduler, workers, bootstrap, level, bounds, seed, plot):
    """Derivative-based global sensitivity of each output to each input.

    Over the points, per output y and input x: nu = E[(dy/dx)^2] (the DGSM of
    Sobol' and Kucherenko) with a bootstrap interval, E|dy/dx| (Morris's mu*)
    with its interval, E[dy/dx], the share of nu in the sum over the inputs,
    Var(y), and an upper bound on the total Sobol' index: (b - a)^2 nu /
    (pi^2 Var y) for x uniform on [a, b], s^2 nu / Var y for x normal with
    standard deviation s (valid for independent inputs that the points
    sample). One row per (output, input): output, input, nu, nu_lower,
    nu_upper, mean_abs, mean_abs_lower, mean_abs_upper, mean, share,
    output_variance, bound, bound_kind (.csv, .tsv/.txt, .jsonl/.ndjson, .json
    or .npz). With --scheduler or --workers, blocks of points are summed on a
    Dask cluster and the sums merged here in row order (equal to the
    in-process table to rounding). With --plot FILE, also a figure: per
    output, the inputs as bars of nu sorted, with their intervals, and the
    bounds beside them.

    \b
    Examples:
      jaccli sensitivity sample_models/screen7.npz \\
          --points sample_models/screen7_points.csv --bounds uniform:0:1
      jaccli sensitivity sample_models/screen7.npz \\
          --points sample_models/screen7_points.csv --bounds uniform:0:1 \\
          -o dgsm.json --plot dgsm.png
    """
    from jaccli.cli.plotting import plot_target
    from jaccli.cli.summary import (LazyProgress, print_sensitivity_summary, stderr_console, warn,
                                    warn_nulls)
    from jaccli.io.writers import check_output_path, output_format
    from jaccli.scale.cluster import dask_client
    from jaccli.stats.sensitivity import SensitivityAccumulator
    from jaccli.stats.sensitivity import sensitivity as run

    one_stdin(spec=spec, points=points_path)
    model_path, model = model, load_model(model, spec, dtype)
    inputs = input_paths(model_path, spec, points_path)
    check_output_path(output, inputs)
    fmt = output_format(output, fmt)
    if fmt not in SENSITIVITY_FORMATS:
        raise JaccliError(f"{output}: the sensitivity table has text columns (the names, the bound's "
                          f"kind): write {registry.suffix_list(SENSITIVITY_FORMATS)}, not {fmt}")
    plot = plot_target(plot, inputs, output)
    # the options are checked before the points are read
    SensitivityAccumulator(model.input_names, model.output_names, bootstrap, level, bounds, seed)
    points, source = load_points(model, points_path, at, points_fmt, columns, spec)
    console = stderr_console()
    with dask_client(scheduler, workers) as client:
        progress = LazyProgress(console, len(points), enabled=not quiet and console.is_terminal)
        started = time.perf_counter()  # a local cluster's start-up is not the computation's
        try:
            # an overflow inside the network is reported once (result.warnings), not per chunk
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                result = run(model, points, bootstrap, level, bounds, seed, chunk_size, source,
                             progress=progress.advance, client=client)
        finally:
            progress.close()
        seconds = time.perf_counter() - started
    writer = write_table(result, output, fmt, model, plot)
    for warning in result.warnings():
        warn(console, warning)
    warn_nulls(console, writer)
    if not quiet:
        print_sensitivity_summary(console, model, result, seconds)
        if output not in (None, "-"):
            console.print(f"wrote {output} ({fmt}, {len(result.rows())} rows)")
        if plot is not None:
            console.print(f"wrote {plot} (figure)")


def json_head(model, result):
    """What a JSON document of the table holds before its rows: the run's settings."""
    return {"command": "sensitivity", "model": str(model.path), "n_points": result.n_points,
            "bootstrap": result.bootstrap, "level": result.level, "seed": result.seed,
            "bounds": {name: b.label for name, b in zip(result.input_names, result.bounds)}}


def write_table(result, output, fmt, model, plot=None):
    """The table, whole or not at all: CSV/TSV/JSON one row per (output, input); NPZ its
    numbers (m, n, fields) with the names, the bounds' kinds and the settings beside
    them. ``plot``: the figure too, written with it or not at all. Returns the writer."""
    import numpy as np

    from jaccli.cli.plotting import table_figure
    from jaccli.io.writers import Together, open_writer, written_whole
    from jaccli.plots import plot_sensitivity

    columns = result.COLUMNS
    m, n = len(result.output_names), len(result.input_names)
    table = np.stack([result.column(name).reshape(m, n) for name in result.NUMERIC], axis=-1)
    extras = {"fields": np.array(result.NUMERIC), "input_names": np.array(result.input_names),
              "output_names": np.array(result.output_names),
              "bound_kind": np.array([b.label for b in result.bounds]),
              "level": np.array(result.level), "bootstrap": np.array(result.bootstrap),
              "seed": np.array(result.seed), "n_points": np.array(result.n_points)}
    shape = table.shape if fmt == "npz" else (m * n, len(columns))
    figure = table_figure(plot, lambda: plot_sensitivity(result))
    with written_whole(Together(open_writer(output, fmt, "sensitivity", shape, np.float64,
                                            columns, extras, stdout=sys.stdout,
                                            head=json_head(model, result)), figure)) as writer:
        if fmt == "npz":
            writer.write(0, table)
        else:
            writer.write_cells([[row[c] for c in columns] for row in result.rows()])
    return writer

