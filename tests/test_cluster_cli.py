"""The CLI with Zarr points and outputs, on a local cluster and on a real scheduler.

A ``dask scheduler`` + ``dask worker`` pair runs on 127.0.0.1 in subprocesses
for the module (bench.scale.LoopbackCluster); ``--workers 2`` starts its own
local cluster. Results must be bitwise those of the in-process run (the same
chunks, computed by the same code); confint's fit, reduced as a tree, within
1e-12. Failures: a worker killed mid-run (Dask re-runs its task), workers
killed every time (exit 2, one line, no output), a closed port (one line
within the timeout).
"""

import os
import socket
import time

import numpy as np
import pytest
from click.testing import CliRunner

zarr = pytest.importorskip("zarr")
distributed = pytest.importorskip("distributed")

from conftest import random_model, save_model  # noqa: E402

from jaccli.cli import cli  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMANDS = [["value"], ["jacobian"], ["jacobian", "--wrt", "params"], ["hessdiag"], ["hessian"],
            ["laplacian"]]
N_POINTS = 3000


def run(*args, **env):
    result = CliRunner().invoke(cli, [str(a) for a in args], env={k: str(v) for k, v in env.items()})
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def one_line_error(result):
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def read_store(path, name):
    return zarr.open_group(str(path), mode="r")[name][...]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("cluster")
    rng = np.random.default_rng(11)
    spec, tensors = random_model(rng, [3, 10, 8, 2], ["tanh", "softplus", "linear"], scaling=True)
    model = save_model(directory, spec, tensors)
    points = rng.normal(size=(N_POINTS, 3))
    np.save(directory / "pts.npy", points)
    store = zarr.create_array(str(directory / "pts.zarr"), shape=points.shape, chunks=(700, 3),
                              dtype="f8")
    store[...] = points
    train = np.column_stack([points[:400], rng.normal(size=(400, 2))])
    np.save(directory / "train.npy", train)
    zarr.create_array(str(directory / "train.zarr"), shape=train.shape, chunks=(150, 5),
                      dtype="f8")[...] = train
    return {"dir": directory, "model": model, "points": points}


@pytest.fixture(scope="module")
def loopback(tmp_path_factory):
    from bench.scale import LoopbackCluster

    cluster = LoopbackCluster(str(tmp_path_factory.mktemp("scheduler")), n_workers=2,
                              environ={"PYTHONPATH": os.pathsep.join([ROOT, os.path.join(ROOT, "tests")]),
                                       "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1"})
    yield cluster
    cluster.close()


def in_process_npy(files, command, name):
    out = files["dir"] / f"ref-{name}.npy"
    if not out.exists():
        assert run(*command, files["model"], "--points", files["dir"] / "pts.npy", "-o", out,
                   "-q").exit_code == 0
    return np.load(out)


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_zarr_in_zarr_out_in_process(files, command, tmp_path):
    name = "param_jacobian" if "params" in command else command[0]
    out = tmp_path / "out.zarr"
    result = run(*command, files["model"], "--points", files["dir"] / "pts.zarr", "-o", out, "-q")
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(read_store(out, name), in_process_npy(files, command, name))
    attrs = zarr.open_group(str(out), mode="r").attrs
    assert attrs["input_names"] == ["in0", "in1", "in2"] and attrs["output_names"] == ["y1", "y2"]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_quantity_on_a_scheduler_is_bitwise(files, loopback, command, tmp_path):
    name = "param_jacobian" if "params" in command else command[0]
    out = tmp_path / "out.zarr"
    result = run(*command, files["model"], "--points", files["dir"] / "pts.zarr", "-o", out, "-q",
                 "--scheduler", loopback.address, "--chunk-size", 128)
    assert result.exit_code == 0, result.output
    reference = run(*command, files["model"], "--points", files["dir"] / "pts.npy", "-o",
                    tmp_path / "ref.npy", "-q", "--chunk-size", 128)
    assert reference.exit_code == 0
    np.testing.assert_array_equal(read_store(out, name), np.load(tmp_path / "ref.npy"))


def test_text_points_travel_with_the_tasks(files, loopback, tmp_path):
    csv = tmp_path / "pts.csv"
    np.savetxt(csv, files["points"][:500], delimiter=",", header="in0,in1,in2", comments="")
    result = run("hessdiag", files["model"], "--points", csv, "--scheduler", loopback.address, "-q")
    assert result.exit_code == 0
    expected = run("hessdiag", files["model"], "--points", csv, "-q")
    assert result.output == expected.output


def test_workers_option_starts_a_local_cluster(files, tmp_path):
    out = tmp_path / "out.npy"
    result = run("jacobian", files["model"], "--points", files["dir"] / "pts.zarr", "-o", out,
                 "--workers", 2, "-q")
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(np.load(out), in_process_npy(files, ["jacobian"], "jacobian"))


