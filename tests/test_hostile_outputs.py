"""Hostile and broken input (issue 8): output files (-o, --format).

Every case below runs the real CLI on a bad file and asserts: exit 2, exactly
one ``Error: ...`` line on standard error naming the file and the problem, no
traceback, no output file and no ``.part`` temporary left behind, and the
existing output file ``out.csv`` unchanged (``hostile_helpers.assert_case_refused``).
Also: runs interrupted or failing late (Ctrl-C, a real SIGINT, a full disk, a bad
row in the last chunk) leave no partial file and the old output unchanged; an
output onto a named pipe is written through.
"""

import io
import os
from pathlib import Path

import numpy as np
import pytest

from hostile_helpers import (PRECIOUS, Cases, assert_case_refused, assert_one_line_error, crashed,
                             invoke, leftovers, make_model_dir, new_dir, npy_bytes, value_on_points,
                             write)

CASES = Cases()
case = CASES.case


# ---------------------------------------------------------------- outputs

case("output-missing-directory", ["does not exist"])(
    lambda d: value_on_points(d) + ["-o", os.path.join(d, "no", "such", "out.csv")])
case("output-unknown-extension", ["out.xlsx", "format"])(
    lambda d: value_on_points(d) + ["-o", os.path.join(d, "out.xlsx")])
case("output-is-directory", ["odir", "directory"])(lambda d: value_on_points(d) + ["-o", new_dir(d, "odir")])
case("output-npy-to-stdout", ["standard output"])(lambda d: value_on_points(d) + ["--format", "npy"])
case("output-onto-points", ["pts.csv", "inputs"])(
    lambda d: value_on_points(d) + ["-o", os.path.join(d, "pts.csv")])
case("output-onto-model", ["model.npz", "inputs"])(
    lambda d: value_on_points(d) + ["-o", os.path.join(d, "model.npz")])
case("output-onto-spec-option", ["model.yaml", "inputs"])(
    lambda d: value_on_points(d) + ["--spec", os.path.join(d, "model.yaml"), "--format", "csv",
                                    "-o", os.path.join(d, "model.yaml")])
case("output-onto-discovered-spec", ["model.yaml", "inputs"])(
    lambda d: value_on_points(d) + ["--format", "csv", "-o", os.path.join(d, "model.yaml")])


@case("output-onto-points-symlink", ["link.csv", "inputs"])
def _(d):
    os.symlink(os.path.join(d, "pts.csv"), os.path.join(d, "link.csv"))
    return value_on_points(d) + ["-o", os.path.join(d, "link.csv")]


@case("output-onto-points-hardlink", ["hard.csv", "inputs"])
def _(d):
    os.link(os.path.join(d, "pts.csv"), os.path.join(d, "hard.csv"))
    return value_on_points(d) + ["-o", os.path.join(d, "hard.csv")]


@case("output-onto-training-file", ["train.csv", "inputs"])
def _(d):
    return ["confint", os.path.join(d, "model.npz"), "--train", os.path.join(d, "train.csv"),
            "-p", os.path.join(d, "pts.csv"), "-o", os.path.join(d, "train.csv")]


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_one_error_line(tmp_path, name):
    assert_case_refused(tmp_path, CASES[name])


# ---------------------------------------------------------------- interrupted, failed late


@pytest.mark.parametrize("fmt", ["csv", "tsv", "npy", "npz"])
def test_ctrl_c_mid_run_exits_130_and_leaves_nothing(tmp_path, monkeypatch, fmt):
    """KeyboardInterrupt on the second chunk: exit 130, one line, no partial or temporary file."""
    from jaccli import model as model_module

    d = make_model_dir(tmp_path)
    write(d, "p.npy", npy_bytes(np.random.default_rng(0).normal(size=(40, 2))))
    out = os.path.join(d, f"out.{fmt}")
    if fmt != "csv":
        write(d, f"out.{fmt}", PRECIOUS)
    calls = []
    original = model_module.Model.compute_chunk

    def interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(model_module.Model, "compute_chunk", interrupted)
    result = invoke(["jacobian", Path(d, "model.npz"), "-p", Path(d, "p.npy"), "--chunk-size", "8",
                     "-o", out])
    assert crashed(result) is None, crashed(result)
    assert result.exit_code == 130
    assert result.stderr.strip() == "Interrupted."
    assert leftovers(d) == []
    assert Path(out).read_text() == PRECIOUS


