"""Random small MLPs through every export path, checked against their framework to 1e-12.

For each path of paths.PATHS and each example seed, a random float64 model is
exported, loaded with jaccli.load, and its value, Jacobian, Hessian diagonal,
Hessian and parameter Jacobian (columns named after the file's tensors, in the
file's shapes) compared with the framework's own autodiff (harness.check_file).
A one-line refusal passes and is counted; a failed third-party export skips; a
wrong number, a crash or a refusal of jaccli's own export fails with the seed,
the architecture and every mismatch. The counts are printed after the run.
Reproduce one example by its id, e.g.
``pytest 'tests/differential/test_differential.py::test_export_path_agrees_with_framework[onnx-legacy-7]'``
(JACCLI_DIFF_SEED shifts every seed; the id's number is the offset from it).
"""

import os

import pytest

from .paths import PATHS, timed_example

N_EXAMPLES = int(os.environ.get("JACCLI_DIFF_EXAMPLES", "20"))
SEED = int(os.environ.get("JACCLI_DIFF_SEED", "0"))

# torch.func imports torch.jit.script (deprecated in torch 2.13); the exporters warn a lot.
pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore::FutureWarning")]


EXAMPLES = [pytest.param(path, i, id=f"{path.name}-{i}") for path in PATHS for i in range(path.examples(N_EXAMPLES))]


@pytest.mark.parametrize(("path", "index"), EXAMPLES)
def test_export_path_agrees_with_framework(path, index, tmp_path):
    """Value and all derivatives of the exported model equal the framework's, or jaccli refuses in one line."""
    for module in path.needs:
        pytest.importorskip(module, reason=f"{path.name} needs {module}, not installed")
    seed = SEED + index
    outcome, source = timed_example(path, seed, tmp_path)
    if outcome.kind == "skipped":  # the third-party exporter failed: nothing of jaccli's to judge
        pytest.skip(f"{path.name}: {outcome.reason}")
    assert outcome.ok, (f"{path.name}, seed {seed}: {outcome.reason}\n  model: {source.text}\n  "
                        + outcome.details.replace("\n", "\n  "))
