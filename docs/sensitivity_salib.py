"""jaccli's DGSM beside SALib's, on the same net and the same base points.

    pip install SALib            # not a jaccli dependency
    python docs/sensitivity_salib.py

SALib (1.6) samples N base points (a Sobol' sequence), adds for each input a
point moved by a forward step of ``delta`` times x (1% by default), runs
the model on all N (n + 1) points and takes nu_j as the mean squared forward
difference. jaccli takes the exact Jacobian at the N base points. The
script prints, per input, both nu, their relative difference, both bounds,
the times and the number of model evaluations. The model is
sample_models/screen7.npz (7 inputs, uniform on [0, 1]).
"""

import time

import numpy as np
from SALib.analyze import dgsm
from SALib.sample import finite_diff

import jaccli

N = 2000
model = jaccli.load("sample_models/screen7.npz")
names = model.input_names
problem = {"num_vars": len(names), "names": names, "bounds": [[0.0, 1.0]] * len(names)}


def salib(delta):
    """SALib's sample, the model on it, SALib's analysis: (X, result, seconds of each)."""
    t0 = time.perf_counter()
    X = finite_diff.sample(problem, N, delta=delta, seed=1)
    t1 = time.perf_counter()
    Y = model.value(X)[:, 0]
    t2 = time.perf_counter()
    result = dgsm.analyze(problem, X, Y, num_resamples=1000, conf_level=0.95, seed=1)
    t3 = time.perf_counter()
    return X, result, (t1 - t0, t2 - t1, t3 - t2)


X, salib_1, (sampling, evaluating, analysing) = salib(0.01)
_, salib_small, _ = salib(1e-6)
base = X[:: len(names) + 1]  # SALib's base points: the rows before each input's step
started = time.perf_counter()
ours = jaccli.sensitivity(model, base, bootstrap=1000, bounds="uniform:0:1", seed=1)
ours_seconds = time.perf_counter() - started

print(f"{N} base points, 7 inputs uniform on [0, 1]")
print(f"SALib (delta 1%): {len(X)} model evaluations; {sampling + evaluating + analysing:.3f} s = "
      f"sample {sampling:.3f} s + model {evaluating:.3f} s + analysis (1000 resamples) "
      f"{analysing:.3f} s")
print(f"jaccli:           {N} values + Jacobians, with a 1000-replicate bootstrap: "
      f"{ours_seconds:.3f} s")
print()
print(f"{'input':6} {'jaccli nu':>10} {'95% CI':>17} {'SALib 1%':>10} {'rel.diff':>9} "
      f"{'SALib 1e-6':>10} {'rel.diff':>9} {'jaccli S_T<=':>12} {'SALib dgsm':>10}")
for j, name in enumerate(names):
    nu = ours.nu[0, j]
    ci = f"{ours.nu_lower[0, j]:.4g}-{ours.nu_upper[0, j]:.4g}"

    def rel(other):
        return f"{(other - nu) / nu:+9.1e}" if nu else f"{other:9.1e}"

    print(f"{name:6} {nu:10.4g} {ci:>17} {salib_1['vi'][j]:10.4g} {rel(salib_1['vi'][j])} "
          f"{salib_small['vi'][j]:10.4g} {rel(salib_small['vi'][j])} {ours.bound[0, j]:12.3g} "
          f"{salib_1['dgsm'][j]:10.3g}")
