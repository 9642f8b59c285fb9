"""Hostile and broken input (issue 8): model files (NPZ, HDF5, Keras) and their tensors.

Every case below runs the real CLI on a bad file and asserts: exit 2, exactly
one ``Error: ...`` line on standard error naming the file and the problem, no
traceback, no output file and no ``.part`` temporary left behind, and the
existing output file ``out.csv`` unchanged (``hostile_helpers.assert_case_refused``).
Also: integer and narrow weights, which must be accepted.
"""

import os
import shutil
import struct
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from hostile_helpers import (GOOD_SPEC_TEXT, Cases, assert_case_refused, good_tensors, invoke,
                             make_model_dir, model_with, new_dir, npy_bytes, succeeded, with_tensor,
                             write, write_h5, write_npz)

KERAS_DATA = Path(__file__).parent / "data" / "keras"
CASES = Cases()
case = CASES.case


# ---------------------------------------------------------------- models

case("model-missing", ["nothing.npz", "no such"])(
    lambda d: ["value", os.path.join(d, "nothing.npz"), "--at", "1,2"])
case("model-directory", ["mdir", "directory"])(lambda d: ["value", new_dir(d, "mdir"), "--at", "1,2"])
case("model-zero-byte-npz", ["z.npz", "empty"])(
    lambda d: ["value", write(d, "z.npz", b""), "--spec", os.path.join(d, "model.yaml"),
               "--at", "1,2"])
case("model-zero-byte-h5", ["z.h5", "empty"])(
    lambda d: ["value", write(d, "z.h5", b""), "--at", "1,2"])
case("model-text-named-h5", ["t.h5", "not an HDF5, NPZ or safetensors"])(
    lambda d: ["value", write(d, "t.h5", "W0: [1, 2]\n"), "--at", "1,2"])
case("model-is-a-spec", ["m.yaml", "this is a spec", "--spec"])(
    lambda d: ["value", write(d, "m.yaml", GOOD_SPEC_TEXT), "--at", "1,2"])
case("model-is-a-spec-named-txt", ["m.txt", "this is a spec", "--spec"])(
    lambda d: ["value", write(d, "m.txt", GOOD_SPEC_TEXT), "--at", "1,2"])
for url in ("s3://bucket/model.onnx", "https://example.org/model.npz", "gs://b/m.h5"):
    case(f"model-url-{url.split(':')[0]}", [url, "URLs are not read", "download"])(
        lambda d, url=url: ["value", url, "--at", "1,2"])
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


def h5_with_w0(d, stem, put_w0):
    """A good HDF5 model whose W0 is written by ``put_w0(handle)``, its spec beside it."""
    path = os.path.join(d, f"{stem}.h5")
    with h5py.File(path, "w") as handle:
        for name, value in good_tensors().items():
            if name != "W0":
                handle[name] = value
        put_w0(handle)
    write(d, f"{stem}.yaml", GOOD_SPEC_TEXT)
    return ["value", path, "--at", "1,2"]


case("model-h5-group-not-dataset", ["g.h5", "W0", "group"])(
    lambda d: h5_with_w0(d, "g", lambda h: h.create_group("W0").create_dataset("x", data=good_tensors()["W0"])))


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
    return h5_with_w0(d, "link", lambda h: h.__setitem__("W0", h5py.ExternalLink("elsewhere.h5", "/W0")))


@case("model-h5-external-storage", ["ext.h5", "W0", "external"])
def _(d):
    raw = os.path.join(d, "raw.bin")
    good_tensors()["W0"].tofile(raw)
    return h5_with_w0(d, "ext", lambda h: h.create_dataset("W0", shape=(2, 3), dtype="<f8",
                                                            external=[(raw, 0, 48)]))


# 8 TB declared, a few bytes stored (unwritten chunks)
case("model-h5-huge-dataset", ["huge.h5", "W0"])(
    lambda d: h5_with_w0(d, "huge", lambda h: h.create_dataset(
        "W0", shape=(2, 500_000_000_000), dtype="<f8", chunks=(1, 1024))))


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


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_one_error_line(tmp_path, name):
    assert_case_refused(tmp_path, CASES[name])


# ---------------------------------------------------------------- accepted, not refused


@pytest.mark.parametrize("dtype", [np.int8, np.int64, np.uint16, np.float32, np.float16, ">f8"])
def test_integer_and_narrow_weights_accepted(tmp_path, dtype):
    d = make_model_dir(tmp_path)
    tensors = {k: (v * 3).astype(dtype) for k, v in good_tensors().items()}
    args = model_with(d, "m", tensors)
    succeeded(invoke(args))
