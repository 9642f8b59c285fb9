"""ONNX files read with no spec, through the Python API and the CLI.

The files in tests/data/onnx were written by the exporters themselves
(torch.onnx.export with the TorchScript and the dynamo exporter, skl2onnx,
onnx.helper); beside each is what torch.func computed on the same weights
(values, input Jacobians, Hessian diagonals) and what onnxruntime computed
(tests/data/make_onnx_files.py made them). jaccli must agree to 1e-12
relative in float64 and 1e-6 for float32 graphs, whose float32 constants
(SELU's, a scaler's 1/std) differ from the exact ones in the 8th digit.
"""

import csv
import io
import json
import os

import numpy as np
import pytest

pytest.importorskip("onnx")

import jaccli  # noqa: E402
from hostile_helpers import invoke  # noqa: E402

DATA = os.path.join(os.path.dirname(__file__), "data", "onnx")
MANIFEST = json.load(open(os.path.join(DATA, "manifest.json")))["files"]
ACCEPTED = sorted(k for k, v in MANIFEST.items() if v["accepted"])
REFUSED = sorted(k for k, v in MANIFEST.items() if not v["accepted"])
QUANTITIES = ("value", "jacobian", "hessdiag")


def rtol_for(name):
    return 1e-12 if MANIFEST[name]["dtype"] == "float64" else 1e-6


def close(actual, expected, rtol):
    """Relative to the array's largest entry: a Hessian diagonal has exact zeros (ReLU)."""
    scale = max(np.max(np.abs(expected)), 1e-300)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=rtol * scale)


def reference(name):
    return np.load(os.path.join(DATA, name + ".npz"))


def model_path(name):
    return os.path.join(DATA, name + ".onnx")


def test_the_files_cover_every_kind_the_issue_names():
    kinds = {}
    for info in MANIFEST.values():
        if info["accepted"]:
            kinds[info["exporter"]] = kinds.get(info["exporter"], 0) + 1
    assert kinds["torch.onnx.export dynamo=False"] >= 8
    assert kinds["torch.onnx.export dynamo=True"] >= 4
    assert kinds["skl2onnx"] >= 9
    assert len(REFUSED) >= 14


@pytest.mark.parametrize("name", ACCEPTED)
def test_python_api_matches_torch_func_and_onnxruntime(name):
    ref = reference(name)
    model = jaccli.load(model_path(name))
    for quantity in QUANTITIES:
        close(getattr(model, quantity)(ref["X"]), ref[quantity], rtol_for(name))
    close(model.value(ref["X"]), ref["value_ort"], MANIFEST[name]["value_ort_rtol"])


def _csv_numbers(text):
    rows = list(csv.reader(io.StringIO(text)))
    return rows[0], np.array(rows[1:], dtype=np.float64)


@pytest.mark.parametrize("name", ACCEPTED)
def test_cli_with_no_spec_matches_the_references(name, tmp_path):
    ref = reference(name)
    points = tmp_path / "points.npy"
    np.save(points, ref["X"])
    for quantity in QUANTITIES:
        result = invoke([quantity, model_path(name), "--points", points, "--quiet"])
        assert result.exit_code == 0, result.stderr
        _, numbers = _csv_numbers(result.stdout)
        close(numbers, ref[quantity].reshape(len(ref["X"]), -1), rtol_for(name))


@pytest.mark.parametrize("name", ACCEPTED)
def test_info_shows_the_initializer_names(name):
    result = invoke(["info", model_path(name)])
    assert result.exit_code == 0, result.stderr
    model = jaccli.load(model_path(name))
    for parameter_name, _ in model.parameters:
        assert f"\n{parameter_name}\t" in result.stdout


def test_info_of_a_torch_export_lists_the_state_dict_names_in_their_shapes():
    result = invoke(["info", model_path("ts_relu_tanh_f32")])
    table = result.stdout.split("name\tshape\toffset\tsize\n")[1].splitlines()
    assert table[:6] == ["0.weight\t(5, 3)\t0\t15", "0.bias\t(5,)\t15\t5", "2.weight\t(4, 5)\t20\t20",
                         "2.bias\t(4,)\t40\t4", "4.weight\t(2, 4)\t44\t8", "4.bias\t(2,)\t52\t2"]


