"""The command line: parse, call the library, write. Nothing else lives here.

NumPy, h5py and rich are imported inside the commands, so ``--help`` is fast.
"""

import functools
import sys
import time
import warnings

import click

from .errors import JaccliError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


class UserError(click.ClickException):
    exit_code = EXIT_USER_ERROR


class JaccliGroup(click.Group):
    """Turns a JaccliError into one 'Error: ...' line and exit 2, Ctrl-C into 130."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # bare 'jaccli': the help, as click shows it
                raise
            raise one_line_usage(exc) from None

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            raise one_line_usage(exc) from None
        except JaccliError as exc:
            if ctx.params.get("debug"):
                import traceback

                traceback.print_exc()  # and still exit 2: --debug adds detail, not a new outcome
            raise UserError(one_line(str(exc))) from None
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except BrokenPipeError:
            # The reader of our standard output went away (| head): not an error of ours.
            sys.stderr.close()
            ctx.exit(0)


MAX_MESSAGE = 500


def one_line(message):
    """An error message as one line of bounded length, whatever a bad file put in it."""
    message = " ".join(message.split())
    if len(message) > MAX_MESSAGE:
        message = message[:MAX_MESSAGE - 3] + "..."
    return message


def one_line_usage(exc):
    """click's usage error (usage, hint, blank line, error) as the contract's one line."""
    where = exc.ctx.command_path if exc.ctx is not None else "jaccli"
    return UserError(one_line(f"{exc.format_message()} (see '{where} --help')"))


def input_paths(model, spec, *others):
    """Every file a run reads, for check_output_path: the spec found beside the model too."""
    from .weights import sibling_spec_paths

    return [model, spec, *others] + sibling_spec_paths(model)


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
    """The points as an (N, n) array (an NPY file is read lazily, a chunk at a time)."""
    from .points import parse_inline_point, read_points

    if points_path is not None and at is not None:
        raise JaccliError("give either --points FILE or --at 1,2,..., not both")
    if points_path is None and at is None:
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
    from .points import is_streamed
    from .summary import ColumnStats, LazyProgress, print_summary, stderr_console
    from .writers import check_output_path, open_writer, output_format

    model_path, model = model, load_model(model, spec, dtype)
    check_output_path(output, input_paths(model_path, spec, points_path))
    fmt = output_format(output, fmt)
    points, source = load_points(model, points_path, at)
    if not is_streamed(points):  # a file read whole is checked whole, up front
        check_finite_points(points, source)
        model.in_dtype(points, source)
    n_points = len(points)
    shape = model.result_shape(quantity, n_points)  # streamed: no memory check
    columns = column_names(quantity, model)

    def extras():  # for NPZ only, read when it is written (NPY points stay on disk until then)
        return {"x": np.asarray(points, dtype=np.float64),
                "input_names": np.array(model.input_names),
                "output_names": np.array(model.output_names)}

    chunk = chunk_size or model.chunk_size_for(quantity)
    console = stderr_console()
    stats = None if quiet else ColumnStats(len(columns))
    progress = LazyProgress(console, n_points, enabled=not quiet and console.is_terminal)
    writer = open_writer(output, fmt, quantity, shape, model.dtype, columns, extras,
                         stdout=sys.stdout)
    started = time.perf_counter()
    non_finite = 0
    try:
        # chunks are read, checked and computed on worker threads, written here in order;
        # an overflow inside the network is counted and reported once, not warned per chunk
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            for start, result in model.iter_chunks(quantity, points, chunk, source):
                rows = result.reshape(len(result), -1)
                writer.write(start, rows)
                if stats is not None:
                    stats.update(rows)
                non_finite += rows.size - int(np.count_nonzero(np.isfinite(rows)))
                progress.advance(start + len(rows))
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    finally:
        progress.close()
    if non_finite:
        console.print(f"warning: {non_finite} result(s) are NaN or infinite: the network overflows "
                      f"at some points (an exp layer, extreme inputs, or float32?)", soft_wrap=True)
    seconds = time.perf_counter() - started
    if not quiet:
        per_output = len(columns) // model.n_outputs
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
@click.option("--chunk-size", type=click.IntRange(min=1), default=None,
              help="Accepted for symmetry with the other commands; info computes nothing.")
def info(model, spec, dtype, chunk_size):
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


# confint and check live in their own module; importing it registers them.
from . import cli_stats  # noqa: E402,F401

if __name__ == "__main__":  # pragma: no cover
    main()
