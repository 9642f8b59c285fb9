"""Checking a model's analytic derivatives against finite differences (``jaccli.check``).

Each quantity is computed analytically, by central differences and by
Richardson-extrapolated central differences (with an error estimate, see
``numdiff``). An element fails when |analytic - richardson| > max(tol * scale,
floor) + 3 * estimate (scale: the largest |derivative| of that output; floor:
the rounding noise of the differences, ``numdiff.rounding_floor``). Reference
outputs computed elsewhere (e.g. by the framework that trained the model)
check the forward pass itself: that catches a wrong spec (a transposed
kernel, a wrong activation), which derivatives of the same wrong function
cannot.
"""

import time
from dataclasses import dataclass, field

import numpy as np

from jaccli import arguments
from jaccli.errors import ParameterError, param
from jaccli.quantities import CHECKED
from jaccli.verify import numdiff

QUANTITIES = CHECKED  # jacobian, hessdiag, params
#: The derivative tolerance of a float32 model (float64: numdiff.DEFAULT_TOL).
FLOAT32_TOL = 1e-4
DEFAULT_VALUE_TOL = 1e-5
#: The columns of the report's table, in order. Timings are in the rows
#: (``seconds``) for the summary, not in the table: two runs write the same bytes.
FIELDS = ["quantity", "method", "max_abs_error", "max_rel_error", "error_estimate",
          "tolerance", "n_checked", "n_bad", "n_skipped", "status"]
#: ``params`` by default: at most this many points and parameters, a seeded
#: sample (P finite differences of the whole model at every point cost P times
#: a jacobian check: minutes for P = 5,000 at 1,000 points).
SAMPLE_POINTS = 64
SAMPLE_PARAMS = 128
SAMPLE_SEED = 0
#: Rows of shifted points whose kink sides are computed at once (bounded memory).
KINK_BLOCK = 4096


