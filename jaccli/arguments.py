"""Checks of the Python API's arguments, one per kind: each bad value is refused
with a ``ParameterError`` naming the parameter (``chunk_size must be a whole
number >= 1 (got -5)``); the command line shows its option instead.

Pure Python (no NumPy needed): NumPy's integers and floats pass as numbers.
"""

import math
import numbers

from jaccli.errors import ParameterError, param


def _shown(value):
    """A bad value as a message shows it: text quoted, numbers as written."""
    return repr(value) if isinstance(value, (str, bytes)) else str(value)


def number(name, value):
    """``value`` as a float; refused if it is not a real number (bools neither)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ParameterError(f"{param(name)} must be a number (got {_shown(value)})")
    return float(value)


def whole_number(name, value, minimum=1, what=None):
    """``value`` as an int >= ``minimum``: 3 and 3.0 pass; -5, 2.5, True and 'x' do not.
    ``what`` says what it must be, for the message (default: a whole number >= minimum)."""
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real) \
        and math.isfinite(value) and float(value).is_integer() and value >= minimum
    if not ok:
        raise ParameterError(f"{param(name)} must be {what or f'a whole number >= {minimum}'} "
                             f"(got {_shown(value)})")
    return int(value)


def count(name, value):
    """None (the default: chunk_size sized for the cache, threads the cores) or a
    whole number >= 1."""
    return None if value is None else whole_number(name, value, 1)


def positive_number(name, value):
    """``value`` as a finite float > 0 (a tolerance)."""
    result = number(name, value)
    if not (math.isfinite(result) and result > 0):
        raise ParameterError(f"{param(name)} must be a finite number > 0 (got {_shown(value)})")
    return result


def fraction(name, value):
    """``value`` as a float strictly between 0 and 1 (a confidence level)."""
    result = number(name, value)
    if not 0.0 < result < 1.0:
        raise ParameterError(f"{param(name)} must lie strictly between 0 and 1 "
                             f"(got {result:g})")
    return result
