"""Issue 19, items 1-6: the wrong numbers (exit 0) found by the differential run, one test each.

Each net is float64, seeded, exported through one path of paths.PATHS and
checked by harness.check_file against torch.func on the net itself (value,
Jacobian, Hessian diagonal, Hessian, and the parameter Jacobian by the file's
tensor names in the file's shapes). Unlike the random examples, a refusal
fails here too: these files are plain and must be read, and read exactly.
"""

import pytest

from .paths import path_named, run_source, torch_source_of

torch = pytest.importorskip("torch")
nn = torch.nn
pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::UserWarning")]


def exact(build, path_name, tmp_path, float32=False):
    """Build the net (seed 0, float64, eval), send it through ``path_name``, and require a pass.

    float32: the net is exported in float32 and the reference holds the same float32 values.
    """
    path = path_named(path_name)
    for module in path.needs:
        pytest.importorskip(module)
    torch.manual_seed(0)
    net = build().double().eval()
    source = torch_source_of(net, float32=float32)
    outcome = run_source(path, source, tmp_path)
    assert outcome.kind == "pass", f"{outcome.key}\n  model: {source.text}\n  {outcome.details}"


def scale(c, d=0.0, divide=False):
    from .architectures import make_scale_module

    return make_scale_module()(c, d, divide)


# 1. from_torch drops a module object seen before (named_children skips it).

def test_from_torch_keeps_a_repeated_activation_object(tmp_path):
    act = nn.Tanh()
    exact(lambda: nn.Sequential(nn.Linear(3, 8), act, nn.Linear(8, 8), act, nn.Linear(8, 1)),
          "from_torch-npz", tmp_path)


def test_from_torch_keeps_a_repeated_linear_and_lists_it_once(tmp_path):
    tied = nn.Linear(4, 4)
    exact(lambda: nn.Sequential(nn.Linear(3, 4), nn.Tanh(), tied, nn.Tanh(), tied, nn.Linear(4, 1)),
          "from_torch-npz", tmp_path)


# 2. Folded constants keep the file's names: columns are w.r.t. the folded tensor.

def test_onnx_constant_scaling_between_layers_keeps_columns_of_the_file_tensor(tmp_path):
    exact(lambda: nn.Sequential(nn.Linear(3, 4), nn.Tanh(), scale(2.0), nn.Linear(4, 1)),
          "onnx-legacy", tmp_path)


def test_onnx_output_scaling_of_both_signs(tmp_path):
    exact(lambda: nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2),
                                scale([-4.0, 0.1], [0.3, -1.2])), "onnx-legacy", tmp_path)


def test_onnx_negative_input_scaling(tmp_path):
    exact(lambda: nn.Sequential(scale([2.0, -3.0, 0.5], [0.1, -0.4, 1.5], divide=True),
                                nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)), "onnx-legacy", tmp_path)


# 3. Constants and attributes in float32: a float32 file's 3 is 3, its 0.05 is 0.05.

def test_onnx_division_by_a_float32_constant_is_not_a_float32_reciprocal(tmp_path):
    exact(lambda: nn.Sequential(scale(3.0, [0.25, -0.5, 1.0], divide=True),
                                nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)), "onnx-legacy-f32", tmp_path,
          float32=True)


def test_onnx_leaky_relu_alpha_is_the_decimal_written(tmp_path):
    exact(lambda: nn.Sequential(nn.Linear(3, 6), nn.LeakyReLU(0.05), nn.Linear(6, 1)),
          "onnx-legacy", tmp_path)


# 4. Tied weights: one initializer used twice is one parameter, its columns summed.

def test_onnx_tied_linear_is_listed_once_with_summed_columns(tmp_path):
    tied = nn.Linear(4, 4)
    exact(lambda: nn.Sequential(nn.Linear(3, 4), nn.Tanh(), tied, nn.Tanh(), tied, nn.Tanh(),
                                nn.Linear(4, 1)), "onnx-legacy", tmp_path)


# 5. Tied and folded: the unfolded use overwrote the folded one, and the scaling vanished.

def test_onnx_tied_linear_with_a_scaling_after_its_first_use(tmp_path):
    tied = nn.Linear(4, 4)
    exact(lambda: nn.Sequential(nn.Linear(3, 4), nn.Tanh(), tied, scale(-2.0), nn.Tanh(), tied,
                                nn.Tanh(), nn.Linear(4, 1)), "onnx-legacy", tmp_path)


# 6. A bias-free MatMul layer among Gemm layers: listed transposed under the file's name.

def test_onnx_bias_free_matmul_among_gemms_keeps_the_file_shape(tmp_path):
    exact(lambda: nn.Sequential(nn.Linear(3, 2, bias=False), nn.Tanh(), nn.Linear(2, 4), nn.Tanh(),
                                nn.Linear(4, 1)), "onnx-legacy", tmp_path)
