"""The ``confint`` and ``check`` commands: parse, call the library, write."""

import sys
import time

import click

from jaccli.cli.options import (OUTPUT_FORMATS, POINT_FORMATS, TABLE_FORMATS, cluster_options,
                                compute_options, input_paths, load_model, load_points, npz_extras,
                                one_stdin, open_point_table, store_attributes)
from jaccli.cli.plotting import plot_options
from jaccli.errors import JaccliError
from jaccli.io import registry


@click.command()
@compute_options
@cluster_options
@click.option("--train", "-t", "train_path", type=click.Path(allow_dash=True), required=True,
              help=f"Training set, the inputs and the targets: {registry.points_sources()}.")
@click.option("--train-format", "train_fmt", type=click.Choice(POINT_FORMATS), default=None,
              help="Format of --train (default: from the extension, else the content).")
@click.option("--train-columns", default=None, metavar="A,B,...",
              help="Columns of --train holding the inputs, in the spec's order: header names "
                   "or numbers from 1 (the targets: --target).")
@click.option("--level", type=float, default=0.95, show_default=True,
              help="Confidence level, strictly between 0 and 1.")
@click.option("--target", "targets", multiple=True, metavar="COLUMN",
              help="Training-file column of each output's target, in output order: a header "
                   "name or a number from 1 (default: the spec's output names). Repeat for "
                   "several outputs.")
@click.option("--leverage", "leverage_path", type=click.Path(allow_dash=True), default=None,
              help="Also write, per training point and output: residual, leverage h_kk, "
                   f"approximate leave-one-out residual ({registry.suffix_list(OUTPUT_FORMATS)}, "
                   f"or - for standard output).")
@plot_options(plot_x="The input on the figure's x axis (default: the one whose range is "
                     "largest).")
def confint(model, spec, dtype, points_path, points_fmt, columns, at, chunk_size, output, fmt,
            quiet, scheduler, workers, train_path, train_fmt, train_columns, level, targets,
            leverage_path, plot, plot_x):
    """Confidence and prediction intervals of f(x) for a least-squares-fitted model.

    Z, the parameter Jacobian at the training inputs, gives through its SVD
    se = s * sqrt(z^T (Z^T Z)^+ z) with s^2 = SSE / (N_train - rank Z), and
    f(x) +- t * se (the prediction interval adds 1 under the root). Valid near
    a minimum of the training SSE, with homoscedastic independent noise. Each
    output is its own regression. Columns per output y: y, y_se, y_lower,
    y_upper, y_pred_lower, y_pred_upper; -o out.json writes one document,
    the fit's statistics, then the rows. With --plot FILE, also a figure:
    the prediction with both intervals against one input (--plot-x).

    \b
    Examples:
      jaccli confint sample_models/noisy.npz --train sample_models/noisy_train.csv \\
          --points sample_models/noisy_points.csv
      jaccli confint sample_models/noisy.npz --train sample_models/noisy_train.csv \\
          --points sample_models/noisy_points.csv -o ci.json --plot ci.png
    """
    import numpy as np

    from jaccli.stats import confint as ci
    from jaccli.io.finite import check_finite_points
    from jaccli.io.points import is_streamed
    from jaccli.cli.plotting import plot_target
    from jaccli.cli.summary import print_fit_summary, stderr_console, warn, warn_nulls
    from jaccli.io.writers import Together, check_output_room, open_writer, written_whole
    from jaccli.scale.cluster import dask_client
    from jaccli.cli.compute import write_chunks

    level = ci.check_level(level)
    one_stdin(spec=spec, train=train_path, points=points_path)
    model_path, model = model, load_model(model, spec, dtype)
    fmt, lev_fmt = _output_formats(model_path, spec, points_path, train_path, output, fmt,
                                   leverage_path)
    plot = plot_target(plot, input_paths(model_path, spec, points_path, train_path,
                                         leverage_path), output, plot_x)
    train_rows, train_source = ci.training_table(
        train_path, model, targets, sys.stdin.buffer if train_path == "-" else None, train_fmt,
        train_columns)
    points, source = load_points(model, points_path, at, points_fmt, columns, spec)
    if not is_streamed(points):
        check_finite_points(points, source)
    shape = (len(points), model.n_outputs, len(ci.INTERVAL_FIELDS))
    check_output_room(output, fmt, shape, np.float64)
    console = stderr_console()
    with dask_client(scheduler, workers) as client:
        started = time.perf_counter()  # a local cluster's start-up is not the computation's
        fit, chunks, figure = _fit_and_intervals(client, model, train_rows, train_source,
                                                 train_path, points, level, chunk_size, source,
                                                 plot, plot_x)
        writer = Together(open_writer(
            output, fmt, "confint", shape, np.float64, ci.interval_columns(model),
            npz_extras(model, points, ci.INTERVAL_FIELDS, level), stdout=sys.stdout,
            attributes=store_attributes(model, "confint"),
            head=_fit_head(model, fit, train_path, len(points), level)), figure)
        if leverage_path is None:
            write_chunks(chunks, writer, console, len(points), quiet)
        else:  # the leverages are committed after the intervals, or not at all
            with written_whole(_write_leverages(model, fit, leverage_path, lev_fmt, writer)):
                write_chunks(chunks, writer, console, len(points), quiet)
    if not quiet:
        print_fit_summary(console, model, fit, train_path, len(points), level,
                          time.perf_counter() - started)
        if plot is not None:
            console.print(f"wrote {plot} (figure)")
    for message in fit.warnings(model.output_names):
        warn(console, message)
    warn_nulls(console, writer)


