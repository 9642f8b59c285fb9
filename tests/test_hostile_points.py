"""Hostile and broken input (issue 8): points (-p, --at) and training files (--train).

Every case below runs the real CLI on a bad file and asserts: exit 2, exactly
one ``Error: ...`` line on standard error naming the file and the problem, no
traceback, no output file and no ``.part`` temporary left behind, and the
existing output file ``out.csv`` unchanged (``hostile_helpers.assert_case_refused``).
Also: the unusual but valid points files that must be accepted.
"""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from hostile_helpers import (Cases, assert_case_refused, confint_with_train, invoke, make_model_dir,
                             new_dir, npy_bytes, succeeded, value_with_points, write)

CASES = Cases()
case = CASES.case


# ---------------------------------------------------------------- points

case("points-empty", ["e.csv", "zero points"])(lambda d: value_with_points(d, "e.csv", ""))
case("points-blank-lines", ["e.csv", "zero points"])(lambda d: value_with_points(d, "e.csv", "\n \n\t\n"))
case("points-header-only", ["h.csv", "zero points"])(lambda d: value_with_points(d, "h.csv", "a,b\n"))
case("points-ragged", ["r.csv", "line 3"])(lambda d: value_with_points(d, "r.csv", "a,b\n1,2\n3\n"))
case("points-too-many-columns", ["w.csv", "3 columns"])(
    lambda d: value_with_points(d, "w.csv", "1,2,3\n4,5,6\n"))
case("points-wrong-header", ["w.csv", "header"])(
    lambda d: value_with_points(d, "w.csv", "p,q,r\n1,2,3\n"))
case("points-non-numeric", ["n.csv", "line 3, column 2", "'x'"])(
    lambda d: value_with_points(d, "n.csv", "a,b\n1,2\n3,x\n"))
case("points-nan", ["nan.csv", "point 2, column 1", "finite"])(
    lambda d: value_with_points(d, "nan.csv", "a,b\n1,2\nnan,3\n"))
case("points-inf", ["inf.csv", "point 1, column 2"])(
    lambda d: value_with_points(d, "inf.csv", "a,b\n1,-inf\n"))
case("points-overflow", ["big.csv", "point 1, column 1"])(
    lambda d: value_with_points(d, "big.csv", "a,b\n1e999,2\n"))
case("points-binary-nul", ["g.csv", "binary"])(
    lambda d: value_with_points(d, "g.csv", bytes(np.random.default_rng(1).integers(0, 256, 4096,
                                                                                    dtype=np.uint8))))
case("points-latin1", ["l.csv", "UTF-8"])(lambda d: value_with_points(d, "l.csv", b"a,b\n1,\xe9\n"))
case("points-utf16-without-bom", ["u.csv", "UTF-16"])(
    lambda d: value_with_points(d, "u.csv", "a,b\n1,2\n".encode("utf-16-le")))
case("points-megabyte-line-number", ["m.csv", "point 1"])(
    lambda d: value_with_points(d, "m.csv", "a,b\n" + "1" * 1_000_000 + ",2\n"))
case("points-megabyte-line-text", ["m.csv", "line 2, column 1"])(
    lambda d: value_with_points(d, "m.csv", "a,b\n" + "x" * 1_000_000 + ",2\n"))
case("points-megabyte-header", ["m.csv"])(
    lambda d: value_with_points(d, "m.csv", "h" * 1_000_000 + "\n1,2\n"))
case("points-megabyte-cells", ["m.csv", "columns"])(
    lambda d: value_with_points(d, "m.csv", "a,b\n" + "1," * 500_000 + "\n"))
case("points-npy-3d", ["p.npy", "shape"])(
    lambda d: value_with_points(d, "p.npy", npy_bytes(np.zeros((2, 2, 2)))))
case("points-npy-wrong-width", ["p.npy", "shape"])(
    lambda d: value_with_points(d, "p.npy", npy_bytes(np.zeros((4, 3)))))
case("points-npy-0d", ["p.npy", "shape"])(
    lambda d: value_with_points(d, "p.npy", npy_bytes(np.float64(1.0))))
case("points-npy-strings", ["p.npy", "dtype"])(
    lambda d: value_with_points(d, "p.npy", npy_bytes(np.array([["1", "2"]]))))
case("points-npy-complex", ["p.npy", "complex"])(
    lambda d: value_with_points(d, "p.npy", npy_bytes(np.ones((2, 2), complex))))
case("points-npy-bool", ["p.npy", "bool"])(
    lambda d: value_with_points(d, "p.npy", npy_bytes(np.ones((2, 2), bool))))
case("points-npy-structured", ["p.npy", "dtype"])(
    lambda d: value_with_points(d, "p.npy", npy_bytes(np.zeros(2, dtype=[("a", "f8"), ("b", "f8")]))))
case("points-npy-object", ["p.npy", "Python objects"])(
    lambda d: value_with_points(d, "p.npy", npy_bytes(np.array([[1.0, None]], dtype=object),
                                                      allow_pickle=True)))
case("points-npy-truncated", ["p.npy", "truncated"])(
    lambda d: value_with_points(d, "p.npy", npy_bytes(np.ones((100, 2)))[:900]))
case("points-npy-header-only", ["p.npy"])(
    lambda d: value_with_points(d, "p.npy", npy_bytes(np.ones((100, 2)))[:128]))
case("points-npy-half-header", ["p.npy"])(
    lambda d: value_with_points(d, "p.npy", npy_bytes(np.ones((100, 2)))[:40]))
case("points-npy-zero-bytes", ["p.npy"])(lambda d: value_with_points(d, "p.npy", b""))
case("points-npy-garbage", ["p.npy"])(
    lambda d: value_with_points(d, "p.npy", b"\x93NUMPY\x01\x00garbage garbage"))
