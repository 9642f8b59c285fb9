"""Make the ONNX test files with the real exporters, and their reference arrays.

Run by hand (not in CI) in a venv with torch==2.13.0 (the local CPU wheel),
onnx, onnxruntime, onnxscript, skl2onnx and scikit-learn:

    .venv/bin/python tests/data/make_onnx_files.py

Beside each accepted ``NAME.onnx`` it writes ``NAME.npz`` with the points
``X``, the values onnxruntime computes (``value_ort``, in the graph's own
precision), and float64 references from torch.func on the same weights:
``value``, ``jacobian`` (N, m, n) and ``hessdiag`` (N, m, n). The torch
references come from the torch module itself (torch exports), from the
fitted scikit-learn estimator's own attributes (skl2onnx), or from the
arrays a hand-built graph was made of: never from reading the ONNX graph.
``manifest.json`` records the exporter, versions, opset and dtype of each
file, and for a refused file the node and op type its error must name.
CI needs neither torch nor onnxruntime: it reads these files.
"""

import json
import os
import shutil
import warnings

import numpy as np

warnings.filterwarnings("ignore")

import onnx  # noqa: E402
import onnx.external_data_helper  # noqa: E402
import onnxruntime  # noqa: E402
import sklearn  # noqa: E402
import skl2onnx  # noqa: E402
import torch  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from torch import nn  # noqa: E402

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "onnx")
N_POINTS = 5
MANIFEST = {"versions": {
    "torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
    "skl2onnx": skl2onnx.__version__, "scikit-learn": sklearn.__version__,
}, "files": {}}


# -- the oracle: torch.func on a float64 function of one point ----------------


def derivatives(f, X):
    """value, input Jacobian (N, m, n) and Hessian diagonal (N, m, n) of f at rows of X."""
    x = torch.tensor(X, dtype=torch.float64)

    def rows(g):  # one point at a time: vmap has no batching rule for PReLU's backward
        return torch.stack([g(point) for point in x])

    value = rows(f)
    jacobian = rows(torch.func.jacrev(f))
    hessian = rows(torch.func.hessian(f))  # (N, m, n, n)
    hessdiag = torch.diagonal(hessian, dim1=-2, dim2=-1)
    return {k: v.detach().numpy() for k, v in
            (("value", value), ("jacobian", jacobian), ("hessdiag", hessdiag))}


RUNTIME = {}  # file name -> the runtime that computed value_ort


def ort_value(path, X, dtype, take=None):
    """The model's output from onnxruntime, or from onnx's reference evaluator
    where onnxruntime has no kernel for the graph's dtype (double Erf, Gelu)."""
    try:
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        outputs = session.run(None, {name: X.astype(dtype)})
        RUNTIME[path] = "onnxruntime " + onnxruntime.__version__
    except onnxruntime.capi.onnxruntime_pybind11_state.NotImplemented:
        from onnx.reference import ReferenceEvaluator
        evaluator = ReferenceEvaluator(path)
        outputs = evaluator.run(None, {evaluator.input_names[0]: X.astype(dtype)})
        RUNTIME[path] = "onnx.reference " + onnx.__version__
    if take is None:
        return np.asarray(outputs[0])
    out = outputs[take]
    if isinstance(out, list):  # ZipMap: a list of {class: probability}
        out = np.array([[row[k] for k in sorted(row)] for row in out])
    return np.asarray(out)


def record(name, X, refs, value_ort, exporter, opset, dtype, **extra):
    path = os.path.join(HERE, name + ".onnx")
    # float32 graphs: 1e-6; onnx's reference evaluator is not exact in float64 either.
    exact = dtype == "float64" and RUNTIME[path].startswith("onnxruntime")
    rtol = 1e-12 if exact else 1e-6
    scale = np.max(np.abs(refs["value"])) + 1e-300
    err = np.max(np.abs(value_ort - refs["value"])) / scale
    assert err < rtol, f"{name}: onnxruntime and the torch oracle differ by {err:.2e}"
    np.savez(os.path.join(HERE, name + ".npz"), X=X, value_ort=value_ort, **refs)
    MANIFEST["files"][name] = dict(accepted=True, exporter=exporter, opset=opset,
                                   dtype=dtype, bytes=os.path.getsize(path),
                                   runtime=RUNTIME[path], value_ort_rtol=rtol, **extra)
    print(f"{name}: ort vs oracle {err:.1e}")


