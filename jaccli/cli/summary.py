"""The human summary on standard error (rich), and the progress bar.

Statistics are accumulated chunk by chunk, so the summary costs no second
pass and no copy of the result. rich honours NO_COLOR and drops colour
and markup when standard error is not a terminal.
"""

import time
from dataclasses import dataclass

import numpy as np

from jaccli.stats.moments import Moments
from jaccli.verify.numdiff import NOISE_FLOOR

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

    if title:
        console.print(title, soft_wrap=True)
    return Table()


def null_warnings(writer):
    """A JSON output's NaN and infinities, written as null: said once, always."""
    nulls = getattr(writer, "nulls", 0)
    if not nulls:
        return []
    return [f"{nulls:,} number(s) NaN or infinite written as null in {writer.target} "
            f"(JSON has no NaN)"]


def say(console, text):
    """A line of prose: wrapped at words on a terminal; one line in a log or a pipe (grep)."""
    console.print(text, soft_wrap=not console.is_terminal)


def plural(count, word):
    """'1 point', '2 points', '1,000 points'."""
    return f"{count:,} {word}{'' if count == 1 else 's'}"


@dataclass
class Column:
    """A column of a summary table; ``optional``: dropped (not moved to a table of its
    own) when the terminal is too narrow for it (a bar, which repeats a number)."""

    header: str
    justify: str = "right"
    optional: bool = False


def print_fitted(console, title, keys, values, rows):
    """A table of the ``keys`` then the ``values`` columns (``Column``s) and ``rows`` (their
    cells, in that order) that fits the console's width without cutting a cell: the
    value columns that do not fit go to further tables, each repeating the keys."""
    groups = _pack(console, keys, values, rows)
    for number, group in enumerate(groups):
        table = titled_table(console, title if number == 0 or not title else f"{title} (continued)")
        columns = list(range(len(keys))) + [len(keys) + i for i in group]
        _fill(table, [keys[i] if i < len(keys) else values[i - len(keys)] for i in columns],
              [[row[i] for i in columns] for row in rows])
        width = natural_width(console, table)
        # a table wider than the terminal (long names): lines wrap, but nothing is cut
        console.print(table, width=max(width, console.width), crop=width <= console.width)


def natural_width(console, renderable):
    """The width ``renderable`` takes when nothing limits it."""
    return console.measure(renderable, options=console.options.update_width(1 << 16)).maximum


def _fill(table, columns, rows):
    for column in columns:
        table.add_column(column.header, justify=column.justify, no_wrap=True)
    for row in rows:
        table.add_row(*row)


def _pack(console, keys, values, rows):
    """The value columns' indices, in groups that each fit beside the keys."""
    from rich.table import Table

    def width(group):
        table = Table()
        columns = list(range(len(keys))) + [len(keys) + i for i in group]
        _fill(table, [keys[i] if i < len(keys) else values[i - len(keys)] for i in columns],
              [[row[i] for i in columns] for row in rows])
        return natural_width(console, table)

    # the optional columns last: they take what room the first table has left
    groups = [[]]
    for i in sorted(range(len(values)), key=lambda i: values[i].optional):
        if values[i].optional:
            if width(sorted(groups[0] + [i])) <= console.width:
                groups[0].append(i)
        elif not groups[-1] or width(sorted(groups[-1] + [i])) <= console.width:
            groups[-1].append(i)
        else:
            groups.append([i])
    return [sorted(group) for group in groups]


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
    console.print(f"{plural(n_points, 'point')} in {seconds:.3f} s ({rate:,.0f} points/s, "
                  f"{model.dtype})")
    if stats is None:
        return
    ranked = len(groups) > 1 or len(groups[0][1]) > 1
    keys = [Column("rank"), Column("column", "left")]
    values = [Column(header) for header in ("mean", "std", "min", "max", "mean |.|")]
    for title, indices in groups:
        order = sorted(indices, key=lambda i: -stats.mean_abs[i]) if ranked else list(indices)
        rows = [[str(rank), columns[i], _g(stats.mean[i], 6), _g(stats.std[i], 6),
                 _g(stats.low[i], 6), _g(stats.high[i], 6), _g(stats.mean_abs[i], 6)]
                for rank, i in enumerate(order[:MAX_ROWS], 1)]
        if len(order) > MAX_ROWS:
            rows.append(["", f"... {len(order) - MAX_ROWS} more", "", "", "", "", ""])
        print_fitted(console, title, keys, values, rows)


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
    from jaccli.stats import confint as ci

    console.print(f"[bold]jaccli confint[/bold] {model.path}")
    console.print(f"model: {describe_model(model)}")
    console.print(f"training set: {train_path} ({plural(fit.residuals.shape[0], 'point')}); "
                  f"{plural(n_points, 'query point')}; level {level:g}; {seconds:.3f} s")
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
    print_fitted(console, "least-squares fit (SVD of Z = dy/dtheta at the training inputs)",
                 [Column("", "left")], [Column(y) for y in model.output_names],
                 [[name, *cells] for name, cells in rows])


