"""Keras MLPs exported by tf2onnx itself, read by jaccli with no spec.

tests/data/tf2onnx holds what ``tf2onnx.convert.from_keras`` wrote (float32,
opsets 13 and 17) for small seeded Keras 3 models and Keras 2 (tf_keras) ones, and beside each the
references TensorFlow computed with ``tf.GradientTape`` in float64 on a twin
of the model carrying the same float32 weights
(tests/data/make_tf2onnx_files.py made them; the suite never installs
TensorFlow). jaccli must agree to 1e-12 relative to each array's largest
entry: value, input Jacobian, Hessian diagonal, and the Jacobian with respect
to each initializer that is one Keras weight.

A file jaccli refuses today with one JaccliError line is an expected failure
only if it is listed in EXPECTED_REFUSALS (issue 21's branches make them
read); a listed file that reads must still agree, and a file that reads and
disagrees fails.
"""

import json
import os

import numpy as np
import pytest

pytest.importorskip("onnx")

import jaccli  # noqa: E402
from jaccli.errors import JaccliError  # noqa: E402

DATA = os.path.join(os.path.dirname(__file__), "data", "tf2onnx")
# manifest.json: Keras 3 models; manifest_keras2.json: Keras 2 (tf_keras) models, files k2_*
MANIFEST = {"files": {}}
for _kind in ("manifest.json", "manifest_keras2.json"):
    MANIFEST["files"].update(json.load(open(os.path.join(DATA, _kind)))["files"])
NAMES = sorted(MANIFEST["files"])
RTOL = 1e-12
ISSUE = "reads once issue 21's {} lands; refused today: {}"

# case (without the _opNN suffix) -> the reason it is refused today (the message seen)
EXPECTED_REFUSALS = {
    "flatten_1x1x5": ISSUE.format("inputs of any shape (shapes)", "input 'x' has 4 dimensions; jaccli reads (N, n) tensors"),
    "flatten_4x3": ISSUE.format("inputs of any shape (shapes)", "input 'x' has 3 dimensions; jaccli reads (N, n) tensors"),
    # Keras 3 hard_sigmoid is Add(3) Clip(0, 6) Mul(float32(1/6)): branch act at 8bb7f9a reads it with
    # the literal float32(1/6) and is 2.3e-8 off TensorFlow (exit 0); the pattern means 1/6
    "hard_sigmoid": ISSUE.format("HardSigmoid (act)", "node '.../Relu6' (Clip): is not a layer jaccli reads"),
    "relu6": ISSUE.format("ReLU6/Clip (act)", "node '.../Relu6' (Clip): is not a layer jaccli reads"),
    "hard_silu": ISSUE.format("HardSwish (act)", "node '.../mul' (Mul): combines 2 computed tensors (x * hard_sigmoid(x))"),
    "mish": ISSUE.format("Mish (act)", "node '.../mul' (Mul): combines 2 computed tensors (x * tanh(softplus(x)))"),
    "log_softmax_head": ISSUE.format("LogSoftmax (vector)", "node '.../LogSoftmax' (LogSoftmax): is not a layer jaccli reads"),
    "layernorm": ISSUE.format("LayerNorm (vector)", "node '.../add_2' (Add): combines 2 computed tensors"),
    "prelu": ISSUE.format("PReLU spelled out with Neg (act)", "node '.../p_re_lu_1/add' (Add): combines 2 computed tensors"),
    # Keras 2 (tf_keras)
    "k2_flatten_1x1x5": ISSUE.format("inputs of any shape (shapes)", "input 'x' has 4 dimensions; jaccli reads (N, n) tensors"),
    "k2_hard_sigmoid": ISSUE.format("HardSigmoid as Mul(0.2) Add(0.5) Min(1) Max(0) (act)",
                                    "node '.../clip_by_value/Minimum' (Min): is not a layer jaccli reads"),
    "k2_relu6_layer": ISSUE.format("ReLU6/Clip (act)", "node '.../re_lu/Relu6' (Clip): is not a layer jaccli reads"),
    "k2_mish": ISSUE.format("Mish (act)", "node '.../mul' (Mul): combines 2 computed tensors (x * tanh(softplus(x)))"),
    "k2_prelu": ISSUE.format("PReLU spelled out with Neg (act)", "node '.../p_re_lu/add' (Add): combines 2 computed tensors"),
    "k2_layernorm": ISSUE.format("LayerNorm as tf_keras' fused BatchNormalization over a Reshape (vector)",
                                 "node '.../Reshape_1' (Reshape): combines 2 computed tensors (FusedBatchNormV3, a Shape)"),
}

# case -> the initializers the reference differentiates that are, by design, not parameters:
# tf2onnx folds BatchNormalization to a Mul and an Add by float32 constants TensorFlow computed
# (batchnorm/mul:0 = gamma * rsqrt(var + eps), batchnorm/sub:0 = beta - mean * that). The file
# holds no trainable gamma or beta, and a constant Mul/Add between layers is a constant map
# (docs/models.md, "From ONNX"), as an input scaling is.
CONSTANTS_BY_DESIGN = {"batchnorm": ("batchnorm/mul:0", "batchnorm/sub:0")}
CONSTANTS_BY_DESIGN["k2_batchnorm"] = CONSTANTS_BY_DESIGN["batchnorm"]


