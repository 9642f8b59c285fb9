"""Hostile input (issue 8): the resource guards. A result larger than the memory
(or the JACCLI_MAX_MEMORY limit) or the free disk is refused before any work,
in the CLI (one ``Error:`` line, no file) and in the Python API (ResourceError).
"""

import os
from pathlib import Path

import numpy as np
import pytest

from hostile_helpers import assert_one_line_error, invoke, make_model_dir, model_with


def _wide_model(d, n_inputs=100):
    rng = np.random.default_rng(5)
    tensors = {"W0": rng.normal(size=(n_inputs, 4)), "b0": np.zeros(4),
               "W1": rng.normal(size=(4, 1)), "b1": np.zeros(1)}
    return model_with(d, "wide", tensors, spec="layers: [{units: 4, activation: tanh}, {units: 1}]\n")[1]


def test_huge_hessian_is_refused_before_any_work(tmp_path):
    """hessian of 2 million points with 100 inputs (149 GiB) into an NPZ (gathered in
    memory) is refused at once, with the way out in the message. The points file is sparse."""
    from numpy.lib.format import open_memmap

    from jaccli.limits import memory_budget

    need = 2_000_000 * 100 * 100 * 8
    if memory_budget() is None or memory_budget() > need:
        pytest.skip("this machine could hold the result")
    d = make_model_dir(tmp_path)
    model = _wide_model(d)
    points = os.path.join(d, "many.npy")
    open_memmap(points, mode="w+", dtype=np.float64, shape=(2_000_000, 100)).flush()
    assert_one_line_error(invoke(["hessian", model, "-p", points, "-o", Path(d, "h.npz")]),
                          d, ["h.npz", "149.0 GiB", "memory", "hessdiag", "fewer points", "out.npy"])
    assert not Path(d, "h.npz").exists()


def test_npy_output_larger_than_the_free_disk_is_refused(tmp_path, monkeypatch):
    import collections
    import shutil as shutil_module

    d = make_model_dir(tmp_path)
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil_module, "disk_usage", lambda path: usage(10**6, 10**6 - 1000, 1000))
    np.save(os.path.join(d, "p.npy"), np.zeros((500, 2)))
    for out in ("h.npy", "h.csv", "h.npz"):
        assert_one_line_error(invoke(["hessian", Path(d, "model.npz"), "-p", Path(d, "p.npy"),
                                      "-o", Path(d, out)]),
                              d, [out, "on disk", "1000 bytes free", "hessdiag"])
        assert not Path(d, out).exists()
    # standard output is streamed: no estimate stops it
    result = invoke(["value", Path(d, "model.npz"), "-p", Path(d, "p.npy"), "-q"])
    assert result.exit_code == 0


def test_memory_limit_from_the_environment(tmp_path, monkeypatch):
    d = make_model_dir(tmp_path)
    np.save(os.path.join(d, "p.npy"), np.zeros((5000, 2)))
    monkeypatch.setenv("JACCLI_MAX_MEMORY", "100K")
    assert_one_line_error(invoke(["hessian", Path(d, "model.npz"), "-p", Path(d, "p.npy"),
                                  "-o", Path(d, "h.npz")]),
                          d, ["h.npz", "156.2 KiB", "limit is 100.0 KiB (JACCLI_MAX_MEMORY)"])
    # streamed outputs are not held in memory: the same run to NPY works
    result = invoke(["hessian", Path(d, "model.npz"), "-p", Path(d, "p.npy"), "-o",
                     Path(d, "h.npy"), "-q"])
    assert result.exit_code == 0, result.stderr
    assert np.load(Path(d, "h.npy")).shape == (5000, 1, 2, 2)
    monkeypatch.setenv("JACCLI_MAX_MEMORY", "lots")
    assert_one_line_error(invoke(["value", Path(d, "model.npz"), "--at", "1,2"]), d,
                          ["JACCLI_MAX_MEMORY"])


def test_python_api_refuses_a_result_larger_than_memory(tmp_path):
    """model.hessian(X) on a huge X raises ResourceError (a JaccliError and a MemoryError)
    before allocating, instead of thrashing."""
    import jaccli
    from jaccli.errors import JaccliError, ResourceError

    d = make_model_dir(tmp_path)
    model = jaccli.load(_wide_model(d))
    X = np.broadcast_to(np.zeros(100), (1_000_000, 100))  # 800 MB of points, never copied
    with pytest.raises(ResourceError, match=r"hessian of 1,000,000 points.*74.5 GiB.*hessdiag"):
        model.hessian(X)
    assert issubclass(ResourceError, MemoryError) and issubclass(ResourceError, JaccliError)
    assert model.hessdiag(X[:10]).shape == (10, 1, 100)


def test_memory_limit_in_the_python_api(tmp_path, monkeypatch):
    import jaccli
    from jaccli.errors import ResourceError

    d = make_model_dir(tmp_path)
    model = jaccli.load(Path(d, "model.npz"))
    monkeypatch.setenv("JACCLI_MAX_MEMORY", "1M")
    with pytest.raises(MemoryError):
        model.hessian(np.zeros((100_000, 2)))
    assert model.hessian(np.zeros((1000, 2))).shape == (1000, 1, 2, 2)
    with pytest.raises(ResourceError):
        jaccli.load(_wide_model(d, n_inputs=40_000))  # a 1.2 MiB kernel
