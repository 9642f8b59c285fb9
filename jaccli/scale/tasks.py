"""What a Dask worker runs: one block of rows through the in-process code.

These functions live in an installed module (not in ``__main__``) so that a
worker on another machine can import them by name. A block is computed with
one jaccli thread and one BLAS thread (the cluster owns the parallelism),
with the same chunk boundaries as the in-process run, so its rows are
bitwise those of an in-process run with the same ``--chunk-size``.
"""

import numpy as np


def checked_rows(points, start, stop, source, model=None):
    """Rows ``start:stop`` as float64, checked finite (and representable in the model's
    dtype), errors naming the row in the whole set. ``points``: the rows themselves
    (sent by the client) or a source the worker reads (an NPY file, a Zarr store)."""
    from jaccli.io.finite import check_finite_points

    x = points if isinstance(points, np.ndarray) else points[start:stop]
    x = np.asarray(x, dtype=np.float64)
    check_finite_points(x, source, first_row=start)
    if model is not None:
        model.in_dtype(x, source, start)
    return x


def quantity_rows(model, quantities, chunk_size, x):
    """Every quantity at the rows ``x``, flattened per row and side by side:
    (rows, sum of each quantity's width)."""
    from jaccli.engine.chunks import single_threaded_blas

    with single_threaded_blas():
        if len(quantities) == 1:
            parts = [model.compute(quantities[0], x, chunk_size=chunk_size, threads=1)]
        else:  # one sweep for all of them, as in-process (--with, value_and_jacobian)
            together = model.compute_together(quantities, x, chunk_size=chunk_size, threads=1)
            parts = [together[q] for q in quantities]
    parts = [part.reshape(len(x), -1) for part in parts]
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)


def compute_block(x, model, quantities, chunk_size=None, block_info=None):
    """The ``map_blocks`` function of the Dask-array API: ``block_info`` gives the block's first row."""
    first_row = block_info[0]["array-location"][0][0] if block_info else 0
    x = checked_rows(x, first_row, first_row + len(x), "points", model)
    return quantity_rows(model, quantities, chunk_size, x)


def compute_slice(function, held, points, start, stop, source, with_start=False):
    """A CLI task: ``function(*held, x)`` at rows ``start:stop`` of the points
    (``function(*held, x, start)`` with ``with_start``, for a result keyed by row numbers).

    ``held``: what every task of the run shares (the model first), sent once.
    """
    x = checked_rows(points, start, stop, source, held[0])
    return function(*held, x, start) if with_start else function(*held, x)
