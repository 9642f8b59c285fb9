"""Derivative-based sensitivity (DGSM) against independent oracles.

The oracles: closed forms for a linear model; central finite differences of
an independent forward pass (tests/oracle.py) for a tanh net; Jansen's
Monte-Carlo estimator of the total Sobol' index for the bound; repeated
samples with a known true value for the bootstrap's coverage.
"""

import numpy as np
import pytest
from scipy import stats

import jaccli
from conftest import random_model, save_model
from jaccli.errors import JaccliError
from jaccli.stats.moments import Moments
from whole_arrays import sensitivity_of_arrays
from jaccli.stats.sensitivity import (InputBound, SensitivityAccumulator, parse_bounds,
                                      poisson_weights)
from oracle import forward


def _model(tmp_path, rng, widths, activations):
    spec, tensors = random_model(rng, widths, activations)
    model = jaccli.load(save_model(tmp_path, spec, tensors))
    return model, (lambda x: np.real(forward(spec, tensors, x)))


def _table(model, points, **options):
    values, jacobian = model.value(points), model.jacobian(points)
    return sensitivity_of_arrays(values, jacobian, points, input_names=model.input_names,
                                 output_names=model.output_names, **options)


def _linear(tmp_path, w, b=0.3):
    spec = {"inputs": len(w), "outputs": ["y"], "layers": [{"units": 1, "activation": "linear"}]}
    return jaccli.load(save_model(tmp_path, spec, {"W0": np.asarray(w, float)[:, None],
                                                   "b0": np.array([b])}))


# ---------------------------------------------------------------- linear: closed forms


def test_linear_model_nu_is_the_squared_weight_exactly(tmp_path):
    w = np.array([1.5, -0.25, 3.0])
    model = _linear(tmp_path, w)
    rng = np.random.default_rng(1)
    points = rng.uniform([0, -1, 2], [1, 3, 2.5], size=(500, 3))
    r = _table(model, points, bootstrap=100)
    np.testing.assert_allclose(r.nu[0], w ** 2, rtol=1e-14)
    np.testing.assert_allclose(r.mean_abs[0], np.abs(w), rtol=1e-14)
    np.testing.assert_allclose(r.mean[0], w, rtol=1e-14)
    np.testing.assert_allclose(r.share[0], w ** 2 / np.sum(w ** 2), rtol=1e-14)
    # a constant derivative: every replicate gives the same mean, the interval is a point
    np.testing.assert_allclose(r.nu_lower, r.nu, rtol=1e-13)
    np.testing.assert_allclose(r.nu_upper, r.nu, rtol=1e-13)


def test_linear_model_bounds_against_the_closed_form(tmp_path):
    """Uniform inputs: S_T = w^2 (b-a)^2/12 / Var y, the bound is 12/pi^2 of it;
    normal inputs: the bound s^2 w^2 / Var y is S_T itself."""
    w = np.array([1.5, -0.25, 3.0])
    low, high = np.array([0.0, -1.0, 2.0]), np.array([1.0, 3.0, 2.5])
    model = _linear(tmp_path, w)
    rng = np.random.default_rng(2)
    points = rng.uniform(low, high, size=(4000, 3))
    bounds = ",".join(f"x{j + 1}=uniform:{a}:{b}" for j, (a, b) in enumerate(zip(low, high)))
    r = _table(model, points, bootstrap=50, bounds=bounds)
    var_y = np.var(points @ w, ddof=1)
    np.testing.assert_allclose(r.output_variance, [var_y], rtol=1e-12)
    np.testing.assert_allclose(r.bound[0], (high - low) ** 2 * w ** 2 / (np.pi ** 2 * var_y),
                               rtol=1e-12)
    parts = w ** 2 * (high - low) ** 2 / 12
    s_total = parts / parts.sum()
    # only Var(y) is estimated (4,000 points: a few percent)
    np.testing.assert_allclose(r.bound[0], 12 / np.pi ** 2 * s_total, rtol=0.05)
    assert all(b.label == "uniform (bounds)" for b in r.bounds)

    sd = np.array([0.5, 2.0, 0.1])
    points = rng.normal(1.0, sd, size=(4000, 3))
    r = _table(model, points, bootstrap=50, bounds=",".join(f"normal:{s}" for s in sd))
    parts = w ** 2 * sd ** 2
    np.testing.assert_allclose(r.bound[0], parts / parts.sum(), rtol=0.05)
    np.testing.assert_allclose(r.bound[0], sd ** 2 * w ** 2 / np.var(points @ w, ddof=1),
                               rtol=1e-12)


