"""Numerical derivatives and the comparison behind `jaccli check`."""

import numpy as np
import pytest

from jaccli.verify import numdiff

from . import nets


def tanh_net(seed=0, n=3, h=5, m=2):
    rng = np.random.default_rng(seed)
    W, V = rng.normal(size=(n, h)), rng.normal(size=(h, m))

    def f(X):
        return np.tanh(X @ W) @ V

    def jac(X):
        return np.einsum("nh,jh,hk->nkj", 1 - np.tanh(X @ W) ** 2, W, V)

    def hd(X):
        t = np.tanh(X @ W)
        return np.einsum("nh,jh,hk->nkj", -2 * t * (1 - t * t), W * W, V)

    return f, jac, hd


@pytest.mark.parametrize("method, jtol, htol", [("central", 1e-9, 1e-6), ("richardson", 1e-11, 1e-8)])
def test_input_derivatives_accuracy(method, jtol, htol):
    f, jac, hd = tanh_net()
    X = np.random.default_rng(1).normal(size=(50, 3)) * 2
    J, eJ = numdiff.input_jacobian(f, X, method)
    H, eH = numdiff.input_hessdiag(f, X, method)
    assert J.shape == H.shape == (50, 2, 3)
    np.testing.assert_allclose(J, jac(X), atol=jtol)
    np.testing.assert_allclose(H, hd(X), atol=htol)
    if method == "richardson":
        assert eJ.shape == J.shape and eH.shape == H.shape
        assert eJ.max() < 1e-6 and eH.max() < 1e-5


def test_per_coordinate_step_handles_large_inputs():
    f = lambda X: np.sin(X / 1000.0)  # noqa: E731
    X = np.array([[1e4, 0.0], [-3e4, 5.0]])
    J, err = numdiff.input_jacobian(f, X)
    want = np.zeros((2, 2, 2))
    for j in range(2):
        want[:, j, j] = np.cos(X[:, j] / 1000) / 1000
    np.testing.assert_allclose(J, want, atol=1e-12)


def test_model_evaluated_once_per_coordinate_and_level():
    f, _, _ = tanh_net()
    calls = []

    def counted(X):
        calls.append(len(X))
        return f(X)

    X = np.zeros((40, 3))
    numdiff.input_jacobian(counted, X, "central")
    assert calls == [80] * 3  # batched: all points, both shifts, one call per coordinate
    calls.clear()
    numdiff.input_jacobian(counted, X, "richardson")
    assert calls == [40] + [16 * 40] * 3  # f(x), then every step of the ladder


def test_param_jacobian_against_hand_written():
    rng = np.random.default_rng(2)
    theta = rng.normal(size=2 * 3 + 3 + 3 * 2 + 2)
    X = rng.normal(size=(10, 2))
    want = nets.param_jacobian(theta, X, 3, 2)
    for method in ("central", "richardson"):
        J, err = numdiff.param_jacobian(lambda t: nets.value(t, X, 3, 2), theta, method)
        np.testing.assert_allclose(J, want, atol=1e-9)
        assert numdiff.compare(want, J, err)["passed"]


def test_compare_flags_a_wrong_derivative_and_accepts_a_right_one():
    f, jac, _ = tanh_net()
    X = np.random.default_rng(3).normal(size=(20, 3))
    J, err = numdiff.input_jacobian(f, X)
    good = numdiff.compare(jac(X), J, err)
    assert good["passed"] and good["n_bad"] == 0 and good["max_rel"] < 1e-9
    wrong = jac(X)
    wrong[4, 1, 2] *= 1.001
    bad = numdiff.compare(wrong, J, err)
    assert not bad["passed"] and bad["n_bad"] == 1 and bad["worst"] == (4, 1, 2)
    assert numdiff.compare(wrong, J, err, tol=1e-2)["passed"]
    nan = jac(X)
    nan[0, 0, 0] = np.nan
    assert not numdiff.compare(nan, J, err)["passed"]


def test_compare_relative_to_scale_of_each_output():
    a = np.array([[[1e-8, 0.0]], [[2e-8, 1e-8]]]).reshape(2, 1, 2)
    # Everything is tiny for this output: a 1e-9 absolute disagreement is 5% of its scale.
    assert not numdiff.compare(a, a + 1e-9, None, tol=1e-6)["passed"]
    assert numdiff.compare(a, a + 1e-15, None, tol=1e-6)["passed"]


def test_step_ladder_near_a_kink():
    f = lambda X: np.maximum(X, 0.0) + 0.1 * X ** 2  # noqa: E731
    X = np.array([[1e-3], [1e-5], [-1e-6], [0.5]])
    exact = ((X > 0) + 0.2 * X)[:, None, :]
    J, err = numdiff.input_jacobian(f, X)
    # 1e-3 from the kink: the finer steps of the ladder stay on one side.
    assert J[0, 0, 0] == pytest.approx(exact[0, 0, 0], abs=1e-10)
    # Closer, every central step straddles the kink: the central ladder sees
    # a smooth function of slope ~0.5, but the one-sided ladders do not cross it.
    ladders = numdiff.input_jacobian(f, X, ladders=True)
    central, forward, backward = ladders
    assert central[0][1, 0, 0] == pytest.approx(0.5, abs=0.1)
    assert forward[0][1, 0, 0] == pytest.approx(exact[1, 0, 0], abs=1e-9)
    assert backward[0][2, 0, 0] == pytest.approx(exact[2, 0, 0], abs=1e-9)
    assert numdiff.compare(exact, ladders)["passed"]
    wrong = exact.copy()
    wrong[1] = 0.9
    assert not numdiff.compare(wrong, ladders)["passed"]


def test_ladder_picks_small_steps_for_a_sharp_function():
    f = lambda X: np.tanh(50.0 * X)  # noqa: E731  varies on a scale of 0.02 < the base step
    X = np.linspace(-0.1, 0.1, 9)[:, None]
    J, err = numdiff.input_jacobian(f, X)
    H, errh = numdiff.input_hessdiag(f, X)
    t = np.tanh(50 * X)
    np.testing.assert_allclose(J[:, 0, 0], (50 * (1 - t * t))[:, 0], rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(H[:, 0, 0], (-2 * 2500 * t * (1 - t * t))[:, 0], rtol=1e-5, atol=1e-4)
    assert np.all(np.abs(J[:, 0, 0] - 50 * (1 - t * t)[:, 0]) <= 3 * err[:, 0, 0] + 1e-9)