def _fit_and_intervals(client, model, train_rows, train_source, train_path, points, level,
                       chunk_size, source, plot=None, plot_x=None):
    """The fit on the training rows, the intervals' chunks and the figure (None without
    --plot): in this process, or on the cluster (the fit as a tree reduction of
    per-block factors)."""
    from jaccli.cli.plotting import confint_figure
    from jaccli.stats import confint as ci

    if client is None:
        X_train, Y_train = ci.split_training_rows(train_rows, train_source, model.n_inputs)
        fit = ci.fit_model(model, X_train, Y_train, chunk_size, train_path)
    else:
        from jaccli.stats.confint_cluster import fit_on_cluster

        fit = fit_on_cluster(client, model, train_rows, model.n_inputs, chunk_size, train_source)
    figure, sample = confint_figure(plot, plot_x, model, fit, level) if plot else (None, None)
    if sample is not None:
        points = sample.tap(points)  # the figure's sample of the points, as they are read
    if client is None:
        return fit, ci.iter_intervals(model, fit, points, level, chunk_size, source), figure
    from jaccli.stats.confint_cluster import interval_chunks

    return fit, interval_chunks(client, model, fit, points, level, chunk_size, source), figure


def _fit_head(model, fit, train_path, n_points, level):
    """The fit's statistics per output, the head of a JSON document (-o out.json)."""
    from jaccli.stats import confint as ci

    facts = []
    for k, (name, st) in enumerate(zip(model.output_names, fit.stats)):
        facts.append({"output": name, "n_train": st.n_train, "q": st.q, "rank": st.rank,
                      "condition_number": st.condition_number, "dof": st.dof, "s": st.s,
                      "t_quantile": ci.t_quantile(st, level),
                      "sum_leverages": float(fit.leverages[:, k].sum()),
                      "max_leverage": float(fit.leverages[:, k].max()),
                      "loo_score": fit.loo_scores[k]})
    return {"command": "confint", "model": str(model.path), "train": str(train_path),
            "level": level, "n_points": n_points, "fit": facts}


def _output_formats(model_path, spec, points_path, train_path, output, fmt, leverage_path):
    """The formats of -o and --leverage, each output checked before any work."""
    from jaccli.io.writers import check_output_path, output_format

    check_output_path(output, input_paths(model_path, spec, points_path, train_path))
    fmt = output_format(output, fmt)
    if leverage_path is None:
        return fmt, None
    check_output_path(leverage_path, input_paths(model_path, spec, points_path, train_path, output))
    if leverage_path == "-" and output in (None, "-"):
        raise JaccliError("--leverage - needs the intervals in a file (-o): "
                          "both cannot go to standard output")
    return fmt, output_format(leverage_path)


def _write_leverages(model, fit, path, fmt, intervals_writer):
    """Open and fill the --leverage output (committed by the caller after the intervals)."""
    import numpy as np

    from jaccli.io.writers import open_writer

    fields = ["residual", "leverage", "loo_residual"]
    lev = np.stack([fit.residuals, fit.leverages, fit.loo_residuals], axis=-1)
    columns = [f"{y}_{field}" for y in model.output_names for field in fields]
    try:
        writer = open_writer(path, fmt, "leverage", lev.shape, np.float64, columns,
                             npz_extras(model, fit.X_train, fields), stdout=sys.stdout,
                             attributes=store_attributes(model, "confint --leverage"))
        writer.write(0, lev.reshape(len(lev), -1))
    except BaseException:
        intervals_writer.abort()
        raise
    return writer


