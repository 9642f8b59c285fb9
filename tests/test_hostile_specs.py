"""Hostile and broken input (issue 8): YAML specs (--spec and the discovered ones).

Every case below runs the real CLI on a bad file and asserts: exit 2, exactly
one ``Error: ...`` line on standard error naming the file and the problem, no
traceback, no output file and no ``.part`` temporary left behind, and the
existing output file ``out.csv`` unchanged (``hostile_helpers.assert_case_refused``).
Also: a benign YAML anchor, which must be accepted.
"""

import os

import pytest

from hostile_helpers import (Cases, assert_case_refused, invoke, make_model_dir, new_dir, succeeded,
                             with_spec)

CASES = Cases()
case = CASES.case


# ---------------------------------------------------------------- specs

case("spec-zero-byte", ["s.yaml", "empty"])(lambda d: with_spec(d, ""))
case("spec-comments-only", ["s.yaml", "empty"])(lambda d: with_spec(d, "# nothing\n"))
case("spec-yaml-list", ["s.yaml", "mapping"])(lambda d: with_spec(d, "- units: 3\n- units: 1\n"))
case("spec-yaml-scalar", ["s.yaml", "mapping"])(lambda d: with_spec(d, "42\n"))
case("spec-yaml-string", ["s.yaml", "mapping"])(lambda d: with_spec(d, "just some text\n"))
case("spec-python-tag", ["s.yaml", "line 1", "python/object/apply"])(
    lambda d: with_spec(d, "!!python/object/apply:os.system ['echo hi']\n"))
case("spec-python-tag-nested", ["s.yaml", "line 3", "python/name"])(
    lambda d: with_spec(d, "inputs: 2\nlayers:\n  - {units: 3, activation: !!python/name:os.system }\n"))
case("spec-local-tag", ["s.yaml", "!Model"])(lambda d: with_spec(d, "!Model {layers: []}\n"))
case("spec-syntax-error", ["s.yaml", "line 3", "YAML"])(
    lambda d: with_spec(d, "layers:\n  - {units: 3\n"))
case("spec-tab-indent", ["s.yaml", "YAML"])(lambda d: with_spec(d, "layers:\n\t- units: 3\n"))
case("spec-duplicate-key", ["s.yaml", "duplicate", "'layers'", "line 3"])(
    lambda d: with_spec(d, "layers: [{units: 3}]\ninputs: 2\nlayers: [{units: 1}]\n"))
case("spec-duplicate-layer-key", ["s.yaml", "duplicate", "'units'"])(
    lambda d: with_spec(d, "layers:\n  - {units: 3, activation: tanh, units: 4}\n  - {units: 1}\n"))
case("spec-unknown-field", ["s.yaml", "activaton"])(
    lambda d: with_spec(d, "layers:\n  - {units: 3, activaton: tanh}\n  - {units: 1}\n"))
case("spec-unknown-top-field", ["s.yaml", "layer"])(lambda d: with_spec(d, "layer: []\n"))
case("spec-non-string-key", ["s.yaml", "unknown field"])(
    lambda d: with_spec(d, "1: 2\nlayers: [{units: 3}, {units: 1}]\n"))
case("spec-unknown-activation", ["s.yaml", "'tanhh'", "sigmoid"])(
    lambda d: with_spec(d, "layers:\n  - {units: 3, activation: tanhh}\n  - {units: 1}\n"))
case("spec-activation-long-string", ["s.yaml", "unknown activation"])(
    lambda d: with_spec(d, "layers:\n  - {units: 3, activation: " + "q" * 200_000 + "}\n"))
case("spec-empty-layers", ["s.yaml", "layers"])(lambda d: with_spec(d, "layers: []\n"))
case("spec-layers-mapping", ["s.yaml", "layers"])(lambda d: with_spec(d, "layers: {units: 3}\n"))
case("spec-layer-scalar", ["s.yaml", "layers[0]"])(lambda d: with_spec(d, "layers: [3, 1]\n"))
case("spec-bad-layout", ["s.yaml", "layout"])(
    lambda d: with_spec(d, "layout: sideways\nlayers: [{units: 3}, {units: 1}]\n"))
