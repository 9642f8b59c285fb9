"""Fuzzing (issue 8): mutated points, specs and weight files through the CLI.

Each example mutates a valid file (byte flips, truncations, deletions, random
insertions; for specs also whole fields deleted or replaced) and runs the CLI
on it. The outcome must be one of two:

* exit 0 and a well-formed result (a CSV with the right header and one row of
  numbers per point) replacing the old output, or
* exit 2 with exactly one ``Error:`` line, the old output untouched;

never a traceback, a crash, a hang, another exit code, or a temporary file
left behind. Every run happens in a forked child, so a crash in a C library
(HDF5, zlib) or a hang is reported as a failure instead of taking pytest
down. Derandomized: the same examples run every time.
"""

import io
import json
import os
import pickle
import signal
import zipfile

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hostile_helpers import (GOOD_SPEC, GOOD_SPEC_TEXT, MAX_ERROR_LENGTH, PRECIOUS, crashed,
                             good_tensors, invoke, leftovers, make_model_dir, write_h5)

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork to isolate crashes")

TIMEOUT = 20  # seconds per run; a small model on a few points takes milliseconds
# Examples per target: the hypothesis profile's (conftest: 120 on CI, 25 locally),
# or JACCLI_FUZZ_EXAMPLES.
_EXAMPLES = {"max_examples": int(os.environ["JACCLI_FUZZ_EXAMPLES"])} \
    if os.environ.get("JACCLI_FUZZ_EXAMPLES") else {}
FUZZ = settings(**_EXAMPLES, deadline=None,
                derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large])


