"""The human summary on standard error (rich), and the progress bar.

Statistics are accumulated chunk by chunk, so the summary costs no second
pass and no copy of the result. rich honours NO_COLOR and drops colour
and markup when standard error is not a terminal.
"""

import time

import numpy as np

from jaccli.stats.moments import Moments
from jaccli.stats.numdiff import NOISE_FLOOR

MAX_ROWS = 15


class ColumnStats(Moments):
    """Running mean, variance (Chan's merge), min, max and mean |.| per column."""

    def __init__(self, n_columns):
        super().__init__(n_columns, track_range=True)
        self.abs_sum = np.zeros(n_columns)

    def update(self, rows):
        rows = np.asarray(rows, dtype=np.float64)
        self.add(rows)
        self.abs_sum += np.abs(rows).sum(axis=0)

    @property
    def std(self):
        return np.sqrt(self.m2 / max(self.count - 1, 1))

    @property
    def mean_abs(self):
        return self.abs_sum / max(self.count, 1)


def stderr_console():
    from rich.console import Console

    console = Console(stderr=True, highlight=False)
    if not console.is_terminal:
        console.width = 120  # a log file has no width: do not cut numbers at 80 columns
    return console


def warn(console, message):
    """The one path of a warning, for every command: standard error (``console``, or a
    new one), whether or not --quiet silenced the summary. The message is plain text
    (a tensor name such as W0[1] is not markup)."""
    from rich.text import Text

    console = console or stderr_console()
    console.print(Text.assemble(("warning", "yellow"), f": {message}"), soft_wrap=True)


def titled_table(console, title):
    """A table whose title is printed now, on its own line: rich's own table title is
    padded with spaces to the table's width."""
    from rich.table import Table

    console.print(title, soft_wrap=True)
    return Table()


def describe_model(model):
    return f"{model.architecture}  ({model.n_parameters} parameters)"


def _g(value, digits=4):
    """A number in a few significant digits (nan and inf as such)."""
    return f"{value:.{digits}g}"


def print_summary(console, model, command, columns, stats, n_points, seconds, groups):
    """``groups``: list of (title, column indices) — one table per output."""

    console.print(f"[bold]jaccli {command}[/bold] {model.path}")
    console.print(f"model: {describe_model(model)}")
    rate = n_points / seconds if seconds > 0 else float("inf")
    noun = "point" if n_points == 1 else "points"
    console.print(f"{n_points:,} {noun} in {seconds:.3f} s ({rate:,.0f} points/s, {model.dtype})")
    if stats is None:
        return
    ranked = len(groups) > 1 or len(groups[0][1]) > 1
    for title, indices in groups:
        order = sorted(indices, key=lambda i: -stats.mean_abs[i]) if ranked else list(indices)
        table = titled_table(console, title)
        for header in ("rank", "column", "mean", "std", "min", "max", "mean |.|"):
            table.add_column(header, justify="left" if header == "column" else "right")
        for rank, i in enumerate(order[:MAX_ROWS], 1):
            table.add_row(str(rank), columns[i], _g(stats.mean[i], 6), _g(stats.std[i], 6),
                          _g(stats.low[i], 6), _g(stats.high[i], 6), _g(stats.mean_abs[i], 6))
        if len(order) > MAX_ROWS:
            table.add_row("", f"... {len(order) - MAX_ROWS} more", "", "", "", "", "")
        console.print(table)


class LazyProgress:
    """A progress bar that appears only once a run has taken about a second."""

    def __init__(self, console, total, enabled, delay=1.0):
        self.console, self.total, self.enabled, self.delay = console, total, enabled, delay
        self.started = time.perf_counter()
        self.bar = None
        self.task = None

    def advance(self, done):
        if not self.enabled:
            return
        if self.bar is None:
            if time.perf_counter() - self.started < self.delay or done >= self.total:
                return
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("points"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,}"),
                                TimeRemainingColumn(), console=self.console, transient=True)
            self.bar.start()
            self.task = self.bar.add_task("points", total=self.total)
        self.bar.update(self.task, completed=done)

    def close(self):
        if self.bar is not None:
            self.bar.stop()


def print_fit_summary(console, model, fit, train_path, n_points, level, seconds):
    """The least-squares fit behind ``confint``: rank, conditioning, s, leverages."""
    import numpy as np

    from jaccli.stats import confint as ci

    console.print(f"[bold]jaccli confint[/bold] {model.path}")
    console.print(f"model: {describe_model(model)}")
    console.print(f"training set: {train_path} ({fit.residuals.shape[0]:,} points); "
                  f"{n_points:,} query points; level {level:g}; {seconds:.3f} s")
    table = titled_table(console, "least-squares fit (SVD of Z = dy/dtheta at the training inputs)")
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


#: What "max rel err" shows for a derivative that is exactly 0 everywhere.
NO_RELATIVE_ERROR = "-"


