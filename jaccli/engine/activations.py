"""Every activation's value, first and second derivative, side by side.

One table, ``ACTIVATIONS``: adding an activation is one function and one
entry. Each rule takes the pre-activation ``z`` (any shape) and its
parameters and returns ``(s(z), s'(z), s''(z))``; the three share their
intermediate results, which is why they live in one function.

A few common activations also have an ``in_place`` variant, the same
formulas written into reusable buffers (``scratch(key)`` gives one shaped
like z) so that the engine's hot loops make no fresh temporaries; it
overwrites z and returns None for a derivative that is constant (s' = 1,
s'' = 0) or for an order it does not cover (then the plain rule is used).

Vector entries (softmax, log_softmax, layer_norm) couple their units: instead
of s' and s'' their rule returns ``(s(z), state, None)``, where ``state`` is
what their derivative maps need (for softmax, p itself), and the maps are
given (``VectorRule``): the Jacobian-vector product, the vector-Jacobian
product, the second-order tangent term and the curvature contracted with
adjoint weights. An elementwise entry answers the same four questions from s'
and s'' (``Activation.jvp`` and friends), so the sweeps written with them have
one path for both kinds; they may sit on any layer.

At a kink (``Activation.kinks``: where s' or s'' jumps) the derivatives are
the ones torch's autograd gives there, so that a file is checked against its
framework at every point: relu, leaky_relu, prelu, elu and selu take the left
first derivative at 0 (relu's is 0); hardtanh, relu6 and hardsigmoid are flat
at their kinks (s' = 0: the slope holds on the open interval only); hardswish
takes the constant piece at both kinks (s'(-3) = 0, s'(3) = 1) and s'' = 0
there; elu, selu and celu take s'' = 0 at 0; softplus with a threshold is linear where
beta z > threshold and has s'' = 0 from the threshold on. The second derivative
of a piecewise-linear function is 0.
"""

import math
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional

import numpy as np

SQRT_2_OVER_PI = 0.7978845608028654
INV_SQRT_2 = 0.7071067811865476
INV_SQRT_2PI = 0.3989422804014327
GELU_TANH_CUBIC = 0.044715
# Klambauer et al. (2017), as in Keras, PyTorch and JAX.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


@dataclass(frozen=True)
class VectorRule:
    """The derivatives of a vector activation s(z) (z: (N, d)), as maps of its ``state``
    (what the rule returned beside s(z)).

    Tangents t are (N, n, d) (one direction per row), adjoints A (N, m, d).
    """

    jvp: Callable  # jvp(state, t) -> ds[t], (N, n, d)
    vjp: Callable  # vjp(state, A) -> A ds/dz, (N, m, d)
    second: Callable  # second(state, t, ds) -> d2s[t, t] per direction, (N, n, d)
    curvature: Callable  # curvature(state, t, c) -> t (sum_u c_u d2s_u/dz2) t^T, (N, n, n)


@dataclass(frozen=True)
class Activation:
    name: str
    rule: Callable  # rule(z, **params) -> (value, first, second); a vector rule: (value, state, None)
    params: Dict[str, float] = field(default_factory=dict)  # name -> default
    in_place: Optional[Callable] = None  # in_place(z, order, scratch, **params), see above
    vector: Optional[VectorRule] = None  # set for a function that couples its units
    # kinks(**params) -> the z where s' or s'' jumps (relu's 0, hardtanh's min_val and
    # max_val): a finite difference whose stencil crosses one does not measure the
    # derivative (``jaccli check``)
    kinks: Optional[Callable] = None
    # valid(**params) -> None, or why these parameter values are refused (one line)
    valid: Optional[Callable] = None
    # Per-unit parameters that are tensors of the file (prelu's slope), name ->
    # derivative(z, **params): ds/dparam at z, each unit's s depending on its own value
    tensors: Dict[str, Callable] = field(default_factory=dict)
    # element(x, exp) -> (s, s', s'') at one float64 x, in branch-free arithmetic with
    # ``exp`` given: the rule engine.kernels compiles into a one-pass step
    element: Optional[Callable] = None

    @property
    def elementwise(self):
        return self.vector is None

    def kink_points(self, params):
        """The z where s' or s'' jumps, with these parameters (empty: a smooth function)."""
        return tuple(self.kinks(**params)) if self.kinks else ()

    # The four maps the sweeps use; s1, s2 are s'(z), s''(z) of an elementwise rule,
    # s1 the state of a vector rule.
    def jvp(self, s, s1, t):
        return self.vector.jvp(s1, t) if self.vector else s1[:, None, :] * t

    def vjp(self, s, s1, adjoint):
        return self.vector.vjp(s1, adjoint) if self.vector else adjoint * s1[:, None, :]

    def second(self, s, s1, s2, t, dt):
        """d2s[t, t] per direction (the Taylor term; ``dt`` = jvp(t) already computed)."""
        return self.vector.second(s1, t, dt) if self.vector else s2[:, None, :] * t * t

    def curvature(self, s, s1, s2, t, weights):
        """t (sum_u c_u d2s_u/dz2) t^T (N, n, n) for adjoint weights c (N, d)."""
        if self.vector:
            return self.vector.curvature(s1, t, weights)
        return (t * (weights * s2)[:, None, :]) @ t.transpose(0, 2, 1)


