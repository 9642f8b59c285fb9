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
    Central differences on a ladder of 8 steps h0, h0/2, ..., h0/128
    (h0 = 4 eps^(1/7) max(|x_j|, 1) ~ 0.023 for first derivatives,
    4 eps^(1/8) max(|x_j|, 1) ~ 0.044 for second ones). Every window of 3
    consecutive steps is combined by Richardson extrapolation (the error of a
    central difference is a series in h^2: O(h^2) -> O(h^4) -> O(h^6)); its
    error estimate is the difference between its last two extrapolated
    values plus a rounding bound (10 eps |f| / h for first, / h^2 for second
    derivatives). Element by element the window with the smallest estimate
    wins, as in numdifftools: a function that varies on a scale below h0
    gets the finer steps. The same evaluations also give forward and
    backward one-sided ladders (error series in h), which do not straddle a
    kink (relu) that the central steps straddle; ``compare`` accepts an
    element that agrees with any of the three within its own estimate. The
    estimate is an estimate, not a bound.

Every step is made exactly representable: the denominators use the
differences of the shifted coordinates as stored, not the nominal steps.
"""

import numpy as np

EPS = np.finfo(np.float64).eps

CENTRAL_FIRST = EPS ** (1 / 3)
CENTRAL_SECOND = EPS ** (1 / 4)
RICHARDSON_FIRST = 4 * EPS ** (1 / 7)  # ~0.023
RICHARDSON_SECOND = 4 * EPS ** (1 / 8)  # ~0.044
RICHARDSON_STEPS = 8  # h0, h0/2, ..., h0/128
RICHARDSON_LEVELS = 3  # steps per extrapolation: O(h^2) -> O(h^4) -> O(h^6)


def _scale(x):
    return np.maximum(np.abs(x), 1.0)


# --- the generic differences --------------------------------------------------
# ``shifted(j, columns)`` evaluates the function with coordinate j replaced by
# each array in ``columns`` (each shaped like coordinate j: (N,) for inputs, a
# scalar for parameters) and returns the stacked values (len(columns), N, m).


def _first(xp, xm, fp, fm):
    """Central first difference from f(xp), f(xm): (value, a rounding-error bound)."""
    denom = np.asarray(xp - xm)[..., None]
    d = (fp - fm) / denom
    rounding = EPS * (np.abs(fp) + np.abs(fm)) / denom
    return d, rounding


def _second(x, xp, xm, fp, fm, f0):
    """Central second difference (the non-uniform three-point formula)."""
    hp = np.asarray(xp - x)[..., None]
    hm = np.asarray(x - xm)[..., None]
    d = 2.0 * ((fp - f0) / hp - (f0 - fm) / hm) / (hp + hm)
    rounding = 4.0 * EPS * (np.abs(fp) + 2 * np.abs(f0) + np.abs(fm)) / (hp * hm)
    return d, rounding


def _richardson(estimates, power):
    """Richardson table of differences at steps h, h/2, h/4, ...

    ``power``: 2 for central differences (error series in h^2, h^4, ...),
    1 for one-sided ones (h, h^2, ...). Returns (the most extrapolated value,
    |its difference to the previous one|).
    """
    row = list(estimates)
    prev_best = row[-1]
    order = 1
    while len(row) > 1:
        factor = 2.0 ** (power * order)
        prev_best = row[-1]
        row = [(factor * fine - coarse) / (factor - 1.0) for coarse, fine in zip(row[:-1], row[1:])]
        order += 1
    best = row[0]
    return best, np.abs(best - prev_best)


def _best_window(estimates, rounding, power):
    """Extrapolate every window of RICHARDSON_LEVELS consecutive steps; keep, element
    by element, the window with the smallest error estimate (numdifftools does
    the same over its step ladder). The extrapolation weights amplify the
    rounding of the finest step by a small factor (< 2 for central, < 8 for
    one-sided); 10 is a margin.
    """
    best = err = None
    for w in range(len(estimates) - RICHARDSON_LEVELS + 1):
        value, truncation = _richardson(estimates[w:w + RICHARDSON_LEVELS], power)
        estimate = truncation + 10.0 * rounding[w + RICHARDSON_LEVELS - 1]
        if best is None:
            best, err = value, estimate
        else:
            better = estimate < err
            best = np.where(better, value, best)
            err = np.where(better, estimate, err)
    return best, err


def _derivative(shifted, j, x, second, method, f0):
    """The derivative along coordinate j.

    ``central``: (estimate, None). ``richardson``: a list of (estimate, error
    estimate) pairs: the central ladder, then the forward and the backward
    one-sided ladders, which use the same evaluations (plus f0). Where the
    function is smooth all three agree; within a step of a kink (relu) the
    central one straddles it and can be fooled, while a one-sided one does not
    cross it and gives the derivative on its side.
    """
    steps = _steps(x, second, method)
    # Every step, both signs, in one evaluation of the function.
    columns = [c for h in steps for c in (x + h, x - h)]
    values = shifted(j, columns)
    xp, xm = columns[0::2], columns[1::2]
    fp, fm = values[0::2], values[1::2]
    central = [(_second(x, xp[i], xm[i], fp[i], fm[i], f0) if second else _first(xp[i], xm[i], fp[i], fm[i]))
               for i in range(len(steps))]
    if method == "central":
        return central[0][0], None
    ladders = [_best_window([c[0] for c in central], [c[1] for c in central], 2)]
    for xs, fs in ((xp, fp), (xm, fm)):
        if second:
            # f(x + 2h), f(x + h), f(x): step i uses the points of steps i - 1 and i.
            one = [_one_sided_second(x, xs[i - 1], xs[i], fs[i - 1], fs[i], f0) for i in range(1, len(steps))]
        else:
            one = [_first(xs[i], x, fs[i], f0) for i in range(len(steps))]
        ladders.append(_best_window([o[0] for o in one], [o[1] for o in one], 1))
    return ladders


def _steps(x, second, method):
    """The steps along a coordinate whose values are x: one, or the Richardson ladder."""
    if method == "central":
        return [(CENTRAL_SECOND if second else CENTRAL_FIRST) * _scale(x)]
    base = (RICHARDSON_SECOND if second else RICHARDSON_FIRST) * _scale(x)
    return [base / 2.0 ** i for i in range(RICHARDSON_STEPS)]


def stencil_changes(shifted, x, second, base):
    """Whether a function of the point (e.g. which side of its kink each relu unit
    is on) changes anywhere on the Richardson stencil of each coordinate.

    ``shifted`` as for the differences, returning (k, N, K); ``base``: its value
    at x itself (N, K). Returns booleans (N, d), d the coordinates of x.
    """
    changed = []
    for j in range(x.shape[-1]):
        columns = [c for h in _steps(x[..., j], second, "richardson") for c in (x[..., j] + h, x[..., j] - h)]
        changed.append(np.any(shifted(j, columns) != base[None], axis=(0, -1)))
    return np.stack(changed, axis=-1)


def _one_sided_second(x, x2, x1, f2, f1, f0):
    """Second difference from f(x), f(x1), f(x2) on one side (x2 - x = 2 (x1 - x))."""
    a = np.asarray(x1 - x)[..., None]
    b = np.asarray(x2 - x)[..., None]
    # The second derivative of the parabola through (0, f0), (a, f1), (b, f2).
    d = 2.0 * ((f2 - f0) / b - (f1 - f0) / a) / (b - a)
    rounding = 4.0 * EPS * (np.abs(f2) + np.abs(f1) + np.abs(f0)) / np.abs(a * (b - a))
    return d, rounding


def pick_ladder(ladders):
    """The ladder with the smallest error estimate, element by element."""
    best, err = ladders[0]
    for value, estimate in ladders[1:]:
        better = estimate < err
        best = np.where(better, value, best)
        err = np.where(better, estimate, err)
    return best, err


# --- the three quantities -----------------------------------------------------


def input_shifter(f, X):
    N = X.shape[0]

    def shifted(j, columns):
        stack = np.repeat(X[None], len(columns), axis=0)  # (k, N, n)
        for i, col in enumerate(columns):
            stack[i, :, j] = col
        values = np.asarray(f(stack.reshape(-1, X.shape[1])), dtype=np.float64)
        return values.reshape(len(columns), N, -1)

    return shifted


def _differentiate(shifted, x, second, method, f0, ladders):
    """Loop over the coordinates of x (their last axis); stack along a new last axis."""
    results = [_derivative(shifted, j, x[..., j], second, method, f0) for j in range(x.shape[-1])]
    if method == "central":
        return np.stack([r[0] for r in results], axis=-1), None
    stacked = [(np.stack([r[k][0] for r in results], axis=-1), np.stack([r[k][1] for r in results], axis=-1))
               for k in range(3)]
    return stacked if ladders else pick_ladder(stacked)


def input_jacobian(f, X, method="richardson", ladders=False):
    """dy/dx of a batched function f: (N, n) -> (N, m).

    Returns (J, err): J (N, m, n); err (N, m, n) the error estimate, or None
    for ``central``. With ``ladders`` (richardson only): the list of the
    three (J, err) pairs, central, forward, backward.
    """
    X = np.atleast_2d(np.asarray(X, dtype=np.float64))
    f0 = np.asarray(f(X), dtype=np.float64).reshape(X.shape[0], -1) if method != "central" else None
    return _differentiate(input_shifter(f, X), X, False, method, f0, ladders)


def input_hessdiag(f, X, method="richardson", ladders=False):
    """d2y/dx_j2 of a batched f: (N, n) -> (N, m). Returns (H (N, m, n), err or None)."""
    X = np.atleast_2d(np.asarray(X, dtype=np.float64))
    f0 = np.asarray(f(X), dtype=np.float64).reshape(X.shape[0], -1)
    return _differentiate(input_shifter(f, X), X, True, method, f0, ladders)


def param_shifter(g, theta, indices):
    """``shifted`` for parameter ``indices[p]`` of theta: g at each shifted theta, stacked."""
    def shifted(p, columns):
        out = []
        for c in columns:
            t = theta.copy()
            t[indices[p]] = c
            out.append(np.asarray(g(t), dtype=np.float64))
        return np.stack(out)

    return shifted


def param_jacobian(g, theta, method="richardson", ladders=False, indices=None):
    """dy/dtheta of g: theta (P,) -> values (N, m) (the model at every point).

    ``indices``: the parameters to differentiate along (default: all P).
    Returns (J (N, m, len(indices)), err or None).
    """
    theta = np.asarray(theta, dtype=np.float64).reshape(-1)
    indices = np.arange(theta.size) if indices is None else np.asarray(indices)
    f0 = np.asarray(g(theta), dtype=np.float64) if method != "central" else None
    return _differentiate(param_shifter(g, theta, indices), theta[indices], False, method, f0,
                          ladders)


# --- the comparison -------------------------------------------------------------

#: The default tolerance of ``jaccli check``, relative to the scale of the
#: derivative (see ``compare``).
DEFAULT_TOL = 1e-6

#: How many of the numerical method's own error estimates an element may be off.
SAFETY = 3.0

#: How many times the rounding noise EPS |f| / h^p of a difference quotient an
#: element may be off, whatever the tolerance (see ``rounding_floor``).
NOISE_FLOOR = 100.0


def rounding_floor(x, f_scale, second):
    """The least difference ``compare`` allows: NOISE_FLOOR x the rounding noise
    EPS |f| / h (first) or EPS |f| / h^2 (second derivatives) of the Richardson
    differences along the coordinates x (the last axis), h the finest step of
    their coarsest window and |f| the largest |value| of each output
    (``f_scale``, (m,)).

    A derivative that is exactly 0 everywhere (a relu net's Hessian) gives a
    tolerance of 0 relative to itself, and its differences measure rounding
    noise of this size, not 0; |f| is the output's largest value, not the local
    one, which may be small by cancellation of terms that are not. Returns an
    array broadcasting to (N, m, d).
    """
    h = _steps(np.asarray(x, dtype=np.float64), second, "richardson")[RICHARDSON_LEVELS - 1]
    f_scale = np.asarray(f_scale, dtype=np.float64).reshape(-1, 1)  # (m, 1)
    return NOISE_FLOOR * EPS * f_scale / h[..., None, :] ** (2 if second else 1)


def compare(analytic, numeric, err_est=None, tol=DEFAULT_TOL, skip=None, floor=0.0):
    """Compare an analytic derivative with a numerical one, elementwise.

    Both are (N, m, d). ``numeric`` may also be a list of (numeric, err_est)
    candidates (the central, forward and backward Richardson ladders): each
    element is then judged against the candidate it agrees with best.

    The scale of output k is the largest |analytic| of that output over all
    points and coordinates, so elements that are tiny next to the others
    (where a relative error means nothing) are judged against the scale of
    their output. An element passes when

        |analytic - numeric| <= max(tol * scale_k, floor) + SAFETY * err_est

    i.e. it fails only when the disagreement is beyond both the tolerance
    (relative to the derivative's own magnitude, but never below ``floor``,
    the rounding noise of the differences: ``rounding_floor``) and what the
    numerical method can resolve at that element (its error estimate, large
    where the function varies on a scale below the steps). NaN anywhere fails.

    ``skip`` (booleans broadcastable to the elements): elements the
    differences cannot judge (their stencil crosses a kink); one of them beyond
    the allowance counts as skipped, not bad.

    Returns a dict: max_abs, max_rel (max |a - n| / scale_k over the outputs
    whose scale is not 0; None when every one is 0: no relative error), max_err_est,
    n_checked (elements), n_bad (elements beyond the allowance), n_skipped,
    passed, and the worst element (largest |a - n| / allowance, skipped ones
    aside): its index, both values, the allowance.
    """
    a = np.asarray(analytic, dtype=np.float64)
    candidates = numeric if isinstance(numeric, list) else [(numeric, err_est)]
    if not a.size:
        return dict(max_abs=0.0, max_rel=0.0, max_err_est=0.0, n_checked=0, n_bad=0, n_skipped=0,
                    passed=True, worst=None, worst_analytic=None, worst_numeric=None,
                    worst_allowed=None)
    reduce_axes = tuple(i for i in range(a.ndim) if i != 1)
    scale = np.max(np.abs(a), axis=reduce_axes, keepdims=True)
    d, e, diff, allowed, ratio = best_candidate(a, candidates, np.maximum(tol * scale, floor))
    beyond = ~(ratio <= 1.0)
    skipped = beyond & (False if skip is None else np.broadcast_to(skip, a.shape))
    bad = beyond & ~skipped
    # the maxima below describe the judged elements
    ratio, diff, e = (np.where(skipped, fill, x) for x, fill in ((ratio, -np.inf), (diff, 0.0), (e, 0.0)))
    measured = np.broadcast_to(scale > 0, a.shape)
    rel = diff[measured] / np.broadcast_to(scale, a.shape)[measured]
    worst = tuple(int(i) for i in np.unravel_index(np.argmax(ratio), ratio.shape))
    no_estimate = all(est is None for _, est in candidates)
    return {
        "max_abs": float(np.nanmax(diff)),
        "max_rel": float(np.nanmax(rel)) if rel.size else None,
        "max_err_est": None if no_estimate else float(np.max(e)),
        "n_checked": int(a.size),
        "n_bad": int(np.count_nonzero(bad)),
        "n_skipped": int(np.count_nonzero(skipped)),
        "passed": not bool(np.any(bad)),
        "worst": worst,
        "worst_analytic": float(a[worst]),
        "worst_numeric": float(d[worst]),
        "worst_allowed": float(allowed[worst]),
    }


def best_candidate(a, candidates, tolerance):
    """Element by element, the candidate (numeric, err_est) that ``a`` agrees with best,
    judged by |a - numeric| / (tolerance + SAFETY * err_est); NaN anywhere is infinitely bad.

    Returns (numeric, err_est, |a - numeric|, allowed difference, ratio), each shaped as a.
    """
    chosen = None
    for cand, est in candidates:
        d = np.broadcast_to(np.asarray(cand, dtype=np.float64), a.shape)
        e = np.zeros(a.shape) if est is None else np.broadcast_to(np.asarray(est, dtype=np.float64), a.shape)
        diff = np.abs(a - d)
        allowed = np.broadcast_to(tolerance + SAFETY * e, a.shape)
        finite = np.isfinite(a) & np.isfinite(d)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(allowed > 0, diff / np.where(allowed > 0, allowed, 1.0),
                             np.where(diff > 0, np.inf, 0.0))
        ratio = np.where(finite, ratio, np.inf)
        if chosen is None:
            chosen = [d.copy(), e.copy(), diff, allowed.copy(), ratio]
        else:
            better = ratio < chosen[4]
            for slot, new_value in enumerate([d, e, diff, allowed, ratio]):
                chosen[slot] = np.where(better, new_value, chosen[slot])
    return chosen
