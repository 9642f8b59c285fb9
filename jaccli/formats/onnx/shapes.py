"""How the data flows through the chain: its shape, and whether it keeps one row per point.

The walk tracks the data as one of three orientations (``state``):

- ``rows``: (N, *dims), the batch first; ``dims`` the shape of one point
  (an input (N, 1, 1, 5) is rows of dims (1, 1, 5), 5 columns in C order);
- ``cols``: (features, N), between a Transpose and the one undoing it, or a
  column (n, 1) of a graph made for one point;
- ``vector``: (n,), a graph made for one point with no batch axis (NNet
  converters, nnenum, Stable-Baselines3 write these).

The batch is ``None`` when symbolic, else the declared size (a vector's is 1).
A graph is read for one point at a time, which is what it computes when no
op mixes rows: a shape op (Flatten, Reshape, Squeeze, Unsqueeze) is run on
the concrete shape for the declared batch (for a symbolic batch, for two
sizes) and its result must again be one of the orientations above, with the
batch where it was; anything else mixes points and is refused.
"""

import math

import numpy as np

_TRIALS = (2, 3)  # batch sizes a symbolic batch is tried with


def new_state(dims, batch, vector=False, column=False):
    """The state of the graph input: ``dims`` the shape of one point (None: unknown);
    ``column``: one point as a column (n, 1), ``dims`` then (n,)."""
    state = {"transposed": column, "vector": vector, "batch": 1 if vector or column else batch,
             "dims": None, "width": None}
    if dims is not None:
        set_dims(state, tuple(dims))
    return state


def set_dims(state, dims):
    state["dims"] = dims
    state["width"] = int(math.prod(dims))


def set_width(state, width):
    """After a dense layer: ``width`` features, the orientation unchanged."""
    dims = state["dims"]
    if dims is not None and len(dims) > 1 and not state["transposed"] and not state["vector"]:
        set_dims(state, dims[:-1] + (int(width),))
    else:
        set_dims(state, (int(width),))


def flat(state):
    """Whether the features of one point lie along one axis (dense layers apply there)."""
    dims = state["dims"]
    return dims is None or all(d == 1 for d in dims[:-1])


def normalises_features(state, axis, through_end):
    """Whether normalising the flow over ``axis`` (and every axis after it with
    ``through_end``, as LayerNormalization does; that axis alone otherwise, as a
    ReduceMean) takes one point's features, all of them and nothing else; a LayerNorm
    over a unit axis of (N, 5, 1) or over the batch of (features, N) does not."""
    if state["transposed"]:
        return False
    dims = state["dims"]
    if state["vector"]:
        return axis in (-1, 0)
    if dims is None:  # (N, ?): the features are the last axis
        return axis in (-1, 1)
    rank = len(dims) + 1
    axis = axis + rank if axis < 0 else axis
    if not 1 <= axis < rank:
        return False
    covered = dims[axis - 1:] if through_end else dims[axis - 1:axis]
    return math.prod(covered) == math.prod(dims)


def describe_flow(state):
    if state["vector"]:
        return f"({state['width']},)"
    if state["transposed"]:
        return f"({state['width']}, N)"
    dims = state["dims"]
    return "(N, ?)" if dims is None else "(N" + "".join(f", {d}" for d in dims) + ")"


def _concrete(state, batch):
    if state["vector"]:
        return (state["width"],)
    if state["transposed"]:
        return (state["width"], batch)
    return (batch,) + state["dims"]


def reshaped(walker, node, state, compute, what, target=None):
    """Apply the shape op ``compute`` (full shape -> full shape) to the flow, or refuse."""
    if state["dims"] is None and not state["transposed"]:
        walker.refuse(node, f"{what} data of unknown width (the input declares no shape)")
    trials = _TRIALS if state["batch"] is None else (state["batch"],)
    results = []
    for batch in trials:
        full = _concrete(state, batch)
        try:
            results.append((batch, tuple(int(d) for d in compute(full))))
        except (ValueError, IndexError, TypeError):
            walker.refuse(node, f"cannot {what} {describe_flow(state)} data")
    found = _classify(results, state["batch"], "cols" if state["transposed"] else "rows")
    if found is None:
        batch, shown = results[0]
        to = f" to {target}" if target is not None else ""
        walker.refuse(node, f"{what}s {describe_flow(state)} data{to} (for {batch} points: "
                            f"{list(shown)}): the result is not one row per point")
    kind, dims = found
    state["transposed"], state["vector"] = kind == "cols", kind == "vector"
    if kind == "vector":
        state["batch"] = 1
    set_dims(state, dims)


def _classify(results, batch, was):
    """(orientation, dims of one point) of the results for each trial batch, or None.

    A shape op moves no data: the points stay where they are in memory. Rows
    (each point a contiguous block) stay rows, columns (the point index the
    fastest) stay columns; only one point (batch 1) may change orientation.
    """
    rest = {r[1:] for _, r in results}
    if (was == "rows" or batch == 1) and all(r and r[0] == b for b, r in results) \
            and len(rest) == 1:
        return "rows", rest.pop()
    heads = {r[:1] for _, r in results}
    if (was == "cols" or batch == 1) and all(len(r) == 2 and r[1] == b for b, r in results) \
            and len(heads) == 1:
        return "cols", heads.pop()
    if batch == 1 and len(results[0][1]) == 1:
        return "vector", results[0][1]
    return None


def flatten_shape(full, axis):
    axis = axis + len(full) if axis < 0 else axis
    if not 0 <= axis <= len(full):
        raise ValueError(axis)
    return (math.prod(full[:axis]), math.prod(full[axis:]))


def reshape_shape(full, shape, allowzero=False):
    shape = [int(d) for d in shape]
    if not allowzero:
        shape = [full[i] if d == 0 and i < len(full) else d for i, d in enumerate(shape)]
    return np.empty(full, dtype=np.int8).reshape(shape).shape


def squeeze_shape(full, axes):
    if axes is None:
        return tuple(d for d in full if d != 1)
    axes = {a + len(full) if a < 0 else a for a in axes}
    if any(not 0 <= a < len(full) or full[a] != 1 for a in axes):
        raise ValueError(axes)
    return tuple(d for i, d in enumerate(full) if i not in axes)


def unsqueeze_shape(full, axes):
    rank = len(full) + len(axes)
    axes = sorted(a + rank if a < 0 else a for a in axes)
    result, rest = [], iter(full)
    for i in range(rank):
        result.append(1 if i in axes else next(rest))
    return tuple(result)


def per_feature(array, state, n=None):
    """A constant that broadcasts over the points as one value per feature: the values
    as a 1-D array (size 1 or the width), or None if it does not."""
    n = state["width"] if n is None else n
    if n is None:
        return array.reshape(-1) if array.ndim <= 2 and (array.ndim < 2 or array.shape[0] == 1) \
            else None
    if state["vector"]:
        row = (n,)
    elif state["transposed"]:
        row = (n, 1)
    else:
        dims = state["dims"] if state["dims"] is not None and math.prod(state["dims"]) == n else (n,)
        row = (1,) + dims
    if array.ndim > len(row):
        return None
    try:
        values = np.broadcast_to(array, row)
    except ValueError:
        return None
    return array.reshape(-1) if array.size == 1 else values.reshape(-1)
