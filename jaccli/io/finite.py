"""Points must be finite numbers: the one check every reader and entry applies."""

import numpy as np

from jaccli.errors import JaccliError


def check_finite_points(points, source, first_row=0):
    finite = np.isfinite(points)
    if not finite.all():
        row, column = np.argwhere(~finite)[0]
        raise JaccliError(f"{source}: point {first_row + row + 1}, column {column + 1} is "
                          f"{points[row, column]}; points must be finite numbers")
