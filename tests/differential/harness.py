"""The differential check of one exported model against its framework, and the tally.

``check_file(model_file, reference, X, ...)`` loads the file with jaccli and
compares every quantity with the reference (oracles.py), never jaccli with
itself. The outcome of an example is one of

- ``pass``: every quantity within the tolerance below;
- ``refused``: jaccli (or jaccli's own exporter) raised a one-line JaccliError;
  allowed, except that jaccli refusing a file its own exporter wrote is a failure;
- ``skipped``: a third-party exporter failed or wrote a file that is not the
  framework's function (checked with onnxruntime): nothing of jaccli's to judge;
- ``wrong``: anything else (a mismatch, a crash, a multi-line refusal): a failure.

Tolerance: |jaccli - reference| <= 1e-12 * max(1, max |reference|), the max
taken over one point's block of one output (a row of the value, the (n,),
(n, n) or (P,) block of a derivative). Both sides compute the same float64
expression in different orders: for these nets (depth <= 4, widths <= 8) a
derivative element is a sum of at most a few hundred products, each bounded by
the block's scale times O(1), so two correct results differ by well under
1e-14 of that scale; 1e-12 leaves a margin of 100 for rounding, while a float32
constant (~1e-8) or a dropped fold (O(1)) is caught by orders of magnitude.
Scaling by the block rather than the element keeps an entry that cancels to
~0 from turning rounding noise into a huge relative error.
"""

import collections
import json
import re
import struct

import numpy as np

RTOL = 1e-12
QUANTITIES = ("value", "jacobian", "hessdiag", "hessian", "param_jacobian")


