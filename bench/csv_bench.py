"""CSV end to end (``python -m bench --only CSV``): ``jaccli value`` and
``jaccli jacobian`` on 2,000,000 x 8 points, CSV in and CSV out, beside the
same pipeline written around jaccli's Python API with pyarrow (streaming
``open_csv`` + ``CSVWriter``) and with polars (streaming ``scan_csv`` +
``write_csv``), all measured in this run on this machine.

jaccli runs twice: as installed (with pyarrow, its fast text path) and with
``JACCLI_NO_ARROW=1`` (its own parser and writer: numpy.loadtxt and a C-level
repr format), timed once. Every contestant runs in a process of its own (wall time, and its own peak
RSS: VmHWM); jaccli's peak is also taken at a tenth of the points, to show it
does not grow with N. Exactness: each tool reads a file of nasty values
(subnormals, +-max, -0.0, 0.30000000000000004, ...) and writes it back; the
text is parsed with Python's float() and its bits compared with the source.
"""

import os
import subprocess
import sys

import numpy as np

from .workloads import WORKLOADS, make_points, write_model

N_POINTS = 2_000_000
REPEATS = 3  # a run takes seconds: best of 3, no warm-up beyond the page cache
NASTY = [5e-324, -5e-324, 1e-310, -1.7976931348623157e308, 1.7976931348623157e308, -0.0,
         0.30000000000000004, 2.2250738585072014e-308, 1e-05, 1.5e-06, 1e16, 123456789012345.6]
KINDS = ("jaccli", "jaccli_own", "pyarrow", "polars")


def write_csv(path, points, names):
    row = ",".join(["%r"] * points.shape[1]) + "\n"
    with open(path, "w") as handle:
        handle.write(",".join(names) + "\n")
        for start in range(0, len(points), 100_000):
            part = points[start:start + 100_000]
            handle.write((row * len(part)) % tuple(part.ravel().tolist()))


def nasty_points(n_inputs, n_rows=1000, seed=15):
    """Random points with every nasty value in every column somewhere."""
    points = np.random.default_rng(seed).normal(size=(n_rows, n_inputs))
    for k, value in enumerate(NASTY):
        points[k] = np.roll(NASTY, k)[:n_inputs] if n_inputs <= len(NASTY) else value
    return points


def _run(cmd, root, env=None):
    """(seconds, peak RSS bytes) of a subprocess that prints 'VMHWM bytes' on stderr."""
    import time

    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          env=None if env is None else dict(os.environ, **env))
    seconds = time.perf_counter() - started
    err = proc.stderr.decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {err[-2000:]}")
    peak = [int(line.split()[1]) for line in err.splitlines() if line.startswith("VMHWM ")]
    return seconds, (peak[-1] if peak else 0)


def _command(kind, quantity, model, source, target):
    if kind in ("jaccli", "jaccli_own"):
        name = "jacobian" if quantity == "jacobian" else quantity
        return [sys.executable, "-m", "bench.peak", name, model, "--points", source,
                "-o", target, "--quiet"]
    return [sys.executable, "-m", "bench.pipelines", kind, quantity, model, source, target]


def _env(kind):
    return {"JACCLI_NO_ARROW": "1"} if kind == "jaccli_own" else None


def _installed(kind):
    if kind in ("jaccli", "jaccli_own"):
        return True
    try:
        __import__(kind)
        return True
    except ImportError:
        return False


def exact_round_trip(kind, directory, root):
    """Does ``kind`` read and write the nasty values bit for bit?"""
    points = nasty_points(8)
    names = [f"x{i + 1}" for i in range(8)]
    source = os.path.join(directory, "nasty.csv")
    target = os.path.join(directory, f"nasty_{kind}.csv")
    write_csv(source, points, names)
    code = f"from bench.pipelines import round_trip; round_trip({kind!r}, {source!r}, {target!r})"
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True,
                   env=dict(os.environ, **(_env(kind) or {})))
    with open(target) as handle:
        handle.readline()
        back = np.array([[float(cell) for cell in line.split(",")] for line in handle])
    return back.shape == points.shape and bool(
        np.array_equal(back.view(np.uint64), points.view(np.uint64)))