case("spec-timestamp-layout", ["s.yaml", "layout"])(
    lambda d: with_spec(d, "layout: 2001-12-14\nlayers: [{units: 3}, {units: 1}]\n"))
case("spec-units-bool", ["s.yaml", "units"])(lambda d: with_spec(d, "layers: [{units: true}]\n"))
case("spec-units-float", ["s.yaml", "units"])(lambda d: with_spec(d, "layers: [{units: 3.5}]\n"))
case("spec-units-huge", ["s.yaml"])(
    lambda d: with_spec(d, "layers: [{units: " + "9" * 500 + "}, {units: 1}]\n"))
case("spec-inputs-huge-count", ["s.yaml", "inputs"])(
    lambda d: with_spec(d, "inputs: 1000000000000\nlayers: [{units: 3}, {units: 1}]\n"))
case("spec-outputs-huge-count", ["s.yaml", "outputs"])(
    lambda d: with_spec(d, "outputs: 1000000000000\nlayers: [{units: 3}, {units: 1}]\n"))
case("spec-inputs-binary", ["s.yaml", "inputs"])(
    lambda d: with_spec(d, "inputs: !!binary aGVsbG8=\nlayers: [{units: 3}, {units: 1}]\n"))
case("spec-inputs-set", ["s.yaml", "inputs"])(
    lambda d: with_spec(d, "inputs: !!set {a, b}\nlayers: [{units: 3}, {units: 1}]\n"))
case("spec-inputs-duplicate-names", ["s.yaml", "twice"])(
    lambda d: with_spec(d, "inputs: [a, a]\nlayers: [{units: 3}, {units: 1}]\n"))
case("spec-inputs-wrong-count", ["s.yaml"])(
    lambda d: with_spec(d, "inputs: [a, b, c]\nlayers: [{units: 3}, {units: 1}]\n"))
case("spec-outputs-wrong-count", ["s.yaml", "outputs"])(
    lambda d: with_spec(d, "outputs: [y, z]\nlayers: [{units: 3}, {units: 1}]\n"))
case("spec-diagonal-2d-weight", ["model.npz", "'W1'", "a diagonal layer's weight is a vector"])(
    lambda d: with_spec(d, "layers: [{units: 3}, {units: 1, layout: diagonal, weight: W1}]\n"))
case("spec-diagonal-null-weight-no-units", ["s.yaml", "layers[1]", "needs 'units'"])(
    lambda d: with_spec(d, "layers: [{units: 3}, {layout: diagonal, weight: null, bias: null}]\n"))
case("spec-diagonal-width", ["model.npz", "layers[1] is diagonal with 1 units but its input has 3"])(
    lambda d: with_spec(d, "layers: [{units: 3}, {layout: diagonal, weight: b1, bias: null}]\n"))
case("spec-null-weight-dense", ["s.yaml", "'weight' cannot be null"])(
    lambda d: with_spec(d, "layers: [{units: 3, weight: null}, {units: 1}]\n"))
case("spec-diagonal-top-level", ["s.yaml", "'layout' must be in_out or out_in"])(
    lambda d: with_spec(d, "layout: diagonal\nlayers: [{units: 3}, {units: 1}]\n"))
case("spec-layer-norm-negative-eps", ["s.yaml", "layer_norm's eps must be >= 0, not -1"])(
    lambda d: with_spec(d, "layers: [{units: 3, activation: layer_norm, eps: -1}, {units: 1}]\n"))
case("spec-layer-norm-alpha", ["s.yaml", "takes no 'alpha'"])(
    lambda d: with_spec(d, "layers: [{units: 3, activation: layer_norm, alpha: 1}, {units: 1}]\n"))
case("spec-alpha-wrong-activation", ["s.yaml", "alpha"])(
    lambda d: with_spec(d, "layers: [{units: 3, activation: tanh, alpha: 1}, {units: 1}]\n"))
case("spec-alpha-huge-int", ["s.yaml", "alpha"])(
    lambda d: with_spec(d, "layers: [{units: 3, activation: elu, alpha: " + "9" * 400 + "}, {units: 1}]\n"))
case("spec-alpha-nan", ["s.yaml", "alpha"])(
    lambda d: with_spec(d, "layers: [{units: 3, activation: elu, alpha: .nan}, {units: 1}]\n"))
