"""Every example in README.md and docs/*.md is run and its output compared with the text.

In the spirit of sqlite-utils' cog-built docs: a discrepancy between what the
docs show and what the code prints fails the suite. The rules, for whoever
writes docs:

- Text must match exactly; numbers to a relative 1e-13 (``NUMBER_RTOL``): the
  last of 17 digits depends on the CPU's BLAS kernels (OpenBLAS picks
  Haswell kernels on AVX2, SkylakeX ones on AVX-512), not on jaccli.

- A fenced block whose info string is ``console`` is run. Its lines are
  ``$ COMMAND`` (a trailing ``\\`` continues it on the next line) followed by
  the output, as a terminal shows it: standard output first, then standard
  error (jaccli writes its summary after the data).
  * Standard output must match line for line.
  * Standard error, the human summary, is compared line by line after
    trailing spaces are dropped and runs of spaces made one; ``...`` in the
    text stands for any characters within that line (timings, which change
    from run to run).
  * Commands: ``jaccli ...`` (run in process through ``jaccli.cli.main``),
    ``python FILE ...`` (run with this interpreter) and ``cat FILE``, also as
    ``cat FILE | jaccli ...`` (FILE is jaccli's standard input). ``> FILE``
    at the end sends standard output to FILE (not compared).
- ``console not-run`` marks an example that needs files not in the
  repository (a Keras or PyTorch model); it is not run, so check its numbers
  by hand when the code changes. Any other block holding a ``$ `` line fails
  the test, so an example cannot silently drop out of it.
- A ``python`` block holding ``>>>`` lines is run as a doctest; a python block
  without them is a sketch and is not run.
- A block whose info string has ``file=NAME`` (e.g. ``yaml file=my_model.yaml``)
  is written to NAME before the blocks after it run.

Each documentation file runs, block after block, in a scratch directory of
its own where ``sample_models``, ``docs`` and ``tests`` are links to the repository's,
with NO_COLOR=1, so examples can write files without touching the repository.
"""

import doctest
import glob
import os
import re
import shlex
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC_FILES = sorted([os.path.join(ROOT, "README.md")] + glob.glob(os.path.join(ROOT, "docs", "*.md")))
FENCE = re.compile(r"^```(.*)$")


def fenced_blocks(path):
    """(first line number, info string, lines) of each fenced block, in order."""
    blocks, info, lines, start = [], None, [], 0
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle.read().splitlines(), 1):
            match = FENCE.match(line)
            if match and info is None:
                info, lines, start = match.group(1).strip(), [], number + 1
            elif line.startswith("```") and info is not None:
                blocks.append((start, info, lines))
                info = None
            elif info is not None:
                lines.append(line)
    return blocks


def commands(lines):
    """(command, expected output lines) of a console block."""
    runs, i = [], 0
    while i < len(lines):
        assert lines[i].startswith("$ "), f"a console block starts with '$ ': {lines[i]!r}"
        command = lines[i][2:]
        while command.endswith("\\"):
            i += 1
            command = command[:-1] + " " + lines[i].strip()
        i += 1
        output = []
        while i < len(lines) and not lines[i].startswith("$ "):
            output.append(lines[i])
            i += 1
        runs.append((command, output))
    return runs


def run_jaccli(args, capfd, monkeypatch, stdin=None):
    """jaccli in process; ``stdin``: the bytes a pipe on standard input holds
    (``cat FILE | jaccli``; a documented file is far smaller than a pipe's buffer)."""
    from jaccli.cli import main

    capfd.readouterr()
    monkeypatch.setattr(sys, "argv", ["jaccli", *args])
    if stdin is not None:
        read_end, write_end = os.pipe()
        os.write(write_end, stdin)
        os.close(write_end)
        pipe = os.fdopen(read_end, "r")
        monkeypatch.setattr(sys, "stdin", pipe)
    try:
        main()
    except SystemExit:
        pass
    finally:
        if stdin is not None:
            pipe.close()
    sys.stdout.flush()
    sys.stderr.flush()
    captured = capfd.readouterr()
    return captured.out, captured.err


def run(command, capfd, monkeypatch):
    """Standard output and standard error of one documented command."""
    args, target, stdin = shlex.split(command), None, None
    if len(args) > 2 and args[-2] == ">":
        args, target = args[:-2], args[-1]
    if args[0] == "cat" and len(args) > 3 and args[2] == "|":
        with open(args[1], "rb") as handle:
            stdin, args = handle.read(), args[3:]
    if args[0] == "jaccli":
        out, err = run_jaccli(args[1:], capfd, monkeypatch, stdin)
    elif args[0] == "python":
        done = subprocess.run([sys.executable, *args[1:]], capture_output=True, text=True)
        out, err = done.stdout, done.stderr
    elif args[0] == "cat":
        with open(args[1], encoding="utf-8") as handle:
            out, err = handle.read(), ""
    else:
        raise AssertionError(f"cannot run {command!r}: mark its block 'console not-run'")
    if target is not None:
        with open(target, "w", encoding="utf-8") as handle:
            handle.write(out)
        out = ""
    return out.splitlines(), err.splitlines()


# How far a documented number may be from the printed one, relative to the larger.
NUMBER_RTOL = 1e-13
# A number as jaccli prints one, not glued to a digit or a point before it.
NUMBER = r"(?<![\d.])[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?"


def matches(expected, actual, wildcard=False):
    """Whether ``actual`` is the ``expected`` text with each number within
    NUMBER_RTOL; with ``wildcard``, ``...`` in expected stands for any characters."""
    numbers = []
    parts = expected.split("...") if wildcard else [expected]
    pattern = ".*?".join(_pattern(part, numbers) for part in parts)
    found = re.fullmatch(pattern, actual, re.DOTALL)
    return found is not None and all(
        _close(float(a), float(b)) for a, b in zip(numbers, found.groups()))


