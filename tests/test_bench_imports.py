"""``make bench`` is not run by the suite (its targets are measured, not tested), so a
rename in jaccli can break it unseen (``jaccli.io.columns`` did): every name bench/
imports from jaccli, at the top or inside a function, must exist."""

import ast
import importlib
import importlib.util
import os

import pytest

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")


def jaccli_imports():
    for name in sorted(os.listdir(BENCH)):
        if not name.endswith(".py"):
            continue
        tree = ast.parse(open(os.path.join(BENCH, name), encoding="utf-8").read())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "jaccli":
                for alias in node.names:
                    yield f"{name}:{node.lineno}", node.module, alias.name
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "jaccli":
                        yield f"{name}:{node.lineno}", alias.name, None


@pytest.mark.parametrize("where,module,name", list(jaccli_imports()))
def test_bench_imports_exist(where, module, name):
    imported = importlib.import_module(module)
    if name is not None:
        assert hasattr(imported, name) or importlib.util.find_spec(f"{module}.{name}"), \
            f"{where}: {module} has no {name}"
