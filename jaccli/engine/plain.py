"""The plain propagation: every intermediate a fresh array, each formula as written.

The production path where the fast sweeps (``jaccli.engine.sweeps``) do not go:
a vector (softmax) output, and the Taylor-mode Hessian diagonal and Laplacian
(cheaper when outputs outnumber inputs). Each layer's derivatives come from its activation's maps
(``Activation.jvp``, ``vjp``, ``second``, ``curvature``), one path for
elementwise and vector activations alike.
"""

import numpy as np

from jaccli.engine.network import scaled_inputs


# ---------------------------------------------------------------- forward mode


def _first_tangents(net):
    """dz_1/dx: the same (n, d_1) matrix at every point, W_1 scaled by 1/scale."""
    return net.in_inv_scale[:, None] * net.layers[0].kernel


def _propagate(tangents, kernel):
    """(N, n, d_in) @ (d_in, d_out) as one matrix product."""
    return tangents @ kernel


def _per_point(tangents, n_points):
    """The first layer's tangents are the same at every point: give them an N axis."""
    if tangents.ndim == 2:
        return np.broadcast_to(tangents, (n_points,) + tangents.shape)
    return tangents


def plain_forward_tangents(net, x):
    """Values of the last layer and dy/dx as (N, n, m) tangents, by forward mode."""
    a = scaled_inputs(net, x)
    for index, layer in enumerate(net.layers):
        z = layer.pre_activation(a)
        tz = _per_point(_first_tangents(net), len(x)) if index == 0 else _propagate(ta, layer.kernel)
        a, s1, _ = layer.derivatives(z)
        ta = layer.activation.jvp(a, s1, tz)
    return ta * net.out_scale


def plain_jacobian_forward(net, x):
    return np.ascontiguousarray(plain_forward_tangents(net, x).transpose(0, 2, 1))


# ---------------------------------------------------------------- reverse mode


def plain_forward_cache(net, x):
    """The forward pass keeping each layer's input a_{l-1}, z_l, a_l, s'(z_l), s''(z_l)."""
    cache = []
    a = scaled_inputs(net, x)
    for layer in net.layers:
        z = layer.pre_activation(a)
        out, s1, s2 = layer.derivatives(z)
        cache.append((a, z, out, s1, s2))
        a = out
    return cache


def plain_backward_adjoints(net, cache):
    """For each layer, (A_l, delta_l) = (dy/da_l, dy/dz_l), both (N, m, d_l).

    The output scaling enters here: A_L = diag(out_scale) at every point.
    """
    n_points, m = len(cache[0][0]), net.n_outputs
    a_last, s1_last = cache[-1][2], cache[-1][3]
    adjoint = np.broadcast_to(np.diag(net.out_scale), (n_points, m, m))
    delta = net.layers[-1].activation.vjp(a_last, s1_last, adjoint)
    result = [(adjoint, delta)]
    for index in range(len(net.layers) - 1, 0, -1):
        adjoint = delta @ net.layers[index].kernel.T
        _, _, a, s1, _ = cache[index - 1]
        delta = net.layers[index - 1].activation.vjp(a, s1, adjoint)
        result.append((adjoint, delta))
    result.reverse()
    return result


# ---------------------------------------------------------------- parameters


def activation_parameter_blocks(layer, a_in, adjoint):
    """dy/dp (N, m, d) for each tensor p of the layer's activation (prelu's slope):
    A_{l,k,j} * ds_j/dp_j, each unit's s depending on its own p_j, at z recomputed from
    the layer's input a_in. ``adjoint``: A_l = dy/da_l (N, m, d)."""
    if not layer.activation.tensors:
        return []
    z = layer.pre_activation(a_in)
    return [adjoint * derivative(z, **layer.params)[:, None, :]
            for derivative in layer.activation.tensors.values()]


