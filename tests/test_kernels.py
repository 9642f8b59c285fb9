"""The engine's fast paths against closed forms, and the compiled tanh against the true tanh.

The closed forms below are written out by hand for a two-hidden-layer tanh
net in extended precision (np.longdouble), apart from jaccli's sweeps: the
engine's paths (the skipped passes, and the compiled one-pass steps
when numba is installed) must agree with them to 1e-13 of
the result's largest entry. The compiled tanh (``activations._tanh_element``
run by ``engine.kernels``) must be within 2 ulp of the true tanh on a dense
grid and on random bit patterns. No timings here: those live in ``make bench``.
"""

import math

import numpy as np
import pytest

from jaccli.engine import kernels
from jaccli.engine import sweeps as engine
from jaccli.engine.activations import ACTIVATIONS, _tanh_element
from jaccli.engine.network import DenseLayer, Network

LD = np.longdouble
EXTENDED = np.finfo(LD).nmant >= 63  # x87 80-bit: 11 more bits than float64
RTOL = 1e-13


def _numba():
    return pytest.importorskip("numba")


# ---------------------------------------------------------------- closed forms


def _net(rng, n, widths, m, scaled=True):
    dims = [n, *widths, m]
    kernels_ = [rng.normal(size=(a, b)) * (1.5 / np.sqrt(a)) for a, b in zip(dims[:-1], dims[1:])]
    biases = [rng.normal(size=b) * 0.5 for b in dims[1:]]
    acts = ["tanh"] * len(widths) + ["linear"]
    layers = [DenseLayer(k, b, ACTIVATIONS[a], {}) for k, b, a in zip(kernels_, biases, acts)]
    offset = rng.normal(size=n) if scaled else np.zeros(n)
    inv = rng.uniform(0.5, 2.0, size=n) if scaled else np.ones(n)
    out_offset = rng.normal(size=m) if scaled else np.zeros(m)
    out_scale = rng.uniform(0.5, 2.0, size=m) if scaled else np.ones(m)
    return Network(layers, offset, inv, out_offset, out_scale)


def closed_forms(net, x):
    """(value, Jacobian, Hessian) of a two-hidden-layer tanh net with a linear output, by hand.

    y = c * (w3^T tanh(W2^T tanh(W1^T u + b1) + b2) + b3) + offset, u = (x - o) * inv:
    J = c w3^T S2 W2^T S1 W1^T D and
    H_k = D [sum_v c w3_vk (t2''_v g_v g_v^T + t2'_v sum_u W2_uv t1''_u W1_u W1_u^T)] D,
    with g_v = W1 S1 W2[:, v] and D = diag(inv).
    """
    (W1, b1), (W2, b2), (W3, b3) = [(LD(1) * l.kernel.astype(LD), l.bias.astype(LD)) for l in net.layers]
    inv, c = net.in_inv_scale.astype(LD), net.out_scale.astype(LD)
    u = (x.astype(LD) - net.in_offset.astype(LD)) * inv
    t1 = np.tanh(u @ W1 + b1)
    t2 = np.tanh(t1 @ W2 + b2)
    d1, d2 = 1 - t1 ** 2, 1 - t2 ** 2
    dd1, dd2 = -2 * t1 * d1, -2 * t2 * d2
    value = (t2 @ W3 + b3) * c + net.out_offset.astype(LD)
    g = np.einsum("iu,pu,uv->piv", W1, d1, W2)  # dz2_v/du_i, (N, n, d2)
    jac = np.einsum("vk,pv,piv->pki", W3 * c, d2, g) * inv
    outer = np.einsum("pv,piv,pjv->pvij", dd2, g, g)
    inner = np.einsum("uv,pu,iu,ju->pvij", W2, dd1, W1, W1)
    hess = np.einsum("vk,pvij->pkij", W3 * c, outer + d2[:, :, None, None] * inner)
    hess = hess * inv[:, None] * inv[None, :]
    return value, jac, hess


def _close(actual, expected):
    expected = np.asarray(expected, dtype=np.float64)
    scale = float(np.abs(expected).max())
    np.testing.assert_allclose(actual, expected, rtol=0, atol=RTOL * scale)


CASES = [  # (n, hidden widths, m): m < n (reverse Jacobian), m > n (tangents)
    (5, (9, 7), 2),
    (4, (8, 6), 1),
    (2, (6, 5), 3),
]