def _linear(z):
    return z, np.ones_like(z), np.zeros_like(z)


def _linear_in_place(z, order, scratch):
    return z, None, None


def _sigmoid(z):
    # sigmoid(z) and sigmoid(-z) = 1 - sigmoid(z) each to full relative accuracy
    # (``_logistic``): 0.5 (1 + tanh(z / 2)) or 1 - s would give 0 or lose digits in
    # the tails, where a classifier's small probabilities live.
    _, s, complement = _logistic(z)
    d1 = s * complement
    return s, d1, -d1 * np.tanh(0.5 * z)  # 1 - 2 s = -tanh(z / 2), which keeps its digits near 0


def _tanh(z):
    t = np.tanh(z)
    d1 = 1.0 - t * t
    return t, d1, -2.0 * t * d1


def _tanh_in_place(z, order, scratch):
    t = np.tanh(z, out=z)
    if order == 0:
        return t, None, None
    d1 = scratch("s1")
    np.multiply(t, t, out=d1)
    np.subtract(1.0, d1, out=d1)
    if order == 1:
        return t, d1, None
    d2 = scratch("s2")
    np.multiply(t, d1, out=d2)
    d2 *= -2.0
    return t, d1, d2


# tanh for the compiled one-pass step (``_tanh_element``). |x| < 0.625: Cephes'
# odd rational x + x^3 P(x^2) / Q(x^2); beyond: 1 - q with q = 2e / (1 + e),
# e = exp(-2|x|) (|x| capped at 350, where e is still a normal float64). Within
# 2 ulp of the correctly rounded value on every float64 (the analysis and the
# tests are in docs/performance.md and tests/test_kernels.py); s' = 1 - t^2
# below the cut and q (2 - q) above it, which keeps its relative accuracy
# where t is near 1.
TANH_CUT = 0.625
TANH_P = (-9.64399179425052238628e-1, -9.92877231001918586564e1, -1.61468768441708447952e3)
TANH_Q = (1.12811678491632931402e2, 2.23548839060100448583e3, 4.84406305325125486048e3)


def _tanh_element(x, exp):
    a = abs(x)
    e = exp(-2.0 * min(a, 350.0))
    s = x * x
    small = a < TANH_CUT
    p0, p1, p2 = TANH_P
    q0, q1, q2 = TANH_Q
    numerator = x * s * ((p0 * s + p1) * s + p2) if small else 2.0 * e
    denominator = ((s + q0) * s + q1) * s + q2 if small else 1.0 + e
    ratio = numerator / denominator  # one division serves both branches
    tail = 1.0 - ratio
    t = x + ratio if small else (tail if x >= 0.0 else (-tail if x < 0.0 else x))  # NaN stays NaN
    t = x if a == 0.0 else t  # tanh(-0.0) = -0.0
    d1 = 1.0 - t * t if small else ratio * (2.0 - ratio)
    return t, d1, -2.0 * t * d1


def _relu(z):
    positive = z > 0
    return np.where(positive, z, 0.0), positive.astype(z.dtype), np.zeros_like(z)


def _leaky_relu(z, alpha):
    positive = z > 0
    slope = np.where(positive, 1.0, alpha).astype(z.dtype)
    return slope * z, slope, np.zeros_like(z)


def _prelu(z, slope, slope_scale):
    # the slope is slope_scale times the file's tensor (-1: tf2onnx stores Keras's -alpha)
    return _leaky_relu(z, slope_scale * slope)


