"""Hostile and broken input (issue 8).

Every case below runs the real CLI on a bad file and asserts: exit 2, exactly
one ``Error: ...`` line on standard error naming the file and the problem, no
traceback, no output file and no ``.part`` temporary left behind, and the
existing output file ``out.csv`` unchanged.
"""

import io
import os
import shutil
import struct
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from hostile_helpers import (GOOD_SPEC_TEXT, PRECIOUS, assert_one_line_error, crashed, good_tensors,
                             invoke, leftovers, make_model_dir, write_h5, write_npz)

KERAS_DATA = Path(__file__).parent / "data" / "keras"
CASES = {}


def case(name, words=(), stdin=None):
    """Register ``builder(d) -> argv`` (the command first); ``words`` must be in the error line."""
    def register(builder):
        CASES[name] = (builder, tuple(words), stdin)
        return builder
    return register


def write(d, name, data):
    path = os.path.join(d, name)
    with open(path, "wb" if isinstance(data, bytes) else "w") as handle:
        handle.write(data)
    return path


def value_with_points(d, name, data):
    return ["value", os.path.join(d, "model.npz"), "-p", write(d, name, data)]


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


def npy_bytes(array, allow_pickle=False):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


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
    lambda d: ["value", os.path.join(d, "model.npz"), "-p", _mkdir(d, "dir.csv")])
case("points-missing", ["nothing.csv", "no such"])(
    lambda d: ["value", os.path.join(d, "model.npz"), "-p", os.path.join(d, "nothing.csv")])
case("points-unknown-suffix", ["p.json", "format"])(lambda d: value_with_points(d, "p.json", "[1, 2]"))
case("at-megabyte", ["--at"])(
    lambda d: ["value", os.path.join(d, "model.npz"), "--at", "1," * 500_000])
case("at-text", ["--at", "numbers"])(lambda d: ["value", os.path.join(d, "model.npz"), "--at", "1,x"])
case("at-overflow", ["--at", "finite"])(
    lambda d: ["value", os.path.join(d, "model.npz"), "--at", "1e999,1"])


def _mkdir(d, name):
    path = os.path.join(d, name)
    os.mkdir(path)
    return path


# ---------------------------------------------------------------- models

case("model-missing", ["nothing.npz", "no such"])(
    lambda d: ["value", os.path.join(d, "nothing.npz"), "--at", "1,2"])
case("model-directory", ["mdir", "directory"])(lambda d: ["value", _mkdir(d, "mdir"), "--at", "1,2"])
case("model-zero-byte-npz", ["z.npz", "empty"])(
    lambda d: ["value", write(d, "z.npz", b""), "--spec", os.path.join(d, "model.yaml"),
               "--at", "1,2"])
case("model-zero-byte-h5", ["z.h5", "empty"])(
    lambda d: ["value", write(d, "z.h5", b""), "--at", "1,2"])
case("model-text-named-h5", ["t.h5", "not an HDF5, NPZ or safetensors"])(
    lambda d: ["value", write(d, "t.h5", "W0: [1, 2]\n"), "--at", "1,2"])
case("model-pickle-named-npz", ["p.npz", "pickle", "jaccli.export"])(
    lambda d: ["value", write(d, "p.npz", b"\x80\x04K\x01."), "--at", "1,2"])
case("model-npy-named-npz", ["single.npz", "single NPY array"])(
    lambda d: ["value", write(d, "single.npz", npy_bytes(np.zeros(3))), "--at", "1,2"])


