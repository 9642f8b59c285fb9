"""One contestant (jax, torch or numpy_fd) on one workload, in its own process.

``python -m bench.contestant FRAMEWORK WORKLOAD [N] [--serve]`` prints one
JSON line: {"variants": {name: seconds}, "best": name, "seconds": s,
"max_abs_diff": d} (or {"missing": true} when the framework is not
installed). With ``--serve`` it then stays up: each line "again" on its
standard input times the best variant once more (best of 5, one JSON line
{"seconds": s}), so that ``python -m bench`` can interleave it with jaccli's
runs without compiling again; end of input ends it. A process of its own
keeps each framework's thread pools (OpenMP workers that spin after a
parallel region, XLA's pool) from slowing whatever is measured after it.
"""

import json
import sys
import tempfile

import numpy as np

from .__main__ import best_of
from .workloads import WORKLOADS, make_points, make_weights, write_model


def _reference(workload, points):
    import jaccli

    with tempfile.TemporaryDirectory() as directory:
        model = jaccli.load(write_model(workload, directory))
    if workload.quantity == "value+jacobian":
        return (model.value(points), model.jacobian(points))
    return (model.compute(workload.quantity, points),)


def _time_variants(runners, points, reference):
    """{"variants", "best", "seconds", "max_abs_diff"[, "failed"]} and the outputs to reuse."""
    report = {"variants": {}}
    outs = tuple(np.empty_like(r) for r in reference)
    target = outs if len(outs) > 1 else outs[0]
    for variant, run in runners.items():
        try:
            seconds = best_of(lambda: run(points, target))
        except Exception as exc:  # one failing variant should not sink the others
            report.setdefault("failed", {})[variant] = f"{type(exc).__name__}: {exc}"
            continue
        diff = max(float(np.abs(o - r).max()) for o, r in zip(outs, reference))
        report["variants"][variant] = seconds
        if "seconds" not in report or seconds < report["seconds"]:
            report.update(best=variant, seconds=seconds, max_abs_diff=diff)
    return report, target


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    serve = "--serve" in argv
    argv = [a for a in argv if a != "--serve"]
    framework, key = argv[0], argv[1]
    workload = [w for w in WORKLOADS if w.key == key][0]
    n_points = int(argv[2]) if len(argv) > 2 else workload.n_points
    workload.n_points = n_points
    from . import references

    kernels, biases = make_weights(workload)
    factory = {"jax": references.jax_runners, "torch": references.torch_runners,
               "numpy_fd": references.numpy_fd_runner}[framework]
    runners = factory(workload, kernels, biases)
    if runners is None:
        print(json.dumps({"missing": True}), flush=True)
        return
    points = make_points(workload, n_points)
    report, target = _time_variants(runners, points, _reference(workload, points))
    print(json.dumps(report), flush=True)
    if not serve or "best" not in report:
        return
    best = runners[report["best"]]
    for line in sys.stdin:
        if line.strip() != "again":
            break
        print(json.dumps({"seconds": best_of(lambda: best(points, target))}), flush=True)


if __name__ == "__main__":
    main()