def bench_csv(directory, n_points=None):
    """One row per quantity (value, jacobian) with every contestant's time and peak RSS."""
    import jaccli

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    workload = WORKLOADS[0]  # 8-64-64-1 tanh
    n_points = n_points or N_POINTS
    model_path = write_model(workload, directory)
    points = make_points(workload, n_points)
    head = nasty_points(8)[:len(NASTY)]
    # +-max would overflow the first layer (inf - inf): the round trip checks those
    points[:len(NASTY)] = np.where(np.abs(head) > 1e300, 0.5, head)
    names = [f"x{i + 1}" for i in range(8)]
    source = os.path.join(directory, "csv_points.csv")
    tenth = os.path.join(directory, "csv_points_tenth.csv")
    write_csv(source, points, names)
    write_csv(tenth, points[:n_points // 10], names)
    model = jaccli.load(model_path)
    kinds = [kind for kind in KINDS if _installed(kind)]
    exact = {kind: exact_round_trip(kind, directory, root) for kind in kinds}
    rows = []
    for quantity in ("value", "jacobian"):
        print(f"CSV: {quantity}, {n_points:,} x 8 points, CSV in and out", file=sys.stderr)
        expected = model.compute(quantity, points).reshape(n_points, -1)
        row = {"workload": f"CSV {quantity}", "quantity": quantity, "n_points": n_points,
               "beside": "pyarrow and polars pipelines around jaccli's API, this run",
               "exact_round_trip": exact}
        for kind in kinds:
            target = os.path.join(directory, f"csv_{quantity}_{kind}.csv")
            runs = [_run(_command(kind, quantity, model_path, source, target), root, _env(kind))
                    for _ in range(1 if kind == "jaccli_own" else REPEATS)]
            row[kind] = min(seconds for seconds, _ in runs)
            row[f"{kind}_peak_rss"] = max(peak for _, peak in runs)
            got = np.loadtxt(target, delimiter=",", skiprows=1, ndmin=2)
            row[f"{kind}_max_abs_diff"] = float(np.abs(got - expected).max())
            print(f"    {kind}: {row[kind]:.2f} s, peak RSS {row[f'{kind}_peak_rss'] / 2**20:.0f} MB, "
                  f"max |diff| vs jaccli in memory {row[f'{kind}_max_abs_diff']:.1e}",
                  file=sys.stderr)
            os.unlink(target)
        small = os.path.join(directory, f"csv_{quantity}_tenth.csv")
        row["jaccli_peak_rss_tenth"] = _run(_command("jaccli", quantity, model_path, tenth, small),
                                            root)[1]
        rows.append(row)
    return rows


def print_csv_rows(rows):
    for row in rows:
        parts = [f"{row['workload']} N={row['n_points']:,} x 8, CSV in/out: jaccli "
                 f"{row['jaccli']:.2f} s (peak RSS {row['jaccli_peak_rss'] / 2**20:.0f} MB, at N/10 "
                 f"{row['jaccli_peak_rss_tenth'] / 2**20:.0f} MB)"]
        if "jaccli_own" in row:
            parts.append(f"jaccli without pyarrow {row['jaccli_own']:.2f} s "
                         f"({row['jaccli_own_peak_rss'] / 2**20:.0f} MB)")
        for kind in ("pyarrow", "polars"):
            if kind in row:
                parts.append(f"{kind} pipeline {row[kind]:.2f} s ({row[f'{kind}_peak_rss'] / 2**20:.0f} MB;"
                             f" jaccli/{kind} {row['jaccli'] / row[kind]:.2f})")
        print("; ".join(parts))
    if rows:
        exact = ", ".join(f"{kind} {'yes' if ok else 'NO'}" for kind, ok in rows[0]["exact_round_trip"].items())
        print(f"CSV bit-exact read+write of subnormals, +-max, -0.0, 0.30000000000000004: {exact}")