def _prelu_slope_derivative(z, slope, slope_scale):
    return slope_scale * np.minimum(z, 0.0)


def _elu(z, alpha):
    positive = z > 0
    below = np.minimum(z, 0.0)  # the min keeps exp from overflowing
    e = alpha * np.exp(below)
    # at 0 the left s' (alpha) and s'' = 0, as torch's autograd; expm1 keeps the
    # value's digits near 0, where e - alpha would cancel
    return (np.where(positive, z, alpha * np.expm1(below)), np.where(positive, 1.0, e).astype(z.dtype),
            np.where(z < 0, e, 0.0).astype(z.dtype))


def _selu(z):
    value, first, second = _elu(z, SELU_ALPHA)
    return SELU_SCALE * value, SELU_SCALE * first, SELU_SCALE * second


def _logistic(u):
    """(log1p(exp(-|u|)), sigmoid(u), sigmoid(-u)), each to full relative accuracy for
    any u: softplus(u) = max(u, 0) + the first never overflows, and sigmoid(+-u) =
    exp(min(+-u, 0) - the first) keeps the tail where 1 - sigmoid would cancel."""
    tail = np.log1p(np.exp(-np.abs(u)))
    return tail, np.exp(np.minimum(u, 0.0) - tail), np.exp(np.minimum(-u, 0.0) - tail)


def _sech2(x):
    """1 - tanh(x)^2 as 4e / (1 + e)^2, e = exp(-2|x|): accurate where tanh is near +-1."""
    e = np.exp(-2.0 * np.minimum(np.abs(x), 400.0))  # exp(-800) is 0 already
    return 4.0 * e / ((1.0 + e) * (1.0 + e))


def _softplus(z, beta, threshold):
    # log(1 + exp(u)) / beta, u = beta z (beta > 0); torch's threshold: z itself where
    # u > threshold, and s'' = 0 from it on
    u = beta * z
    tail, up, down = _logistic(u)
    linear = u > threshold
    value = np.maximum(z, 0.0) + tail / beta
    return (np.where(linear, z, value), np.where(linear, 1.0, up),
            np.where(u < threshold, beta * up * down, 0.0))


def _softplus_valid(beta, threshold):
    return None if beta > 0 else f"softplus's beta must be > 0, not {beta:g}"


def _softsign(z):
    d = 1.0 + np.abs(z)
    d1 = 1.0 / (d * d)
    return z / d, d1, -2.0 * np.sign(z) * d1 / d


def _silu(z):
    _, s, complement = _logistic(z)
    ds = s * complement
    return z * s, s + z * ds, ds * (2.0 - z * np.tanh(0.5 * z))


def _gelu(z):
    from scipy.special import erf  # numpy has no erf; scipy.special loads in ~50 ms

    cdf = 0.5 * (1.0 + erf(z * INV_SQRT_2))
    pdf = INV_SQRT_2PI * np.exp(-0.5 * z * z)
    return z * cdf, cdf + z * pdf, pdf * (2.0 - z * z)


def _gelu_in_place(z, order, scratch):
    if order == 2:
        return None  # the plain rule
    from scipy.special import erf

    cdf = scratch("cdf")
    np.multiply(z, INV_SQRT_2, out=cdf)
    erf(cdf, out=cdf)
    cdf += 1.0
    cdf *= 0.5
    d1 = None
    if order == 1:
        d1 = scratch("s1")
        np.multiply(z, z, out=d1)
        d1 *= -0.5
        np.exp(d1, out=d1)
        d1 *= z
        d1 *= INV_SQRT_2PI
        d1 += cdf  # cdf + z pdf
    np.multiply(z, cdf, out=z)
    return z, d1, None


def _gelu_tanh(z):
    # 0.5 z (1 + tanh(u)), u = c (z + k z^3): Hendrycks & Gimpel's approximation.
    u = SQRT_2_OVER_PI * (z + GELU_TANH_CUBIC * z ** 3)
    du = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_TANH_CUBIC * z * z)
    d2u = SQRT_2_OVER_PI * 6.0 * GELU_TANH_CUBIC * z
    t = np.tanh(u)
    sech2 = 1.0 - t * t
    value = 0.5 * z * (1.0 + t)
    first = 0.5 * (1.0 + t) + 0.5 * z * sech2 * du
    second = sech2 * du + 0.5 * z * sech2 * (d2u - 2.0 * t * du * du)
    return value, first, second