def test_info_says_which_classifier_output_was_taken():
    result = invoke(["info", model_path("skl_clf3_standard_zipmap_f32")])
    assert "probabilities" in result.stdout and "ZipMap" in result.stdout
    result = invoke(["info", model_path("skl_clf2_standard_f64")])
    assert "two class probabilities" in result.stdout
    assert "note" not in invoke(["info", model_path("ts_relu_tanh_f32")]).stdout


def test_scalers_become_the_input_scaling_and_keep_the_stored_weights():
    import onnx
    from onnx import numpy_helper

    model = jaccli.load(model_path("skl_reg_standard_f64"))
    stored = {t.name: numpy_helper.to_array(t) for t in onnx.load(model_path("skl_reg_standard_f64")).graph.initializer}
    theta = model.parameter_vector()
    first = model.parameter_table[0]
    assert first.name == "coefficient"
    np.testing.assert_array_equal(theta[:first.size], stored["coefficient"].ravel())
    assert "input scaling" in invoke(["info", model_path("skl_reg_standard_f64")]).stdout


def test_parameter_jacobian_of_a_torch_export_against_central_differences():
    """The parameters are the file's initializers: perturbing one moves the value as predicted."""
    name = "ts_gelu_op20_f64"
    model = jaccli.load(model_path(name))
    X = reference(name)["X"][:2]
    theta = model.parameter_vector()
    analytic = model.param_jacobian(X)
    h = 1e-6
    for p in range(0, theta.size, 7):
        step = np.zeros_like(theta)
        step[p] = h
        numeric = (model.with_parameters(theta + step).value(X) - model.with_parameters(theta - step).value(X)) / (2 * h)
        np.testing.assert_allclose(analytic[:, :, p], numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", REFUSED)
def test_refused_files_exit_2_with_one_line_naming_node_and_op_type(name, tmp_path):
    points = tmp_path / "points.csv"
    points.write_text("1,2,3\n")
    for args in (["info", model_path(name)], ["value", model_path(name), "--points", points]):
        result = invoke(args)
        assert result.exit_code == 2, (result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
        for fragment in MANIFEST[name]["expect"]:
            assert fragment in lines[0], (fragment, lines[0])
        assert result.stdout == ""


def test_float32_dtype_runs_in_float32():
    name = "ts_relu_tanh_f32"
    ref = reference(name)
    model = jaccli.load(model_path(name), dtype="float32")
    close(model.jacobian(ref["X"]), ref["jacobian"], 1e-5)


def test_a_spec_beside_the_model_wins_over_the_graph(tmp_path):
    """The first match wins: a YAML spec beside the .onnx file names its initializers."""
    import shutil

    shutil.copy(model_path("ts_fixed_batch_f32"), tmp_path / "m.onnx")
    (tmp_path / "m.yaml").write_text(
        "inputs: 3\noutputs: 2\nlayout: out_in\nlayers:\n"
        "  - {units: 4, activation: sigmoid, weight: 0.weight, bias: 0.bias}\n"
        "  - {units: 2, activation: linear, weight: 2.weight, bias: 2.bias}\n")
    X = reference("ts_fixed_batch_f32")["X"]
    ours = jaccli.load(tmp_path / "m.onnx").value(X)
    graph = jaccli.load(model_path("ts_fixed_batch_f32")).value(X)
    assert not np.allclose(ours, graph)  # sigmoid from the spec, not the graph's tanh


def test_without_the_onnx_package_one_line_says_what_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    result = invoke(["info", model_path("ts_relu_tanh_f32")])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"Error: {model_path('ts_relu_tanh_f32')}: reading .onnx files needs the onnx package: "
        "pip install 'jaccli[onnx]'"]
