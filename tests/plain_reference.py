"""The plain propagation: other implementations of what the engine computes (value,
forward- and reverse-mode Jacobian, parameter Jacobian, Hessian), every
intermediate a fresh array and each formula as written, held against the oracle
in the tests (they serve no production path, so they live here, not in jaccli).
Each layer's derivatives come from its activation's maps (``Activation.jvp``,
``vjp``, ``curvature``), one path for elementwise and vector activations alike.
"""

import numpy as np

from jaccli.engine.network import scaled_inputs
from jaccli.engine.sweeps import write_parameter_blocks


def _first_tangents(net):
    """dz_1/dx: the same (n, d_1) matrix at every point, W_1 scaled by 1/scale."""
    return net.in_inv_scale[:, None] * net.layers[0].kernel


def _per_point(tangents, n_points):
    if tangents.ndim == 2:
        return np.broadcast_to(tangents, (n_points,) + tangents.shape)
    return tangents


def _propagate(tangents, kernel):
    return tangents @ kernel


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




def ref_value(net, x):
    a = scaled_inputs(net, x)
    for layer in net.layers:
        a = layer.derivatives(layer.pre_activation(a))[0]
    return a * net.out_scale + net.out_offset


def ref_jacobian_reverse(net, x):
    cache = plain_forward_cache(net, x)
    delta_first = plain_backward_adjoints(net, cache)[0][1]
    return (delta_first @ net.layers[0].kernel.T) * net.in_inv_scale


def ref_param_jacobian(net, x, layout, out=None):
    """dy/dtheta (N, m, P), written block by block into ``out``.

    ``layout`` says whether the kernels are stored transposed ("out_in") in
    the file, which fixes the flattening order of each kernel's block.
    dy_k/dW_l[i, j] = a_{l-1, i} * delta_{l, k, j}: an outer product per point.
    """
    cache = plain_forward_cache(net, x)
    adjoints = plain_backward_adjoints(net, cache)
    n_points, m = len(x), net.n_outputs
    total = sum(layer.kernel.size + (0 if layer.bias is None else layer.bias.size)
                for layer in net.layers)
    if out is None:
        out = np.empty((n_points, m, total), dtype=x.dtype)
    return write_parameter_blocks(out, net.layers, [c[0] for c in cache],
                                  [delta for _, delta in adjoints], layout)


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
            out[:, k] += layer.activation.curvature(a, s1, s2, tz, adjoint[:, k])
        ta = layer.activation.jvp(a, s1, tz)
    # Both triangles come from sums taken in different orders: make H exactly symmetric.
    out += out.transpose(0, 1, 3, 2)
    out *= 0.5
    return out