def close(actual, expected, what):
    """Relative to the array's largest entry: a Hessian diagonal has exact zeros (ReLU)."""
    scale = max(np.max(np.abs(expected)), 1e-300)
    err = np.max(np.abs(np.asarray(actual) - expected)) / scale
    assert np.shape(actual) == np.shape(expected), (what, np.shape(actual), np.shape(expected))
    assert err <= RTOL, f"{what}: jaccli differs from TensorFlow by {err:.2e} relative"


def case(name):
    """The case a file was made from, without its opset (k2_ marks a Keras 2 model)."""
    return name.rsplit("_op", 1)[0]


def load_or_xfail(name):
    """The model, or an expected failure when jaccli refuses a listed file with a JaccliError."""
    try:
        return jaccli.load(os.path.join(DATA, name + ".onnx"))
    except JaccliError:
        if case(name) in EXPECTED_REFUSALS:
            pytest.xfail(EXPECTED_REFUSALS[case(name)])
        raise


def test_the_fixtures_cover_the_cases_and_both_opsets():
    assert len(NAMES) >= 40
    assert {MANIFEST["files"][n]["opset"] for n in NAMES} == {13, 17}
    assert set(EXPECTED_REFUSALS) | set(CONSTANTS_BY_DESIGN) <= {case(n) for n in NAMES}


@pytest.mark.parametrize("name", NAMES)
def test_the_references_are_the_files_function(name):
    """TensorFlow's float64 value and onnxruntime's float32 run of the file agree to float32 precision."""
    ref = np.load(os.path.join(DATA, name + ".npz"))
    scale = max(1.0, np.max(np.abs(ref["value"])))
    assert np.max(np.abs(ref["value_ort"] - ref["value"])) / scale < 2e-6


@pytest.mark.parametrize("name", NAMES)
def test_value_jacobian_hessdiag_match_tensorflow(name):
    ref = np.load(os.path.join(DATA, name + ".npz"))
    model = load_or_xfail(name)
    try:
        got = {q: getattr(model, q)(ref["X"]) for q in ("value", "jacobian", "hessdiag")}
    except JaccliError:
        if case(name) in EXPECTED_REFUSALS:
            pytest.xfail(EXPECTED_REFUSALS[case(name)])
        raise
    for quantity, array in got.items():
        close(array, ref[quantity], quantity)


@pytest.mark.parametrize("name", NAMES)
def test_parameter_jacobian_matches_tensorflow(name):
    """Each initializer that is one Keras weight (PReLU's stored -alpha too) is a parameter."""
    ref = np.load(os.path.join(DATA, name + ".npz"))
    model = load_or_xfail(name)
    table = {p.name: p for p in model.parameter_table}
    names = [str(n) for n in ref["param_names"]]
    assert names, "the generator found no initializer equal to a Keras weight"
    pj = model.param_jacobian(ref["X"])
    constants = [t for t in names if t.endswith(CONSTANTS_BY_DESIGN.get(case(name), ()))]
    assert len(constants) == len(CONSTANTS_BY_DESIGN.get(case(name), ()))
    assert not set(constants) & set(table), "a folded BatchNorm's constants listed as parameters"
    names = [t for t in names if t not in constants]
    for tensor in names:
        assert tensor in table, (tensor, sorted(table))
        p = table[tensor]
        got = pj[:, :, p.offset:p.offset + p.size].reshape(ref["pjac:" + tensor].shape)
        close(got, ref["pjac:" + tensor], f"d y / d {tensor}")


@pytest.mark.parametrize("name", [n for n in NAMES if n.endswith("_op17")])
def test_cli_agrees_or_refuses_in_one_line(name, tmp_path):
    """The CLI on the same file: exit 0 with TensorFlow's numbers, or exit 2 with one line for a listed case."""
    from hostile_helpers import invoke

    ref = np.load(os.path.join(DATA, name + ".npz"))
    points = tmp_path / "points.npy"
    np.save(points, ref["X"])
    for quantity in ("value", "jacobian", "hessdiag"):
        result = invoke([quantity, os.path.join(DATA, name + ".onnx"), "--points", points, "--quiet"])
        if result.exit_code == 2 and case(name) in EXPECTED_REFUSALS:
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("Error: ") and result.stdout == "", result.stderr
            pytest.xfail(EXPECTED_REFUSALS[case(name)])
        assert result.exit_code == 0, result.stderr
        rows = result.stdout.strip().splitlines()[1:]
        numbers = np.array([r.split(",") for r in rows], dtype=np.float64)
        close(numbers, ref[quantity].reshape(len(ref["X"]), -1), quantity)