def _timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def _input_ladders(model, num, X, quantity, chunk_size):
    """(analytic, central, Richardson ladders, the three times, kink crossings (N, n)
    or None, the rounding floor) of an input derivative.

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

    def sides_in_u(U):
        return kink_sides(num.network, U * scale + offset)

    def to_x(pair):
        value, err = pair
        return value / scale ** power, None if err is None else err / scale ** power

    analytic, t_a = _timed(getattr(model, quantity), X, chunk_size)
    (central, _), t_c = _timed(differentiate, in_u, U, "central")
    ladders, t_r = _timed(differentiate, in_u, U, "richardson", True)
    skip = None
    if has_kinks(num):
        skip = numdiff.stencil_changes(numdiff.input_shifter(sides_in_u, U), U,
                                       quantity == "hessdiag", sides_in_u(U))
    floor = numdiff.rounding_floor(U, _output_scale(num.value(X, chunk_size)), power == 2)
    return (analytic, to_x((central, None))[0], [to_x(pair) for pair in ladders], (t_a, t_c, t_r),
            skip, to_x((floor, None))[0])


def _param_ladders(model, num, X, chunk_size, indices=None):
    """(analytic, central, Richardson ladders, the three times, kink crossings, the
    rounding floor) of dy/dtheta, along the parameters ``indices`` (default: all)."""
    theta = num.parameter_vector()
    indices = np.arange(theta.size) if indices is None else np.asarray(indices)
    analytic, t_a = _timed(lambda: model.param_jacobian(X, chunk_size)[:, :, indices])

    def g(t):
        return num.with_parameters(t).value(X, chunk_size)

    def sides(t):
        return kink_sides(num.with_parameters(t).network, X)

    (central, _), t_c = _timed(numdiff.param_jacobian, g, theta, "central", False, indices)
    ladders, t_r = _timed(numdiff.param_jacobian, g, theta, "richardson", True, indices)
    skip = None
    if has_kinks(num):
        skip = numdiff.stencil_changes(numdiff.param_shifter(sides, theta, indices),
                                       theta[indices], False, sides(theta))
    floor = numdiff.rounding_floor(theta[indices], _output_scale(g(theta)), False)
    return analytic, central, ladders, (t_a, t_c, t_r), skip, floor


def _output_scale(values):
    """The largest |value| of each output (m,) over the points: the size of the
    rounding in its finite differences."""
    return np.max(np.abs(np.asarray(values, dtype=np.float64)), axis=0)


def has_kinks(model):
    return any(layer.activation.kink_points(layer.params) for layer in model.network.layers)


def kink_sides(network, X):
    """(N, K) booleans: whether each pre-activation of a unit with kinks (relu's 0,
    hardtanh's min_val and max_val, ...) is above each kink at the points X (N, n)
    (K = 0: no such unit).

    A difference stencil along which one of them changes crosses a kink: there
    the finite differences do not measure the derivative at the point."""
    from jaccli.engine.network import scaled_inputs

    blocks = []
    for start in range(0, len(X), KINK_BLOCK):
        a, sides = scaled_inputs(network, np.asarray(X[start:start + KINK_BLOCK])), []
        for layer in network.layers:
            z = layer.pre_activation(a)
            sides += [z > kink for kink in layer.activation.kink_points(layer.params)]
            a = layer.derivatives(z)[0]
        blocks.append(np.concatenate(sides, axis=1) if sides else np.zeros((len(a), 0), bool))
    return np.concatenate(blocks)


def check_quantity(model, X, quantity, tol=numdiff.DEFAULT_TOL, numeric_model=None,
                   chunk_size=None, indices=None):
    """Analytic vs central vs Richardson for one quantity, at the points X (N, n).

    The analytic derivative comes from ``model``, the numerical ones from
    ``numeric_model`` (default: the same model; a float64 copy of a float32
    model, so that the differences are not swamped by float32 rounding).

    Returns a list of row dicts (method: analytic, central, richardson) and
    the verdict. Richardson decides (``compare`` with its error estimate);
    the central differences are reported, with |central - richardson| as
    their error estimate, to show what a plain finite difference gives.
    An element whose stencil crosses a kink (a relu unit's pre-activation
    changes sign within the steps) and that disagrees is counted as skipped,
    not failed: the differences there do not measure the derivative.
    ``indices`` (params only): the parameters to check (default: all).
    """
    X = np.asarray(X, dtype=np.float64)
    num = numeric_model or model
    if quantity in ("jacobian", "hessdiag"):
        analytic, central, ladders, times, skip, floor = _input_ladders(model, num, X, quantity,
                                                                        chunk_size)
    elif quantity == "params":
        analytic, central, ladders, times, skip, floor = _param_ladders(model, num, X,
                                                                        chunk_size, indices)
    else:
        raise ValueError(f"unknown quantity {quantity!r}")
    analytic = np.asarray(analytic, dtype=np.float64)
    skip = None if skip is None else skip[:, None, :]  # (N, d): the same for every output
    rich, _ = numdiff.pick_ladder(ladders)
    res_c = numdiff.compare(analytic, central, None, tol, skip, floor)
    res_r = numdiff.compare(analytic, ladders, None, tol, skip, floor)
    res_r["elements"] = element_errors(analytic, ladders, tol, skip, floor)
    t_a, t_c, t_r = times
    rows = [
        dict(quantity=quantity, method="analytic", seconds=t_a),
        dict(quantity=quantity, method="central", max_abs_error=res_c["max_abs"],
             max_rel_error=res_c["max_rel"], error_estimate=float(np.abs(central - rich).max()),
             seconds=t_c),
        dict(quantity=quantity, method="richardson", max_abs_error=res_r["max_abs"],
             max_rel_error=res_r["max_rel"], error_estimate=res_r["max_err_est"], seconds=t_r,
             tolerance=tol, n_checked=res_r["n_checked"], n_bad=res_r["n_bad"],
             n_skipped=res_r["n_skipped"], status="PASS" if res_r["passed"] else "FAIL"),
    ]
    return rows, res_r


def element_errors(analytic, ladders, tol, skip=None, floor=0.0):
    """Each element's verdict, for a figure (``jaccli.plot_check``): |analytic -
    numerical| and the error estimate of the numerical value ``compare`` judged it
    by, its status (0 passed, 1 failed, 2 skipped: the stencil crosses a kink),
    and each output's tolerance alone (tol x scale; the allowed difference is
    max(that, floor) + SAFETY x estimate, as ``compare`` judges)."""
    a = np.asarray(analytic, dtype=np.float64)
    if not a.size:
        return dict(abs_error=a, error_estimate=a, status=np.zeros(a.shape, np.int8),
                    threshold=np.zeros(0), safety=numdiff.SAFETY)
    axes = tuple(i for i in range(a.ndim) if i != 1)
    threshold = tol * np.max(np.abs(a), axis=axes, keepdims=True)
    _, estimate, error, _, ratio = numdiff.best_candidate(a, ladders, np.maximum(threshold, floor))
    beyond = ~(ratio <= 1.0)
    skipped = beyond & (False if skip is None else np.broadcast_to(skip, a.shape))
    status = np.where(skipped, 2, np.where(beyond, 1, 0)).astype(np.int8)
    return dict(abs_error=error, error_estimate=np.array(estimate), status=status,
                threshold=threshold.ravel(), safety=numdiff.SAFETY)


def check_value(model, X, reference, tol, chunk_size=None):
    """jaccli's forward pass against reference outputs (N, m) computed elsewhere."""
    (values, t_a) = _timed(model.value, X, chunk_size)
    values = np.asarray(values, dtype=np.float64)[:, :, None]
    res = numdiff.compare(values, np.asarray(reference, dtype=np.float64)[:, :, None], None, tol)
    return [dict(quantity="value", method="reference", max_abs_error=res["max_abs"],
                 max_rel_error=res["max_rel"], seconds=t_a, tolerance=tol,
                 n_checked=res["n_checked"], n_bad=res["n_bad"], n_skipped=0,
                 status="PASS" if res["passed"] else "FAIL")], res


