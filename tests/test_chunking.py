"""Chunking, threads and the fast engine paths: same results, bounded memory.

No timings here: those live in ``make bench`` only.
"""

import tracemalloc
import zlib

import numpy as np
import pytest
from click.testing import CliRunner

import jaccli
import oracle
import plain_reference
from conftest import random_model, save_model
from jaccli.engine import sweeps as engine
from jaccli.engine import taylor
from jaccli.cli import cli

QUANTITIES = ["value", "jacobian", "param_jacobian", "hessdiag", "hessian", "laplacian"]
# (widths, activations, scaling): m < n, m > n, a softmax output, softmax on hidden layers
# (the first and a middle one, m < n and m > n), a linear and a curved last layer
ARCHITECTURES = [
    ([5, 7, 6, 1], ["tanh", "tanh", "linear"], True),
    ([2, 6, 5, 3], ["sigmoid", "gelu", "tanh"], True),
    ([3, 6, 4], ["silu", "softmax"], False),
    ([4, 6, 5, 2], ["softmax", "tanh", "linear"], True),
    ([2, 5, 4, 3], ["tanh", "softmax", "sigmoid"], False),
    ([3, 5, 4], ["log_softmax", "log_softmax"], True),
    ([3, 6, 5, 2], ["layer_norm", "tanh", "layer_norm"], True),
    ([4, 8, 2], ["gelu", "linear"], False),
    ([3, 5, 3], ["elu", "sin"], True),
]


def close(actual, expected, rtol=1e-12):
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=rtol * scale)


@pytest.fixture(params=range(len(ARCHITECTURES)), ids=lambda i: "-".join(ARCHITECTURES[i][1]))
def case(request, tmp_path):
    """(model, points, spec dict, tensors): the spec and tensors feed the oracle."""
    widths, activations, scaling = ARCHITECTURES[request.param]
    rng = np.random.default_rng(zlib.crc32(repr(ARCHITECTURES[request.param]).encode()))
    spec, tensors = random_model(rng, widths, activations, scaling=scaling)
    model = jaccli.load(save_model(tmp_path, spec, tensors))
    return model, rng.normal(size=(53, widths[0])), spec, tensors


@pytest.fixture
def model_and_points(case):
    return case[:2]


@pytest.mark.parametrize("quantity", QUANTITIES)
def test_same_chunk_boundaries_give_the_same_bits(model_and_points, quantity):
    model, x = model_and_points
    chunk = 8
    pieces = [model.compute_chunk(quantity, x[start:start + chunk])
              for start in range(0, len(x), chunk)]
    expected = np.concatenate(pieces)
    np.testing.assert_array_equal(model.compute(quantity, x, chunk_size=chunk, threads=1), expected)
    np.testing.assert_array_equal(model.compute(quantity, x, chunk_size=chunk, threads=2), expected)
    np.testing.assert_array_equal(model.compute(quantity, x, chunk_size=chunk, threads=3), expected)


@pytest.mark.parametrize("quantity", QUANTITIES)
def test_chunk_sizes_and_threads_agree(model_and_points, quantity):
    model, x = model_and_points
    whole = model.compute(quantity, x, chunk_size=len(x), threads=1)
    for chunk in (1, 2, 7, 16, len(x) - 1, len(x) + 100):
        for threads in (1, 2):
            close(model.compute(quantity, x, chunk_size=chunk, threads=threads), whole)
    close(getattr(model, quantity)(x), whole)  # the default chunk size and threads


@pytest.mark.parametrize("quantity", QUANTITIES)
def test_a_reused_workspace_gives_the_same_bits(model_and_points, quantity):
    """Buffers reused from a bigger chunk, and results handed out, are not aliased."""
    model, x = model_and_points
    work = engine.Workspace()
    big = model.compute_chunk(quantity, x, work=work).copy()
    small = model.compute_chunk(quantity, x[:5], work=work)
    again = model.compute_chunk(quantity, x, work=work)
    np.testing.assert_array_equal(again, big)
    np.testing.assert_array_equal(small, model.compute_chunk(quantity, x[:5]))
    out = np.full(big.shape, np.nan)
    model.compute_chunk(quantity, x, out=out, work=work)
    np.testing.assert_array_equal(out, big)


