"""The CLI's chunks on a Dask cluster: an existing scheduler, or a local one for one run.

The client (the jaccli process) submits one task per block of rows and
writes the results in order as they come back, so the writers, the checks
and the summary are those of an in-process run. What travels:

* the model, pickled once into the graph (small: weights and names, no
  engine caches); a worker that dies is replaced and its tasks re-run;
* the points: a worker reads its rows itself from an NPY file or a Zarr
  store (which must be at the same path on every worker: shared storage);
  rows of any other source (CSV, standard input, --at) are read here and
  sent with the task;
* the results, back to the client, in row order.

At most a few tasks per worker thread are in flight, so the client's memory
stays bounded whatever N is. A block is a whole number of chunks, computed
with the in-process code and chunk boundaries: the results are bitwise those
of an in-process run.
"""

import contextlib
import logging
import os
import time

import numpy as np

from jaccli.errors import JaccliError, ParameterError, param
from jaccli.extras import require

#: Seconds to wait for a scheduler to answer (JACCLI_SCHEDULER_TIMEOUT overrides).
CONNECT_TIMEOUT = 10.0
#: Points per task, about (a whole number of chunks): large enough that the
#: scheduler's per-task cost (about a millisecond) is lost in the compute.
#: JACCLI_TASK_POINTS overrides it.
TASK_POINTS = 1 << 16
#: Tasks in flight per worker thread: enough to hide the round trips.
IN_FLIGHT_PER_THREAD = 3


def connect_timeout():
    text = os.environ.get("JACCLI_SCHEDULER_TIMEOUT")
    if not text:
        return CONNECT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        raise JaccliError(f"JACCLI_SCHEDULER_TIMEOUT={text!r}: expected seconds, e.g. 10") from None
    if not value > 0:
        raise JaccliError(f"JACCLI_SCHEDULER_TIMEOUT={text!r}: must be positive")
    return value


@contextlib.contextmanager
def dask_client(scheduler=None, workers=None):
    """A ``distributed.Client`` for the run: on ``scheduler``, or on a local
    cluster of ``workers`` processes (one thread and one BLAS thread each),
    closed afterwards. None when neither is given (the run stays in-process)."""
    if scheduler is None and workers is None:
        yield None
        return
    if scheduler is not None and workers is not None:
        raise ParameterError(f"give either {param('scheduler')} ADDRESS or {param('workers')} N, "
                             "not both")
    option = param("scheduler" if scheduler is not None else "workers")
    distributed = require("distributed", option)
    require("dask", option)
    for name in ("distributed", "tornado", "asyncio"):
        logging.getLogger(name).setLevel(logging.CRITICAL)  # failures reach the user as one line
    if scheduler is not None:
        context = _connect(distributed, scheduler)
    else:
        context = _local_cluster(distributed, workers)
    with context as client:
        yield client


@contextlib.contextmanager
def _connect(distributed, address):
    timeout = connect_timeout()
    try:
        client = distributed.Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        reason = str(exc).split("\n")[0] or type(exc).__name__
        if isinstance(exc, (OSError, TimeoutError)):
            reason = f"no answer within {timeout:g} s"
        raise JaccliError(f"{param('scheduler')} {address}: cannot reach a Dask scheduler ({reason})") from None
    try:
        yield client
    finally:
        client.close(timeout=timeout)


