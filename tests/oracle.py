"""An independent reference: a plain forward pass, written apart from jaccli.

It reads the spec dict and the tensors directly (not through jaccli's
loader), computes in complex arithmetic, and differentiates by the complex
step (exact to rounding for analytic functions) and by central differences
of complex-step derivatives for second order. Nothing here calls jaccli.
"""

import numpy as np
from scipy.special import erf

H_COMPLEX = 1e-30
H_SECOND = 1e-3

SELU_L = 1.0507009873554805
SELU_A = 1.6732632423543772


def _positive(z):
    return np.real(z) > 0


def reference_activation(name, z, alpha=None):
    if name in ("linear", "identity"):
        return z
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.where(_positive(z), z, 0.0 * z)
    if name == "leaky_relu":
        return np.where(_positive(z), z, (0.01 if alpha is None else alpha) * z)
    if name == "elu":
        a = 1.0 if alpha is None else alpha
        return np.where(_positive(z), z, a * (np.exp(z) - 1.0))
    if name == "selu":
        return SELU_L * np.where(_positive(z), z, SELU_A * (np.exp(z) - 1.0))
    if name == "softplus":
        return np.log(1.0 + np.exp(z))
    if name == "softsign":
        return np.where(_positive(z), z / (1.0 + z), z / (1.0 - z))
    if name in ("silu", "swish"):
        return z / (1.0 + np.exp(-z))
    if name == "gelu":
        return 0.5 * z * (1.0 + erf(z / np.sqrt(2.0)))
    if name == "gelu_tanh":
        return 0.5 * z * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (z + 0.044715 * z ** 3)))
    if name == "sin":
        return np.sin(z)
    if name == "exp":
        return np.exp(z)
    if name == "softmax":
        e = np.exp(z - np.max(np.real(z), axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    if name == "layer_norm":  # alpha is eps here; c * c, not |c|^2: analytic for the complex step
        centred = z - z.mean(axis=-1, keepdims=True)
        return centred / np.sqrt((centred * centred).mean(axis=-1, keepdims=True) + alpha)
    if name == "log_softmax":
        shifted = z - np.max(np.real(z), axis=-1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    raise KeyError(name)


def layer_list(spec, tensors):
    """[(kernel as (in, out), bias or None, activation, alpha (eps for layer_norm))] from the spec dict.

    A ``layout: diagonal`` layer's weight is a vector w and its kernel diag(w) (the identity
    of ``units`` without a weight)."""
    out = []
    for i, layer in enumerate(spec["layers"]):
        layout = layer.get("layout", spec.get("layout", "in_out"))
        name = layer.get("weight", f"W{i}")
        if layout == "diagonal":
            kernel = np.eye(layer["units"]) if name is None else np.diag(np.asarray(tensors[name]))
        else:
            kernel = np.asarray(tensors[name])
        if layout == "out_in":
            kernel = kernel.T
        bias_name = layer.get("bias", f"b{i}")
        bias = None if bias_name is None else np.asarray(tensors[bias_name])
        activation = layer.get("activation", "linear")
        alpha = layer.get("eps", 1e-5) if activation == "layer_norm" else layer.get("alpha")
        out.append((kernel, bias, activation, alpha))
    return out


def forward(spec, tensors, x, layers=None):
    """y = f(x) for real or complex x (N, n)."""
    layers = layers or layer_list(spec, tensors)
    a = x
    scaling = spec.get("input_scaling")
    if scaling:
        a = (a - np.asarray(scaling.get("offset", 0.0))) / np.asarray(scaling.get("scale", 1.0))
    for kernel, bias, activation, alpha in layers:
        z = a @ kernel
        if bias is not None:
            z = z + bias
        a = reference_activation(activation, z, alpha)
    scaling = spec.get("output_scaling")
    if scaling:
        a = a * np.asarray(scaling.get("scale", 1.0)) + np.asarray(scaling.get("offset", 0.0))
    return a


def jacobian(spec, tensors, x):
    """dy/dx (N, m, n) by the complex step."""
    x = np.asarray(x, dtype=float)
    columns = []
    for j in range(x.shape[1]):
        shifted = x.astype(complex)
        shifted[:, j] += 1j * H_COMPLEX
        columns.append(np.imag(forward(spec, tensors, shifted)) / H_COMPLEX)
    return np.stack(columns, axis=-1)


def hessian(spec, tensors, x, h_second=H_SECOND):
    """d2y/dx_i dx_j (N, m, n, n): central differences of the complex-step Jacobian,
    Richardson-extrapolated (steps h and h/2), so the error is O(h^4)."""
    x = np.asarray(x, dtype=float)
    columns = []
    for j in range(x.shape[1]):
        step = h_second * max(1.0, float(np.abs(x[:, j]).max()))
        estimates = []
        for h in (step, step / 2):
            up, down = x.copy(), x.copy()
            up[:, j] += h
            down[:, j] -= h
            estimates.append((jacobian(spec, tensors, up) - jacobian(spec, tensors, down)) / (2 * h))
        columns.append((4 * estimates[1] - estimates[0]) / 3)
    return np.stack(columns, axis=-1)


def parameter_names(spec):
    names = []
    for i, layer in enumerate(spec["layers"]):
        if layer.get("weight", f"W{i}") is not None:
            names.append(layer.get("weight", f"W{i}"))
        bias = layer.get("bias", f"b{i}")
        if bias is not None:
            names.append(bias)
    return names


def param_jacobian(spec, tensors, x):
    """dy/dtheta (N, m, P) by the complex step, in parameter order (layer by layer, weight then bias)."""
    columns = []
    for name in parameter_names(spec):
        base = np.asarray(tensors[name], dtype=float)
        for flat in range(base.size):
            perturbed = dict(tensors)
            t = base.astype(complex).ravel()
            t[flat] += 1j * H_COMPLEX
            perturbed[name] = t.reshape(base.shape)
            columns.append(np.imag(forward(spec, perturbed, np.asarray(x, dtype=complex))) / H_COMPLEX)
    return np.stack(columns, axis=-1)


PIECEWISE = {"relu", "leaky_relu", "elu", "selu", "softsign"}


def away_from_kinks(spec, tensors, x, margin=0.05):
    """Rows of x whose pre-activations all stay ``margin`` away from a kink at 0.

    Central differences across a kink measure the jump, not the derivative.
    """
    layers = layer_list(spec, tensors)
    keep = np.ones(len(x), dtype=bool)
    a = np.asarray(x, dtype=float)
    scaling = spec.get("input_scaling")
    if scaling:
        a = (a - np.asarray(scaling.get("offset", 0.0))) / np.asarray(scaling.get("scale", 1.0))
    for kernel, bias, activation, alpha in layers:
        z = a @ kernel + (0 if bias is None else bias)
        if activation in PIECEWISE:
            keep &= (np.abs(z) > margin).all(axis=1)
        a = reference_activation(activation, z, alpha)
    return x[keep]
