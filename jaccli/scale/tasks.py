"""What a Dask worker runs: one block of rows through the in-process code.

These functions live in an installed module (not in ``__main__``) so that a
worker on another machine can import them by name. A block is computed with
one jaccli thread and one BLAS thread (the cluster owns the parallelism),
with the same chunk boundaries as the in-process run, so its rows are
bitwise those of an in-process run with the same ``--chunk-size``.
"""

import numpy as np


def compute_rows(model, quantities, x, first_row=0, chunk_size=None, source="points"):
    """Every quantity at the rows ``x`` (the points' rows from ``first_row`` on),
    flattened per row and side by side: (rows, sum of each quantity's width)."""
    from ..model import check_finite_points
    from ..parallel import single_threaded_blas

    x = np.asarray(x, dtype=np.float64)
    check_finite_points(x, source, first_row=first_row)
    model.in_dtype(x, source, first_row)
    with single_threaded_blas():
        parts = [model.compute(q, x, chunk_size=chunk_size, threads=1).reshape(len(x), -1)
                 for q in quantities]
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)


def compute_block(x, model, quantities, chunk_size=None, block_info=None):
    """The ``map_blocks`` function of the Dask-array API: ``block_info`` gives the block's first row."""
    first_row = block_info[0]["array-location"][0][0] if block_info else 0
    return compute_rows(model, quantities, x, first_row, chunk_size)


def compute_slice(model, quantities, points, start, stop, chunk_size, source):
    """A CLI task: rows ``start:stop`` of ``points`` (a block shipped by the client
    starting at row ``start``, or a file the worker reads itself)."""
    if isinstance(points, np.ndarray):
        x = points
    else:
        x = points[start:stop]
    return compute_rows(model, quantities, x, start, chunk_size, source)