def run_isolated(args, stdin=None, child=None, timeout=TIMEOUT):
    """Run the CLI in a forked child: (exit code, stdout, stderr, traceback or None).

    A child killed by a signal (a crash, or the alarm after ``timeout`` seconds: a
    hang) raises AssertionError. ``child`` replaces the CLI run (to test the harness).
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        try:
            os.close(read_fd)
            signal.alarm(timeout)
            if child is not None:
                child()
            result = invoke(args, input=stdin)
            payload = (result.exit_code, result.stdout[-4000:], result.stderr[-4000:], crashed(result))
            data = pickle.dumps(payload)
            with os.fdopen(write_fd, "wb") as handle:
                handle.write(data)
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as handle:
        data = handle.read()
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = f"a hang (alarm after {timeout} s)" if sig == signal.SIGALRM else f"signal {sig}"
        raise AssertionError(f"jaccli {' '.join(map(str, args or []))} died: {name}")
    return pickle.loads(data)


def check_outcome(args, d, out, n_points=None, stdin=None):
    code, stdout, stderr, tb = run_isolated(args, stdin)
    assert tb is None, tb
    assert code in (0, 2), (code, stderr)
    assert leftovers(d) == [], leftovers(d)
    if code == 2:
        lines = stderr.strip("\n").splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), stderr
        assert len(lines[0]) <= MAX_ERROR_LENGTH
        with open(out) as handle:
            assert handle.read() == PRECIOUS
        return "error"
    with open(out) as handle:
        text = handle.read()
    with open(out, "w") as handle:  # the next example starts from the precious file again
        handle.write(PRECIOUS)
    rows = [row.split(",") for row in text.splitlines()]
    assert rows and all(rows[0]), rows[:2]  # a header naming every output column
    values = np.array([[float(cell) for cell in row] for row in rows[1:]])  # all numbers
    assert values.ndim == 2 and values.shape[1] == len(rows[0]) and len(values) > 0
    if n_points is not None:
        assert len(values) == n_points
    return "ok"


def mutate(data, ops):
    """Apply byte-level mutations: flip, set, delete, insert, truncate, duplicate a slice."""
    data = bytearray(data)
    for op, position, length, payload in ops:
        if not data:
            data = bytearray(payload)
            continue
        i = position % len(data)
        if op == "flip":
            data[i] ^= 1 << (length % 8)
        elif op == "set":
            data[i:i + len(payload)] = payload
        elif op == "delete":
            del data[i:i + 1 + length % 64]
        elif op == "insert":
            data[i:i] = payload
        elif op == "truncate":
            del data[i:]
        elif op == "duplicate":
            data[i:i] = data[i:i + 1 + length % 64]
    return bytes(data)


INTERESTING = [b"\x00", b"\xff", b"\n", b",", b"\"", b"nan", b"inf", b"1e999", b"-", b"#", b"\r\n",
               b"\xef\xbb\xbf", b"\xff\xfe", b"\t", b":", b"- ", b"&a", b"*a", b"!!python/", b"[",
               b"{", b"]", b"}", b"'", b"0" * 50, b"\x93NUMPY", b"PK\x03\x04", b"\x89HDF"]
operation = st.tuples(
    st.sampled_from(["flip", "set", "delete", "insert", "truncate", "duplicate"]),
    st.integers(0, 1 << 20), st.integers(0, 255),
    st.one_of(st.sampled_from(INTERESTING), st.binary(min_size=1, max_size=16)))
operations = st.lists(operation, min_size=1, max_size=4)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_model_dir(tmp_path_factory.mktemp("fuzz"))


def _fresh(d, name, data):
    for leftover in leftovers(d):
        os.remove(leftover)
    path = os.path.join(d, name)
    with open(path, "wb") as handle:
        handle.write(data)
    return path


POINTS_CSV = b"a,b\n0.1,0.2\n-0.3,0.4\n1.5,-2.0\n2.5e-3,7\n"


@FUZZ
@given(ops=operations, suffix=st.sampled_from([".csv", ".tsv", ".txt", "-"]))
def test_fuzz_points_text(model_dir, ops, suffix):
    d = model_dir
    data = mutate(POINTS_CSV if suffix != ".tsv" else POINTS_CSV.replace(b",", b"\t"), ops)
    out = os.path.join(d, "out.csv")
    if suffix == "-":
        args = ["value", os.path.join(d, "model.npz"), "-p", "-", "-o", out]
        check_outcome(args, d, out, stdin=data)
    else:
        path = _fresh(d, "fz" + suffix, data)
        check_outcome(["value", os.path.join(d, "model.npz"), "-p", path, "-o", out], d, out)


def _npy(array):
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


POINTS_NPY = _npy(np.array([[0.1, 0.2], [-0.3, 0.4], [1.5, -2.0]]))


@FUZZ
@given(ops=operations)
def test_fuzz_points_npy(model_dir, ops):
    d = model_dir
    out = os.path.join(d, "out.csv")
    path = _fresh(d, "fz.npy", mutate(POINTS_NPY, ops))
    check_outcome(["value", os.path.join(d, "model.npz"), "-p", path, "-o", out, "--chunk-size", "2"],
                  d, out)


# ---------------------------------------------------------------- specs

def _delete_field(spec, path):
    """Delete the field at ``path`` (a list of keys / indices) from a deep copy of spec."""
    spec = yaml.safe_load(yaml.safe_dump(spec))
    node = spec
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return spec


FULL_SPEC = dict(GOOD_SPEC, layout="in_out",
                 input_scaling={"offset": [0.5, -0.5], "scale": [2.0, 1.0]},
                 output_scaling={"offset": [1.0], "scale": [3.0]},
                 layers=[{"units": 3, "activation": "elu", "alpha": 0.5, "weight": "W0", "bias": "b0"},
                         {"units": 1, "activation": "linear", "weight": "W1", "bias": "b1"}])
FIELD_PATHS = ([["inputs"], ["outputs"], ["layout"], ["input_scaling"], ["output_scaling"], ["layers"],
                ["input_scaling", "scale"], ["output_scaling", "offset"]]
               + [["layers", i, key] for i in (0, 1) for key in FULL_SPEC["layers"][i]]
               + [["layers", 0], ["layers", 1]])
yaml_values = st.one_of(st.none(), st.booleans(), st.integers(-3, 10 ** 30),
                        st.floats(allow_nan=True, allow_infinity=True),
                        st.text(max_size=8), st.lists(st.integers(-2, 5), max_size=4),
                        st.sampled_from(["tanh", "relu", "softmax", "out_in", "W0", "b1", "x1", 0]))


@FUZZ
@given(data=st.data(), how=st.sampled_from(["bytes", "delete", "replace", "both"]))
def test_fuzz_spec(model_dir, data, how):
    d = model_dir
    spec = FULL_SPEC
    if how in ("delete", "both"):
        spec = _delete_field(spec, data.draw(st.sampled_from(FIELD_PATHS), label="delete"))
    if how == "replace":
        path = data.draw(st.sampled_from(FIELD_PATHS), label="replace")
        spec = _delete_field(spec, path)  # a copy without it, then put a random value there
        node = spec
        for key in path[:-1]:
            node = node[key]
        if isinstance(node, dict):
            node[path[-1]] = data.draw(yaml_values, label="value")
    text = yaml.safe_dump(spec).encode()
    if how in ("bytes", "both"):
        text = mutate(text, data.draw(operations, label="ops"))
    spec_path = _fresh(d, "fuzzed_spec.yaml", text)
    out = os.path.join(d, "out.csv")
    check_outcome(["value", os.path.join(d, "model.npz"), "--spec", spec_path, "-p",
                   os.path.join(d, "pts.csv"), "-o", out], d, out, n_points=3)


# ---------------------------------------------------------------- weight files

def _npz_bytes(tensors, spec=None):
    buffer = io.BytesIO()
    extra = {} if spec is None else {"jaccli_spec": np.array(spec)}
    np.savez(buffer, **tensors, **extra)
    return buffer.getvalue()


NPZ = _npz_bytes(good_tensors(), GOOD_SPEC_TEXT)


@FUZZ
@given(ops=operations, level=st.sampled_from(["file", "member"]), data=st.data())
def test_fuzz_npz(model_dir, ops, level, data):
    """Mutate the whole archive (mostly caught by the zip CRC) or one member's NPY bytes
    inside a valid archive (reaches the NPY header and data checks)."""
    d = model_dir
    if level == "file":
        blob = mutate(NPZ, ops)
    else:
        name = data.draw(st.sampled_from(sorted(good_tensors()) + ["jaccli_spec"]), label="member")
        buffer = io.BytesIO()
        with zipfile.ZipFile(io.BytesIO(NPZ)) as source, zipfile.ZipFile(buffer, "w") as target:
            for info in source.infolist():
                member = source.read(info)
                if info.filename == f"{name}.npy":
                    member = mutate(member, ops)
                target.writestr(info.filename, member)
        blob = buffer.getvalue()
    path = _fresh(d, "fuzzed_npz.npz", blob)
    out = os.path.join(d, "out.csv")
    check_outcome(["value", path, "-p", os.path.join(d, "pts.csv"), "-o", out], d, out, n_points=3)


def _h5_bytes():
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = write_h5(os.path.join(tmp, "m.h5"), good_tensors())
        import h5py

        with h5py.File(path, "a") as handle:
            handle.attrs["jaccli_spec"] = GOOD_SPEC_TEXT
        with open(path, "rb") as handle:
            return handle.read()


H5 = _h5_bytes()


@FUZZ
@given(ops=operations, region=st.sampled_from(["anywhere", "metadata", "data"]))
def test_fuzz_hdf5(model_dir, ops, region):
    """Byte mutations of an HDF5 weight file (with its spec in an attribute). ``region``
    aims the positions at the superblock and object headers or at the tensors' data."""
    d = model_dir
    if region != "anywhere":
        lo, hi = (0, 1024) if region == "metadata" else (1024, len(H5))
        ops = [(op, lo + position % (hi - lo), length, payload) for op, position, length, payload in ops]
    path = _fresh(d, "fuzzed_h5.h5", mutate(H5, ops))
    out = os.path.join(d, "out.csv")
    check_outcome(["value", path, "-p", os.path.join(d, "pts.csv"), "-o", out], d, out, n_points=3)


