"""Numerical derivatives, to check the analytic ones (``jaccli check``).

Two methods, both batched over points (each model evaluation takes every
shifted copy of every point at once; the only Python loop runs over the
coordinates being differentiated):

``central``
    The textbook central differences with a per-coordinate step:
    first derivatives (f(x+h) - f(x-h)) / 2h with h_j = eps^(1/3) max(|x_j|, 1),
    second derivatives (f(x+h) - 2 f(x) + f(x-h)) / h^2 with
    h_j = eps^(1/4) max(|x_j|, 1). Those steps balance the O(h^2) truncation
    error against the O(eps/h) (O(eps/h^2)) rounding error, so the result has
    about 2/3 (1/2) of the float64 digits.

``richardson``
    The same central differences at ``levels`` steps h0, h0/2, h0/4, ... with
    a larger base step (h0 = eps^(1/7) max(|x_j|, 1) ~ 0.006 for first,
    eps^(1/8) max(|x_j|, 1) ~ 0.011 for second derivatives), combined by Richardson
    extrapolation (the error of a central difference is a series in h^2, so
    each level removes one term: O(h^2) -> O(h^4) -> O(h^6)), as numdifftools
    does. Its error estimate is the difference between the last two
    extrapolated values plus a bound of the rounding error
    (about 10 eps |f| / h_min for first derivatives, 10 eps |f| / h_min^2 for
    second derivatives). Near a kink (relu) the estimate is large, as it must be.

Every step is made exactly representable: the denominators use the
differences of the shifted coordinates as stored, not the nominal steps.
"""

import numpy as np

EPS = np.finfo(np.float64).eps

CENTRAL_FIRST = EPS ** (1 / 3)
CENTRAL_SECOND = EPS ** (1 / 4)
RICHARDSON_FIRST = EPS ** (1 / 7)
RICHARDSON_SECOND = EPS ** (1 / 8)
RICHARDSON_LEVELS = 3


def _scale(x):
    return np.maximum(np.abs(x), 1.0)


# --- the generic differences --------------------------------------------------
# ``shifted(j, columns)`` evaluates the function with coordinate j replaced by
# each array in ``columns`` (each shaped like coordinate j: (N,) for inputs, a
# scalar for parameters) and returns the stacked values (len(columns), N, m).


def _first(shifted, j, x, h):
    """Central first difference at step h: (value, the rounding-error bound)."""
    xp, xm = x + h, x - h
    fp, fm = shifted(j, [xp, xm])
    denom = np.asarray(xp - xm)[..., None]
    d = (fp - fm) / denom
    rounding = EPS * (np.abs(fp) + np.abs(fm)) / denom
    return d, rounding


def _second(shifted, j, x, h, f0):
    """Central second difference at step h (non-uniform three-point formula)."""
    xp, xm = x + h, x - h
    fp, fm = shifted(j, [xp, xm])
    hp = np.asarray(xp - x)[..., None]
    hm = np.asarray(x - xm)[..., None]
    d = 2.0 * ((fp - f0) / hp - (f0 - fm) / hm) / (hp + hm)
    rounding = 4.0 * EPS * (np.abs(fp) + 2 * np.abs(f0) + np.abs(fm)) / (hp * hm)
    return d, rounding


def _richardson(estimates):
    """Richardson table of central differences at steps h, h/2, h/4, ...

    Returns (the most extrapolated value, |its difference to the previous one|).
    """
    row = list(estimates)
    prev_best = row[-1]
    order = 1
    while len(row) > 1:
        factor = 4.0 ** order
        prev_best = row[-1]
        row = [(factor * fine - coarse) / (factor - 1.0) for coarse, fine in zip(row[:-1], row[1:])]
        order += 1
    best = row[0]
    return best, np.abs(best - prev_best)


def _derivative(shifted, j, x, second, method, f0=None, levels=RICHARDSON_LEVELS):
    """The derivative along coordinate j: (estimate, error estimate or None)."""
    if method == "central":
        h = (CENTRAL_SECOND if second else CENTRAL_FIRST) * _scale(x)
        d, _ = _second(shifted, j, x, h, f0) if second else _first(shifted, j, x, h)
        return d, None
    base = (RICHARDSON_SECOND if second else RICHARDSON_FIRST) * _scale(x)
    estimates, rounding = [], None
    for level in range(levels):
        h = base / 2.0 ** level
        d, rnd = _second(shifted, j, x, h, f0) if second else _first(shifted, j, x, h)
        estimates.append(d)
        rounding = rnd  # the finest step has the largest rounding error
    best, truncation = _richardson(estimates)
    # The extrapolation weights amplify the rounding of the finest level by
    # at most ~2 (sum |weights| of the order-6 combination is < 2); 10 is a margin.
    return best, truncation + 10.0 * rounding


# --- the three quantities -----------------------------------------------------


