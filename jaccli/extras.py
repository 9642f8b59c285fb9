"""Optional packages: the extra that brings each, and one line saying what to install.

jaccli's extras (``pip install 'jaccli[NAME]'``) are imported only when a run asks
for them, so jaccli without them behaves as before; when one is missing the
error is one line naming the feature and the command that installs it. Objects
of an optional package (a Dask array) are recognised without importing it.
This module sits at the bottom of jaccli, beside ``jaccli.errors``.
"""

import importlib
import sys

from jaccli.errors import JaccliError

#: The extra that installs each optional package jaccli imports.
EXTRAS = {"dask": "dask", "distributed": "dask", "zarr": "dask", "onnx": "onnx",
          "pyarrow": "arrow", "matplotlib": "plot"}


def install_hint(package):
    """``pip install 'jaccli[EXTRA]'`` for the optional ``package``."""
    return f"pip install 'jaccli[{EXTRAS[package]}]'"


def missing(package, feature):
    """The one-line error of a missing optional ``package`` that ``feature`` needs."""
    return JaccliError(f"{feature} needs the optional package '{package}': "
                       f"{install_hint(package)}")


def require(module, feature):
    """Import ``module`` or say in one line what to install for ``feature``."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise missing(module.split(".")[0], feature) from None


def is_dask_array(X):
    """Duck typing without importing dask: only a caller that imported it can pass one."""
    module = sys.modules.get("dask.array")
    return module is not None and isinstance(X, module.Array)