def _safetensors_bytes(header=None):
    """The good model as safetensors (spec in __metadata__); ``header`` replaces the JSON header."""
    from jaccli.formats.safetensors import write_safetensors

    buffer = io.BytesIO()
    write_safetensors(buffer, good_tensors(), {"jaccli_spec": GOOD_SPEC_TEXT})
    blob = buffer.getvalue()
    if header is None:
        return blob
    length = int.from_bytes(blob[:8], "little")
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + blob[8 + length:]


SAFETENSORS = _safetensors_bytes()
SAFETENSORS_HEADER = json.loads(SAFETENSORS[8:8 + int.from_bytes(SAFETENSORS[:8], "little")])
header_values = st.one_of(yaml_values, st.sampled_from(["F16", "BF16", "BOOL", "C64", "I8", "X"]),
                          st.lists(st.integers(-1, 200), max_size=3))


@FUZZ
@given(ops=operations, how=st.sampled_from(["anywhere", "header", "data", "field"]), data=st.data())
def test_fuzz_safetensors(model_dir, ops, how, data):
    """Byte mutations of a safetensors file (anywhere, in the JSON header, in the tensor
    bytes), or one field of a tensor's header entry replaced (the length kept right)."""
    d = model_dir
    length = 8 + int.from_bytes(SAFETENSORS[:8], "little")
    if how == "field":
        header = json.loads(json.dumps(SAFETENSORS_HEADER))
        name = data.draw(st.sampled_from(sorted(good_tensors())), label="tensor")
        field = data.draw(st.sampled_from(["dtype", "shape", "data_offsets"]), label="field")
        header[name][field] = data.draw(header_values, label="value")
        blob = _safetensors_bytes(header)
    else:
        if how != "anywhere":
            lo, hi = (0, length) if how == "header" else (length, len(SAFETENSORS))
            ops = [(op, lo + position % (hi - lo), n, payload) for op, position, n, payload in ops]
        blob = mutate(SAFETENSORS, ops)
    path = _fresh(d, "fuzzed.safetensors", blob)
    out = os.path.join(d, "out.csv")
    check_outcome(["value", path, "-p", os.path.join(d, "pts.csv"), "-o", out], d, out, n_points=3)


