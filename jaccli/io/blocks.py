"""Rows read a block at a time, in order: the lazy reader of large text and Parquet files."""

import threading

import numpy as np

from jaccli.errors import JaccliError


class BlockRows:
    """Rows served in order, as slices cut from blocks a subclass reads one after another.

    Worker threads ask for consecutive slices (chunk k+1 waits until chunk k
    has been served); a block is read and parsed by the thread that needs
    it, while the others compute. Memory stays about one block whatever the
    file's size. Asking for row 0 again reads again from the top (an NPZ's x).
    Subclasses set ``source`` (the name errors give) and define ``_rewind()``
    and ``_read_block()`` (a (k, n) float64 array, or None at the end).
    """

    def __init__(self, n_rows, n_columns):
        self.shape = (n_rows, n_columns)
        self.ndim, self.dtype = 2, np.dtype(np.float64)
        self._turn = threading.Condition()
        self._next_row, self._pending, self._failed = 0, [], False

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, rows):
        if not isinstance(rows, slice):
            raise TypeError(f"{type(self).__name__} takes a slice of rows")
        start, stop, _ = rows.indices(len(self))
        with self._turn:
            if start < self._next_row:
                if start != 0:
                    raise ValueError(f"{type(self).__name__} reads forward, or again from the start")
                self._rewind()
                self._next_row, self._pending = 0, []
            self._turn.wait_for(lambda: self._next_row == start or self._failed)
            if self._failed:
                raise JaccliError(f"{self.source}: reading stopped at an earlier error")
            try:
                block = self._take(max(stop - start, 0))
            except BaseException:
                self._failed = True
                self._turn.notify_all()
                raise
            self._next_row = start + len(block)
            self._turn.notify_all()
        return block

    def _take(self, count):
        """The next ``count`` rows, from the blocks read so far and as many more as needed."""
        parts, have = [], 0
        while have < count:
            if not self._pending:
                block = self._read_block()
                if block is None:
                    raise JaccliError(f"{self.source}: the file changed while it was read")
                self._pending.append(block)
            block = self._pending[0]
            part = block[:count - have]
            parts.append(part)
            have += len(part)
            if len(part) == len(block):
                self._pending.pop(0)
            else:
                self._pending[0] = block[len(part):]
        if not parts:
            return np.empty((0, self.shape[1]))
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def __array__(self, dtype=None, copy=None):
        whole = np.concatenate([self[i:i + 65536] for i in range(0, len(self), 65536)])
        return whole if dtype is None else whole.astype(dtype)
