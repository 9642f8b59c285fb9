"""A bounded, seeded sample of a run's rows, taken as the chunks stream past.

Every row i gets a key, a 64-bit hash of (seed, i) (splitmix64, a bijection:
no two rows share a key); the sample is the ``limit`` rows with the smallest
keys (bottom-k sampling). That is a uniform sample without replacement, and
it depends on the seed and the row numbers only: not on the chunk size, the
threads, or the order in which chunks arrive. So the points (read on worker
threads) and the results (written in order) can be sampled apart, by two
``BottomK``s, and meet again by row number. Memory: ``limit`` rows, whatever N.
"""

import threading

import numpy as np

from jaccli.io.parts import joined

#: Rows kept for a figure at most, and the bytes they may take.
SAMPLE_ROWS = 20_000
SAMPLE_BYTES = 64 << 20
#: The seed of the sample, so that the same run draws the same figure.
SEED = 0

_GOLDEN = 0x9E3779B97F4A7C15
_MASK = (1 << 64) - 1


def row_keys(seed, start, count):
    """The keys (uint64) of rows start..start+count-1: splitmix64 of seed-mixed row numbers."""
    z = np.arange(start, start + count, dtype=np.uint64) + np.uint64(((seed + 1) * _GOLDEN) & _MASK)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def sample_limit(width, rows=SAMPLE_ROWS, nbytes=SAMPLE_BYTES):
    """Rows to keep of ``width`` float64 numbers each: ``rows``, fewer if they are wide."""
    return int(max(1, min(rows, nbytes // (8 * max(width, 1)))))


class BottomK:
    """The ``limit`` rows with the smallest keys among those offered (thread-safe)."""

    def __init__(self, limit=SAMPLE_ROWS, seed=SEED):
        self.limit, self.seed = int(limit), int(seed)
        self.index = np.empty(0, dtype=np.int64)
        self.keys = np.empty(0, dtype=np.uint64)
        self.rows = None
        self.threshold = None  # the largest key kept, once the sample is full
        self._pending, self._pending_count = [], 0
        self._lock = threading.Lock()

    def offer(self, start, rows):
        """Rows start..start+len(rows)-1; only those that may enter the sample are copied."""
        rows = np.asarray(rows)
        rows = rows.reshape(len(rows), -1)
        keys = row_keys(self.seed, start, len(rows))
        with self._lock:
            keep = np.flatnonzero(keys < self.threshold) if self.threshold is not None \
                else np.arange(len(rows))
            if not len(keep):
                return
            self._pending.append((start + keep, keys[keep], np.array(rows[keep], dtype=np.float64)))
            self._pending_count += len(keep)
            if self._pending_count >= self.limit:
                self._merge()

    def _merge(self):
        if not self._pending:
            return
        index, keys, rows = zip(*self._pending)
        self._pending, self._pending_count = [], 0
        index = np.concatenate((self.index,) + index)
        keys = np.concatenate((self.keys,) + keys)
        rows = np.concatenate(((self.rows,) if self.rows is not None else ()) + rows)
        index, first = np.unique(index, return_index=True)  # a row offered twice counts once
        keys, rows = keys[first], rows[first]
        if len(keys) > self.limit:
            kept = np.argpartition(keys, self.limit - 1)[:self.limit]
            index, keys, rows = index[kept], keys[kept], rows[kept]
        if len(keys) >= self.limit:
            self.threshold = keys.max()
        order = np.argsort(index)
        self.index, self.keys, self.rows = index[order], keys[order], rows[order]

    def sample(self):
        """(row numbers, increasing; their rows)."""
        with self._lock:
            self._merge()
            rows = self.rows if self.rows is not None else np.empty((0, 0))
            return self.index.copy(), rows


class TappedPoints:
    """Points whose every slice read is also offered to a sample (``BottomK``):
    wraps what a chunk loop reads, so a figure gets the points of its rows
    without a second pass over a file that streams."""

    def __init__(self, points, sample):
        self.points, self.sample = points, sample
        self.shape, self.ndim = points.shape, 2
        self.dtype = getattr(points, "dtype", np.dtype(np.float64))

    def __len__(self):
        return len(self.points)

    def __getitem__(self, rows):
        block = self.points[rows]
        if isinstance(rows, slice):
            start = rows.indices(len(self.points))[0]
            self.sample.offer(start, np.asarray(block, dtype=np.float64))
        return block


def sample_rows(points, limit=SAMPLE_ROWS, seed=SEED, block=1 << 16):
    """(row numbers, rows) of a bottom-k sample of ``points`` (anything sliced by rows),
    read ``block`` rows at a time."""
    bottom = BottomK(limit, seed)
    for start in range(0, len(points), block):
        bottom.offer(start, np.asarray(points[start:start + block], dtype=np.float64))
    return bottom.sample()


class RunSample:
    """The sample of a run for its figure: the points of the sampled rows (``tap``
    the points the chunk loop reads) and their results (``write``, as a writer's
    ``write(start, rows)``), with the mean |.| of every result column over all
    the rows (the panels' ranking). ``columns``: the result columns to keep."""

    def __init__(self, n_inputs, columns, seed=SEED, limit=SAMPLE_ROWS):
        self.columns = columns  # a slice of each block's columns
        width = n_inputs + (columns.stop - columns.start)
        self.limit = sample_limit(width, limit)
        self.x, self.y = BottomK(self.limit, seed), BottomK(self.limit, seed)
        self.abs_sum, self.count = None, 0

    def tap(self, points):
        return TappedPoints(points, self.x)

    def write(self, start, rows):
        rows = joined(rows)[:, self.columns]
        sums = np.abs(rows.astype(np.float64)).sum(axis=0)
        self.abs_sum = sums if self.abs_sum is None else self.abs_sum + sums
        self.count += len(rows)
        self.y.offer(start, rows)

    @property
    def mean_abs(self):
        return self.abs_sum / max(self.count, 1)

    def arrays(self):
        """(row numbers, x (k, n), y (k, columns)) of the rows sampled on both sides."""
        x_index, x = self.x.sample()
        y_index, y = self.y.sample()
        both, in_x, in_y = np.intersect1d(x_index, y_index, return_indices=True)
        return both, x[in_x], y[in_y]