def test_fuzz_harness_sees_both_outcomes(model_dir):
    """The harness itself: a good run gives 'ok', a bad one 'error', a crash and a hang are caught."""
    import time

    d = model_dir
    out = os.path.join(d, "out.csv")
    assert check_outcome(["value", os.path.join(d, "model.npz"), "-p", os.path.join(d, "pts.csv"),
                          "-o", out], d, out, n_points=3) == "ok"
    bad = _fresh(d, "fz.csv", b"a,b\n1,x\n")
    assert check_outcome(["value", os.path.join(d, "model.npz"), "-p", bad, "-o", out], d, out) == "error"
    def segfault():
        import faulthandler

        faulthandler.disable()  # no dump from the child: the crash is the point
        os.kill(os.getpid(), signal.SIGSEGV)

    with pytest.raises(AssertionError, match="signal 11"):
        run_isolated(None, child=segfault)
    with pytest.raises(AssertionError, match="a hang"):
        run_isolated(None, child=lambda: time.sleep(30), timeout=1)


# ---------------------------------------------------------------- ONNX models

ONNX_DATA = os.path.join(os.path.dirname(__file__), "data", "onnx")
ONNX_OPS = ["Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Relu", "Tanh", "Sigmoid", "Softmax",
            "Reshape", "Identity", "Cast", "Scaler", "ZipMap", "Conv", "If", "Concat", "Erf",
            "Pow", "Gelu", "Transpose", "Abs", "Nonsense", ""]


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory):
    pytest.importorskip("onnx")
    d = str(tmp_path_factory.mktemp("fuzz_onnx"))
    with open(os.path.join(d, "pts3.csv"), "w") as handle:
        handle.write("0.1,0.2,0.3\n-0.3,0.4,1.5\n1.5,-2.0,0.0\n")
    with open(os.path.join(d, "out.csv"), "w") as handle:
        handle.write(PRECIOUS)
    return d


def _onnx_bytes(name):
    with open(os.path.join(ONNX_DATA, name), "rb") as handle:
        return handle.read()


def _run_onnx(d, path):
    out = os.path.join(d, "out.csv")
    check_outcome(["value", path, "-p", os.path.join(d, "pts3.csv"), "-o", out], d, out, n_points=3)


@FUZZ
@given(ops=operations, name=st.sampled_from(["skl_reg_standard_f64.onnx", "ts_gelu_op17_f64.onnx",
                                              "skl_clf3_standard_zipmap_f32.onnx"]))
def test_fuzz_onnx_bytes(onnx_dir, ops, name):
    """Byte mutations of an exporter's ONNX file (protobuf parsing, then the graph walk)."""
    _run_onnx(onnx_dir, _fresh(onnx_dir, "fuzzed.onnx", mutate(_onnx_bytes(name), ops)))


