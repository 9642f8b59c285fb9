"""A loaded model: the checked network, its names, its parameter table.

``Model`` is the Python API: ``jaccli.load`` gives one, and its methods
(value, jacobian, param_jacobian, hessdiag, hessian, laplacian,
value_and_jacobian, compute_together) take points of shape (N, n) or (n,).
It turns a spec and a tensor store into a
``jaccli.engine.network.Network`` (kernels always in (in, out) orientation)
and runs the engine's sweeps (``jaccli.engine.sweeps``) over the points in
chunks (``jaccli.engine.chunks``).
"""


import math
import os

import numpy as np

from jaccli.engine import sweeps as engine
from jaccli.engine.chunks import chunk_bytes
from jaccli import arguments
from jaccli.errors import JaccliError, param
from jaccli.extras import is_dask_array
from jaccli.formats.assemble import DTYPES, assemble
from jaccli.formats.discovery import load_spec_and_tensors
from jaccli.io.finite import check_finite_points
from jaccli.quantities import QUANTITIES, quantity


#: Bytes of a chunk's widest buffer that the default chunk size aims at: twice a
#: core's L2 (``engine.chunks.chunk_bytes``; 1,000-2,000 points for an 8-64-64-1
#: net, 256 for 64-256-256-10 with 2 MB of L2). Larger chunks spill out of cache;
#: smaller ones pay Python's per-call overhead, which also holds the GIL the
#: other worker thread needs.
CHUNK_BYTES = chunk_bytes()
MIN_CHUNK, MAX_CHUNK = 256, 2048
CHUNK_RESULT_BYTES = 1 << 25
#: A chunk's scratch, in buffers of its widest size (activations, their two
#: derivatives, tangents, adjoints and temporaries; measured: 4-9 on 8-64-64-1).
SCRATCH_BUFFERS = 8


