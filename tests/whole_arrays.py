"""The statistics of whole in-memory arrays, through the library's own accumulators:
conveniences only the tests use (the library streams chunks into the accumulators)."""

import numpy as np

from jaccli.stats.confint import FitAccumulator
from jaccli.stats.sensitivity import SensitivityAccumulator


def fit_statistics(Z, residuals):
    """FitStatistics of one output from its whole (N_train, q) Z and residuals (N_train,)."""
    Z = np.asarray(Z, dtype=np.float64)
    acc = FitAccumulator(Z.shape[1])
    acc.add(Z, residuals)
    return acc.finish()


def sensitivity_of_arrays(values, jacobian, points, **options):
    """The table from whole arrays (values (N, m), jacobian (N, m, n), points (N, n)).

    ``options``: input_names, output_names (default x1.., y1..), bootstrap,
    level, bounds, seed, as for ``SensitivityAccumulator``.
    """
    jacobian = np.asarray(jacobian, dtype=np.float64)
    m, n = jacobian.shape[1:]
    inputs = options.pop("input_names", None) or [f"x{j + 1}" for j in range(n)]
    outputs = options.pop("output_names", None) or [f"y{k + 1}" for k in range(m)]
    acc = SensitivityAccumulator(inputs, outputs, **options)
    acc.add(values, jacobian, points, start=0)
    return acc.result()