def _mutate_graph(model, data):
    """One structural change to a parsed model: an op, an input, an attribute, a tensor."""
    import onnx

    graph = model.graph
    what = data.draw(st.sampled_from(["op", "input", "delete", "attribute", "tensor", "io", "opset"]),
                     label="what")
    node = graph.node[data.draw(st.integers(0, len(graph.node) - 1), label="node")]
    if what == "op":
        node.op_type = data.draw(st.sampled_from(ONNX_OPS), label="op")
    elif what == "input" and node.input:
        names = [t.name for t in graph.initializer] + [o for n in graph.node for o in n.output] + ["", "X"]
        node.input[data.draw(st.integers(0, len(node.input) - 1))] = data.draw(st.sampled_from(names))
    elif what == "delete":
        graph.node.remove(node)
    elif what == "attribute" and node.attribute:
        attribute = node.attribute[data.draw(st.integers(0, len(node.attribute) - 1))]
        attribute.i = data.draw(st.integers(-3, 3))
        attribute.f = data.draw(st.floats(allow_nan=True, allow_infinity=True, width=32))
    elif what == "tensor" and graph.initializer:
        tensor = graph.initializer[data.draw(st.integers(0, len(graph.initializer) - 1))]
        tensor.data_type = data.draw(st.sampled_from([1, 6, 7, 8, 10, 11, 16, 0, 99]))
        if data.draw(st.booleans()):
            tensor.dims.append(data.draw(st.sampled_from([0, 1, 2, 1 << 40, -1])))
    elif what == "io":
        target = data.draw(st.sampled_from([graph.input, graph.output]))
        if data.draw(st.booleans()) and len(target):
            target[0].name = data.draw(st.sampled_from(["", "x", "variable", "mul_result"]))
        else:
            target.add().CopyFrom(onnx.helper.make_tensor_value_info("extra", 1, ["N", 3]))
    else:
        model.opset_import[0].version = data.draw(st.sampled_from([1, 9, 13, 17, 99]))
    return model.SerializeToString()


@FUZZ
@given(data=st.data(), name=st.sampled_from(["skl_reg_standard_f64.onnx", "ts_silu_dropout_flatten_f32.onnx",
                                             "skl_clf2_zipmap_f32.onnx", "hand_constant_nodes_scaling_f64.onnx"]))
def test_fuzz_onnx_graph(onnx_dir, data, name):
    """Well-formed protobuf, wrong graph: changed ops, inputs, attributes, tensor types, opsets."""
    import onnx

    model = onnx.load_from_string(_onnx_bytes(name))
    blob = _mutate_graph(model, data)
    _run_onnx(onnx_dir, _fresh(onnx_dir, "fuzzed_graph.onnx", blob))


@FUZZ
@given(data=st.data(), ops=operations)
def test_fuzz_onnx_external_data(onnx_dir, data, ops):
    """The dynamo exporter's model and its weights file: either mutated, or the entries
    (location, offset, length) pointing elsewhere."""
    import onnx

    name = "dy_tanh_relu_f32"
    model = onnx.load_from_string(_onnx_bytes(name + ".onnx"))
    weights = _onnx_bytes(name + ".onnx.data")
    for tensor in model.graph.initializer:  # the weights file beside it, by its fuzzed name
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "fuzzed_x.onnx.data"
    if data.draw(st.booleans(), label="mutate the data file"):
        weights = mutate(weights, ops)
    else:
        tensor = model.graph.initializer[data.draw(st.integers(0, len(model.graph.initializer) - 1))]
        entry = tensor.external_data[data.draw(st.integers(0, len(tensor.external_data) - 1))]
        entry.value = data.draw(st.sampled_from(
            ["../fuzz.data", "/etc/passwd", "", "fuzzed_x.onnx.data", "-1", "0", "99999999999999999999",
             "17", "nan", "\x00", "fuzzed_x.onnx"]), label="value")
    _fresh(onnx_dir, "fuzzed_x.onnx.data", weights)
    _run_onnx(onnx_dir, _fresh(onnx_dir, "fuzzed_x.onnx", model.SerializeToString()))