def opset_of(path):
    model = onnx.load(path, load_external_data=False)
    return {o.domain or "ai.onnx": o.version for o in model.opset_import}


# -- torch.onnx.export ---------------------------------------------------------


def torch_nets():
    """name -> (net, dtype, exporter kwargs)."""
    torch.manual_seed(13)
    L = nn.Linear
    nets = {
        "ts_relu_tanh_f32": (nn.Sequential(L(3, 5), nn.ReLU(), L(5, 4), nn.Tanh(), L(4, 2)),
                             torch.float32, dict(dynamo=False, opset_version=17)),
        "ts_leaky_elu_selu_f32": (nn.Sequential(L(3, 4), nn.LeakyReLU(0.2), L(4, 4), nn.ELU(0.7),
                                                L(4, 4), nn.SELU(), L(4, 2)),
                                  torch.float32, dict(dynamo=False, opset_version=17)),
        "ts_sigmoid_softplus_softsign_f32": (
            nn.Sequential(L(3, 4), nn.Sigmoid(), L(4, 4), nn.Softplus(), L(4, 4), nn.Softsign(),
                          L(4, 1)), torch.float32, dict(dynamo=False, opset_version=17)),
        "ts_gelu_op20_f64": (nn.Sequential(L(3, 4), nn.GELU(), L(4, 4), nn.GELU(approximate="tanh"),
                                           L(4, 2)), torch.float64, dict(dynamo=False, opset_version=20)),
        "ts_gelu_op17_f64": (nn.Sequential(L(3, 4), nn.GELU(), L(4, 4), nn.GELU(approximate="tanh"),
                                           L(4, 2)), torch.float64, dict(dynamo=False, opset_version=17)),
        "ts_silu_dropout_flatten_f32": (
            nn.Sequential(L(3, 4), nn.SiLU(), nn.Dropout(0.2), nn.Flatten(), nn.Identity(), L(4, 2)),
            torch.float32, dict(dynamo=False, opset_version=17)),
        "ts_softmax_f64": (nn.Sequential(L(3, 5), nn.Tanh(), L(5, 3), nn.Softmax(dim=-1)),
                           torch.float64, dict(dynamo=False, opset_version=17)),
        "ts_fixed_batch_f32": (nn.Sequential(L(3, 4), nn.Tanh(), L(4, 2)), torch.float32,
                               dict(dynamo=False, opset_version=17, fixed=True)),
        "dy_tanh_relu_f32": (nn.Sequential(L(3, 5), nn.Tanh(), L(5, 4), nn.ReLU(), L(4, 2)),
                             torch.float32, dict(dynamo=True)),
        "dy_gelu_op18_f32": (nn.Sequential(L(3, 4), nn.GELU(), L(4, 4), nn.GELU(approximate="tanh"),
                                           L(4, 1)), torch.float32, dict(dynamo=True, opset_version=18)),
        "dy_silu_softmax_f64": (nn.Sequential(L(3, 4), nn.SiLU(), L(4, 4), nn.Sigmoid(), L(4, 3),
                                              nn.Softmax(dim=1)), torch.float64, dict(dynamo=True)),
        "dy_fixed_batch_nobias_f64": (nn.Sequential(L(3, 4, bias=False), nn.Tanh(), L(4, 2)),
                                      torch.float64, dict(dynamo=True, fixed=True)),
        # PRelu (its slope a parameter), HardSwish, Clip; Mish, Softplus with beta and
        # threshold (Where/Greater), Tanhshrink (Sub/Tanh)
        "ts_prelu_hardswish_relu6_f32": (
            nn.Sequential(L(3, 4), nn.PReLU(4), L(4, 4), nn.Hardswish(), L(4, 4), nn.ReLU6(),
                          L(4, 2)), torch.float32, dict(dynamo=False, opset_version=17)),
        "dy_mish_softplus_tanhshrink_f64": (
            nn.Sequential(L(3, 4), nn.Mish(), L(4, 4), nn.Softplus(2.0, 1.0), L(4, 4),
                          nn.Tanhshrink(), L(4, 2)), torch.float64, dict(dynamo=True)),
    }
    with torch.no_grad():  # PReLU slopes of both signs, as trained ones are
        nets["ts_prelu_hardswish_relu6_f32"][0][1].weight.copy_(torch.tensor([0.3, -0.2, 0.05, 0.6]))
    return nets


