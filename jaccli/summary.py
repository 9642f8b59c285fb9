"""The human summary on standard error (rich), and the progress bar.

Statistics are accumulated chunk by chunk, so the summary costs no second
pass and no copy of the result. rich honours NO_COLOR and drops colour
and markup when standard error is not a terminal.
"""

import time

import numpy as np

MAX_ROWS = 15


class ColumnStats:
    """Running mean, variance (Chan's merge), min, max and mean |.| per column."""

    def __init__(self, n_columns):
        self.count = 0
        self.mean = np.zeros(n_columns)
        self.m2 = np.zeros(n_columns)
        self.abs_sum = np.zeros(n_columns)
        self.low = np.full(n_columns, np.inf)
        self.high = np.full(n_columns, -np.inf)

    def update(self, rows):
        rows = np.asarray(rows, dtype=np.float64)
        k = len(rows)
        if k == 0:
            return
        mean = rows.mean(axis=0)
        m2 = ((rows - mean) ** 2).sum(axis=0)
        total = self.count + k
        delta = mean - self.mean
        self.m2 += m2 + delta ** 2 * self.count * k / total
        self.mean += delta * k / total
        self.count = total
        self.abs_sum += np.abs(rows).sum(axis=0)
        np.minimum(self.low, rows.min(axis=0), out=self.low)
        np.maximum(self.high, rows.max(axis=0), out=self.high)

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


def describe_model(model):
    names = [f"{model.n_inputs} in"]
    for layer, (activation, _) in zip(model.network.layers, model.activations):
        names.append(f"{layer.kernel.shape[1]} {activation}")
    return " -> ".join(names) + f"  ({model.n_parameters} parameters)"


def _number(value):
    return f"{value:.6g}"


def print_summary(console, model, command, columns, stats, n_points, seconds, groups):
    """``groups``: list of (title, column indices) — one table per output."""
    from rich.table import Table

    console.print(f"[bold]jaccli {command}[/bold] {model.path}")
    console.print(f"model: {describe_model(model)}")
    rate = n_points / seconds if seconds > 0 else float("inf")
    noun = "point" if n_points == 1 else "points"
    console.print(f"{n_points} {noun} in {seconds:.3f} s ({rate:,.0f} points/s, {model.dtype})")
    if stats is None:
        return
    ranked = len(groups) > 1 or len(groups[0][1]) > 1
    for title, indices in groups:
        order = sorted(indices, key=lambda i: -stats.mean_abs[i]) if ranked else list(indices)
        table = Table(title=title, title_justify="left")
        for header in ("rank", "column", "mean", "std", "min", "max", "mean |.|"):
            table.add_column(header, justify="left" if header == "column" else "right")
        for rank, i in enumerate(order[:MAX_ROWS], 1):
            table.add_row(str(rank), columns[i], _number(stats.mean[i]), _number(stats.std[i]),
                          _number(stats.low[i]), _number(stats.high[i]), _number(stats.mean_abs[i]))
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
