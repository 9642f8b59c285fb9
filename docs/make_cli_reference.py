"""Write docs/cli.md, the CLI reference: every command's ``--help``, as jaccli prints it.

In the manner of sqlite-utils' cog-built docs/cli-reference: the page is generated
from the click command tree (``jaccli.cli.cli``), never written by hand.
``make cli-reference`` rewrites it; ``python docs/make_cli_reference.py --check``
exits 1 when the committed page is stale, and tests/test_cli_reference.py fails then.

The help is rendered as an 80-column terminal shows it (click wraps at width 78
then), whatever the width of the terminal that runs this script, so the page does
not depend on who generated it.
"""

import os
import sys

import click
from click.testing import CliRunner

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGE = os.path.join(ROOT, "docs", "cli.md")
# click's help width in an 80-column terminal (it keeps 2 columns free)
HELP_WIDTH = 78

INTRO = """\
# CLI reference

Every command's `--help`, exactly as jaccli prints it in a terminal 80
columns wide. This page is generated from the commands themselves by
`make cli-reference` (`docs/make_cli_reference.py`); do not edit it by hand:
`tests/test_cli_reference.py` fails when it differs from what the code
prints, or when an option of a command is missing under that command.
The options common to the computing commands are explained at more length
in the [README](../README.md#commands),
[points-and-outputs.md](points-and-outputs.md) and
[errors-and-safety.md](errors-and-safety.md).
"""


def commands(group=None, path=("jaccli",)):
    """(command path, click command) of the group and every command under it, in order."""
    if group is None:
        from jaccli.cli import cli

        group = cli
    found = [(path, group)]
    if isinstance(group, click.Group):
        for name in sorted(group.commands):
            found += commands(group.commands[name], path + (name,))
    return found


def help_text(path):
    """The ``--help`` output of ``jaccli`` + path[1:], at HELP_WIDTH whatever the terminal."""
    from jaccli.cli import cli

    result = CliRunner().invoke(cli, [*path[1:], "--help"], prog_name="jaccli",
                                terminal_width=HELP_WIDTH, env={"COLUMNS": str(HELP_WIDTH + 2)})
    if result.exit_code != 0:
        raise RuntimeError(f"{' '.join(path)} --help exited {result.exit_code}: {result.output}")
    return result.output


def anchor(path):
    """The GitHub anchor of a '## jaccli x' heading."""
    return "-".join(path)


def reference():
    """The text of docs/cli.md."""
    found = commands()
    parts = [INTRO.rstrip("\n"), ""]
    parts += [f"- [`{' '.join(path)}`](#{anchor(path)})" for path, _ in found]
    for path, _ in found:
        parts += ["", f"## {' '.join(path)}", "", "```", help_text(path).rstrip("\n"), "```"]
    return "\n".join(parts) + "\n"


def main(argv):
    text = reference()
    if "--check" in argv:
        with open(PAGE, encoding="utf-8") as handle:
            if handle.read() != text:
                print("docs/cli.md is stale: run make cli-reference", file=sys.stderr)
                return 1
        return 0
    with open(PAGE, "w", encoding="utf-8") as handle:
        handle.write(text)
    print(f"wrote {os.path.relpath(PAGE, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, ROOT)  # the jaccli of this checkout, not another one installed
    sys.exit(main(sys.argv[1:]))
