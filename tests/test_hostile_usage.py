"""Hostile and broken input (issue 8): command-line usage errors are one line too.

Every case below runs the real CLI on a bad command line and asserts: exit 2, exactly
one ``Error: ...`` line on standard error naming the file and the problem, no
traceback, no output file and no ``.part`` temporary left behind, and the
existing output file ``out.csv`` unchanged (``hostile_helpers.assert_case_refused``).
"""

import os

import pytest

from hostile_helpers import Cases, assert_case_refused, confint_with_train, value_on_points

CASES = Cases()
case = CASES.case


# ---------------------------------------------------------------- usage errors: one line too

case("usage-unknown-option", ["--foo", "value --help"])(
    lambda d: ["value", os.path.join(d, "model.npz"), "--foo", "--at", "1,2"])
case("usage-missing-argument", ["MODEL"])(lambda d: ["value"])
case("usage-unknown-command", ["valu", "--help"])(lambda d: ["valu", "x"])
case("usage-chunk-size-zero", ["--chunk-size"])(
    lambda d: ["value", os.path.join(d, "model.npz"), "--at", "1,2", "--chunk-size", "0"])
case("usage-dtype", ["--dtype"])(
    lambda d: ["value", os.path.join(d, "model.npz"), "--at", "1,2", "--dtype", "float16"])
case("usage-level", ["--level"])(
    lambda d: confint_with_train(d, os.path.join(d, "train.csv")) + ["--level", "1.5"])
case("usage-train-missing", ["--train"])(
    lambda d: ["confint", os.path.join(d, "model.npz"), "--at", "1,2"])
case("usage-points-and-at", ["--points"])(
    lambda d: value_on_points(d) + ["--at", "1,2"])


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_one_error_line(tmp_path, name):
    assert_case_refused(tmp_path, CASES[name])