def print_check_report(console, model, report, dtype):
    """``check``'s table: each method's errors and time, PASS/FAIL per quantity."""
    from rich.table import Table

    console.print(f"[bold]jaccli check[/bold] {model.path}")
    console.print(f"model: {describe_model(model)}; {report.n_points:,} points; analytic in "
                  f"{dtype}, finite differences in float64", soft_wrap=True)
    for quantity, (n_at, n_points, n_params, n_all) in report.samples.items():
        if (n_at, n_params) != (n_points, n_all):
            console.print(f"{quantity}: a seeded sample of {n_at:,} of {n_points:,} points and "
                          f"{n_params:,} of {n_all:,} parameters (--all for every one)", soft_wrap=True)
    table = Table()
    headers = ("quantity", "method", "max abs err", "max rel err", "error est.", "checked",
               "skipped", "time (s)", "result")
    for header_name in headers:
        table.add_column(header_name, justify="left" if header_name in ("quantity", "method", "result") else "right")

    def num(value, spec_=".2e"):
        return "" if value is None else format(value, spec_)

    no_relative = False
    for row in report.rows:
        status = row.get("status", "")
        styled = {"PASS": "[green]PASS[/green]", "FAIL": "[red]FAIL[/red]"}.get(status, status)
        relative = num(row.get("max_rel_error"))
        if row.get("max_abs_error") is not None and row.get("max_rel_error") is None:
            relative, no_relative = NO_RELATIVE_ERROR, True
        table.add_row(row["quantity"], row["method"], num(row.get("max_abs_error")),
                      relative, num(row.get("error_estimate")),
                      num(row.get("n_checked"), ","), num(row.get("n_skipped"), ","),
                      num(row.get("seconds"), ".4f"), styled)
    console.print(table)
    tolerance = (f"tolerance: |analytic - richardson| <= max({report.tol:g} x largest |derivative| "
                 f"of the output, {NOISE_FLOOR:g} x rounding noise) + 3 x error estimate")
    if report.value_tol is not None:
        tolerance += f"; value: {report.value_tol:g} x largest |reference|"
    console.print(tolerance, soft_wrap=True)
    if no_relative:
        console.print(f"max rel err {NO_RELATIVE_ERROR}: the analytic derivative is exactly 0 "
                      f"everywhere, nothing to be relative to; the absolute error stands",
                      soft_wrap=True)
    if report.n_skipped:
        console.print(f"skipped: {report.n_skipped:,} element(s) whose difference stencil crosses "
                      f"a kink (a relu unit changes side within the steps) and disagrees: "
                      f"finite differences do not measure the derivative there", soft_wrap=True)
    for quantity, res in report.failures:
        console.print(describe_failure(model, quantity, res), soft_wrap=True)


def describe_failure(model, quantity, res):
    from jaccli.io.columns import parameter_labels

    i, k, j = res["worst"]
    where = f"point {i + 1}, output {model.output_names[k]}"
    if quantity in ("jacobian", "hessdiag"):
        where += f", input {model.input_names[j]}"
    elif quantity == "params":
        where += f", parameter {parameter_labels(model)[j]}"
    against = "reference" if quantity == "value" else "numerical"
    return (f"[red]FAIL[/red] {quantity}: {res['n_bad']} value(s) beyond the tolerance; worst at "
            f"{where}: jaccli {res['worst_analytic']:.10g}, {against} {res['worst_numeric']:.10g} "
            f"(allowed difference {res['worst_allowed']:.3g})")


# ---------------------------------------------------------------- sensitivity

BAR_WIDTH = 20


def print_sensitivity_summary(console, model, result, seconds):
    """Per output: inputs sorted by nu, a bar per input (its share of sum nu), the
    bootstrap interval and the Sobol' bound."""
    from rich.bar import Bar

    n = result.n_points
    console.print(f"[bold]jaccli sensitivity[/bold] {model.path}")
    console.print(f"model: {describe_model(model)}")
    console.print(f"{n:,} points in {seconds:.3f} s; {result.bootstrap} Poisson bootstrap "
                  f"replicates (seed {result.seed}), {result.level:.0%} percentile intervals")
    described = [_describe_bound(b) for b in result.bounds]
    if len(set(described)) == 1 and len(described) > 1:
        console.print(f"bounds: every input {described[0]}")
    else:
        console.print("bounds: " + ", ".join(f"{name} {text}" for name, text
                                             in zip(result.input_names, described)))
    for k, output in enumerate(result.output_names):
        nu = np.where(np.isnan(result.nu[k]), -np.inf, result.nu[k])  # NaN (overflow) last
        order = np.argsort(-nu, kind="stable")
        finite = result.nu[k][np.isfinite(result.nu[k])]
        top = finite.max() if finite.size and finite.max() > 0 else 1.0
        table = titled_table(console, f"{output}  (Var {_g(result.output_variance[k])})")
        for header in ("input", "nu = E(dy/dx)^2", f"{result.level:.0%} CI", "share", "",
                       "E|dy/dx|", "E dy/dx", "S_T <="):
            table.add_column(header, justify="left" if header in ("input", "") else "right")
        for j in order:
            nu = result.nu[k, j]
            table.add_row(result.input_names[j], _g(nu),
                          f"{_g(result.nu_lower[k, j])} - {_g(result.nu_upper[k, j])}",
                          _percent(result.share[k, j]),
                          Bar(top, 0, nu, width=BAR_WIDTH) if np.isfinite(nu) else "",
                          _g(result.mean_abs[k, j]), _g(result.mean[k, j]),
                          "-" if output in result.constant_outputs else _g(result.bound[k, j], 3))
        console.print(table)


def _percent(share):
    return f"{100 * share:.1f}%" if np.isfinite(share) else f"{share}"


def _describe_bound(bound):
    if bound.kind == "uniform":
        numbers = f"[{bound.low:.4g}, {bound.high:.4g}]"
    else:
        numbers = f"sd {bound.sd:.4g}"
    return f"{bound.kind} {numbers} ({bound.source})"
