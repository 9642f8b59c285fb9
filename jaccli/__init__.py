"""jaccli: exact derivatives of saved MLPs (values, Jacobians, Hessians).

    import jaccli
    model = jaccli.load("model.npz")        # spec found beside it or inside it
    model.jacobian([[1.0, 1.0]])            # (N, m, n)
"""

from .errors import JaccliError

__version__ = "0.1.0"
__all__ = ["load", "JaccliError", "__version__"]


def load(path, spec=None, dtype="float64"):
    """Load a model file; ``spec`` is a YAML path, or None to discover it."""
    from .model import load as _load  # numpy and h5py load only when needed

    return _load(path, spec=spec, dtype=dtype)
