"""Compiled one-pass activation steps (numba, the optional extra ``jaccli[fast]``).

Between two matrix products the NumPy path makes several passes over the
chunk: add the bias, the activation (in place), s' and s'' each in one or
two passes. An activation whose table entry has an ``element`` rule
(``activations.Activation.element``: s, s', s'' at one float64, written in
branch-free arithmetic) can instead run as one compiled loop that reads z
once and writes s, s' and s''. The loop is vectorised by LLVM, the
exponential included (``_exp_small_factory``). Where NumPy's own float64
tanh is a scalar libm call (CPUs without AVX-512) the compiled step is ~3x
faster than NumPy's passes; on AVX-512, where NumPy's tanh is vectorised, it
saves ~0.56 ns a value (a tanh step of 2^16 values 148 -> 112 us, W1 on one
worker 93 -> 84 ms; see docs/performance.md). Either way numba's import and
compile cost ~0.65 s once per process, so ``auto`` compiles only for jobs
large enough to repay it: ``MIN_JOB_VALUES`` by whether NumPy's tanh is
vectorised here.

``JACCLI_KERNELS`` chooses: ``auto`` (the default: compiled where numba is
installed and the job is large enough), ``numba`` (wherever an element rule
exists; for tests and measurements) or ``numpy`` (never). A job's size is
its points (``job``, set by ``chunks.iter_chunks``) times the layer's width;
chunks below ``MIN_VALUES`` values always take the NumPy path, so a call on
a few points never imports numba.
"""

import contextlib
import contextvars
import math
import os
import threading

import numpy as np

MIN_VALUES = 1 << 15  # z values per chunk below which the NumPy path is used
#: values per layer of a job (points x width) from which ``auto`` compiles, by whether
#: NumPy's float64 tanh is vectorised here: at the ~5-10 ns a value the step saves
#: where it is scalar, 2^26 values repay the ~0.65 s of numba's import and compile
#: (twice over, in a two-layer net); at the ~0.56 ns it saves on AVX-512, 2^29 do.
MIN_JOB_VALUES = {False: 1 << 26, True: 1 << 29}
MODES = ("auto", "numba", "numpy")
#: How every compiled function is built. ``contract`` lets LLVM fuse a * b + c into
#: one FMA (one rounding, not two): the step measured 24% faster on AVX-512 (148 ->
#: 112 us for 2^16 values); the error bounds hold (tests/test_kernels.py).
OPTIONS = {"error_model": "numpy", "fastmath": {"contract"}}
_job_points = contextvars.ContextVar("jaccli_job_points", default=0)

_lock = threading.Lock()
_compiled = {}  # activation name -> step, or None when it cannot be compiled
_numba = None  # the module, False when missing

# exp(y) for y in [-700, 0]: y = k ln2 + r, |r| <= ln2 / 2 (Cody and Waite's two-part ln2,
# k ln2_hi exact), exp(r) by its Taylor polynomial to r^13 (truncation below 5e-18),
# scaled by 2^k through the exponent bits. k is rounded with the 1.5 * 2^52 trick,
# which also leaves k in the low bits of ``shifted``.
_ROUND = 6755399441055744.0
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.4426950408889634
_EXP_TAYLOR = tuple(1.0 / math.factorial(i) for i in range(14))


def mode():
    value = os.environ.get("JACCLI_KERNELS", "auto").strip().lower() or "auto"
    if value not in MODES:
        from jaccli.errors import JaccliError

        raise JaccliError(f"JACCLI_KERNELS={value!r}: expected one of {', '.join(MODES)}")
    return value