def export_torch(name, net, dtype, kwargs):
    net = net.to(dtype).eval()
    kwargs = dict(kwargs)
    fixed = kwargs.pop("fixed", False)
    dynamo = kwargs.pop("dynamo")
    path = os.path.join(HERE, name + ".onnx")
    X = np.random.default_rng(len(name)).normal(size=(N_POINTS, 3))
    example = (torch.tensor(X[:4], dtype=dtype),)
    if dynamo:
        shapes = None if fixed else ({0: torch.export.Dim("N")},)
        program = torch.onnx.export(net, example, dynamo=True, dynamic_shapes=shapes,
                                    input_names=["x"], output_names=["y"], verbose=False, **kwargs)
        # What users of bigger nets get: the weights in NAME.onnx.data beside it.
        onnx.save_model(program.model_proto, path, save_as_external_data=True,
                        all_tensors_to_one_file=True, location=name + ".onnx.data",
                        size_threshold=0)
    else:
        axes = None if fixed else {"x": {0: "N"}, "y": {0: "N"}}
        torch.onnx.export(net, example, path, dynamo=False, input_names=["x"],
                          output_names=["y"], dynamic_axes=axes, **kwargs)
    graph_dtype = "float32" if dtype == torch.float32 else "float64"
    X_run = X[:4] if fixed else X
    value_ort = ort_value(path, X_run, graph_dtype)
    oracle = net.to(torch.float64)
    refs = derivatives(lambda x: oracle(x[None, :])[0], X_run)
    exporter = f"torch.onnx.export dynamo={dynamo}"
    record(name, X_run, refs, value_ort, exporter, opset_of(path), graph_dtype,
           external_data=name + ".onnx.data" if dynamo else None)


# -- skl2onnx ------------------------------------------------------------------


def sklearn_models():
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    rng = np.random.default_rng(7)
    X = rng.normal(size=(80, 3)) * [1.0, 3.0, 0.5] + [0.0, 2.0, -1.0]
    y2 = np.c_[np.sin(X[:, 0]) + X[:, 1], X[:, 2] * X[:, 0]]
    y1 = X @ [1.0, 0.5, -2.0]
    labels3 = (X[:, 0] > 0).astype(int) + (X[:, 1] > 2)
    labels2 = (X[:, 0] + X[:, 2] > -1).astype(int)

    def reg(**kw):
        return MLPRegressor(max_iter=300, random_state=0, **kw)

    def clf(**kw):
        return MLPClassifier(max_iter=300, random_state=0, **kw)

    return X, {
        "skl_reg_tanh_f32": (reg(hidden_layer_sizes=(5, 4), activation="tanh"), y1, "float32", {}),
        "skl_reg_standard_f64": (make_pipeline(StandardScaler(), reg(hidden_layer_sizes=(5,))),
                                 y1, "float64", {}),
        "skl_reg_standard_f32": (make_pipeline(StandardScaler(), reg(hidden_layer_sizes=(5,),
                                                                     activation="logistic")),
                                 y1, "float32", {}),
        "skl_reg_minmax_f32": (make_pipeline(MinMaxScaler(), reg(hidden_layer_sizes=(4,),
                                                                 activation="tanh")),
                               y1, "float32", {}),
        "skl_clf3_standard_zipmap_f32": (make_pipeline(StandardScaler(), clf(hidden_layer_sizes=(5,))),
                                         labels3, "float32", {}),
        "skl_clf3_minmax_f64": (make_pipeline(MinMaxScaler(), clf(hidden_layer_sizes=(5,),
                                                                  activation="tanh")),
                                labels3, "float64", {"zipmap": False}),
        "skl_clf3_f64": (clf(hidden_layer_sizes=(4,)), labels3, "float64", {"zipmap": False}),
        "skl_clf2_zipmap_f32": (clf(hidden_layer_sizes=(4,), activation="logistic"), labels2,
                                "float32", {}),
        "skl_clf2_standard_f64": (make_pipeline(StandardScaler(), clf(hidden_layer_sizes=(4,))),
                                  labels2, "float64", {"zipmap": False}),
    }


