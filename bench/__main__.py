"""``python -m bench``: run every workload, print one table, write bench/results.json.

Timings are best-of-5 after one warm-up run (compile time excluded for JAX),
all measured in this one process run, so the ratios compare like with like
on a machine whose load may drift. See the README's Performance section.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from .csv_bench import bench_csv, print_csv_rows
from .floor import describe_machine, machine_threads, products_only
from .plot_bench import PLOT_POINTS, bench_plot
from .plot_bench import describe as describe_plot_row
from .quiet import CpuWatch
from .quiet import describe as describe_quiet
from .rounds import describe_rounds, describe_simd, simd_report
from .scale import SCALE, bench_scale_out
from .scale import describe as describe_scale_row
from .workloads import WORKLOADS, make_points, make_weights, write_model

HERE = os.path.dirname(os.path.abspath(__file__))
REPEATS = 5
SLOW = 3.0  # seconds: a run slower than this is timed once (its warm-up run)


def best_of(run, repeats=REPEATS):
    """Best wall time of ``repeats`` runs after one warm-up (fewer if a run is very slow)."""
    started = time.perf_counter()
    run()
    warm = time.perf_counter() - started
    if warm > SLOW:
        return warm  # a contestant this slow is timed once: its ratio is not in doubt
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def gemm_rate(size=2000, repeats=REPEATS):
    """float64 FLOP/s of NumPy's matrix product (default BLAS threads), best of ``repeats``."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(size, size)), rng.normal(size=(size, size))
    out = np.empty((size, size))
    seconds = best_of(lambda: np.matmul(a, b, out=out), repeats)
    return 2.0 * size ** 3 / seconds


def command(*args):
    """The jaccli entry point of this interpreter's environment."""
    exe = os.path.join(os.path.dirname(sys.executable), "jaccli")
    if os.path.exists(exe):
        return [exe, *args]
    return [sys.executable, "-m", "jaccli.cli", *args]


def run_timed(cmd, **kwargs):
    """Wall time and peak RSS (bytes; VmHWM printed by bench.peak, else 0) of a subprocess."""
    started = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kwargs)
    seconds = time.perf_counter() - started
    err = proc.stderr.decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {err}")
    peak = 0
    for line in err.splitlines():
        if line.startswith("VMHWM "):
            peak = int(line.split()[1])
    return seconds, peak


def peak_command(*args):
    """jaccli ARGS run through bench.peak, which reports the process's own peak RSS."""
    return [sys.executable, "-m", "bench.peak", *args]


def best_subprocess(cmd, repeats=REPEATS):
    run_timed(cmd)
    return min(run_timed(cmd)[0] for _ in range(repeats))


def fmt_seconds(value):
    if value is None:
        return "-"
    return f"{value * 1e3:.1f} ms" if value < 1 else f"{value:.2f} s"


def fmt_ratio(value):
    return "-" if value is None else f"{value:.2f}"


# ---------------------------------------------------------------- in-process workloads


def contestant(framework, workload, n_points=None, serve=False):
    """Run one contestant in a process of its own (bench/contestant.py); None if missing.

    With ``serve`` the process stays up (``bench.rounds.Served`` under "served")
    to time its best variant again in the interleaved rounds."""
    from .rounds import start

    root = os.path.dirname(HERE)
    cmd = [sys.executable, "-m", "bench.contestant", framework, workload.key]
    if n_points:
        cmd.append(str(n_points))
    env = dict(os.environ, PYTHONWARNINGS="ignore", TF_CPP_MIN_LOG_LEVEL="3")
    if serve:
        report, served, err = start(cmd, root, env)
    else:
        proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, env=env)
        lines = proc.stdout.strip().splitlines()
        report, served, err = (json.loads(lines[-1]) if lines else None), None, proc.stderr
    if report is None:
        print(f"    {framework}: failed\n{err[-2000:]}", file=sys.stderr)
        return None
    if report.get("missing"):
        print(f"    {framework}: not installed, skipped", file=sys.stderr)
        return None
    for variant, seconds in report["variants"].items():
        print(f"    {framework} {variant}: {fmt_seconds(seconds)}", file=sys.stderr)
    for variant, why in report.get("failed", {}).items():
        print(f"    {framework} {variant}: failed ({why})", file=sys.stderr)
    if "seconds" not in report:
        return None
    print(f"    {framework} best: {report['best']}, max |diff| vs jaccli "
          f"{report['max_abs_diff']:.1e}", file=sys.stderr)
    return {"seconds": report["seconds"], "variant": report["best"],
            "max_abs_diff": report["max_abs_diff"], "variants": report["variants"],
            "served": served}


