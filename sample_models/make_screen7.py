"""Fit the sample model `screen7`, a 7-input net for sensitivity analysis.

    python sample_models/make_screen7.py

writes, beside this script:
  screen7.npz, screen7.yaml   a 7-12-12-1 tanh network (265 parameters)
  screen7_points.csv          2,000 points uniform in [0, 1]^7 (not the training set)
  sincos_uniform.csv          1,000 points uniform in [-2, 2]^2, the domain sincos was trained on

The net is fitted (Levenberg-Marquardt, the parameter Jacobian from jaccli,
as in make_noisy_model.py) to a function of x in [0, 1]^7 whose inputs
matter in different ways:

    f(x) = x1 + 0.4 sin(2 pi x2) + 0.5 tanh(12 (x3 - 1/2)) + 2 x4 x5 + 0.3 x6^2

x1 is linear; x2 wiggles (large slopes, small variance); x3 is a steep step
(very large slopes on a narrow band); x4 and x5 act only together; x6 barely
matters; x7 does not enter at all. For f itself (Monte Carlo, 400,000
points; the net approximates them): nu = E[(df/dxj)^2] = 1, 3.16, 4.00, 1.34,
1.34, 0.12, 0; total Sobol' indices S_T = 0.145, 0.14, 0.36, 0.19, 0.19,
0.014, 0 (Var f = 0.573). Ranking by nu puts x2 second; by S_T it is fifth.
Only NumPy, threadpoolctl and jaccli are used; the run is seeded (a rerun
here wrote the same files, byte for byte).
"""

import os

import numpy as np
from threadpoolctl import threadpool_limits

import jaccli
from make_noisy_model import levenberg_marquardt, save

HERE = os.path.dirname(os.path.abspath(__file__))
SPEC = """\
# A 7-12-12-1 tanh MLP fitted to
# f(x) = x1 + 0.4 sin(2 pi x2) + 0.5 tanh(12 (x3 - 1/2)) + 2 x4 x5 + 0.3 x6^2, x in [0, 1]^7
# (x7 does not enter f). Made by make_screen7.py.
inputs: [x1, x2, x3, x4, x5, x6, x7]
outputs: [f]
input_scaling: {offset: [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5], scale: [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]}
layers:
  - {units: 12, activation: tanh}
  - {units: 12, activation: tanh}
  - {units: 1, activation: linear}
"""
NAMES = "x1,x2,x3,x4,x5,x6,x7"


def true_function(X):
    return (X[:, 0] + 0.4 * np.sin(2 * np.pi * X[:, 1]) + 0.5 * np.tanh(12 * (X[:, 2] - 0.5))
            + 2 * X[:, 3] * X[:, 4] + 0.3 * X[:, 5] ** 2)


def write_csv(name, header, table):
    np.savetxt(os.path.join(HERE, name), table, delimiter=",", header=header, comments="",
               fmt="%.6f")


def main():
    rng = np.random.default_rng(20261201)
    X = rng.uniform(size=(2000, 7))
    y = true_function(X)
    with open(os.path.join(HERE, "screen7.yaml"), "w") as handle:
        handle.write(SPEC)
    weights = os.path.join(HERE, "screen7.npz")
    init = {"W0": rng.normal(size=(7, 12)) / np.sqrt(7), "b0": rng.normal(size=12) * 0.5,
            "W1": rng.normal(size=(12, 12)) / 3, "b1": rng.normal(size=12) * 0.5,
            "W2": rng.normal(size=(12, 1)) / 3, "b2": np.zeros(1)}
    np.savez(weights, **init)
    # one BLAS thread: many threads on a small least-squares problem on a busy
    # machine are a hundred times slower, not faster
    with threadpool_limits(1):
        model, iterations = levenberg_marquardt(jaccli.load(weights), X, y, iterations=200)
    save(model, model.parameter_vector(), weights)
    test = rng.uniform(size=(2000, 7))
    r = y - model.value(X)[:, 0]
    r_test = true_function(test) - model.value(test)[:, 0]
    print(f"Levenberg-Marquardt: {iterations} iterations, RMS residual {np.sqrt(np.mean(r * r)):.3g} "
          f"(training), {np.sqrt(np.mean(r_test * r_test)):.3g} (2,000 fresh points); "
          f"std of f {np.std(y):.3g}")
    write_csv("screen7_points.csv", NAMES, test)
    write_csv("sincos_uniform.csv", "x1,x2", rng.uniform(-2, 2, size=(1000, 2)))


if __name__ == "__main__":
    main()
