"""Every error names the file the way the user wrote it: a relative path, a
``./`` path and an absolute path each come back unchanged (no basename, no
resolved or absolute path), for the model, the spec (given or found beside
the model), a Keras JSON, the points and the output."""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from hostile_helpers import GOOD_SPEC_TEXT, assert_one_line_error, good_tensors, invoke

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("paths")
    for name in ("keras/two_branch.keras", "keras/weights_only_k2.h5", "keras/k2_seq.json",
                 "keras/corrupt_missing_dataset.keras"):
        shutil.copy(DATA / name, d)
    (d / "trunc.safetensors").write_bytes((DATA / "safetensors/mlp.safetensors").read_bytes()[:100])
    (d / "text.npz").write_text("not an archive\n")
    np.savez(d / "good.npz", **good_tensors())
    (d / "good.yaml").write_text(GOOD_SPEC_TEXT)
    np.savez(d / "typo.npz", **good_tensors())
    (d / "typo.yaml").write_text("layers: [{units: 3, activaton: tanh}, {units: 1}]\n")
    (d / "bad.csv").write_text("a,b\n1,zz\n")
    os.symlink(d / "nowhere" / "x.csv", d / "dangling.csv")
    return d


# (command with {p} where the file at fault is written, the file named in the error)
CASES = {
    "keras-refusal": (["info", "{p}two_branch.keras"], "two_branch.keras"),
    "keras-archive-weights": (["info", "{p}corrupt_missing_dataset.keras"], "corrupt_missing_dataset.keras"),
    "weights-only": (["info", "{p}weights_only_k2.h5"], "weights_only_k2.h5"),
    "safetensors": (["info", "{p}trunc.safetensors"], "trunc.safetensors"),
    "not-a-weight-file": (["info", "{p}text.npz", "--spec", "good.yaml"], "text.npz"),
    "missing-model": (["info", "{p}missing.npz"], "missing.npz"),
    "spec-given": (["info", "good.npz", "--spec", "{p}typo.yaml"], "typo.yaml"),
    "spec-beside": (["info", "{p}typo.npz"], "typo.yaml"),
    "points": (["value", "good.npz", "-p", "{p}bad.csv"], "bad.csv"),
    "output-folder": (["value", "good.npz", "--at", "1,2", "-o", "{p}nowhere/out.csv"], "nowhere/out.csv"),
    "output-link": (["value", "good.npz", "--at", "1,2", "-o", "{p}dangling.csv"], "dangling.csv"),
}


@pytest.mark.parametrize("form", ["relative", "dot", "absolute"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_errors_name_the_file_as_written(folder, case, form):
    prefix = {"relative": "", "dot": "./", "absolute": f"{folder}/"}[form]
    args, named = CASES[case]
    args = [arg.format(p=prefix) for arg in args]
    line = assert_one_line_error(invoke(args, cwd=folder))
    assert line.startswith(f"Error: {prefix}{named}: "), line


@pytest.mark.parametrize("prefix, folder_named", [("", "nowhere"), ("./", "./nowhere")])
def test_a_missing_output_folder_is_named_as_written(folder, prefix, folder_named):
    line = assert_one_line_error(invoke(["value", "good.npz", "--at", "1,2", "-o",
                                         f"{prefix}nowhere/out.csv"], cwd=folder))
    assert line == f"Error: {prefix}nowhere/out.csv: the directory {folder_named} does not exist"


@pytest.mark.parametrize("prefix", ["", "./"])
def test_a_keras_json_is_named_as_written(folder, prefix):
    line = assert_one_line_error(invoke(["info", f"{prefix}weights_only_k2.h5", "--spec",
                                         f"{prefix}k2_seq.json"], cwd=folder))
    assert line.startswith(f"Error: {prefix}weights_only_k2.h5 (with {prefix}k2_seq.json): "), line