@contextlib.contextmanager
def _local_cluster(distributed, n_workers):
    import dask

    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
    environ.update(OMP_NUM_THREADS=1, MKL_NUM_THREADS=1, OPENBLAS_NUM_THREADS=1, JACCLI_THREADS=1)
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
            cluster = distributed.LocalCluster(
                n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                dashboard_address="127.0.0.1:0", silence_logs=logging.CRITICAL)
    except Exception as exc:  # distributed wraps what went wrong in RuntimeError
        raise JaccliError(f"{param('workers')} {n_workers}: could not start a local Dask cluster "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    try:
        client = distributed.Client(cluster, set_as_default=False)
        try:
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


def task_points():
    text = os.environ.get("JACCLI_TASK_POINTS", "")
    return int(text) if text.isdigit() and int(text) > 0 else TASK_POINTS


def task_rows(chunk, at_least=0):
    """Rows per task: a whole number of chunks, about ``task_points()`` (or ``at_least``)."""
    return chunk * max(1, max(task_points(), at_least) // chunk)


def reads_itself(points):
    """A source the workers can open by its path (it pickles as the path)."""
    return getattr(points, "reopens_by_path", False)


class ClusterChunks:
    """Iterate over ``(start, function(*shared, x))`` for blocks of ``rows`` points, in
    order, computed on the cluster (``tasks.compute_slice``; ``function(*shared, x,
    start)`` with ``with_start``).

    ``shared`` (the model first) is sent once and held on the cluster. The
    progress bar follows the cluster: ``follow(advance)`` has ``advance(done)``
    called with the points computed so far (finished tasks, not only the ones
    yielded). Leaving the loop early (an error while writing, Ctrl-C)
    cancels the tasks still queued.
    """

    def __init__(self, client, function, shared, points, rows, source="points", with_start=False):
        self.client, self.function, self.shared = client, function, tuple(shared)
        self.points, self.rows, self.source = points, rows, source
        self.with_start = with_start
        self.progress = None

    def follow(self, advance):
        self.progress = advance

    def __iter__(self):
        from jaccli.scale.tasks import compute_slice

        client, points, rows = self.client, self.points, self.rows
        n_points = len(points)
        remote = points if reads_itself(points) else None
        shared = client.submit(held, self.shared, pure=False)
        window = IN_FLIGHT_PER_THREAD * max(1, sum(client.nthreads().values()))
        starts = iter(range(0, n_points, rows))
        pending = []  # (start, stop, future), in row order
        yielded = 0

        def submit(start):
            stop = min(start + rows, n_points)
            block = remote if remote is not None else np.asarray(points[start:stop], dtype=np.float64)
            pending.append((start, stop, client.submit(compute_slice, self.function, shared, block,
                                                       start, stop, self.source, self.with_start,
                                                       pure=False)))

        def report():
            if self.progress is not None:
                self.progress(yielded + sum(b - a for a, b, f in pending if f.done()))

        try:
            for start in starts:
                submit(start)
                if len(pending) >= window:
                    break
            while pending:
                start, stop, future = pending[0]
                waited = 0
                while not future.done():  # a cheap local check; the bar moves meanwhile
                    time.sleep(0.005)
                    waited += 1
                    if waited % 50 == 0:
                        report()
                result = task_result(future, start, stop)
                pending.pop(0)
                following = next(starts, None)
                if following is not None:
                    submit(following)
                yielded = stop
                yield start, result
                report()
        finally:
            for _, _, future in pending:
                future.cancel()
            shared.cancel()


def quantity_chunks(client, model, quantities, points, chunk, source="points"):
    """The computing commands' chunks on the cluster: every quantity side by side per row."""
    from jaccli.scale.tasks import quantity_rows

    return ClusterChunks(client, quantity_rows, (model, list(quantities), chunk), points,
                         task_rows(chunk), source)


def held(value):
    """A value (the model) as a task of its own: every block depends on it, and
    a worker that dies and loses it gets it back by running this again."""
    return value


def task_result(future, start, stop):
    """The task's result; a cluster failure as one line naming the rows."""
    from concurrent.futures import CancelledError

    from distributed.scheduler import KilledWorker

    try:
        return future.result()
    except JaccliError:
        raise
    except KilledWorker:
        raise JaccliError(f"Dask workers died repeatedly computing points {start + 1:,}-{stop:,} "
                          f"(out of memory? see the workers' logs); the run failed") from None
    except (OSError, TimeoutError, CancelledError) as exc:  # cancelled: the scheduler went away
        raise JaccliError(f"lost the Dask scheduler while computing points {start + 1:,}-{stop:,} "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None


def worker_peak_memory(client):
    """Peak resident memory (bytes) of each worker process, by address."""
    return client.run(_peak_rss)


def _peak_rss():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
