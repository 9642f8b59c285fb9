"""The Python API on Dask arrays: ``model.jacobian(X)`` with X a Dask array.

The result is a lazy Dask array chunked by rows as X is, one task per block
of X. Each task runs the same in-process code on its block with one jaccli
thread (the Dask scheduler owns the parallelism): when the blocks are whole
numbers of ``chunk_size`` points, the result is bitwise that of an
in-process call with the same ``chunk_size``. The model enters the graph
once, as one key that every block depends on (it pickles small: its engine
caches are dropped). Nothing here imports dask unless X already is a Dask
array, i.e. the caller imported it.
"""


import numpy as np

from jaccli.errors import JaccliError


def take_columns(block, start, stop, shape):
    """One quantity's columns of a side-by-side block, in its own shape."""
    return block[:, start:stop].reshape((len(block),) + tuple(shape))


def lazy_results(model, quantities, X, chunk_size=None):
    """A tuple of lazy Dask arrays, one per quantity, computed in one pass over X's blocks.

    X: a Dask array (N, n) or (n,). Its columns are merged into one chunk
    when they are split (a task needs whole points).
    """
    import dask
    import dask.array as da

    from jaccli.scale.tasks import compute_block

    if X.ndim == 1:
        X = X[None, :]
    if X.ndim != 2 or X.shape[1] != model.n_inputs:
        raise JaccliError(f"points: expected shape (N, {model.n_inputs}) or ({model.n_inputs},), "
                          f"got {X.shape}")
    if len(X.chunks[1]) > 1:
        X = X.rechunk({1: -1})
    dtype = np.dtype(model.dtype)  # "float64" or "float32"
    shapes = [model.result_shape(q, 1)[1:] for q in quantities]
    widths = [int(np.prod(shape)) for shape in shapes]
    held = dask.delayed(model, pure=True)
    name = f"jaccli-{'-'.join(quantities)}-" + dask.base.tokenize(X, held, quantities, chunk_size)
    flat = da.map_blocks(compute_block, X, held, list(quantities), chunk_size, name=name,
                         chunks=(X.chunks[0], (sum(widths),)), dtype=dtype,
                         meta=np.empty((0, 0), dtype=dtype))
    if len(quantities) == 1:
        return (_reshaped(flat, 0, widths[0], shapes[0], dtype),)
    offsets = np.cumsum([0] + widths)
    return tuple(_reshaped(flat, start, stop, shape, dtype)
                 for start, stop, shape in zip(offsets[:-1], offsets[1:], shapes))


def _reshaped(flat, start, stop, shape, dtype):
    import dask.array as da

    if len(shape) == 1 and start == 0 and stop == flat.shape[1]:
        return flat
    return da.map_blocks(take_columns, flat, int(start), int(stop), tuple(shape),
                         drop_axis=1, new_axis=list(range(1, len(shape) + 1)),
                         chunks=(flat.chunks[0],) + tuple((d,) for d in shape), dtype=dtype,
                         meta=np.empty((0,) * (len(shape) + 1), dtype=dtype))
