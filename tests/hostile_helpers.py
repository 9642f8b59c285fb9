"""Shared by test_hostile.py and test_fuzz.py: a small valid model directory
and the one assertion every refusal must pass: exit 2, one short line
`Error: ...` with the expected words, no traceback, no file left behind."""

import os
import traceback

import h5py
import numpy as np
import yaml
from click.testing import CliRunner

from jaccli.cli import cli

PRECIOUS = "precious: an existing output must survive a failed run\n"
MAX_ERROR_LENGTH = 600  # one readable line, however large the bad input


def good_tensors():
    rng = np.random.default_rng(8)
    return {"W0": rng.normal(size=(2, 3)), "b0": rng.normal(size=3),
            "W1": rng.normal(size=(3, 1)), "b1": rng.normal(size=1)}


GOOD_SPEC = {"inputs": ["a", "b"], "outputs": ["y"],
             "layers": [{"units": 3, "activation": "tanh"}, {"units": 1, "activation": "linear"}]}
GOOD_SPEC_TEXT = yaml.safe_dump(GOOD_SPEC)


def write_npz(path, tensors):
    np.savez(path, **tensors)
    return path


def write_h5(path, tensors):
    with h5py.File(path, "w") as handle:
        for name, value in tensors.items():
            handle[name] = value
    return path


def make_model_dir(directory):
    """model.npz + model.yaml, model.h5 + model.h5's spec, points, training file, a precious output."""
    d = str(directory)
    write_npz(os.path.join(d, "model.npz"), good_tensors())
    with open(os.path.join(d, "model.yaml"), "w") as handle:
        handle.write(GOOD_SPEC_TEXT)
    with open(os.path.join(d, "pts.csv"), "w") as handle:
        handle.write("a,b\n0.1,0.2\n-0.3,0.4\n1.5,-2.0\n")
    rng = np.random.default_rng(3)
    x = rng.normal(size=(12, 2))
    y = np.tanh(x @ good_tensors()["W0"]) @ good_tensors()["W1"] + rng.normal(size=(12, 1)) * 0.1
    with open(os.path.join(d, "train.csv"), "w") as handle:
        handle.write("a,b,y\n" + "".join(f"{r[0]!r},{r[1]!r},{r[2]!r}\n"
                                          for r in np.hstack([x, y]).tolist()))
    with open(os.path.join(d, "out.csv"), "w") as handle:
        handle.write(PRECIOUS)
    return d


def invoke(args, input=None, cwd=None):
    """Run the CLI in-process; unexpected exceptions are caught so the test can report them."""
    old = os.getcwd()
    if cwd:
        os.chdir(cwd)
    try:
        return CliRunner().invoke(cli, [str(a) for a in args], input=input,
                                  catch_exceptions=True)
    finally:
        os.chdir(old)


def leftovers(directory):
    """Temporary '.part' files anywhere under ``directory``."""
    found = []
    for root, _, files in os.walk(directory):
        found += [os.path.join(root, f) for f in files if f.endswith(".part")]
    return found


def crashed(result):
    """The traceback of an exception that escaped the CLI (None if it exited normally)."""
    exc = result.exception
    if exc is None or isinstance(exc, SystemExit):
        return None
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def assert_one_line_error(result, directory=None, words=(), precious=None):
    """Exit 2, exactly one 'Error: ' line on stderr naming ``words``, nothing left behind."""
    tb = crashed(result)
    assert tb is None, tb
    assert result.exit_code == 2, (result.exit_code, result.stdout[-500:], result.stderr[-2000:])
    lines = result.stderr.strip("\n").splitlines()
    assert len(lines) == 1, result.stderr[-2000:]
    line = lines[0]
    assert line.startswith("Error: "), line
    assert "Traceback" not in result.stderr
    assert len(line) <= MAX_ERROR_LENGTH, f"{len(line)} characters: {line[:300]}..."
    for word in words:
        assert word in line, (word, line)
    if directory is not None:
        assert leftovers(directory) == []
    if precious is not None:
        with open(precious) as handle:
            assert handle.read() == PRECIOUS
    return line
