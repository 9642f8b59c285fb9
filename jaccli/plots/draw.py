"""The figures, drawn with matplotlib's object API (a ``Figure``, never pyplot: no
display, no global state; PNG through Agg). Each function takes arrays and
results, not files, and returns the Figure.
"""

import numpy as np

#: Panels per output in a derivative figure, outputs per figure, inputs per sensitivity panel.
MAX_PANELS = 6
MAX_OUTPUTS = 6
MAX_INPUTS = 25
#: Above this many points a panel shows their density (hexbin), not dots.
HEXBIN_ABOVE = 2_000
#: Points drawn as error bars at most (a seeded subset of the sample beyond it).
MAX_ERRORBARS = 400
#: Elements drawn per check panel at most (failed and skipped ones are always drawn).
MAX_ELEMENTS = 20_000
DPI = 100
BLUE, ORANGE, RED, GREY = "#1f77b4", "#ff7f0e", "#d62728", "0.45"


def new_figure(width, height):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _g(value, digits=4):
    return f"{value:.{digits}g}"


def _grid(figure, rows, columns, **kwargs):
    axes = figure.subplots(rows, columns, squeeze=False, **kwargs)
    return axes


def _ranked(values):
    """Indices of ``values`` from the largest down, NaN last."""
    values = np.where(np.isnan(values), -np.inf, values)
    return list(np.argsort(-values, kind="stable"))


# ---------------------------------------------------------------- derivatives


def chosen_inputs(mean_abs, n_inputs, inputs=None, limit=MAX_PANELS):
    """Per output, the inputs to draw: ``inputs`` (indices) for every output, else the
    ``limit`` inputs with the largest mean |derivative| of that output."""
    mean_abs = np.asarray(mean_abs, dtype=np.float64).reshape(-1, n_inputs)
    if inputs is not None:
        return [list(inputs) for _ in range(len(mean_abs))]
    return [_ranked(row)[:limit] for row in mean_abs]


def derivative_figure(x, y, mean_abs, input_names, columns, title, inputs=None):
    """dy/dx_j (or d2y/dx_j2) against x_j: a row of panels per output (the inputs of
    ``chosen_inputs``), a zero line, dots or their density (hexbin) beyond
    HEXBIN_ABOVE points. ``x`` (k, n) and ``y`` (k, m n): the sampled points and
    their derivative columns (``columns``, output-major); ``mean_abs``: each
    column's mean |.| over all the points (the ranking, shown in the titles)."""
    n = len(input_names)
    m = len(columns) // n
    panels = chosen_inputs(mean_abs, n, inputs)[:MAX_OUTPUTS]
    width = max(len(p) for p in panels)
    figure = new_figure(2.7 * width + 0.4, 2.4 * len(panels) + 0.6)
    axes = _grid(figure, len(panels), width)
    density = False
    for k, chosen in enumerate(panels):
        for slot, ax in enumerate(axes[k]):
            if slot >= len(chosen):
                ax.set_visible(False)
                continue
            j = chosen[slot]
            density |= _derivative_panel(ax, x[:, j], y[:, k * n + j], input_names[j],
                                         columns[k * n + j], mean_abs[k * n + j])
    note = f"; the first {MAX_OUTPUTS} of {m} outputs" if m > MAX_OUTPUTS else ""
    note += "\n(colour: points per hexagon, log scale)" if density else ""
    figure.suptitle(title + note, fontsize=10)
    return figure


def _derivative_panel(ax, xj, dj, input_name, column, mean_abs):
    keep = np.isfinite(xj) & np.isfinite(dj)
    xj, dj = xj[keep], dj[keep]
    density = len(xj) > HEXBIN_ABOVE
    if density:
        ax.hexbin(xj, dj, gridsize=40, mincnt=1, bins="log", cmap="viridis", linewidths=0)
    else:
        ax.scatter(xj, dj, s=7, color=BLUE, alpha=0.7, linewidths=0)
    ax.axhline(0.0, color=GREY, linewidth=0.8, linestyle="--", zorder=0)
    ax.set_xlabel(input_name)
    ax.set_ylabel(column)
    ax.set_title(f"{column}: mean |.| {_g(mean_abs)}", fontsize=9)
    return density


# ---------------------------------------------------------------- sensitivity


def describe_bounds(bounds, input_names):
    """What the S_T bounds assume, in words: one phrase for every input when they agree."""
    def one(b):
        where = "from the points" if b.source == "points" else "as given"
        if b.kind == "uniform":
            return f"uniform on [{b.low:.4g}, {b.high:.4g}] ({where})"
        return f"normal with sd {b.sd:.4g} ({where})"

    if all(b.source == "points" and b.kind == bounds[0].kind for b in bounds) and len(bounds) > 1:
        what = "range" if bounds[0].kind == "uniform" else "standard deviation"
        text = f"every input {bounds[0].kind} with its points' {what}"
    elif len({one(b) for b in bounds}) == 1:
        text = f"every input {one(bounds[0])}"
    else:
        text = ", ".join(f"{name} {one(b)}" for name, b in zip(input_names, bounds))
    return f"S_T bounds assume independent inputs, {text}"