@click.command()
@compute_options(formats=TABLE_FORMATS)
@click.option("--what", default=None, metavar="LIST",
              help="Comma-separated: jacobian, hessdiag, params, value. Default: "
                   "jacobian,hessdiag,params, plus value when the points file's header "
                   "also names the outputs (reference outputs).")
@click.option("--tol", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Derivative tolerance, relative to each output's largest derivative "
                   "(default 1e-6; 1e-4 with --dtype float32).")
@click.option("--value-tol", type=click.FloatRange(min=0, min_open=True), default=1e-5,
              show_default=True,
              help="Tolerance of value against the reference outputs, relative to their scale.")
@click.option("--all", "check_all", is_flag=True,
              help="params: check every point and parameter (default: a seeded sample of "
                   "64 points and 128 parameters).")
@plot_options
def check(model, spec, dtype, points_path, points_fmt, columns, at, chunk_size, output, fmt,
          quiet, what, tol, value_tol, check_all, plot):
    """Analytic derivatives against finite differences at your points.

    Each quantity is computed analytically, by central differences and by
    Richardson-extrapolated central differences (with an error estimate).
    An element fails when |analytic - richardson| > tol * scale + 3 * estimate
    (scale: the largest |derivative| of that output); one whose difference
    stencil crosses a kink (a relu unit changes side within the steps) is
    skipped instead, and counted. params is checked at a seeded sample of
    points and parameters unless --all. If the points file's
    header also names the outputs (e.g. model.predict from the framework that
    trained the model), jaccli's values are checked against them: this is what
    catches a wrong spec (a transposed kernel, a wrong activation), which
    derivatives of the same wrong function cannot. The table goes to standard
    error; the per-quantity table to standard output or -o (CSV, TSV, JSON
    Lines, or one JSON document with the verdict). With --plot FILE, also a
    figure: each element's |analytic - numerical| against its error estimate,
    log-log, with the allowed difference and the failures marked. Exit 1 on a
    failure.

    \b
    Examples:
      jaccli check sample_models/noisy.npz --points sample_models/noisy_points.csv
      jaccli check sample_models/noisy.npz --points sample_models/noisy_points.csv \\
          -o check.json --plot check.png
    """
    import numpy as np

    from jaccli.verify import check as checking
    from jaccli.io.finite import check_finite_points
    from jaccli.cli.plotting import plot_target
    from jaccli.cli.summary import print_check_report, stderr_console, warn_nulls
    from jaccli.io.writers import check_output_path, output_format

    one_stdin(spec=spec, points=points_path)
    model_path, model = model, load_model(model, spec, dtype)
    numeric = model if dtype == "float64" else load_model(model_path, spec, "float64")
    inputs = input_paths(model_path, spec, points_path)
    check_output_path(output, inputs)
    fmt = output_format(output, fmt)
    if fmt not in TABLE_FORMATS:
        raise JaccliError(f"{output}: check writes a table of errors: use "
                          f"{registry.suffix_list(TABLE_FORMATS)}, not {fmt}")
    plot = plot_target(plot, inputs, output)
    table = open_point_table(points_path, at, points_fmt, columns, spec)  # read once
    has_reference = checking.names_the_outputs(table, model)
    quantities = checking.quantities_to_check(what, has_reference, model.output_names)
    points, source = load_points(model, points_path, at, columns=columns, table=table)
    points = np.asarray(points, dtype=np.float64)
    check_finite_points(points, source)
    reference = checking.read_reference(table, model) if "value" in quantities else None
    report = checking.check(model, points, quantities, tol, value_tol, reference, numeric,
                            chunk_size, source, sample=not check_all)
    warn_nulls(stderr_console(), _write_report(report, model, output, fmt, plot))
    if not quiet:
        print_check_report(stderr_console(), model, report, dtype)
        if plot is not None:
            stderr_console().print(f"wrote {plot} (figure)")
    if not report.passed:
        click.get_current_context().exit(1)


def _write_report(report, model, output, fmt, plot):
    """check's table (and its figure with --plot), whole or not at all; returns its writer."""
    from jaccli.cli.plotting import table_figure
    from jaccli.io.writers import Together, open_writer, written_whole
    from jaccli.plots import plot_check

    head = {"command": "check", "model": str(model.path), "n_points": report.n_points,
            "tol": report.tol, "value_tol": report.value_tol, "passed": report.passed}
    figure = table_figure(plot, lambda: plot_check(report))
    writer = open_writer(output, fmt, "check", (len(report.rows), len(report.columns)), "float64",
                         report.columns, stdout=sys.stdout, head=head)
    with written_whole(Together(writer, figure)) as both:
        both.write_cells([[row.get(f) for f in report.columns] for row in report.rows])
    return writer


COMMANDS = [confint, check]