def names_the_outputs(table, model):
    """Whether a points table (``io.points.open_points``; None: no file) has a header
    that also names the model's outputs: reference outputs computed elsewhere."""
    return table is not None and table.names(model.output_names)


def read_reference(table, model):
    """The reference outputs (N, m) of a points table that ``names_the_outputs``."""
    from jaccli.io.selection import Wanted
    from jaccli.io.finite import check_finite_points

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
        raise ParameterError(f"{param('what')} {what!r}: unknown quantity "
                             f"{', '.join(unknown) or '(none)'}; "
                             f"choose from jacobian, hessdiag, params, value")
    if "value" in quantities and not has_reference:
        raise ParameterError(f"{param('what')} value needs reference outputs: a CSV/TSV points "
                             "file whose header names the inputs and the outputs "
                             f"({', '.join(output_names)})")
    return quantities


@dataclass
class CheckReport:
    """What ``jaccli.check`` returns: one row per (quantity, method), and the verdict."""

    rows: list  # dicts keyed by FIELDS, plus seconds (missing keys: no value)
    failures: list  # (quantity, comparison dict) of each quantity that failed
    n_points: int
    tol: float
    value_tol: float  # None when no reference values were checked
    columns: list = field(default_factory=lambda: list(FIELDS))
    # quantity -> (points checked, of N, parameters checked, of P), when sampled
    samples: dict = field(default_factory=dict)
    # quantity -> each element's error, estimate and verdict (``element_errors``): the figure's
    elements: dict = field(default_factory=dict)

    @property
    def n_skipped(self):
        return sum(row.get("n_skipped") or 0 for row in self.rows)

    @property
    def passed(self):
        return not self.failures


def check(model, points, what=None, tol=None, value_tol=DEFAULT_VALUE_TOL, reference=None,
          numeric_model=None, chunk_size=None, source="points", sample=True):
    """Check ``model``'s derivatives at ``points`` (N, n) against finite differences.

    ``what``: jacobian, hessdiag, params, value (a list or comma-separated);
    default: the first three, plus value when ``reference`` outputs (N, m) are
    given. ``tol``: relative to each output's largest derivative (default 1e-6,
    1e-4 for a float32 model). ``numeric_model``: the model the differences are
    taken of (default ``model``; pass a float64 copy of a float32 model).
    ``sample``: params are checked at a seeded sample of at most SAMPLE_POINTS
    points and SAMPLE_PARAMS parameters (``report.samples`` says which);
    False checks every point and parameter.
    """
    quantities = quantities_to_check(what, reference is not None, model.output_names)
    chunk_size, value_tol = arguments.count("chunk_size", chunk_size), \
        arguments.positive_number("value_tol", value_tol)
    points = model.points_from(points, source, whole=True)
    if tol is None:
        tol = numdiff.DEFAULT_TOL if model.dtype == "float64" else FLOAT32_TOL
    tol = arguments.positive_number("tol", tol)
    rows, failures, samples, elements = [], [], {}, {}
    for quantity in quantities:
        if quantity == "value":
            qrows, res = check_value(model, points, reference, value_tol, chunk_size)
        elif quantity == "params" and sample:
            rng = np.random.default_rng(SAMPLE_SEED)
            at = _sample(len(points), SAMPLE_POINTS, rng)
            indices = _sample(model.n_parameters, SAMPLE_PARAMS, rng)
            samples[quantity] = (len(at), len(points), len(indices), model.n_parameters)
            qrows, res = check_quantity(model, points[at], quantity, tol, numeric_model,
                                        chunk_size, indices)
            if res["worst"] is not None:  # name the worst element in the caller's numbering
                i, k, j = res["worst"]
                res["worst"] = (int(at[i]), k, int(indices[j]))
        else:
            qrows, res = check_quantity(model, points, quantity, tol, numeric_model, chunk_size)
        rows += qrows
        if "elements" in res:
            elements[quantity] = res.pop("elements")
        if not res["passed"]:
            failures.append((quantity, res))
    return CheckReport(rows, failures, len(points), tol,
                       value_tol if "value" in quantities else None, samples=samples,
                       elements=elements)


def _sample(n, limit, rng):
    """All of range(n), or ``limit`` of them drawn by ``rng``, in increasing order."""
    return np.arange(n) if n <= limit else np.sort(rng.choice(n, size=limit, replace=False))
