"""Chunks of points on worker threads, each with its own scratch buffers.

NumPy releases the GIL inside ufuncs and BLAS calls, so two threads that
each take whole chunks run the elementwise work (tanh, the products) on
both cores, which BLAS threading alone does not. While chunks run on
workers, BLAS is pinned to one thread (threadpoolctl) so the cores are not
oversubscribed and every chunk is computed by the same single-threaded
kernels whichever thread runs it: the threaded result is bitwise the
single-threaded one. Only a run of a single chunk leaves BLAS free to use
every core on it.

``iter_chunks`` yields the results in order, bounded, for a consumer that
streams them (the CLI writes each chunk); ``run_chunks``, for work that writes
its own rows of an output, lets the workers take the chunks themselves, with
no thread in between.
"""

import os
import threading

_controller = None
_lock = threading.Lock()


def default_threads():
    """JACCLI_THREADS, or the usable cores (at most 8 workers)."""
    env = os.environ.get("JACCLI_THREADS")
    if env:
        try:
            threads = int(env)
        except ValueError:
            threads = 0
        if threads < 1:  # a typo is an error, not a silent default
            from jaccli.errors import JaccliError

            raise JaccliError(f"JACCLI_THREADS={env!r}: expected a whole number of threads, 1 or more")
        return threads
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))


def l2_cache_bytes(default=2 << 20, base="/sys/devices/system/cpu/cpu0/cache"):
    """One core's L2 cache in bytes, read from Linux's sysfs, or ``default``."""
    try:
        for entry in sorted(os.listdir(base)):
            with open(os.path.join(base, entry, "level")) as handle:
                if handle.read().strip() != "2":
                    continue
            with open(os.path.join(base, entry, "size")) as handle:
                text = handle.read().strip().upper()
            scale = {"K": 1 << 10, "M": 1 << 20}.get(text[-1:], 1)
            return int(text.rstrip("KM")) * scale
    except (OSError, ValueError):
        pass
    return default


def chunk_bytes():
    """Bytes of a chunk's widest buffer to aim a chunk size at: twice a core's L2.

    Measured (CPU time per point, one worker): with 2 MB of L2 per core 4 MB
    was best; with 1 MB, 2 MB beat 4 MB by 7% on W2 (Hessian diagonal) and
    14% on W5 (Hessian), W1 unchanged (its chunk is capped at 2,048 points).
    """
    return 2 * l2_cache_bytes()


def single_threaded_blas():
    """A context manager pinning BLAS (OpenBLAS, MKL, ...) to one thread."""
    global _controller
    with _lock:
        if _controller is None:
            from threadpoolctl import ThreadpoolController

            _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api="blas")


def iter_chunks(work, n_points, chunk, threads=None, make_state=None):
    """Yield ``(start, work(start, stop, state))`` for every chunk, in order.

    Chunk boundaries depend only on ``chunk``, never on the number of
    threads. Each worker owns a ``state`` (``make_state()``, e.g. an engine
    Workspace). At most two chunks per worker are in flight, so memory stays
    bounded whatever ``n_points`` is. The first failing chunk's exception is
    raised here; closing the generator early (an error while writing,
    Ctrl-C) cancels the chunks not yet started.
    """
    make_state = make_state or (lambda: None)
    work = _in_job(work, n_points)
    starts = range(0, n_points, chunk)
    threads = max(1, min(threads or default_threads(), len(starts)))
    if len(starts) <= 1:  # one chunk: BLAS may use every core on it
        for start in starts:
            yield start, work(start, n_points, make_state())
        return
    with single_threaded_blas():
        if threads == 1:
            state = make_state()
            for start in starts:
                yield start, work(start, min(start + chunk, n_points), state)
        else:
            yield from _on_workers(work, starts, n_points, chunk, threads, make_state)


def _in_job(work, n_points):
    """``work`` run knowing its job's size, which chooses the kernels (``engine.kernels.job``)."""
    from jaccli.engine.kernels import job

    def sized(start, stop, state):
        with job(n_points):
            return work(start, stop, state)

    return sized


def _on_workers(work, starts, n_points, chunk, threads, make_state):
    from concurrent.futures import ThreadPoolExecutor

    local = threading.local()

    def task(start):
        if not hasattr(local, "state"):
            local.state = make_state()
        return work(start, min(start + chunk, n_points), local.state)

    pending = []
    pool = ThreadPoolExecutor(threads, thread_name_prefix="jaccli")
    try:
        upcoming = iter(starts)
        for start in upcoming:
            pending.append((start, pool.submit(task, start)))
            if len(pending) >= 2 * threads:
                break
        while pending:
            start, future = pending.pop(0)
            result = future.result()
            following = next(upcoming, None)
            if following is not None:
                pending.append((following, pool.submit(task, following)))
            yield start, result
    finally:
        for _, future in pending:
            future.cancel()
        pool.shutdown(wait=True)


def run_chunks(work, n_points, chunk, threads=None, make_state=None):
    """Call ``work(start, stop, state)`` for every chunk, results dropped (each chunk
    writes its own rows of an output): the workers take the next chunk themselves.

    ``iter_chunks`` hands chunks out from the consuming thread and wakes it for each
    result; with nothing to consume in order that costs ~40 us a chunk on two
    workers (measured: 256-point chunks of a 64-wide tanh net scaled 1.33x on two
    workers that way, 1.96x with no thread in between; see docs/performance.md).
    The first failing chunk's exception (the lowest rows) is raised once every
    worker has stopped; a failure, or Ctrl-C, stops them after their current chunk.
    """
    make_state = make_state or (lambda: None)
    starts = range(0, n_points, chunk)
    threads = max(1, min(threads or default_threads(), len(starts)))
    if threads == 1:
        for _ in iter_chunks(work, n_points, chunk, threads, make_state):
            pass
        return
    work = _in_job(work, n_points)
    upcoming, lock, stop, failures = iter(starts), threading.Lock(), threading.Event(), []

    def worker():
        state = make_state()
        while not stop.is_set():
            with lock:
                start = next(upcoming, None)
            if start is None:
                return
            try:
                work(start, min(start + chunk, n_points), state)
            except BaseException as error:  # noqa: B036 - re-raised in the caller's thread
                failures.append((start, error))
                stop.set()

    workers = [threading.Thread(target=worker, name=f"jaccli-{k}") for k in range(threads)]
    with single_threaded_blas():
        for thread in workers:
            thread.start()
        try:
            for thread in workers:
                thread.join()
        except BaseException:  # Ctrl-C while waiting: the workers stop after their chunk
            stop.set()
            for thread in workers:
                thread.join()
            raise
    if failures:
        raise min(failures, key=lambda failure: failure[0])[1]
