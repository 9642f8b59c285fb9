"""``info`` and the computing commands (value, jacobian, hessdiag, hessian, laplacian)."""

import sys
import time
import warnings

import click

from jaccli.cli.options import (cluster_options, compute_options, input_paths, load_model,
                                load_points, model_options, npz_extras, one_stdin,
                                store_attributes)
from jaccli.cli.plotting import plot_options
from jaccli.errors import JaccliError
from jaccli.quantities import QUANTITIES, WITH_QUANTITIES


@click.command()
@model_options
@click.option("--json", "as_json", is_flag=True,
              help="The same facts as JSON, for scripts: inputs, outputs, layers, parameters "
                   "(name, shape, offset, size), scalings, where the spec came from.")
def info(model, spec, dtype, as_json):
    """Architecture and parameter table (name, shape, offset) of MODEL.

    \b
    Examples:
      jaccli info sample_models/canonical.npz
      jaccli info sample_models/canonical.npz --json
    """
    import json

    from jaccli.cli.summary import describe_model

    loaded = load_model(model, spec, dtype)
    facts = loaded.describe()
    out = sys.stdout
    if as_json:
        out.write(json.dumps(facts, indent=2) + "\n")
        return
    out.write(f"model: {facts['model']}\n")
    out.write(f"inputs: {', '.join(facts['inputs'])}\n")
    out.write(f"outputs: {', '.join(facts['outputs'])}\n")
    out.write(f"architecture: {describe_model(loaded)}\n")
    for note in facts["notes"]:
        out.write(f"note: {note}\n")
    if facts["input_scaling"]:
        out.write("input scaling: (x - offset) / scale\n")
    if facts["output_scaling"]:
        out.write("output scaling: y_net * scale + offset\n")
    out.write("\nname\tshape\toffset\tsize\n")
    for param in facts["parameters"]:
        shape = "(" + ", ".join(map(str, param["shape"])) + ("," if len(param["shape"]) == 1 else "") + ")"
        out.write(f"{param['name']}\t{shape}\t{param['offset']}\t{param['size']}\n")
    out.write(f"total\t\t\t{facts['n_parameters']}\n")


def run_quantity(quantity, command, model, spec, dtype, points_path, points_fmt, columns, at,
                 chunk_size, output, fmt, quiet, scheduler, workers, with_=(), plot=None,
                 plot_x=None):
    """Load, check, compute chunk by chunk, write whole-or-nothing, summarise.

    ``with_``: other quantities computed in the same pass, written first
    (their columns before the command's in a table; each by name in NPZ and Zarr).
    ``plot``: also draw the command's own columns against the points (``--plot``).
    """
    from jaccli.quantities import column_names
    from jaccli.io.finite import check_finite_points
    from jaccli.io.points import is_streamed
    from jaccli.cli.plotting import derivative_figure, plot_target
    from jaccli.cli.summary import ColumnStats, stderr_console
    from jaccli.io.writers import Together, check_output_path, open_writer, output_format
    from jaccli.scale.cluster import dask_client

    one_stdin(spec=spec, points=points_path)
    model_path, model = model, load_model(model, spec, dtype)
    inputs = input_paths(model_path, spec, points_path)
    check_output_path(output, inputs)
    fmt = output_format(output, fmt)
    plot = plot_target(plot, inputs, output, plot_x)
    points, source = load_points(model, points_path, at, points_fmt, columns, spec)
    if not is_streamed(points):  # a file read whole is checked whole, up front
        check_finite_points(points, source)
        model.in_dtype(points, source)
    names = [name for name in with_ if name != quantity] + [quantity]
    parts = [(name, model.result_shape(name, len(points))) for name in names]  # streamed: no memory check
    headers = [header for name in names for header in column_names(name, model)]
    figure, sample = derivative_figure(plot, plot_x, model, quantity, len(headers)) \
        if plot else (None, None)
    console = stderr_console()
    stats = None if quiet else ColumnStats(len(headers))
    with dask_client(scheduler, workers) as client:
        started = time.perf_counter()  # a local cluster's start-up is not the computation's
        writer = Together(open_writer(output, fmt, quantity, parts[-1][1], model.dtype, headers,
                                      npz_extras(model, points), stdout=sys.stdout,
                                      attributes=store_attributes(model, command), parts=parts,
                                      head=json_head(command, model, len(points))), figure)
        chunks = result_chunks(client, model, names, sample.tap(points) if sample else points,
                               chunk_size, source)
        # an overflow inside the network is counted and reported once, not warned per chunk
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            non_finite = write_chunks(chunks, writer, console, len(points), quiet, stats)
    report_run(console, model, command, names, headers, stats, len(points),
               time.perf_counter() - started, non_finite, quiet, output, fmt, parts, figure)


