"""Independent references for the differential tests: nothing here imports jaccli.

- ``Reference``: a framework's function ``forward(X, params)`` in torch with its
  named parameters; value, input Jacobian, input Hessian and the parameter
  Jacobian come from torch.func (reverse and forward mode, exact to rounding).
  ``torch_reference`` wraps an ``nn.Module`` (torch.func.functional_call, tied
  parameters tied); ``dense_stack_reference`` is a dense stack written here from
  the framework's own arrays (scikit-learn's coefs_/intercepts_, Keras kernels).
- ``OnnxFunction``: the ONNX graph itself evaluated op by op in torch, so the
  derivative with respect to any tensor the file holds is available (needed
  where an exporter folded or copied a parameter and no framework tensor is
  that file tensor). Float attributes are read as the shortest decimal that
  round-trips their float32 (0.05, not 0.0500000007), as the framework wrote them.
- ``onnxruntime_values``: the exported file run by onnxruntime, one row at a
  time (a declared batch of 1 is honoured), to check the export itself.
"""

import math
from dataclasses import dataclass, field
from typing import Callable, Dict

import numpy as np


def _torch():
    import torch

    return torch


@dataclass
class Reference:
    """A differentiable framework function and its parameters, by the framework's names.

    forward(X, params) -> (N, m) for X (N, n); ``params``: canonical name ->
    float64 tensor; ``aliases``: every name the framework gives a parameter
    (a tied module's second path too) -> canonical name; ``statistics``:
    stored tensors that are not parameters (BatchNorm running mean/var).
    """

    forward: Callable
    params: Dict[str, object]
    aliases: Dict[str, str] = field(default_factory=dict)
    statistics: Dict[str, np.ndarray] = field(default_factory=dict)

    def value(self, X):
        torch = _torch()
        with torch.no_grad():
            return self.forward(torch.as_tensor(X), self.params).numpy()

    def _single(self, x):
        return self.forward(x[None, :], self.params)[0]

    def jacobian(self, X):
        """(N, m, n), one point at a time by reverse mode."""
        torch = _torch()
        jac = torch.func.jacrev(self._single)
        return np.stack([jac(torch.as_tensor(x)).detach().numpy() for x in X])

    def hessian(self, X):
        """(N, m, n, n): forward over reverse mode."""
        torch = _torch()
        hess = torch.func.jacfwd(torch.func.jacrev(self._single))
        return np.stack([hess(torch.as_tensor(x)).detach().numpy() for x in X])

    def param_jacobian(self, X):
        """canonical name -> (N, m, *shape): the total derivative (a tied tensor summed over its uses)."""
        torch = _torch()
        X = torch.as_tensor(X)
        jac = torch.func.jacrev(lambda params: self.forward(X, params))(self.params)
        return {name: value.detach().numpy() for name, value in jac.items()}


def _hardsigmoid(x, alpha=1.0 / 6.0, beta=0.5):
    """max(0, min(1, alpha x + beta)) with a second derivative (torch's own hardsigmoid
    has none, and its first is float32(1/6) in float64), slope alpha on the open
    interval only, as torch's backward; torch's (x + 3) / 6 for its constants."""
    torch = _torch()
    low, high = sorted((-beta / alpha, (1 - beta) / alpha))
    inside = (x > low) & (x < high)
    value = (x + 3) / 6 if (alpha, beta) == (1.0 / 6.0, 0.5) else alpha * x + beta
    return torch.where(inside, value, (x >= high).to(x.dtype))


def twice_differentiable(net):
    """A copy of ``net`` whose Hardsigmoid modules compute ``_hardsigmoid``: the same
    function, which torch.func can differentiate twice (parameter names unchanged)."""
    import copy

    torch = _torch()

    class Hardsigmoid(torch.nn.Module):
        def forward(self, x):
            return _hardsigmoid(x)

    net = copy.deepcopy(net)
    for module in [net] + list(net.modules()):
        for name, child in module._modules.items():
            if type(child) is torch.nn.Hardsigmoid:
                module._modules[name] = Hardsigmoid()
    return net


def torch_reference(net):
    """The reference of an ``nn.Module`` in eval mode: functional_call over its named parameters
    (its Hardsigmoid modules as ``twice_differentiable`` has them)."""
    torch = _torch()
    params = {name: p.detach().clone() for name, p in net.named_parameters()}
    canonical = {id(p): name for name, p in net.named_parameters()}
    aliases = {key: canonical[id(t)] for key, t in net.state_dict(keep_vars=True).items()
               if id(t) in canonical}
    parameter_ids = set(canonical)
    statistics = {key: t.detach().numpy().astype(np.float64)
                  for key, t in net.state_dict(keep_vars=True).items()
                  if id(t) not in parameter_ids and t.is_floating_point()}

    differentiable = twice_differentiable(net)

    def forward(X, p):
        return torch.func.functional_call(differentiable, p, (X,))

    return Reference(forward, params, aliases, statistics)