def run_rounds(row, args, steps, flops):
    """The interleaved rounds (``bench.rounds``): GEMM rate, the jaccli ``steps``, JAX's best.

    Puts the medians in ``row``: the table's jaccli and JAX times and the ratios.
    """
    from .rounds import interleave, summarise

    served = (row.get("jax") or {}).pop("served", None)
    steps = {"gemm_rate": lambda: gemm_rate(repeats=3), **steps}
    if served is not None:
        steps["jax"] = served.again
    try:
        times = interleave(args.rounds, steps)
    finally:
        if served is not None:
            served.close()
    summary = summarise(times, flops)
    row.update(summary)
    row["limit"] = flops / statistics.median(times["gemm_rate"])
    for name in steps:
        if name.startswith("jaccli"):
            row[name] = summary[name + "_median"]
    if served is not None:
        row["jax"]["first_seconds"] = row["jax"]["seconds"]
        row["jax"]["seconds"] = summary["jax_median"]


def bench_engine_workload(workload, directory, rate, args):
    import jaccli
    from jaccli.engine import sweeps as engine
    from jaccli.engine.chunks import run_chunks

    path = write_model(workload, directory)
    model = jaccli.load(path)
    points = make_points(workload)
    kernels, biases = make_weights(workload)
    quantity = workload.quantity
    print(f"{workload.key}: {workload.title}, {workload.n_points:,} points", file=sys.stderr)
    result = model.compute(quantity, points)
    row = {"workload": workload.key, "title": workload.title, "n_points": workload.n_points,
           "quantity": quantity, "chunk_size": model.chunk_size_for(quantity)}
    row["jaccli"] = best_of(lambda: model.compute(quantity, points))
    print(f"    jaccli: {fmt_seconds(row['jaccli'])} (chunks of {row['chunk_size']})", file=sys.stderr)
    row["jaccli_1_thread"] = best_of(lambda: model.compute(quantity, points, threads=1))
    chunk = row["chunk_size"]
    out = np.empty_like(result)

    def blas_threads_only():  # chunked, one thread of Python, BLAS on its default threads
        ws = engine.Workspace()
        for start in range(0, len(points), chunk):
            model.compute_chunk(quantity, points[start:start + chunk], out[start:start + chunk], ws)

    row["jaccli_blas_threads_only"] = best_of(blas_threads_only)
    if quantity == "jacobian" and workload.n_outputs == 1:
        measure_floor(row, model, points, chunk)
    model32 = jaccli.load(path, dtype="float32")
    points32 = points.astype(np.float32)
    row["jaccli_float32"] = best_of(lambda: model32.compute(quantity, points32))
    print(f"    jaccli 1 thread {fmt_seconds(row['jaccli_1_thread'])}, BLAS threads only "
          f"{fmt_seconds(row['jaccli_blas_threads_only'])}, float32 "
          f"{fmt_seconds(row['jaccli_float32'])}", file=sys.stderr)
    del run_chunks, kernels, biases
    if not args.no_torch:
        row["torch"] = contestant("torch", workload)
    if not args.no_fd:
        row["numpy_fd"] = contestant("numpy_fd", workload)
    if not args.no_jax:
        row["jax"] = contestant("jax", workload, serve=args.rounds > 0)
    row["gemm_flops"] = workload.gemm_flops()
    row["limit"] = workload.gemm_flops() / rate
    row["jaccli_first"] = row["jaccli"]
    if args.rounds > 0:
        run_rounds(row, args, {
            "jaccli": lambda: best_of(lambda: model.compute(quantity, points)),
            "jaccli_1_thread": lambda: best_of(lambda: model.compute(quantity, points, threads=1)),
        }, row["gemm_flops"])
    if quantity == "param_jacobian":
        row["output_bytes"] = result.nbytes
    return row


