"""Taylor mode: the Hessian diagonal and the Laplacian by forward propagation of
first and second derivatives together.

The fast sweeps (``jaccli.engine.sweeps``) use it when outputs outnumber
inputs, where it costs about 2 n forward passes against m adjoint sweeps.
Every intermediate is a fresh array and each formula is written as in the
docstrings; each layer's derivatives come from its activation's maps
(``Activation.jvp``, ``second``), one path for elementwise and vector
activations alike.
"""

import numpy as np

from jaccli.engine.network import first_tangents, per_point, scaled_inputs


def taylor_hessdiag(net, x):
    """d2y_k/dx_j2 (N, m, n) by Taylor-mode forward propagation.

    Alongside the tangents T = da/dx_j it carries S = d2a/dx_j2:
        S_z = S_{a, previous} W,   S_a = s''(z) T_z^2 + s'(z) S_z.
    The full Hessian is never built: the cost is about 2 n forward passes.
    """
    second = _second_derivatives(net, x, summed=False)  # (N, n, m)
    return np.ascontiguousarray((second * net.out_scale).transpose(0, 2, 1))


def taylor_laplacian(net, x):
    """sum_j d2y_k/dx_j2 (N, m): the forward Laplacian.

    Like ``taylor_hessdiag`` but the second-order term is summed over the inputs
    at every layer, so it carries (N, 1, d) instead of (N, n, d).
    """
    return _second_derivatives(net, x, summed=True)[:, 0, :] * net.out_scale


def _second_derivatives(net, x, summed):
    """S_a of the last layer (N, n, m), or its sum over the inputs (N, 1, m) when
    ``summed``: the sum is taken at every layer, since S_z = S_a W is linear."""
    a = scaled_inputs(net, x)
    for index, layer in enumerate(net.layers):
        z = layer.pre_activation(a)
        a, s1, s2 = layer.derivatives(z)
        if index == 0:
            tz = per_point(first_tangents(net), len(x))
            sz = None  # the first layer is linear in x: no curvature yet
        else:
            tz, sz = ta @ layer.kernel, sa @ layer.kernel
        ta = layer.activation.jvp(a, s1, tz)
        sa = layer.activation.second(a, s1, s2, tz, ta)
        if summed:
            sa = sa.sum(axis=1, keepdims=True)
        if sz is not None:
            sa += layer.activation.jvp(a, s1, sz)
    return sa