_STACK_ACTIVATIONS = {
    "identity": lambda z: z, "linear": lambda z: z, "logistic": lambda z: _torch().sigmoid(z),
    "sigmoid": lambda z: _torch().sigmoid(z), "tanh": lambda z: _torch().tanh(z),
    "relu": lambda z: _torch().relu(z), "softmax": lambda z: _torch().softmax(z, dim=-1),
    "exp": lambda z: _torch().exp(z),
    # Keras 3's, as its torch backend computes them (keras/src/backend/torch/nn.py)
    "relu6": lambda z: _torch().nn.functional.relu6(z),
    "hard_silu": lambda z: _torch().nn.functional.hardswish(z),
    "mish": lambda z: _torch().nn.functional.mish(z),
    "celu": lambda z: _torch().nn.functional.celu(z),
    "log_sigmoid": lambda z: _torch().nn.functional.logsigmoid(z),
    "hard_tanh": lambda z: _torch().nn.functional.hardtanh(z),
    "tanh_shrink": lambda z: _torch().nn.functional.tanhshrink(z),
}


def dense_stack_reference(layers, input_scaling=None, outputs="all"):
    """A dense stack ``a = act(a @ kernel + bias)`` written here, from the framework's arrays.

    layers: [(kernel name, kernel (in, out), bias name or None, bias, activation)];
    input_scaling: (offset, scale) applied first as (x - offset) / scale (constants);
    outputs: "all", or "binary-both" to return [1 - p, p] for a one-unit logistic head.
    """
    torch = _torch()
    params = {}
    for kernel_name, kernel, bias_name, bias, _ in layers:
        params[kernel_name] = torch.as_tensor(np.asarray(kernel, dtype=np.float64))
        if bias_name is not None:
            params[bias_name] = torch.as_tensor(np.asarray(bias, dtype=np.float64))
    offset, scale = (None, None) if input_scaling is None else (
        torch.as_tensor(np.asarray(v, dtype=np.float64)) for v in input_scaling)

    def forward(X, p):
        a = X if offset is None else (X - offset) / scale
        for kernel_name, _, bias_name, _, activation in layers:
            z = a @ p[kernel_name]
            a = _STACK_ACTIVATIONS[activation](z if bias_name is None else z + p[bias_name])
        return torch.cat([1 - a, a], dim=-1) if outputs == "binary-both" else a

    return Reference(forward, params, {name: name for name in params})


# ----------------------------------------------------------------- ONNX


def float32_decimal(value):
    """A float32 attribute as the shortest decimal that round-trips it: 0.05, not 0.0500000007."""
    return float(np.format_float_positional(np.float32(value), unique=True))


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_GAMMA = 1.0507009873554804934193349852946


def _gelu(x, approximate):
    torch = _torch()
    if approximate == "tanh":
        return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def _gemm(a, b, c=None, alpha=1.0, beta=1.0, transA=0, transB=0):
    y = alpha * ((a.T if transA else a) @ (b.T if transB else b))
    return y if c is None else y + beta * c


def _reshape(data, shape):
    dims = [int(s) for s in shape.tolist()]
    dims = [data.shape[i] if d == 0 else d for i, d in enumerate(dims)]
    return data.reshape(dims)


def _flatten(x, axis):
    axis = axis + x.dim() if axis < 0 else axis
    return x.reshape(int(np.prod(x.shape[:axis])), -1)


def _axes(inputs, attributes):
    return [int(v) for v in inputs[1].reshape(-1)] if len(inputs) > 1 else attributes.get("axes")


def _squeeze(x, axes):
    axes = [a + x.dim() if a < 0 else a for a in axes] if axes is not None else \
        [i for i, d in enumerate(x.shape) if d == 1]
    return x.reshape([d for i, d in enumerate(x.shape) if i not in axes])


def _unsqueeze(x, axes):
    rank = x.dim() + len(axes)
    axes = sorted(a + rank if a < 0 else a for a in axes)
    for a in axes:
        x = x.unsqueeze(a)
    return x


