"""Checking a model's analytic derivatives against finite differences (``jaccli.check``).

Each quantity is computed analytically, by central differences and by
Richardson-extrapolated central differences (with an error estimate, see
``numdiff``). An element fails when |analytic - richardson| > tol * scale +
3 * estimate (scale: the largest |derivative| of that output). Reference
outputs computed elsewhere (e.g. by the framework that trained the model)
check the forward pass itself: that catches a wrong spec (a transposed
kernel, a wrong activation), which derivatives of the same wrong function
cannot.
"""

import time
from dataclasses import dataclass, field

import numpy as np

from jaccli.stats import numdiff
from jaccli.errors import JaccliError

QUANTITIES = ("jacobian", "hessdiag", "params")
#: The derivative tolerance of a float32 model (float64: numdiff.DEFAULT_TOL).
FLOAT32_TOL = 1e-4
DEFAULT_VALUE_TOL = 1e-5
#: The columns of the report's table, in order.
FIELDS = ["quantity", "method", "max_abs_error", "max_rel_error", "error_estimate",
          "seconds", "tolerance", "n_bad", "status"]


def _timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def _input_ladders(model, num, X, quantity, chunk_size):
    """(analytic, central, Richardson ladders, the three times) of an input derivative.

    Steps are taken in the network's own units u = (x - offset) / scale: an
    input scale of 0.01 makes the function vary a hundred times faster in x,
    and steps sized for x would swamp the estimate (and its error bound).
    """
    scale = 1.0 / np.asarray(num.network.in_inv_scale, dtype=np.float64)
    offset = np.asarray(num.network.in_offset, dtype=np.float64)
    U = (X - offset) / scale
    power = 1 if quantity == "jacobian" else 2
    differentiate = numdiff.input_jacobian if quantity == "jacobian" else numdiff.input_hessdiag

    def in_u(U):
        return num.value(U * scale + offset, chunk_size)

    def to_x(pair):
        value, err = pair
        return value / scale ** power, None if err is None else err / scale ** power

    analytic, t_a = _timed(getattr(model, quantity), X, chunk_size)
    (central, _), t_c = _timed(differentiate, in_u, U, "central")
    ladders, t_r = _timed(differentiate, in_u, U, "richardson", True)
    return analytic, to_x((central, None))[0], [to_x(pair) for pair in ladders], (t_a, t_c, t_r)


def _param_ladders(model, num, X, chunk_size):
    """(analytic, central, Richardson ladders, the three times) of dy/dtheta."""
    analytic, t_a = _timed(model.param_jacobian, X, chunk_size)
    theta = num.parameter_vector()

    def g(t):
        return num.with_parameters(t).value(X, chunk_size)

    (central, _), t_c = _timed(numdiff.param_jacobian, g, theta, "central")
    ladders, t_r = _timed(numdiff.param_jacobian, g, theta, "richardson", True)
    return analytic, central, ladders, (t_a, t_c, t_r)


def check_quantity(model, X, quantity, tol=numdiff.DEFAULT_TOL, numeric_model=None,
                   chunk_size=None):
    """Analytic vs central vs Richardson for one quantity, at the points X (N, n).

    The analytic derivative comes from ``model``, the numerical ones from
    ``numeric_model`` (default: the same model; a float64 copy of a float32
    model, so that the differences are not swamped by float32 rounding).

    Returns a list of row dicts (method: analytic, central, richardson) and
    the verdict. Richardson decides (``compare`` with its error estimate);
    the central differences are reported, with |central - richardson| as
    their error estimate, to show what a plain finite difference gives.
    """
    X = np.asarray(X, dtype=np.float64)
    num = numeric_model or model
    if quantity in ("jacobian", "hessdiag"):
        analytic, central, ladders, times = _input_ladders(model, num, X, quantity, chunk_size)
    elif quantity == "params":
        analytic, central, ladders, times = _param_ladders(model, num, X, chunk_size)
    else:
        raise ValueError(f"unknown quantity {quantity!r}")
    analytic = np.asarray(analytic, dtype=np.float64)
    rich, _ = numdiff._pick(ladders)
    res_c = numdiff.compare(analytic, central, None, tol)
    res_r = numdiff.compare(analytic, ladders, None, tol)
    t_a, t_c, t_r = times
    rows = [
        dict(quantity=quantity, method="analytic", seconds=t_a),
        dict(quantity=quantity, method="central", max_abs_error=res_c["max_abs"],
             max_rel_error=res_c["max_rel"], error_estimate=float(np.abs(central - rich).max()),
             seconds=t_c),
        dict(quantity=quantity, method="richardson", max_abs_error=res_r["max_abs"],
             max_rel_error=res_r["max_rel"], error_estimate=res_r["max_err_est"], seconds=t_r,
             tolerance=tol, n_bad=res_r["n_bad"], status="PASS" if res_r["passed"] else "FAIL"),
    ]
    return rows, res_r


