"""Confidence intervals (least squares, Rivals & Personnaz): the numerical functions."""

import numpy as np
import pytest
from scipy import stats

from jaccli.stats import confint
from whole_arrays import fit_statistics
from jaccli.errors import JaccliError

from . import nets


def ols_intervals(X, y, Xq, level):
    """Textbook OLS intervals, the way a statistics book writes them."""
    A = np.column_stack([X, np.ones(len(X))])
    Aq = np.column_stack([Xq, np.ones(len(Xq))])
    XtX_inv = np.linalg.inv(A.T @ A)
    beta = XtX_inv @ A.T @ y
    resid = y - A @ beta
    dof = len(y) - A.shape[1]
    s2 = resid @ resid / dof
    t = stats.t.ppf((1 + level) / 2, dof)
    fq = Aq @ beta
    quad = np.einsum("ij,jk,ik->i", Aq, XtX_inv, Aq)
    se = np.sqrt(s2 * quad)
    pse = np.sqrt(s2 * (1 + quad))
    H = np.einsum("ij,jk,ik->i", A, XtX_inv, A)
    return beta, resid, dict(value=fq, se=se, lower=fq - t * se, upper=fq + t * se,
                             pred_lower=fq - t * pse, pred_upper=fq + t * pse), H


def test_linear_model_is_ols():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(30, 3))
    y = X @ [1.0, -2.0, 0.5] + 0.3 + 0.2 * rng.normal(size=30)
    Xq = rng.normal(size=(7, 3))
    beta, resid, want, H = ols_intervals(X, y, Xq, 0.9)
    Z = np.column_stack([X, np.ones(30)])  # d(x W + b)/d(W, b)
    st = fit_statistics(Z, resid)
    assert (st.n_train, st.q, st.rank, st.dof) == (30, 4, 4, 26)
    got = confint.intervals(np.column_stack([Xq, np.ones(7)]) @ beta,
                            np.column_stack([Xq, np.ones(7)]), st, 0.9)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-10, atol=1e-12)
    h = confint.leverages(Z, st)
    np.testing.assert_allclose(h, H, rtol=1e-10)
    assert h.sum() == pytest.approx(4)
    # The exact leave-one-out residual of OLS is r_k / (1 - h_kk).
    k = 5
    keep = np.arange(30) != k
    b_k = np.linalg.lstsq(Z[keep], y[keep], rcond=None)[0]
    loo = confint.loo_residuals(resid, h)
    assert loo[k] == pytest.approx(y[k] - Z[k] @ b_k, rel=1e-10)


def test_chunked_accumulation_equals_one_block():
    rng = np.random.default_rng(2)
    Z = rng.normal(size=(500, 6)) @ np.diag([1, 2, 3, 1e-3, 5, 1])
    r = rng.normal(size=500)
    whole = fit_statistics(Z, r)
    acc = confint.FitAccumulator(6, block_rows=37)
    for i in range(0, 500, 23):
        acc.add(Z[i:i + 23], r[i:i + 23])
    parts = acc.finish()
    np.testing.assert_allclose(parts.singular_values, whole.singular_values, rtol=1e-12)
    assert parts.sse == pytest.approx(whole.sse, rel=1e-12)
    zq = rng.normal(size=(4, 6))
    np.testing.assert_allclose(parts.gain(zq), whole.gain(zq), rtol=1e-10)
    np.testing.assert_allclose(whole.singular_values, np.linalg.svd(Z, compute_uv=False), rtol=1e-12)


def test_nonlinear_delta_method_against_finite_differences():
    rng = np.random.default_rng(3)
    h = 3
    X = rng.uniform(-2, 2, size=(40, 2))
    theta0 = rng.normal(size=2 * h + h + h + 1)
    y = nets.value(theta0, X, h)[:, 0] + 0.05 * rng.normal(size=40)
    theta = nets.levenberg_marquardt(theta0, X, y, h)
    Xq = rng.uniform(-2, 2, size=(5, 2))
    resid = y - nets.value(theta, X, h)[:, 0]

    # Independent: a finite-difference parameter Jacobian and an explicit inverse.
    def fd(points):
        return nets.finite_difference_param_jacobian(theta, points, h)

    Zfd, zfd = fd(X), fd(Xq)
    dof = 40 - theta.size
    s2 = resid @ resid / dof
    se_want = np.sqrt(s2 * np.einsum("ij,jk,ik->i", zfd, np.linalg.inv(Zfd.T @ Zfd), zfd))

    st = fit_statistics(nets.param_jacobian(theta, X, h)[:, 0], resid)
    assert st.rank == theta.size and st.dof == dof
    fq = nets.value(theta, Xq, h)[:, 0]
    got = confint.intervals(fq, nets.param_jacobian(theta, Xq, h)[:, 0], st, 0.95)
    np.testing.assert_allclose(got["se"], se_want, rtol=1e-6)
    t = stats.t.ppf(0.975, dof)
    np.testing.assert_allclose(got["upper"], fq + t * se_want, rtol=1e-6)


