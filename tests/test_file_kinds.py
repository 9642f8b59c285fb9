"""A model file's format is told by its own structure, not by bytes found elsewhere.

A safetensors file opens with its header length: 896 bytes is ``80 03 00 ...``,
which a pickle opens with too, and its tensors may hold any bytes, a zip's
``PK\\x05\\x06`` among them. Property tests over header lengths (the header
padded with spaces, as the safetensors package pads it) and over tensor bytes
holding other formats' magic numbers, under every kind of name.
"""

import json
import os
import pickle
import struct
import zipfile

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import jaccli
from hostile_helpers import GOOD_SPEC_TEXT, assert_one_line_error, good_tensors, invoke
from jaccli.formats.file_kinds import model_file_kind

# Header lengths whose first two bytes are a pickle's PROTO opcode, protocols 2 to 5.
PICKLE_LOOKING_LENGTHS = [640, 896, 1152, 1408]
MAGIC = [b"PK\x05\x06", b"PK\x05\x06" + bytes(18), b"PK\x03\x04", b"PK\x01\x02", b"\x80\x03",
         b"\x80\x05", b"\x89HDF\r\n\x1a\n", b"\x93NUMPY", b"{}"]
NAMES = ["m.safetensors", "m.SafeTensors", "m.bin", "m", "m.npz", "m.h5"]


def safetensors_bytes(weight, header_length=None):
    """A file of one U8 weight (n, 1) and the spec using it, its header padded with
    spaces to ``header_length`` bytes."""
    spec = f"inputs: {weight.shape[0]}\noutputs: 1\nlayers: [{{units: 1, weight: W, bias: null}}]\n"
    header = json.dumps({"__metadata__": {"jaccli_spec": spec},
                         "W": {"dtype": "U8", "shape": list(weight.shape),
                               "data_offsets": [0, weight.size]}}).encode()
    return with_header(header, weight.tobytes(), header_length)


def with_header(header, data, length=None):
    length = len(header) if length is None else length
    assert length >= len(header)
    return struct.pack("<Q", length) + header + b" " * (length - len(header)) + data


def repadded(raw, length):
    """The same safetensors file with its header padded to ``length`` bytes."""
    n = struct.unpack("<Q", raw[:8])[0]
    return with_header(raw[8:8 + n].rstrip(b" "), raw[8 + n:], length)


def assert_reads_back(path, weight):
    assert model_file_kind(path) == "safetensors"
    model = jaccli.load(path)
    ones = np.ones((1, weight.shape[0]))
    np.testing.assert_array_equal(model.value(ones), [[float(weight.astype(np.int64).sum())]])


@settings(max_examples=60, deadline=None)
@given(length=st.sampled_from(PICKLE_LOOKING_LENGTHS) | st.integers(300, 5000),
       name=st.sampled_from(NAMES))
@example(length=896, name="m.safetensors")
@example(length=640, name="m")
def test_any_header_length_is_read_as_safetensors(tmp_path_factory, length, name):
    weight = np.arange(1, 7, dtype=np.uint8).reshape(6, 1)
    path = tmp_path_factory.mktemp("st") / name
    path.write_bytes(safetensors_bytes(weight, length))
    assert_reads_back(path, weight)


@settings(max_examples=60, deadline=None)
@given(before=st.binary(max_size=300), magic=st.sampled_from(MAGIC),
       after=st.binary(max_size=40), name=st.sampled_from(NAMES))
@example(before=b"", magic=b"PK\x05\x06" + bytes(18), after=b"", name="m.safetensors")
@example(before=b"\x00" * 8, magic=b"PK\x05\x06", after=bytes(18), name="m.bin")
def test_tensor_bytes_holding_other_magic_numbers_stay_safetensors(tmp_path_factory, before,
                                                                    magic, after, name):
    weight = np.frombuffer(before + magic + after, dtype=np.uint8).reshape(-1, 1)
    path = tmp_path_factory.mktemp("st") / name
    path.write_bytes(safetensors_bytes(weight))
    assert_reads_back(path, weight)


def test_info_of_a_pickle_looking_header_length_exits_0(tmp_path):
    weight = np.arange(1, 7, dtype=np.uint8).reshape(6, 1)
    path = tmp_path / "m.safetensors"
    path.write_bytes(safetensors_bytes(weight, 896))
    assert path.read_bytes()[:2] == b"\x80\x03"
    result = invoke(["info", path])
    assert result.exit_code == 0, result.stderr


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("length", PICKLE_LOOKING_LENGTHS[1:])
def test_from_torch_files_padded_to_any_header_length_are_read(tmp_path, length):
    torch = pytest.importorskip("torch")
    from jaccli.export import from_torch

    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    path = tmp_path / "m.safetensors"
    from_torch(net.double(), str(path))
    path.write_bytes(repadded(path.read_bytes(), length))
    result = invoke(["info", path])
    assert result.exit_code == 0, result.stderr
    x = np.array([[0.5, -1.0, 2.0]])
    np.testing.assert_allclose(jaccli.load(path).value(x), net(torch.tensor(x)).detach().numpy(),
                               rtol=1e-15)


# ---------------------------------------------------------------- the other formats


