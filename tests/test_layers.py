"""jaccli's parts import only downward: every import in every module, those inside
functions included, goes to a part ranked below the importer's (or within it). The
order is load -> compute -> write read bottom-up: the engine knows nothing of jaccli
but its errors; formats read files into specs; io reads points and writes results;
scale runs chunks beyond one process; the model joins them; verify (check) and stats
use the model; plots draw results; the CLI and the package's API sit on top."""

import ast
import os

import jaccli

LAYERS = ["errors", "messages", "numeric", "arguments", "engine", "extras", "limits", "quantities", "formats", "io", "scale",
          "model", "verify", "stats", "plots", "export", "cli", "__init__"]
PACKAGE = os.path.dirname(jaccli.__file__)


def part_of(module):
    """``jaccli.io.points`` -> ``io``; ``jaccli`` itself -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports():
    """(importing part, imported part, module, line) for every jaccli import in jaccli/."""
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            parts = os.path.relpath(path[:-3], PACKAGE).split(os.sep)
            module = ".".join(["jaccli"] + [p for p in parts if p != "__init__"])
            tree = ast.parse(open(path, encoding="utf-8").read())
            for node in ast.walk(tree):
                targets = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [f"jaccli.{a.name}" for a in node.names] \
                    if isinstance(node, ast.ImportFrom) and node.module == "jaccli" else \
                    [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
                for target in targets:
                    if target.split(".")[0] == "jaccli":
                        yield part_of(module), part_of(target), module, node.lineno


def test_every_part_is_ranked():
    parts = {importer for importer, *_ in imports()} | {imported for _, imported, *_ in imports()}
    assert parts <= set(LAYERS), f"parts with no place in LAYERS: {sorted(parts - set(LAYERS))}"


def test_imports_point_only_down():
    rank = {name: i for i, name in enumerate(LAYERS)}
    upward = [f"{module}:{line} imports jaccli.{imported} ({importer} is below {imported})"
              for importer, imported, module, line in imports()
              if rank[imported] > rank[importer]]
    assert not upward, "\n".join(upward)


def test_the_engine_imports_nothing_of_jaccli_but_its_errors():
    used = {imported for importer, imported, *_ in imports() if importer == "engine"}
    assert used <= {"engine", "errors"}, used



def test_no_private_name_is_imported_from_another_module():
    """A name shared between modules is public (no leading underscore) where it is defined."""
    private = []
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                tree = ast.parse(open(path, encoding="utf-8").read())
                private += [f"{os.path.relpath(path, PACKAGE)}:{node.lineno} imports {alias.name}"
                            for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                            and (node.module or "").startswith("jaccli")
                            for alias in node.names if alias.name.startswith("_")]
    assert not private, "\n".join(private)
