"""`jaccli sensitivity` on a Dask cluster, and `jaccli.sensitivity` on a Dask array.

The fixtures are test_cluster_cli's (a model with 3 inputs and 2 outputs,
3,000 points in NPY and Zarr; a `dask scheduler` + 2 `dask worker`s on
127.0.0.1). The in-process table is itself checked against closed forms and
finite differences (tests/test_sensitivity.py); here the cluster's table is
checked against it. One block of points gives the same per-chunk sums merged
in the same order: the same bits. Several blocks are merged block by block
(or as a tree), which rounds differently: equal to about 1e-12.
"""

import io

import numpy as np
import pytest

zarr = pytest.importorskip("zarr")
distributed = pytest.importorskip("distributed")

from .test_cluster_cli import N_POINTS, files, loopback, one_line_error, run  # noqa: E402,F401

import jaccli  # noqa: E402

NUMERIC = ["nu", "nu_lower", "nu_upper", "mean_abs", "mean_abs_lower", "mean_abs_upper", "mean",
           "share", "output_variance", "bound"]


def sensitivity(files, points, *extra, **env):
    result = run("sensitivity", files["model"], "--points", files["dir"] / points, "-q",
                 "--bootstrap", 200, *extra, **env)
    assert result.exit_code == 0, result.output
    return result.stdout


def numbers(text):
    return np.genfromtxt(io.StringIO(text), delimiter=",", names=True, dtype=None,
                         encoding="utf-8")


def assert_same_to_rounding(text, expected):
    got, want = numbers(text), numbers(expected)
    assert list(got["output"]) == list(want["output"]) and list(got["input"]) == list(want["input"])
    for name in NUMERIC:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-12, atol=1e-14, err_msg=name)


@pytest.fixture(scope="module")
def in_process(files):
    return sensitivity(files, "pts.npy")


def test_workers_give_the_in_process_table_bitwise(files, in_process):
    # 3,000 points are one task: the worker merges the chunks' sums as in-process
    assert sensitivity(files, "pts.zarr", "--workers", 2) == in_process


def test_a_scheduler_gives_the_in_process_table(files, loopback, in_process):
    assert sensitivity(files, "pts.npy", "--scheduler", loopback.address) == in_process
    # many tasks (the bootstrap weights follow each block's first row): equal to rounding
    many = sensitivity(files, "pts.zarr", "--scheduler", loopback.address, "--chunk-size", 128,
                       JACCLI_TASK_POINTS=512)
    assert_same_to_rounding(many, sensitivity(files, "pts.npy", "--chunk-size", 128))


def test_text_points_travel_with_the_tasks(files, loopback, tmp_path):
    csv = tmp_path / "pts.csv"
    np.savetxt(csv, files["points"][:700], delimiter=",", header="in0,in1,in2", comments="")
    args = ["sensitivity", files["model"], "--points", csv, "-q", "--bootstrap", 100,
            "--chunk-size", 100]
    remote = run(*args, "--scheduler", loopback.address, JACCLI_TASK_POINTS=300)
    assert remote.exit_code == 0, remote.output
    assert_same_to_rounding(remote.stdout, run(*args).stdout)


def test_a_nan_late_in_a_zarr_store_names_its_row(files, loopback, tmp_path):
    bad = files["points"].copy()
    bad[2500, 1] = np.nan
    zarr.create_array(str(tmp_path / "bad.zarr"), shape=bad.shape, chunks=(700, 3),
                      dtype="f8")[...] = bad
    result = run("sensitivity", files["model"], "--points", tmp_path / "bad.zarr", "-o",
                 tmp_path / "out.csv", "--scheduler", loopback.address, JACCLI_TASK_POINTS=512)
    assert "point 2501, column 2 is nan" in one_line_error(result)
    assert not (tmp_path / "out.csv").exists()


def test_the_progress_follows_finished_tasks(files, loopback, monkeypatch):
    from jaccli.io.points import read_points

    monkeypatch.setenv("JACCLI_TASK_POINTS", "256")
    model = jaccli.load(files["model"])
    points = read_points(str(files["dir"] / "pts.zarr"), model.input_names)
    seen = []
    remote = jaccli.stats.sensitivity.sensitivity(model, points, 100, chunk_size=128,
                                                  progress=seen.append, client=loopback.client)
    assert seen == sorted(seen) and seen[-1] == N_POINTS
    local = jaccli.sensitivity(model, files["points"], 100, chunk_size=128)
    np.testing.assert_allclose(remote.nu, local.nu, rtol=1e-12)


def test_without_the_extra_one_line_says_what_to_install(files, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "distributed", None)  # import fails as if not installed
    result = run("sensitivity", files["model"], "--points", files["dir"] / "pts.npy",
                 "--workers", 2)
    assert "pip install 'jaccli[dask]'" in one_line_error(result)


def test_the_api_on_a_dask_array(files):
    import dask.array as da

    model = jaccli.load(files["model"])
    local = jaccli.sensitivity(model, files["points"], 200, chunk_size=100)
    # one block: the same sums in the same order, the same bits
    whole = jaccli.sensitivity(model, da.from_array(files["points"], chunks=(N_POINTS, 3)), 200,
                               chunk_size=100)
    # blocks of whole chunks, merged as a tree; a column split is joined
    blocks = jaccli.sensitivity(model, da.from_array(files["points"], chunks=(700, 2)), 200,
                                chunk_size=100)
    for name in NUMERIC:
        np.testing.assert_array_equal(whole.column(name), local.column(name), err_msg=name)
        np.testing.assert_allclose(blocks.column(name), local.column(name), rtol=1e-12,
                                   atol=1e-14, err_msg=name)
    assert whole.n_points == blocks.n_points == N_POINTS