def _hardtanh(z, min_val, max_val):
    inside = (z > min_val) & (z < max_val)
    return np.clip(z, min_val, max_val), inside.astype(z.dtype), np.zeros_like(z)


def _hardtanh_valid(min_val, max_val):
    return None if min_val <= max_val else \
        f"hardtanh's min_val ({min_val:g}) is above its max_val ({max_val:g})"


def _relu6(z):
    return _hardtanh(z, 0.0, 6.0)


def _hardsigmoid_kinks(alpha, beta):
    """Where alpha z + beta is 0 and 1, in increasing order."""
    return tuple(sorted((-beta / alpha, (1.0 - beta) / alpha)))


def _hardsigmoid(z, alpha, beta):
    # max(0, min(1, alpha z + beta)) written alpha (z - z0), z0 = -beta / alpha (torch's
    # (z + 3) / 6: exact beside the lower kink); slope alpha on the open interval only
    low, high = _hardsigmoid_kinks(alpha, beta)
    inside = (z > low) & (z < high)
    value = np.clip(alpha * (z + beta / alpha), 0.0, 1.0)
    return value, np.where(inside, alpha, 0.0).astype(z.dtype), np.zeros_like(z)


def _hardsigmoid_valid(alpha, beta):
    return None if alpha != 0 else "hardsigmoid's alpha must not be 0"


def _hardswish(z):
    # z relu6(z + 3) / 6 (torch, ONNX HardSwish, Keras hard_silu); s' from the constant
    # pieces at both kinks, as torch's autograd
    inside = (z > -3.0) & (z < 3.0)
    value = z * (np.clip(z + 3.0, 0.0, 6.0) / 6.0)
    first = np.where(z <= -3.0, 0.0, np.where(z < 3.0, (2.0 * np.clip(z, -3.0, 3.0) + 3.0) / 6.0, 1.0))
    return value, first.astype(z.dtype), np.where(inside, 1.0 / 3.0, 0.0).astype(z.dtype)


def _mish(z):
    # z tanh(sp), sp = softplus(z); t' = sech^2(sp) sigmoid(z), with z sech^2 formed first
    # so that nothing overflows
    tail, sig, _ = _logistic(z)
    sp = np.maximum(z, 0.0) + tail
    t, g = np.tanh(sp), _sech2(sp)
    zg = z * g
    return z * t, t + zg * sig, sig * (2.0 * g + zg * (1.0 - sig - 2.0 * t * sig))


def _celu(z, alpha):
    # max(0, z) + min(0, alpha expm1(z / alpha)); s'' = 0 at 0, as torch's autograd
    negative = z < 0
    e = np.exp(np.minimum(z, 0.0) / alpha)
    value = np.where(negative, alpha * np.expm1(np.minimum(z, 0.0) / alpha), z)
    return (value, np.where(negative, e, 1.0).astype(z.dtype),
            np.where(negative, e / alpha, 0.0).astype(z.dtype))


def _celu_valid(alpha):
    return None if alpha > 0 else f"celu's alpha must be > 0, not {alpha:g}"


def _log_sigmoid(z):
    # -softplus(-z) = min(z, 0) - log1p(exp(-|z|))
    tail, up, down = _logistic(z)
    return np.minimum(z, 0.0) - tail, down, -up * down


def _tanhshrink(z):
    # z - tanh z: below TANH_CUT as -z^3 P(z^2) / Q(z^2) (the rational of _tanh_element),
    # which keeps its relative accuracy where z - tanh z cancels
    t = np.tanh(z)
    near = np.abs(z) < TANH_CUT
    x = np.where(near, z, 0.0)
    s = x * x
    p0, p1, p2 = TANH_P
    q0, q1, q2 = TANH_Q
    small = -x * s * ((p0 * s + p1) * s + p2) / (((s + q0) * s + q1) * s + q2)
    value = np.where(near, small, z - t)
    return value, t * t, 2.0 * t * _sech2(z)


def _at_zero(**params):
    return (0.0,)


def _sin(z):
    s = np.sin(z)
    return s, np.cos(z), -s


def _exp(z):
    e = np.exp(z)
    return e, e, e


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    p = e / e.sum(axis=-1, keepdims=True)
    return p, p, None


