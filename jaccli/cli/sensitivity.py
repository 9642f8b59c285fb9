"""The ``sensitivity`` command: parse, call the library, write the table."""

import sys

import click

from jaccli.cli.options import cluster_options, compute_options
from jaccli.cli.pipeline import Tabled
from jaccli.cli.plotting import plot_options
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
def sensitivity(**options):
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
    SensitivityRun(**options).run()


class SensitivityRun(Tabled):
    """Sums over the points chunk by chunk (here or on the cluster), then the table."""

    name = "sensitivity"
    formats = SENSITIVITY_FORMATS
    refusal = "the sensitivity table has text columns (the names, the bound's kind): write"
    overflow_counted = True  # an overflow is reported once (result.warnings), not per chunk

    def read(self):
        from jaccli.stats.sensitivity import SensitivityAccumulator

        # the options are checked before the points are read
        SensitivityAccumulator(self.model.input_names, self.model.output_names, self.bootstrap,
                               self.level, self.bounds, self.seed)
        self.read_points()

    def calculate(self, client, advance):
        from jaccli.stats.sensitivity import sensitivity as run

        return run(self.model, self.points, self.bootstrap, self.level, self.bounds, self.seed,
                   self.chunk_size, self.source, progress=advance, client=client)

    def data_writer(self):
        """CSV/TSV/JSON: one row per (output, input); NPZ: the numbers (m, n, fields),
        with the names, the bounds' kinds and the settings beside them."""
        import numpy as np

        from jaccli.io.writers import open_writer

        result = self.result
        m, n = len(result.output_names), len(result.input_names)
        self.table = np.stack([result.column(name).reshape(m, n) for name in result.NUMERIC],
                              axis=-1)
        extras = {"fields": np.array(result.NUMERIC), "input_names": np.array(result.input_names),
                  "output_names": np.array(result.output_names),
                  "bound_kind": np.array([b.label for b in result.bounds]),
                  "level": np.array(result.level), "bootstrap": np.array(result.bootstrap),
                  "seed": np.array(result.seed), "n_points": np.array(result.n_points)}
        shape = self.table.shape if self.fmt == "npz" else (m * n, len(result.COLUMNS))
        return open_writer(self.output, self.fmt, "sensitivity", shape, np.float64,
                           result.COLUMNS, extras, stdout=sys.stdout,
                           head=json_head(self.model, result))

    def fill(self, writer):
        if self.fmt == "npz":
            writer.write(0, self.table)
        else:
            writer.write_cells([[row[c] for c in self.result.COLUMNS]
                                for row in self.result.rows()])

    def draw(self):
        from jaccli.plots import plot_sensitivity

        return plot_sensitivity(self.result)

    def warnings(self, writer):
        return list(self.result.warnings()) + super().warnings(writer)

    def summarise(self, seconds):
        from jaccli.cli.summary import print_sensitivity_summary

        print_sensitivity_summary(self.console, self.model, self.result, seconds)

    def wrote(self):
        written = [] if self.output in (None, "-") else \
            [f"wrote {self.output} ({self.fmt}, {len(self.result.rows())} rows)"]
        return written + super().wrote()


def json_head(model, result):
    """What a JSON document of the table holds before its rows: the run's settings."""
    return {"command": "sensitivity", "model": str(model.path), "n_points": result.n_points,
            "bootstrap": result.bootstrap, "level": result.level, "seed": result.seed,
            "bounds": {name: b.label for name, b in zip(result.input_names, result.bounds)}}
