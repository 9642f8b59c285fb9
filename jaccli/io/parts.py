"""A chunk of results as the writers take it: one array of rows, or several results
of the same rows by name ({name: rows}, ``--with``), each left as it was computed.

A writer that holds results by name (NPZ, Zarr) takes the parts as they are; a
table (CSV, TSV, JSON, Parquet, the summary's statistics, a figure's sample) joins
them side by side. Joining only where a table needs it spares the copies of a
block built and split again. The chunks of a run are new arrays each (computed
for that chunk, never a buffer reused): NPZ and Zarr keep them until they write.
"""

import numpy as np


def joined(block, copy=False):
    """The chunk's rows as one (rows, columns) array: an array's rows, or the parts
    side by side, each result's columns in turn (a table's order). ``copy``: a new
    array in either case (parts joined are one already)."""
    if isinstance(block, dict):
        return np.concatenate([part.reshape(len(part), -1) for part in block.values()], axis=1)
    block = np.asarray(block)
    rows = block.reshape(len(block), -1)
    return rows.copy() if copy else rows


def by_name(block, parts):
    """{name: rows in the part's shape}: the parts of a dict as they are, or those of a
    block of rows holding ``parts`` ([(name, shape)]) side by side."""
    if isinstance(block, dict):
        return block
    block = np.asarray(block).reshape(len(block), -1)
    split, offset = {}, 0
    for name, shape in parts:
        width = int(np.prod(shape[1:], dtype=int))
        split[name] = block[:, offset:offset + width].reshape((len(block),) + tuple(shape[1:]))
        offset += width
    return split


def row_count(block):
    """How many rows (points) the chunk holds."""
    return len(next(iter(block.values())) if isinstance(block, dict) else block)


def non_finite(block):
    """How many of the chunk's numbers are NaN or infinite."""
    arrays = block.values() if isinstance(block, dict) else [np.asarray(block)]
    return sum(array.size - int(np.count_nonzero(np.isfinite(array))) for array in arrays)
