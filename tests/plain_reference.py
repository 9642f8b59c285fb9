"""Plain-propagation value, reverse-mode Jacobian and parameter Jacobian: other
implementations of what the engine computes, held against the oracle in the tests
(they served no production path, so they live here, not in jaccli)."""

import numpy as np

from jaccli.engine.network import scaled_inputs
from jaccli.engine.plain import plain_backward_adjoints, plain_forward_cache, write_parameter_blocks


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