def sklearn_torch(estimator, dtype):
    """The fitted estimator as a torch function, from its own attributes."""
    steps = estimator.steps if hasattr(estimator, "steps") else [("mlp", estimator)]
    mlp = steps[-1][1]
    cast = (lambda a: torch.tensor(np.asarray(a, dtype=dtype).astype(np.float64)))
    scalers = []
    for _, step in steps[:-1]:
        if hasattr(step, "mean_"):
            scalers.append((lambda x, m=torch.tensor(step.mean_), s=torch.tensor(step.scale_): (x - m) / s))
        else:
            scalers.append((lambda x, s=torch.tensor(step.scale_), m=torch.tensor(step.min_): x * s + m))
    hidden = {"relu": torch.relu, "tanh": torch.tanh, "logistic": torch.sigmoid,
              "identity": lambda z: z}[mlp.activation]
    weights = [(cast(W), cast(b)) for W, b in zip(mlp.coefs_, mlp.intercepts_)]

    def f(x):
        for scaler in scalers:
            x = scaler(x)
        for i, (W, b) in enumerate(weights):
            x = x @ W + b
            if i < len(weights) - 1:
                x = hidden(x)
        if mlp.out_activation_ == "softmax":
            return torch.softmax(x, dim=-1)
        if mlp.out_activation_ == "logistic":  # a binary classifier: both columns, as the file
            p = torch.sigmoid(x)
            return torch.cat([1 - p, p], dim=-1)
        return x
    return f


def export_sklearn(name, estimator, X_train, y, dtype, options):
    from skl2onnx import to_onnx

    estimator.fit(X_train, y)
    path = os.path.join(HERE, name + ".onnx")
    mlp = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    opts = {id(mlp): options} if options else None
    model = to_onnx(estimator, X_train[:1].astype(dtype), options=opts,
                    target_opset={"": 17, "ai.onnx.ml": 3})
    onnx.save(model, path)
    X = X_train[:N_POINTS]
    classifier = hasattr(mlp, "classes_")
    value_ort = ort_value(path, X, dtype, take=1 if classifier else None)
    if not classifier:
        value_ort = value_ort.reshape(len(X), -1)
    refs = derivatives(sklearn_torch(estimator, dtype), X)
    expected = estimator.predict_proba(X) if classifier else estimator.predict(X)
    expected = np.asarray(expected).reshape(len(X), -1)
    assert np.allclose(refs["value"], expected, rtol=1e-5, atol=1e-6), name
    record(name, X, refs, value_ort, "skl2onnx", opset_of(path), dtype,
           classifier=classifier, zipmap=classifier and options.get("zipmap", True))