def result_chunks(client, model, names, points, chunk_size, source):
    """(start, rows) of every quantity of ``names``, side by side, chunk by chunk in
    order: on the cluster, or in this process."""
    from jaccli.scale.cluster import quantity_chunks

    if client is not None:
        return quantity_chunks(client, model, names, points,
                               chunk_size or min(map(model.chunk_size_for, names)), source)
    if len(names) == 1:
        return model.iter_chunks(names[0], points, chunk_size, source)
    return ((start, side_by_side(results)) for start, results in
            model.iter_together(names, points, chunk_size, source))


def json_head(command, model, n_points):
    """The fields of a JSON document's head (-o out.json), before its rows."""
    return {"command": command, "model": str(model.path), "inputs": list(model.input_names),
            "outputs": list(model.output_names), "n_points": n_points}


def report_run(console, model, command, names, headers, stats, n_points, seconds, non_finite,
               quiet, output, fmt, parts, figure):
    """The warnings (always) and the summary (unless --quiet) of a computing command."""
    from jaccli.cli.summary import warn

    if non_finite:
        json_note = " (written as null: JSON has no NaN)" if fmt in ("json", "jsonl") else ""
        warn(console, f"{non_finite:,} result(s) are NaN or infinite: the network overflows "
                      f"at some points (an exp layer, extreme inputs, or float32?){json_note}")
    if quiet:
        return
    summarise(console, model, command, names, headers, stats, n_points, seconds)
    if output not in (None, "-"):
        shape = parts[-1][1]
        shapes = ", ".join(f"{name} {part}" for name, part in parts) if len(parts) > 1 else shape
        console.print(f"wrote {output} ({fmt}, shape {shapes})")
    if figure is not None:
        console.print(f"wrote {figure.target} (figure, {figure.format})")


def summarise(console, model, command, names, columns, stats, n_points, seconds):
    """The summary of ``names`` (the ``--with`` quantities, then the command's own)."""
    from jaccli.cli.summary import print_summary
    from jaccli.quantities import column_names

    label = " --with ".join([command, ",".join(names[:-1])]) if len(names) > 1 else command
    groups, offset = [], 0
    for index, name in enumerate(names):
        width = len(column_names(name, model))
        own = index == len(names) - 1
        groups += summary_groups(model, name, command if own else name, offset, width,
                                 len(names) > 1)
        offset += width
    print_summary(console, model, label, columns, stats, n_points, seconds, groups)


def side_by_side(results):
    """Several chunk results as one block of rows, each result's columns in turn."""
    import numpy as np

    return np.concatenate([part.reshape(len(part), -1) for part in results.values()], axis=1)


def write_chunks(chunks, writer, console, n_points, quiet, stats=None):
    """Write each (start, result) of ``chunks`` in order, then commit (abort on any
    error); returns how many results are NaN or infinite."""
    import numpy as np

    from jaccli.cli.summary import LazyProgress
    from jaccli.io.writers import written_whole

    progress = LazyProgress(console, n_points, enabled=not quiet and console.is_terminal)
    following = hasattr(chunks, "follow")  # a cluster's chunks report the cluster's progress
    if following:
        chunks.follow(progress.advance)
    non_finite = 0
    try:
        with written_whole(writer):
            for start, result in chunks:
                rows = result.reshape(len(result), -1)
                writer.write(start, rows)
                if stats is not None:
                    stats.update(rows)
                non_finite += rows.size - int(np.count_nonzero(np.isfinite(rows)))
                if not following:
                    progress.advance(start + len(rows))
    finally:
        progress.close()
    return non_finite


