"""What a new user meets first: --help examples that run, info --json, shell completion."""

import json
import os
import shlex

import pytest
from click.testing import CliRunner

from jaccli.cli import cli
from conftest import SAMPLES

ROOT = os.path.dirname(SAMPLES)


def help_examples(command_path):
    """The example command lines of ``jaccli COMMAND --help`` (a trailing \\ continues a line)."""
    res = CliRunner().invoke(cli, command_path + ["--help"], terminal_width=200)
    assert res.exit_code == 0, res.output
    examples, in_examples, pending = [], False, ""
    for line in res.output.splitlines():
        stripped = line.strip()
        if stripped in ("Example:", "Examples:"):
            in_examples = True
            continue
        if in_examples and not stripped:
            in_examples = False
            continue
        if in_examples:
            pending += " " + stripped.rstrip("\\").strip()
            if not stripped.endswith("\\"):
                examples.append(pending.strip())
                pending = ""
    return examples


COMMANDS = [[]] + [[name] for name in sorted(cli.commands)]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "jaccli")
def test_every_help_example_runs_as_printed_from_the_repository_root(command, tmp_path,
                                                                      monkeypatch):
    examples = help_examples(command)
    assert examples, f"jaccli {' '.join(command)} --help shows no example"
    # the repository root as seen by the example, in a scratch copy (outputs land there)
    os.symlink(SAMPLES, tmp_path / "sample_models")
    monkeypatch.chdir(tmp_path)
    for example in examples:
        argv = shlex.split(example)
        assert argv[0] == "jaccli", example
        res = CliRunner().invoke(cli, argv[1:])
        assert res.exit_code == 0, f"{example}\n{res.output}"
        for arg in argv[1:]:  # every file an example reads is in the repository
            if arg.startswith("sample_models/"):
                assert os.path.exists(os.path.join(ROOT, arg)), example


def test_info_json_has_the_same_facts_as_the_table():
    model = os.path.join(SAMPLES, "noisy.npz")
    res = CliRunner().invoke(cli, ["info", model, "--json"])
    assert res.exit_code == 0, res.output
    facts = json.loads(res.stdout)
    assert facts["model"] == model and facts["spec"] == os.path.join(SAMPLES, "noisy.yaml")
    assert facts["inputs"] == ["x1", "x2"] and facts["outputs"] == ["y"]
    assert facts["layers"] == [{"units": 5, "activation": "tanh", "bias": True},
                               {"units": 1, "activation": "linear", "bias": True}]
    assert facts["parameters"] == [
        {"name": "W0", "shape": [2, 5], "offset": 0, "size": 10},
        {"name": "b0", "shape": [5], "offset": 10, "size": 5},
        {"name": "W1", "shape": [5, 1], "offset": 15, "size": 5},
        {"name": "b1", "shape": [1], "offset": 20, "size": 1}]
    assert facts["n_parameters"] == 21 and facts["layout"] == "in_out"
    table = CliRunner().invoke(cli, ["info", model]).stdout
    for p in facts["parameters"]:
        assert f"{p['name']}\t" in table and f"\t{p['offset']}\t{p['size']}" in table


def test_info_json_scalings_and_activation_parameters(tmp_path):
    import numpy as np

    from . import nets

    model = nets.write_model(tmp_path, "m", {"W0": np.ones((2, 3)), "W1": np.ones((3, 1))}, {
        "inputs": ["a", "b"], "outputs": ["y"],
        "input_scaling": {"offset": [1.0, 2.0], "scale": [2.0, 4.0]},
        "layers": [{"units": 3, "activation": "leaky_relu", "alpha": 0.2, "bias": None},
                   {"units": 1, "activation": "linear", "bias": None}]})
    facts = json.loads(CliRunner().invoke(cli, ["info", str(model), "--json"]).stdout)
    assert facts["input_scaling"] == {"offset": [1.0, 2.0], "scale": [2.0, 4.0]}
    assert facts["output_scaling"] is None
    assert facts["layers"][0] == {"units": 3, "activation": "leaky_relu", "alpha": 0.2,
                                  "bias": False}


@pytest.mark.parametrize("option", ["--points", "-o", "--train", "--spec"])
def test_file_options_complete_file_names(option, monkeypatch):
    from click.shell_completion import ShellComplete

    command = "confint" if option == "--train" else "jacobian"
    complete = ShellComplete(cli, {}, "jaccli", "_JACCLI_COMPLETE")
    items = complete.get_completions([command, "model.npz", option], "")
    assert [item.type for item in items] == ["file"]


def test_the_cli_format_lists_agree_with_the_readers_and_writers():
    """cli/options.py keeps its own copies (so that --help imports no NumPy): they must not drift."""
    from jaccli.cli import options
    from jaccli.io import registry, writers

    assert options.POINT_FORMATS == registry.names(registry.POINTS)
    assert set(options.OUTPUT_FORMATS) == set(writers.FORMATS.values())
    assert set(options.TABLE_FORMATS) <= set(options.OUTPUT_FORMATS)
