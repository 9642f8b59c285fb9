"""jaccli's derivatives of the sincos net beside the true ones of sin(x1) cos(x2).

    python sample_models/compare_sincos.py
"""

import os

import numpy as np

import jaccli

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    model = jaccli.load(os.path.join(HERE, "sincos.npz"))
    x = np.loadtxt(os.path.join(HERE, "sincos_points.csv"), delimiter=",", skiprows=1, ndmin=2)
    s1, c1, s2, c2 = np.sin(x[:, 0]), np.cos(x[:, 0]), np.sin(x[:, 1]), np.cos(x[:, 1])
    true_jacobian = np.stack([c1 * c2, -s1 * s2], axis=1)
    true_hessdiag = np.stack([-s1 * c2, -s1 * c2], axis=1)
    jac, hd = model.jacobian(x)[:, 0, :], model.hessdiag(x)[:, 0, :]
    print(f"{'x1':>5} {'x2':>5} | {'df/dx1 net':>10} {'true':>8} | {'df/dx2 net':>10} {'true':>8}"
          f" | {'d2f/dx12 net':>12} {'true':>8} | {'d2f/dx22 net':>12} {'true':>8}")
    for i, (a, b) in enumerate(x):
        print(f"{a:5.2f} {b:5.2f} | {jac[i, 0]:10.4f} {true_jacobian[i, 0]:8.4f} | "
              f"{jac[i, 1]:10.4f} {true_jacobian[i, 1]:8.4f} | {hd[i, 0]:12.4f} "
              f"{true_hessdiag[i, 0]:8.4f} | {hd[i, 1]:12.4f} {true_hessdiag[i, 1]:8.4f}")
    print(f"max |error| of the net's derivatives vs the true function: "
          f"dy/dx {np.abs(jac - true_jacobian).max():.3g}, "
          f"d2y/dx2 {np.abs(hd - true_hessdiag).max():.3g} "
          f"(the net's approximation error, not jaccli's: jaccli is exact for the net)")


if __name__ == "__main__":
    main()
