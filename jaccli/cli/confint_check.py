"""The ``confint`` and ``check`` commands: parse, call the library, write."""

import sys

import click

from jaccli.cli.options import (OUTPUT_FORMATS, TABLE_FORMATS, cluster_options,
                                compute_options, input_paths, load_model, load_points, npz_extras,
                                open_point_table, point_table_options, store_attributes)
from jaccli.cli.pipeline import Streamed, Tabled
from jaccli.cli.plotting import plot_options
from jaccli.errors import JaccliError
from jaccli.io import registry


@click.command()
@compute_options
@cluster_options
@point_table_options("train", "-t", "Training set, the inputs and the targets",
                     " (the targets: --target)", required=True)
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
def confint(**options):
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
    ConfintRun(**options).run()


class ConfintRun(Streamed):
    """The fit on --train, then the intervals at the points chunk by chunk; with
    --leverage, the training points' residuals and leverages, committed after them."""

    name = "confint"
    warn_after_summary = True

    def run(self):
        from jaccli.stats import confint as ci

        self.level = ci.check_level(self.level)
        return super().run()

    def reads(self):
        return {"train": self.train_path}

    def check_other_outputs(self):
        """--leverage: writable, no input, not standard output beside the intervals."""
        from jaccli.io.writers import check_output_path, output_format

        if self.leverage_path is None:
            return [None]
        check_output_path(self.leverage_path, input_paths(self.model_path, self.spec,
                                                          self.points_path, self.train_path,
                                                          self.output))
        if self.leverage_path == "-" and self.output in (None, "-"):
            raise JaccliError("--leverage - needs the intervals in a file (-o): "
                              "both cannot go to standard output")
        self.lev_fmt = output_format(self.leverage_path)
        return [self.leverage_path]

    def read(self):
        """The training table, the points, and room for the intervals, before the fit."""
        import numpy as np

        from jaccli.io.writers import check_output_room
        from jaccli.stats import confint as ci

        self.train_rows, self.train_source = ci.training_table(
            self.train_path, self.model, self.targets,
            sys.stdin.buffer if self.train_path == "-" else None, self.train_fmt,
            self.train_columns)
        super().read()
        self.shape = (len(self.points), self.model.n_outputs, len(ci.INTERVAL_FIELDS))
        check_output_room(self.output, self.fmt, self.shape, np.float64)

    def prepare(self, client):
        self.fit, self.intervals, self.figure = _fit_and_intervals(
            client, self.model, self.train_rows, self.train_source, self.train_path, self.points,
            self.level, self.chunk_size, self.source, self.plot, self.plot_x)

    def data_writer(self):
        import numpy as np

        from jaccli.io.writers import open_writer
        from jaccli.stats import confint as ci

        model, points = self.model, self.points
        return open_writer(self.output, self.fmt, "confint", self.shape, np.float64,
                           ci.interval_columns(model),
                           npz_extras(model, points, ci.INTERVAL_FIELDS, self.level),
                           stdout=sys.stdout, attributes=store_attributes(model, "confint"),
                           head=_fit_head(model, self.fit, self.train_path, len(points),
                                          self.level))

    def chunks(self, client):
        return self.intervals

    def companions(self, writer):
        """The leverages are committed after the intervals, or not at all."""
        from jaccli.io.writers import written_whole

        if self.leverage_path is None:
            return super().companions(writer)
        return written_whole(_write_leverages(self.model, self.fit, self.leverage_path,
                                              self.lev_fmt, writer))

    def warnings(self, writer):
        return list(self.fit.warnings(self.model.output_names)) + super().warnings(writer)

    def summarise(self, seconds):
        from jaccli.cli.summary import print_fit_summary

        print_fit_summary(self.console, self.model, self.fit, self.train_path, len(self.points),
                          self.level, seconds)


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
def check(**options):
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
    if not CheckRun(**options).run().result.passed:
        click.get_current_context().exit(1)


class CheckRun(Tabled):
    """Each quantity analytically and by finite differences, whole; the table of errors."""

    name = "check"
    formats = TABLE_FORMATS
    refusal = "check writes a table of errors: use"

    def read(self):
        """The points table, read once: the points, and the reference outputs it names."""
        import numpy as np

        from jaccli.io.finite import check_finite_points
        from jaccli.verify import check as checking

        model = self.model
        self.numeric = model if self.dtype == "float64" else \
            load_model(self.model_path, self.spec, "float64", self.output_name)
        table = open_point_table(self.points_path, self.at, self.points_fmt, self.columns,
                                 self.spec)
        has_reference = checking.names_the_outputs(table, model)
        self.quantities = checking.quantities_to_check(self.what, has_reference,
                                                       model.output_names)
        points, self.source = load_points(model, self.points_path, self.at, columns=self.columns,
                                          table=table)
        self.points = np.asarray(points, dtype=np.float64)
        check_finite_points(self.points, self.source)
        self.reference = checking.read_reference(table, model) \
            if "value" in self.quantities else None

    def calculate(self, client, advance):
        from jaccli.verify import check as checking

        return checking.check(self.model, self.points, self.quantities, self.tol, self.value_tol,
                              self.reference, self.numeric, self.chunk_size, self.source,
                              sample=not self.check_all)

    def data_writer(self):
        from jaccli.io.writers import open_writer

        report = self.result
        head = {"command": "check", "model": str(self.model.path), "n_points": report.n_points,
                "tol": report.tol, "value_tol": report.value_tol, "passed": report.passed}
        return open_writer(self.output, self.fmt, "check", (len(report.rows), len(report.columns)),
                           "float64", report.columns, stdout=sys.stdout, head=head)

    def fill(self, writer):
        report = self.result
        writer.write_cells([[row.get(f) for f in report.columns] for row in report.rows])

    def draw(self):
        from jaccli.plots import plot_check

        return plot_check(self.result)

    def summarise(self, seconds):
        from jaccli.cli.summary import print_check_report

        print_check_report(self.console, self.model, self.result, self.dtype)


COMMANDS = [confint, check]