case("spec-weight-not-name", ["s.yaml", "weight"])(
    lambda d: with_spec(d, "layers: [{units: 3, weight: [1, 2]}, {units: 1}]\n"))
case("spec-weight-null", ["s.yaml", "weight"])(
    lambda d: with_spec(d, "layers: [{units: 3, weight: null}, {units: 1}]\n"))

_LAYERS = "layers: [{units: 3, activation: tanh}, {units: 1}]\n"
case("spec-scale-wrong-length", ["s.yaml", "input_scaling.scale", "3 values"])(
    lambda d: with_spec(d, "input_scaling: {scale: [1, 2, 3]}\n" + _LAYERS))
case("spec-scale-zero", ["s.yaml", "input_scaling.scale", "zero"])(
    lambda d: with_spec(d, "input_scaling: {scale: [1, 0]}\n" + _LAYERS))
case("spec-scale-text", ["s.yaml", "input_scaling.scale"])(
    lambda d: with_spec(d, "input_scaling: {scale: [one, two]}\n" + _LAYERS))
case("spec-scale-nested", ["s.yaml", "input_scaling.offset"])(
    lambda d: with_spec(d, "input_scaling: {offset: [[1, 2]]}\n" + _LAYERS))
case("spec-scale-huge-int", ["s.yaml", "input_scaling.scale"])(
    lambda d: with_spec(d, "input_scaling: {scale: [1, " + "9" * 400 + "]}\n" + _LAYERS))
case("spec-scale-nan", ["s.yaml", "input_scaling.offset"])(
    lambda d: with_spec(d, "input_scaling: {offset: [.nan, 0]}\n" + _LAYERS))
case("spec-scale-mapping-wrong", ["s.yaml", "input_scaling"])(
    lambda d: with_spec(d, "input_scaling: [1, 2]\n" + _LAYERS))
case("spec-scale-unknown-field", ["s.yaml", "input_scaling.mean"])(
    lambda d: with_spec(d, "input_scaling: {mean: [1, 2]}\n" + _LAYERS))
case("spec-not-utf8", ["s.yaml", "UTF-8"])(lambda d: with_spec(d, b"layers: [{units: \xe9}]\n"))
case("spec-directory", ["sdir", "directory"])(
    lambda d: ["value", os.path.join(d, "model.npz"), "--spec", new_dir(d, "sdir"), "--at", "1,2"])
case("spec-missing", ["none.yaml"])(
    lambda d: ["value", os.path.join(d, "model.npz"), "--spec", os.path.join(d, "none.yaml"),
               "--at", "1,2"])
case("spec-too-large", ["s.yaml", "MB"])(
    lambda d: with_spec(d, _LAYERS + ("# padding\n" * 120_000)))
case("spec-deep-nesting", ["s.yaml", "deep"])(lambda d: with_spec(d, "layers: " + "[" * 100_000))
case("spec-deep-nesting-closed", ["s.yaml", "deep"])(
    lambda d: with_spec(d, "inputs: " + "[" * 5000 + "]" * 5000 + "\n" + _LAYERS))


@case("spec-billion-laughs", ["s.yaml", "alias"])
def _(d):
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    return with_spec(d, "\n".join(lines) + "\nlayers: *a9\n")


@case("spec-billion-laughs-in-units", ["s.yaml", "alias"])
def _(d):
    parts = ["&a0 [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]"]
    for i in range(1, 9):
        parts.append(f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    return with_spec(d, "layers:\n  - units: [" + ", ".join(parts) + "]\n")


@case("spec-recursive-alias", ["s.yaml"])
def _(d):
    return with_spec(d, "inputs: &r [a, *r]\n" + _LAYERS)


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_one_error_line(tmp_path, name):
    assert_case_refused(tmp_path, CASES[name])


# ---------------------------------------------------------------- accepted, not refused


def test_benign_yaml_anchor_accepted(tmp_path):
    d = make_model_dir(tmp_path)
    text = ("input_scaling: {offset: &z [0, 0], scale: [1, 1]}\n"
            "output_scaling: {offset: [0], scale: [1]}\n"
            "layers:\n  - &hidden {units: 3, activation: tanh}\n  - {units: 1}\n"
            "inputs: [a, b]\n")
    succeeded(invoke(with_spec(d, text)))
