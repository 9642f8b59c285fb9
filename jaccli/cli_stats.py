"""The ``confint`` and ``check`` commands: parse, call the library, write.

They share the options and helpers of ``jaccli.cli``; importing this module
registers them on the ``cli`` group.
"""

import sys
import time

import click

from .cli import cli, compute_options, input_paths, load_model, load_points
from .errors import JaccliError


# ---------------------------------------------------------------- confint


@cli.command()
@compute_options
@click.option("--train", "-t", "train_path", type=str, required=True,
              help="Training file (.csv, .tsv/.txt, .npy, or -): the inputs and the targets.")
@click.option("--level", type=float, default=0.95, show_default=True,
              help="Confidence level, strictly between 0 and 1.")
@click.option("--target", "targets", multiple=True, metavar="COLUMN",
              help="Training-file column of each output's target, in output order "
                   "(default: the spec's output names). Repeat for several outputs.")
@click.option("--leverage", "leverage_path", type=str, default=None,
              help="Also write, per training point and output: residual, leverage h_kk, "
                   "approximate leave-one-out residual (.csv, .tsv, .npy, .npz or -).")
def confint(model, spec, dtype, points_path, at, chunk_size, output, fmt, quiet,
            train_path, level, targets, leverage_path):
    """Confidence and prediction intervals of f(x) for a least-squares-fitted model.

    Z, the parameter Jacobian at the training inputs, gives through its SVD
    se = s * sqrt(z^T (Z^T Z)^+ z) with s^2 = SSE / (N_train - rank Z), and
    f(x) +- t * se (the prediction interval adds 1 under the root). Valid near
    a minimum of the training SSE, with homoscedastic independent noise. Each
    output is its own regression. Columns per output y: y, y_se, y_lower,
    y_upper, y_pred_lower, y_pred_upper.

    \b
    Example:
      jaccli confint sample_models/noisy.npz --train sample_models/noisy_train.csv \
          --points sample_models/noisy_points.csv
    """
    import numpy as np

    from . import confint as ci
    from .model import check_finite_points
    from .points import is_streamed
    from .summary import LazyProgress, print_fit_summary, stderr_console
    from .writers import check_output_path, check_output_room, open_writer, output_format

    level = ci.check_level(level)
    model_path, model = model, load_model(model, spec, dtype)
    check_output_path(output, input_paths(model_path, spec, points_path, train_path))
    fmt = output_format(output, fmt)
    if leverage_path is not None:
        check_output_path(leverage_path,
                          input_paths(model_path, spec, points_path, train_path, output))
        lev_fmt = output_format(leverage_path)
        if leverage_path == "-" and output in (None, "-"):
            raise JaccliError("--leverage - needs the intervals in a file (-o): "
                              "both cannot go to standard output")
    if train_path == "-" and points_path == "-":
        raise JaccliError("--train - and --points -: only one of them can be standard input")
    target_names = list(targets) if targets else list(model.output_names)
    if len(target_names) != model.n_outputs:
        raise JaccliError(f"--target given {len(target_names)} time(s); the model has "
                          f"{model.n_outputs} outputs ({', '.join(model.output_names)}): "
                          f"give one target column per output, in that order")
    stdin = sys.stdin.buffer
    X_train, Y_train = ci.read_training_set(train_path, model.input_names, target_names,
                                            stdin if train_path == "-" else None)
    points, source = load_points(model, points_path, at)
    if not is_streamed(points):
        check_finite_points(points, source)

    n_points = len(points)
    check_output_room(output, fmt, (n_points, model.n_outputs, len(ci.INTERVAL_FIELDS)), np.float64)
    started = time.perf_counter()
    try:
        fit = ci.fit_model(model, X_train, Y_train, chunk_size)
    except JaccliError as exc:  # the fit's problems are the training file's
        raise JaccliError(f"{train_path}: {exc}") from None
    chunk = chunk_size or model.chunk_size_for("param_jacobian")
    columns = [f"{y}{ci.COLUMN_SUFFIX[f]}" for y in model.output_names for f in ci.INTERVAL_FIELDS]
    extras = {"x": np.asarray(points, dtype=np.float64), "fields": np.array(ci.INTERVAL_FIELDS),
              "input_names": np.array(model.input_names),
              "output_names": np.array(model.output_names), "level": np.array(level)}
    console = stderr_console()
    progress = LazyProgress(console, n_points, enabled=not quiet and console.is_terminal)
    stdout = sys.stdout
    writers = []
    try:
        writer = open_writer(output, fmt, "confint", (n_points, model.n_outputs, len(ci.INTERVAL_FIELDS)),
                             np.float64, columns, extras, stdout=stdout)
        writers.append(writer)
        for start in range(0, n_points, chunk):
            block = np.asarray(points[start:start + chunk], dtype=np.float64)
            check_finite_points(block, source, first_row=start)
            result = ci.model_intervals(model, fit, block, level)
            writer.write(start, result.reshape(len(block), -1))
            progress.advance(start + len(block))
        if leverage_path is not None:
            lev = np.stack([fit.residuals, fit.leverages, fit.loo_residuals], axis=-1)
            lev_columns = [f"{y}{suffix}" for y in model.output_names
                           for suffix in ("_residual", "_leverage", "_loo_residual")]
            lev_writer = open_writer(
                leverage_path, lev_fmt, "leverage", lev.shape, np.float64, lev_columns,
                {"x": X_train, "fields": np.array(["residual", "leverage", "loo_residual"]),
                 "input_names": np.array(model.input_names),
                 "output_names": np.array(model.output_names)}, stdout=stdout)
            writers.append(lev_writer)
            lev_writer.write(0, lev.reshape(len(lev), -1))
        for w in writers:
            w.commit()
    except BaseException:
        for w in writers:
            w.abort()
        raise
    finally:
        progress.close()
    seconds = time.perf_counter() - started
    if not quiet:
        print_fit_summary(console, model, fit, train_path, n_points, level, seconds)


