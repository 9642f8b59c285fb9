"""Fit the sample model `noisy` by least squares on seeded noisy data.

    python sample_models/make_noisy_model.py

writes, beside this script:
  noisy.npz, noisy.yaml   a 2-5-1 tanh network (21 parameters)
  noisy_train.csv         its 200 training points: x1, x2 and the noisy target y
  noisy_points.csv        5 query points
  noisy_line.csv          61 query points along x1 at x2 = 0.5 (for confint --plot)

The data are y = sin(x1) + 0.5 x2^2 + e, e ~ N(0, 0.1^2), x uniform in [-2, 2]^2.
The fit is Levenberg-Marquardt on the sum of squared errors, with the
parameter Jacobian from jaccli itself, run to convergence (a minimum of the
SSE): that is the setting in which `jaccli confint`'s intervals hold.
Only NumPy and jaccli are used; the output is the same on every run.
"""

import os

import numpy as np

import jaccli

HERE = os.path.dirname(os.path.abspath(__file__))
SPEC = """\
inputs: [x1, x2]
outputs: [y]
layers:
  - {units: 5, activation: tanh}
  - {units: 1, activation: linear}
"""


def true_function(X):
    return np.sin(X[:, 0]) + 0.5 * X[:, 1] ** 2


def save(model, theta, path):
    arrays, offset = {}, 0
    for name, shape in model.parameters:
        size = int(np.prod(shape))
        arrays[name] = theta[offset:offset + size].reshape(shape)
        offset += size
    np.savez(path, **arrays)


def levenberg_marquardt(model, X, y, iterations=2000):
    theta = model.parameter_vector()
    lam = 1e-2
    r = y - model.value(X)[:, 0]
    sse = r @ r
    for it in range(iterations):
        Z = model.param_jacobian(X)[:, 0, :]
        # The damped normal equations, solved as a least-squares problem
        # (Z^T Z is never formed): [Z; sqrt(lam) D] step = [r; 0].
        D = np.sqrt(lam) * np.maximum(np.linalg.norm(Z, axis=0), 1e-8)
        while True:
            step = np.linalg.lstsq(np.vstack([Z, np.diag(D)]),
                                   np.concatenate([r, np.zeros(theta.size)]), rcond=None)[0]
            trial = model.with_parameters(theta + step)
            r_new = y - trial.value(X)[:, 0]
            sse_new = r_new @ r_new
            if sse_new < sse:
                lam = max(lam / 3, 1e-12)
                break
            lam *= 4
            D *= 2
            if lam > 1e10:
                return model, it
        converged = sse - sse_new <= 1e-13 * sse
        theta, model, r, sse = theta + step, trial, r_new, sse_new
        if converged:
            return model, it + 1
    return model, iterations


def main():
    rng = np.random.default_rng(20240607)
    X = rng.uniform(-2, 2, size=(200, 2))
    y = true_function(X) + 0.1 * rng.normal(size=200)

    spec_path = os.path.join(HERE, "noisy.yaml")
    with open(spec_path, "w") as handle:
        handle.write(SPEC)
    weights = os.path.join(HERE, "noisy.npz")
    init = {"W0": rng.normal(size=(2, 5)) * 0.5, "b0": np.zeros(5),
            "W1": rng.normal(size=(5, 1)) * 0.5, "b1": np.zeros(1)}
    np.savez(weights, **init)

    model, iterations = levenberg_marquardt(jaccli.load(weights), X, y)
    save(model, model.parameter_vector(), weights)
    r = y - model.value(X)[:, 0]
    grad = model.param_jacobian(X)[:, 0, :].T @ r
    print(f"Levenberg-Marquardt: {iterations} iterations, SSE {r @ r:.6g}, "
          f"RMS residual {np.sqrt(np.mean(r * r)):.4g}, |gradient| {np.linalg.norm(grad):.2e}")

    np.savetxt(os.path.join(HERE, "noisy_train.csv"), np.column_stack([X, y]),
               delimiter=",", header="x1,x2,y", comments="", fmt="%.17g")
    points = np.array([[0.0, 0.0], [1.0, -1.0], [-1.5, 0.5], [1.9, 1.9], [3.0, 3.0]])
    np.savetxt(os.path.join(HERE, "noisy_points.csv"), points, delimiter=",",
               header="x1,x2", comments="", fmt="%.17g")
    write_line()


def write_line():
    """noisy_line.csv: 61 points along x1 from -3 to 3 at x2 = 0.5 (confint --plot draws
    bands along it, out of the training square too)."""
    x1 = np.linspace(-3.0, 3.0, 61)
    np.savetxt(os.path.join(HERE, "noisy_line.csv"), np.column_stack([x1, np.full_like(x1, 0.5)]),
               delimiter=",", header="x1,x2", comments="", fmt="%.17g")


if __name__ == "__main__":
    main()
