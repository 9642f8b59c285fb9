"""What this machine allows, measured beside the workloads.

Two figures bound what any elementwise strategy could reach here:

- ``machine_threads``: how much two threads give on the machine itself, each
  running the same in-cache loop (a 2,048 x 64 by 64 x 64 product with BLAS
  pinned to one thread, or ``np.tanh`` on 2,048 x 64 values). On a VM whose
  two vCPUs share a physical core, or whose host is busy, this is well below
  2x, and no program's two workers can beat it by much.
- ``products_only``: an input-Jacobian workload's matrix products alone
  (forward, adjoint, and the value's last product for W6), with jaccli's own
  chunks and workers and none of the elementwise work: the time jaccli would
  take if bias, tanh, s' and the adjoint products cost nothing.
"""

import threading
import time

import numpy as np

LOOP_ROWS, LOOP_WIDTH, LOOP_REPEATS = 2048, 64, 400


def _loops():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(LOOP_ROWS, LOOP_WIDTH))
    w = rng.normal(size=(LOOP_WIDTH, LOOP_WIDTH)) / 8

    def product(_):
        out = np.empty_like(a)
        for _ in range(LOOP_REPEATS):
            np.matmul(a, w, out=out)

    def tanh(_):
        z = a.copy()
        for _ in range(LOOP_REPEATS):
            np.tanh(z, out=z)

    return {"product": product, "tanh": tanh}


def _timed(function, threads):
    workers = [threading.Thread(target=function, args=(k,)) for k in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.perf_counter() - started


def machine_threads(rounds=3):
    """{loop: speed-up of two threads over one, each thread doing the same work}, best rounds."""
    from threadpoolctl import threadpool_limits

    result = {}
    with threadpool_limits(1, "blas"):
        for name, loop in _loops().items():
            loop(0)  # warm-up
            one = min(_timed(loop, 1) for _ in range(rounds))
            two = min(_timed(loop, 2) for _ in range(rounds))
            result[name] = 2 * one / two
    return result


def products_only(model, points, chunk, threads=None, value=False):
    """A run of the reverse Jacobian's matrix products alone, chunk by chunk on workers,
    into reused buffers as jaccli's sweeps do (one output: m = 1)."""
    from jaccli.engine.chunks import run_chunks
    from jaccli.engine.sweeps import Workspace

    layers = model.network.layers
    assert layers[-1].kernel.shape[1] == 1, "one output: the adjoint is one row a point"
    forward = [layer.kernel for layer in (layers if value else layers[:-1])]
    backward = [layer.kernel_t for layer in layers[1:-1][::-1]] + [layers[0].kernel_t]

    def products(a, kernels, ws, tag):
        for index, kernel in enumerate(kernels):
            a = np.matmul(a, kernel, out=ws.get((tag, index), (len(a), kernel.shape[1]), a.dtype))
        return a

    def work(start, stop, ws):
        hidden = products(points[start:stop], forward[:len(layers) - 1], ws, "forward")
        products(hidden, forward[len(layers) - 1:], ws, "value")
        products(hidden, backward, ws, "adjoint")  # the adjoint has the last hidden layer's shape

    return lambda: run_chunks(work, len(points), chunk, threads, Workspace)


def describe_machine(scaling):
    return ("two threads on this machine itself: "
            + ", ".join(f"{scaling[name]:.2f}x on an in-cache {name} loop" for name in scaling)
            + " (each thread the same work; 2.00x is two whole cores)")