# ---------------------------------------------------------------- W6 and the CLI


def bench_w6(workload, directory, rate, args):
    """W6 through the CLI (``jacobian --with value``, NPY in, NPZ out: one process,
    one pass) and in memory (``model.value_and_jacobian``), beside JAX's best."""
    import jaccli

    n_points = args.w6_points or workload.n_points
    print(f"{workload.key}: {workload.title}, {n_points:,} points", file=sys.stderr)
    path = write_model(workload, directory)
    points = make_points(workload, n_points)
    points_path = os.path.join(directory, "W6_points.npy")
    np.save(points_path, points)
    out = os.path.join(directory, "W6_out.npz")  # W6.npz is the model
    cmd = command("jacobian", path, "--with", "value", "--points", points_path, "-o", out, "--quiet")
    row = {"workload": workload.key, "title": workload.title, "n_points": n_points,
           "quantity": workload.quantity}
    row["jaccli"] = best_subprocess(cmd)
    root = os.path.dirname(HERE)
    row["peak_rss"] = run_timed(peak_command(*cmd[1:]), cwd=root)[1]
    model = jaccli.load(path)
    reference = model.value_and_jacobian(points)
    archive = np.load(out)
    row["cli_max_abs_diff"] = max(float(np.abs(archive[name] - ref).max())
                                  for name, ref in zip(("value", "jacobian"), reference))
    row["jaccli_in_memory"] = best_of(lambda: model.value_and_jacobian(points))
    row["jaccli_two_passes"] = best_of(lambda: (model.value(points), model.jacobian(points)))
    measure_floor(row, model, points, model.chunk_size_for("jacobian"), value=True)
    print(f"    CLI {fmt_seconds(row['jaccli'])}, value_and_jacobian "
          f"{fmt_seconds(row['jaccli_in_memory'])} (value, then jacobian: "
          f"{fmt_seconds(row['jaccli_two_passes'])}), peak RSS {row['peak_rss'] / 2**20:.0f} MB",
          file=sys.stderr)
    # the same at a tenth of the points (NPZ gathers the results in memory: they grow with N)
    small = os.path.join(directory, "W6_small.npy")
    np.save(small, points[: n_points // 10])
    row["peak_rss_tenth"] = run_timed(peak_command(
        "jacobian", path, "--with", "value", "--points", small, "-o", out, "--quiet"), cwd=root)[1]
    if not args.no_fd:
        row["numpy_fd"] = contestant("numpy_fd", workload, n_points)
    if not args.no_jax:
        row["jax"] = contestant("jax", workload, n_points, serve=args.rounds > 0)
    # torch.func on 2,000,000 points takes minutes: not run for W6
    row["gemm_flops"] = workload.sweeps() * workload.gemm_flops_per_pass() * n_points
    row["limit"] = row["gemm_flops"] / rate
    row["jaccli_first"] = row["jaccli"]
    if args.rounds > 0:
        run_rounds(row, args, {
            "jaccli": lambda: best_subprocess(cmd),
            "jaccli_in_memory": lambda: best_of(lambda: model.value_and_jacobian(points)),
        }, row["gemm_flops"])
    return row


def measure_floor(row, model, points, chunk, value=False):
    """The workload's matrix products alone (``bench.floor.products_only``), 2 and 1 workers."""
    row["floor"] = best_of(products_only(model, points, chunk, value=value))
    row["floor_1_thread"] = best_of(products_only(model, points, chunk, threads=1, value=value))
    print(f"    floor (its matrix products alone): {fmt_seconds(row['floor'])}, 1 worker "
          f"{fmt_seconds(row['floor_1_thread'])}", file=sys.stderr)


def describe_floor(row):
    """One line: the floor, and jaccli's and JAX's times over it."""
    jax = (row.get("jax") or {}).get("seconds")
    mine = row.get("jaccli_in_memory", row["jaccli"])
    versus = f", JAX best/floor {jax / row['floor']:.2f}" if jax else ""
    return (f"{row['workload']} floor (its matrix products alone, jaccli's chunks): 2 workers "
            f"{fmt_seconds(row['floor'])}, 1 worker {fmt_seconds(row['floor_1_thread'])}; "
            f"jaccli{' in memory' if 'jaccli_in_memory' in row else ''}/floor "
            f"{mine / row['floor']:.2f}{versus}")


def peak_rss_in_process(workload, directory):
    """Peak RSS of a fresh interpreter computing one workload (W5) in memory."""
    path = write_model(workload, directory)
    code = ("import sys, jaccli; from bench.workloads import WORKLOADS, make_points;"
            f"w = [w for w in WORKLOADS if w.key == {workload.key!r}][0];"
            "model = jaccli.load(sys.argv[1]);"
            "r = model.compute(w.quantity, make_points(w));"
            "from bench.peak import vm_hwm_bytes;"
            "sys.stderr.write('VMHWM %d\\n' % vm_hwm_bytes())")
    root = os.path.dirname(HERE)
    _, rss = run_timed([sys.executable, "-c", code, path], cwd=root)
    return rss


def bench_cli_w1(directory):
    """W1 end to end through the CLI, CSV and NPY; jaccli's CSV reading and writing
    against numpy.loadtxt + numpy.savetxt(fmt="%.17g") on the same arrays."""
    import jaccli
    from jaccli.quantities import column_names
    from jaccli.io.points import read_points
    from jaccli.io.writers import TableWriter

    workload = WORKLOADS[0]
    path = write_model(workload, directory)
    points = make_points(workload)
    model = jaccli.load(path)
    names = [f"x{i + 1}" for i in range(workload.n_inputs)]
    csv_in = os.path.join(directory, "W1_points.csv")
    with open(csv_in, "w") as handle:
        handle.write(",".join(names) + "\n")
        handle.write("".join(",".join(map(repr, row)) + "\n" for row in points.tolist()))
    npy_in = os.path.join(directory, "W1_points.npy")
    np.save(npy_in, points)
    row = {"workload": "CLI W1", "n_points": len(points)}
    print("CLI: W1 end to end", file=sys.stderr)
    row["csv"] = best_subprocess(command("jacobian", path, "--points", csv_in, "-o",
                                         os.path.join(directory, "W1_out.csv"), "--quiet"))
    row["npy"] = best_subprocess(command("jacobian", path, "--points", npy_in, "-o",
                                         os.path.join(directory, "W1_out.npy"), "--quiet"))
    jac = model.jacobian(points).reshape(len(points), -1)
    columns = column_names("jacobian", model)
    out_csv = os.path.join(directory, "W1_io.csv")

    def jaccli_io():
        read_points(csv_in, names)
        with open(out_csv, "w") as handle:
            writer = TableWriter("-", "csv", columns, stdout=handle)
            writer.write(0, jac)
            writer.commit()

    def numpy_io():
        np.loadtxt(csv_in, delimiter=",", skiprows=1)
        np.savetxt(out_csv, jac, fmt="%.17g", delimiter=",", header=",".join(columns), comments="")

    row["jaccli_csv_io"] = best_of(jaccli_io)
    row["numpy_csv_io"] = best_of(numpy_io)
    print(f"    CSV {fmt_seconds(row['csv'])}, NPY {fmt_seconds(row['npy'])}; CSV read+write "
          f"jaccli {fmt_seconds(row['jaccli_csv_io'])} vs loadtxt+savetxt "
          f"{fmt_seconds(row['numpy_csv_io'])}", file=sys.stderr)
    row["help"] = best_subprocess(command("--help"))
    row["info"] = best_subprocess(command("info", path))
    print(f"    --help {fmt_seconds(row['help'])}, info {fmt_seconds(row['info'])}", file=sys.stderr)
    return row


# ---------------------------------------------------------------- report


def machine():
    from threadpoolctl import threadpool_info

    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = {"python": platform.python_version(), "numpy": np.__version__}
    for name in ("jax", "torch", "scipy"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            versions[name] = None
    blas = [{k: v for k, v in info.items() if k in ("internal_api", "version", "architecture",
                                                     "num_threads")}
            for info in threadpool_info() if info.get("user_api") == "blas"]
    return {"cpu": cpu, "cores": os.cpu_count(), "load_average": os.getloadavg(),
            "versions": versions, "blas": blas, "simd": simd_report(),
            "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
            "openblas_l2_size": os.environ.get("OPENBLAS_L2_SIZE")}


def print_table(rows, cli, rate, info):
    head = ["workload", "jaccli", "f32", "JAX best", "torch.func", "NumPy FD", "limit",
            "jaccli/JAX", "jaccli/limit"]
    lines = []
    for row in rows:
        jax = (row.get("jax") or {}).get("seconds")
        torch = (row.get("torch") or {}).get("seconds")
        fd = (row.get("numpy_fd") or {}).get("seconds")
        lines.append([f"{row['workload']} {row['quantity']} N={row['n_points']:,}",
                      fmt_seconds(row["jaccli"]), fmt_seconds(row.get("jaccli_float32")),
                      fmt_seconds(jax), fmt_seconds(torch), fmt_seconds(fd),
                      fmt_seconds(row["limit"]),
                      fmt_ratio(row.get("jaccli_jax_ratio", row["jaccli"] / jax if jax else None)),
                      fmt_ratio(row.get("jaccli_limit_ratio", row["jaccli"] / row["limit"]))])
    widths = [max(len(str(x)) for x in column) for column in zip(head, *lines)]
    rounds = max((len(row.get("rounds", {}).get("jaccli", [])) for row in rows), default=0)
    print(f"machine: {info['cpu']}, {info['cores']} cores, load average "
          f"{' '.join(f'{x:.1f}' for x in info['load_average'])}; NumPy float64 GEMM "
          f"{rate / 1e9:.1f} GFLOP/s; best of {REPEATS} after a warm-up"
          + (f"; times and ratios: medians of {rounds} interleaved rounds" if rounds else ""))
    print(describe_simd(info["simd"]))
    print(describe_quiet(info.get("other_work"), info["load_average"][0], info["cores"] or 1))
    if info.get("threads"):
        print(describe_machine(info["threads"]))
    print("  ".join(h.ljust(w) for h, w in zip(head, widths)))
    for line in lines:
        print("  ".join(str(x).ljust(w) for x, w in zip(line, widths)))
    for row in rows:
        if "peak_rss" in row:
            extra = ""
            if "peak_rss_tenth" in row:
                extra = f" (at N/10: {row['peak_rss_tenth'] / 2**20:.0f} MB)"
            print(f"{row['workload']} peak RSS: {row['peak_rss'] / 2**20:.0f} MB{extra}")
        if "jaccli_in_memory" in row:
            jax = (row.get("jax") or {}).get("seconds")
            in_memory = row.get("jaccli_in_memory_jax_ratio",
                                row["jaccli_in_memory"] / jax if jax else 0)
            cli_ratio = row.get("jaccli_jax_ratio", row["jaccli"] / jax if jax else 0)
            versus = f"; value_and_jacobian/JAX {in_memory:.2f}, CLI/JAX {cli_ratio:.2f}" if jax else ""
            print(f"{row['workload']}: CLI jacobian --with value (NPY in, NPZ out) "
                  f"{fmt_seconds(row['jaccli'])}, value_and_jacobian in memory "
                  f"{fmt_seconds(row['jaccli_in_memory'])}, value then jacobian "
                  f"{fmt_seconds(row['jaccli_two_passes'])}{versus}")
        if "jaccli_1_thread" in row:
            speedup = row.get("threads_speedup", row["jaccli_1_thread"] / row["jaccli"])
            print(f"{row['workload']} threads: 2 workers {fmt_seconds(row['jaccli'])}, 1 worker "
                  f"{fmt_seconds(row['jaccli_1_thread'])} ({speedup:.2f}x), BLAS threads only "
                  f"{fmt_seconds(row['jaccli_blas_threads_only'])}")
        if "floor" in row:
            print(describe_floor(row))
        if "rounds" in row:
            print(describe_rounds(row))
    if cli:
        print(f"CLI W1 end to end: CSV in/out {fmt_seconds(cli['csv'])}, NPY in/out "
              f"{fmt_seconds(cli['npy'])}; CSV read+write: jaccli {fmt_seconds(cli['jaccli_csv_io'])}"
              f" vs numpy loadtxt+savetxt {fmt_seconds(cli['numpy_csv_io'])} "
              f"({cli['jaccli_csv_io'] / cli['numpy_csv_io']:.2f}x)")
        print(f"start-up: jaccli --help {fmt_seconds(cli['help'])}, jaccli info "
              f"{fmt_seconds(cli['info'])}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", default="",
                        help="comma-separated workloads (W1..W6, CLI, S1, CSV, PLOT)")
    parser.add_argument("--csv-points", type=int, default=None, help="override CSV's 2,000,000")
    parser.add_argument("--no-jax", action="store_true")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--no-fd", action="store_true", help="leave out the NumPy differences")
    parser.add_argument("--w6-points", type=int, default=None, help="override W6's 2,000,000")
    parser.add_argument("--scale-points", type=int, default=SCALE.n_points,
                        help=f"points of the S1 scale-out row (default {SCALE.n_points:,})")
    parser.add_argument("--plot-points", type=int, default=PLOT_POINTS,
                        help=f"points of the PLOT row (default {PLOT_POINTS:,})")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds of jaccli and JAX per workload (0: none)")
    parser.add_argument("--json", default=os.path.join(HERE, "results.json"))
    args = parser.parse_args(argv)
    only = {x.strip() for x in args.only.split(",") if x.strip()}
    started = time.perf_counter()
    watch = CpuWatch()
    info = machine()
    rate = gemm_rate()
    info["threads"] = machine_threads()
    print(f"GEMM: {rate / 1e9:.1f} GFLOP/s; {describe_machine(info['threads'])}", file=sys.stderr)
    rows, cli, scale, plot = [], None, None, None
    with tempfile.TemporaryDirectory(prefix="jaccli-bench-") as directory:
        for workload in WORKLOADS:
            if only and workload.key not in only:
                continue
            if workload.key == "W6":
                rows.append(bench_w6(workload, directory, rate, args))
            else:
                row = bench_engine_workload(workload, directory, rate, args)
                if workload.key == "W5":
                    row["peak_rss"] = peak_rss_in_process(workload, directory)
                rows.append(row)
        if not only or "CLI" in only:
            cli = bench_cli_w1(directory)
        if not only or "S1" in only:
            scale = bench_scale_out(directory, args.scale_points, run_timed, peak_command, command)
        csv_rows = bench_csv(directory, args.csv_points) if not only or "CSV" in only else []
        if not only or "PLOT" in only:
            plot = bench_plot(directory, args.plot_points, run_timed, peak_command, command)
    info["seconds"] = time.perf_counter() - started
    info["load_average_after"] = os.getloadavg()
    info["other_work"] = watch.report(info["cores"] or 1)
    if rows or cli:
        print_table(rows, cli, rate, info)
    print_csv_rows(csv_rows)
    if scale:
        print(describe_scale_row(scale))
    if plot:
        print(describe_plot_row(plot))
    print(f"(bench took {info['seconds']:.0f} s)")
    with open(args.json, "w") as handle:
        json.dump({"machine": info, "gemm_flops_per_second": rate, "repeats": REPEATS,
                   "workloads": rows, "cli": cli, "scale_out": scale, "csv": csv_rows,
                   "plot": plot},
                  handle, indent=1)


if __name__ == "__main__":
    main()