def test_write_failure_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    """A full disk while writing: one error line naming the output, no temporary file."""
    import errno

    from jaccli.io import writers

    d = make_model_dir(tmp_path)

    def full(rows, delimiter):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writers, "format_rows", full)
    out = os.path.join(d, "out.csv")
    result = invoke(["value", Path(d, "model.npz"), "-p", Path(d, "pts.csv"), "-o", out])
    assert_one_line_error(result, d, ["out.csv", "No space left"], precious=out)


@pytest.mark.parametrize("fmt", ["csv", "tsv", "npy", "npz"])
def test_late_bad_row_leaves_existing_output(tmp_path, fmt):
    d = make_model_dir(tmp_path)
    x = np.zeros((60, 2))
    x[55, 0] = np.nan
    out = write(d, f"old.{fmt}", PRECIOUS)
    result = invoke(["hessdiag", Path(d, "model.npz"), "-p", write(d, "p.npy", npy_bytes(x)),
                     "--chunk-size", "4", "-o", out])
    assert_one_line_error(result, d, ["p.npy", "point 56"], precious=out)


@pytest.mark.skipif(os.name != "posix", reason="signals")
def test_real_sigint_exits_130_with_no_partial_file(tmp_path):
    """The real process, a real SIGINT while it writes: exit 130 and no file."""
    import signal
    import subprocess
    import sys
    import time

    d = make_model_dir(tmp_path)
    x = np.random.default_rng(1).normal(size=(3_000_000, 2))
    np.save(os.path.join(d, "p.npy"), x)
    out = os.path.join(d, "big.csv")
    # A suite run in the background (cmd &) inherits an ignored SIGINT, and Python then
    # installs no KeyboardInterrupt handler: give the child the default back.
    proc = subprocess.Popen([sys.executable, "-m", "jaccli.cli", "hessian", os.path.join(d, "model.npz"),
                             "-p", os.path.join(d, "p.npy"), "-o", out, "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 30
    while not leftovers(d) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert leftovers(d), "the run never started writing"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert b"Traceback" not in err
    assert leftovers(d) == [] and not os.path.exists(out)


# ---------------------------------------------------------------- named pipes


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes")
@pytest.mark.parametrize("fmt", ["csv", "npz"])
def test_output_to_a_named_pipe_is_written_through(tmp_path, fmt):
    """-o onto a pipe (or a device such as /dev/null) writes into it: renaming a temporary
    file over it would replace it. On failure the pipe is left in place."""
    import threading

    d = make_model_dir(tmp_path)
    fifo = os.path.join(d, "pipe")
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(Path(fifo).read_bytes()))
    reader.start()
    result = invoke(["value", Path(d, "model.npz"), "-p", Path(d, "pts.csv"), "-o", fifo,
                     "--format", fmt, "-q"])
    reader.join(timeout=10)
    assert result.exit_code == 0, result.stderr
    assert received and received[0]
    if fmt == "npz":
        assert np.load(io.BytesIO(received[0]))["value"].shape == (3, 1)
    else:
        assert received[0].decode().splitlines()[0] == "y"
    assert Path(fifo).is_fifo() and leftovers(d) == []
    failed = invoke(["value", Path(d, "model.npz"), "-p", write(d, "bad.csv", "a,b\n1,x\n"),
                     "-o", fifo, "--format", fmt])
    assert_one_line_error(failed, d, ["bad.csv"])
    assert Path(fifo).is_fifo()