def write_parameter_blocks(out, layers, inputs, deltas, layout, extras=None):
    """Fill dy/dtheta (N, m, P) layer by layer, each entry written once.

    dy_k/dW_l[i, j] = a_{l-1, i} * delta_{l, k, j}, an outer product per point;
    the block's flattening follows the kernels' shape in the file (``layout``).
    ``extras``: per layer, the blocks of its activation's tensors, after its bias
    (``activation_parameter_blocks``; None: no layer has any).
    """
    n_points, m = out.shape[:2]
    offset = 0
    for index, (layer, a_in, delta) in enumerate(zip(layers, inputs, deltas)):
        d_in, d_out = layer.kernel.shape
        block = out[:, :, offset:offset + d_in * d_out]
        if layout == "out_in":
            block = block.reshape(n_points, m, d_out, d_in)
            np.multiply(delta[:, :, :, None], a_in[:, None, None, :], out=block)
        else:
            block = block.reshape(n_points, m, d_in, d_out)
            np.multiply(a_in[:, None, :, None], delta[:, :, None, :], out=block)
        offset += d_in * d_out
        if layer.bias is not None:
            out[:, :, offset:offset + d_out] = delta
            offset += d_out
        for block in (extras[index] if extras else []):
            out[:, :, offset:offset + d_out] = block
            offset += d_out
    return out


# ---------------------------------------------------------------- second order


def plain_hessdiag(net, x):
    """d2y_k/dx_j2 (N, m, n) by Taylor-mode forward propagation.

    Alongside the tangents T = da/dx_j it carries S = d2a/dx_j2:
        S_z = S_{a, previous} W,   S_a = s''(z) T_z^2 + s'(z) S_z.
    The full Hessian is never built: the cost is about 2 n forward passes.
    """
    a = scaled_inputs(net, x)
    for index, layer in enumerate(net.layers):
        z = layer.pre_activation(a)
        a, s1, s2 = layer.derivatives(z)
        if index == 0:
            tz = _per_point(_first_tangents(net), len(x))
            sz = None  # the first layer is linear in x: no curvature yet
        else:
            tz, sz = _propagate(ta, layer.kernel), _propagate(sa, layer.kernel)
        ta = layer.activation.jvp(a, s1, tz)
        sa = layer.activation.second(a, s1, s2, tz, ta)
        if sz is not None:
            sa += layer.activation.jvp(a, s1, sz)
    return np.ascontiguousarray((sa * net.out_scale).transpose(0, 2, 1))


def plain_laplacian(net, x):
    """sum_j d2y_k/dx_j2 (N, m): the forward Laplacian.

    Like ``hessdiag`` but the second-order term is summed over the inputs at
    every layer, so it carries (N, d) instead of (N, n, d).
    """
    a = scaled_inputs(net, x)
    for index, layer in enumerate(net.layers):
        z = layer.pre_activation(a)
        a, s1, s2 = layer.derivatives(z)
        if index == 0:
            tz = _per_point(_first_tangents(net), len(x))
            lz = None
        else:
            tz, lz = _propagate(ta, layer.kernel), la @ layer.kernel
        ta = layer.activation.jvp(a, s1, tz)
        la = layer.activation.second(a, s1, s2, tz, ta).sum(axis=1)
        if lz is not None:
            la += layer.activation.jvp(a, s1, lz[:, None, :])[:, 0, :]
    return la * net.out_scale


def plain_hessian(net, x):
    """d2y_k/dx_i dx_j (N, m, n, n): forward tangents plus one adjoint sweep.

    Linear maps add no curvature, so H_k = sum_l T_l^T C_l,k T_l, with T_l = dz_l/dx
    the forward tangents and C_l,k = sum_u A_l,ku d2s_u/dz2 the activation's
    curvature weighted by the adjoints A_l = dy/da_l (diag(A_l,k * s''(z_l))
    for an elementwise activation).
    """
    cache = plain_forward_cache(net, x)
    adjoints = plain_backward_adjoints(net, cache)
    n_points, m, n = len(x), net.n_outputs, net.n_inputs
    out = np.zeros((n_points, m, n, n), dtype=x.dtype)
    for index, (layer, (_, _, a, s1, s2), (adjoint, _)) in enumerate(
            zip(net.layers, cache, adjoints)):
        if index == 0:
            tz = _per_point(_first_tangents(net), n_points)
        else:
            tz = _propagate(ta, layer.kernel)
        for k in range(m):
            out[:, k] += layer.activation.curvature(a, s2, tz, adjoint[:, k])
        ta = layer.activation.jvp(a, s1, tz)
    # Both triangles come from sums taken in different orders: make H exactly symmetric.
    out += out.transpose(0, 1, 3, 2)
    out *= 0.5
    return out
