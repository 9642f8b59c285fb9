"""Every way a user turns a trained model into a file jaccli reads: one table.

An ``ExportPath`` knows the framework it starts from (a seeded random source
and its reference, architectures.py / oracles.py) and how to write the file.
``run_example(path, seed, folder)`` takes one example through it:
source -> file -> (onnxruntime check of the export) -> harness.check_file.
"""

import copy
import time
import warnings
from dataclasses import dataclass
from typing import Callable, Tuple

import numpy as np

from . import architectures, harness, oracles
from .harness import Outcome


@dataclass(frozen=True)
class Source:
    """What an example starts from: the framework object, its reference, points, description."""

    obj: object
    reference: oracles.Reference
    X: np.ndarray
    text: str
    extra: dict


# ----------------------------------------------------------------- sources


def torch_source(seed, scalings=True):
    """A random torch net (architectures.random_torch_net) and its points."""
    return torch_source_of(architectures.random_torch_net(seed, scalings), seed)


def float32_torch_source(seed, scalings=True):
    """A random torch net with every tensor rounded to float32: the file holds float32, the reference
    computes in float64 with those values (the function the float32 file describes)."""
    return torch_source_of(architectures.random_torch_net(seed, scalings), seed, float32=True)


def exportable_torch_source(seed):
    """A random torch net with no custom module, so ``from_torch`` exports every one
    (a custom ``Scale`` is refused by design: its forward cannot be read)."""
    return torch_source(seed, scalings=False)


def exportable_float32_torch_source(seed):
    return float32_torch_source(seed, scalings=False)


def torch_source_of(net, seed=0, float32=False):
    """The Source of a given float64 torch net in eval mode: torch.func reference, seeded points."""
    if float32:
        net = copy.deepcopy(net).float().double()  # deepcopy keeps shared modules shared
    n_inputs = next(m for m in net.modules() if hasattr(m, "in_features")).in_features
    X = architectures.random_points(np.random.default_rng(seed + 10 ** 6), n_inputs)
    text = architectures.describe_torch_net(net) + (" [float32]" if float32 else "")
    return Source(net, oracles.torch_reference(net), X, text, {"float32": float32})


def exported_module(source):
    """The module a writer exports: the net itself, or its float32 copy for a float32 path."""
    return copy.deepcopy(source.obj).float() if source.extra.get("float32") else source.obj


def sklearn_source(seed):
    """A fitted scikit-learn MLP; a binary classifier's reference has both columns, as
    ``predict_proba`` (and the contract: one column per class)."""
    estimator, X_train = architectures.random_sklearn_estimator(seed)
    steps = getattr(estimator, "steps", [(None, estimator)])
    mlp, scaler = steps[-1][1], (steps[0][1] if len(steps) > 1 else None)
    last = len(mlp.coefs_) - 1
    layers = [(f"coefs_{i}", W, f"intercepts_{i}", b, mlp.out_activation_ if i == last else mlp.activation)
              for i, (W, b) in enumerate(zip(mlp.coefs_, mlp.intercepts_))]
    scaling = None if scaler is None else (scaler.mean_, scaler.scale_)
    binary = hasattr(mlp, "classes_") and mlp.out_activation_ == "logistic"
    reference = oracles.dense_stack_reference(layers, scaling, "binary-both" if binary else "all")
    X = X_train[:4] + np.random.default_rng(seed).normal(scale=0.1, size=X_train[:4].shape)
    _check_sklearn_reference(estimator, reference, X)
    text = f"{type(estimator).__name__}: {type(mlp).__name__}{tuple(W.shape for W in mlp.coefs_)} " \
           f"{mlp.activation}/{mlp.out_activation_}" + (" after StandardScaler" if scaler else "")
    return Source(estimator, reference, X, text, {"classifier": hasattr(mlp, "classes_")})


def _check_sklearn_reference(estimator, reference, X):
    """The dense-stack reference written here must be scikit-learn's own function (a harness check)."""
    expected = estimator.predict_proba(X) if hasattr(estimator, "predict_proba") else estimator.predict(X)
    expected = np.asarray(expected).reshape(len(X), -1)
    got = reference.value(X)
    assert harness.mismatch(got, expected, 1) is None, "harness bug: the scikit-learn reference is not predict"


# ----------------------------------------------------------------- writers


def write_from_torch(suffix):
    def write(source, folder):
        from jaccli.export import from_torch

        path = folder / f"model{suffix}"
        from_torch(exported_module(source), path)
        return path, {}
    return write


def write_torch_onnx(dynamo):
    """torch.onnx.export of the net: the legacy TorchScript exporter (a dynamic batch) or dynamo (its default, a batch of 1)."""
    def write(source, folder):
        import torch

        path = folder / "model.onnx"
        module = exported_module(source)
        x = torch.as_tensor(source.X[:1]).to(next(module.parameters()).dtype)
        kwargs = dict(input_names=["x"], output_names=["y"])
        if not dynamo:
            kwargs["dynamic_axes"] = {"x": {0: "N"}, "y": {0: "N"}}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (x,), str(path), dynamo=dynamo, verbose=False, **kwargs)
        return path, {}
    return write