#: What "max rel err" shows for a derivative that is exactly 0 everywhere.
NO_RELATIVE_ERROR = "-"


def print_check_report(console, model, report, dtype):
    """``check``'s table: each method's errors and time, PASS/FAIL per quantity."""
    console.print(f"[bold]jaccli check[/bold] {model.path}")
    say(console, f"model: {describe_model(model)}; {plural(report.n_points, 'point')}; "
                 f"analytic in {dtype}, finite differences in float64")
    for quantity, (n_at, n_points, n_params, n_all) in report.samples.items():
        if (n_at, n_params) != (n_points, n_all):
            say(console, f"{quantity}: a seeded sample of {n_at:,} of "
                         f"{plural(n_points, 'point')} and {n_params:,} of "
                         f"{plural(n_all, 'parameter')} (--all for every one)")

    def num(value, spec_=".2e"):
        return "" if value is None else format(value, spec_)

    rows, no_relative = [], False
    for row in report.rows:
        status = row.get("status", "")
        styled = {"PASS": "[green]PASS[/green]", "FAIL": "[red]FAIL[/red]"}.get(status, status)
        relative = num(row.get("max_rel_error"))
        if row.get("max_abs_error") is not None and row.get("max_rel_error") is None:
            relative, no_relative = NO_RELATIVE_ERROR, True
        rows.append([row["quantity"], row["method"], num(row.get("max_abs_error")), relative,
                     num(row.get("error_estimate")), num(row.get("n_checked"), ","),
                     num(row.get("n_skipped"), ","), num(row.get("seconds"), ".4f"), styled])
    values = [Column(h) for h in ("max abs err", "max rel err", "error est.", "checked",
                                  "skipped", "time (s)")] + [Column("result", "left")]
    print_fitted(console, None, [Column("quantity", "left"), Column("method", "left")], values,
                 rows)
    tolerance = (f"tolerance: |analytic - richardson| <= max({report.tol:g} x largest |derivative| "
                 f"of the output, {NOISE_FLOOR:g} x rounding noise) + 3 x error estimate")
    if report.value_tol is not None:
        tolerance += f"; value: {report.value_tol:g} x largest |reference|"
    say(console, tolerance)
    if no_relative:
        say(console, f"max rel err {NO_RELATIVE_ERROR}: the analytic derivative is exactly 0 "
                     f"everywhere, nothing to be relative to; the absolute error stands")
    if report.n_skipped:
        say(console, f"skipped: {report.n_skipped:,} element(s) whose difference stencil crosses "
                     f"a kink (a relu unit changes side within the steps) and disagrees: "
                     f"finite differences do not measure the derivative there")
    for quantity, res in report.failures:
        say(console, describe_failure(model, quantity, res))


