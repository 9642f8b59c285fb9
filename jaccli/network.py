"""The network the engine differentiates: dense layers plus the input and output scalings.

    u = (x - offset) / scale,  a_l = s_l(a_{l-1} W_l + b_l),  y = a_L * out_scale + out_offset
"""


from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from .activations import SOFTMAX, Activation


@dataclass
class DenseLayer:
    kernel: np.ndarray  # (d_in, d_out), always in_out orientation here
    bias: Optional[np.ndarray]  # (d_out,) or None
    activation: object  # an Activation, or the string SOFTMAX
    params: dict  # the activation's parameters (alpha, ...)

    @property
    def is_softmax(self):
        return self.activation == SOFTMAX

    def pre_activation(self, a):
        z = a @ self.kernel
        if self.bias is not None:
            z += self.bias
        return z

    def derivatives(self, z):
        """(s, s', s'') at z; for softmax only s (its derivatives are not elementwise)."""
        if self.is_softmax:
            return softmax(z), None, None
        act: Activation = self.activation
        return act.rule(z, **self.params)


@dataclass
class Network:
    layers: List[DenseLayer]
    in_offset: np.ndarray  # (n,)
    in_inv_scale: np.ndarray  # (n,)
    out_offset: np.ndarray  # (m,)
    out_scale: np.ndarray  # (m,)

    @property
    def n_inputs(self):
        return self.layers[0].kernel.shape[0]

    @property
    def n_outputs(self):
        return self.layers[-1].kernel.shape[1]

    @property
    def widths(self):
        return [self.n_inputs] + [layer.kernel.shape[1] for layer in self.layers]


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _scaled_inputs(net, x):
    return (x - net.in_offset) * net.in_inv_scale