class Tally:
    """Outcomes per export path: Counter of 'pass', 'refused: <reason>', 'skipped: ...', 'wrong: ...'."""

    def __init__(self):
        self.counts = collections.defaultdict(collections.Counter)
        self.seconds = collections.Counter()

    def record(self, path_name, outcome, seconds=0.0):
        self.counts[path_name][outcome.key] += 1
        self.seconds[path_name] += seconds

    def lines(self):
        out = []
        for path_name in sorted(self.counts):
            counts = self.counts[path_name]
            total = sum(counts.values())
            out.append(f"{path_name}: {total} examples, {self.seconds[path_name]:.1f} s")
            out += [f"    {n:4d}  {key}" for key, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
        return out

    def as_json(self):
        return {name: {"counts": dict(c), "seconds": round(self.seconds[name], 2)}
                for name, c in self.counts.items()}

    def write(self, path):
        with open(path, "w") as handle:
            json.dump(self.as_json(), handle, indent=2, sort_keys=True)


TALLY = Tally()


class Outcome:
    """What one example came to: ``kind`` (pass/refused/skipped/wrong), a short ``reason``, the ``details``."""

    def __init__(self, kind, reason="", details=""):
        self.kind, self.reason, self.details = kind, reason, details

    @property
    def key(self):
        return self.kind if not self.reason else f"{self.kind}: {self.reason}"

    @property
    def ok(self):
        return self.kind != "wrong"


def refusal_reason(error):
    """A JaccliError's message as a reason class: paths, quoted names and numbers blanked out."""
    text = str(error)
    text = re.sub(r"^\S+\.(onnx|npz|safetensors|h5|hdf5|keras): ", "", text)
    text = re.sub(r"'[^']*'", "'…'", text)
    text = re.sub(r"\([^()]*\)", lambda m: m.group(0) if m.group(0)[1:2].isupper() else "(…)", text)
    text = re.sub(r"\d+(\.\d+)?", "#", text)
    return text[:110]


# ----------------------------------------------------------------- comparing arrays


def mismatch(actual, expected, block_axes):
    """None if ``actual`` matches ``expected`` to RTOL; else a one-line description of the worst element.

    block_axes: the trailing axes of one block (1 for value rows, 1/2 for derivatives).
    """
    actual, expected = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        return f"shape {actual.shape}, expected {expected.shape}"
    axes = tuple(range(expected.ndim - block_axes, expected.ndim))
    scale = np.maximum(1.0, np.max(np.abs(expected), axis=axes, keepdims=True)) if expected.size else 1.0
    error = np.abs(actual - expected) / scale
    if expected.size == 0 or np.all(error <= RTOL):
        return None
    where = np.unravel_index(np.nanargmax(np.where(np.isnan(error), np.inf, error)), error.shape)
    return (f"max error {float(np.nanmax(error)):.3g} x scale at {tuple(int(i) for i in where)}: "
            f"jaccli {actual[where]!r}, reference {expected[where]!r}")


def read_file_tensors(path):
    """{name: float64 array} of the tensors the model file holds, read without jaccli."""
    path = str(path)
    if path.endswith(".npz"):
        with np.load(path, allow_pickle=False) as archive:
            return {k: archive[k].astype(np.float64) for k in archive.files if archive[k].dtype.kind == "f"}
    if path.endswith(".safetensors"):
        return _read_safetensors(path)
    if path.endswith((".h5", ".hdf5")):
        tensors = _read_hdf5(path)
        if not any(name.startswith("model_weights/") for name in tensors):
            return tensors
        # A Keras model file: model_weights/<layer>/<scope>/<layer>/<variable>(:0)
        return {"/".join(name.split("/")[-2:]).removesuffix(":0"): value
                for name, value in tensors.items() if name.startswith("model_weights/")}
    if path.endswith(".keras"):  # a zip archive whose weights are the HDF5 file model.weights.h5
        import io
        import zipfile

        with zipfile.ZipFile(path) as archive:
            tensors = _read_hdf5(io.BytesIO(archive.read("model.weights.h5")))
            roles = _keras_roles(archive)
        # layers/<layer>/vars/<i>: a Dense layer's variables 0 and 1 are its kernel and bias
        return {f"{name.split('/')[1]}/{roles.get(name.split('/')[1], ('kernel', 'bias'))[int(name.split('/')[3])]}":
                value for name, value in tensors.items() if name.startswith("layers/")}
    if path.endswith(".onnx"):
        from .oracles import OnnxFunction

        return {k: v for k, v in OnnxFunction(path).tensors.items() if v.dtype.kind == "f"}
    raise ValueError(path)


def _keras_roles(archive):
    """{layer name: its variables' roles} for the LayerNormalization layers of a .keras
    archive's config (gamma if scale, then beta if center; tests name layers as the
    archive does, so a layer's name is its archive path)."""
    import json

    config = json.loads(archive.read("config.json"))
    roles = {}
    for layer in config.get("config", {}).get("layers", []):
        if layer.get("class_name") == "LayerNormalization":
            flags = layer.get("config", {})
            roles[flags.get("name")] = [role for role, flag in (("gamma", "scale"), ("beta", "center"))
                                        if flags.get(flag, True)]
    return roles


def _read_safetensors(path):
    dtypes = {"F64": "<f8", "F32": "<f4", "F16": "<f2"}
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
        data = handle.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__" or info["dtype"] not in dtypes:
            continue
        start, stop = info["data_offsets"]
        out[name] = np.frombuffer(data[start:stop], dtype=dtypes[info["dtype"]]).reshape(info["shape"]).astype(np.float64)
    return out


def _read_hdf5(path):
    import h5py

    out = {}
    with h5py.File(path, "r") as h5:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and obj.dtype.kind == "f":
                out[name] = obj[()].astype(np.float64)
        h5.visititems(visit)
    return out


# ----------------------------------------------------------------- the parameter table


def relation(file_array, param):
    """How a file tensor holds a framework tensor: 'same', 'transpose', 'reshape', or None."""
    param = np.asarray(param, dtype=np.float64)
    if file_array.shape == param.shape and np.array_equal(file_array, param):
        return "same"
    if file_array.ndim == 2 and param.ndim == 2 and file_array.shape == param.T.shape \
            and np.array_equal(file_array, param.T):
        return "transpose"
    if file_array.size == param.size and np.array_equal(file_array.ravel(), param.ravel()):
        return "reshape"
    return None


def match_file_tensor(name, array, reference):
    """('param', canonical, relation) | ('statistic', name, rel) | None: which framework tensor this file tensor is.

    By name first (a framework name whose tensor it holds), then by value (an
    exporter's copy under a generated name, transposed or reshaped).
    """
    params = {k: v.detach().numpy() for k, v in reference.params.items()}
    if name in reference.aliases and relation(array, params[reference.aliases[name]]):
        canonical = reference.aliases[name]
        return ("param", canonical, relation(array, params[canonical]))
    if name in reference.statistics and relation(array, reference.statistics[name]):
        return ("statistic", name, "same")
    for canonical, value in params.items():
        rel = relation(array, value)
        if rel:
            return ("param", canonical, rel)
    for stat_name, value in reference.statistics.items():
        if value.size > 1 and relation(array, value):
            return ("statistic", stat_name, relation(array, value))
    return None


def oriented(block, rel, file_shape):
    """(N, m, *param shape) -> (N, m, size) in the file's shape, C order."""
    N, m = block.shape[:2]
    if rel == "transpose":
        block = np.swapaxes(block, -1, -2)
    return block.reshape(N, m, int(np.prod(file_shape, dtype=int)))


def expected_param_columns(listed, tensors, reference, X, own, graph=None, exact=True):
    """(expected (N, m, P) or None, [problems]) for jaccli's parameter table ``listed``.

    A listed name must be a tensor of the file, in the file's shape. Its
    columns are the framework's derivative w.r.t. the parameter the tensor
    holds (as stored: transposed or reshaped), when it is that parameter's only
    tensor in the file; otherwise (an exporter's folded or copied tensor) the
    derivative of the ONNX graph itself w.r.t. that tensor (for every tensor
    when the file is not exactly the framework's function), and for jaccli's own
    export files (no graph) a failure. Every file tensor that holds a framework
    parameter must be listed; stored statistics must not be; no name twice.
    """
    problems, matches = [], {name: match_file_tensor(name, a, reference) for name, a in tensors.items()}
    holders = collections.Counter(m[1] for m in matches.values() if m and m[0] == "param")
    names = [name for name, _ in listed]
    problems += [f"parameter table lists {n!r} {c} times" for n, c in collections.Counter(names).items() if c > 1]
    problems += [f"parameter table lacks {n!r} (the file's copy of the framework's {m[1]!r})"
                 for n, m in matches.items() if m and m[0] == "param" and n not in names]
    if own:
        problems += [f"framework parameter {p!r} is not in the file as itself (folded or renamed by the export)"
                     for p in reference.params if holders[p] == 0]
        problems += [f"framework parameter {p!r} is written as {c} tensors (a tied tensor must be one)"
                     for p, c in holders.items() if c > 1]
    frame = reference.param_jacobian(X) if reference.params else {}
    blocks = []
    for name, shape in listed:
        block, problem = _column_block(name, tuple(shape), tensors, matches, holders, frame, X,
                                       graph, exact)
        if problem:
            problems.append(problem)
        blocks.append(block)
    if any(b is None for b in blocks) or problems:
        return None, problems
    if not blocks:
        return np.zeros((len(X), reference.value(X[:1]).shape[1], 0)), []
    return np.concatenate(blocks, axis=2), []


def _column_block(name, shape, tensors, matches, holders, frame, X, graph, exact):
    """(expected (N, m, size) block or None, problem or None) for one listed tensor."""
    if name not in tensors:
        return None, f"parameter table lists {name!r}, which the file does not hold"
    if shape != tensors[name].shape:
        return None, f"parameter table gives {name!r} shape {shape}; the file holds {tensors[name].shape}"
    match = matches[name]
    if match and match[0] == "statistic":
        return None, f"parameter table lists {name!r}, a stored statistic ({match[1]}), not a parameter"
    if match and holders[match[1]] == 1 and exact:
        return oriented(frame[match[1]], match[2], shape), None
    if graph is not None:
        return graph.param_jacobian(X, name), None
    why = "holds no framework parameter (a folded tensor)" if not match else \
        f"is one of {holders[match[1]]} copies of {match[1]!r}"
    return None, f"parameter table lists {name!r}, which {why}"


# ----------------------------------------------------------------- one file, all quantities

# Trailing axes of one block for the tolerance: a point's outputs (value), one
# output's gradient, Hessian diagonal, Hessian or parameter gradient.
_BLOCK_AXES = {"value": 1, "jacobian": 1, "hessdiag": 1, "hessian": 2, "param_jacobian": 1}


def reference_quantities(reference, X):
    """value, jacobian, hessdiag (the diagonal of the reference Hessian) and hessian of the reference."""
    hessian = reference.hessian(X)
    return {"value": reference.value(X), "jacobian": reference.jacobian(X),
            "hessdiag": np.diagonal(hessian, axis1=-2, axis2=-1), "hessian": hessian}


def refused(error, own_file):
    """The outcome of a JaccliError: an allowed refusal, or wrong (several lines, or jaccli's own file)."""
    reason = refusal_reason(error)
    if "\n" in str(error).strip():
        return Outcome("wrong", "refusal of several lines", str(error))
    if own_file:
        return Outcome("wrong", f"refused its own export: {reason}", str(error))
    return Outcome("refused", reason, str(error))


def problem_kind(problem):
    """A problem line as a class for the tally: names and numbers blanked, cut before the details."""
    head = problem.split(": max error")[0].split(": shape")[0]
    return refusal_reason(head)


def check_file(path, reference, X, own, load_kwargs=None, graph=None, exact=True):
    """The Outcome of loading ``path`` with jaccli and comparing all quantities with ``reference``.

    own: the file was written by jaccli's exporter (a load refusal is then a
    failure, and every framework parameter must be in the file as itself);
    graph: an OnnxFunction of the file, the reference for file tensors that
    hold no single framework parameter; exact: the file is the framework's
    function to the tolerance; if not, ``graph`` is the reference for everything.
    """
    import jaccli
    from jaccli.errors import JaccliError

    try:
        model = jaccli.load(str(path), **(load_kwargs or {}))
        listed = model.parameters
        actual = {q: getattr(model, q)(X) for q in QUANTITIES}
    except JaccliError as error:
        return refused(error, own)
    except Exception as error:  # a crash is never a refusal
        return Outcome("wrong", f"crash {type(error).__name__}", repr(error)[:500])
    expected = reference_quantities(reference if exact else graph.as_reference(), X)
    problems = [f"{q}: {p}" for q in expected if (p := mismatch(actual[q], expected[q], _BLOCK_AXES[q]))]
    columns, table = expected_param_columns(listed, read_file_tensors(path), reference, X, own, graph, exact)
    problems += table
    if columns is not None and (p := mismatch(actual["param_jacobian"], columns, 1)):
        problems.append(f"param_jacobian: {p}; {column_report(actual['param_jacobian'], columns, listed)}")
    if problems:
        kinds = sorted({problem_kind(p) for p in problems})
        return Outcome("wrong", "; ".join(kinds), "\n".join(problems))
    return Outcome("pass")


def column_report(actual, expected, listed):
    """Which listed tensors' column blocks differ, e.g. "wrong columns: '2.weight' (4, 2)"."""
    bad, offset = [], 0
    for name, shape in listed:
        size = int(np.prod(shape, dtype=int))
        if mismatch(actual[..., offset:offset + size], expected[..., offset:offset + size], 1):
            bad.append(f"{name!r} {tuple(shape)}")
        offset += size
    return "wrong columns: " + ", ".join(bad)