def refused_sklearn_multioutput(X_train):
    """skl2onnx 1.20 ends a multi-output MLPRegressor with Reshape(-1, 1): (N, 2)
    becomes (2N, 1), the outputs interleaved into rows. jaccli refuses it."""
    from sklearn.neural_network import MLPRegressor
    from skl2onnx import to_onnx

    y = np.c_[X_train[:, 0], X_train[:, 1] * X_train[:, 2]]
    estimator = MLPRegressor(hidden_layer_sizes=(4,), max_iter=300, random_state=0).fit(X_train, y)
    name = "bad_skl_multioutput_reshape"
    path = os.path.join(HERE, name + ".onnx")
    onnx.save(to_onnx(estimator, X_train[:1].astype(np.float32), target_opset={"": 17}), path)
    rows = ort_value(path, X_train[:N_POINTS], "float32").shape[0]
    assert rows == 2 * N_POINTS, rows
    MANIFEST["files"][name] = dict(accepted=False, exporter="skl2onnx", expect=["Reshape", "[-1, 1]"],
                                   opset=opset_of(path), dtype="float32", bytes=os.path.getsize(path))


# -- hand-built graphs -----------------------------------------------------------


def _value_info(name, elem, n):
    return helper.make_tensor_value_info(name, elem, ["N", n])


def _save(name, nodes, inits, n_in, n_out, elem=TensorProto.DOUBLE, opset=17, inputs=None,
          outputs=None, functions=(), domains=()):
    graph = helper.make_graph(nodes, name, inputs or [_value_info("x", elem, n_in)],
                              outputs or [_value_info("y", elem, n_out)], initializer=inits)
    imports = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, 1) for d in domains]
    model = helper.make_model(graph, opset_imports=imports, functions=list(functions),
                              producer_name="onnx.helper")
    model.ir_version = 8
    path = os.path.join(HERE, name + ".onnx")
    onnx.save(model, path)
    return path