def _softmax_jvp(p, t):
    # dp = p * (t - p.t): the Jacobian diag(p) - p p^T applied to each direction
    return p[:, None, :] * (t - np.einsum("njd,nd->nj", t, p)[:, :, None])


def _softmax_vjp(p, adjoint):
    # the Jacobian is symmetric, so A J = (A - A.p) * p
    return (adjoint - np.einsum("nkd,nd->nk", adjoint, p)[:, :, None]) * p[:, None, :]


def _softmax_second(p, t, dp):
    # d2p_u = dp_u (t_u - p.t) - p_u (dp.t), for each direction
    centred = t - np.einsum("njd,nd->nj", t, p)[:, :, None]
    return dp * centred - p[:, None, :] * np.einsum("njd,njd->nj", dp, t)[:, :, None]


def _softmax_curvature(p, t, c):
    # sum_u c_u d2p_u/dz2 = diag(q) - q p^T - p q^T with q = p (c - c.p)
    q = p * (c - np.einsum("nd,nd->n", c, p)[:, None])
    tq = np.einsum("njd,nd->nj", t, q)
    tp = np.einsum("njd,nd->nj", t, p)
    cross = tq[:, :, None] * tp[:, None, :]
    return (t * q[:, None, :]) @ t.transpose(0, 2, 1) - cross - cross.transpose(0, 2, 1)


SOFTMAX_RULE = VectorRule(_softmax_jvp, _softmax_vjp, _softmax_second, _softmax_curvature)


def _log_softmax(z):
    # z - logsumexp(z), the max taken out first: exact where softmax underflows to 0
    shifted = z - z.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    total = e.sum(axis=-1, keepdims=True)
    return shifted - np.log(total), e / total, None  # the state: p = softmax(z)


def _log_softmax_jvp(p, t):
    # dl = t - p.t: the Jacobian I - 1 p^T applied to each direction
    return t - np.einsum("njd,nd->nj", t, p)[:, :, None]


def _log_softmax_vjp(p, adjoint):
    # A (I - 1 p^T) = A - (A 1) p^T
    return adjoint - adjoint.sum(axis=-1)[:, :, None] * p[:, None, :]


def _log_softmax_second(p, t, dl):
    # every unit has the Hessian -(diag(p) - p p^T): d2l_u[t, t] = -p.(t - p.t)^2, dl = t - p.t
    curvature = -np.einsum("njd,nd->nj", dl * dl, p)
    return np.repeat(curvature[:, :, None], t.shape[-1], axis=2)


def _log_softmax_curvature(p, t, c):
    # sum_u c_u d2l_u/dz2 = -(sum c) (diag(p) - p p^T)
    tp = np.einsum("njd,nd->nj", t, p)
    inner = (t * p[:, None, :]) @ t.transpose(0, 2, 1) - tp[:, :, None] * tp[:, None, :]
    return -c.sum(axis=-1)[:, None, None] * inner


LOG_SOFTMAX_RULE = VectorRule(_log_softmax_jvp, _log_softmax_vjp, _log_softmax_second,
                              _log_softmax_curvature)


def _layer_norm(z, eps):
    # (z - mean) / sqrt(var + eps) over the units, var the biased one (as torch, Keras, ONNX)
    centred = z - z.mean(axis=-1, keepdims=True)
    r = 1.0 / np.sqrt((centred * centred).mean(axis=-1) + eps)
    y = centred * r[:, None]
    return y, (y, r), None  # the state: the output y and r = 1/sqrt(var + eps), (N,)


def _layer_norm_valid(eps):
    return None if eps >= 0 else f"layer_norm's eps must be >= 0, not {eps:g}"


def _centred(t):
    return t - t.mean(axis=-1, keepdims=True)


def _layer_norm_jvp(state, t):
    # dy = r (t_c - y (y.t) / d): y is centred, so y.t_c = y.t
    y, r = state
    d = y.shape[-1]
    yt = np.einsum("njd,nd->nj", t, y)
    return r[:, None, None] * (_centred(t) - yt[:, :, None] * y[:, None, :] / d)


def _layer_norm_vjp(state, adjoint):
    # the Jacobian r (P - y y^T / d) is symmetric (P the centring)
    return _layer_norm_jvp(state, adjoint)