def _pattern(text, numbers):
    """A regular expression of ``text`` with a group for each number in it (kept in ``numbers``)."""
    pieces, position = [], 0
    for number in re.finditer(NUMBER, text):
        pieces += [re.escape(text[position:number.start()]), f"({NUMBER})"]
        numbers.append(number.group())
        position = number.end()
    return "".join(pieces + [re.escape(text[position:])])


def _close(a, b):
    return a == b or abs(a - b) <= NUMBER_RTOL * max(abs(a), abs(b))


def summary_line_matches(expected, actual):
    squeeze = lambda text: re.sub(r" +", " ", text.rstrip())  # noqa: E731
    return matches(squeeze(expected), squeeze(actual), wildcard=True)


def mismatch(command, expected, out, err):
    """None when the output is the documented one, else what differs."""
    stdout_ok = len(expected) >= len(out) and all(map(matches, expected, out))
    rest = expected[len(out):]
    stderr_ok = len(rest) == len(err) and all(map(summary_line_matches, rest, err))
    if stdout_ok and stderr_ok:
        return None
    shown = "\n".join(out + ["--- standard error ---"] + err)
    return f"$ {command}\n--- documented ---\n" + "\n".join(expected) + f"\n--- printed ---\n{shown}"


class NumbersChecker(doctest.OutputChecker):
    """doctest's comparison, with numbers compared as ``matches`` compares them."""

    def check_output(self, want, got, optionflags):
        return super().check_output(want, got, optionflags) or \
            matches(want, got, wildcard=bool(optionflags & doctest.ELLIPSIS))


def run_doctest(text, globs, name, line):
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(checker=NumbersChecker(), optionflags=doctest.ELLIPSIS)
    test = parser.get_doctest(text, globs, name, name, line)
    report = []
    runner.run(test, out=report.append, clear_globs=False)
    globs.update(test.globs)  # later blocks of the page use the names defined here
    return "".join(report) or None


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: os.path.relpath(p, ROOT))
def test_examples_print_what_the_docs_say(path, tmp_path, capfd, monkeypatch):
    for name in ("sample_models", "docs", "tests"):
        os.symlink(os.path.join(ROOT, name), tmp_path / name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NO_COLOR", "1")
    where, failures, globs = os.path.relpath(path, ROOT), [], {}
    for line, info, lines in fenced_blocks(path):
        words = info.split()
        language = words[0] if words else ""
        files = [word[5:] for word in words if word.startswith("file=")]
        if files:
            (tmp_path / files[0]).write_text("\n".join(lines) + "\n", encoding="utf-8")
        elif language == "python" and any(text.lstrip().startswith(">>>") for text in lines):
            report = run_doctest("\n".join(lines) + "\n", globs, where, line - 1)
            if report:
                failures.append(f"{where}:{line}: python example\n{report}")
        elif info == "console":
            for command, expected in commands(lines):
                out, err = run(command, capfd, monkeypatch)
                problem = mismatch(command, expected, out, err)
                if problem:
                    failures.append(f"{where}:{line}:\n{problem}")
        elif info != "console not-run":
            assert not any(text.startswith("$ ") for text in lines), (
                f"{where}:{line}: a block with '$ ' lines must be 'console' (run) or 'console not-run'")
    assert not failures, "\n\n".join(failures)


def test_the_docs_have_run_examples():
    """The collector finds the examples (a broken fence rule would pass vacuously)."""
    counted = sum(len(commands(lines)) for path in DOC_FILES
                  for _, info, lines in fenced_blocks(path) if info == "console")
    assert counted >= 20


def test_numbers_match_to_a_relative_1e_13_and_text_exactly():
    assert matches("y,-0.6143624097690495", "y,-0.6143624097690498")  # SkylakeX vs Haswell
    assert matches("-1.197477797418622", "-1.1974777974186224")
    assert not matches("y,-0.6143624097690495", "y,-0.6143624097691495")
    assert not matches("0.5", "0.5000000000001")
    assert not matches("dy/dx1", "dy/dx2") and not matches("y,1", "z,1")
    assert not matches("1.5", "1.5 extra") and not matches("1.5", "-1.5")
    assert matches("time ... s; 3 points", "time 0.0123 s; 3 points", wildcard=True)
    assert not matches("time ... s; 3 points", "time 0.0123 s; 4 points", wildcard=True)
    assert matches("[[0.1, 0.2]]\n", "[[0.10000000000000002, 0.2]]\n")


def test_every_figure_drawn_in_the_docs_is_committed_small_and_shown_beside_its_command():
    """``make figures`` (docs/make_figures.py) draws docs/figures/NAME.png with the documented
    command holding ``--plot NAME.png``; the page running the command shows that picture."""
    sys.path.insert(0, os.path.join(ROOT, "docs"))
    try:
        import make_figures
    finally:
        sys.path.pop(0)
    drawn = make_figures.documented_commands()
    assert {os.path.basename(make_figures.PLOT.search(c).group(1)) for _, c in drawn} >= {
        "jacobian.png", "sensitivity.png", "confint.png", "check.png"}
    for page, command in drawn:
        name = os.path.basename(make_figures.PLOT.search(command).group(1))
        path = os.path.join(ROOT, "docs", "figures", name)
        assert os.path.exists(path), f"{page}: {name} is not in docs/figures (make figures)"
        assert os.path.getsize(path) < 60_000, f"{name} is not small"
        text = open(os.path.join(ROOT, page), encoding="utf-8").read()
        assert f"](figures/{name})" in text or f"](docs/figures/{name})" in text, (page, name)