def summary_groups(model, quantity, label, offset, width, named=False):
    """The summary's tables of one quantity's ``width`` columns from ``offset``: one
    for per-output quantities (value, laplacian; titled ``label`` when ``named``),
    else one per output."""
    if QUANTITIES[quantity].per_output:
        return [(label if named else "outputs", list(range(offset, offset + width)))]
    per_output, n = width // model.n_outputs, model.n_inputs
    if quantity == "hessian":  # symmetric: each pair (j, l) once, j <= l
        return [(f"{y}: {label} (symmetric: each pair once)",
                 [offset + k * per_output + j * n + l for j in range(n) for l in range(j, n)])
                for k, y in enumerate(model.output_names)]
    return [(f"{y}: {label}", list(range(offset + k * per_output, offset + (k + 1) * per_output)))
            for k, y in enumerate(model.output_names)]


def _parse_with(ctx, param, text):
    if text is None:
        return ()
    names = [name.strip() for name in text.split(",")]
    for name in names:
        if name not in WITH_QUANTITIES:
            raise click.BadParameter(f"{name!r} is not one of {', '.join(WITH_QUANTITIES)} "
                                     f"(comma-separated)", ctx, param)
    return tuple(dict.fromkeys(names))


def with_option(func):
    return click.option(
        "--with", "with_", callback=_parse_with, default=None, metavar="Q[,Q...]",
        help=f"Also compute these ({', '.join(WITH_QUANTITIES)}) in the same pass; "
             "a table gets their columns first, NPZ each array by name.")(func)


PLOT_X_HELP = ("The inputs --plot draws the derivatives against, comma-separated, at most 6 "
               "(default: per output, the 6 with the largest mean |derivative|).")


def _quantity_command(quantity, summary, example, plot=False):
    def command(**kwargs):
        run_quantity(quantity, quantity, **kwargs)

    command.__doc__ = f"{summary}\n\n\b\nExample{'s' if plot else ''}:\n  {example}"
    if plot:
        command.__doc__ += (f"\n  jaccli {quantity} sample_models/sincos.npz --points "
                            f"sample_models/sincos_uniform.csv -o out.csv --plot {quantity}.png")
        command = plot_options(command, plot_x=PLOT_X_HELP, plot_x_metavar="A[,B...]")
    return click.command(name=quantity)(compute_options(cluster_options(with_option(command))))


@click.command()
@compute_options
@cluster_options
@with_option
@click.option("--wrt", type=click.Choice(["inputs", "params"]), default="inputs",
              show_default=True, help="Differentiate with respect to the inputs or the parameters.")
@plot_options(plot_x=PLOT_X_HELP, plot_x_metavar="A[,B...]")
def jacobian(wrt, **kwargs):
    """dy/dx at each point: shape (N, m, n); with --wrt params, dy/dtheta (N, m, P).

    With --plot FILE, also a figure: dy/dx_j against x_j for the inputs that
    matter most (by mean |dy/dx_j|), per output; the points' density beyond
    2,000 points, from a seeded sample of at most 20,000.

    \b
    Examples:
      jaccli jacobian sample_models/canonical.npz --at 1,1
      jaccli jacobian sample_models/canonical.npz --at 1,1 --wrt params
      jaccli jacobian sample_models/sincos.npz --points sample_models/sincos_uniform.csv \\
          -o dydx.csv --plot dydx.png
    """
    quantity = "jacobian" if wrt == "inputs" else "param_jacobian"
    if wrt == "params" and kwargs["plot"] is not None:
        raise JaccliError("--plot draws dy/dx against x: not with --wrt params")
    run_quantity(quantity, "jacobian" if wrt == "inputs" else "jacobian --wrt params", **kwargs)


COMMANDS = [info] + [_quantity_command(*entry) for entry in [
    ("value", "y = f(x) at each point: shape (N, m); CSV column per output.",
     "jaccli value sample_models/canonical.npz --at 1,1"),
    ("hessdiag", "d2y/dx_j2, the Hessian's diagonal: shape (N, m, n), by forward propagation. "
     "With --plot FILE, also a figure: d2y/dx_j2 against x_j, per output.",
     "jaccli hessdiag sample_models/sincos.npz --points sample_models/sincos_points.csv -o hd.npy",
     True),
    ("hessian", "The full input Hessian d2y/dx_i dx_j: shape (N, m, n, n).",
     "jaccli hessian sample_models/sincos.npz --at 0.5,-0.2"),
    ("laplacian", "sum_j d2y/dx_j2, the Hessian's trace: shape (N, m).",
     "jaccli laplacian sample_models/sincos.npz --points sample_models/sincos_points.csv"),
]] + [jacobian]
