"""The library speaks the library's language (CONTRACT section 8): an error about a bad
argument of the Python API names the parameter (``level must lie ...``); the command
line names its option (``--level must lie ...``)."""

import ast
import inspect
import os
import pickle
import re

import numpy as np
import pytest
from click.testing import CliRunner

import jaccli
from jaccli.cli import cli, option_names
from jaccli.errors import JaccliError, ParameterError, param
from jaccli.model import Model

from .conftest import SAMPLES

CANONICAL = os.path.join(SAMPLES, "canonical.npz")
X = np.array([[0.5, 1.0], [1.0, -0.5], [0.2, 0.3]])
TRAIN = (np.random.default_rng(3).uniform(-1, 1, (40, 2)), np.zeros((40, 1)))
AN_OPTION = re.compile(r"(?<![\w-])--[a-z]")


@pytest.fixture(scope="module")
def model():
    return jaccli.load(CANONICAL)


#: Every public callable of the API that takes chunk_size, called with it.
CHUNKED = {
    "Model.value": lambda m, c: m.value(X, chunk_size=c),
    "Model.jacobian": lambda m, c: m.jacobian(X, chunk_size=c),
    "Model.param_jacobian": lambda m, c: m.param_jacobian(X, chunk_size=c),
    "Model.hessdiag": lambda m, c: m.hessdiag(X, chunk_size=c),
    "Model.hessian": lambda m, c: m.hessian(X, chunk_size=c),
    "Model.laplacian": lambda m, c: m.laplacian(X, chunk_size=c),
    "Model.value_and_jacobian": lambda m, c: m.value_and_jacobian(X, chunk_size=c),
    "Model.compute": lambda m, c: m.compute("jacobian", X, chunk_size=c),
    "Model.compute_together": lambda m, c: m.compute_together(["value", "hessdiag"], X, chunk_size=c),
    "Model.iter_chunks": lambda m, c: list(m.iter_chunks("jacobian", X, chunk_size=c)),
    "Model.iter_together": lambda m, c: list(m.iter_together(["value"], X, chunk_size=c)),
    "confint": lambda m, c: jaccli.confint(m, TRAIN, X, chunk_size=c),
    "check": lambda m, c: jaccli.check(m, X, chunk_size=c),
    "sensitivity": lambda m, c: jaccli.sensitivity(m, X, bootstrap=100, chunk_size=c),
}


def _public_with(parameter):
    """The names of the public functions and Model methods that take ``parameter``."""
    found = {name for name in ("confint", "check", "sensitivity", "load")
             if parameter in inspect.signature(getattr(jaccli, name)).parameters}
    found |= {f"Model.{name}" for name, member in vars(Model).items()
              if not name.startswith("_") and callable(member)
              and parameter in inspect.signature(member).parameters}
    return found


def test_the_table_covers_every_api_entry_taking_chunk_size():
    assert set(CHUNKED) == _public_with("chunk_size")


@pytest.mark.parametrize("bad", [-5, 0, 2.5, "x", True, float("nan")])
@pytest.mark.parametrize("entry", sorted(CHUNKED))
def test_a_bad_chunk_size_is_refused_everywhere(model, entry, bad):
    with pytest.raises(ParameterError) as caught:
        CHUNKED[entry](model, bad)
    message = str(caught.value)
    assert message.startswith("chunk_size must be a whole number >= 1 (got ")
    assert caught.value.parameters == ("chunk_size",) and isinstance(caught.value, ValueError)
    assert "--" not in message


def test_a_good_chunk_size_still_works(model):
    assert np.array_equal(model.jacobian(X, chunk_size=2), model.jacobian(X))
    assert np.array_equal(model.jacobian(X, chunk_size=2.0), model.jacobian(X))
    assert np.array_equal(model.jacobian(X, chunk_size=np.int64(1)), model.jacobian(X))