# Every engine path, fast and reference, by name: (function of (net, x, layout), oracle quantity).
ENGINE_PATHS = {
    "value": (lambda net, x, layout: engine.value(net, x), "value"),
    "ref_value": (lambda net, x, layout: plain_reference.ref_value(net, x), "value"),
    "jacobian_forward": (lambda net, x, layout: engine.jacobian_forward(net, x), "jacobian"),
    "jacobian_reverse": (lambda net, x, layout: engine.jacobian_reverse(net, x), "jacobian"),
    "plain_jacobian_forward": (lambda net, x, layout: plain_reference.plain_jacobian_forward(net, x), "jacobian"),
    "ref_jacobian_reverse": (lambda net, x, layout: plain_reference.ref_jacobian_reverse(net, x), "jacobian"),
    "param_jacobian": (engine.param_jacobian, "param_jacobian"),
    "ref_param_jacobian": (plain_reference.ref_param_jacobian, "param_jacobian"),
    "hessdiag": (lambda net, x, layout: engine.hessdiag(net, x), "hessdiag"),
    "hessdiag_tangent_adjoint": (lambda net, x, layout: engine.hessdiag_tangent_adjoint(net, x),
                                 "hessdiag"),
    "hessdiag_taylor": (lambda net, x, layout: taylor.taylor_hessdiag(net, x), "hessdiag"),
    "hessian": (lambda net, x, layout: engine.hessian(net, x), "hessian"),
    "plain_hessian": (lambda net, x, layout: plain_reference.plain_hessian(net, x), "hessian"),
    "laplacian": (lambda net, x, layout: engine.laplacian(net, x), "laplacian"),
    "laplacian_taylor": (lambda net, x, layout: taylor.taylor_laplacian(net, x), "laplacian"),
}


@pytest.fixture
def oracle_values(case):
    model, x, spec, tensors = case
    x = oracle.away_from_kinks(spec, tensors, x[:12])
    hess = oracle.hessian(spec, tensors, x)
    return model, x, {
        "value": (oracle.forward(spec, tensors, x).real, 1e-13),
        "jacobian": (oracle.jacobian(spec, tensors, x), 1e-9),
        "param_jacobian": (oracle.param_jacobian(spec, tensors, x), 1e-9),
        "hessdiag": (np.diagonal(hess, axis1=2, axis2=3), 1e-7),
        "hessian": (hess, 1e-7),
        "laplacian": (np.trace(hess, axis1=2, axis2=3), 1e-7),
    }


@pytest.mark.parametrize("path", ENGINE_PATHS)
def test_every_engine_path_against_the_oracle(oracle_values, path):
    """Fast and reference paths alike, softmax and not, m > n and m < n: each against
    complex-step / finite-difference derivatives, never against each other."""
    model, x, expected = oracle_values
    assert len(x) >= 6  # the points kept away from kinks still test something
    function, quantity = ENGINE_PATHS[path]
    wanted, rtol = expected[quantity]
    close(function(model.network, x, model.assembly.layout), wanted, rtol)


def test_the_hessian_is_exactly_symmetric(model_and_points):
    model, x = model_and_points
    for hess in (engine.hessian(model.network, x), plain_reference.plain_hessian(model.network, x),
                 model.hessian(x, chunk_size=7)):
        np.testing.assert_array_equal(hess, np.swapaxes(hess, -1, -2))


def test_float32_chunks(tmp_path):
    rng = np.random.default_rng(11)
    spec, tensors = random_model(rng, [4, 9, 9, 2], ["tanh", "sigmoid", "linear"])
    path = save_model(tmp_path, spec, tensors)
    x = rng.normal(size=(40, 4))
    m32, m64 = jaccli.load(path, dtype="float32"), jaccli.load(path)
    for quantity in QUANTITIES:
        single = m32.compute(quantity, x, chunk_size=6, threads=2)
        assert single.dtype == np.float32
        np.testing.assert_array_equal(single, m32.compute(quantity, x, chunk_size=6, threads=1))
        close(single, m64.compute(quantity, x), 1e-5)