def _init(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def _const(output, array):
    return helper.make_node("Constant", [], [output], value=numpy_helper.from_array(np.asarray(array)),
                            name="const_" + output)


def hand_graphs():
    rng = np.random.default_rng(3)
    W0, b0 = rng.normal(size=(3, 4)) * 0.6, rng.normal(size=4) * 0.2
    W1, b1 = rng.normal(size=(4, 3)) * 0.6, rng.normal(size=(1, 3)) * 0.2
    W2, b2 = rng.normal(size=(2, 3)) * 0.6, rng.normal(size=2) * 0.2
    X = rng.normal(size=(N_POINTS, 3))
    T = lambda a: torch.tensor(a)  # noqa: E731

    # MatMul (in, out) + Add, Sin, MatMul + Add with a (1, out) bias, Exp, Gemm transB=1 alpha/beta.
    nodes = [helper.make_node("MatMul", ["x", "W0"], ["h0"], name="mm0"),
             helper.make_node("Add", ["h0", "b0"], ["z0"], name="add0"),
             helper.make_node("Sin", ["z0"], ["a0"], name="sin0"),
             helper.make_node("MatMul", ["a0", "W1"], ["h1"], name="mm1"),
             helper.make_node("Add", ["b1", "h1"], ["z1"], name="add1"),
             helper.make_node("Exp", ["z1"], ["a1"], name="exp1"),
             helper.make_node("Gemm", ["a1", "W2", "b2"], ["y"], name="gemm2", transB=1,
                              alpha=0.5, beta=2.0)]
    path = _save("hand_sin_exp_gemm_alpha_f64", nodes,
                 [_init("W0", W0), _init("b0", b0), _init("W1", W1), _init("b1", b1),
                  _init("W2", W2), _init("b2", b2)], 3, 2)
    f = lambda x: 0.5 * (torch.exp(torch.sin(x @ T(W0) + T(b0)) @ T(W1) + T(b1)[0]) @ T(W2).T) \
        + 2.0 * T(b2)  # noqa: E731
    record("hand_sin_exp_gemm_alpha_f64", X, derivatives(f, X), ort_value(path, X, "float64"),
           "onnx.helper", opset_of(path), "float64")

    # Constant-node weights, Gemm transB=0, Identity/Dropout/Flatten/Reshape/Cast,
    # constant Sub/Div input scaling and Mul/Add output scaling.
    mean, std = np.array([0.5, -1.0, 2.0]), np.array([2.0, 0.5, 4.0])
    out_scale, out_offset = np.array([3.0, 0.5]), np.array([10.0, -1.0])
    nodes = [_const("mean", mean), _const("std", std), _const("K0", W0), _const("c0", b0),
             _const("K1", W1.T.copy()), _const("c1", b1[0]), _const("K2", W2.T.copy()),
             _const("shape", np.array([-1, 3], dtype=np.int64)),
             _const("ys", out_scale), _const("yo", out_offset),
             helper.make_node("Sub", ["x", "mean"], ["s0"], name="sub_mean"),
             helper.make_node("Div", ["s0", "std"], ["s1"], name="div_std"),
             helper.make_node("Gemm", ["s1", "K0", "c0"], ["z0"], name="gemm0", transB=0),
             helper.make_node("Tanh", ["z0"], ["a0"], name="tanh0"),
             helper.make_node("Identity", ["a0"], ["a0i"], name="identity"),
             helper.make_node("Dropout", ["a0i"], ["a0d"], name="dropout"),
             helper.make_node("Gemm", ["a0d", "K1", "c1"], ["z1"], name="gemm1", transB=1),
             helper.make_node("Flatten", ["z1"], ["z1f"], name="flatten", axis=1),
             helper.make_node("Reshape", ["z1f", "shape"], ["z1r"], name="reshape"),
             helper.make_node("Cast", ["z1r"], ["z1c"], name="cast", to=TensorProto.DOUBLE),
             helper.make_node("Elu", ["z1c"], ["a1"], name="elu", alpha=0.5),
             helper.make_node("MatMul", ["a1", "K2"], ["z2"], name="mm2"),
             helper.make_node("Mul", ["z2", "ys"], ["y0"], name="mul_out"),
             helper.make_node("Add", ["y0", "yo"], ["y"], name="add_out")]
    path = _save("hand_constant_nodes_scaling_f64", nodes, [], 3, 2)
    f = lambda x: (torch.nn.functional.elu(torch.tanh(((x - T(mean)) / T(std)) @ T(W0) + T(b0))  # noqa: E731
                                           @ T(W1) + T(b1)[0], 0.5) @ T(W2).T) * T(out_scale) + T(out_offset)
    record("hand_constant_nodes_scaling_f64", X, derivatives(f, X), ort_value(path, X, "float64"),
           "onnx.helper", opset_of(path), "float64")

    # float32 weights, Gemm with a scalar bias and beta, LeakyRelu with its default alpha.
    V0, V1 = W0.astype(np.float32), W1[:, :2].astype(np.float32).copy()
    nodes = [helper.make_node("Gemm", ["x", "V0", "c"], ["z0"], name="gemm0", beta=0.5),
             helper.make_node("LeakyRelu", ["z0"], ["a0"], name="leaky"),
             helper.make_node("Gemm", ["a0", "V1"], ["y"], name="gemm1")]
    path = _save("hand_gemm_scalar_bias_f32", nodes,
                 [_init("V0", V0), _init("c", np.float32(0.25)), _init("V1", V1)], 3, 2,
                 elem=TensorProto.FLOAT)
    f = lambda x: torch.nn.functional.leaky_relu(x @ T(V0.astype(np.float64)) + 0.125, 0.01) \
        @ T(V1.astype(np.float64))  # noqa: E731
    record("hand_gemm_scalar_bias_f32", X, derivatives(f, X), ort_value(path, X, "float32"),
           "onnx.helper", opset_of(path), "float32")
    # W @ x between two Transposes (weights stored (out, in)), biases (out, 1), softmax on axis 0.
    U0, U1 = W0.T.copy(), W1.T.copy()
    c0, c1 = b0.reshape(4, 1), b1.reshape(3, 1)
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], name="to_columns", perm=[1, 0]),
             helper.make_node("MatMul", ["U0", "xt"], ["h0"], name="mm0"),
             helper.make_node("Add", ["h0", "c0"], ["z0"], name="add0"),
             helper.make_node("Softplus", ["z0"], ["a0"], name="softplus0"),
             helper.make_node("MatMul", ["U1", "a0"], ["h1"], name="mm1"),
             helper.make_node("Add", ["h1", "c1"], ["z1"], name="add1"),
             helper.make_node("Softmax", ["z1"], ["p"], name="softmax", axis=0),
             helper.make_node("Transpose", ["p"], ["y"], name="to_rows")]
    path = _save("hand_transposed_matmul_f32", nodes,
                 [_init("U0", U0.astype(np.float32)), _init("c0", c0.astype(np.float32)),
                  _init("U1", U1.astype(np.float32)), _init("c1", c1.astype(np.float32))],
                 3, 3, elem=TensorProto.FLOAT)
    R = lambda a: torch.tensor(np.asarray(a, dtype=np.float32).astype(np.float64))  # noqa: E731
    f = lambda x: torch.softmax(R(U1) @ torch.nn.functional.softplus(R(U0) @ x + R(c0)[:, 0])  # noqa: E731
                                + R(c1)[:, 0], dim=0)
    record("hand_transposed_matmul_f32", X, derivatives(f, X), ort_value(path, X, "float32"),
           "onnx.helper", opset_of(path), "float32")
    return W0, b0, W2, b2