case("points-npy-not-npy", ["p.npy"])(lambda d: value_with_points(d, "p.npy", "a,b\n1,2\n"))
case("points-npy-pickle-file", ["p.npy"])(
    lambda d: value_with_points(d, "p.npy", b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00K\x01."))
case("points-npy-zero-rows", ["p.npy", "zero points"])(
    lambda d: value_with_points(d, "p.npy", npy_bytes(np.zeros((0, 2)))))
case("points-npy-is-npz", ["p.npy"])(
    lambda d: ["value", os.path.join(d, "model.npz"), "-p",
               shutil.copy(os.path.join(d, "model.npz"), os.path.join(d, "p.npy"))])


@case("points-npy-late-inf", ["late.npy", "point 48"])
def _(d):
    x = np.zeros((50, 2))
    x[47, 1] = np.inf
    return value_with_points(d, "late.npy", npy_bytes(x)) + ["--chunk-size", "5"]


case("points-stdin-empty", ["<stdin>", "zero points"], stdin=b"")(
    lambda d: ["value", os.path.join(d, "model.npz"), "-p", "-"])
case("points-stdin-binary", ["<stdin>", "binary"], stdin=b"\x00\x01\x02abc")(
    lambda d: ["value", os.path.join(d, "model.npz"), "-p", "-"])
case("points-directory", ["dir.csv", "directory"])(
    lambda d: ["value", os.path.join(d, "model.npz"), "-p", new_dir(d, "dir.csv")])
case("points-missing", ["nothing.csv", "no such"])(
    lambda d: ["value", os.path.join(d, "model.npz"), "-p", os.path.join(d, "nothing.csv")])
case("points-unknown-suffix", ["p.json", "format"])(lambda d: value_with_points(d, "p.json", "[1, 2]"))
case("at-megabyte", ["--at"])(
    lambda d: ["value", os.path.join(d, "model.npz"), "--at", "1," * 500_000])
case("at-text", ["--at", "numbers"])(lambda d: ["value", os.path.join(d, "model.npz"), "--at", "1,x"])
case("at-overflow", ["--at", "finite"])(
    lambda d: ["value", os.path.join(d, "model.npz"), "--at", "1e999,1"])


# ---------------------------------------------------------------- confint --train

case("train-missing", ["nothing.csv"])(lambda d: confint_with_train(d, os.path.join(d, "nothing.csv")))
case("train-empty", ["t.csv", "zero points"])(lambda d: confint_with_train(d, write(d, "t.csv", "")))
case("train-header-only", ["t.csv", "zero points"])(lambda d: confint_with_train(d, write(d, "t.csv", "a,b,y\n")))
case("train-directory", ["tdir", "directory"])(lambda d: confint_with_train(d, new_dir(d, "tdir")))
case("train-binary", ["t.csv", "binary"])(lambda d: confint_with_train(d, write(d, "t.csv", b"\x00\xff" * 100)))
case("train-no-target", ["t.csv", "'y'"])(lambda d: confint_with_train(d, write(d, "t.csv", "a,b,z\n1,2,3\n")))
case("train-nan", ["t.csv", "point 2"])(
    lambda d: confint_with_train(d, write(d, "t.csv", "a,b,y\n1,2,3\n4,nan,6\n")))
case("train-npy-object", ["t.npy", "Python objects"])(
    lambda d: confint_with_train(d, write(d, "t.npy", npy_bytes(np.array([[1, 2, None]], dtype=object),
                                                                allow_pickle=True))))
case("train-npy-truncated", ["t.npy", "truncated"])(
    lambda d: confint_with_train(d, write(d, "t.npy", npy_bytes(np.ones((100, 3)))[:500])))
case("train-too-few-rows", ["degrees of freedom"])(
    lambda d: confint_with_train(d, write(d, "t.csv", "a,b,y\n1,2,3\n4,5,6\n")))
case("train-stdin-empty", ["<stdin>", "zero points"], stdin=b"")(lambda d: confint_with_train(d, "-"))
case("train-ragged", ["t.csv", "line 3"])(
    lambda d: confint_with_train(d, write(d, "t.csv", "a,b,y\n1,2,3\n4,5\n")))


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_one_error_line(tmp_path, name):
    assert_case_refused(tmp_path, CASES[name])


# ---------------------------------------------------------------- accepted, not refused


@pytest.mark.parametrize("data", [
    "\ufeffa,b\n1,2\n".encode("utf-8"),
    "a,b\r\n1,2\r\n".encode(),
    "a,b\n1,2\n".encode("utf-16"),
    "\ufeffa,b\n1,2\n".encode("utf-16-be"),
    "# a comment\na,b\n1,2\n".encode(),
], ids=["utf8-bom", "crlf", "utf16-bom", "utf16-be-bom", "comment"])
def test_text_encodings_accepted(tmp_path, data):
    d = make_model_dir(tmp_path)
    out = succeeded(invoke(["value", Path(d, "model.npz"), "-p", write(d, "p.csv", data), "-q"]))
    reference = succeeded(invoke(["value", Path(d, "model.npz"), "--at", "1,2", "-q"]))
    assert out == reference


@pytest.mark.parametrize("array", [
    np.array([[1, 2]], dtype=np.int32), np.array([[1.0, 2.0]], dtype=">f8"),
    np.array([[1.0, 2.0]], dtype=np.float16), np.asfortranarray(np.array([[1.0, 2.0]] * 2)),
    np.array([1.0, 2.0]),
], ids=["int32", "big-endian", "float16", "fortran", "one-point"])
def test_npy_points_accepted(tmp_path, array):
    d = make_model_dir(tmp_path)
    succeeded(invoke(["value", Path(d, "model.npz"), "-p", write(d, "p.npy", npy_bytes(array)), "-q"]))