@pytest.fixture(params=["numpy", "numba"])
def kernel_mode(request, monkeypatch):
    """Each test twice: NumPy passes, and the compiled one-pass steps on every chunk."""
    if request.param == "numba":
        _numba()
        monkeypatch.setattr(kernels, "MIN_VALUES", 0)
    monkeypatch.setenv("JACCLI_KERNELS", request.param)
    return request.param


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{'-'.join(map(str, c[1]))}-{c[2]}")
def test_every_quantity_against_closed_forms(case, kernel_mode):
    n, widths, m = case
    rng = np.random.default_rng(sum(widths) * 31 + n + m)
    net = _net(rng, n, widths, m)
    x = rng.normal(size=(40, n)) * 1.5
    value, jac, hess = closed_forms(net, x)
    work = engine.Workspace()
    _close(engine.value(net, x, work=work), value)
    _close(engine.jacobian(net, x, work=work), jac)
    _close(engine.jacobian_forward(net, x, work=work), jac)
    _close(engine.jacobian_reverse(net, x, work=work), jac)
    _close(engine.hessian(net, x, work=work), hess)
    _close(engine.hessdiag(net, x, work=work), np.diagonal(hess, axis1=-2, axis2=-1))
    _close(engine.laplacian(net, x, work=work), np.trace(hess, axis1=-2, axis2=-1))
    both = engine.together(net, x, ("value", "jacobian", "hessian"), work=work)
    _close(both["value"], value)
    _close(both["jacobian"], jac)
    _close(both["hessian"], hess)
    first = engine.together(net, x, ("value", "jacobian"), work=work)
    _close(first["jacobian"], jac)


def test_a_chunk_below_min_values_or_a_float32_chunk_takes_numpy(monkeypatch):
    monkeypatch.setenv("JACCLI_KERNELS", "numba")
    tanh = ACTIVATIONS["tanh"]
    assert kernels.fused_step(tanh, (10, 8)) is None  # 80 values < MIN_VALUES
    assert kernels.fused_step(ACTIVATIONS["gelu"], (1 << 20, 8)) is None  # no element rule
    monkeypatch.setenv("JACCLI_KERNELS", "numpy")
    assert kernels.fused_step(tanh, (1 << 20, 64)) is None