def refused(name, expect, **kw):
    path = _save(name, **kw)
    MANIFEST["files"][name] = dict(accepted=False, exporter="onnx.helper", expect=expect,
                                   opset=opset_of(path), bytes=os.path.getsize(path))


def hostile_graphs(W0, b0, W2, b2):
    base = [_init("W0", W0), _init("b0", b0)]
    gemm = helper.make_node("Gemm", ["x", "W0", "b0"], ["z0"], name="gemm0")
    relu = helper.make_node("Relu", ["z0"], ["y"], name="relu0")
    four = dict(inits=base, n_in=3, n_out=4)
    refused("bad_conv", ["conv0", "Conv"], nodes=[
        helper.make_node("Conv", ["x", "K"], ["y"], name="conv0")],
        inits=[_init("K", np.ones((1, 1, 1)))], n_in=3, n_out=3)
    refused("bad_lstm", ["lstm0", "LSTM"], nodes=[
        gemm, helper.make_node("LSTM", ["z0", "LW", "LR"], ["y"], name="lstm0", hidden_size=1)],
        inits=base + [_init("LW", np.ones((1, 4, 4))), _init("LR", np.ones((1, 4, 1)))],
        n_in=3, n_out=4)
    refused("bad_branch", ["residual", "Add"], nodes=[
        gemm, helper.make_node("Relu", ["z0"], ["a0"], name="relu0"),
        helper.make_node("Add", ["a0", "z0"], ["y"], name="residual")], **four)
    refused("bad_two_inputs", ["'x'", "'z'"], nodes=[
        helper.make_node("Add", ["x", "z"], ["s"], name="add_inputs"),
        helper.make_node("Gemm", ["s", "W0", "b0"], ["y"], name="gemm0")],
        inputs=[_value_info("x", TensorProto.DOUBLE, 3), _value_info("z", TensorProto.DOUBLE, 3)],
        **four)
    refused("bad_two_outputs", ["'y'", "'y2'"], nodes=[
        gemm, relu, helper.make_node("Tanh", ["z0"], ["y2"], name="tanh0")],
        outputs=[_value_info("y", TensorProto.DOUBLE, 4), _value_info("y2", TensorProto.DOUBLE, 4)],
        **four)
    refused("bad_custom_domain", ["myop", "FancyAct", "com.example"], nodes=[
        gemm, helper.make_node("FancyAct", ["z0"], ["y"], name="myop", domain="com.example")],
        domains=["com.example"], **four)
    function = helper.make_function(
        "local.fns", "MyRelu", ["t"], ["u"], [helper.make_node("Relu", ["t"], ["u"])],
        [helper.make_opsetid("", 17)])
    refused("bad_local_function", ["call_myrelu", "MyRelu"], nodes=[
        gemm, helper.make_node("MyRelu", ["z0"], ["y"], name="call_myrelu", domain="local.fns")],
        functions=[function], domains=["local.fns"], **four)
    branch = helper.make_graph([helper.make_node("Identity", ["z0"], ["o"])], "b", [],
                               [helper.make_tensor_value_info("o", TensorProto.DOUBLE, None)])
    refused("bad_if", ["if0", "If"], nodes=[
        gemm, _const("cond", np.array(True)),
        helper.make_node("If", ["cond"], ["y"], name="if0", then_branch=branch, else_branch=branch)],
        **four)
    body = helper.make_graph(
        [helper.make_node("Identity", ["c_in"], ["c_out"]), helper.make_node("Relu", ["v_in"], ["v_out"])],
        "body", [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                 helper.make_tensor_value_info("c_in", TensorProto.BOOL, []),
                 helper.make_tensor_value_info("v_in", TensorProto.DOUBLE, None)],
        [helper.make_tensor_value_info("c_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", TensorProto.DOUBLE, None)])
    refused("bad_loop", ["loop0", "Loop"], nodes=[
        gemm, _const("trips", np.array(2, dtype=np.int64)), _const("go", np.array(True)),
        helper.make_node("Loop", ["trips", "go", "z0"], ["y"], name="loop0", body=body)], **four)
    refused("bad_int64_weight", ["gemm0", "Gemm", "int64"], nodes=[gemm, relu],
            inits=[_init("W0", np.ones((3, 4), dtype=np.int64)), _init("b0", b0)], n_in=3, n_out=4)
    refused("bad_transposed_output", ["transposed"], nodes=[
        helper.make_node("Transpose", ["x"], ["xt"], name="to_columns"),
        helper.make_node("MatMul", ["U0", "xt"], ["y"], name="mm0")],
        inits=[_init("U0", W0.T.copy())], n_in=3, n_out=4)
    for name, location, offset in (("bad_external_passwd", "../../etc/passwd", 0),
                                   ("bad_external_past_end", "bad_external_past_end.onnx.data", 64)):
        weight = _init("W0", W0)
        onnx.external_data_helper.set_external_data(weight, location=location, offset=offset, length=W0.nbytes)
        weight.ClearField("raw_data")
        weight.data_location = TensorProto.EXTERNAL
        refused(name, ["W0", "gemm0", "Gemm"], nodes=[gemm, relu], inits=[weight, _init("b0", b0)],
                n_in=3, n_out=4)
    with open(os.path.join(HERE, "bad_external_past_end.onnx.data"), "wb") as handle:
        handle.write(W0.tobytes())  # 96 bytes: offset 64 + 96 runs past the end


def main():
    if os.path.isdir(HERE):
        shutil.rmtree(HERE)
    os.makedirs(HERE)
    for name, (net, dtype, kwargs) in torch_nets().items():
        export_torch(name, net, dtype, kwargs)
    X_train, models = sklearn_models()
    for name, (estimator, y, dtype, options) in models.items():
        export_sklearn(name, estimator, X_train, y, dtype, options)
    refused_sklearn_multioutput(X_train)
    hostile_graphs(*hand_graphs())
    with open(os.path.join(HERE, "manifest.json"), "w") as handle:
        json.dump(MANIFEST, handle, indent=1, sort_keys=True)
        handle.write("\n")


if __name__ == "__main__":
    main()
