"""Regenerate every model in sample_models/ (NumPy and h5py only, seeded).

    python sample_models/make_samples.py

- canonical.npz + .yaml: 2 inputs, a sigmoid hidden layer of 2 units, all
  weights 1 and biases 1, a linear output with weights [1, 1] and bias 0.
  At x = [1, 1], dy/dx = [0.0903533, 0.0903533].
- sigmoid_2221.h5 + .yaml: the same question's deeper variant, 2-2-2-1 with
  two sigmoid hidden layers, weights 1 and biases 1, linear output [1, 1].
- sincos.npz + .yaml: a 2-32-32-1 tanh MLP trained by least squares (Adam,
  full batch, fixed seed) on f(x1, x2) = sin(x1) cos(x2) over [-2, 2]^2, so
  that its derivatives can be set beside the true ones (compare_sincos.py).
"""

import os

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def write(name, text):
    with open(os.path.join(HERE, name), "w") as handle:
        handle.write(text)


def canonical():
    np.savez(os.path.join(HERE, "canonical.npz"), W0=np.ones((2, 2)), b0=np.ones(2),
             W1=np.ones((2, 1)), b1=np.zeros(1))
    write("canonical.yaml", """\
# 2 inputs -> 2 sigmoid units -> 1 linear output; all weights 1, hidden biases 1.
inputs: [x1, x2]
outputs: [y]
layers:
  - {units: 2, activation: sigmoid}   # tensors W0 (2, 2) and b0 (2,)
  - {units: 1, activation: linear}    # tensors W1 (2, 1) and b1 (1,)
""")


def sigmoid_2221():
    with h5py.File(os.path.join(HERE, "sigmoid_2221.h5"), "w") as handle:
        for i, (d_in, d_out) in enumerate([(2, 2), (2, 2), (2, 1)]):
            handle[f"dense_{i}/kernel"] = np.ones((d_in, d_out))
            handle[f"dense_{i}/bias"] = np.ones(d_out) if i < 2 else np.zeros(d_out)
    write("sigmoid_2221.yaml", """\
# 2-2-2-1: two sigmoid hidden layers (weights 1, biases 1), linear output [1, 1].
inputs: [x1, x2]
outputs: [y]
layers:
  - {units: 2, activation: sigmoid, weight: dense_0/kernel, bias: dense_0/bias}
  - {units: 2, activation: sigmoid, weight: dense_1/kernel, bias: dense_1/bias}
  - {units: 1, activation: linear, weight: dense_2/kernel, bias: dense_2/bias}
""")


def true_sincos(x):
    return np.sin(x[:, 0]) * np.cos(x[:, 1])


def sincos(steps=4000, seed=0):
    import sys

    sys.path.insert(0, os.path.dirname(HERE))
    import jaccli
    from jaccli.model import build_model
    from jaccli.formats.spec import parse_spec
    from jaccli.formats.tensors import TensorStore

    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, size=(1000, 2))
    y = true_sincos(x)
    widths = [2, 32, 32, 1]
    tensors = {}
    for i, (d_in, d_out) in enumerate(zip(widths[:-1], widths[1:])):
        tensors[f"W{i}"] = rng.normal(size=(d_in, d_out)) / np.sqrt(d_in)
        tensors[f"b{i}"] = np.zeros(d_out)
    spec_text = """\
# A 2-32-32-1 tanh MLP trained on f(x1, x2) = sin(x1) cos(x2), x in [-2, 2]^2.
inputs: [x1, x2]
outputs: [f]
input_scaling: {offset: [0.0, 0.0], scale: [2.0, 2.0]}
layers:
  - {units: 32, activation: tanh}
  - {units: 32, activation: tanh}
  - {units: 1, activation: linear}
"""
    spec = parse_spec(__import__("yaml").safe_load(spec_text), "sincos.yaml")
    model = build_model(spec, TensorStore("sincos", tensors.get, list(tensors)))
    theta = model.parameter_vector()
    m, v = np.zeros_like(theta), np.zeros_like(theta)
    for step in range(1, steps + 1):
        current = model.with_parameters(theta)
        residual = current.value(x)[:, 0] - y
        grad = residual @ current.param_jacobian(x)[:, 0, :] / len(x)
        lr = 0.01 * (0.1 ** (step / steps))
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad ** 2
        theta -= lr * (m / (1 - 0.9 ** step)) / (np.sqrt(v / (1 - 0.999 ** step)) + 1e-8)
    final = model.with_parameters(theta)
    rms = np.sqrt(np.mean((final.value(x)[:, 0] - y) ** 2))
    print(f"sincos: training RMS error {rms:.2e}")
    arrays, offset = {}, 0
    for name, shape in final.parameters:
        size = int(np.prod(shape))
        arrays[name] = theta[offset:offset + size].reshape(shape)
        offset += size
    np.savez(os.path.join(HERE, "sincos.npz"), **arrays)
    write("sincos.yaml", spec_text)
    grid = np.array([[-1.5, 0.5], [-0.5, -1.0], [0.0, 0.0], [0.7, 0.3], [1.2, -1.4], [1.9, 1.1]])
    write("sincos_points.csv", "x1,x2\n" + "".join(f"{a!r},{b!r}\n" for a, b in grid.tolist()))
    del jaccli


if __name__ == "__main__":
    canonical()
    sigmoid_2221()
    sincos()