def test_bounds_from_the_points(tmp_path):
    model = _linear(tmp_path, [1.0, 2.0])
    points = np.random.default_rng(3).normal(size=(300, 2)) * [1.0, 3.0]
    r = _table(model, points, bootstrap=50)  # default: uniform on the points' range
    y_var = np.var(points @ [1.0, 2.0], ddof=1)
    span = points.max(axis=0) - points.min(axis=0)
    np.testing.assert_allclose(r.bound[0], span ** 2 * [1, 4] / np.pi ** 2 / y_var, rtol=1e-12)
    assert [b.label for b in r.bounds] == ["uniform (points)"] * 2
    r = _table(model, points, bootstrap=50, bounds="normal")
    np.testing.assert_allclose(r.bound[0], np.var(points, axis=0, ddof=1) * [1, 4] / y_var,
                               rtol=1e-12)
    assert r.bounds[0].label == "normal (points)"
    r = _table(model, points, bootstrap=50, bounds="x2=normal,x1=uniform:-5:5")
    assert [b.label for b in r.bounds] == ["uniform (bounds)", "normal (points)"]
    np.testing.assert_allclose(r.bound[0, 0], 100 / np.pi ** 2 / y_var, rtol=1e-12)


# ---------------------------------------------------------------- a smooth net: finite differences