def test_confint_on_a_scheduler_within_1e12(files, loopback, tmp_path):
    common = ["confint", files["model"], "--points", files["dir"] / "pts.npy", "-q"]
    local = run(*common, "--train", files["dir"] / "train.npy", "-o", tmp_path / "a.npy")
    remote = run(*common, "--train", files["dir"] / "train.zarr", "-o", tmp_path / "b.npy",
                 "--scheduler", loopback.address, "--leverage", tmp_path / "lev.npy")
    assert local.exit_code == 0 and remote.exit_code == 0, remote.output
    a, b = np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy")
    np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12 * np.abs(a).max())


def test_a_nan_late_in_a_zarr_store_fails_the_run_whole(files, loopback, tmp_path):
    bad = files["points"].copy()
    bad[2500, 0] = np.nan
    store = zarr.create_array(str(tmp_path / "bad.zarr"), shape=bad.shape, chunks=(700, 3),
                              dtype="f8")
    store[...] = bad
    for extra in ([], ["--scheduler", loopback.address]):
        result = run("value", files["model"], "--points", tmp_path / "bad.zarr", "-o",
                     tmp_path / "out.zarr", *extra)
        assert "point 2501, column 1 is nan" in one_line_error(result)
        assert not (tmp_path / "out.zarr").exists()
    assert sorted(os.listdir(tmp_path)) == ["bad.zarr"]


class KillWorker(distributed.WorkerPlugin):
    """Kills the worker process that starts a jaccli task: once (a flag file), or every time."""

    name = "jaccli-test-kill"

    def __init__(self, flag, always=False):
        self.flag, self.always = flag, always

    def transition(self, key, start, finish, **kwargs):
        if finish != "executing" or not str(key).startswith("compute_slice"):
            return
        if not self.always:
            try:
                os.close(os.open(self.flag, os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                return
        os._exit(1)


def with_plugin(loopback, plugin, action):
    loopback.client.register_plugin(plugin)
    try:
        return action()
    finally:
        loopback.client.unregister_worker_plugin(plugin.name)
        loopback.client.wait_for_workers(2, timeout=60)


def test_a_worker_that_dies_is_replaced_and_its_task_rerun(files, loopback, tmp_path):
    out = tmp_path / "out.zarr"
    result = with_plugin(loopback, KillWorker(str(tmp_path / "killed")), lambda: run(
        "jacobian", files["model"], "--points", files["dir"] / "pts.zarr", "-o", out, "-q",
        "--scheduler", loopback.address))
    assert (tmp_path / "killed").exists()  # a worker did die
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(read_store(out, "jacobian"),
                                  in_process_npy(files, ["jacobian"], "jacobian"))


def test_workers_dying_every_time_fail_the_run_in_one_line(files, loopback, tmp_path):
    out = tmp_path / "out.zarr"
    result = with_plugin(loopback, KillWorker("", always=True), lambda: run(
        "jacobian", files["model"], "--points", files["dir"] / "pts.zarr", "-o", out,
        "--scheduler", loopback.address))
    assert "workers died" in one_line_error(result)
    assert os.listdir(tmp_path) == []


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_scheduler_that_does_not_answer(files, tmp_path):
    started = time.monotonic()
    result = run("value", files["model"], "--at", "1,2,3", "--scheduler",
                 f"tcp://127.0.0.1:{closed_port()}", JACCLI_SCHEDULER_TIMEOUT=2)
    assert "cannot reach a Dask scheduler" in one_line_error(result)
    assert time.monotonic() - started < 20


def test_scheduler_and_workers_together_refused(files):
    result = run("value", files["model"], "--at", "1,2,3", "--scheduler", "tcp://127.0.0.1:1",
                 "--workers", 2)
    assert "not both" in one_line_error(result)


@pytest.mark.parametrize("hidden,args", [
    ("distributed", ["--workers", "2"]),
    ("zarr", ["-o", "out.zarr"]),
])
def test_without_the_extra_one_line_says_what_to_install(files, monkeypatch, tmp_path, hidden, args):
    import sys

    monkeypatch.setitem(sys.modules, hidden, None)  # import fails as if not installed
    monkeypatch.chdir(tmp_path)
    result = run("value", files["model"], "--at", "1,2,3", *args)
    assert "pip install 'jaccli[dask]'" in one_line_error(result)


def test_the_progress_follows_finished_tasks(files, loopback, monkeypatch):
    from jaccli.io.points import read_points
    from jaccli.model import load
    from jaccli.scale.cluster import quantity_chunks

    monkeypatch.setenv("JACCLI_TASK_POINTS", "256")
    model = load(files["model"])
    chunks = quantity_chunks(loopback.client, model, ["value"], read_points(str(files["dir"] / "pts.zarr"), model.input_names), 128)
    seen = []
    chunks.follow(seen.append)
    blocks = list(chunks)
    assert [start for start, _ in blocks] == list(range(0, N_POINTS, 256))
    assert seen == sorted(seen) and seen[-1] == N_POINTS
    np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]),
                                  model.value(files["points"], chunk_size=128))
