"""docs/cli.md, the CLI reference, is what the commands print: regenerated here and
compared with the committed page, and every option of every command is documented
under that command (``make cli-reference`` rewrites the page)."""

import os
import re
import sys

import click
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "docs"))
try:
    import make_cli_reference as reference
finally:
    sys.path.pop(0)

COMMANDS = reference.commands()


def committed():
    with open(reference.PAGE, encoding="utf-8") as handle:
        return handle.read()


def sections(text):
    """{'jaccli x': the text under its '## jaccli x' heading}."""
    found = {}
    for part in re.split(r"^## ", text, flags=re.M)[1:]:
        heading, _, body = part.partition("\n")
        found[heading.strip()] = body
    return found


def test_the_committed_page_is_what_the_code_prints():
    assert committed() == reference.reference(), (
        "docs/cli.md differs from the commands' --help: run 'make cli-reference' and commit it")


@pytest.mark.parametrize("columns", ["40", "80", "250"])
def test_the_page_does_not_depend_on_the_terminal_width(columns, monkeypatch):
    monkeypatch.setenv("COLUMNS", columns)
    assert reference.reference() == committed()


def test_every_command_has_one_section_and_every_section_a_command():
    assert set(sections(committed())) == {" ".join(path) for path, _ in COMMANDS}
    assert len(COMMANDS) >= 10  # the group and its nine commands: the walk found them


def written(flag, text):
    """Whether ``flag`` stands in ``text`` as itself ('--points' not in '--points-format')."""
    return re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text) is not None


def context(path):
    """The click context of the command at ``path``, under its parents' (which give it -h)."""
    ctx = None
    for depth in range(1, len(path) + 1):
        command = dict(COMMANDS)[path[:depth]]
        ctx = click.Context(command, info_name=path[depth - 1], parent=ctx,
                            **(command.context_settings if ctx is None else {}))
    return ctx


@pytest.mark.parametrize("path,command", COMMANDS, ids=[" ".join(path) for path, _ in COMMANDS])
def test_every_option_is_documented_under_its_command(path, command):
    section = sections(committed())[" ".join(path)]
    usage = section.split("Usage: ", 1)[1].splitlines()[0]
    params = command.get_params(context(path))  # --help included
    for param in params:
        if isinstance(param, click.Argument):
            assert param.name.upper() in usage, (path, param.name)
            continue
        assert not param.hidden, f"{' '.join(path)}: {param.opts} is hidden: document it"
        assert param.help, f"{' '.join(path)}: {param.opts} has no help text"
        for flag in param.opts + param.secondary_opts:
            assert written(flag, section), f"{' '.join(path)}: {flag} is not on its page section"
    # and nothing documented that the command does not take
    taken = {flag for param in params for flag in param.opts + param.secondary_opts}
    listed = set(re.findall(r"^  (-[-\w]+(?:, --[-\w]+)?)", section.split("Options:", 1)[1], re.M))
    assert listed, path
    for entry in listed:
        assert set(entry.split(", ")) <= taken, (path, entry)


def test_the_written_check_tells_an_option_from_its_longer_neighbour():
    assert written("--points", "  -p, --points PATH")
    assert not written("--points", "  --points-format [csv]")
    assert not written("-p", "  --plot-x A")
