"""The command line: parse, call the library, write. Nothing else lives here.

NumPy, h5py and rich are imported inside the commands, so ``--help`` is fast.
"""

import functools
import os
import sys
import time

import click

from .errors import JaccliError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


class UserError(click.ClickException):
    exit_code = EXIT_USER_ERROR


class JaccliGroup(click.Group):
    """Turns a JaccliError into one 'Error: ...' line and exit 2, Ctrl-C into 130."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except JaccliError as exc:
            if ctx.params.get("debug"):
                raise
            raise UserError(str(exc)) from None
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except BrokenPipeError:
            # The reader of our standard output went away (| head): not an error of ours.
            sys.stderr.close()
            ctx.exit(0)


@click.group(cls=JaccliGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="jaccli")
@click.option("--debug", is_flag=True, help="Show a traceback for errors too.")
def cli(debug):
    """Exact derivatives of a saved MLP at your points: values, input and
    parameter Jacobians, Hessians, Laplacians.

    \b
    Example:
      jaccli jacobian sample_models/canonical.npz --at 1,1
    """


def main():
    cli(prog_name="jaccli")


# ---------------------------------------------------------------- shared options


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
                  help="Points file: .csv, .tsv/.txt, .npy, or - for CSV on standard input.")
    @click.option("--at", "at", type=str, default=None,
                  help="One point inline, e.g. --at 1,2.5.")
    @click.option("--chunk-size", type=click.IntRange(min=1), default=None,
                  help="Points per batch (default: chosen from the layer widths).")
    @click.option("-o", "--output", type=str, default=None,
                  help="Output file: .csv, .tsv, .npy or .npz (default: CSV on standard output).")
    @click.option("--format", "fmt", type=click.Choice(["csv", "tsv", "npy", "npz"]),
                  default=None, help="Output format, overriding the extension of -o.")
    @click.option("--quiet", "-q", is_flag=True, help="No summary on standard error.")
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper


def load_model(model, spec, dtype):
    from .model import load

    return load(model, spec=spec, dtype=dtype)


def load_points(model, points_path, at):
    """The points as an (N, n) array (NPY stays memory-mapped)."""
    from .points import parse_inline_point, read_points

    if (points_path is None) == (at is None):
        raise JaccliError("give the points with --points FILE or one point with --at 1,2,...")
    if at is not None:
        return parse_inline_point(at, model.n_inputs), "--at"
    stdin = sys.stdin.buffer if points_path == "-" else None
    return read_points(points_path, model.input_names, stdin), points_path


def run_quantity(quantity, command, model, spec, dtype, points_path, at, chunk_size,
                 output, fmt, quiet):
    """Load, check, compute chunk by chunk, write whole-or-nothing, summarise."""
    import numpy as np

    from .columns import column_names
    from .model import check_finite_points
    from .summary import ColumnStats, LazyProgress, print_summary, stderr_console
    from .writers import check_output_path, open_writer, output_format

    model_path, model = model, load_model(model, spec, dtype)
    fmt = output_format(output, fmt)
    check_output_path(output, [model_path, spec, points_path])
    points, source = load_points(model, points_path, at)
    if not isinstance(points, np.memmap):
        check_finite_points(points, source)  # a file read whole is checked whole, up front
    n_points = len(points)
    shape = model.output_shape(quantity, n_points)
    columns = column_names(quantity, model)
    extras = {"x": np.asarray(points, dtype=np.float64),
              "input_names": np.array(model.input_names),
              "output_names": np.array(model.output_names)}
    chunk = chunk_size or model.chunk_size_for(quantity)
    console = stderr_console()
    stats = None if quiet else ColumnStats(len(columns))
    progress = LazyProgress(console, n_points, enabled=not quiet and console.is_terminal)
    writer = open_writer(output, fmt, quantity, shape, model.dtype, columns, extras,
                         stdout=sys.stdout)
    started = time.perf_counter()
    try:
        for start in range(0, n_points, chunk):
            block = np.asarray(points[start:start + chunk], dtype=np.float64)
            check_finite_points(block, source, first_row=start)
            result = model.compute_chunk(quantity, block.astype(model.network.in_offset.dtype))
            rows = result.reshape(len(block), -1)
            writer.write(start, rows)
            if stats is not None:
                stats.update(rows)
            progress.advance(start + len(block))
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    finally:
        progress.close()
    seconds = time.perf_counter() - started
    if not quiet:
        m, per_output = model.n_outputs, len(columns) // model.n_outputs
        if quantity in ("value", "laplacian"):
            groups = [("outputs", list(range(len(columns))))]
        else:
            groups = [(f"{y}: {command}", list(range(k * per_output, (k + 1) * per_output)))
                      for k, y in enumerate(model.output_names)]
        print_summary(console, model, command, columns, stats, n_points, seconds, groups)
        if output not in (None, "-"):
            console.print(f"wrote {output} ({fmt}, shape {shape})")


# ---------------------------------------------------------------- commands


@cli.command()
@model_options
def info(model, spec, dtype):
    """Architecture and parameter table (name, shape, offset) of MODEL.

    \b
    Example:
      jaccli info sample_models/canonical.npz
    """
    loaded = load_model(model, spec, dtype)
    out = sys.stdout
    from .summary import describe_model

    out.write(f"model: {loaded.path}\n")
    out.write(f"inputs: {', '.join(loaded.input_names)}\n")
    out.write(f"outputs: {', '.join(loaded.output_names)}\n")
    out.write(f"architecture: {describe_model(loaded)}\n")
    net = loaded.network
    if net.in_offset.any() or (net.in_inv_scale != 1).any():
        out.write("input scaling: (x - offset) / scale\n")
    if net.out_offset.any() or (net.out_scale != 1).any():
        out.write("output scaling: y_net * scale + offset\n")
    out.write("\nname\tshape\toffset\tsize\n")
    for param in loaded.parameter_table:
        shape = "(" + ", ".join(map(str, param.shape)) + ("," if len(param.shape) == 1 else "") + ")"
        out.write(f"{param.name}\t{shape}\t{param.offset}\t{param.size}\n")
    out.write(f"total\t\t\t{loaded.n_parameters}\n")


def _quantity_command(quantity, summary, example):
    def command(**kwargs):
        run_quantity(quantity, command_name, **kwargs)

    command_name = quantity
    command.__doc__ = f"{summary}\n\n\b\nExample:\n  {example}"
    return command


for _name, _summary, _example in [
    ("value", "y = f(x) at each point: shape (N, m); CSV column per output.",
     "jaccli value sample_models/canonical.npz --at 1,1"),
    ("hessdiag", "d2y/dx_j2, the Hessian's diagonal: shape (N, m, n), by forward propagation.",
     "jaccli hessdiag sample_models/sincos.npz --points pts.csv -o hd.npy"),
    ("hessian", "The full input Hessian d2y/dx_i dx_j: shape (N, m, n, n).",
     "jaccli hessian sample_models/sincos.npz --at 0.5,-0.2"),
    ("laplacian", "sum_j d2y/dx_j2, the Hessian's trace: shape (N, m).",
     "jaccli laplacian sample_models/sincos.npz --points pts.csv"),
]:
    cli.command(name=_name)(compute_options(_quantity_command(_name, _summary, _example)))


@cli.command()
@compute_options
@click.option("--wrt", type=click.Choice(["inputs", "params"]), default="inputs",
              show_default=True, help="Differentiate with respect to the inputs or the parameters.")
def jacobian(wrt, **kwargs):
    """dy/dx at each point: shape (N, m, n); with --wrt params, dy/dtheta (N, m, P).

    \b
    Examples:
      jaccli jacobian sample_models/canonical.npz --at 1,1
      jaccli jacobian sample_models/canonical.npz --at 1,1 --wrt params
    """
    quantity = "jacobian" if wrt == "inputs" else "param_jacobian"
    run_quantity(quantity, "jacobian" if wrt == "inputs" else "jacobian --wrt params", **kwargs)


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
    from .summary import LazyProgress, describe_model, stderr_console
    from .writers import check_output_path, open_writer, output_format

    level = ci.check_level(level)
    model_path, model = model, load_model(model, spec, dtype)
    fmt = output_format(output, fmt)
    check_output_path(output, [model_path, spec, points_path, train_path])
    if leverage_path is not None:
        lev_fmt = output_format(leverage_path)
        check_output_path(leverage_path, [model_path, spec, points_path, train_path, output])
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
    if not isinstance(points, np.memmap):
        check_finite_points(points, source)

    started = time.perf_counter()
    fit = ci.fit_model(model, X_train, Y_train, chunk_size)
    n_points = len(points)
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
    if quiet:
        return
    from rich.table import Table

    console.print(f"[bold]jaccli confint[/bold]  {model.path}")
    console.print(f"model: {describe_model(model)}")
    console.print(f"training set: {train_path} ({fit.residuals.shape[0]} points); "
                  f"{n_points} query points; level {level:g}; {seconds:.3f} s")
    table = Table(title="least-squares fit (SVD of Z = dy/dtheta at the training inputs)",
                  title_justify="left")
    table.add_column("")
    for y in model.output_names:
        table.add_column(y, justify="right")
    t_values = [ci.t_quantile(st, level) for st in fit.stats]
    rows = [
        ("N_train", [str(st.n_train) for st in fit.stats]),
        ("q (parameters)", [str(st.q) for st in fit.stats]),
        ("rank of Z", [str(st.rank) for st in fit.stats]),
        ("condition number", [f"{st.condition_number:.4g}" for st in fit.stats]),
        ("dof = N_train - rank", [str(st.dof) for st in fit.stats]),
        ("s (residual std)", [f"{st.s:.6g}" for st in fit.stats]),
        (f"t quantile ({level:g})", [f"{t:.6g}" for t in t_values]),
        ("sum of leverages", [f"{fit.leverages[:, k].sum():.6g}" for k in range(len(fit.stats))]),
        ("max leverage", [f"{fit.leverages[:, k].max():.4g}" for k in range(len(fit.stats))]),
        ("LOO score", [f"{v:.6g}" for v in fit.loo_scores]),
    ]
    for name, cells in rows:
        table.add_row(name, *cells)
    console.print(table)
    for y, st in zip(model.output_names, fit.stats):
        for warning in st.warnings():
            console.print(f"[yellow]warning[/yellow] ({y}): {warning}")
    if not np.all(np.isfinite(fit.loo_residuals)):
        console.print("[yellow]warning[/yellow]: some training points have leverage 1 "
                      "(they alone fix a parameter direction): their leave-one-out "
                      "residual, and the LOO score, are infinite")


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
    from .summary import describe_model, stderr_console
    from .writers import AtomicFile, check_output_path, output_format

    model_path, model = model, load_model(model, spec, dtype)
    numeric = model if dtype == "float64" else load_model(model_path, spec, "float64")
    fmt = output_format(output, fmt)
    if fmt not in ("csv", "tsv"):
        raise JaccliError(f"check writes a table of errors: use .csv or .tsv, not {fmt}")
    check_output_path(output, [model_path, spec, points_path])
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
    if chunk_size:
        for m in {id(model): model, id(numeric): numeric}.values():
            _limit_chunks(m, chunk_size)

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
        except BaseException:
            atomic.abort()
            raise

    if not quiet:
        from rich.table import Table

        console = stderr_console()
        console.print(f"[bold]jaccli check[/bold]  {model.path}")
        console.print(f"model: {describe_model(model)}; {len(points)} points; analytic in {dtype}, "
                      f"finite differences in float64")
        table = Table(title_justify="left")
        for header_name in ("quantity", "method", "max abs err", "max rel err", "error est.",
                            "time (s)", "result"):
            table.add_column(header_name, justify="left" if header_name in ("quantity", "method", "result") else "right")

        def num(value, spec_=".2e"):
            return "" if value is None else format(value, spec_)

        for row in rows:
            status = row.get("status", "")
            styled = {"PASS": "[green]PASS[/green]", "FAIL": "[red]FAIL[/red]"}.get(status, status)
            table.add_row(row["quantity"], row["method"], num(row.get("max_abs_error")),
                          num(row.get("max_rel_error")), num(row.get("error_estimate")),
                          num(row.get("seconds"), ".4f"), styled)
        console.print(table)
        console.print(f"tolerance: |analytic - richardson| <= {tol:g} x (largest |derivative| of the "
                      f"output) + 3 x error estimate; value: {value_tol:g} x largest |reference|")
        for quantity, res in failures:
            console.print(_describe_failure(model, quantity, res))
    if failures:
        click.get_current_context().exit(1)


def _limit_chunks(model, chunk_size):
    """Make the model's own batches at most ``chunk_size`` points."""
    compute = model.compute

    def bounded(quantity, X, chunk=None):
        return compute(quantity, X, chunk or chunk_size)

    model.compute = bounded


def _describe_failure(model, quantity, res):
    i, k, j = res["worst"]
    where = f"point {i + 1}, output {model.output_names[k]}"
    if quantity in ("jacobian", "hessdiag"):
        where += f", input {model.input_names[j]}"
    elif quantity == "params":
        offset = 0
        for name, shape in model.parameters:
            size = 1
            for d in shape:
                size *= d
            if j < offset + size:
                import numpy as np

                index = ",".join(str(v) for v in np.unravel_index(j - offset, shape))
                where += f", parameter {name}[{index}]"
                break
            offset += size
    against = "reference" if quantity == "value" else "numerical"
    return (f"[red]FAIL[/red] {quantity}: {res['n_bad']} value(s) beyond the tolerance; worst at "
            f"{where}: jaccli {res['worst_analytic']:.10g}, {against} {res['worst_numeric']:.10g} "
            f"(allowed difference {res['worst_allowed']:.3g})")


if __name__ == "__main__":  # pragma: no cover
    main()
