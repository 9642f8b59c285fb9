"""The PLOT row: ``jaccli jacobian --plot`` on 2,000,000 points against the same run
without it: wall time and peak memory (VmHWM), NPY in, NPY out, W6's 2-64-64-1 tanh
net. The figure is drawn from a bounded, seeded sample of the rows taken as the
chunks stream past (20,000 rows: a hexbin per panel), so it should add a few
seconds at most (matplotlib's import and one render) and little memory; the NPY
written must be the same bytes with and without --plot (checked here).
Needs the ``jaccli[plot]`` extra; without it the row is skipped.
"""

import filecmp
import json
import os
import sys
import tempfile

import numpy as np

from .workloads import WORKLOADS, make_points, write_model

PLOT_POINTS = 2_000_000
REPEATS = 3


def bench_plot(directory, n_points, run_timed, peak_command, command, repeats=REPEATS):
    """The row: {n_points, plain, plotted (best seconds), peak_rss_plain, peak_rss_plotted,
    same_bytes}, or None when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("PLOT: matplotlib not installed (pip install 'jaccli[plot]'), skipped",
              file=sys.stderr)
        return None
    workload = WORKLOADS[-1]  # W6: 2-64-64-1 tanh
    path = write_model(workload, directory)
    points = os.path.join(directory, "PLOT_points.npy")
    np.save(points, make_points(workload, n_points))
    outputs = {name: os.path.join(directory, f"PLOT_{name}.npy") for name in ("plain", "plotted")}
    figure = os.path.join(directory, "PLOT_figure.png")
    runs = {"plain": ["jacobian", path, "--points", points, "-o", outputs["plain"], "--quiet"],
            "plotted": ["jacobian", path, "--points", points, "-o", outputs["plotted"], "--quiet",
                        "--plot", figure]}
    print(f"PLOT: jacobian --plot, {n_points:,} points (NPY in, NPY out)", file=sys.stderr)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    times = {name: [] for name in runs}
    for _ in range(repeats):  # alternated, so that a drift in the load hits both alike
        for name, args in runs.items():
            times[name].append(run_timed(command(*args))[0])
    row = {"n_points": n_points, "repeats": repeats}
    for name, args in runs.items():
        row[name] = min(times[name])
        row[f"peak_rss_{name}"] = run_timed(peak_command(*args), cwd=root)[1]
    row["same_bytes"] = filecmp.cmp(outputs["plain"], outputs["plotted"], shallow=False)
    row["figure_bytes"] = os.path.getsize(figure)
    print(f"    {describe(row)}", file=sys.stderr)
    return row


def describe(row):
    """The row as the bench's report prints it."""
    extra = row["plotted"] - row["plain"]
    memory = row["peak_rss_plotted"] / max(row["peak_rss_plain"], 1) - 1
    return (f"PLOT jacobian --plot ({row['n_points']:,} points, NPY in/out, 2-64-64-1): "
            f"{row['plotted']:.2f} s vs {row['plain']:.2f} s without (+{extra:.2f} s); peak RSS "
            f"{row['peak_rss_plotted'] / 2**20:.0f} MB vs {row['peak_rss_plain'] / 2**20:.0f} MB "
            f"({memory:+.0%}); data the same bytes: {'yes' if row['same_bytes'] else 'NO'}")


if __name__ == "__main__":  # python -m bench.plot_bench [N]: the row alone
    from .__main__ import command as _command
    from .__main__ import peak_command as _peak_command
    from .__main__ import run_timed as _run_timed

    with tempfile.TemporaryDirectory(prefix="jaccli-plot-") as tmp:
        result = bench_plot(tmp, int(sys.argv[1]) if len(sys.argv) > 1 else PLOT_POINTS,
                            _run_timed, _peak_command, _command)
    if result:
        print(describe(result))
        print(json.dumps(result))
