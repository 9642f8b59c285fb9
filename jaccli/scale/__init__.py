"""Beyond one process: Zarr stores, Dask arrays in the API, Dask clusters for the CLI.

Everything here needs the optional ``jaccli[dask]`` extra (dask, distributed,
zarr) and is imported only when a run asks for it, so jaccli without the
extra behaves exactly as before.
"""

import importlib

from jaccli.errors import JaccliError

EXTRA_HINT = "pip install 'jaccli[dask]'"


def require(module, feature):
    """Import ``module`` or say in one line what to install for ``feature``."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise JaccliError(f"{feature} needs the optional package '{module.split('.')[0]}': "
                          f"{EXTRA_HINT}") from None