def test_nu_against_a_central_difference_dgsm(tmp_path):
    rng = np.random.default_rng(4)
    model, f = _model(tmp_path, rng, [4, 12, 12, 2], ["tanh", "tanh", "linear"])
    points = rng.uniform(-2, 2, size=(400, 4))
    h = 1e-5  # truncation ~h^2 f''' ~ 1e-10, rounding ~eps/h ~ 1e-11
    fd = np.stack([(f(points + h * e) - f(points - h * e)) / (2 * h) for e in np.eye(4)], axis=-1)
    r = _table(model, points, bootstrap=50)
    scale = np.mean(fd ** 2, axis=0).max()
    np.testing.assert_allclose(r.nu, np.mean(fd ** 2, axis=0), rtol=1e-7, atol=1e-8 * scale)
    np.testing.assert_allclose(r.mean_abs, np.mean(np.abs(fd), axis=0), rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(r.mean, np.mean(fd, axis=0), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(r.output_variance, np.var(f(points), axis=0, ddof=1), rtol=1e-12)


# ---------------------------------------------------------------- the bound vs Monte-Carlo S_T


def _jansen_total_index(f, sample, n_inputs, rng, size):
    """Jansen's estimator of each input's total Sobol' index, with its standard error.

    S_T,j = E[(f(A) - f(A_B^j))^2] / (2 Var f), A and B independent samples,
    A_B^j: A with column j taken from B.
    """
    A, B = sample(rng, size), sample(rng, size)
    fA = f(A)[:, 0]
    variance = np.var(np.r_[fA, f(B)[:, 0]], ddof=1)
    estimates, errors = [], []
    for j in range(n_inputs):
        AB = A.copy()
        AB[:, j] = B[:, j]
        terms = (fA - f(AB)[:, 0]) ** 2 / (2 * variance)
        estimates.append(terms.mean())
        errors.append(terms.std(ddof=1) / np.sqrt(size))
    return np.array(estimates), np.array(errors)


@pytest.mark.parametrize("kind", ["uniform", "normal"])
def test_the_bound_holds_against_jansen(tmp_path, kind):
    rng = np.random.default_rng(5 if kind == "uniform" else 6)
    model, f = _model(tmp_path, rng, [3, 10, 1], ["tanh", "linear"])
    if kind == "uniform":
        low, high = np.array([-2.0, 0.0, -1.0]), np.array([2.0, 1.0, 3.0])
        def sample(r, size):
            return r.uniform(low, high, size=(size, 3))
        bounds = ",".join(f"uniform:{a}:{b}" for a, b in zip(low, high))
    else:
        mean, sd = np.array([0.0, 1.0, -0.5]), np.array([1.5, 0.5, 1.0])
        def sample(r, size):
            return r.normal(mean, sd, size=(size, 3))
        bounds = ",".join(f"normal:{s}" for s in sd)
    s_total, se = _jansen_total_index(f, sample, 3, rng, 40_000)
    r = _table(model, sample(rng, 40_000), bootstrap=100, bounds=bounds)
    bound = r.bound[0]
    # 4 standard errors of Jansen's estimate; the DGSM side has a few tenths of a
    # percent of sampling error, which the margin of a Poincare bound dwarfs.
    assert np.all(s_total - 4 * se <= bound), (s_total, se, bound)
    # and the test has teeth: inputs that matter, bounds that are not vacuous
    assert s_total.max() > 0.3 and np.all(bound < 3 * s_total + 0.05), (s_total, bound)


# ---------------------------------------------------------------- the bootstrap


def test_poisson_weights_do_not_depend_on_the_chunking():
    whole = poisson_weights(11, 0, 50, 37)
    assert whole.shape == (50, 37)
    assert np.array_equal(np.vstack([poisson_weights(11, s, min(s + 7, 50), 37)
                                     for s in range(0, 50, 7)]), whole)
    assert not np.array_equal(poisson_weights(12, 0, 50, 37), whole)
    many = poisson_weights(1, 0, 20_000, 50)
    # Poisson(1): mean 1, variance 1, P(0) = P(1) = e^-1 (1e6 draws: 3 sigma ~ 0.003)
    assert abs(many.mean() - 1) < 0.003 and abs(many.var() - 1) < 0.006
    assert abs(np.mean(many == 0) - np.exp(-1)) < 0.002
    assert abs(np.mean(many == 1) - np.exp(-1)) < 0.002


def test_bootstrap_interval_coverage():
    """Over R independent samples with a known nu, the 95% interval covers it
    about 95% of the time.

    Derivative d ~ U(0, 2): nu = E d^2 = 4/3, mean_abs = 1. The percentile
    bootstrap's coverage error is O(1/N); at N = 150 it is about a percent
    (slight under-coverage for a skewed statistic). The count of covering
    intervals is then Binomial(R, p) with p in [0.93, 0.96]; the test accepts
    the central 99.9% of that range, so it fails by chance with probability
    below 1e-3 if the interval is right, and fails when the true coverage is
    far off (90%: expected count 270 of 300, below the acceptance floor).
    """
    R, N, level = 300, 150, 0.95
    rng = np.random.default_rng(7)
    covered = np.zeros(2, int)
    for rep in range(R):
        d = rng.uniform(0, 2, size=(N, 1, 1))
        r = sensitivity_of_arrays(rng.normal(size=(N, 1)), d, rng.uniform(size=(N, 1)),
                                  bootstrap=400, level=level, seed=rep)
        covered += [r.nu_lower[0, 0] <= 4 / 3 <= r.nu_upper[0, 0],
                    r.mean_abs_lower[0, 0] <= 1 <= r.mean_abs_upper[0, 0]]
    low, high = stats.binom.ppf(0.0005, R, 0.93), stats.binom.isf(0.0005, R, 0.96)
    assert np.all((low <= covered) & (covered <= high)), (covered, low, high)


def test_chunked_equals_whole(tmp_path):
    rng = np.random.default_rng(8)
    model, _ = _model(tmp_path, rng, [3, 8, 2], ["tanh", "linear"])
    points = rng.uniform(-1, 1, size=(101, 3))
    values, jacobian = model.value(points), model.jacobian(points)
    whole = sensitivity_of_arrays(values, jacobian, points, bootstrap=64, seed=3)
    acc = SensitivityAccumulator(["x1", "x2", "x3"], ["y1", "y2"], bootstrap=64, seed=3)
    starts = list(range(0, 101, 13))
    for start in reversed(starts):  # any order: the weights follow the row numbers
        stop = min(start + 13, 101)
        acc.add(values[start:stop], jacobian[start:stop], points[start:stop], start=start)
    chunked = acc.result()
    for name in ("nu", "nu_lower", "nu_upper", "mean_abs", "mean_abs_lower", "mean_abs_upper",
                 "mean", "share", "bound", "output_variance"):
        np.testing.assert_allclose(getattr(chunked, name), getattr(whole, name), rtol=1e-10,
                                   err_msg=name)
    np.testing.assert_allclose(acc.total.inputs.variance, np.var(points, axis=0, ddof=1), rtol=1e-9)


def test_moments_merge_is_stable():
    rng = np.random.default_rng(9)
    rows = 1e9 + rng.normal(size=(10_000, 2))
    m = Moments(2, track_range=True)
    for start in range(0, 10_000, 333):
        m.add(rows[start:start + 333])
    np.testing.assert_allclose(m.variance, np.var(rows - 1e9, axis=0, ddof=1), rtol=1e-6)
    assert np.array_equal(m.low, rows.min(axis=0)) and np.array_equal(m.high, rows.max(axis=0))


# ---------------------------------------------------------------- bad input


def test_fewer_than_two_points():
    with pytest.raises(JaccliError, match="at least 2 points"):
        sensitivity_of_arrays(np.ones((1, 1)), np.ones((1, 1, 2)), np.ones((1, 2)), bootstrap=50)
    with pytest.raises(JaccliError, match="at least 2 points"):
        SensitivityAccumulator(["a"], ["y"], bootstrap=50).result()


def test_constant_output_reports_nu_and_no_bound(tmp_path):
    spec = {"inputs": 2, "outputs": ["y", "z"],
            "layers": [{"units": 2, "activation": "relu"}]}
    # y = relu(-x1 - x2 - 10) is 0 on the unit square (derivative 0); z varies
    model = jaccli.load(save_model(tmp_path, spec, {"W0": np.array([[-1.0, 1.0], [-1.0, 0.5]]),
                                                     "b0": np.array([-10.0, 0.0])}))
    points = np.random.default_rng(10).uniform(size=(50, 2))
    r = _table(model, points, bootstrap=50)
    assert r.constant_outputs == ["y"]
    assert np.all(np.isnan(r.bound[0])) and np.all(np.isfinite(r.bound[1]))
    assert np.array_equal(r.nu[0], [0.0, 0.0])
    assert any("y is constant" in w for w in r.warnings())


@pytest.mark.parametrize("bounds, message", [
    ("uniform:0:1,uniform:0:1,uniform:0:1", "gives 3 bound"),
    ("uniform:1:1,normal:1", "needs A < B"),
    ("uniform:2:1,normal:1", "needs A < B"),
    ("uniform:0,normal:1", "two numbers"),
    ("uniform:0:1,normal:0", "must be positive"),
    ("uniform:0:1,normal:-1", "must be positive"),
    ("uniform:0:1,normal:1:2", "one number"),
    ("uniform:0:x,normal:1", "is not a number"),
    ("uniform:0:inf,normal:1", "must be finite"),
    ("beta:1:2,normal:1", "unknown distribution"),
    ("x1=uniform:0:1", "missing: x2"),
    ("x1=uniform:0:1,x1=normal:1,x2=normal:1", "given twice"),
    ("x1=uniform:0:1,z=normal:1", "no input named 'z'"),
    ("x1=uniform:0:1,normal:1", "name every input"),
    ("uniform:0:1,,normal:1", "empty item"),
])
def test_bad_bounds(bounds, message):
    with pytest.raises(JaccliError, match=message):
        parse_bounds(bounds, ["x1", "x2"])


def test_one_bound_for_every_input():
    assert parse_bounds("uniform:-1:2", ["a", "b"]) == [InputBound("uniform", low=-1.0, high=2.0)] * 2
    assert parse_bounds("normal", ["a", "b"]) == [InputBound("normal", source="points")] * 2
    with pytest.raises(JaccliError, match="gives 2 bound"):
        parse_bounds("uniform:0:1,normal:1", ["a", "b", "c"])


def test_bounds_by_name_ignore_case_and_accept_a_dict():
    assert parse_bounds(" X2 = normal:2 , x1=uniform:0:1", ["x1", "x2"]) == [
        InputBound("uniform", low=0.0, high=1.0), InputBound("normal", sd=2.0)]
    assert parse_bounds({"x2": "normal:2", "x1": "uniform:0:1"}, ["x1", "x2"]) == [
        InputBound("uniform", low=0.0, high=1.0), InputBound("normal", sd=2.0)]


@pytest.mark.parametrize("options, message", [
    ({"bootstrap": 0}, "^bootstrap must be a positive"),
    ({"bootstrap": -5}, "^bootstrap must be a positive"),
    ({"bootstrap": 2.5}, "^bootstrap must be a positive"),
    ({"bootstrap": 20}, "^bootstrap 20 is too few for level 0.95: .* at least 40"),
    ({"level": 0.0}, "^level must lie"),
    ({"level": 1.0}, "^level must lie"),
    ({"level": 1.5}, "^level must lie"),
    ({"level": -0.1}, "^level must lie"),
    ({"seed": -1}, "^seed must be a non-negative integer"),
    ({"bootstrap": 10 ** 9}, "^bootstrap 1000000000 for 1 output.* memory"),
])
def test_bad_options(options, message):
    with pytest.raises(JaccliError, match=message):
        SensitivityAccumulator(["x1"], ["y"], **options)


def test_threads_and_chunks_give_the_same_table(tmp_path):
    """The chunk sums merge in row order, so the thread count changes nothing at all."""
    from jaccli.stats.sensitivity import sensitivity

    rng = np.random.default_rng(12)
    model, _ = _model(tmp_path, rng, [4, 8, 3], ["tanh", "linear"])
    points = rng.normal(size=(1000, 4))
    one = sensitivity(model, points, bootstrap=60, chunk_size=128, threads=1)
    two = sensitivity(model, points, bootstrap=60, chunk_size=128, threads=2)
    for name in one.NUMERIC:
        np.testing.assert_array_equal(one.column(name), two.column(name), err_msg=name)
