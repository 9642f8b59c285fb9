"""The harness itself: it passes a correct file and catches small wrong numbers.

A file jaccli reads correctly today (a scikit-learn MLP through from_sklearn)
passes; the same file against a reference whose output bias moved by 1e-10, or
with two parameter columns of jaccli's answer swapped, or with the parameter
table naming the file's tensor in another shape, is reported wrong.
"""

import numpy as np
import pytest

from . import harness
from .paths import path_named, sklearn_source

pytest.importorskip("torch")
pytest.importorskip("sklearn")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SEED = 3  # a regressor whose from_sklearn file passes


@pytest.fixture
def exported(tmp_path):
    source = sklearn_source(SEED)
    file, _ = path_named("from_sklearn-npz").write(source, tmp_path)
    return source, file


def check(exported):
    source, file = exported
    return harness.check_file(file, source.reference, source.X, own=True)


def test_a_correct_file_passes(exported):
    outcome = check(exported)
    assert outcome.kind == "pass", outcome.details


def test_an_output_bias_off_by_1e10_is_caught(exported):
    source, _ = exported
    last = max(name for name in source.reference.params if name.startswith("intercepts_"))
    source.reference.params[last] += 1e-10
    outcome = check(exported)
    assert outcome.kind == "wrong" and "value" in outcome.reason, outcome.key


def test_swapped_parameter_columns_are_caught(exported, monkeypatch):
    from jaccli.model import Model

    original = Model.param_jacobian

    def swapped(self, X, chunk_size=None):
        out = np.array(original(self, X, chunk_size))
        out[..., [0, 1]] = out[..., [1, 0]]
        return out

    monkeypatch.setattr(Model, "param_jacobian", swapped)
    outcome = check(exported)
    assert outcome.kind == "wrong" and "param_jacobian" in outcome.reason, outcome.key


def test_a_transposed_table_entry_is_caught(exported, monkeypatch):
    from jaccli.model import Model

    original = Model.parameters.fget

    def transposed(self):
        return [(name, tuple(reversed(shape))) for name, shape in original(self)]

    monkeypatch.setattr(Model, "parameters", property(transposed))
    outcome = check(exported)
    assert outcome.kind == "wrong" and "shape" in outcome.reason, outcome.key


def test_block_tolerance_is_relative_to_the_block_scale():
    expected = np.array([[1e3, 1e-3]])
    assert harness.mismatch(expected + [[1e-10, 1e-10]], expected, 1) is None
    assert harness.mismatch(expected + [[0, 1e-8]], expected, 1) is not None
    assert harness.mismatch(np.array([[1e-13]]), np.zeros((1, 1)), 1) is None


def test_the_two_references_agree_on_copied_transposed_and_tied_tensors(tmp_path):
    """torch.func on the net (through the file-tensor mapping) and the ONNX graph reference give the
    same columns for a transposed MatMul copy, a tied Linear used twice and a reshaped intercept."""
    import torch

    for module in ("onnx", "onnxruntime", "skl2onnx"):
        pytest.importorskip(module)
    from .oracles import OnnxFunction
    from .paths import torch_source_of

    torch.manual_seed(0)
    tied = torch.nn.Linear(2, 2)
    net = torch.nn.Sequential(torch.nn.Linear(3, 2, bias=False), torch.nn.Tanh(), tied, torch.nn.Tanh(),
                              tied, torch.nn.Linear(2, 1, bias=False)).double().eval()
    cases = [("onnx-legacy", torch_source_of(net)), ("skl2onnx", sklearn_source(0))]
    for name, source in cases:
        file, _ = path_named(name).write(source, tmp_path)
        graph = OnnxFunction(file, "probabilities" if name == "skl2onnx" else None)
        frame = source.reference.param_jacobian(source.X)
        checked = set()
        for tensor, array in harness.read_file_tensors(file).items():
            match = harness.match_file_tensor(tensor, array, source.reference)
            if match and match[0] == "param":
                ours = harness.oriented(frame[match[1]], match[2], array.shape)
                assert harness.mismatch(graph.param_jacobian(source.X, tensor), ours, 1) is None, tensor
                checked.add(match[2])
        assert checked >= ({"same", "transpose"} if name == "onnx-legacy" else {"same", "reshape"})
