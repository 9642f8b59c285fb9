"""Shared by the test_hostile_*.py files, test_fuzz.py and others: a small valid
model directory, the one assertion every refusal must pass (exit 2, one short
line `Error: ...` with the expected words, no traceback, no file left behind),
and the table of bad-input cases each test_hostile_*.py file fills."""

import io
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


# ---------------------------------------------------------------- building bad inputs

def write(d, name, data):
    path = os.path.join(d, name)
    with open(path, "wb" if isinstance(data, bytes) else "w") as handle:
        handle.write(data)
    return path


def new_dir(d, name):
    path = os.path.join(d, name)
    os.mkdir(path)
    return path


def npy_bytes(array, allow_pickle=False):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def value_with_points(d, name, data):
    return ["value", os.path.join(d, "model.npz"), "-p", write(d, name, data)]


def value_on_points(d):
    return ["value", os.path.join(d, "model.npz"), "-p", os.path.join(d, "pts.csv")]


def confint_with_train(d, train):
    return ["confint", os.path.join(d, "model.npz"), "--train", train, "-p", os.path.join(d, "pts.csv")]


def model_with(d, stem, tensors, fmt="npz", spec=GOOD_SPEC_TEXT):
    path = os.path.join(d, f"{stem}.{fmt}")
    (write_npz if fmt == "npz" else write_h5)(path, tensors)
    if spec is not None:
        write(d, f"{stem}.yaml", spec)
    return ["value", path, "--at", "0.5,0.5"]


def with_tensor(**changes):
    tensors = good_tensors()
    tensors.update(changes)
    return tensors


def with_spec(d, text, name="s.yaml"):
    return ["value", os.path.join(d, "model.npz"), "--spec", write(d, name, text), "--at", "1,2"]


# ---------------------------------------------------------------- the cases and their test

class Cases(dict):
    """name -> (builder, words, stdin): one table per test_hostile_*.py file."""

    def case(self, name, words=(), stdin=None):
        """Register ``builder(d) -> argv`` (the command first); ``words`` must be in the error line."""
        def register(builder):
            self[name] = (builder, tuple(words), stdin)
            return builder
        return register


def assert_case_refused(tmp_path, case):
    """Run one case in a fresh model directory: refused with one error line, nothing changed."""
    d = make_model_dir(tmp_path)
    builder, words, stdin = case
    args = builder(d)
    out = os.path.join(d, "out.csv")
    if "-o" not in args and "--format" not in args:
        args = args + ["-o", out]
    result = invoke(args, input=stdin)
    assert_one_line_error(result, d, words, precious=out)


def succeeded(result):
    assert crashed(result) is None, crashed(result)
    assert result.exit_code == 0, result.stderr
    return result.stdout
