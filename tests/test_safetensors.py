"""Safetensors files: real files written by the safetensors package (PyTorch
state dicts, float64/32/16, bfloat16, int32), checked against torch.func
references stored beside them and against the independent oracle; every
kind of damaged file refused with one line; from_sklearn/from_torch writing
.safetensors. Neither torch nor safetensors is needed (the files are in
tests/data/safetensors/, made by tests/data/make_safetensors_files.py); the
round trips through the safetensors package skip without it."""

import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import yaml

import jaccli
import oracle
from hostile_helpers import assert_one_line_error, invoke
from jaccli.errors import JaccliError
from jaccli.formats.safetensors import MAX_HEADER_BYTES
from jaccli.formats.discovery import load_spec_and_tensors

DATA = Path(__file__).parent / "data" / "safetensors"
FILES = ["mlp", "mlp_f32", "mlp_f16", "mlp_bf16", "mlp_i32"]


def spec_and_tensors(name):
    """The spec dict and the tensors as stored, widened to float64, read here without jaccli."""
    path = DATA / f"{name}.safetensors"
    raw = path.read_bytes()
    length = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + length])
    metadata = header.pop("__metadata__", {})
    data = raw[8 + length:]
    tensors = {}
    for key, info in header.items():
        begin, end = info["data_offsets"]
        chunk = data[begin:end]
        if info["dtype"] == "BF16":
            array = (np.frombuffer(chunk, "<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            array = np.frombuffer(chunk, {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I32": "<i4"}[info["dtype"]])
        tensors[key] = array.reshape(info["shape"]).astype(np.float64)
    spec_text = metadata.get("jaccli_spec") or (DATA / f"{name}.yaml").read_text()
    return yaml.safe_load(spec_text), tensors