def sensitivity_figure(result, title):
    """Per output: the inputs as horizontal bars of nu, sorted, with the bootstrap
    interval as whiskers; beside them the bound on the total Sobol' index
    (clipped at 1: a bound of 1 or more says nothing); the bounds' assumption
    written below."""
    m = min(len(result.output_names), MAX_OUTPUTS)
    n_shown = min(len(result.input_names), MAX_INPUTS if m == 1 else MAX_INPUTS // 2)
    figure = new_figure(8.0, (0.28 * n_shown + 1.2) * m + 0.9)
    axes = _grid(figure, m, 2, gridspec_kw={"width_ratios": [3, 2]})
    for k in range(m):
        order = _ranked(result.nu[k])[:n_shown]
        _nu_panel(axes[k][0], result, k, order)
        _bound_panel(axes[k][1], result, k, order)
    hidden = len(result.input_names) - n_shown
    more = f" ({hidden} inputs with the smallest nu not shown)" if hidden > 0 else ""
    if len(result.output_names) > m:
        more += f"; the first {m} of {len(result.output_names)} outputs"
    figure.suptitle(title + more, fontsize=10)
    import textwrap

    figure.text(0.01, 0.0, textwrap.fill(describe_bounds(result.bounds, result.input_names), 120),
                fontsize=7.5, va="bottom", ha="left")
    figure.get_layout_engine().set(rect=(0, 0.05, 1, 0.95))
    return figure


def _nu_panel(ax, result, k, order):
    position = np.arange(len(order))[::-1]
    nu = result.nu[k, order]
    low = np.maximum(nu - result.nu_lower[k, order], 0)
    high = np.maximum(result.nu_upper[k, order] - nu, 0)
    ax.barh(position, nu, xerr=[low, high], color=BLUE, ecolor="black", capsize=3, height=0.6)
    ax.set_yticks(position, [result.input_names[j] for j in order])
    ax.set_xlabel("nu = E[(dy/dx)^2]")
    ax.set_title(f"{result.output_names[k]}: nu with its {result.level:.0%} bootstrap interval",
                 fontsize=9)
    ax.set_xlim(left=0)


def _bound_panel(ax, result, k, order):
    position = np.arange(len(order))[::-1]
    bound = result.bound[k, order]
    ax.barh(position, np.clip(np.nan_to_num(bound, nan=0.0), 0, 1), color=ORANGE, height=0.6)
    ax.axvline(1.0, color=GREY, linewidth=0.8, linestyle="--")
    for y, value in zip(position, bound):
        label = "no bound (constant output)" if np.isnan(value) else (
            f"{_g(value, 3)} (>= 1: no information)" if value >= 1 else _g(value, 3))
        ax.text(min(value, 1) + 0.02 if np.isfinite(value) and value < 1 else 0.02, y, label,
                va="center", fontsize=7)
    ax.set_yticks(position, [""] * len(order))
    ax.set_xlim(0, 1.05)
    ax.set_xlabel("upper bound on the total Sobol' index")
    ax.set_title("S_T <=", fontsize=9)


# ---------------------------------------------------------------- confint


def varies_most(x):
    """The column of ``x`` with the largest range (max - min)."""
    spread = np.ptp(x, axis=0) if len(x) else np.zeros(x.shape[1])
    return int(np.argmax(spread))


def confint_figure(x, intervals, input_names, output_names, level, title, along=None,
                   train=None):
    """Per output: the prediction with its confidence and prediction intervals against
    input ``along`` (default: the one whose range is largest). Bands when the other
    inputs are constant over the points, error bars otherwise. ``intervals``
    (k, m, 6): value, se, lower, upper, pred_lower, pred_upper; ``train``: (x, y)
    training points drawn behind."""
    j = varies_most(x) if along is None else along
    others = np.delete(x, j, axis=1)
    bands = len(x) > 1 and (others.size == 0 or np.ptp(others, axis=0).max() == 0)
    m = min(len(output_names), MAX_OUTPUTS)
    figure = new_figure(6.4, 3.2 * m + 0.5)
    axes = _grid(figure, m, 1)
    for k in range(m):
        ax = axes[k][0]
        if train is not None and len(train[0]):
            ax.scatter(train[0][:, j], train[1][:, k], s=6, color=GREY, alpha=0.5,
                       linewidths=0, label="training data")
        draw = _bands if bands else _error_bars
        draw(ax, x[:, j], intervals[:, k], level)
        ax.set_xlabel(input_names[j])
        ax.set_ylabel(output_names[k])
        how = "" if bands or others.size == 0 else " (the other inputs vary: error bars)"
        ax.set_title(f"{output_names[k]} against {input_names[j]}{how}", fontsize=9)
        ax.legend(fontsize=7, loc="best")
    figure.suptitle(title, fontsize=10)
    return figure


def _bands(ax, xj, rows, level):
    order = np.argsort(xj, kind="stable")
    xs, rows = xj[order], rows[order]
    ax.fill_between(xs, rows[:, 4], rows[:, 5], color=BLUE, alpha=0.15, linewidth=0,
                    label=f"{level:.0%} prediction interval")
    ax.fill_between(xs, rows[:, 2], rows[:, 3], color=BLUE, alpha=0.35, linewidth=0,
                    label=f"{level:.0%} confidence interval")
    ax.plot(xs, rows[:, 0], color=BLUE, linewidth=1.2, label="prediction")


def _error_bars(ax, xj, rows, level):
    if len(xj) > MAX_ERRORBARS:  # the first ones of a uniform sample: a uniform subset
        xj, rows = xj[:MAX_ERRORBARS], rows[:MAX_ERRORBARS]
    value = rows[:, 0]
    ax.errorbar(xj, value, yerr=[value - rows[:, 4], rows[:, 5] - value], fmt="none",
                ecolor=BLUE, alpha=0.3, elinewidth=3, label=f"{level:.0%} prediction interval")
    ax.errorbar(xj, value, yerr=[value - rows[:, 2], rows[:, 3] - value], fmt="o", ms=3,
                color=BLUE, ecolor=BLUE, elinewidth=1,
                label=f"prediction, {level:.0%} confidence interval")


# ---------------------------------------------------------------- check


def check_figure(report, title):
    """Per quantity checked against finite differences: |analytic - numerical| against
    the error estimate, log-log, each output's allowed difference (tol x scale + 3 x
    estimate) as a line, the failures and the skipped elements marked."""
    quantities = [q for q in report.elements if q != "value"]
    figure = new_figure(4.2 * max(len(quantities), 1) + 0.3, 4.0)
    axes = _grid(figure, 1, max(len(quantities), 1))[0]
    for ax, quantity in zip(axes, quantities):
        _check_panel(ax, quantity, report.elements[quantity])
    if not quantities:
        axes[0].set_axis_off()
        axes[0].text(0.5, 0.5, "no derivative was checked", ha="center", va="center")
    figure.suptitle(title, fontsize=10)
    return figure


def _check_panel(ax, quantity, elements):
    error = np.asarray(elements["abs_error"], dtype=np.float64).ravel()
    estimate = np.asarray(elements["error_estimate"], dtype=np.float64).ravel()
    status = np.asarray(elements["status"]).ravel()
    positive = np.concatenate([error[error > 0], estimate[estimate > 0],
                               np.asarray(elements["threshold"], dtype=np.float64)])
    positive = positive[np.isfinite(positive) & (positive > 0)]
    floor = positive.min() / 10 if positive.size else 1e-20
    shown = _subset(status, MAX_ELEMENTS)
    drawn = {"passed": 0, "failed": 1, "skipped (stencil crosses a kink)": 2}
    for label, code in drawn.items():
        where = shown[status[shown] == code]
        if code and not len(where):
            continue
        style = {0: dict(s=6, color=BLUE, alpha=0.5), 1: dict(s=30, color=RED, marker="x"),
                 2: dict(s=14, color=GREY, marker="^")}[code]
        ax.scatter(np.maximum(estimate[where], floor), np.maximum(error[where], floor),
                   label=f"{label} ({np.count_nonzero(status == code):,})", linewidths=1 if code else 0,
                   **style)
    top = max(positive.max() if positive.size else 1.0, floor) * 10
    xs = np.geomspace(floor, top, 200)
    for k, threshold in enumerate(np.asarray(elements["threshold"], dtype=np.float64).ravel()):
        ax.plot(xs, threshold + elements["safety"] * xs, color=ORANGE, linestyle="--",
                linewidth=1, label="allowed: tol x scale + 3 x estimate" if k == 0 else None)
    ax.set_xscale("log")
    ax.set_yscale("log")
    zeros = (error[shown] <= 0) | (estimate[shown] <= 0)
    ax.set_xlabel("error estimate (Richardson)" + (f"\n(zeros drawn at {floor:.0e})"
                                                   if zeros.any() else ""))
    ax.set_ylabel("|analytic - numerical|")
    failed = int(np.count_nonzero(status == 1))
    ax.set_title(f"{quantity}: {status.size:,} checked, {failed:,} failed", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")


def _subset(status, limit, seed=0):
    """Indices of the elements to draw: every failed or skipped one, and at most
    ``limit`` passed ones (a seeded sample)."""
    passed = np.flatnonzero(status == 0)
    if len(passed) > limit:
        passed = np.sort(np.random.default_rng(seed).choice(passed, limit, replace=False))
    return np.concatenate([passed, np.flatnonzero(status != 0)])
