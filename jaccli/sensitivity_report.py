"""The sensitivity table on standard error: one rich table per output, by nu."""

import numpy as np

BAR_WIDTH = 20


def _g(value, digits=4):
    return "" if not np.isfinite(value) else f"{value:.{digits}g}"


def print_sensitivity_summary(console, model, result, seconds):
    """Per output: inputs sorted by nu, a bar per input (its share of sum nu), the
    bootstrap interval and the Sobol' bound."""
    from rich.bar import Bar
    from rich.table import Table

    n = result.n_points
    console.print(f"[bold]jaccli sensitivity[/bold] {model.path}")
    console.print(f"{n:,} points in {seconds:.3f} s; {result.bootstrap} Poisson bootstrap "
                  f"replicates (seed {result.seed}), {result.level:.0%} percentile intervals")
    described = [_describe_bound(b) for b in result.bounds]
    if len(set(described)) == 1 and len(described) > 1:
        console.print(f"bounds: every input {described[0]}")
    else:
        console.print("bounds: " + ", ".join(f"{name} {text}" for name, text
                                             in zip(result.input_names, described)))
    for k, output in enumerate(result.output_names):
        order = np.argsort(-result.nu[k], kind="stable")
        top = result.nu[k].max()
        table = Table(title=f"{output}  (Var {_g(result.output_variance[k])})", title_justify="left")
        for header in ("input", "nu = E(dy/dx)^2", f"{result.level:.0%} CI", "share", "",
                       "E|dy/dx|", "E dy/dx", "S_T <="):
            table.add_column(header, justify="left" if header in ("input", "") else "right")
        for j in order:
            nu = result.nu[k, j]
            table.add_row(result.input_names[j], _g(nu),
                          f"{_g(result.nu_lower[k, j])} - {_g(result.nu_upper[k, j])}",
                          _percent(result.share[k, j]),
                          Bar(top if top > 0 else 1.0, 0, nu, width=BAR_WIDTH),
                          _g(result.mean_abs[k, j]), _g(result.mean[k, j]),
                          _g(result.bound[k, j], 3) or "-")
        console.print(table)


def _percent(share):
    return "" if not np.isfinite(share) else f"{100 * share:.1f}%"


def _describe_bound(bound):
    if bound.kind == "uniform":
        numbers = f"[{bound.low:.4g}, {bound.high:.4g}]"
    else:
        numbers = f"sd {bound.sd:.4g}"
    return f"{bound.kind} {numbers} ({bound.source})"
