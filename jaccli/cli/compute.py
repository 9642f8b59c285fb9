"""``info`` and the computing commands (value, jacobian, hessdiag, hessian, laplacian)."""

import sys

import click

from jaccli.cli.options import (cluster_options, compute_options, load_model, model_options,
                                npz_extras, store_attributes)
from jaccli.cli.pipeline import Streamed
from jaccli.cli.plotting import plot_options
from jaccli.errors import JaccliError
from jaccli.quantities import QUANTITIES, WITH_QUANTITIES


@click.command()
@model_options
@click.option("--json", "as_json", is_flag=True,
              help="The same facts as JSON, for scripts: inputs, outputs, layers, parameters "
                   "(name, shape, offset, size), scalings, where the spec came from.")
def info(model, spec, dtype, output_name, as_json):
    """Architecture and parameter table (name, shape, offset) of MODEL.

    \b
    Examples:
      jaccli info sample_models/canonical.npz
      jaccli info sample_models/canonical.npz --json
    """
    import json

    from jaccli.cli.summary import describe_model

    loaded = load_model(model, spec, dtype, output_name)
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


class QuantityRun(Streamed):
    """value ... laplacian: the quantity (and the --with ones, written first: their
    columns before the command's in a table, each by name in NPZ and Zarr), chunk by
    chunk; with --plot, the command's own columns drawn against the points."""

    overflow_counted = True

    def __init__(self, quantity, command, with_=(), **options):
        super().__init__(**options)
        self.quantity, self.name = quantity, command
        self.names = [name for name in with_ if name != quantity] + [quantity]

    def read(self):
        from jaccli.cli.plotting import derivative_figure
        from jaccli.cli.summary import ColumnStats
        from jaccli.io.points import is_streamed
        from jaccli.quantities import column_names

        super().read()
        if not is_streamed(self.points):
            self.model.in_dtype(self.points, self.source)
        model, n_points = self.model, len(self.points)
        self.parts = [(name, model.result_shape(name, n_points)) for name in self.names]  # streamed: no memory check
        self.headers = [header for name in self.names for header in column_names(name, model)]
        self.figure, self.sample = derivative_figure(self.plot, self.plot_x, model, self.quantity,
                                                     len(self.headers)) \
            if self.plot else (None, None)
        self.stats = None if self.quiet else ColumnStats(len(self.headers))

    def data_writer(self):
        from jaccli.io.writers import open_writer

        model = self.model
        return open_writer(self.output, self.fmt, self.quantity, self.parts[-1][1], model.dtype,
                           self.headers, npz_extras(model, self.points), stdout=sys.stdout,
                           attributes=store_attributes(model, self.name), parts=self.parts,
                           head=json_head(self.name, model, len(self.points)))

    def chunks(self, client):
        points = self.sample.tap(self.points) if self.sample else self.points
        return result_chunks(client, self.model, self.names, points, self.chunk_size, self.source)

    def warnings(self, writer):
        """NaN and infinities, said once (as null in JSON: no second warning)."""
        if not self.non_finite:
            return []
        json_note = " (written as null: JSON has no NaN)" if self.fmt in ("json", "jsonl") else ""
        return [f"{self.non_finite:,} result(s) are NaN or infinite: the network overflows "
                f"at some points (an exp layer, extreme inputs, or float32?){json_note}"]

    def summarise(self, seconds):
        summarise(self.console, self.model, self.name, self.names, self.headers, self.stats,
                  len(self.points), seconds)

    def wrote(self):
        lines = []
        if self.output not in (None, "-"):
            parts = self.parts
            shapes = ", ".join(f"{name} {part}" for name, part in parts) if len(parts) > 1 \
                else parts[-1][1]
            lines.append(f"wrote {self.output} ({self.fmt}, shape {shapes})")
        if self.figure is not None:
            lines.append(f"wrote {self.figure.target} (figure, {self.figure.format})")
        return lines


def result_chunks(client, model, names, points, chunk_size, source):
    """(start, chunk) of the quantities ``names``, chunk by chunk in order (a chunk
    as ``jaccli.io.parts`` says: here {name: result}, or one result; on the
    cluster, their rows side by side)."""
    from jaccli.scale.cluster import quantity_chunks

    if client is not None:
        return quantity_chunks(client, model, names, points,
                               chunk_size or min(map(model.chunk_size_for, names)), source)
    if len(names) == 1:
        return model.iter_chunks(names[0], points, chunk_size, source)
    return model.iter_together(names, points, chunk_size, source)


def json_head(command, model, n_points):
    """The fields of a JSON document's head (-o out.json), before its rows."""
    return {"command": command, "model": str(model.path), "inputs": list(model.input_names),
            "outputs": list(model.output_names), "n_points": n_points}


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
        QuantityRun(quantity, quantity, **kwargs).run()

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
    QuantityRun(quantity, "jacobian" if wrt == "inputs" else "jacobian --wrt params", **kwargs).run()


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
