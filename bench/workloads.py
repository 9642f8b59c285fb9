"""The fixed, seeded workloads and the models they run on.

Every model is a plain MLP written as NPZ with its spec embedded, so the
same file serves the library, the CLI and the reference implementations
(which read the weights back and build their own forward pass).
"""

import os
from dataclasses import dataclass
from typing import List

import numpy as np
import yaml


@dataclass
class Workload:
    key: str
    title: str
    quantity: str  # jaccli quantity ("value+jacobian" for W6)
    widths: List[int]
    activation: str  # hidden layers; the last layer is linear
    n_points: int
    seed: int

    @property
    def n_inputs(self):
        return self.widths[0]

    @property
    def n_outputs(self):
        return self.widths[-1]

    @property
    def activations(self):
        return [self.activation] * (len(self.widths) - 2) + ["linear"]

    def gemm_flops_per_pass(self):
        """2 * sum d_{l-1} d_l: one forward (or tangent, or adjoint) sweep of one point."""
        return 2 * sum(a * b for a, b in zip(self.widths[:-1], self.widths[1:]))

    def n_parameters(self):
        return sum(a * b + b for a, b in zip(self.widths[:-1], self.widths[1:]))

    def sweeps(self):
        """Sweeps in the FLOP model of the README's Performance section."""
        n, m = self.n_inputs, self.n_outputs
        return {
            "jacobian": 1 + min(n, m),
            "hessdiag": 1 + m + n,
            "hessian": 1 + m + n,
            "param_jacobian": 1 + m,
            "value+jacobian": 1 + min(n, m),
        }[self.quantity]

    def gemm_flops(self):
        return self.sweeps() * self.gemm_flops_per_pass() * self.n_points


WORKLOADS = [
    Workload("W1", "input Jacobian, 8-64-64-1 tanh", "jacobian", [8, 64, 64, 1], "tanh", 100_000, 1),
    Workload("W2", "Hessian diagonal, 8-64-64-1 tanh", "hessdiag", [8, 64, 64, 1], "tanh", 100_000, 1),
    Workload("W3", "parameter Jacobian, 4-32-32-1 tanh", "param_jacobian", [4, 32, 32, 1], "tanh",
             10_000, 3),
    Workload("W4", "input Jacobian, 64-256-256-10 gelu", "jacobian", [64, 256, 256, 10], "gelu",
             20_000, 4),
    Workload("W5", "full input Hessian, 8-64-64-1 tanh", "hessian", [8, 64, 64, 1], "tanh", 20_000, 1),
    Workload("W6", "value + Jacobian in one pass (CLI: jacobian --with value, NPY in, NPZ out), 2-64-64-1 tanh", "value+jacobian",
             [2, 64, 64, 1], "tanh", 2_000_000, 6),
]


def make_weights(workload):
    """Glorot-scaled kernels (in, out) and small biases: tanh units neither dead nor saturated."""
    rng = np.random.default_rng(workload.seed)
    kernels, biases = [], []
    for d_in, d_out in zip(workload.widths[:-1], workload.widths[1:]):
        kernels.append(rng.normal(size=(d_in, d_out)) * np.sqrt(1.0 / d_in))
        biases.append(rng.normal(size=d_out) * 0.1)
    return kernels, biases


def make_points(workload, n_points=None):
    rng = np.random.default_rng(1000 + workload.seed)
    return rng.normal(size=(n_points or workload.n_points, workload.n_inputs))


def write_model(workload, directory):
    """NPZ with the spec embedded (entry ``jaccli_spec``); returns its path."""
    kernels, biases = make_weights(workload)
    spec = {"inputs": workload.n_inputs, "outputs": workload.n_outputs,
            "layers": [{"units": int(k.shape[1]), "activation": act}
                       for k, act in zip(kernels, workload.activations)]}
    tensors = {}
    for i, (k, b) in enumerate(zip(kernels, biases)):
        tensors[f"W{i}"], tensors[f"b{i}"] = k, b
    path = os.path.join(directory, f"{workload.key}.npz")
    np.savez(path, jaccli_spec=np.array(yaml.safe_dump(spec)), **tensors)
    return path