def describe_failure(model, quantity, res):
    from jaccli.quantities import parameter_labels

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
    bootstrap interval and the Sobol' bound, with what the bound assumes."""
    from rich.bar import Bar

    console.print(f"[bold]jaccli sensitivity[/bold] {model.path}")
    console.print(f"model: {describe_model(model)}")
    console.print(f"{plural(result.n_points, 'point')} in {seconds:.3f} s; {result.bootstrap} "
                  f"Poisson bootstrap replicates (seed {result.seed}), {result.level:.0%} "
                  f"percentile intervals")
    say(console, bounds_assumption(result.bounds, result.input_names))
    hint = normal_hint(result)
    if hint:
        say(console, hint)
    values = [Column(h) for h in ("nu = E(dy/dx)^2", f"{result.level:.0%} CI", "share")] + [
        Column("", "left", optional=True)] + [Column(h) for h in ("S_T <=", "E|dy/dx|", "E dy/dx")]
    for k, output in enumerate(result.output_names):
        nu = np.where(np.isnan(result.nu[k]), -np.inf, result.nu[k])  # NaN (overflow) last
        order = np.argsort(-nu, kind="stable")
        finite = result.nu[k][np.isfinite(result.nu[k])]
        top = finite.max() if finite.size and finite.max() > 0 else 1.0
        rows = []
        for j in order:
            nu = result.nu[k, j]
            rows.append([result.input_names[j], _g(nu),
                         f"{_g(result.nu_lower[k, j])} - {_g(result.nu_upper[k, j])}",
                         _percent(result.share[k, j]),
                         Bar(top, 0, nu, width=BAR_WIDTH) if np.isfinite(nu) else "",
                         "-" if output in result.constant_outputs else _g(result.bound[k, j], 3),
                         _g(result.mean_abs[k, j]), _g(result.mean[k, j])])
        print_fitted(console, f"{output}  (Var {_g(result.output_variance[k])})",
                     [Column("input", "left")], values, rows)


def _percent(share):
    return f"{100 * share:.1f}%" if np.isfinite(share) else f"{share}"


def _describe_bound(bound):
    """'uniform [0, 1] (--bounds)', 'normal sd 0.98 (the points' sd)'."""
    if bound.kind == "uniform":
        numbers, what = f"[{bound.low:.4g}, {bound.high:.4g}]", "range"
    else:
        numbers, what = f"sd {bound.sd:.4g}", "sd"
    where = "--bounds" if bound.source == "bounds" else f"the points' {what}"
    return f"{bound.kind} {numbers} ({where})"


def bounds_assumption(bounds, names):
    """What the column S_T <= assumes, in one line."""
    if all(b.kind == "uniform" and b.source == "points" for b in bounds):
        ranges = ", ".join(f"{name} [{b.low:.4g}, {b.high:.4g}]" for name, b in zip(names, bounds))
        return (f"S_T <= assumes independent inputs, each uniform on the range of its points "
                f"(the default; --bounds to change it): {ranges}")
    described = [_describe_bound(b) for b in bounds]
    if len(set(described)) == 1 and len(described) > 1:
        return f"S_T <= assumes independent inputs, every input {described[0]}"
    return "S_T <= assumes independent inputs: " + ", ".join(
        f"{name} {text}" for name, text in zip(names, described))


#: Points below which a range says little about a distribution's shape.
SHAPE_POINTS = 50
UNIFORM_RANGE = 12 ** 0.5  # a uniform's range in standard deviations


def normal_range(n_points):
    """About the expected range of n normal points, in standard deviations (Blom)."""
    from statistics import NormalDist

    return 2 * NormalDist().inv_cdf((n_points - 0.375) / (n_points + 0.25))


def normal_hint(result):
    """A hint when inputs bounded as uniform on their points' range have points whose
    range, in standard deviations, is a normal sample's, not a uniform's (3.5)."""
    if result.n_points < SHAPE_POINTS:
        return None
    expected = normal_range(result.n_points)
    spans = {name: (b.high - b.low) / b.sd for name, b in zip(result.input_names, result.bounds)
             if b.kind == "uniform" and b.source == "points" and b.sd > 0}
    looking = [name for name, span in spans.items() if 0.75 * expected <= span <= 1.35 * expected]
    if not looking:
        return None
    from jaccli.io.registry import join_words

    span = float(np.median([spans[name] for name in looking]))
    return (f"hint: the points of {join_words(looking, 'and')} look normal, not uniform (a range "
            f"of {span:.1f} standard deviations; a uniform's is {UNIFORM_RANGE:.1f}), and a "
            f"uniform bound on a normal sample's range is loose (it grows with the number of "
            f"points): if the inputs are normal, --bounds normal (each one's sd from the "
            f"points) or --bounds normal:SD bounds S_T for that")