# ---------------------------------------------------------------- check


@cli.command()
@compute_options
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
def check(model, spec, dtype, points_path, at, chunk_size, output, fmt, quiet, what, tol,
          value_tol):
    """Analytic derivatives against finite differences at your points.

    Each quantity is computed analytically, by central differences and by
    Richardson-extrapolated central differences (with an error estimate).
    An element fails when |analytic - richardson| > tol * scale + 3 * estimate
    (scale: the largest |derivative| of that output). If the points file's
    header also names the outputs (e.g. model.predict from the framework that
    trained the model), jaccli's values are checked against them: this is what
    catches a wrong spec (a transposed kernel, a wrong activation), which
    derivatives of the same wrong function cannot. The table goes to standard
    error; the per-quantity CSV to standard output or -o. Exit 1 on a failure.

    \b
    Example:
      jaccli check sample_models/noisy.npz --points sample_models/noisy_points.csv
    """
    import numpy as np

    from . import numdiff
    from .confint import sniff_header
    from .model import check_finite_points
    from .points import read_points
    from .summary import print_check_report, stderr_console
    from .writers import AtomicFile, check_output_path, output_format

    model_path, model = model, load_model(model, spec, dtype)
    numeric = model if dtype == "float64" else load_model(model_path, spec, "float64")
    check_output_path(output, input_paths(model_path, spec, points_path))
    fmt = output_format(output, fmt)
    if fmt not in ("csv", "tsv"):
        raise JaccliError(f"{output}: check writes a table of errors: use .csv or .tsv, not {fmt}")
    header = sniff_header(points_path)
    has_reference = header is not None and all(y in header for y in model.output_names)
    if what is None:
        quantities = list(numdiff.QUANTITIES) + (["value"] if has_reference else [])
    else:
        quantities = [w.strip() for w in what.split(",") if w.strip()]
        unknown = [w for w in quantities if w not in numdiff.QUANTITIES + ("value",)]
        if unknown or not quantities:
            raise JaccliError(f"--what {what!r}: unknown quantity {', '.join(unknown) or '(none)'}; "
                              f"choose from jacobian, hessdiag, params, value")
        if "value" in quantities and not has_reference:
            raise JaccliError(f"--what value needs reference outputs: a CSV/TSV points file whose "
                              f"header names the inputs and the outputs "
                              f"({', '.join(model.output_names)})")
    points, source = load_points(model, points_path, at)
    points = np.asarray(points, dtype=np.float64)
    check_finite_points(points, source)
    reference = None
    if "value" in quantities:
        reference = read_points(points_path, model.output_names)
        check_finite_points(reference, points_path)
    if tol is None:
        tol = numdiff.DEFAULT_TOL if dtype == "float64" else 1e-4
    model.chunk_size = numeric.chunk_size = chunk_size

    rows, failures = [], []
    for quantity in quantities:
        if quantity == "value":
            qrows, res = numdiff.check_value(model, points, reference, value_tol)
        else:
            qrows, res = numdiff.check_quantity(model, points, quantity, tol, numeric)
        rows += qrows
        if not res["passed"]:
            failures.append((quantity, res))

    fields = ["quantity", "method", "max_abs_error", "max_rel_error", "error_estimate",
              "seconds", "tolerance", "n_bad", "status"]
    delimiter = "," if fmt == "csv" else "\t"

    def cell(value):
        return "" if value is None else (repr(float(value)) if isinstance(value, float) else str(value))

    text = delimiter.join(fields) + "\n" + "".join(
        delimiter.join(cell(row.get(f)) for f in fields) + "\n" for row in rows)
    if output in (None, "-"):
        sys.stdout.write(text)
    else:
        atomic = AtomicFile(output)
        try:
            with open(atomic.temp_path, "w", newline="") as handle:
                handle.write(text)
            atomic.commit()
        except OSError as exc:
            atomic.abort()
            raise JaccliError(f"{output}: cannot write the output: {exc.strerror or exc}") from None
        except BaseException:
            atomic.abort()
            raise

    if not quiet:
        print_check_report(stderr_console(), model, rows, failures, len(points), dtype, tol,
                           value_tol)
    if failures:
        click.get_current_context().exit(1)