BAD_ARGUMENTS = [
    (lambda m: jaccli.confint(m, TRAIN, X, level=2), "level must lie strictly between 0 and 1"),
    (lambda m: jaccli.confint(m, TRAIN, X, level="x"), "level must be a number (got 'x')"),
    (lambda m: jaccli.confint(m, TRAIN, X, targets=["a", "b"]), "targets given 2 time(s)"),
    (lambda m: jaccli.sensitivity(m, X, level=0), "level must lie strictly between 0 and 1"),
    (lambda m: jaccli.sensitivity(m, X, bootstrap=0), "bootstrap must be a positive number"),
    (lambda m: jaccli.sensitivity(m, X, bootstrap=10), "bootstrap 10 is too few for level 0.95"),
    (lambda m: jaccli.sensitivity(m, X, seed=-1), "seed must be a non-negative integer"),
    (lambda m: jaccli.sensitivity(m, X, seed=1.5), "seed must be a non-negative integer"),
    (lambda m: jaccli.sensitivity(m, X, bounds="box"), "bounds 'box': unknown distribution"),
    (lambda m: jaccli.sensitivity(m, X, bounds="uniform:1:0"), "bounds 'uniform:1:0': uniform"),
    (lambda m: jaccli.sensitivity(m, X, bounds="x9=normal"), "bounds 'x9=normal': no input"),
    (lambda m: jaccli.check(m, X, what="bogus"), "what 'bogus': unknown quantity"),
    (lambda m: jaccli.check(m, X, what="value"), "what value needs reference outputs"),
    (lambda m: jaccli.check(m, X, tol=-1), "tol must be a finite number > 0 (got -1)"),
    (lambda m: jaccli.check(m, X, tol="tight"), "tol must be a number (got 'tight')"),
    (lambda m: jaccli.check(m, X, value_tol=0), "value_tol must be a finite number > 0"),
    (lambda m: m.compute("value", X, threads=-1), "threads must be a whole number >= 1 (got -1)"),
]


@pytest.mark.parametrize("call, start", BAD_ARGUMENTS, ids=[s for _, s in BAD_ARGUMENTS])
def test_api_errors_name_the_parameter(model, call, start):
    with pytest.raises(ParameterError) as caught:
        call(model)
    message = str(caught.value)
    assert message.startswith(start), message
    assert caught.value.parameters[0] == start.split()[0]
    assert not AN_OPTION.search(message), message


def test_a_marked_message_survives_pickling_and_wrapping():
    error = ParameterError(f"{param('level')} must lie strictly between 0 and 1 (got 2)")
    again = pickle.loads(pickle.dumps(error))
    assert str(again) == "level must lie strictly between 0 and 1 (got 2)"
    assert again.renamed({"level": "--level"}).startswith("--level must")
    wrapped = JaccliError(f"train.csv: {error.marked}")
    assert wrapped.renamed({"level": "--level"}) == "train.csv: " + str(error).replace("level", "--level", 1)


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.mark.parametrize("args, start", [
    (["sensitivity", CANONICAL, "--at", "1,1", "--bounds", "box"], "Error: --bounds 'box': unknown"),
    (["sensitivity", CANONICAL, "--at", "1,1", "-B", "10"], "Error: --bootstrap 10 is too few for --level"),
    (["sensitivity", CANONICAL, "--at", "1,1", "--seed", "-2"], "Error: --seed must be a non-negative"),
    (["check", CANONICAL, "--at", "1,1", "--what", "bogus"], "Error: --what 'bogus': unknown quantity"),
    (["value", CANONICAL, "--at", "1"], "Error: --at '1': the model has 2 inputs"),
    (["confint", CANONICAL, "--at", "1,1", "--train", CANONICAL, "--target", "a", "--target", "b",
      "--level", "0.9"], "Error: --target given 2 time(s)"),
    (["confint", CANONICAL, "--at", "1,1", "--train", CANONICAL, "--level", "2"],
     "Error: --level must lie strictly between 0 and 1"),
])
def test_cli_errors_name_the_option(args, start):
    res = run(*args)
    assert res.exit_code == 2 and res.stderr.startswith(start), res.stderr
    assert "\x02" not in res.stderr and "\x03" not in res.stderr


def test_option_names_come_from_the_commands_own_options():
    ctx = cli.make_context("jaccli", ["confint", CANONICAL])
    ctx.invoked_subcommand = "confint"
    names = option_names(ctx)
    assert names["targets"] == "--target" and names["chunk_size"] == "--chunk-size"
    assert names["train_columns"] == "--train-columns" and names["level"] == "--level"


def _messages(tree):
    """The string constants of a module, its docstrings left out."""
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef))
                  and node.body and isinstance(node.body[0], ast.Expr)}
    return [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)
            and isinstance(node.value, str) and id(node) not in docstrings]


def test_the_library_never_writes_an_option():
    root = os.path.dirname(jaccli.__file__)
    offenders = []
    for folder, _, files in os.walk(root):
        if os.path.join(root, "cli") in folder:
            continue
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path, encoding="utf-8") as handle:
                    tree = ast.parse(handle.read())
                offenders += [(path, text) for text in _messages(tree) if AN_OPTION.search(text)]
    assert offenders == []
