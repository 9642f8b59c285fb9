"""The Python API on Dask arrays: lazy, chunked by rows, bitwise the in-process result.

The in-process results are themselves checked against independent oracles
(tests/test_derivatives.py); here the Dask path is checked against them,
with the same chunk boundaries (a block of X that is a whole number of
chunks is computed with the in-process code and chunking).
"""

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

from conftest import random_model  # noqa: E402

from jaccli.errors import JaccliError  # noqa: E402
from jaccli.model import build_model  # noqa: E402
from jaccli.formats.spec import parse_spec  # noqa: E402
from jaccli.formats.tensors import TensorStore  # noqa: E402

QUANTITIES = ["value", "jacobian", "param_jacobian", "hessdiag", "hessian", "laplacian"]
CHUNK = 64


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(7)
    spec, tensors = random_model(rng, [3, 12, 10, 2], ["tanh", "gelu", "linear"], scaling=True)
    return build_model(parse_spec(spec, "spec"), TensorStore("mem", tensors.get, list(tensors)))


@pytest.fixture(scope="module")
def points():
    return np.random.default_rng(8).normal(size=(1000, 3))


@pytest.mark.parametrize("quantity", QUANTITIES)
def test_every_quantity_lazy_and_bitwise(model, points, quantity):
    X = da.from_array(points, chunks=(4 * CHUNK, 3))
    lazy = getattr(model, quantity)(X, chunk_size=CHUNK)
    assert isinstance(lazy, da.Array)
    expected = model.compute(quantity, points, chunk_size=CHUNK)
    assert lazy.shape == expected.shape and lazy.dtype == expected.dtype
    assert lazy.chunks[0] == X.chunks[0] and all(len(c) == 1 for c in lazy.chunks[1:])
    np.testing.assert_array_equal(lazy.compute(scheduler="synchronous"), expected)
    np.testing.assert_array_equal(lazy.compute(scheduler="threads"), expected)


def test_value_and_jacobian_share_one_pass(model, points):
    if not hasattr(model, "value_and_jacobian"):
        pytest.skip("value_and_jacobian is not in this tree")
    X = da.from_array(points, chunks=(5 * CHUNK, 3))
    values, jac = model.value_and_jacobian(X, chunk_size=CHUNK)
    graph = {**dict(values.__dask_graph__()), **dict(jac.__dask_graph__())}
    blocks = [key for key in graph if isinstance(key, tuple)
              and str(key[0]).startswith("jaccli-value-jacobian-")]
    assert len(blocks) == len(X.chunks[0])  # one task per block computes both
    got = dask.compute(values, jac, scheduler="synchronous")
    np.testing.assert_array_equal(got[0], model.compute("value", points, chunk_size=CHUNK))
    np.testing.assert_array_equal(got[1], model.compute("jacobian", points, chunk_size=CHUNK))
    in_process = model.value_and_jacobian(points, chunk_size=CHUNK)  # the same one-sweep path
    np.testing.assert_array_equal(got[0], in_process[0])
    np.testing.assert_array_equal(got[1], in_process[1])


def test_split_columns_are_merged_and_one_point_works(model, points):
    X = da.from_array(points, chunks=(CHUNK, 2))  # columns in two chunks
    np.testing.assert_array_equal(model.jacobian(X, chunk_size=CHUNK).compute(),
                                  model.jacobian(points, chunk_size=CHUNK))
    one = model.value(da.from_array(points[0]))
    assert one.shape == (1, 2)
    np.testing.assert_array_equal(one.compute(), model.value(points[:1]))


def test_bad_points_name_the_row_of_the_whole_array(model, points):
    bad = points.copy()
    bad[700, 1] = np.nan
    lazy = model.value(da.from_array(bad, chunks=(256, 3)))  # building it checks nothing
    with pytest.raises(JaccliError, match="point 701, column 2 is nan"):
        lazy.compute(scheduler="synchronous")
    with pytest.raises(JaccliError, match=r"expected shape \(N, 3\)"):
        model.value(da.zeros((10, 4)))


def test_on_a_distributed_cluster(model, points):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster, set_as_default=False) as client:
        X = da.from_array(points, chunks=(3 * CHUNK, 3))
        got = client.compute(model.hessdiag(X, chunk_size=CHUNK)).result()
    np.testing.assert_array_equal(got, model.hessdiag(points, chunk_size=CHUNK))


def test_the_model_pickles_small_without_engine_caches(model, points):
    before = len(pickle.dumps(model))
    model.jacobian(points[:10])
    model.hessdiag(points[:10])  # the engine caches transposed kernels on first use
    assert len(pickle.dumps(model)) == before
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.jacobian(points), model.jacobian(points))


def test_numpy_callers_never_import_dask(tmp_path):
    code = ("import sys, numpy as np, jaccli\n"
            "m = jaccli.load(sys.argv[1])\n"
            "m.jacobian(np.ones((3, 2)))\n"
            "bad = [n for n in sys.modules if n.split('.')[0] in ('dask', 'distributed', 'zarr')]\n"
            "assert not bad, bad\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    model_path = os.path.join(root, "sample_models", "canonical.npz")
    subprocess.run([sys.executable, "-c", code, model_path], check=True, cwd=str(tmp_path))


def test_float32_models_give_float32_blocks(points):
    import jaccli

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    model = jaccli.load(os.path.join(root, "sample_models", "canonical.npz"), dtype="float32")
    X = np.random.default_rng(2).normal(size=(300, 2))
    lazy = model.hessdiag(da.from_array(X, chunks=(100, 2)), chunk_size=50)
    assert lazy.dtype == np.float32
    np.testing.assert_array_equal(lazy.compute(), model.hessdiag(X, chunk_size=50))