def npz(path, comment=b""):
    np.savez(path, W0=np.eye(2), b0=np.zeros(2))
    if comment:
        with zipfile.ZipFile(path, "a") as archive:
            archive.comment = comment
    return path


@pytest.mark.parametrize("name", ["w.npz", "w.NPZ", "w.bin", "w"])
@pytest.mark.parametrize("comment", [b"", b"a comment", b"PK\x05\x06" + bytes(18)])
def test_a_zip_is_told_by_its_end_record_under_any_name(tmp_path, name, comment):
    path = tmp_path / name
    npz(str(path) + ".npz", comment)
    os.replace(str(path) + ".npz", path)
    assert model_file_kind(path) == "npz"


def test_a_zip_with_bytes_before_it_is_still_a_zip(tmp_path):
    path = npz(tmp_path / "w.npz")
    path.write_bytes(b"\x00" * 100 + path.read_bytes())
    assert model_file_kind(path) == "npz"


def test_a_truncated_zip_is_not_a_zip_but_npz_by_name(tmp_path):
    path = npz(tmp_path / "w.npz")
    path.write_bytes(path.read_bytes()[:-5])
    assert model_file_kind(path) == "npz"  # by its name: the NPZ reader's own error follows
    other = tmp_path / "w.bin"
    other.write_bytes(path.read_bytes())
    assert model_file_kind(other) is None


@pytest.mark.parametrize("name, kind", [("p.safetensors", "pickle"), ("p.npz", "pickle"),
                                        ("p.bin", "pickle"), ("p.PT", "torch")])
def test_a_pickle_is_told_by_its_opening_bytes_when_nothing_else_matches(tmp_path, name, kind):
    path = tmp_path / name
    path.write_bytes(pickle.dumps({"W0": [1.0, 2.0]}, protocol=3))
    assert model_file_kind(path) == kind
    assert_one_line_error(invoke(["info", path]), words=[str(path), "never unpickles"])


@pytest.mark.parametrize("name, kind", [("m.KERAS", "keras"), ("m.Onnx", "onnx"),
                                        ("m.SAFETENSORS", "safetensors"), ("m.Pth", "torch")])
def test_extensions_decide_case_insensitively_when_no_structure_matches(tmp_path, name, kind):
    path = tmp_path / name
    path.write_bytes(b"no format's structure")
    assert model_file_kind(path) == kind


DATA = os.path.join(os.path.dirname(__file__), "data")
try:
    import onnx  # noqa: F401

    NO_ONNX = False
except ImportError:
    NO_ONNX = True


def _copy_or_write(source, path):
    """The model file ``source`` (under tests/data), or a weights NPZ with its spec inside."""
    if source == "embedded npz":
        with open(path, "wb") as handle:  # numpy.savez would add ".npz" to a name ending ".NPZ"
            np.savez(handle, jaccli_spec=np.array(GOOD_SPEC_TEXT), **good_tensors())
    else:
        with open(os.path.join(DATA, source), "rb") as handle:
            path.write_bytes(handle.read())


@pytest.mark.parametrize("source, upper", [
    ("keras/func_chain.keras", "F.KERAS"),
    pytest.param("onnx/hand_gemm_scalar_bias_f32.onnx", "M.ONNX",
                 marks=pytest.mark.skipif(NO_ONNX, reason="onnx not installed")),
    ("embedded npz", "W.NPZ"),
    ("keras/func_chain.h5", "X.H5"),
])
def test_an_upper_case_extension_loads_like_a_lower_case_one(tmp_path, source, upper):
    # Each name in its own folder: nothing beside it, whatever the file system's case rules.
    paths = []
    for folder, name in (("upper", upper), ("lower", upper.lower())):
        (tmp_path / folder).mkdir()
        paths.append(tmp_path / folder / name)
        _copy_or_write(source, paths[-1])
    assert model_file_kind(paths[0]) == model_file_kind(paths[1])
    models = [jaccli.load(path) for path in paths]
    points = np.linspace(-1, 1, 3 * models[0].n_inputs).reshape(3, -1)
    np.testing.assert_array_equal(models[0].value(points), models[1].value(points))
    described = [repr(model.describe()) for model in models]
    assert described[0].replace(str(paths[0]), str(paths[1])) == described[1]
    infos = [invoke(["info", path]) for path in paths]
    assert [r.exit_code for r in infos] == [0, 0], infos[0].output
    assert infos[0].output.replace(str(paths[0]), str(paths[1])) == infos[1].output


def test_a_safetensors_state_dict_without_a_spec_gets_pytorch_advice(tmp_path):
    """A PyTorch state dict saved as safetensors: the advice is a spec with layout: out_in."""
    header = json.dumps({"0.weight": {"dtype": "F64", "shape": [3, 2], "data_offsets": [0, 48]},
                         "0.bias": {"dtype": "F64", "shape": [3], "data_offsets": [48, 72]}})
    path = tmp_path / "state.safetensors"
    path.write_bytes(with_header(header.encode(), bytes(72)))
    result = invoke(["info", path])
    assert result.exit_code == 2
    line = result.output.strip()
    assert "\n" not in line and "layout: out_in" in line and "--spec" in line and "Keras" not in line