@case("model-truncated-h5", ["cut.h5"])
def _(d):
    model_with(d, "full", good_tensors(), fmt="h5")
    data = Path(d, "full.h5").read_bytes()
    write(d, "cut.yaml", GOOD_SPEC_TEXT)
    return ["value", write(d, "cut.h5", data[:len(data) // 2]), "--at", "1,2"]


@case("model-h5-superblock-only", ["cut.h5"])
def _(d):
    model_with(d, "full", good_tensors(), fmt="h5")
    write(d, "cut.yaml", GOOD_SPEC_TEXT)
    return ["value", write(d, "cut.h5", Path(d, "full.h5").read_bytes()[:100]), "--at", "1,2"]


@case("model-truncated-npz", ["cut.npz"])
def _(d):
    data = Path(d, "model.npz").read_bytes()
    write(d, "cut.yaml", GOOD_SPEC_TEXT)
    return ["value", write(d, "cut.npz", data[:len(data) - 30]), "--at", "1,2"]


@case("model-npz-corrupt-member", ["bad.npz", "W0"])
def _(d):
    data = bytearray(Path(d, "model.npz").read_bytes())
    start = data.index(b"W0.npy") + 6 + 128 + 8  # inside W0's float data
    data[start:start + 8] = b"\xff" * 8
    write(d, "bad.yaml", GOOD_SPEC_TEXT)
    return ["value", write(d, "bad.npz", bytes(data)), "--at", "1,2"]


@case("model-npz-member-not-npy", ["bad.npz", "W0"])
def _(d):
    with zipfile.ZipFile(os.path.join(d, "bad.npz"), "w") as archive:
        archive.writestr("W0.npy", "not an array")
    write(d, "bad.yaml", GOOD_SPEC_TEXT)
    return ["value", os.path.join(d, "bad.npz"), "--at", "1,2"]


@case("model-npz-huge-declared-shape", ["bad.npz", "W0"])
def _(d):
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (100000, 1000000), }"
    header += " " * (117 - len(header)) + "\n"
    member = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + b"\0" * 64
    with zipfile.ZipFile(os.path.join(d, "bad.npz"), "w") as archive:
        archive.writestr("W0.npy", member)
    write(d, "bad.yaml", GOOD_SPEC_TEXT)
    return ["value", os.path.join(d, "bad.npz"), "--at", "1,2"]


case("model-npz-object-array", ["obj.npz", "W0", "pickle"])(
    lambda d: model_with(d, "obj", with_tensor(W0=np.array([[1, None, 2], [3, 4, 5]], dtype=object))))
case("model-missing-tensor", ["miss.npz", "no tensor 'W1'"])(
    lambda d: model_with(d, "miss", {k: v for k, v in good_tensors().items() if k != "W1"}))
case("model-transposed-kernel", ["tr.npz", "W0", "transpose", "out_in"])(
    lambda d: model_with(d, "tr", with_tensor(W0=good_tensors()["W0"].T.copy())))
case("model-wrong-kernel", ["wr.npz", "W1", "shape"])(
    lambda d: model_with(d, "wr", with_tensor(W1=np.ones((4, 1)))))
case("model-kernel-1d", ["k.npz", "W0", "2-D"])(lambda d: model_with(d, "k", with_tensor(W0=np.ones(6))))
case("model-kernel-0d", ["k.npz", "W0", "2-D"])(lambda d: model_with(d, "k", with_tensor(W0=np.float64(1))))
case("model-bias-2d", ["b.npz", "b0", "(3,)"])(lambda d: model_with(d, "b", with_tensor(b0=np.ones((2, 3)))))
case("model-bias-wrong-length", ["b.npz", "b1"])(lambda d: model_with(d, "b", with_tensor(b1=np.ones(2))))
case("model-nan-weight", ["n.npz", "W1", "non-finite"])(
    lambda d: model_with(d, "n", with_tensor(W1=np.array([[1.0], [np.nan], [0.0]]))))
case("model-inf-bias", ["n.npz", "b0", "non-finite"])(
    lambda d: model_with(d, "n", with_tensor(b0=np.array([1.0, -np.inf, 0.0]))))
case("model-bool-weight", ["t.npz", "W0", "bool"])(
    lambda d: model_with(d, "t", with_tensor(W0=np.ones((2, 3), bool))))
case("model-string-weight", ["t.npz", "W0"])(
    lambda d: model_with(d, "t", with_tensor(W0=np.full((2, 3), "1.0"))))
case("model-bytes-weight", ["t.npz", "W0"])(
    lambda d: model_with(d, "t", with_tensor(W0=np.full((2, 3), b"1.0"))))
case("model-complex-weight", ["t.npz", "W0", "complex"])(
    lambda d: model_with(d, "t", with_tensor(W0=np.ones((2, 3), complex))))
case("model-structured-weight", ["t.npz", "W0"])(
    lambda d: model_with(d, "t", with_tensor(W0=np.zeros((2, 3), dtype=[("r", "f8"), ("i", "f8")]))))
case("model-longdouble-overflow", ["t.npz", "W0", "non-finite"])(
    lambda d: model_with(d, "t", with_tensor(W0=np.full((2, 3), np.longdouble("1e4000")))))
case("model-h5-nan-weight", ["n.h5", "W0", "non-finite"])(
    lambda d: model_with(d, "n", with_tensor(W0=np.full((2, 3), np.nan)), fmt="h5"))
case("model-h5-bool-weight", ["t.h5", "W0"])(
    lambda d: model_with(d, "t", with_tensor(W0=np.ones((2, 3), bool)), fmt="h5"))


@case("model-zero-units", ["zu.npz"])
def _(d):
    tensors = {"W0": np.ones((2, 0)), "b0": np.ones(0), "W1": np.ones((0, 1)), "b1": np.ones(1)}
    return model_with(d, "zu", tensors, spec="layers: [{activation: tanh}, {activation: linear}]\n")


@case("model-h5-group-not-dataset", ["g.h5", "W0", "group"])
def _(d):
    path = os.path.join(d, "g.h5")
    with h5py.File(path, "w") as handle:
        for name, value in good_tensors().items():
            if name == "W0":
                handle.create_group("W0")["x"] = value
            else:
                handle[name] = value
    write(d, "g.yaml", GOOD_SPEC_TEXT)
    return ["value", path, "--at", "1,2"]


@case("model-h5-vlen-strings", ["s.h5", "W0"])
def _(d):
    path = model_with(d, "s", {k: v for k, v in good_tensors().items() if k != "W0"}, fmt="h5")[1]
    with h5py.File(path, "a") as handle:
        handle.create_dataset("W0", data=np.array([["a", "b", "c"]] * 2, dtype=object),
                              dtype=h5py.string_dtype())
    return ["value", path, "--at", "1,2"]


@case("model-h5-external-link", ["link.h5", "W0", "another file"])
def _(d):
    write_h5(os.path.join(d, "elsewhere.h5"), good_tensors())
    path = os.path.join(d, "link.h5")
    with h5py.File(path, "w") as handle:
        for name, value in good_tensors().items():
            if name == "W0":
                handle["W0"] = h5py.ExternalLink("elsewhere.h5", "/W0")
            else:
                handle[name] = value
    write(d, "link.yaml", GOOD_SPEC_TEXT)
    return ["value", path, "--at", "1,2"]


@case("model-h5-external-storage", ["ext.h5", "W0", "external"])
def _(d):
    raw = os.path.join(d, "raw.bin")
    good_tensors()["W0"].tofile(raw)
    path = os.path.join(d, "ext.h5")
    with h5py.File(path, "w") as handle:
        for name, value in good_tensors().items():
            if name == "W0":
                handle.create_dataset("W0", shape=(2, 3), dtype="<f8", external=[(raw, 0, 48)])
            else:
                handle[name] = value
    write(d, "ext.yaml", GOOD_SPEC_TEXT)
    return ["value", path, "--at", "1,2"]


@case("model-h5-huge-dataset", ["huge.h5", "W0"])
def _(d):
    path = os.path.join(d, "huge.h5")
    with h5py.File(path, "w") as handle:
        for name, value in good_tensors().items():
            if name == "W0":  # 8 TB declared, a few bytes stored (unwritten chunks)
                handle.create_dataset("W0", shape=(2, 500_000_000_000), dtype="<f8",
                                      chunks=(1, 1024))
            else:
                handle[name] = value
    write(d, "huge.yaml", GOOD_SPEC_TEXT)
    return ["value", path, "--at", "1,2"]


@case("model-npz-spec-not-string", ["ns.npz", "jaccli_spec", "string"])
def _(d):
    return ["value", write_npz(os.path.join(d, "ns.npz"),
                               dict(good_tensors(), jaccli_spec=np.arange(3.0))), "--at", "1,2"]


@case("model-npz-spec-bad-yaml", ["ns.npz", "jaccli_spec", "YAML"])
def _(d):
    return ["value", write_npz(os.path.join(d, "ns.npz"),
                               dict(good_tensors(), jaccli_spec=np.array("layers: [\n"))),
            "--at", "1,2"]


@case("model-npz-spec-pickled", ["ns.npz", "jaccli_spec", "pickle"])
def _(d):
    return ["value", write_npz(os.path.join(d, "ns.npz"),
                               dict(good_tensors(), jaccli_spec=np.array([{"x": 1}], dtype=object))),
            "--at", "1,2"]


@case("model-npz-spec-impossible-code-point", ["ns.npz", "jaccli_spec", "not valid text"])
def _(d):
    """Found by the fuzzer: a UCS-4 code unit beyond U+10FFFF made CPython raise SystemError."""
    raw = bytearray(npy_bytes(np.array("layers: []")))
    raw[-2:] = b"\xff\xff"
    with zipfile.ZipFile(os.path.join(d, "ns.npz"), "w") as archive:
        for name, value in good_tensors().items():
            archive.writestr(f"{name}.npy", npy_bytes(value))
        archive.writestr("jaccli_spec.npy", bytes(raw))
    return ["value", os.path.join(d, "ns.npz"), "--at", "1,2"]


@case("model-h5-spec-attr-not-string", ["ha.h5", "jaccli_spec"])
def _(d):
    path = write_h5(os.path.join(d, "ha.h5"), good_tensors())
    with h5py.File(path, "a") as handle:
        handle.attrs["jaccli_spec"] = np.arange(3)
    return ["value", path, "--at", "1,2"]


@case("model-h5-spec-attr-python-tag", ["ha.h5", "jaccli_spec", "python/object"])
def _(d):
    path = write_h5(os.path.join(d, "ha.h5"), good_tensors())
    with h5py.File(path, "a") as handle:
        handle.attrs["jaccli_spec"] = "!!python/object/apply:os.getcwd []\n"
    return ["value", path, "--at", "1,2"]


case("model-no-spec", ["nospec.npz", "no spec found"])(
    lambda d: model_with(d, "nospec", good_tensors(), spec=None))
case("model-spec-names-missing-tensor", ["sn.npz", "'dense/kernel'"])(
    lambda d: model_with(d, "sn", good_tensors(), spec="layers:\n - {units: 3, weight: dense/kernel}\n"))


# ---------------------------------------------------------------- specs

case("spec-zero-byte", ["s.yaml", "empty"])(lambda d: with_spec(d, ""))
case("spec-comments-only", ["s.yaml", "empty"])(lambda d: with_spec(d, "# nothing\n"))
case("spec-yaml-list", ["s.yaml", "mapping"])(lambda d: with_spec(d, "- units: 3\n- units: 1\n"))
case("spec-yaml-scalar", ["s.yaml", "mapping"])(lambda d: with_spec(d, "42\n"))
case("spec-yaml-string", ["s.yaml", "mapping"])(lambda d: with_spec(d, "just some text\n"))
case("spec-python-tag", ["s.yaml", "line 1", "python/object/apply"])(
    lambda d: with_spec(d, "!!python/object/apply:os.system ['echo hi']\n"))
case("spec-python-tag-nested", ["s.yaml", "line 3", "python/name"])(
    lambda d: with_spec(d, "inputs: 2\nlayers:\n  - {units: 3, activation: !!python/name:os.system }\n"))
case("spec-local-tag", ["s.yaml", "!Model"])(lambda d: with_spec(d, "!Model {layers: []}\n"))
case("spec-syntax-error", ["s.yaml", "line 3", "YAML"])(
    lambda d: with_spec(d, "layers:\n  - {units: 3\n"))
case("spec-tab-indent", ["s.yaml", "YAML"])(lambda d: with_spec(d, "layers:\n\t- units: 3\n"))
case("spec-duplicate-key", ["s.yaml", "duplicate", "'layers'", "line 3"])(
    lambda d: with_spec(d, "layers: [{units: 3}]\ninputs: 2\nlayers: [{units: 1}]\n"))
case("spec-duplicate-layer-key", ["s.yaml", "duplicate", "'units'"])(
    lambda d: with_spec(d, "layers:\n  - {units: 3, activation: tanh, units: 4}\n  - {units: 1}\n"))
case("spec-unknown-field", ["s.yaml", "activaton"])(
    lambda d: with_spec(d, "layers:\n  - {units: 3, activaton: tanh}\n  - {units: 1}\n"))
case("spec-unknown-top-field", ["s.yaml", "layer"])(lambda d: with_spec(d, "layer: []\n"))
case("spec-non-string-key", ["s.yaml", "unknown field"])(
    lambda d: with_spec(d, "1: 2\nlayers: [{units: 3}, {units: 1}]\n"))
case("spec-unknown-activation", ["s.yaml", "'tanhh'", "sigmoid"])(
    lambda d: with_spec(d, "layers:\n  - {units: 3, activation: tanhh}\n  - {units: 1}\n"))
case("spec-activation-long-string", ["s.yaml", "unknown activation"])(
    lambda d: with_spec(d, "layers:\n  - {units: 3, activation: " + "q" * 200_000 + "}\n"))
case("spec-empty-layers", ["s.yaml", "layers"])(lambda d: with_spec(d, "layers: []\n"))
case("spec-layers-mapping", ["s.yaml", "layers"])(lambda d: with_spec(d, "layers: {units: 3}\n"))
case("spec-layer-scalar", ["s.yaml", "layers[0]"])(lambda d: with_spec(d, "layers: [3, 1]\n"))
case("spec-bad-layout", ["s.yaml", "layout"])(
    lambda d: with_spec(d, "layout: sideways\nlayers: [{units: 3}, {units: 1}]\n"))
case("spec-timestamp-layout", ["s.yaml", "layout"])(
    lambda d: with_spec(d, "layout: 2001-12-14\nlayers: [{units: 3}, {units: 1}]\n"))
case("spec-units-bool", ["s.yaml", "units"])(lambda d: with_spec(d, "layers: [{units: true}]\n"))
case("spec-units-float", ["s.yaml", "units"])(lambda d: with_spec(d, "layers: [{units: 3.5}]\n"))
case("spec-units-huge", ["s.yaml"])(
    lambda d: with_spec(d, "layers: [{units: " + "9" * 500 + "}, {units: 1}]\n"))
case("spec-inputs-huge-count", ["s.yaml", "inputs"])(
    lambda d: with_spec(d, "inputs: 1000000000000\nlayers: [{units: 3}, {units: 1}]\n"))
case("spec-outputs-huge-count", ["s.yaml", "outputs"])(
    lambda d: with_spec(d, "outputs: 1000000000000\nlayers: [{units: 3}, {units: 1}]\n"))
case("spec-inputs-binary", ["s.yaml", "inputs"])(
    lambda d: with_spec(d, "inputs: !!binary aGVsbG8=\nlayers: [{units: 3}, {units: 1}]\n"))
case("spec-inputs-set", ["s.yaml", "inputs"])(
    lambda d: with_spec(d, "inputs: !!set {a, b}\nlayers: [{units: 3}, {units: 1}]\n"))
case("spec-inputs-duplicate-names", ["s.yaml", "twice"])(
    lambda d: with_spec(d, "inputs: [a, a]\nlayers: [{units: 3}, {units: 1}]\n"))
case("spec-inputs-wrong-count", ["s.yaml"])(
    lambda d: with_spec(d, "inputs: [a, b, c]\nlayers: [{units: 3}, {units: 1}]\n"))
case("spec-outputs-wrong-count", ["s.yaml", "outputs"])(
    lambda d: with_spec(d, "outputs: [y, z]\nlayers: [{units: 3}, {units: 1}]\n"))
case("spec-softmax-not-last", ["s.yaml", "softmax"])(
    lambda d: with_spec(d, "layers: [{units: 3, activation: softmax}, {units: 1}]\n"))
case("spec-alpha-wrong-activation", ["s.yaml", "alpha"])(
    lambda d: with_spec(d, "layers: [{units: 3, activation: tanh, alpha: 1}, {units: 1}]\n"))
case("spec-alpha-huge-int", ["s.yaml", "alpha"])(
    lambda d: with_spec(d, "layers: [{units: 3, activation: elu, alpha: " + "9" * 400 + "}, {units: 1}]\n"))
case("spec-alpha-nan", ["s.yaml", "alpha"])(
    lambda d: with_spec(d, "layers: [{units: 3, activation: elu, alpha: .nan}, {units: 1}]\n"))
case("spec-weight-not-name", ["s.yaml", "weight"])(
    lambda d: with_spec(d, "layers: [{units: 3, weight: [1, 2]}, {units: 1}]\n"))
case("spec-weight-null", ["s.yaml", "weight"])(
    lambda d: with_spec(d, "layers: [{units: 3, weight: null}, {units: 1}]\n"))

_LAYERS = "layers: [{units: 3, activation: tanh}, {units: 1}]\n"
case("spec-scale-wrong-length", ["s.yaml", "input_scaling.scale", "3 values"])(
    lambda d: with_spec(d, "input_scaling: {scale: [1, 2, 3]}\n" + _LAYERS))
case("spec-scale-zero", ["s.yaml", "input_scaling.scale", "zero"])(
    lambda d: with_spec(d, "input_scaling: {scale: [1, 0]}\n" + _LAYERS))
case("spec-scale-text", ["s.yaml", "input_scaling.scale"])(
    lambda d: with_spec(d, "input_scaling: {scale: [one, two]}\n" + _LAYERS))
case("spec-scale-nested", ["s.yaml", "input_scaling.offset"])(
    lambda d: with_spec(d, "input_scaling: {offset: [[1, 2]]}\n" + _LAYERS))
case("spec-scale-huge-int", ["s.yaml", "input_scaling.scale"])(
    lambda d: with_spec(d, "input_scaling: {scale: [1, " + "9" * 400 + "]}\n" + _LAYERS))
case("spec-scale-nan", ["s.yaml", "input_scaling.offset"])(
    lambda d: with_spec(d, "input_scaling: {offset: [.nan, 0]}\n" + _LAYERS))
case("spec-scale-mapping-wrong", ["s.yaml", "input_scaling"])(
    lambda d: with_spec(d, "input_scaling: [1, 2]\n" + _LAYERS))
case("spec-scale-unknown-field", ["s.yaml", "input_scaling.mean"])(
    lambda d: with_spec(d, "input_scaling: {mean: [1, 2]}\n" + _LAYERS))
case("spec-not-utf8", ["s.yaml", "UTF-8"])(lambda d: with_spec(d, b"layers: [{units: \xe9}]\n"))
case("spec-directory", ["sdir", "directory"])(
    lambda d: ["value", os.path.join(d, "model.npz"), "--spec", _mkdir(d, "sdir"), "--at", "1,2"])
case("spec-missing", ["none.yaml"])(
    lambda d: ["value", os.path.join(d, "model.npz"), "--spec", os.path.join(d, "none.yaml"),
               "--at", "1,2"])
case("spec-too-large", ["s.yaml", "MB"])(
    lambda d: with_spec(d, _LAYERS + ("# padding\n" * 120_000)))
case("spec-deep-nesting", ["s.yaml", "deep"])(lambda d: with_spec(d, "layers: " + "[" * 100_000))
case("spec-deep-nesting-closed", ["s.yaml", "deep"])(
    lambda d: with_spec(d, "inputs: " + "[" * 5000 + "]" * 5000 + "\n" + _LAYERS))


@case("spec-billion-laughs", ["s.yaml", "alias"])
def _(d):
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    return with_spec(d, "\n".join(lines) + "\nlayers: *a9\n")


@case("spec-billion-laughs-in-units", ["s.yaml", "alias"])
def _(d):
    parts = ["&a0 [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]"]
    for i in range(1, 9):
        parts.append(f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    return with_spec(d, "layers:\n  - units: [" + ", ".join(parts) + "]\n")


@case("spec-recursive-alias", ["s.yaml"])
def _(d):
    return with_spec(d, "inputs: &r [a, *r]\n" + _LAYERS)


# ---------------------------------------------------------------- outputs

_VALUE = lambda d: ["value", os.path.join(d, "model.npz"), "-p", os.path.join(d, "pts.csv")]  # noqa: E731

case("output-missing-directory", ["does not exist"])(
    lambda d: _VALUE(d) + ["-o", os.path.join(d, "no", "such", "out.csv")])
case("output-unknown-extension", ["out.xlsx", "format"])(
    lambda d: _VALUE(d) + ["-o", os.path.join(d, "out.xlsx")])
case("output-is-directory", ["odir", "directory"])(lambda d: _VALUE(d) + ["-o", _mkdir(d, "odir")])
case("output-npy-to-stdout", ["standard output"])(lambda d: _VALUE(d) + ["--format", "npy"])
case("output-onto-points", ["pts.csv", "inputs"])(
    lambda d: _VALUE(d) + ["-o", os.path.join(d, "pts.csv")])
case("output-onto-model", ["model.npz", "inputs"])(
    lambda d: _VALUE(d) + ["-o", os.path.join(d, "model.npz")])
case("output-onto-spec-option", ["model.yaml", "inputs"])(
    lambda d: _VALUE(d) + ["--spec", os.path.join(d, "model.yaml"), "--format", "csv",
                           "-o", os.path.join(d, "model.yaml")])
case("output-onto-discovered-spec", ["model.yaml", "inputs"])(
    lambda d: _VALUE(d) + ["--format", "csv", "-o", os.path.join(d, "model.yaml")])


@case("output-onto-points-symlink", ["link.csv", "inputs"])
def _(d):
    os.symlink(os.path.join(d, "pts.csv"), os.path.join(d, "link.csv"))
    return _VALUE(d) + ["-o", os.path.join(d, "link.csv")]


@case("output-onto-points-hardlink", ["hard.csv", "inputs"])
def _(d):
    os.link(os.path.join(d, "pts.csv"), os.path.join(d, "hard.csv"))
    return _VALUE(d) + ["-o", os.path.join(d, "hard.csv")]


@case("output-onto-training-file", ["train.csv", "inputs"])
def _(d):
    return ["confint", os.path.join(d, "model.npz"), "--train", os.path.join(d, "train.csv"),
            "-p", os.path.join(d, "pts.csv"), "-o", os.path.join(d, "train.csv")]


# ---------------------------------------------------------------- confint --train

def _confint(d, train):
    return ["confint", os.path.join(d, "model.npz"), "--train", train, "-p", os.path.join(d, "pts.csv")]


case("train-missing", ["nothing.csv"])(lambda d: _confint(d, os.path.join(d, "nothing.csv")))
case("train-empty", ["t.csv", "zero points"])(lambda d: _confint(d, write(d, "t.csv", "")))
case("train-header-only", ["t.csv", "zero points"])(lambda d: _confint(d, write(d, "t.csv", "a,b,y\n")))
case("train-directory", ["tdir", "directory"])(lambda d: _confint(d, _mkdir(d, "tdir")))
case("train-binary", ["t.csv", "binary"])(lambda d: _confint(d, write(d, "t.csv", b"\x00\xff" * 100)))
case("train-no-target", ["t.csv", "'y'"])(lambda d: _confint(d, write(d, "t.csv", "a,b,z\n1,2,3\n")))
case("train-nan", ["t.csv", "point 2"])(
    lambda d: _confint(d, write(d, "t.csv", "a,b,y\n1,2,3\n4,nan,6\n")))
case("train-npy-object", ["t.npy", "Python objects"])(
    lambda d: _confint(d, write(d, "t.npy", npy_bytes(np.array([[1, 2, None]], dtype=object),
                                                      allow_pickle=True))))
case("train-npy-truncated", ["t.npy", "truncated"])(
    lambda d: _confint(d, write(d, "t.npy", npy_bytes(np.ones((100, 3)))[:500])))
case("train-too-few-rows", ["degrees of freedom"])(
    lambda d: _confint(d, write(d, "t.csv", "a,b,y\n1,2,3\n4,5,6\n")))
case("train-stdin-empty", ["<stdin>", "zero points"], stdin=b"")(lambda d: _confint(d, "-"))
case("train-ragged", ["t.csv", "line 3"])(
    lambda d: _confint(d, write(d, "t.csv", "a,b,y\n1,2,3\n4,5\n")))


# ---------------------------------------------------------------- Keras paths

case("keras-zero-byte", ["k.keras", "empty"])(lambda d: ["value", write(d, "k.keras", b""), "--at", "1,2"])
case("keras-text", ["k.keras", "damaged"])(
    lambda d: ["value", write(d, "k.keras", "hello\n"), "--at", "1,2"])


@case("keras-zip-not-keras", ["k.keras", "config.json"])
def _(d):
    with zipfile.ZipFile(os.path.join(d, "k.keras"), "w") as archive:
        archive.writestr("readme.txt", "hello")
    return ["value", os.path.join(d, "k.keras"), "--at", "1,2"]


@case("keras-weights-h5-no-config", ["weights.h5", "no spec"])
def _(d):
    shutil.copy(KERAS_DATA / "weights_only_k2.h5", os.path.join(d, "weights.h5"))
    return ["value", os.path.join(d, "weights.h5"), "--at", "1,2,3"]


@case("keras-weights-archive-no-config", ["w.weights.h5"])
def _(d):
    shutil.copy(KERAS_DATA / "weights_only.weights.h5", os.path.join(d, "w.weights.h5"))
    return ["value", os.path.join(d, "w.weights.h5"), "--at", "1,2,3"]


@case("keras-garbage-weights-with-spec", ["k.keras", "model.weights.h5"])
def _(d):
    with zipfile.ZipFile(os.path.join(d, "k.keras"), "w") as archive:
        archive.writestr("config.json", "{}")
        archive.writestr("model.weights.h5", "not hdf5 at all")
    return ["value", os.path.join(d, "k.keras"), "--spec", os.path.join(d, "model.yaml"),
            "--at", "1,2"]


@case("keras-no-weights-with-spec", ["k.keras", "model.weights.h5"])
def _(d):
    with zipfile.ZipFile(os.path.join(d, "k.keras"), "w") as archive:
        archive.writestr("config.json", "{}")
    return ["value", os.path.join(d, "k.keras"), "--spec", os.path.join(d, "model.yaml"),
            "--at", "1,2"]


@case("keras-deep-json", ["deep.h5", "model_config"])
def _(d):
    path = os.path.join(d, "deep.h5")
    with h5py.File(path, "w") as handle:
        handle.attrs["model_config"] = "[" * 200_000
    return ["value", path, "--at", "1,2"]


@case("keras-config-not-a-model", ["k.keras"])
def _(d):
    with zipfile.ZipFile(os.path.join(d, "k.keras"), "w") as archive:
        archive.writestr("config.json", '{"class_name": 5, "config": [1, 2]}')
        archive.writestr("model.weights.h5", "x")
    return ["value", os.path.join(d, "k.keras"), "--at", "1,2"]


@case("keras-lambda-h5", ["lambda_canary.h5", "Lambda"])
def _(d):
    return ["value", shutil.copy(KERAS_DATA / "lambda_canary.h5", d), "--at", "1,2"]


# ---------------------------------------------------------------- usage errors: one line too

case("usage-unknown-option", ["--foo", "value --help"])(
    lambda d: ["value", os.path.join(d, "model.npz"), "--foo", "--at", "1,2"])
case("usage-missing-argument", ["MODEL"])(lambda d: ["value"])
case("usage-unknown-command", ["valu", "--help"])(lambda d: ["valu", "x"])
case("usage-chunk-size-zero", ["--chunk-size"])(
    lambda d: ["value", os.path.join(d, "model.npz"), "--at", "1,2", "--chunk-size", "0"])
case("usage-dtype", ["--dtype"])(
    lambda d: ["value", os.path.join(d, "model.npz"), "--at", "1,2", "--dtype", "float16"])
case("usage-level", ["--level"])(
    lambda d: _confint(d, os.path.join(d, "train.csv")) + ["--level", "1.5"])
case("usage-train-missing", ["--train"])(
    lambda d: ["confint", os.path.join(d, "model.npz"), "--at", "1,2"])
case("usage-points-and-at", ["--points"])(
    lambda d: _VALUE(d) + ["--at", "1,2"])


# ---------------------------------------------------------------- the test

@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_one_error_line(tmp_path, name):
    d = make_model_dir(tmp_path)
    builder, words, stdin = CASES[name]
    args = builder(d)
    out = os.path.join(d, "out.csv")
    if "-o" not in args and "--format" not in args:
        args = args + ["-o", out]
    result = invoke(args, input=stdin)
    assert_one_line_error(result, d, words, precious=out)


# ---------------------------------------------------------------- accepted, not refused


def _ok(result):
    assert crashed(result) is None, crashed(result)
    assert result.exit_code == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("data", [
    "\ufeffa,b\n1,2\n".encode("utf-8"),
    "a,b\r\n1,2\r\n".encode(),
    "a,b\n1,2\n".encode("utf-16"),
    "\ufeffa,b\n1,2\n".encode("utf-16-be"),
    "# a comment\na,b\n1,2\n".encode(),
], ids=["utf8-bom", "crlf", "utf16-bom", "utf16-be-bom", "comment"])
def test_text_encodings_accepted(tmp_path, data):
    d = make_model_dir(tmp_path)
    out = _ok(invoke(["value", Path(d, "model.npz"), "-p", write(d, "p.csv", data), "-q"]))
    reference = _ok(invoke(["value", Path(d, "model.npz"), "--at", "1,2", "-q"]))
    assert out == reference


@pytest.mark.parametrize("array", [
    np.array([[1, 2]], dtype=np.int32), np.array([[1.0, 2.0]], dtype=">f8"),
    np.array([[1.0, 2.0]], dtype=np.float16), np.asfortranarray(np.array([[1.0, 2.0]] * 2)),
    np.array([1.0, 2.0]),
], ids=["int32", "big-endian", "float16", "fortran", "one-point"])
def test_npy_points_accepted(tmp_path, array):
    d = make_model_dir(tmp_path)
    _ok(invoke(["value", Path(d, "model.npz"), "-p", write(d, "p.npy", npy_bytes(array)), "-q"]))


@pytest.mark.parametrize("dtype", [np.int8, np.int64, np.uint16, np.float32, np.float16, ">f8"])
def test_integer_and_narrow_weights_accepted(tmp_path, dtype):
    d = make_model_dir(tmp_path)
    tensors = {k: (v * 3).astype(dtype) for k, v in good_tensors().items()}
    args = model_with(d, "m", tensors)
    _ok(invoke(args))


def test_benign_yaml_anchor_accepted(tmp_path):
    d = make_model_dir(tmp_path)
    text = ("input_scaling: {offset: &z [0, 0], scale: [1, 1]}\n"
            "output_scaling: {offset: [0], scale: [1]}\n"
            "layers:\n  - &hidden {units: 3, activation: tanh}\n  - {units: 1}\n"
            "inputs: [a, b]\n")
    _ok(invoke(with_spec(d, text)))


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


# ---------------------------------------------------------------- resource guards


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
