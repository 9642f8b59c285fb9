"""The scale-out row: the same CLI run in-process, on ``--workers 2`` and on a scheduler.

Zarr points in, Zarr results out, input Jacobian of an 8-64-64-1 tanh net.
The issue's figure is 20,000,000 points; the bench's default is 2,000,000
(``--scale-points`` changes it) so that ``make bench`` stays within its
budget on a loaded 2-core machine: the throughput (points/s) is what is
compared, and it does not depend on N once the cluster has started.

Peak memory per worker is read from the workers of a ``dask scheduler`` +
``dask worker`` pair started here on 127.0.0.1 (their own ru_maxrss, after
the run), at N and at N/10 on fresh workers: it must not grow with N.
Needs the ``jaccli[dask]`` extra; without it the row is skipped.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

from .workloads import Workload, write_model

SCALE = Workload("S1", "input Jacobian, 8-64-64-1 tanh, Zarr -> Zarr", "jacobian",
                 [8, 64, 64, 1], "tanh", 2_000_000, 1)
ZARR_CHUNK_ROWS = 1 << 16
WRITE_ROWS = 1 << 20


def write_points_store(path, n_points):
    """An (N, 8) Zarr store written a slice at a time (never all in memory)."""
    import zarr

    array = zarr.create_array(path, shape=(n_points, SCALE.n_inputs),
                              chunks=(ZARR_CHUNK_ROWS, SCALE.n_inputs), dtype="f8", overwrite=True)
    rng = np.random.default_rng(1000 + SCALE.seed)
    for start in range(0, n_points, WRITE_ROWS):
        stop = min(start + WRITE_ROWS, n_points)
        array[start:stop] = rng.normal(size=(stop - start, SCALE.n_inputs))


def dask_executable(name):
    return [os.path.join(os.path.dirname(sys.executable), "dask"), name]


class LoopbackCluster:
    """``dask scheduler`` and ``dask worker --nworkers N`` on 127.0.0.1, for the bench."""

    def __init__(self, directory, n_workers=2, environ=None):
        self.file = os.path.join(directory, "scheduler.json")
        if os.path.exists(self.file):
            os.unlink(self.file)
        env = dict(os.environ, JACCLI_THREADS="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
                   MKL_NUM_THREADS="1", **(environ or {}))
        quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        self.scheduler = subprocess.Popen(
            dask_executable("scheduler") + ["--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                            "--scheduler-file", self.file], **quiet)
        self.workers = subprocess.Popen(
            dask_executable("worker") + ["--scheduler-file", self.file, "--nworkers", str(n_workers),
                                         "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard"],
            **quiet)
        from distributed import Client

        for _ in range(300):
            if os.path.exists(self.file):
                break
            time.sleep(0.1)
        self.client = Client(scheduler_file=self.file, timeout=30)
        self.client.wait_for_workers(n_workers, timeout=60)
        self.address = self.client.scheduler.address

    def peak_memory(self):
        from jaccli.scale.cluster import worker_peak_memory

        return max(worker_peak_memory(self.client).values())

    def restart(self):
        self.client.restart()

    def close(self):
        self.client.close()
        for proc in (self.workers, self.scheduler):
            proc.send_signal(signal.SIGINT)
        for proc in (self.workers, self.scheduler):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def bench_scale_out(directory, n_points, run_timed, peak_command, command):
    """One row: seconds and points/s of each mode, peak RSS in-process and per worker."""
    try:
        import distributed  # noqa: F401
        import zarr  # noqa: F401
    except ImportError:
        print("S1: the jaccli[dask] extra is not installed: scale-out row skipped", file=sys.stderr)
        return None
    print(f"S1: {SCALE.title}, {n_points:,} points", file=sys.stderr)
    model = write_model(SCALE, directory)
    points = os.path.join(directory, "S1_points.zarr")
    small = os.path.join(directory, "S1_small.zarr")
    write_points_store(points, n_points)
    write_points_store(small, max(n_points // 10, 1))
    out = os.path.join(directory, "S1_out.zarr")
    base = ["jacobian", model, "--points", points, "-o", out, "--quiet"]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    row = {"workload": "S1", "title": SCALE.title, "n_points": n_points}
    row["in_process"], row["peak_rss_in_process"] = run_timed(peak_command(*base), cwd=root)
    reference = _read(out)
    row["workers_2"], _ = run_timed(command(*base, "--workers", "2"))
    row["workers_2_max_abs_diff"] = float(np.abs(_read(out) - reference).max())
    cluster = LoopbackCluster(directory)
    try:
        row["scheduler"], _ = run_timed(command(*base, "--scheduler", cluster.address))
        row["scheduler_max_abs_diff"] = float(np.abs(_read(out) - reference).max())
        row["peak_rss_per_worker"] = cluster.peak_memory()
        cluster.restart()
        tenth = ["jacobian", model, "--points", small, "-o", out, "--quiet"]
        run_timed(command(*tenth, "--scheduler", cluster.address))
        row["peak_rss_per_worker_tenth"] = cluster.peak_memory()
    finally:
        cluster.close()
    for mode in ("in_process", "workers_2", "scheduler"):
        row[f"{mode}_points_per_second"] = n_points / row[mode]
    print(f"    in-process {row['in_process']:.1f} s, --workers 2 {row['workers_2']:.1f} s "
          f"({row['workers_2'] / row['in_process']:.2f}x), scheduler on loopback "
          f"{row['scheduler']:.1f} s ({row['scheduler'] / row['in_process']:.2f}x); peak RSS "
          f"per worker {row['peak_rss_per_worker'] / 2**20:.0f} MB (at N/10: "
          f"{row['peak_rss_per_worker_tenth'] / 2**20:.0f} MB)", file=sys.stderr)
    return row


def _read(path):
    import zarr

    return zarr.open_group(path, mode="r")["jacobian"][...]


def describe(row):
    """The row as the bench's report prints it."""
    return (f"S1 scale-out ({row['n_points']:,} points, Zarr -> Zarr, jacobian 8-64-64-1): "
            f"in-process {row['in_process']:.1f} s, --workers 2 {row['workers_2']:.1f} s "
            f"({row['workers_2'] / row['in_process']:.2f}x), scheduler on 127.0.0.1 "
            f"{row['scheduler']:.1f} s ({row['scheduler'] / row['in_process']:.2f}x); peak RSS "
            f"in-process {row['peak_rss_in_process'] / 2**20:.0f} MB, per worker "
            f"{row['peak_rss_per_worker'] / 2**20:.0f} MB (N/10: "
            f"{row['peak_rss_per_worker_tenth'] / 2**20:.0f} MB)")


if __name__ == "__main__":  # python -m bench.scale [N]: the row alone
    from .__main__ import command as _command
    from .__main__ import peak_command as _peak_command
    from .__main__ import run_timed as _run_timed

    with tempfile.TemporaryDirectory(prefix="jaccli-scale-") as tmp:
        result = bench_scale_out(tmp, int(sys.argv[1]) if len(sys.argv) > 1 else SCALE.n_points,
                                 _run_timed, _peak_command, _command)
    if result:
        print(describe(result))
        print(json.dumps(result))
