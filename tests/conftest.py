"""Shared helpers: random MLPs as (spec dict, tensors), written to disk."""

import os
import sys

import h5py
import numpy as np
import pytest
import yaml

sys.path.insert(0, os.path.dirname(__file__))

SAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "sample_models")
SMOOTH = ["linear", "sigmoid", "tanh", "elu", "selu", "softplus", "softsign", "silu", "gelu",
          "gelu_tanh", "sin", "exp", "leaky_relu", "relu", "identity", "swish"]


def random_model(rng, widths, activations, layout="in_out", biases=None, scaling=False,
                 names=False):
    """A spec dict and its tensors; ``activations`` has one name per layer."""
    tensors, layers = {}, []
    for i, (d_in, d_out) in enumerate(zip(widths[:-1], widths[1:])):
        kernel = rng.normal(size=(d_in, d_out)) * (0.9 / np.sqrt(d_in))
        weight = f"layer{i}/kernel" if names else f"W{i}"
        tensors[weight] = kernel.T.copy() if layout == "out_in" else kernel
        layer = {"units": int(d_out), "activation": activations[i]}
        if names:
            layer["weight"] = weight
        has_bias = True if biases is None else biases[i]
        if has_bias:
            bias = f"layer{i}/bias" if names else f"b{i}"
            tensors[bias] = rng.normal(size=d_out) * 0.5
            if names:
                layer["bias"] = bias
        else:
            layer["bias"] = None
        if activations[i] == "leaky_relu":
            layer["alpha"] = 0.1
        layers.append(layer)
    spec = {"inputs": [f"in{j}" for j in range(widths[0])], "outputs": int(widths[-1]),
            "layout": layout, "layers": layers}
    if scaling:
        spec["input_scaling"] = {"offset": rng.normal(size=widths[0]).tolist(),
                                 "scale": rng.uniform(0.5, 2.0, size=widths[0]).tolist()}
        spec["output_scaling"] = {"offset": rng.normal(size=widths[-1]).tolist(),
                                  "scale": rng.uniform(0.5, 2.0, size=widths[-1]).tolist()}
    return spec, tensors


def save_model(directory, spec, tensors, fmt="npz", stem="model"):
    """Write weights (.npz or .h5) and a sibling .yaml spec; return the weight path."""
    path = os.path.join(str(directory), f"{stem}.{fmt}")
    if fmt == "npz":
        np.savez(path, **tensors)
    else:
        with h5py.File(path, "w") as handle:
            for name, value in tensors.items():
                handle[name] = value
    with open(os.path.join(str(directory), f"{stem}.yaml"), "w") as handle:
        yaml.safe_dump(spec, handle)
    return path


@pytest.fixture
def canonical_path():
    return os.path.join(SAMPLES, "canonical.npz")


# CI (the CI environment variable set) runs the property tests derandomized, so a
# red build is reproducible, and the fuzz tests at full strength; a developer's
# run explores new examples every time and runs fewer fuzz examples, to stay quick.
from hypothesis import settings as _settings  # noqa: E402

# max_examples here is what a test without its own count runs (the fuzz tests).
_settings.register_profile("ci", derandomize=True, max_examples=120)
_settings.register_profile("local", max_examples=25)
_settings.load_profile("ci" if os.environ.get("CI") else "local")


# CI (.ci/run, make test-ci) installs every framework the tests compare with and sets
# JACCLI_REQUIRE_FRAMEWORKS=1: there a test skipped because one is missing (importorskip,
# a skipif on "not installed") fails instead, so that CI never passes by skipping them.
# A user's `make test` skips them and says which (pytest -rs).
MISSING_FRAMEWORK = ("could not import", "not installed")


def _missing_framework(report):
    """The skip reason of a report skipped for a missing framework, else None."""
    if not report.skipped or os.environ.get("JACCLI_REQUIRE_FRAMEWORKS") != "1":
        return None
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    return reason if any(text in reason for text in MISSING_FRAMEWORK) else None


def _fail_when_a_framework_is_missing(report):
    reason = _missing_framework(report)
    if reason is not None:
        report.outcome = "failed"
        report.longrepr = f"JACCLI_REQUIRE_FRAMEWORKS=1, but a framework is missing: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_when_a_framework_is_missing(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_when_a_framework_is_missing(outcome.get_result())
