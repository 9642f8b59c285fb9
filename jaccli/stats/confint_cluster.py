"""confint on a Dask cluster: the training-set fit (per-block factors, reduced as a
tree) and the intervals at the query points (``intervals_task``, what a worker runs).

The fit needs, per output, the triangular factor R of the training set's
parameter Jacobian Z (a tall-skinny QR). Each task folds one block of
training rows into confint's own accumulator (its R, SSE and row count);
pairs of accumulators are then merged on the workers, level by level, so
the client only ever receives one R per output, whatever N_train is. The
leverages (a second pass over the rows, given the fit) are computed by
tasks too. The R of a tree differs from the sequential one by rounding
only: the intervals agree to about 1e-12.
"""

import numpy as np

from jaccli.engine.chunks import single_threaded_blas
from jaccli.errors import JaccliError
from jaccli.scale.cluster import held, reads_itself, task_result, task_rows
from jaccli.stats import confint as ci


def fit_on_cluster(client, model, table, n_inputs, chunk_size=None, source="training set"):
    """``ci.ModelFit`` of ``model`` on ``table`` (N, n inputs + m targets), on the cluster."""
    masks = ci.output_parameter_masks(model)
    q = int(masks.sum(axis=1).max())
    _named(source, ci.check_factor_memory, q, model.n_outputs)
    chunk = int(chunk_size or model.chunk_size_for("param_jacobian"))
    rows = task_rows(chunk, at_least=4 * q)  # a block's Z taller than its q x q factor
    n_rows = len(table)
    if n_rows == 0:
        raise JaccliError(f"{source}: zero points")
    blocks = [(start, min(start + rows, n_rows)) for start in range(0, n_rows, rows)]
    model_future = client.submit(held, model, pure=False)

    def data(start, stop):  # the worker reads its rows itself, or they travel with the task
        return table if reads_itself(table) else np.asarray(table[start:stop], dtype=np.float64)

    level = [client.submit(fit_block, model_future, masks, data(a, b), a, b, n_inputs, chunk, source,
                           pure=False) for a, b in blocks]
    while len(level) > 1:  # the tree: merge neighbours until one is left
        level = [client.submit(merge, *level[i:i + 2], pure=False) if i + 1 < len(level)
                 else level[i] for i in range(0, len(level), 2)]
    accumulators = task_result(level[0], 0, n_rows)
    stats = [_named(source, acc.finish) for acc in accumulators]
    stats_future = client.submit(held, stats, pure=False)
    parts = [client.submit(leverage_block, model_future, stats_future, masks, data(a, b), a, b,
                           n_inputs, chunk, source, pure=False) for a, b in blocks]
    residuals, leverages = (np.concatenate(arrays) for arrays in zip(
        *(task_result(part, a, b) for part, (a, b) in zip(parts, blocks))))
    loo = np.column_stack([ci.loo_residuals(residuals[:, k], leverages[:, k])
                           for k in range(model.n_outputs)])
    return ci.ModelFit(stats, residuals, leverages, loo, masks, InputColumns(table, n_inputs))


def interval_chunks(client, model, fit, points, level, chunk_size, source):
    """confint's intervals at the query points, computed on the cluster, in order."""
    import dataclasses

    from jaccli.scale.cluster import ClusterChunks

    chunk = int(chunk_size or model.chunk_size_for("param_jacobian"))
    light = dataclasses.replace(fit, residuals=None, leverages=None, loo_residuals=None,
                                X_train=None)  # what the tasks need: the factors and masks
    return ClusterChunks(client, intervals_task, (model, light, ci.check_level(level), chunk),
                         points, task_rows(chunk), source)


def _named(source, function, *args):
    """The fit's problems are the training set's: its errors name it."""
    try:
        return function(*args)
    except JaccliError as exc:
        raise JaccliError(f"{source}: {exc.marked}") from None


def _rows(table, start, stop, n_inputs, source):
    from jaccli.scale.tasks import checked_rows

    block = checked_rows(table, start, stop, source)
    return block[:, :n_inputs], block[:, n_inputs:]


def fit_block(model, masks, table, start, stop, n_inputs, chunk, source):
    """One block of training rows folded into one accumulator per output (a task),
    chunk by chunk as in-process."""
    X, Y = _rows(table, start, stop, n_inputs, source)
    accumulators = [ci.FitAccumulator(int(mask.sum())) for mask in masks]
    for offset, (Z, values) in model.map_chunks(ci.z_and_values(model), X, chunk, threads=1):
        ci.fold_rows(accumulators, masks, Z, values, Y[offset:offset + chunk])
    with single_threaded_blas():
        for acc in accumulators:
            acc.fold()
    return accumulators


def merge(left, right):
    """Two blocks' accumulators as one (a task of the tree)."""
    with single_threaded_blas():
        return [a.merge(b) for a, b in zip(left, right)]


def leverage_block(model, stats, masks, table, start, stop, n_inputs, chunk, source):
    """Residuals and leverages (rows, m) of one block of training rows (a task)."""
    X, Y = _rows(table, start, stop, n_inputs, source)
    residuals, leverages = [], []
    for offset, (Z, values) in model.map_chunks(ci.z_and_values(model), X, chunk, threads=1):
        residuals.append(Y[offset:offset + chunk] - values)
        leverages.append(ci.chunk_leverages(stats, masks, Z))
    return np.concatenate(residuals), np.concatenate(leverages)


class InputColumns:
    """The inputs of a training table, read whole only when asked (an NPZ's ``x``)."""

    def __init__(self, table, n_inputs):
        self.table, self.n_inputs = table, n_inputs

    def __len__(self):
        return len(self.table)

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.table, dtype=dtype or np.float64)[:, :self.n_inputs]


def intervals_task(model, fit, level, chunk, x):
    """confint at the rows ``x``, chunk by chunk as in-process: (rows, m * 6)."""
    parts = [block for _, block in ci.iter_intervals(model, fit, x, level, chunk, threads=1)]
    return np.concatenate(parts).reshape(len(x), -1)
