"""Draw the figures the docs show: ``python docs/make_figures.py`` (``make figures``).

Every console example in README.md and docs/*.md whose command has
``--plot NAME.png`` is run as the doc test runs it (in a scratch directory
holding links to sample_models, docs and tests, with OPENBLAS_CORETYPE=Haswell
as the documented outputs were), and NAME.png is written to
docs/figures/NAME.png as a small palette PNG. So each picture in the docs is
what the command beside it draws. Needs the plot extra (matplotlib, Pillow).
"""

import glob
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIGURES = os.path.join(ROOT, "docs", "figures")
PLOT = re.compile(r"--plot\s+(\S+\.png)")
COLOURS = 64  # a palette this size keeps the pictures small and their colours right


def documented_commands():
    """(page, command) of every console example drawing a PNG with --plot."""
    found = []
    for page in [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md"))):
        lines, inside = open(page, encoding="utf-8").read().splitlines(), False
        for i, line in enumerate(lines):
            if line.startswith("```"):
                inside = line.strip() == "```console" and not inside
                continue
            if inside and line.startswith("$ jaccli"):
                command, j = line[2:], i
                while command.endswith("\\"):
                    j += 1
                    command = command[:-1] + " " + lines[j].strip()
                if PLOT.search(command):
                    found.append((os.path.relpath(page, ROOT), command))
    return found


def shrink(source, target):
    """``source`` as a palette PNG of COLOURS colours at ``target``."""
    from PIL import Image

    with Image.open(source) as image:
        small = image.convert("RGB").quantize(colors=COLOURS, method=Image.Quantize.MEDIANCUT)
        small.save(target, optimize=True)


def main():
    os.makedirs(FIGURES, exist_ok=True)
    env = dict(os.environ, NO_COLOR="1", OPENBLAS_CORETYPE="Haswell",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with tempfile.TemporaryDirectory(prefix="jaccli-figures-") as scratch:
        for name in ("sample_models", "docs", "tests"):
            os.symlink(os.path.join(ROOT, name), os.path.join(scratch, name))
        for page, command in documented_commands():
            args = shlex.split(command)
            done = subprocess.run([sys.executable, "-m", "jaccli.cli", *args[1:]], cwd=scratch,
                                  env=env, capture_output=True, text=True)
            if done.returncode != 0:
                sys.exit(f"{page}: {command}\n{done.stderr}")
            name = PLOT.search(command).group(1)
            target = os.path.join(FIGURES, os.path.basename(name))
            shrink(os.path.join(scratch, name), target)
            print(f"{os.path.relpath(target, ROOT)} ({os.path.getsize(target) // 1024} kB)  "
                  f"<- {page}: {command}")
    shutil.rmtree(os.path.join(ROOT, "docs", "__pycache__"), ignore_errors=True)


if __name__ == "__main__":
    main()