def check_value(model, X, reference, tol, chunk_size=None):
    """jaccli's forward pass against reference outputs (N, m) computed elsewhere."""
    (values, t_a) = _timed(model.value, X, chunk_size)
    values = np.asarray(values, dtype=np.float64)[:, :, None]
    res = numdiff.compare(values, np.asarray(reference, dtype=np.float64)[:, :, None], None, tol)
    return [dict(quantity="value", method="reference", max_abs_error=res["max_abs"],
                 max_rel_error=res["max_rel"], seconds=t_a, tolerance=tol,
                 n_bad=res["n_bad"], status="PASS" if res["passed"] else "FAIL")], res


def names_the_outputs(table, model):
    """Whether a points table (``io.points.open_points``; None: no file) has a header
    that also names the model's outputs: reference outputs computed elsewhere."""
    return table is not None and table.names(model.output_names)


def read_reference(table, model):
    """The reference outputs (N, m) of a points table that ``names_the_outputs``."""
    from jaccli.io.selection import Wanted
    from jaccli.model import check_finite_points

    reference = np.asarray(table.take([Wanted(list(model.output_names), what="output")]),
                           dtype=np.float64)
    check_finite_points(reference, table.source)
    return reference


def quantities_to_check(what, has_reference, output_names):
    """The quantities ``what`` names (a list, or a comma-separated text), checked;
    None: jacobian, hessdiag, params, and value when there are reference outputs."""
    if what is None:
        return list(QUANTITIES) + (["value"] if has_reference else [])
    names = what.split(",") if isinstance(what, str) else list(what)
    quantities = [w.strip() for w in names if w.strip()]
    unknown = [w for w in quantities if w not in QUANTITIES + ("value",)]
    if unknown or not quantities:
        raise JaccliError(f"--what {what!r}: unknown quantity {', '.join(unknown) or '(none)'}; "
                          f"choose from jacobian, hessdiag, params, value")
    if "value" in quantities and not has_reference:
        raise JaccliError("--what value needs reference outputs: a CSV/TSV points file whose "
                          "header names the inputs and the outputs "
                          f"({', '.join(output_names)})")
    return quantities


@dataclass
class CheckReport:
    """What ``jaccli.check`` returns: one row per (quantity, method), and the verdict."""

    rows: list  # dicts keyed by FIELDS (missing keys: no value)
    failures: list  # (quantity, comparison dict) of each quantity that failed
    n_points: int
    tol: float
    value_tol: float
    columns: list = field(default_factory=lambda: list(FIELDS))

    @property
    def passed(self):
        return not self.failures


def check(model, points, what=None, tol=None, value_tol=DEFAULT_VALUE_TOL, reference=None,
          numeric_model=None, chunk_size=None, source="points"):
    """Check ``model``'s derivatives at ``points`` (N, n) against finite differences.

    ``what``: jacobian, hessdiag, params, value (a list or comma-separated);
    default: the first three, plus value when ``reference`` outputs (N, m) are
    given. ``tol``: relative to each output's largest derivative (default 1e-6,
    1e-4 for a float32 model). ``numeric_model``: the model the differences are
    taken of (default ``model``; pass a float64 copy of a float32 model).
    """
    from jaccli.model import check_finite_points

    quantities = quantities_to_check(what, reference is not None, model.output_names)
    points = np.asarray(points, dtype=np.float64)
    if points.ndim == 1:
        points = points[None, :]
    check_finite_points(points, source)
    if tol is None:
        tol = numdiff.DEFAULT_TOL if model.dtype == "float64" else FLOAT32_TOL
    rows, failures = [], []
    for quantity in quantities:
        if quantity == "value":
            qrows, res = check_value(model, points, reference, value_tol, chunk_size)
        else:
            qrows, res = check_quantity(model, points, quantity, tol, numeric_model, chunk_size)
        rows += qrows
        if not res["passed"]:
            failures.append((quantity, res))
    return CheckReport(rows, failures, len(points), tol, value_tol)