def _layer_norm_second(state, t, dy):
    # d2y[t, t] = r^2 (-2 a t_c / d + y (3 a^2 / d^2 - |t_c|^2 / d)), a = y.t
    y, r = state
    d = y.shape[-1]
    tc = _centred(t)
    a = np.einsum("njd,nd->nj", t, y)
    norm = np.einsum("njd,njd->nj", tc, tc)
    bracket = -2.0 * a[:, :, None] * tc / d + y[:, None, :] * (3.0 * a * a / d ** 2 - norm / d)[:, :, None]
    return (r * r)[:, None, None] * bracket


def _layer_norm_curvature(state, t, c):
    # the polarised second(): for directions t_j, t_k with a = T y, b = T c_c, g = c.y
    #   r^2 (-(a b^T + b a^T) / d + g (3 a a^T / d^2 - T_c T_c^T / d))
    y, r = state
    d = y.shape[-1]
    tc = _centred(t)
    a = np.einsum("njd,nd->nj", t, y)
    b = np.einsum("njd,nd->nj", t, _centred(c))
    g = np.einsum("nd,nd->n", c, y)
    cross = a[:, :, None] * b[:, None, :]
    gram = tc @ tc.transpose(0, 2, 1)
    inner = -(cross + cross.transpose(0, 2, 1)) / d + g[:, None, None] * (
        3.0 * a[:, :, None] * a[:, None, :] / d ** 2 - gram / d)
    return (r * r)[:, None, None] * inner


LAYER_NORM_RULE = VectorRule(_layer_norm_jvp, _layer_norm_vjp, _layer_norm_second, _layer_norm_curvature)

ACTIVATIONS: Dict[str, Activation] = {
    a.name: a
    for a in [
        Activation("linear", _linear, in_place=_linear_in_place),
        Activation("sigmoid", _sigmoid),
        Activation("tanh", _tanh, in_place=_tanh_in_place, element=_tanh_element),
        Activation("relu", _relu, kinks=_at_zero),
        Activation("leaky_relu", _leaky_relu, {"alpha": 0.01}, kinks=_at_zero),
        Activation("prelu", _prelu, {"slope_scale": 1.0}, kinks=_at_zero,
                   tensors={"slope": _prelu_slope_derivative}),
        Activation("elu", _elu, {"alpha": 1.0}, kinks=_at_zero),
        Activation("celu", _celu, {"alpha": 1.0}, kinks=_at_zero, valid=_celu_valid),
        Activation("selu", _selu, kinks=_at_zero),
        Activation("softplus", _softplus, {"beta": 1.0, "threshold": math.inf},
                   kinks=lambda beta, threshold: (threshold / beta,) if math.isfinite(threshold) else (),
                   valid=_softplus_valid),
        Activation("hardtanh", _hardtanh, {"min_val": -1.0, "max_val": 1.0},
                   kinks=lambda min_val, max_val: (min_val, max_val), valid=_hardtanh_valid),
        Activation("relu6", _relu6, kinks=lambda: (0.0, 6.0)),  # hardtanh(0, 6)
        Activation("hardsigmoid", _hardsigmoid, {"alpha": 1.0 / 6.0, "beta": 0.5},
                   kinks=_hardsigmoid_kinks, valid=_hardsigmoid_valid),
        Activation("hardswish", _hardswish, kinks=lambda: (-3.0, 3.0)),
        Activation("mish", _mish),
        Activation("log_sigmoid", _log_sigmoid),
        Activation("tanhshrink", _tanhshrink),
        Activation("softsign", _softsign),
        Activation("silu", _silu),
        Activation("gelu", _gelu, in_place=_gelu_in_place),
        Activation("gelu_tanh", _gelu_tanh),
        Activation("sin", _sin),
        Activation("exp", _exp),
        Activation("softmax", _softmax, vector=SOFTMAX_RULE),
        Activation("log_softmax", _log_softmax, vector=LOG_SOFTMAX_RULE),
        Activation("layer_norm", _layer_norm, {"eps": 1e-5}, vector=LAYER_NORM_RULE,
                   valid=_layer_norm_valid),
    ]
}
ALIASES = {"identity": "linear", "swish": "silu", "hard_sigmoid": "hardsigmoid",
           "hard_swish": "hardswish", "hard_silu": "hardswish", "logsigmoid": "log_sigmoid"}
KNOWN_NAMES = sorted(list(ACTIVATIONS) + list(ALIASES))


def canonical_name(name: str) -> str:
    return ALIASES.get(name, name)
