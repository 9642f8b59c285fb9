"""Interleaved rounds: jaccli and JAX's best timed turn about, several times.

On a machine shared with other jobs the load drifts from one minute to the
next, so a ratio of two timings taken minutes apart says as much about the
load as about the code. Here JAX's contestant process stays up after
choosing its best variant (``bench.contestant --serve``) and each round
times, back to back, the GEMM rate (for the FLOP limit), jaccli on two
workers, jaccli on one, and JAX's best variant; the table reports the
median over rounds of each ratio taken within a round.
"""

import json
import statistics
import subprocess
import sys
import tempfile


class Served:
    """A contestant process kept up (``--serve``) to time its best variant again."""

    def __init__(self, proc, report):
        self.proc, self.report = proc, report

    def again(self):
        self.proc.stdin.write("again\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the contestant process ended")
        return json.loads(line)["seconds"]

    def close(self):
        try:
            self.proc.stdin.close()
        finally:
            self.proc.wait()


def start(cmd, cwd, env):
    """Run a contestant with ``--serve``: (its first JSON report, a Served or None, stderr text)."""
    err = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(cmd + ["--serve"], cwd=cwd, env=env, text=True, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=err)
    line = proc.stdout.readline()
    report = json.loads(line) if line.strip() else None
    served = Served(proc, report) if report and "best" in report else None
    if served is None:
        proc.stdin.close()
        proc.wait()
    err.seek(0)
    return report, served, err.read()


def interleave(rounds, steps):
    """``steps``: {name: function returning seconds (FLOP/s for "gemm_rate")}; each round
    runs every step in order.

    Returns {name: [seconds per round]}.
    """
    times = {name: [] for name in steps}
    for index in range(rounds):
        for name, step in steps.items():
            times[name].append(step())
        print(f"    round {index + 1}: " + ", ".join(
            f"GEMM {times[name][-1] / 1e9:.1f} GFLOP/s" if name == "gemm_rate"
            else f"{name} {times[name][-1] * 1e3:.1f} ms" for name in steps), file=sys.stderr)
    return times


def summarise(times, flops):
    """Medians over rounds of each jaccli timing, and of its ratios to JAX's best and to
    the FLOP limit taken within each round (``times``: interleave's result)."""
    out = {"rounds": times}
    rates, jax = times.get("gemm_rate"), times.get("jax")
    if jax:
        out["jax_median"] = statistics.median(jax)
    for name, seconds in times.items():
        if not name.startswith("jaccli"):
            continue
        out[name + "_median"] = statistics.median(seconds)
        if jax:
            out[name + "_jax_ratio"] = statistics.median(t / j for t, j in zip(seconds, jax))
        if rates:
            out[name + "_limit_ratio"] = statistics.median(t * r / flops for t, r in zip(seconds, rates))
    if "jaccli_1_thread" in times:
        out["threads_speedup"] = statistics.median(
            one / two for one, two in zip(times["jaccli_1_thread"], times["jaccli"]))
    return out


def simd_report():
    """The CPU's SIMD level as NumPy sees it, and the BLAS kernel threadpoolctl names."""
    try:
        from numpy._core._multiarray_umath import (__cpu_baseline__, __cpu_dispatch__,
                                                   __cpu_features__)
    except ImportError:  # NumPy 1.x
        from numpy.core._multiarray_umath import (__cpu_baseline__, __cpu_dispatch__,
                                                  __cpu_features__)
    from threadpoolctl import threadpool_info

    found = [name for name in __cpu_dispatch__ if __cpu_features__.get(name)]
    missing = [name for name in __cpu_dispatch__ if not __cpu_features__.get(name)]
    blas = [f"{info.get('internal_api')} {info.get('version')} ({info.get('architecture')} kernels, "
            f"{info.get('num_threads')} threads)"
            for info in threadpool_info() if info.get("user_api") == "blas"]
    simd = __cpu_features__.get("AVX512_SKX", False)  # NumPy's float64 tanh loop needs it
    try:
        from jaccli.engine import kernels
    except ImportError:  # a jaccli from before the compiled steps
        tanh = "NumPy passes"
    else:
        tanh = kernels.describe()
    return {"numpy_baseline": list(__cpu_baseline__), "numpy_dispatch_found": found,
            "numpy_dispatch_not_found": missing, "blas": blas, "numpy_tanh_simd": bool(simd),
            "tanh": tanh}


def describe_simd(simd):
    return (f"SIMD: NumPy baseline {' '.join(simd['numpy_baseline'])}, dispatch found "
            f"{' '.join(simd['numpy_dispatch_found']) or '-'} (not found: "
            f"{' '.join(simd['numpy_dispatch_not_found']) or '-'}); BLAS {'; '.join(simd['blas'])}; "
            f"NumPy float64 tanh {'vectorised' if simd['numpy_tanh_simd'] else 'scalar'}; "
            f"elementwise steps: {simd['tanh']}")


def describe_rounds(row):
    """One line: each round's jaccli/JAX and jaccli/limit ratios, and the GEMM rates."""
    times = row.get("rounds") or {}
    jax, rates = times.get("jax"), times.get("gemm_rate")
    parts = []
    for name, seconds in times.items():
        if not name.startswith("jaccli") or name == "jaccli_1_thread":
            continue
        if jax:
            parts.append(f"{name}/JAX " + " ".join(f"{t / j:.2f}" for t, j in zip(seconds, jax)))
        if rates:
            flops = row["gemm_flops"]
            ratios = (t * r / flops for t, r in zip(seconds, rates))
            parts.append(f"{name}/limit " + " ".join(f"{x:.2f}" for x in ratios))
    if rates:
        parts.append("GEMM " + " ".join(f"{r / 1e9:.0f}" for r in rates) + " GFLOP/s")
    return f"{row['workload']} rounds: " + "; ".join(parts)