def numpy_tanh_is_simd():
    """Whether NumPy has a vectorised float64 tanh on this CPU (its AVX512_SKX loop)."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # NumPy 1.x
        from numpy.core._multiarray_umath import __cpu_features__
    return bool(__cpu_features__.get("AVX512_SKX"))


def describe():
    """Which path the elementwise steps take here, in words (for the bench's report)."""
    chosen = mode()
    if chosen == "numpy":
        return "NumPy passes (JACCLI_KERNELS=numpy)"
    if not _load_numba():
        return "NumPy passes (numba not installed)"
    power = MIN_JOB_VALUES[numpy_tanh_is_simd()].bit_length() - 1
    where = "every chunk" if chosen == "numba" else f"jobs of 2^{power}+ values a layer"
    return f"compiled one-pass steps (numba {_load_numba().__version__}) on {where}"


@contextlib.contextmanager
def job(n_points):
    """Within it, the chunks computed belong to a job of ``n_points`` points."""
    token = _job_points.set(n_points)
    try:
        yield
    finally:
        _job_points.reset(token)


def fused_step(activation, shape):
    """The compiled step of ``activation`` for a chunk's z of ``shape`` (N, d), or None.

    ``step(z, bias, order, s1, s2)`` overwrites z with s(z + bias) and writes
    s' into s1 (order >= 1) and s'' into s2 (order 2); bias may be None.
    """
    rows, columns = shape
    if activation.element is None or rows * columns < MIN_VALUES:
        return None
    chosen = mode()
    if chosen == "numpy" or (chosen == "auto" and max(rows, _job_points.get()) * columns
                             < MIN_JOB_VALUES[numpy_tanh_is_simd()]):
        return None
    with _lock:
        if activation.name not in _compiled:
            _compiled[activation.name] = _compile(activation.element) if _load_numba() else None
    return _compiled[activation.name]


def _load_numba():
    global _numba
    if _numba is None:
        try:
            import numba
        except ImportError:
            numba = False
        _numba = numba
    return _numba


def compiled_element(element):
    """(rule, exp): ``element`` and the vectorised exp, compiled to be inlined into a loop."""
    numba = _load_numba()
    exp = numba.njit(inline="always", **OPTIONS)(_exp_small_factory(numba))
    return numba.njit(inline="always", **OPTIONS)(element), exp


def _compile(element):
    rule, exp = compiled_element(element)
    jit = _load_numba().njit(nogil=True, **OPTIONS)

    # One loop per order, so that no output stands in for another: a loop whose
    # outputs may overlap is not vectorised.
    @jit
    def values(z, bias):
        for i in range(z.shape[0]):
            for j in range(z.shape[1]):
                z[i, j] = rule(z[i, j] + bias[j], exp)[0]

    @jit
    def first(z, bias, s1):
        for i in range(z.shape[0]):
            for j in range(z.shape[1]):
                z[i, j], s1[i, j], _ = rule(z[i, j] + bias[j], exp)

    @jit
    def second(z, bias, s1, s2):
        for i in range(z.shape[0]):
            for j in range(z.shape[1]):
                z[i, j], s1[i, j], s2[i, j] = rule(z[i, j] + bias[j], exp)

    def step(z, bias, order, s1, s2):
        if bias is None:
            bias = np.zeros(z.shape[1], dtype=z.dtype)
        if order == 0:
            values(z, bias)
        elif order == 1:
            first(z, bias, s1)
        else:
            second(z, bias, s1, s2)

    return step


def _exp_small_factory(numba):
    """exp(y) for y in [-700, 0], vectorisable (no libm call): see the constants above."""
    from numba import types
    from numba.extending import intrinsic

    @intrinsic
    def as_int(typingctx, x):
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], context.get_value_type(types.int64))
        return types.int64(types.float64), codegen

    @intrinsic
    def as_float(typingctx, bits):
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], context.get_value_type(types.float64))
        return types.float64(types.int64), codegen

    c = _EXP_TAYLOR

    def exp_small(y):
        shifted = y * _INV_LN2 + _ROUND
        k = shifted - _ROUND
        r = (y - k * _LN2_HI) - k * _LN2_LO
        p = c[13]
        for i in range(12, -1, -1):
            p = p * r + c[i]
        return as_float(as_int(p) + (as_int(shifted) << 52))

    return exp_small