def _op_table():
    """ONNX op type -> fn(inputs, attributes); the ops exporters write for an MLP."""
    torch = _torch()
    F = torch.nn.functional

    def selu(x, alpha=_SELU_ALPHA, gamma=_SELU_GAMMA):
        # The ONNX defaults are float32 roundings of these constants: read as the constants.
        alpha = _SELU_ALPHA if np.float32(alpha) == np.float32(_SELU_ALPHA) else alpha
        gamma = _SELU_GAMMA if np.float32(gamma) == np.float32(_SELU_GAMMA) else gamma
        return gamma * torch.where(x > 0, x, alpha * (torch.exp(x) - 1))

    def clip(inputs, attributes):
        # as torch's Hardtanh and ReLU6, which write it (s' = 0 at the bounds)
        if len(inputs) == 2:
            raise NotImplementedError("Clip with one bound input")
        low, high = ([float(b) for b in inputs[1:]] if len(inputs) == 3 else
                     [attributes.get("min", -math.inf), attributes.get("max", math.inf)])
        return F.hardtanh(inputs[0], low, high)

    def hardsigmoid(x, alpha=0.2, beta=0.5):
        # torch writes alpha = float32(1/6), meaning 1/6 (as Selu's defaults above)
        alpha = 1.0 / 6.0 if np.float32(alpha) == np.float32(1.0 / 6.0) else alpha
        return _hardsigmoid(x, alpha, beta)

    def batchnorm(x, scale, bias, mean, var, epsilon=1e-5, **_):
        return (x - mean) / torch.sqrt(var + epsilon) * scale + bias

    def layer_norm(x, scale, bias=None, axis=-1, epsilon=1e-5, **_):
        # epsilon read as the decimal torch was given (float32 attribute)
        y = F.layer_norm(x, x.shape[axis:], eps=float32_decimal(epsilon))
        return y * scale + (0 if bias is None else bias)

    def reduce_mean(x, axes_input=None, axes=None, keepdims=1, **_):
        axes = axes if axes_input is None else axes_input.tolist()
        return x.mean(dim=tuple(axes), keepdim=bool(keepdims))

    return {
        "Gemm": lambda i, a: _gemm(*i, **a), "MatMul": lambda i, a: i[0] @ i[1],
        "Add": lambda i, a: i[0] + i[1], "Sub": lambda i, a: i[0] - i[1],
        "Mul": lambda i, a: i[0] * i[1], "Div": lambda i, a: i[0] / i[1],
        "Pow": lambda i, a: i[0] ** i[1], "Neg": lambda i, a: -i[0],
        "Sqrt": lambda i, a: torch.sqrt(i[0]), "Exp": lambda i, a: torch.exp(i[0]),
        "Log": lambda i, a: torch.log(i[0]), "Abs": lambda i, a: torch.abs(i[0]),
        "Erf": lambda i, a: torch.erf(i[0]), "Sin": lambda i, a: torch.sin(i[0]),
        "Tanh": lambda i, a: torch.tanh(i[0]), "Sigmoid": lambda i, a: torch.sigmoid(i[0]),
        "Relu": lambda i, a: torch.relu(i[0]),
        "LeakyRelu": lambda i, a: F.leaky_relu(i[0], a.get("alpha", 0.01)),
        "Elu": lambda i, a: F.elu(i[0], a.get("alpha", 1.0)),
        "Selu": lambda i, a: selu(i[0], **a),
        "Softplus": lambda i, a: torch.log1p(torch.exp(i[0])),
        "Softsign": lambda i, a: i[0] / (1 + torch.abs(i[0])),
        "Gelu": lambda i, a: _gelu(i[0], a.get("approximate", "none")),
        "Softmax": lambda i, a: torch.softmax(i[0], dim=a.get("axis", -1)),
        "LogSoftmax": lambda i, a: torch.log_softmax(i[0], dim=a.get("axis", -1)),
        "LayerNormalization": lambda i, a: layer_norm(*i, **a),
        "ReduceMean": lambda i, a: reduce_mean(i[0], *i[1:], **a),
        "Identity": lambda i, a: i[0], "Dropout": lambda i, a: i[0],
        "Cast": lambda i, a: i[0] if i[0].is_floating_point() else i[0].double(),
        "Flatten": lambda i, a: _flatten(i[0], a.get("axis", 1)),
        "Squeeze": lambda i, a: _squeeze(i[0], _axes(i, a)),
        "Unsqueeze": lambda i, a: _unsqueeze(i[0], _axes(i, a)),
        "Shape": lambda i, a: torch.tensor(list(i[0].shape), dtype=torch.int64),
        "Gather": lambda i, a: torch.index_select(i[0], a.get("axis", 0), i[1].reshape(-1))
        .reshape(tuple(i[1].shape) + tuple(i[0].shape[1:])),
        "Reshape": lambda i, a: _reshape(i[0], i[1]),
        "Transpose": lambda i, a: i[0].permute(*a["perm"]) if "perm" in a else i[0].T,
        "Concat": lambda i, a: torch.cat(i, dim=a["axis"]),
        "Greater": lambda i, a: i[0] > i[1], "Where": lambda i, a: torch.where(*i),
        "BatchNormalization": lambda i, a: batchnorm(*i, **a),
        "Clip": lambda i, a: clip(i, a),
        "HardSigmoid": lambda i, a: hardsigmoid(i[0], **a), "HardSwish": lambda i, a: F.hardswish(i[0]),
        "Mish": lambda i, a: F.mish(i[0]), "Celu": lambda i, a: F.celu(i[0], a.get("alpha", 1.0)),
        "PRelu": lambda i, a: torch.where(i[0] > 0, i[0], i[1] * i[0]),
        "Scaler": lambda i, a: (i[0] - torch.as_tensor(a.get("offset", [0.0])))
        * torch.as_tensor(a.get("scale", [1.0])),
    }


