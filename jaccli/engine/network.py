"""The network the engine differentiates: dense layers plus the input and output scalings.

    u = (x - offset) / scale,  a_l = s_l(a_{l-1} W_l + b_l),  y = a_L * out_scale + out_offset

Layers and networks are built once and not changed afterwards (a new
parameter vector makes a new network), so what is derived from their arrays
is cached on them, declared below.
"""


from dataclasses import dataclass, field
from functools import cached_property
from typing import List, Optional

import numpy as np

from jaccli.engine.activations import Activation


@dataclass(eq=False)
class DenseLayer:
    kernel: np.ndarray  # (d_in, d_out), always in_out orientation here
    bias: Optional[np.ndarray]  # (d_out,) or None
    activation: Activation
    params: dict  # the activation's parameters (alpha, ...; prelu's slope, an array)

    @property
    def couples_units(self):
        """Whether the activation couples its units (a vector entry such as softmax)."""
        return not self.activation.elementwise

    @property
    def activation_tensors(self):
        """The activation's parameters that are tensors (prelu's slope, (d_out,) each), in
        parameter order: the layer's parameters are its kernel, its bias, then these."""
        return [self.params[name] for name in self.activation.tensors]

    @property
    def n_parameters(self):
        return self.kernel.size + (0 if self.bias is None else self.bias.size) + \
            sum(tensor.size for tensor in self.activation_tensors)

    @cached_property
    def kernel_t(self):
        """The kernel transposed, C-contiguous (BLAS runs faster on it)."""
        return np.ascontiguousarray(self.kernel.T)

    def __getstate__(self):
        """Pickled without what is derived from the arrays (rebuilt on first use): a
        model sent to Dask workers carries its weights only."""
        return {key: value for key, value in self.__dict__.items() if key != "kernel_t"}

    def pre_activation(self, a):
        z = a @ self.kernel
        if self.bias is not None:
            z += self.bias
        return z

    def derivatives(self, z):
        """(s, s', s'') at z; a vector activation gives only s (see ``Activation.jvp``)."""
        return self.activation.rule(z, **self.params)


@dataclass(eq=False)
class Network:
    layers: List[DenseLayer]
    in_offset: np.ndarray  # (n,)
    in_inv_scale: np.ndarray  # (n,)
    out_offset: np.ndarray  # (m,)
    out_scale: np.ndarray  # (m,)
    # the matrices engine.sweeps folds into its products, per dtype, built on first use
    fused_cache: dict = field(default_factory=dict, repr=False)

    def __getstate__(self):
        """Pickled without the fused matrices (rebuilt on first use), as the layers are."""
        return {**self.__dict__, "fused_cache": {}}

    @property
    def n_inputs(self):
        return self.layers[0].kernel.shape[0]

    @property
    def n_outputs(self):
        return self.layers[-1].kernel.shape[1]

    @property
    def widths(self):
        return [self.n_inputs] + [layer.kernel.shape[1] for layer in self.layers]


def scaled_inputs(net, x):
    return (x - net.in_offset) * net.in_inv_scale


def first_tangents(net):
    """dz_0/dx: the same (n, d_0) matrix at every point, W_0 scaled by 1/scale."""
    return net.in_inv_scale[:, None] * net.layers[0].kernel


def per_point(tangents, n_points):
    """Layer 0's tangents (n, d_0), the same at every point, given an N axis (a view);
    tangents that have one already are returned as they are."""
    if tangents.ndim == 2:
        return np.broadcast_to(tangents, (n_points,) + tangents.shape)
    return tangents
