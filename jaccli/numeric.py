"""Which arrays are numbers jaccli computes with: one rule for weights, constants and points.

Floats and integers of any width are real numbers (computed in float64, or the
model's dtype); complex numbers, booleans, strings and objects are not.
"""

import numpy as np

REAL_KINDS = "fiu"  # float, signed and unsigned integer


def dtype_problem(dtype):
    """None when ``dtype`` holds real numbers, else what is wrong, as a message's end."""
    dtype = np.dtype(dtype)
    if dtype.kind in REAL_KINDS:
        return None
    if dtype.kind == "c":
        return f"is complex ({dtype}); jaccli needs real numbers"
    return f"has dtype {dtype}, not real numbers"