@pytest.mark.parametrize("name", FILES)
def test_real_files_match_torch_and_the_oracle(name):
    ref = np.load(DATA / f"{name}_ref.npz")
    model = jaccli.load(DATA / f"{name}.safetensors")
    x = ref["X"]
    np.testing.assert_allclose(model.value(x), ref["Y"], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(model.jacobian(x), ref["J"], rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(model.hessian(x), ref["H"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(model.param_jacobian(x), ref["P"], rtol=1e-11, atol=1e-13)
    spec, tensors = spec_and_tensors(name)
    np.testing.assert_allclose(model.jacobian(x), oracle.jacobian(spec, tensors, x), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(model.param_jacobian(x), oracle.param_jacobian(spec, tensors, x),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(model.hessdiag(x),
                               np.diagonal(oracle.hessian(spec, tensors, x), axis1=-2, axis2=-1),
                               rtol=1e-6, atol=1e-8)


def test_state_dict_names_and_shapes_are_the_parameters():
    model = jaccli.load(DATA / "mlp.safetensors")  # spec from mlp.yaml beside it, layout out_in
    assert model.parameters == [("0.weight", (6, 3)), ("0.bias", (6,)), ("2.weight", (5, 6)),
                                ("2.bias", (5,)), ("4.weight", (2, 5)), ("4.bias", (2,))]
    assert model.input_names == ["u", "v", "w"]


def test_float32_model_dtype():
    ref = np.load(DATA / "mlp_bf16_ref.npz")
    model = jaccli.load(DATA / "mlp_bf16.safetensors", dtype="float32")
    np.testing.assert_allclose(model.value(ref["X"]), ref["Y"], rtol=1e-5, atol=1e-6)


def test_cli_info_and_jacobian_with_the_embedded_spec():
    result = invoke(["info", DATA / "mlp_f16.safetensors"])
    assert result.exit_code == 0, result.stderr
    assert "3 in -> 6 tanh -> 5 sigmoid -> 2 linear" in result.stdout
    ref = np.load(DATA / "mlp_f16_ref.npz")
    at = ",".join(repr(float(v)) for v in ref["X"][0])
    result = invoke(["jacobian", DATA / "mlp_f16.safetensors", "--at", at, "-q"])
    assert result.exit_code == 0, result.stderr
    header, row = result.stdout.splitlines()
    assert header.split(",")[:2] == ["dp/du", "dp/dv"]
    np.testing.assert_allclose([float(v) for v in row.split(",")], ref["J"][0].ravel(), rtol=1e-11)


def test_a_spec_beside_wins_over_the_embedded_one(tmp_path):
    model = tmp_path / "m.safetensors"
    model.write_bytes((DATA / "mlp_f32.safetensors").read_bytes())
    spec = yaml.safe_load((DATA / "mlp.yaml").read_text())
    spec["outputs"] = ["a", "b"]
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(spec))
    assert jaccli.load(model).output_names == ["a", "b"]


def test_a_file_not_named_safetensors_is_recognised_by_its_header(tmp_path):
    other = tmp_path / "weights.bin"
    other.write_bytes((DATA / "mlp_f32.safetensors").read_bytes())
    assert jaccli.load(other).n_inputs == 3


# ---------------------------------------------------------------- damaged files


def st_bytes(header, data=b"", length=None):
    """A safetensors file: the header (a dict, or raw bytes), then the data."""
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(text) if length is None else length) + text + data


F64 = np.arange(6, dtype="<f8").tobytes()  # 48 bytes


def entry(dtype="F64", shape=(2, 3), offsets=(0, 48)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


BAD_FILES = {
    "too-short": (b"\x01\x02", "the header length alone takes 8"),
    "length-past-the-end": (st_bytes({"W": entry()}, F64, length=10_000), "runs past the end"),
    "length-over-the-limit": (st_bytes({"W": entry()}, F64, length=MAX_HEADER_BYTES + 1), "at most"),
    "not-utf8": (st_bytes(b'{"W\xff": 1}'), "not UTF-8"),
    "not-json": (st_bytes(b'{"W": {"dtype": '), "not valid JSON"),
    "not-an-object": (st_bytes(b"[1, 2]"), "not a JSON object"),
    "deep-nesting": (st_bytes(b"[" * 100_000 + b"]" * 100_000), "safetensors header"),
    "duplicate-key": (st_bytes(b'{"W": ' + json.dumps(entry()).encode() + b', "W": '
                               + json.dumps(entry()).encode() + b"}", F64), "'W' twice"),
    "unknown-dtype": (st_bytes({"W": entry(dtype="F99")}, F64), "unknown dtype F99"),
    "list-dtype": (st_bytes({"W": entry(dtype=["F64"])}, F64), "not a dtype name"),  # fuzzer find
    "bool-dtype": (st_bytes({"W": entry(dtype="BOOL", shape=(48,))}, F64), "BOOL (booleans)"),
    "complex-dtype": (st_bytes({"W": entry(dtype="C64", shape=(6,))}, F64), "complex"),
    "fp8-dtype": (st_bytes({"W": entry(dtype="F8_E4M3", shape=(48,))}, F64), "8-bit floats"),
    "entry-not-a-dict": (st_bytes({"W": [1, 2]}, F64), "not {dtype, shape, data_offsets}"),
    "negative-shape": (st_bytes({"W": entry(shape=(-2, 3))}, F64), "not a list of sizes"),
    "float-shape": (st_bytes({"W": entry(shape=(2.0, 3))}, F64), "not a list of sizes"),
    "three-offsets": (st_bytes({"W": {**entry(), "data_offsets": [0, 24, 48]}}, F64),
                      "not [begin, end]"),
    "reversed-offsets": (st_bytes({"W": entry(offsets=(48, 0))}, F64), "not [begin, end]"),
    "size-mismatch": (st_bytes({"W": entry(offsets=(0, 40))}, F64), "takes 48"),
    "misaligned": (st_bytes({"a": entry(dtype="U8", shape=(4,), offsets=(0, 4)),
                             "W": entry(dtype="F64", shape=(5,), offsets=(4, 44))}, F64),
                   "misaligned"),
    "overlap": (st_bytes({"a": entry(shape=(3,), offsets=(0, 24)),
                          "W": entry(shape=(3,), offsets=(16, 40))}, F64), "overlap"),
    "gap": (st_bytes({"a": entry(shape=(2,), offsets=(0, 16)),
                      "W": entry(shape=(3,), offsets=(24, 48))}, F64), "belong to no tensor"),
    "out-of-range": (st_bytes({"W": entry(shape=(12,), offsets=(0, 96))}, F64), "past the end of the data"),
    "trailing-bytes": (st_bytes({"W": entry(shape=(3,), offsets=(0, 24))}, F64), "after the last tensor"),
    "metadata-not-strings": (st_bytes({"__metadata__": {"jaccli_spec": 3}, "W": entry()}, F64),
                             "map names to strings"),
    "nan-weight": (st_bytes({"W": entry(dtype="F32", shape=(2, 3), offsets=(0, 24))},
                            np.array([1, np.nan, 0, 0, 0, 0], "<f4").tobytes()), "non-finite"),
    "bf16-inf": (st_bytes({"W": entry(dtype="BF16", shape=(2, 3), offsets=(0, 12))},
                          np.array([0, 0x7F80, 0, 0, 0, 0], "<u2").tobytes()), "non-finite"),
    "bad-embedded-spec": (st_bytes({"__metadata__": {"jaccli_spec": "layers: [unclosed"},
                                    "W": entry()}, F64), "not valid YAML"),
    "missing-tensor": (st_bytes({"__metadata__": {"jaccli_spec": "layers: [{weight: V, bias: null}]"},
                                 "W": entry()}, F64), "no tensor 'V'"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_files_are_one_line_exit_2(tmp_path, case):
    data, words = BAD_FILES[case]
    path = tmp_path / "bad.safetensors"
    path.write_bytes(data)
    spec = tmp_path / "spec.yaml"
    spec.write_text("layers: [{weight: W, bias: null}]\n")
    args = ["info", path] if case in ("bad-embedded-spec", "missing-tensor") else ["info", path, "--spec", spec]
    assert_one_line_error(invoke(args), words=[str(path), words])


def test_a_huge_header_length_is_refused_without_reading_it(tmp_path):
    path = tmp_path / "huge.safetensors"
    path.write_bytes(struct.pack("<Q", 2**63) + b"{}")
    with pytest.raises(JaccliError, match="header length is"):
        load_spec_and_tensors(str(path), None)


def test_a_valid_file_with_only_a_spec_and_the_tensors(tmp_path):
    """The same bytes with the right header are read: the cases above fail for their reason only."""
    path = tmp_path / "good.safetensors"
    spec = "layers: [{weight: W, bias: null}]"
    path.write_bytes(st_bytes({"__metadata__": {"jaccli_spec": spec}, "W": entry()}, F64))
    model = jaccli.load(path)
    np.testing.assert_array_equal(model.value([[1.0, 0.0]]), [[0.0, 1.0, 2.0]])


# ---------------------------------------------------------------- writing


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_from_sklearn_writes_a_safetensors_file(tmp_path):
    from sklearn.neural_network import MLPRegressor

    from jaccli.export import from_sklearn

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    mlp = MLPRegressor(hidden_layer_sizes=(5,), max_iter=50, random_state=0).fit(x, x[:, 0] * x[:, 1])
    path = tmp_path / "sk.safetensors"
    from_sklearn(mlp, path)
    np.testing.assert_allclose(jaccli.load(path).value(x)[:, 0], mlp.predict(x), rtol=1e-12, atol=1e-14)
    raw = path.read_bytes()
    length = struct.unpack("<Q", raw[:8])[0]
    assert (8 + length) % 8 == 0  # tensors start aligned, as the safetensors package writes them
    assert "jaccli_spec" in json.loads(raw[8:8 + length])["__metadata__"]
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    arrays = safetensors_numpy.load_file(str(path))  # the reference reader accepts it
    np.testing.assert_array_equal(arrays["coefs_0"], mlp.coefs_[0])


def test_from_torch_writes_a_safetensors_file_torch_reads(tmp_path):
    torch = pytest.importorskip("torch")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    from jaccli.export import from_torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.ReLU(), torch.nn.LeakyReLU(0.1),
                              torch.nn.Linear(4, 1)).double()
    path = tmp_path / "net.safetensors"
    from_torch(net, str(path))
    state = safetensors_torch.load_file(str(path))
    assert sorted(state) == ["0.bias", "0.weight", "3.bias", "3.weight"]
    x = np.random.default_rng(1).normal(size=(5, 2))
    expected = net(torch.tensor(x)).detach().numpy()
    np.testing.assert_allclose(jaccli.load(path).value(x), expected, rtol=1e-12, atol=1e-14)


def test_export_leaves_no_file_when_it_fails(tmp_path):
    from sklearn.neural_network import MLPRegressor

    from jaccli.export import from_sklearn

    path = tmp_path / "sk.safetensors"
    path.write_bytes(b"old")
    mlp = MLPRegressor(hidden_layer_sizes=(2,))  # not fitted
    with pytest.raises(JaccliError):
        from_sklearn(mlp, path)
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["sk.safetensors"]