class OnnxFunction:
    """An ONNX graph as a torch function of its input and of any tensor the file holds.

    tensors: initializers and Constant node values by name (float64 where float).
    ``__call__(x_row, overrides)`` evaluates the ancestors of ``output`` for one
    point (x_row of shape (n,)), with ``overrides`` replacing file tensors.
    """

    def __init__(self, path, output=None):
        import onnx
        from onnx import helper, numpy_helper

        model = onnx.load(str(path))
        graph = model.graph
        self.tensors = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        self.nodes = []
        for node in graph.node:
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            if node.op_type == "Constant":
                self.tensors[node.output[0]] = numpy_helper.to_array(attrs["value"])
                continue
            attrs = {k: float32_decimal(v) if isinstance(v, float) else
                     [float32_decimal(e) for e in v] if isinstance(v, list) and v and isinstance(v[0], float)
                     else (v.decode() if isinstance(v, bytes) else v) for k, v in attrs.items()}
            self.nodes.append((node.op_type, list(node.input), list(node.output), attrs))
        self.tensors = {k: v.astype(np.float64) if v.dtype.kind == "f" else v
                        for k, v in self.tensors.items()}
        inputs = [i for i in graph.input if i.name not in self.tensors]
        self.input_name = inputs[0].name
        # The declared shape of one point (a symbolic or fixed batch taken as 1; a 1-D input as is).
        dims = [d.dim_value or 1 for d in inputs[0].type.tensor_type.shape.dim]
        column = len(dims) == 2 and dims[1] == 1 and dims[0] > 1  # (n, 1): one point, a column
        self.input_shape = tuple(dims) if len(dims) != 2 or column else (1, -1)
        self.output = output or graph.output[0].name
        self._ops = _op_table()

    def __call__(self, x_row, overrides=None):
        torch = _torch()
        env = {name: torch.as_tensor(value) for name, value in self.tensors.items()}
        env.update(overrides or {})
        env[self.input_name] = x_row.reshape(self.input_shape)
        for op_type, inputs, outputs, attrs in self.nodes:
            if any(name and name not in env for name in inputs):
                continue  # a branch fed by something not computed (a label's ArgMax)
            if op_type not in self._ops:
                if self.output in outputs:
                    raise NotImplementedError(f"the ONNX reference has no op {op_type}")
                continue
            result = self._ops[op_type]([env[name] for name in inputs if name], attrs)
            env[outputs[0]] = result
        return env[self.output].reshape(-1)

    def value(self, X):
        torch = _torch()
        with torch.no_grad():
            return np.stack([self(torch.as_tensor(x)).numpy() for x in X])

    def as_reference(self):
        """The graph as a Reference for value, Jacobian and Hessian (no framework parameters)."""
        torch = _torch()
        return Reference(lambda X, params: torch.stack([self(x) for x in X]), {})

    def param_jacobian(self, X, name):
        """(N, m, size): the derivative with respect to the file tensor ``name`` as the file holds it."""
        torch = _torch()
        base = torch.as_tensor(self.tensors[name])
        rows = []
        for x in X:
            x = torch.as_tensor(x)
            jac = torch.func.jacrev(lambda t: self(x, {name: t}))(base)
            rows.append(jac.detach().numpy().reshape(jac.shape[0], -1))
        return np.stack(rows)


def onnxruntime_values(path, X, output=None):
    """The exported file's output by onnxruntime, (N, m), one row per run (a declared batch of 1 is honoured)."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0]
    names = [output] if output else [session.get_outputs()[0].name]
    dtype = np.float32 if feed.type == "tensor(float)" else np.float64
    rows = []
    for x in X:
        result = session.run(names, {feed.name: np.asarray(x[None, :], dtype=dtype)})[0]
        rows.append(np.asarray(result, dtype=np.float64).reshape(-1))
    return np.stack(rows)