def write_from_sklearn(suffix):
    def write(source, folder):
        from jaccli.export import from_sklearn

        path = folder / f"model{suffix}"
        from_sklearn(source.obj, path)
        return path, {}
    return write


def write_skl2onnx(source, folder):
    """skl2onnx.to_onnx in float64, as a user would call it."""
    from skl2onnx import to_onnx

    options = None
    if source.extra["classifier"]:  # a ZipMap of float64 is an invalid model: probabilities as a tensor
        mlp = source.obj.steps[-1][1] if hasattr(source.obj, "steps") else source.obj
        options = {id(mlp): {"zipmap": False}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        onx = to_onnx(source.obj, source.X[:1].astype(np.float64), options=options)
    path = folder / "model.onnx"
    path.write_bytes(onx.SerializeToString())
    return path, {}


def write_keras(suffix):
    """A Keras Sequential of Dense layers built from the same widths, saved as .keras or .h5."""
    def write(source, folder):
        path = folder / f"model{suffix}"
        source.obj.save(str(path))
        return path, {}
    return write


def keras_source(seed):
    """A random Keras Sequential of Dense layers and its dense-stack reference (any Keras backend)."""
    import keras

    rng = np.random.default_rng(seed)
    widths, _ = architectures.random_widths(rng)
    acts = ["linear", "tanh", "sigmoid", "relu", "relu6", "hard_silu", "mish", "celu",
            "log_sigmoid", "hard_tanh", "tanh_shrink"]
    # Named as a .keras archive names them (class name, then a count), so the archive's
    # layers/<name>/vars/<i> are the layers' own names; random weights, so that every
    # file tensor matches one framework variable by value (Keras starts biases at 0).
    model = keras.Sequential([keras.Input((widths[0],))] + [
        keras.layers.Dense(w, activation=str(rng.choice(acts)), use_bias=bool(rng.random() < 0.8),
                           name="dense" if i == 0 else f"dense_{i}")
        for i, w in enumerate(widths[1:])])
    layers = []
    for i, layer in enumerate(model.layers):
        layer.set_weights([rng.normal(size=w.shape) * 0.8 for w in layer.get_weights()])
        kernel, *bias = layer.get_weights()
        act = layer.get_config()["activation"]
        layers.append((f"k{i}", kernel, f"b{i}" if bias else None, bias[0] if bias else None, act))
    reference = oracles.dense_stack_reference(layers)
    X = architectures.random_points(rng, widths[0])
    return Source(model, reference, X, f"keras Dense {widths}", {})


# ----------------------------------------------------------------- the table


CI_EXAMPLES = 200  # the random architectures per export path that CI runs, at least


@dataclass(frozen=True)
class ExportPath:
    """One export path: ``needs`` modules to importorskip; ``source(seed)`` -> Source;
    ``write(source, folder)`` -> (file, jaccli.load keyword arguments); ``own``: jaccli's own
    exporter writes the file; ``onnx``: check the export (onnxruntime, graph reference)."""

    name: str
    needs: Tuple[str, ...]
    source: Callable
    write: Callable
    own: bool
    onnx: bool = False
    output: Callable = None  # the ONNX output name to compare, from the file (None: the first)
    weight: float = 1.0  # share of a local run's examples this path runs (dynamo: ~2 s an export)

    def examples(self, n):
        """Examples of this path: all ``n`` from CI's count up (every path at least
        ``CI_EXAMPLES``), a ``weight`` share of a smaller, local count."""
        if n >= CI_EXAMPLES:
            return n
        return max(1, round(n * self.weight)) if n else 0


def _skl2onnx_output(graph_outputs):
    """The probabilities of a skl2onnx classifier; a regressor's one output."""
    return "probabilities" if "probabilities" in graph_outputs else None


PATHS = [
    ExportPath("from_torch-npz", ("torch",), exportable_torch_source, write_from_torch(".npz"), own=True),
    ExportPath("from_torch-safetensors", ("torch",), exportable_torch_source,
               write_from_torch(".safetensors"), own=True),
    ExportPath("from_torch-h5", ("torch",), exportable_torch_source, write_from_torch(".h5"), own=True),
    ExportPath("onnx-legacy", ("torch", "onnx", "onnxruntime"), torch_source, write_torch_onnx(False),
               own=False, onnx=True),
    ExportPath("onnx-dynamo", ("torch", "onnx", "onnxruntime", "onnxscript"), torch_source,
               write_torch_onnx(True), own=False, onnx=True, weight=0.6),
    ExportPath("from_torch-npz-f32", ("torch",), exportable_float32_torch_source,
               write_from_torch(".npz"), own=True),
    ExportPath("onnx-legacy-f32", ("torch", "onnx", "onnxruntime"), float32_torch_source,
               write_torch_onnx(False), own=False, onnx=True),
    ExportPath("onnx-dynamo-f32", ("torch", "onnx", "onnxruntime", "onnxscript"), float32_torch_source,
               write_torch_onnx(True), own=False, onnx=True, weight=0.6),
    ExportPath("from_sklearn-npz", ("sklearn", "torch"), sklearn_source,
               write_from_sklearn(".npz"), own=True),
    ExportPath("skl2onnx", ("sklearn", "torch", "onnx", "onnxruntime", "skl2onnx"),
               sklearn_source, write_skl2onnx, own=False, onnx=True,
               output=_skl2onnx_output),
    ExportPath("keras-keras", ("keras", "torch"), keras_source, write_keras(".keras"), own=False),
    ExportPath("keras-h5", ("keras", "torch"), keras_source, write_keras(".h5"), own=False),
]


# ----------------------------------------------------------------- one example


def run_example(path, seed, folder):
    """(Outcome, Source) of example ``seed`` through ``path``; files go under ``folder``."""
    source = path.source(seed)
    return run_source(path, source, folder), source


def run_source(path, source, folder):
    """The Outcome of one Source written through ``path`` and checked against its reference."""
    from jaccli.errors import JaccliError

    try:
        file, load_kwargs = path.write(source, folder)
    except JaccliError as error:  # jaccli's own exporter refused: allowed, one line
        outcome = harness.refused(error, own_file=False)
        return Outcome(outcome.kind, f"export: {outcome.reason}", outcome.details)
    except Exception as error:
        if path.own:
            return Outcome("wrong", f"exporter crash {type(error).__name__}", repr(error)[:500])
        return Outcome("skipped", f"exporter failed ({type(error).__name__})", repr(error)[:500])
    graph, exact = None, True
    if path.onnx:
        graph, exact, outcome = _check_onnx_export(path, file, source)
        if outcome is not None:
            return outcome
    return harness.check_file(file, source.reference, source.X, path.own, load_kwargs, graph, exact)


# The export is the framework's function up to float32 attributes (~1e-8) or, for a
# float32 graph, float32 arithmetic in onnxruntime (~1e-7): a looser check.
EXPORT_RTOL = 1e-5


def _check_onnx_export(path, file, source):
    """(graph reference or None, exact, None) when the file computes the framework's function, else (.., Outcome).

    The file is run by onnxruntime (which lacks float64 kernels for some ops,
    e.g. Erf) and by the graph reference; each that runs must agree with the
    framework to EXPORT_RTOL, or the exporter wrote another function (skipped:
    not jaccli's to judge). ``exact``: the graph reference agrees with the
    framework to the full tolerance. Where it does not (an exporter folded
    BatchNorm in float32 arithmetic), the file's own function is the reference.
    """
    import onnx

    outputs = [o.name for o in onnx.load(str(file), load_external_data=False).graph.output]
    output = path.output(outputs) if path.output else None
    expected = source.reference.value(source.X)
    graph = oracles.OnnxFunction(file, output)
    runs = {"onnxruntime": lambda: oracles.onnxruntime_values(file, source.X, output),
            "the graph reference": lambda: graph.value(source.X)}
    ran = {}
    for name, run in runs.items():
        try:
            ran[name] = run()
        except Exception:  # onnxruntime: no kernel for this op in float64; the reference: an op it lacks
            continue
        scale = EXPORT_RTOL * max(1.0, float(np.max(np.abs(expected))))
        if ran[name].shape != expected.shape or np.max(np.abs(ran[name] - expected)) > scale:
            return None, True, Outcome("skipped", f"the export is not the framework's function ({name})")
    if "the graph reference" not in ran:
        return None, True, None
    return graph, harness.mismatch(ran["the graph reference"], expected, 1) is None, None


def timed_example(path, seed, folder):
    """run_example, recorded in the tally with its time; returns the Outcome and the Source."""
    start = time.perf_counter()
    outcome, source = run_example(path, seed, folder)
    harness.TALLY.record(path.name, outcome, time.perf_counter() - start)
    return outcome, source


def path_named(name):
    return next(path for path in PATHS if path.name == name)


def require_pass(build, path, folder):
    """Build the torch net (seed 0, float64, eval), send it through ``path``, and require
    a pass (a refusal fails too); skipped when the path's packages are missing."""
    import pytest
    import torch

    for module in path.needs:
        pytest.importorskip(module)
    torch.manual_seed(0)
    net = build().double().eval()
    source = torch_source_of(net)
    outcome = run_source(path, source, folder)
    assert outcome.kind == "pass", f"{outcome.key}\n  model: {source.text}\n  {outcome.details}"