def _input_shifter(f, X):
    N = X.shape[0]

    def shifted(j, columns):
        stack = np.repeat(X[None], len(columns), axis=0)  # (k, N, n)
        for i, col in enumerate(columns):
            stack[i, :, j] = col
        values = np.asarray(f(stack.reshape(-1, X.shape[1])), dtype=np.float64)
        return values.reshape(len(columns), N, -1)

    return shifted


def input_jacobian(f, X, method="richardson"):
    """dy/dx of a batched function f: (N, n) -> (N, m).

    Returns (J, err): J (N, m, n); err (N, m, n) the error estimate, or None
    for ``central``.
    """
    X = np.atleast_2d(np.asarray(X, dtype=np.float64))
    shifted = _input_shifter(f, X)
    cols, errs = [], []
    for j in range(X.shape[1]):
        d, e = _derivative(shifted, j, X[:, j], False, method)
        cols.append(d)
        errs.append(e)
    J = np.stack(cols, axis=-1)
    return J, (None if method == "central" else np.stack(errs, axis=-1))


def input_hessdiag(f, X, method="richardson"):
    """d2y/dx_j2 of a batched f: (N, n) -> (N, m). Returns (H (N, m, n), err or None)."""
    X = np.atleast_2d(np.asarray(X, dtype=np.float64))
    f0 = np.asarray(f(X), dtype=np.float64).reshape(X.shape[0], -1)
    shifted = _input_shifter(f, X)
    cols, errs = [], []
    for j in range(X.shape[1]):
        d, e = _derivative(shifted, j, X[:, j], True, method, f0=f0)
        cols.append(d)
        errs.append(e)
    H = np.stack(cols, axis=-1)
    return H, (None if method == "central" else np.stack(errs, axis=-1))


def param_jacobian(g, theta, method="richardson"):
    """dy/dtheta of g: theta (P,) -> values (N, m) (the model at every point).

    Returns (J (N, m, P), err or None).
    """
    theta = np.asarray(theta, dtype=np.float64).reshape(-1)

    def shifted(p, columns):
        out = []
        for c in columns:
            t = theta.copy()
            t[p] = c
            out.append(np.asarray(g(t), dtype=np.float64))
        return np.stack(out)

    cols, errs = [], []
    for p in range(theta.size):
        d, e = _derivative(shifted, p, theta[p], False, method)
        cols.append(d)
        errs.append(e)
    J = np.stack(cols, axis=-1)
    return J, (None if method == "central" else np.stack(errs, axis=-1))


# --- the comparison -------------------------------------------------------------

#: The default tolerance of ``jaccli check``, relative to the scale of the
#: derivative (see ``compare``).
DEFAULT_TOL = 1e-6

#: How many of the numerical method's own error estimates an element may be off.
SAFETY = 3.0


def compare(analytic, numeric, err_est=None, tol=DEFAULT_TOL):
    """Compare an analytic derivative with a numerical one, elementwise.

    Both are (N, m, d). The scale of output k is the largest |analytic| of
    that output over all points and coordinates, so elements that are tiny
    next to the others (where a relative error means nothing) are judged
    against the scale of their output. An element passes when

        |analytic - numeric| <= tol * scale_k + SAFETY * err_est

    i.e. the disagreement is beyond both the tolerance (relative to the
    derivative's own magnitude) and what the numerical method can resolve
    at that element (its error estimate, large near a kink or where the
    function varies on a scale below the step). NaN anywhere fails.

    Returns a dict: max_abs, max_rel (max |a - n| / scale_k), max_err_est,
    n_bad (elements beyond the allowance), passed, worst (the index of the
    largest |a - n| / allowance).
    """
    a = np.asarray(analytic, dtype=np.float64)
    d = np.asarray(numeric, dtype=np.float64)
    diff = np.abs(a - d)
    reduce_axes = tuple(i for i in range(a.ndim) if i != 1)
    scale = np.max(np.abs(a), axis=reduce_axes, keepdims=True) if a.size else np.ones(1)
    allowed = tol * scale
    if err_est is not None:
        allowed = allowed + SAFETY * np.asarray(err_est, dtype=np.float64)
    finite = np.isfinite(a) & np.isfinite(d)
    bad = ~finite | (diff > allowed)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(scale > 0, diff / np.where(scale > 0, scale, 1.0), np.where(diff > 0, np.inf, 0.0))
        ratio = np.where(allowed > 0, diff / np.where(allowed > 0, allowed, 1.0), np.where(diff > 0, np.inf, 0.0))
    ratio = np.where(finite, ratio, np.inf)
    return {
        "max_abs": float(np.nanmax(diff)) if a.size else 0.0,
        "max_rel": float(np.nanmax(rel)) if a.size else 0.0,
        "max_err_est": None if err_est is None else float(np.max(err_est)) if a.size else 0.0,
        "n_bad": int(np.count_nonzero(bad)),
        "passed": not bool(np.any(bad)),
        "worst": tuple(int(i) for i in np.unravel_index(np.argmax(ratio), ratio.shape)) if a.size else None,
    }
