"""Count, mean, variance, min and max of a stream of rows, merged chunk by chunk."""

import numpy as np


class Moments:
    """Count, mean, sum of squared deviations, min and max of rows, per column.

    ``Moments.of(rows)`` summarises one chunk; ``merge`` adds another
    summary with Chan, Golub & LeVeque's pairwise update, which never
    subtracts two large sums.
    """

    def __init__(self, width, track_range=False):
        self.count = 0
        self.mean = np.zeros(width)
        self.m2 = np.zeros(width)
        self.low = np.full(width, np.inf) if track_range else None
        self.high = np.full(width, -np.inf) if track_range else None

    @classmethod
    def of(cls, rows, track_range=False):
        rows = np.asarray(rows, dtype=np.float64)
        summary = cls(rows.shape[1:], track_range)
        if len(rows):
            summary.count = len(rows)
            summary.mean = rows.mean(axis=0)
            summary.m2 = ((rows - summary.mean) ** 2).sum(axis=0)
            if track_range:
                summary.low, summary.high = rows.min(axis=0), rows.max(axis=0)
        return summary

    def merge(self, other):
        if other.count == 0:
            return
        total = self.count + other.count
        delta = other.mean - self.mean
        self.mean = self.mean + delta * (other.count / total)
        self.m2 = self.m2 + other.m2 + delta ** 2 * (self.count * other.count / total)
        self.count = total
        if self.low is not None:
            self.low = np.minimum(self.low, other.low)
            self.high = np.maximum(self.high, other.high)

    def add(self, rows):
        self.merge(Moments.of(rows, self.low is not None))

    @property
    def variance(self):
        """The unbiased sample variance (ddof 1); NaN below 2 rows."""
        return self.m2 / (self.count - 1) if self.count > 1 else np.full_like(self.m2, np.nan)