def test_auto_compiles_only_for_jobs_that_repay_the_compile(monkeypatch):
    tanh = ACTIVATIONS["tanh"]
    monkeypatch.setenv("JACCLI_KERNELS", "auto")
    monkeypatch.setattr(kernels, "_compiled", {"tanh": "compiled"})
    for simd, smallest in ((False, 1 << 26), (True, 1 << 29)):  # values a layer (points x 64)
        monkeypatch.setattr(kernels, "numpy_tanh_is_simd", lambda: simd)
        with kernels.job(smallest // 64 - 1):
            assert kernels.fused_step(tanh, (2048, 64)) is None  # too small to repay the compile
        with kernels.job(smallest // 64):
            assert kernels.fused_step(tanh, (2048, 64)) == "compiled"


def test_a_mistyped_mode_is_an_error(monkeypatch):
    from jaccli.errors import JaccliError

    monkeypatch.setenv("JACCLI_KERNELS", "fast")
    with pytest.raises(JaccliError, match="JACCLI_KERNELS"):
        kernels.mode()


def test_the_l2_cache_size_is_read_from_sysfs(tmp_path):
    from jaccli.engine.chunks import l2_cache_bytes

    for index, (level, size) in enumerate([("1", "32K"), ("2", "1024K"), ("3", "32768K")]):
        (tmp_path / f"index{index}").mkdir()
        (tmp_path / f"index{index}" / "level").write_text(level + "\n")
        (tmp_path / f"index{index}" / "size").write_text(size + "\n")
    assert l2_cache_bytes(base=str(tmp_path)) == 1 << 20
    assert l2_cache_bytes(default=123, base=str(tmp_path / "missing")) == 123


# ---------------------------------------------------------------- the compiled tanh


def _ulps(got, reference):
    """|got - reference| in units of the float64 spacing at the reference."""
    ref64 = reference.astype(np.float64)
    return np.abs(got.astype(LD) - reference) / np.spacing(np.abs(ref64)).astype(LD)


def _compiled_tanh():
    numba = _numba()
    rule, exp = kernels.compiled_element(_tanh_element)

    @numba.njit(**kernels.OPTIONS)
    def run(x, t, d1, d2):
        for i in range(x.size):
            t[i], d1[i], d2[i] = rule(x[i], exp)

    def tanh(x):
        t, d1, d2 = np.empty_like(x), np.empty_like(x), np.empty_like(x)
        run(x, t, d1, d2)
        return t, d1, d2

    return tanh, exp


def _grid_and_bits():
    rng = np.random.default_rng(20231)
    bits = rng.integers(0, 2 ** 64, 400_000, dtype=np.uint64).view(np.float64)
    tiny = np.geomspace(5e-324, 1.0, 100_000)
    return np.concatenate([
        np.linspace(-25.0, 25.0, 500_001),  # every region, both signs
        np.linspace(0.5, 0.75, 100_001), -np.linspace(0.5, 0.75, 100_001),  # around the cut
        np.linspace(17.0, 23.0, 20_001), np.linspace(340.0, 360.0, 2_001),  # where tanh -> 1
        tiny, -tiny, rng.uniform(-1.0, 1.0, 200_000), rng.uniform(-20.0, 20.0, 200_000),
        bits[np.isfinite(bits)]])


@pytest.mark.skipif(not EXTENDED, reason="needs an 80-bit np.longdouble as the reference")
def test_compiled_tanh_within_two_ulp_on_a_dense_grid_and_random_bits():
    tanh, _ = _compiled_tanh()
    x = _grid_and_bits()
    t, d1, d2 = tanh(x)
    reference = np.tanh(x.astype(LD))
    assert float(_ulps(t, reference).max()) <= 2.0
    moderate = np.abs(x) < 300  # 1/cosh^2 underflows beyond
    sech2 = 1 / np.cosh(x[moderate].astype(LD)) ** 2
    assert float(_ulps(d1[moderate], sech2).max()) <= 4.0
    second = -2 * reference[moderate] * sech2
    assert float(_ulps(d2[moderate], second).max()) <= 6.0


def test_compiled_tanh_special_values():
    tanh, _ = _compiled_tanh()
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, -5e-324, 1e300, -1e300])
    t, d1, d2 = tanh(x)
    np.testing.assert_array_equal(t[:4], [0.0, -0.0, 1.0, -1.0])
    assert np.signbit(t[1]) and np.isnan(t[4])
    np.testing.assert_array_equal(t[5:], [5e-324, -5e-324, 1.0, -1.0])
    np.testing.assert_array_equal(d1[[0, 1]], [1.0, 1.0])
    assert (d1[[2, 3, 7, 8]] >= 0).all() and (d1[[2, 3, 7, 8]] < 1e-300).all()


def test_compiled_tanh_against_mpmath_near_the_cut_and_zero():
    """An independent reference where the two branches meet and where tanh(x) ~ x."""
    mpmath = pytest.importorskip("mpmath")
    tanh, _ = _compiled_tanh()
    x = np.concatenate([np.linspace(0.6, 0.65, 1500), -np.linspace(0.6, 0.65, 1500),
                        np.geomspace(1e-12, 0.6, 1000)])
    t = tanh(x)[0]
    with mpmath.workdps(40):
        for value, got in zip(x, t):
            exact = mpmath.tanh(mpmath.mpf(float(value)))
            ulp = math.ulp(float(exact))
            assert abs(mpmath.mpf(float(got)) - exact) / ulp <= 2


def test_the_vectorised_exp_is_within_1_7_units_of_roundoff():
    if not EXTENDED:
        pytest.skip("needs an 80-bit np.longdouble as the reference")
    _, exp = _compiled_tanh()
    y = np.concatenate([np.linspace(-700.0, 0.0, 700_001), np.linspace(-1.0, 0.0, 100_001)])
    got = np.array([exp(v) for v in y[::50]])
    reference = np.exp(y[::50].astype(LD))
    assert float((np.abs(got.astype(LD) - reference) / reference).max()) <= 1.7 * 2.0 ** -53


def test_the_element_rule_in_plain_python_matches_math_tanh():
    """The same rule, run by Python with libm's exp: the formulas, not the compiler."""
    for x in np.linspace(-30.0, 30.0, 4001):
        t, d1, d2 = _tanh_element(float(x), math.exp)
        expected = math.tanh(x)
        assert abs(t - expected) <= 2 * math.ulp(expected)
        assert abs(d1 - (1 - expected ** 2)) <= 1e-15
        assert abs(d2 - (-2 * expected * (1 - expected ** 2))) <= 1e-15