def test_an_error_in_a_worker_reaches_the_caller():
    from jaccli.engine.chunks import run_chunks

    seen = []

    def work(start, stop, state):
        seen.append(start)
        if start == 30:
            raise ValueError("bad chunk")

    with pytest.raises(ValueError, match="bad chunk"):
        run_chunks(work, 100, 10, threads=2)
    assert 30 in seen


def test_the_lowest_failing_chunk_is_raised_and_the_workers_stop():
    import threading
    import time

    from jaccli.engine.chunks import run_chunks

    seen, lock = [], threading.Lock()

    def work(start, stop, state):
        with lock:
            seen.append(start)
        time.sleep(0.001)
        if start in (30, 50):
            raise ValueError(f"bad chunk {start}")

    with pytest.raises(ValueError, match="bad chunk 30"):
        run_chunks(work, 10_000, 10, threads=2)
    assert len(seen) < 100  # stopped after their current chunk, not all 1,000 run


def test_default_chunk_size_is_bounded(model_and_points):
    model, _ = model_and_points
    from jaccli.model import MAX_CHUNK, MIN_CHUNK

    for quantity in QUANTITIES:
        assert MIN_CHUNK <= model.chunk_size_for(quantity) <= MAX_CHUNK


# ---------------------------------------------------------------- memory


def _peak_traced(args):
    runner = CliRunner()
    tracemalloc.start()
    try:
        result = runner.invoke(cli, args, catch_exceptions=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.exit_code == 0, result.output
    return peak


@pytest.mark.parametrize("quantity", ["jacobian", "hessdiag"])
def test_streaming_memory_does_not_grow_with_the_number_of_points(tmp_path, quantity):
    rng = np.random.default_rng(5)
    spec, tensors = random_model(rng, [4, 16, 16, 1], ["tanh", "tanh", "linear"])
    model_path = save_model(tmp_path, spec, tensors)
    peaks = {}
    for n_points in (1_000, 40_000, 400_000):  # the first run imports what the CLI needs
        points = tmp_path / f"points{n_points}.npy"
        np.save(points, rng.normal(size=(n_points, 4)))
        out = tmp_path / f"out{n_points}.npy"
        peaks[n_points] = _peak_traced([quantity, model_path, "--points", str(points), "-o",
                                        str(out), "--chunk-size", "500", "--quiet"])
        assert np.load(out).shape == (n_points, 1, 4)
    # 400,000 points in and out are 12.8 MB each; the traced peak stays at a few chunks
    assert peaks[400_000] < 4_000_000, peaks
    assert peaks[400_000] < 1.2 * peaks[40_000] + 100_000, peaks


def test_a_bad_row_found_late_fails_the_threaded_stream(tmp_path):
    rng = np.random.default_rng(6)
    spec, tensors = random_model(rng, [3, 8, 1], ["tanh", "linear"])
    model_path = save_model(tmp_path, spec, tensors)
    points = rng.normal(size=(5000, 3))
    points[4321, 2] = np.nan
    np.save(tmp_path / "bad.npy", points)
    out = tmp_path / "out.npy"
    result = CliRunner().invoke(cli, ["jacobian", model_path, "--points", str(tmp_path / "bad.npy"),
                                      "-o", str(out), "--chunk-size", "100", "--quiet"])
    assert result.exit_code == 2
    assert "point 4322, column 3" in result.output
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


@pytest.mark.parametrize("value", ["two", "0", "-1"])
def test_a_bad_jaccli_threads_is_an_error_not_a_default(monkeypatch, value):
    from jaccli.engine.chunks import default_threads
    from jaccli.errors import JaccliError

    monkeypatch.setenv("JACCLI_THREADS", value)
    with pytest.raises(JaccliError, match="JACCLI_THREADS"):
        default_threads()