class Model:
    def __init__(self, assembly, input_names, output_names, spec_source="", notes=()):
        self.assembly = assembly  # the spec folded over the file's tensors (formats.assemble)
        self.network = assembly.network
        self.spec_source = spec_source  # where the architecture came from (a file, a dict...)
        self.input_names = list(input_names)
        self.output_names = list(output_names)
        self.path = assembly.path
        self.dtype = assembly.dtype
        self.notes = tuple(notes)  # what the reader chose, e.g. a classifier's probabilities output

    @staticmethod
    def from_arrays(kernels, biases, activations, layout="in_out", inputs=None, outputs=None,
                    input_scaling=None, output_scaling=None, dtype="float64"):
        """A model from in-memory tensors, checked as a weight file and its spec are.

        ``kernels``: one 2-D array per layer, (in, out) for layout in_out, (out, in)
        for out_in (PyTorch's nn.Linear.weight); ``biases``: one 1-D array or None
        per layer, or None for no biases; ``activations``: one per layer, a name
        or a dict such as {"activation": "leaky_relu", "alpha": 0.2}; ``inputs``,
        ``outputs``: names or a count; ``input_scaling``, ``output_scaling``:
        {"offset": [...], "scale": [...]}. The parameters are named W0, b0, W1, ...
        """
        return _from_arrays(kernels, biases, activations, layout, inputs, outputs,
                            input_scaling, output_scaling, dtype)

    def __repr__(self):
        return f"<jaccli.Model {self.architecture}, {self.n_parameters} parameters>"

    @property
    def architecture(self):
        """The layers in one line: '2 in -> 32 tanh -> 1 linear'."""
        return " -> ".join([f"{self.n_inputs} in"] + [
            f"{layer.kernel.shape[1]} {layer.activation.name}" for layer in self.network.layers])

    def describe(self):
        """What ``jaccli info`` says, as plain data (JSON-ready): the model, its
        inputs and outputs, layers, parameter table and scalings, and where the
        spec came from. A scaling that changes nothing is None."""
        net = self.network

        def scaling(offset, scale):
            if not offset.any() and (scale == 1).all():
                return None
            return {"offset": offset.astype(float).tolist(), "scale": scale.astype(float).tolist()}

        return {
            "model": self.path,
            "spec": self.spec_source,
            "inputs": list(self.input_names),
            "outputs": list(self.output_names),
            "layout": self.assembly.spec.layout,
            "layers": [{"units": int(layer.kernel.shape[1]), "activation": layer.activation.name,
                        **{k: v for k, v in spec.params.items() if math.isfinite(v)},
                        **spec.activation_tensors,  # prelu's slope: the tensor's name
                        "bias": layer.bias is not None, **_folds(spec, self.assembly.spec.layout)}
                       for layer, spec in zip(net.layers, self.assembly.spec.layers)],
            "input_scaling": scaling(net.in_offset, 1.0 / net.in_inv_scale),
            "output_scaling": scaling(net.out_offset, net.out_scale),
            "parameters": [{"name": p.name, "shape": list(p.shape), "offset": p.offset,
                            "size": p.size} for p in self.parameter_table],
            "n_parameters": self.n_parameters,
            "notes": list(self.notes),
        }

    # -- the Python API
    @property
    def parameters(self):
        return [(p.name, p.shape) for p in self.parameter_table]

    @property
    def parameter_table(self):
        """The file's tensors that are parameters: name, shape in the file, offset."""
        return self.assembly.parameters

    @property
    def n_inputs(self):
        return self.network.n_inputs

    @property
    def n_outputs(self):
        return self.network.n_outputs

    @property
    def n_parameters(self):
        return sum(p.size for p in self.parameter_table)

    def value(self, X, chunk_size=None):
        return self.compute("value", X, chunk_size)

    def jacobian(self, X, chunk_size=None):
        return self.compute("jacobian", X, chunk_size)

    def param_jacobian(self, X, chunk_size=None):
        return self.compute("param_jacobian", X, chunk_size)

    def hessdiag(self, X, chunk_size=None):
        return self.compute("hessdiag", X, chunk_size)

    def hessian(self, X, chunk_size=None):
        return self.compute("hessian", X, chunk_size)

    def laplacian(self, X, chunk_size=None):
        return self.compute("laplacian", X, chunk_size)

    def value_and_jacobian(self, X, chunk_size=None):
        """(values (N, m), Jacobian (N, m, n)), from one pass over the points."""
        both = self.compute_together(("value", "jacobian"), X, chunk_size)
        return both["value"], both["jacobian"]

    def compute_together(self, quantities, X, chunk_size=None, threads=None):
        """{quantity: result} for several quantities (value, jacobian, hessdiag,
        laplacian, hessian, param_jacobian), each chunk in one sweep: the
        forward pass, the adjoints and the tangents are shared."""
        from jaccli.engine.chunks import run_chunks
        from jaccli.scale.arrays import lazy_results

        names = together_names(quantities)
        chunk_size = arguments.count("chunk_size", chunk_size)
        threads = arguments.count("threads", threads)
        if is_dask_array(X):  # lazy Dask arrays, one pass over X's blocks
            return dict(zip(names, lazy_results(self, names, X, chunk_size)))
        points = self.as_points(X)
        chunk = self._api_chunk(names, len(points), chunk_size, threads)
        outs = {name: np.empty(self.output_shape(name, len(points)), dtype=points.dtype)
                for name in names}

        def work(start, stop, workspace):
            for name, part in self.compute_chunk_together(names, points[start:stop], workspace).items():
                outs[name][start:stop] = part

        run_chunks(work, len(points), chunk, threads, engine.Workspace)
        return outs

    # -- machinery
    def points_from(self, X, source="points", whole=False):
        """Points as every entry of the API takes them: a points file's path (read as the
        command line reads it, by the model's input names) or an array-like, checked by
        ``as_points``. A large file read as a stream, and a Dask array, come back as they
        are (their rows are checked chunk by chunk), unless ``whole`` asks for an array."""
        from jaccli.io.points import is_streamed, read_points

        if isinstance(X, (str, os.PathLike)):
            source, X = str(X), read_points(str(X), self.input_names)
        if is_dask_array(X) or (is_streamed(X) and not whole):
            return X
        return self.as_points(X[0:len(X)] if is_streamed(X) else X, source)

    def as_points(self, X, source="points"):
        """X as a checked (N, n) array in the model's dtype."""
        try:
            points = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise JaccliError(f"{source}: not an array of numbers ({exc})") from None
        if points.ndim == 1:
            points = points[None, :]
        if points.ndim != 2 or points.shape[1] != self.n_inputs:
            raise JaccliError(f"{source}: expected shape (N, {self.n_inputs}) or "
                              f"({self.n_inputs},), got {np.shape(X)}")
        if points.shape[0] == 0:
            raise JaccliError(f"{source}: zero points")
        check_finite_points(points, source)
        return self.in_dtype(points, source)

    def chunk_size_for(self, quantity):
        """Points per chunk: a chunk's scratch about ``CHUNK_BYTES``, from the layer widths."""
        floats = max(QUANTITIES[quantity].floats_per_point(self), 1)
        itemsize = np.dtype(DTYPES[self.dtype]).itemsize
        chunk = int(np.clip(CHUNK_BYTES // (floats * itemsize) // 64 * 64, MIN_CHUNK, MAX_CHUNK))
        # A chunk's result is held until written (a few chunks in flight): keep each
        # under CHUNK_RESULT_BYTES even when a point's result is huge (N x P with P large).
        result_floats = int(np.prod(self.result_shape(quantity, 1)))
        return max(1, min(chunk, CHUNK_RESULT_BYTES // (result_floats * itemsize)))

    def chunk_points(self, quantity, requested=None, n_points=None):
        """Points per chunk: the default (``chunk_size_for``), or ``requested``
        (``chunk_size``) if the chunks in flight fit the memory budget of results
        (jaccli.limits); a chunk that does not is refused, naming what fits."""
        from jaccli.engine.chunks import default_threads
        from jaccli.limits import check_memory, memory_budget

        requested = arguments.count("chunk_size", requested)
        if requested is None:
            return self.chunk_size_for(quantity)
        chunk = requested if n_points is None else max(1, min(requested, n_points))
        n_chunks = 1 if n_points is None else -(-n_points // chunk)
        most = 2 * default_threads()  # chunks in flight at most: engine.chunks.iter_chunks
        in_flight = min(n_chunks, most)
        per_point = np.dtype(DTYPES[self.dtype]).itemsize * (
            SCRATCH_BUFFERS * QUANTITIES[quantity].floats_per_point(self)
            + int(np.prod(self.result_shape(quantity, 1))) + self.n_inputs)
        budget = memory_budget()
        fits = "" if budget is None else \
            f"chunks of about {max(budget // (per_point * most), 1):,} points fit; "
        check_memory(in_flight * chunk * per_point, f"{param('chunk_size')} {requested:,}: "
                     f"{in_flight} chunk(s) of {chunk:,} points for {quantity}", f"{fits}use a "
                     f"smaller {param('chunk_size')}, or leave it out (the default is sized for "
                     "the cache)")
        return requested

    def result_shape(self, quantity, n_points):
        """The shape of the whole result of ``quantity`` at ``n_points`` points."""
        return QUANTITIES[quantity].shape(self, n_points)

    def output_shape(self, quantity, n_points):
        """The shape of a result held in memory (the Python API), refused with a
        ResourceError (a JaccliError and a MemoryError) if it would not fit."""
        from jaccli.limits import check_memory

        shape = self.result_shape(quantity, n_points)
        nbytes = int(np.prod(shape, dtype=object)) * np.dtype(DTYPES[self.dtype]).itemsize
        check_memory(nbytes, f"{quantity} of {n_points:,} points, shape {shape},",
                     "pass the points in slices, compute hessdiag instead of hessian, or use "
                     "the command line with -o out.npy (streamed to disk)")
        return shape

    def compute_chunk(self, quantity, x, out=None, work=None):
        """One chunk: ``out`` (a view of the caller's output) is filled when given;
        ``work`` is an ``engine.Workspace`` reused from chunk to chunk by one thread."""
        if quantity == "param_jacobian":
            return self._param_jacobian(x, out, work)
        return QUANTITIES[quantity].compute(self.network, x, out=out, work=work)

    def _param_jacobian(self, x, out=None, work=None):
        """dy/dtheta w.r.t. the file's tensors: written by the engine in the file's order
        (the fast path), or the engine's folded parameters times the assembly's map."""
        mapping = self.assembly.parameter_map()
        if mapping is None:
            return engine.param_jacobian(self.network, x, self.assembly.layout, out=out, work=work)
        folded = engine.param_jacobian(self.network, x, "in_out", work=work)
        n_points, m, _ = folded.shape
        result = np.asarray(folded.reshape(n_points * m, -1) @ mapping, dtype=folded.dtype)
        result = result.reshape(n_points, m, self.n_parameters)
        if out is None:
            return result
        out[...] = result
        return out

    def compute_chunk_together(self, names, x, work=None):
        """{name: result} of one chunk, the quantities sharing one sweep (``engine.together``)."""
        rest = [name for name in names if name != "param_jacobian"]
        results = engine.together(self.network, x, rest, work) if rest else {}
        if "param_jacobian" in names:  # its adjoints reach the parameters, not the inputs
            results["param_jacobian"] = self.compute_chunk("param_jacobian", x, work=work)
        return {name: results[name] for name in names}

    def _api_chunk(self, names, n_points, chunk_size=None, threads=None):
        """Points per chunk for ``names`` (``chunk_points``); by default cut so each
        worker gets at least 4 chunks, for load balance."""
        from jaccli.engine.chunks import default_threads

        chunk = min(self.chunk_points(name, chunk_size, n_points) for name in names)
        if chunk_size:
            return int(chunk)
        workers = threads or default_threads()
        return int(min(chunk, max(MIN_CHUNK, -(-n_points // (4 * workers)))))

    def compute(self, quantity, X, chunk_size=None, threads=None):
        """The whole result, chunk by chunk, on ``threads`` workers (default: the cores).

        A Dask array X gives a lazy Dask array of the result, chunked by rows as X is.
        """
        from jaccli.engine.chunks import run_chunks
        from jaccli.scale.arrays import lazy_results

        chunk_size = arguments.count("chunk_size", chunk_size)
        threads = arguments.count("threads", threads)
        if is_dask_array(X):
            return lazy_results(self, [quantity], X, chunk_size)[0]
        points = self.as_points(X)
        chunk = self._api_chunk([quantity], len(points), chunk_size, threads)
        out = np.empty(self.output_shape(quantity, len(points)), dtype=points.dtype)

        def work(start, stop, workspace):
            self.compute_chunk(quantity, points[start:stop], out[start:stop], workspace)

        run_chunks(work, len(points), chunk, threads, engine.Workspace)
        return out

    def iter_chunks(self, quantity, points, chunk_size=None, source="points", threads=None):
        """Stream: yield (start, result of ``quantity``) chunk by chunk, in order (``map_chunks``)."""
        chunk = self.chunk_points(quantity, chunk_size, len(points))

        def compute(x, workspace):
            return self.compute_chunk(quantity, x, work=workspace)

        return self.map_chunks(compute, points, chunk, source, threads)

    def iter_together(self, quantities, points, chunk_size=None, source="points", threads=None):
        """Stream: yield (start, {quantity: result}) chunk by chunk, in order, each
        chunk in one sweep (``compute_together``)."""
        names = together_names(quantities)
        chunk = min(self.chunk_points(name, chunk_size, len(points)) for name in names)

        def compute(x, workspace):
            return self.compute_chunk_together(names, x, workspace)

        return self.map_chunks(compute, points, chunk, source, threads)

    def map_chunks(self, compute, points, chunk, source="points", threads=None, with_start=False):
        """Yield (start, compute(x, workspace)) for every chunk x of ``points``, in order
        (``compute(x, workspace, start)`` with ``with_start``, for a result keyed by
        the rows' numbers).

        ``points`` may be read lazily (an NPY or a large CSV file): each chunk is
        read, checked (a NaN in row 1,000,000 fails with its row number), cast to
        the model's dtype and computed on a worker thread while the caller
        consumes the previous one; at most two chunks per worker are in flight,
        so memory stays bounded whatever N is.
        """
        from jaccli.engine.chunks import iter_chunks

        def work(start, stop, workspace):
            block = np.asarray(points[start:stop], dtype=np.float64)
            check_finite_points(block, source, first_row=start)
            x = self.in_dtype(block, source, start)
            return compute(x, workspace, start) if with_start else compute(x, workspace)

        return iter_chunks(work, len(points), int(chunk), threads, engine.Workspace)

    def in_dtype(self, block, source, first_row=0):
        """The points in the model's dtype; a number float32 cannot hold is an error."""
        dtype = DTYPES[self.dtype]
        if dtype == np.float64:
            return block
        with np.errstate(over="ignore"):
            cast = block.astype(dtype)
        if not np.isfinite(cast).all():
            row, column = np.argwhere(~np.isfinite(cast))[0]
            raise JaccliError(f"{source}: point {first_row + row + 1}, column {column + 1} "
                              f"({block[row, column]:g}) overflows {self.dtype}")
        return cast

    # -- parameters as one flat vector (finite-difference checks, fitting)
    def parameter_vector(self):
        """The file's parameters, flattened in parameter order (float64)."""
        return self.assembly.theta.copy()

    def with_parameters(self, theta):
        """The same model at other parameter values (P,), folded as the file's were."""
        theta = np.asarray(theta, dtype=np.float64)
        if theta.shape != (self.n_parameters,):
            raise ValueError(f"expected {self.n_parameters} parameters, got shape {theta.shape}")
        return Model(self.assembly.at(theta), self.input_names, self.output_names,
                     self.spec_source, self.notes)


def together_names(quantities):
    """The quantities asked for together, each once, in order; an unknown name is an error."""
    if isinstance(quantities, str):
        quantities = quantities.split(",")
    names = list(dict.fromkeys(quantities))
    for name in names:
        quantity(name)  # an unknown name is an error
    if not names:
        raise JaccliError(f"no quantity asked for ({', '.join(QUANTITIES)})")
    return names


def _folds(layer, layout):
    """What ``describe`` says of a layer beyond units and activation, when there is
    something: a kernel stored the other way round, maps folded before or after it."""
    facts = {} if layer.layout == layout else {"layout": layer.layout}
    for field in ("before", "after"):
        maps = getattr(layer, field)
        if maps:
            facts[field] = ["scale" if getattr(m, "mean", None) is None
                            else f"batchnorm {m.weight or m.mean}" for m in maps]
    return facts


def build_model(spec, store, dtype="float64"):
    """Check the spec against the tensors and assemble the Model."""
    assembly = assemble(spec, store, dtype)
    n_inputs, n_outputs = assembly.network.n_inputs, assembly.network.n_outputs
    input_names = spec.inputs or [f"x{i + 1}" for i in range(n_inputs)]
    output_names = spec.outputs or [f"y{i + 1}" for i in range(n_outputs)]
    if len(output_names) != n_outputs:
        raise JaccliError(f"{spec.source}: 'outputs' names {len(output_names)} outputs but the last "
                          f"layer has {n_outputs} units")
    return Model(assembly, input_names, output_names, spec_source=spec.source, notes=spec.notes)


def load(path, spec=None, dtype="float64", output_name=None):
    """Load a model file; ``spec`` is a YAML path, a dict, a YAML text, or None to
    find the spec beside the file (or inside it) as the command line does;
    ``output_name`` picks one output of an ONNX graph or Keras model that has several."""
    parsed, store = load_spec_and_tensors(str(path), spec, output_name)
    return build_model(parsed, store, dtype)


ARRAYS_SOURCE = "Model.from_arrays"


def _from_arrays(kernels, biases, activations, layout, inputs, outputs, input_scaling,
                 output_scaling, dtype):
    """``Model.from_arrays``: a spec and a tensor store built in memory, then ``build_model``."""
    from jaccli.formats.spec import parse_spec
    from jaccli.formats.tensors import TensorStore

    kernels = list(kernels)
    biases = [None] * len(kernels) if biases is None else list(biases)
    activations = [activations] if isinstance(activations, (str, dict)) \
        else list(activations)
    if not kernels or not len(kernels) == len(biases) == len(activations):
        raise JaccliError(f"{ARRAYS_SOURCE}: {len(kernels)} kernels, {len(biases)} biases and "
                          f"{len(activations)} activations: give one of each per layer (at least one)")
    tensors, layers = {}, []
    for i, (kernel, bias, activation) in enumerate(zip(kernels, biases, activations)):
        layer = dict(activation) if isinstance(activation, dict) else {"activation": activation}
        tensors[f"W{i}"] = kernel
        layer["weight"] = f"W{i}"
        layer["bias"] = None if bias is None else f"b{i}"
        if bias is not None:
            tensors[f"b{i}"] = bias
        layers.append(layer)
    data = {"layout": layout, "layers": layers}
    for key, value in (("inputs", inputs), ("outputs", outputs),
                       ("input_scaling", input_scaling), ("output_scaling", output_scaling)):
        if value is not None:
            data[key] = value
    spec = parse_spec(data, ARRAYS_SOURCE)
    store = TensorStore(ARRAYS_SOURCE, lambda name: _as_array(tensors.get(name), name), list(tensors))
    return build_model(spec, store, dtype)


def _as_array(value, name):
    if value is None:
        return None
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise JaccliError(f"{ARRAYS_SOURCE}: tensor '{name}' is not an array ({exc})") from None
