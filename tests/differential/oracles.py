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


def torch_reference(net):
    """The reference of an ``nn.Module`` in eval mode: functional_call over its named parameters."""
    torch = _torch()
    params = {name: p.detach().clone() for name, p in net.named_parameters()}
    canonical = {id(p): name for name, p in net.named_parameters()}
    aliases = {key: canonical[id(t)] for key, t in net.state_dict(keep_vars=True).items()
               if id(t) in canonical}
    parameter_ids = set(canonical)
    statistics = {key: t.detach().numpy().astype(np.float64)
                  for key, t in net.state_dict(keep_vars=True).items()
                  if id(t) not in parameter_ids and t.is_floating_point()}

    def forward(X, p):
        return torch.func.functional_call(net, p, (X,))

    return Reference(forward, params, aliases, statistics)


_STACK_ACTIVATIONS = {
    "identity": lambda z: z, "linear": lambda z: z, "logistic": lambda z: _torch().sigmoid(z),
    "sigmoid": lambda z: _torch().sigmoid(z), "tanh": lambda z: _torch().tanh(z),
    "relu": lambda z: _torch().relu(z), "softmax": lambda z: _torch().softmax(z, dim=-1),
    "exp": lambda z: _torch().exp(z),
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


def _op_table():
    """ONNX op type -> fn(inputs, attributes); the ops exporters write for an MLP."""
    torch = _torch()
    F = torch.nn.functional

    def selu(x, alpha=_SELU_ALPHA, gamma=_SELU_GAMMA):
        # The ONNX defaults are float32 roundings of these constants: read as the constants.
        alpha = _SELU_ALPHA if np.float32(alpha) == np.float32(_SELU_ALPHA) else alpha
        gamma = _SELU_GAMMA if np.float32(gamma) == np.float32(_SELU_GAMMA) else gamma
        return gamma * torch.where(x > 0, x, alpha * (torch.exp(x) - 1))

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
        "Flatten": lambda i, a: i[0].reshape(i[0].shape[0], -1),
        "Reshape": lambda i, a: _reshape(i[0], i[1]),
        "Transpose": lambda i, a: i[0].permute(*a["perm"]) if "perm" in a else i[0].T,
        "Concat": lambda i, a: torch.cat(i, dim=a["axis"]),
        "Greater": lambda i, a: i[0] > i[1], "Where": lambda i, a: torch.where(*i),
        "BatchNormalization": lambda i, a: batchnorm(*i, **a),
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
        inputs = [i.name for i in graph.input if i.name not in self.tensors]
        self.input_name = inputs[0]
        self.output = output or graph.output[0].name
        self._ops = _op_table()

    def __call__(self, x_row, overrides=None):
        torch = _torch()
        env = {name: torch.as_tensor(value) for name, value in self.tensors.items()}
        env.update(overrides or {})
        env[self.input_name] = x_row[None, :]
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
