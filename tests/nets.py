"""Small networks written out by hand, independent of jaccli's engine.

A one-hidden-layer tanh net y = tanh(x W0 + b0) W1 + b1 with its parameter
vector in parameter order (W0 (n, h) in C order, b0, W1 (h, m), b1), its
exact parameter Jacobian, and a Levenberg-Marquardt least-squares fit.
"""

import numpy as np


def shapes(n, h, m):
    return [("W0", (n, h)), ("b0", (h,)), ("W1", (h, m)), ("b1", (m,))]


def unpack(theta, n, h, m):
    out, i = [], 0
    for _, shape in shapes(n, h, m):
        size = int(np.prod(shape))
        out.append(theta[i:i + size].reshape(shape))
        i += size
    return out


def value(theta, X, h, m=1):
    X = np.atleast_2d(X)
    W0, b0, W1, b1 = unpack(theta, X.shape[1], h, m)
    return np.tanh(X @ W0 + b0) @ W1 + b1


def param_jacobian(theta, X, h, m=1):
    """(N, m, P), by hand."""
    X = np.atleast_2d(X)
    N, n = X.shape
    W0, b0, W1, b1 = unpack(theta, n, h, m)
    a = np.tanh(X @ W0 + b0)  # (N, h)
    da = 1 - a * a
    J = []
    for k in range(m):
        g = da * W1[:, k]  # dy_k / d(pre-activation), (N, h)
        dW0 = (X[:, :, None] * g[:, None, :]).reshape(N, n * h)
        dW1 = np.zeros((N, h, m))
        dW1[:, :, k] = a
        db1 = np.zeros((N, m))
        db1[:, k] = 1
        J.append(np.concatenate([dW0, g, dW1.reshape(N, h * m), db1], axis=1))
    return np.stack(J, axis=1)


def finite_difference_param_jacobian(theta, points, h):
    """dy/dtheta by central differences: the independent reference for the delta method."""
    cols = []
    for p in range(theta.size):
        step = 1e-6 * max(abs(theta[p]), 1)
        tp, tm = theta.copy(), theta.copy()
        tp[p] += step
        tm[p] -= step
        cols.append((value(tp, points, h) - value(tm, points, h))[:, 0] / (tp[p] - tm[p]))
    return np.column_stack(cols)


def levenberg_marquardt(theta, X, y, h, iterations=200, tol=1e-12):
    """Least squares for a single-output net, from theta; returns the fitted theta."""
    theta = np.array(theta, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    lam = 1e-3
    r = y - value(theta, X, h)[:, 0]
    sse = r @ r
    for _ in range(iterations):
        Z = param_jacobian(theta, X, h)[:, 0, :]
        A = Z.T @ Z
        g = Z.T @ r
        while True:
            step = np.linalg.solve(A + lam * np.diag(np.diag(A) + 1e-12), g)
            trial = theta + step
            r_new = y - value(trial, X, h)[:, 0]
            sse_new = r_new @ r_new
            if sse_new < sse:
                lam = max(lam / 3, 1e-12)
                break
            lam *= 4
            if lam > 1e12:
                return theta
        done = sse - sse_new <= tol * (sse + tol)
        theta, r, sse = trial, r_new, sse_new
        if done:
            break
    return theta


def write_model(directory, name, arrays, spec):
    """An NPZ weight file with its YAML spec beside it; returns the NPZ path."""
    import yaml

    path = directory / f"{name}.npz"
    np.savez(path, **arrays)
    (directory / f"{name}.yaml").write_text(yaml.safe_dump(spec))
    return path


def write_tanh_net(directory, name, theta, n, h, m=1, activation="tanh", **spec_extra):
    W0, b0, W1, b1 = unpack(np.asarray(theta, dtype=np.float64), n, h, m)
    spec = {"inputs": [f"x{i + 1}" for i in range(n)],
            "outputs": ["y"] if m == 1 else [f"y{k + 1}" for k in range(m)],
            "layers": [{"units": h, "activation": activation}, {"units": m, "activation": "linear"}]}
    spec.update(spec_extra)
    return write_model(directory, name, {"W0": W0, "b0": b0, "W1": W1, "b1": b1}, spec)


def write_csv(path, header, table):
    np.savetxt(path, np.asarray(table, dtype=np.float64), delimiter=",", header=",".join(header),
               comments="", fmt="%.17g")
    return path


def read_csv(text_or_path):
    import io
    import os

    if isinstance(text_or_path, (str, bytes)) and not os.path.exists(str(text_or_path)):
        handle = io.StringIO(text_or_path)
    else:
        handle = open(text_or_path)
    with handle:
        header = handle.readline().strip().split(",")
        rows = np.loadtxt(handle, delimiter=",", ndmin=2)
    return header, rows


# Results of different chunkings or BLAS kernels (OpenBLAS's Haswell and SkylakeX
# kernels sum in different orders) agree to the last bits, not byte for byte.
SAME_RESULT_RTOL = 1e-13


def assert_same_table(text, expected, rtol=SAME_RESULT_RTOL):
    """Two CSV outputs: the same header and shape, numbers to ``rtol``."""
    header, rows = read_csv(text)
    expected_header, expected_rows = read_csv(expected)
    assert header == expected_header
    np.testing.assert_allclose(rows, expected_rows, rtol=rtol, atol=0)
