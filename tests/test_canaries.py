"""Nothing from a file is ever executed , proven with live payloads.

Each payload would create a marker file if it ran; the first test of each kind
proves the payload is live by running it the unsafe way on purpose (into a
different marker). jaccli must refuse every file with exit 2 and one
``Error:`` line, in process and through the real ``jaccli`` entry point, and
the marker must not exist.
"""

import io
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

import jaccli
from jaccli.errors import JaccliError

from hostile_helpers import (GOOD_SPEC_TEXT, assert_one_line_error, good_tensors, invoke,
                             make_model_dir, write_h5)

KERAS_DATA = Path(__file__).parent / "data" / "keras"
KERAS_CANARY = "/tmp/jaccli_keras_lambda_canary_ran"  # tests/data/make_keras_files.py


class Payload:
    """Unpickling this calls open(marker, 'w'): the marker file appears."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def pickled_object_array(marker):
    return np.array([[Payload(marker), 1.0, 2.0]] * 2, dtype=object)


def npy_bytes(array):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def yaml_payload(marker):
    return f"!!python/object/apply:os.system ['touch {marker}']\n"


def test_payloads_are_live(tmp_path):
    """Loaded the unsafe way, each payload does create its marker (so the canaries can sing)."""
    pickle_marker, yaml_marker = tmp_path / "pickle_ran", tmp_path / "yaml_ran"
    np.load(io.BytesIO(npy_bytes(pickled_object_array(pickle_marker))), allow_pickle=True)
    assert pickle_marker.exists()
    yaml.unsafe_load(yaml_payload(yaml_marker))
    assert yaml_marker.exists()


def _pickle_npz(d, marker):
    path = os.path.join(d, "evil.npz")
    np.savez(path, **dict(good_tensors(), W0=pickled_object_array(marker)), allow_pickle=True)
    Path(d, "evil.yaml").write_text(GOOD_SPEC_TEXT)
    return ["value", path, "--at", "1,2"]


def _pickle_npz_spec(d, marker):
    path = os.path.join(d, "evil.npz")
    spec = np.array([Payload(marker)], dtype=object)
    np.savez(path, **dict(good_tensors(), jaccli_spec=spec), allow_pickle=True)
    return ["value", path, "--at", "1,2"]


def _pickle_npy_points(d, marker):
    path = os.path.join(d, "evil.npy")
    Path(path).write_bytes(npy_bytes(pickled_object_array(marker)[:, :2]))
    return ["value", os.path.join(d, "model.npz"), "-p", path]


def _pickle_npy_train(d, marker):
    path = os.path.join(d, "evil.npy")
    Path(path).write_bytes(npy_bytes(pickled_object_array(marker)))
    return ["confint", os.path.join(d, "model.npz"), "--train", path, "-p",
            os.path.join(d, "pts.csv")]


def _pickle_npz_member_renamed(d, marker):
    """A pickle stored raw (not as NPY) in an NPZ member."""
    path = os.path.join(d, "evil.npz")
    with zipfile.ZipFile(path, "w") as archive:
        for name, value in good_tensors().items():
            buffer = io.BytesIO()
            np.save(buffer, value)
            archive.writestr(f"{name}.npy", buffer.getvalue() if name != "W0"
                             else pickle.dumps(Payload(marker)))
    Path(d, "evil.yaml").write_text(GOOD_SPEC_TEXT)
    return ["value", path, "--at", "1,2"]


def _yaml_spec_file(d, marker):
    path = os.path.join(d, "evil.yaml")
    Path(path).write_text(yaml_payload(marker))
    return ["value", os.path.join(d, "model.npz"), "--spec", path, "--at", "1,2"]


def _yaml_sibling_spec(d, marker):
    path = os.path.join(d, "sib.npz")
    np.savez(path, **good_tensors())
    Path(d, "sib.yaml").write_text("layers:\n  - units: " + yaml_payload(marker))
    return ["value", path, "--at", "1,2"]


def _yaml_in_npz(d, marker):
    path = os.path.join(d, "evil.npz")
    np.savez(path, **dict(good_tensors(), jaccli_spec=np.array(yaml_payload(marker))))
    return ["value", path, "--at", "1,2"]


def _yaml_in_h5(d, marker):
    path = write_h5(os.path.join(d, "evil.h5"), good_tensors())
    with h5py.File(path, "a") as handle:
        handle.attrs["jaccli_spec"] = yaml_payload(marker)
    return ["value", path, "--at", "1,2"]


def _yaml_apply_builtin(d, marker):
    path = os.path.join(d, "evil.yaml")
    Path(path).write_text(f"layers: !!python/object/apply:builtins.open ['{marker}', 'w']\n")
    return ["value", os.path.join(d, "model.npz"), "--spec", path, "--at", "1,2"]


CANARIES = {
    "npz-pickled-tensor": (_pickle_npz, ["evil.npz", "W0", "pickle"]),
    "npz-pickled-spec": (_pickle_npz_spec, ["evil.npz", "jaccli_spec", "pickle"]),
    "npz-raw-pickle-member": (_pickle_npz_member_renamed, ["evil.npz", "W0"]),
    "npy-pickled-points": (_pickle_npy_points, ["evil.npy", "Python objects"]),
    "npy-pickled-training-file": (_pickle_npy_train, ["evil.npy", "Python objects"]),
    "yaml-os-system-spec": (_yaml_spec_file, ["evil.yaml", "python/object/apply:os.system"]),
    "yaml-os-system-sibling": (_yaml_sibling_spec, ["sib.yaml", "python/object/apply"]),
    "yaml-os-system-in-npz": (_yaml_in_npz, ["evil.npz", "jaccli_spec", "python/object/apply"]),
    "yaml-os-system-in-h5": (_yaml_in_h5, ["evil.h5", "jaccli_spec", "python/object/apply"]),
    "yaml-apply-open": (_yaml_apply_builtin, ["evil.yaml", "python/object/apply:builtins.open"]),
}


@pytest.mark.parametrize("name", sorted(CANARIES))
def test_canary_refused_and_never_run(tmp_path, name):
    d = make_model_dir(tmp_path)
    marker = tmp_path / "payload_ran"
    build, words = CANARIES[name]
    args = build(d, marker)
    assert_one_line_error(invoke(args), d, words)
    assert not marker.exists()
    if "-p" not in args and "--train" not in args:  # a model or spec: the library refuses too
        spec = args[args.index("--spec") + 1] if "--spec" in args else None
        with pytest.raises(JaccliError):
            jaccli.load(args[1], spec=spec)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["npz-pickled-tensor", "npy-pickled-points", "yaml-os-system-spec",
                                  "yaml-os-system-in-h5", "keras-lambda"])
def test_canary_through_the_real_entry_point(tmp_path, name):
    """The installed console script in a fresh process: exit 2, one line, no payload run."""
    d = make_model_dir(tmp_path)
    marker = tmp_path / "payload_ran"
    if name == "keras-lambda":
        if os.path.exists(KERAS_CANARY):
            os.remove(KERAS_CANARY)
        args, words = ["value", str(KERAS_DATA / "lambda_canary.keras"), "--at", "1,2"], ["Lambda"]
        marker = Path(KERAS_CANARY)
    else:
        build, words = CANARIES[name]
        args = build(d, marker)
    script = Path(sys.executable).with_name("jaccli")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "jaccli.cli"]
    proc = subprocess.run(command + [str(a) for a in args], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in proc.stderr
    assert all(word in lines[0] for word in words), lines[0]
    assert proc.stdout == ""
    assert not marker.exists()