def test_rank_deficient_duplicate_hidden_units_warn_and_use_rank():
    rng = np.random.default_rng(4)
    X = rng.uniform(-2, 2, size=(25, 1))
    # Two identical hidden units: W0 = [w, w], b0 = [c, c].
    theta = np.array([0.7, 0.7, 0.1, 0.1, 1.2, -0.4, 0.3])
    Z = nets.param_jacobian(theta, X, 2)[:, 0]
    st = fit_statistics(Z, rng.normal(size=25))
    assert st.q == 7 and st.rank == 4 and st.dof == 21
    assert st.rank_deficient
    (warning,) = st.warnings()
    assert "rank-deficient" in warning and "rank 4 < q = 7" in warning
    assert confint.leverages(Z, st).sum() == pytest.approx(4)


def test_ill_conditioned_warning():
    rng = np.random.default_rng(5)
    Z = rng.normal(size=(50, 3)) * [1.0, 1.0, 1e-10]
    st = fit_statistics(Z, rng.normal(size=50))
    assert st.rank == 3 and st.ill_conditioned
    assert "ill-conditioned" in st.warnings()[0]


def test_no_residual_degrees_of_freedom():
    rng = np.random.default_rng(6)
    with pytest.raises(JaccliError, match="no residual degrees of freedom: N_train = 4 .* = 4"):
        fit_statistics(rng.normal(size=(4, 6)), rng.normal(size=4))


@pytest.mark.parametrize("level", [0.0, 1.0, -0.5, 1.5, float("nan")])
def test_level_outside_open_interval(level):
    st = fit_statistics(np.eye(5, 2) + 1, np.arange(5.0))
    with pytest.raises(JaccliError, match="^level must lie strictly between 0 and 1"):
        confint.intervals(np.zeros(1), np.ones((1, 2)), st, level)


def test_memory_limit_is_explicit(monkeypatch):
    monkeypatch.setattr(confint, "MAX_FACTOR_BYTES", 8 * 100 * 100)
    with pytest.raises(JaccliError, match="101 x 101 triangular factor"):
        confint.FitAccumulator(101)


def test_coverage_simulation():
    """A seeded Monte Carlo: refit a 1-2-1 tanh net on fresh noise 200 times.

    The 95% confidence interval of the regression function must cover the
    true function in about 95% of the fits. With 200 independent draws the
    count of covers is Binomial(200, 0.95) if the intervals are exact:
    mean 190, sd 3.1; [180, 199] holds 99.9% of that distribution. The
    intervals are first-order (delta method), so a small shortfall is
    expected in a nonlinear model; the lower bound 0.88 (176) leaves room
    for it while still failing an interval that is off by a factor of ~1.3.
    """
    rng = np.random.default_rng(7)
    h, N, sigma, draws = 2, 40, 0.1, 200
    true = np.array([1.5, -0.8, 0.2, 0.5, 1.0, 0.7, -0.1])
    X = np.linspace(-2, 2, N)[:, None]
    Xq = np.array([[-1.5], [-0.3], [0.4], [1.7]])
    f_true = nets.value(true, Xq, h)[:, 0]
    covered = np.zeros((draws, len(Xq)), dtype=bool)
    for d in range(draws):
        y = nets.value(true, X, h)[:, 0] + sigma * rng.normal(size=N)
        theta = nets.levenberg_marquardt(true, X, y, h)
        resid = y - nets.value(theta, X, h)[:, 0]
        st = fit_statistics(nets.param_jacobian(theta, X, h)[:, 0], resid)
        ci = confint.intervals(nets.value(theta, Xq, h)[:, 0], nets.param_jacobian(theta, Xq, h)[:, 0], st, 0.95)
        covered[d] = (ci["lower"] <= f_true) & (f_true <= ci["upper"])
    rate = covered.mean(axis=0)
    print("coverage per query point:", rate, "pooled:", covered.mean())
    assert np.all(rate >= 0.88) and np.all(rate <= 0.995)
    assert 0.92 <= covered.mean() <= 0.98


def test_fit_and_intervals_are_the_same_bits_on_any_number_of_threads(tmp_path):
    """The fit and the intervals run on the one chunk loop: threads change nothing."""
    import jaccli
    from conftest import random_model, save_model

    rng = np.random.default_rng(21)
    spec, tensors = random_model(rng, [3, 6, 2], ["tanh", "linear"])
    model = jaccli.load(save_model(tmp_path, spec, tensors))
    X = rng.normal(size=(90, 3))
    Y = model.value(X) + 0.1 * rng.normal(size=(90, 2))
    Xq = rng.normal(size=(40, 3))
    fit1 = confint.fit_model(model, X, Y, chunk_size=7)
    fit2 = confint.fit_model(model, X, Y, chunk_size=90)
    np.testing.assert_allclose(fit1.residuals, fit2.residuals, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(fit1.leverages, fit2.leverages, rtol=1e-10)

    def intervals(threads):
        return np.concatenate([block for _, block in confint.iter_intervals(
            model, fit1, Xq, 0.9, chunk_size=6, threads=threads)])

    one = intervals(1)
    np.testing.assert_array_equal(intervals(2), one)
    np.testing.assert_array_equal(intervals(3), one)
    np.testing.assert_array_equal(confint.model_intervals(model, fit1, Xq[:6], 0.9), one[:6])
