"""jaccli: exact derivatives of saved MLPs (values, Jacobians, Hessians).

    import jaccli
    model = jaccli.load("model.npz")        # spec found beside it or inside it
    model.jacobian([[1.0, 1.0]])            # (N, m, n)
    jaccli.confint(model, "train.csv", [[0.5, 1.0]]).intervals   # (N, m, 6)
    jaccli.check(model, [[0.5, 1.0]]).passed
    jaccli.sensitivity(model, "points.csv").nu      # (m, n): E[(dy/dx)^2]
    jaccli.plot_sensitivity(result, "dgsm.png")     # figures: pip install 'jaccli[plot]'
"""

from jaccli.errors import JaccliError

__version__ = "0.1.0"
#: The figures (``jaccli.plots``, the jaccli[plot] extra), imported on first use.
PLOTS = ("plot_derivatives", "plot_sensitivity", "plot_confint", "plot_check")
__all__ = ["load", "Model", "confint", "check", "sensitivity", *PLOTS, "JaccliError",
           "__version__"]


def load(path, spec=None, dtype="float64", output_name=None):
    """Load a model file; ``spec`` is a YAML path, a dict, a YAML text, or None to discover it;
    ``output_name`` picks one output of an ONNX graph or Keras model that has several."""
    from jaccli.model import load as _load  # numpy and h5py load only when needed

    return _load(path, spec=spec, dtype=dtype, output_name=output_name)


def __getattr__(name):
    """``jaccli.Model`` (with ``Model.from_arrays``) and the ``plot_*`` functions,
    imported on first use."""
    if name == "Model":
        from jaccli.model import Model

        return Model
    if name in PLOTS:  # matplotlib itself is imported only when a figure is drawn
        from jaccli import plots

        return getattr(plots, name)
    raise AttributeError(f"module 'jaccli' has no attribute {name!r}")


def confint(model, train, points, level=0.95, targets=None, chunk_size=None):
    """Confidence and prediction intervals of a least-squares-fitted ``model``.

    ``train``: a training file's path (the inputs and the targets) or an (X, Y)
    pair; ``points``: (N, n) array-like or a points file's path; ``targets``:
    the training file's column of each output (default: the output names).
    Returns a ``ConfintResult``: ``intervals`` (N, m, 6) in the order value,
    se, lower, upper, pred_lower, pred_upper; ``columns``; ``fit`` (per-output
    rank, condition number, s, leverages, leave-one-out residuals).
    """
    from jaccli.stats.confint import confint as _confint

    return _confint(model, train, points, level, targets, chunk_size)


def check(model, points, what=None, tol=None, value_tol=1e-5, reference=None,
          numeric_model=None, chunk_size=None, sample=True):
    """Analytic derivatives of ``model`` against finite differences at ``points``.

    ``what``: jacobian, hessdiag, params, value (a list or comma-separated;
    default: the first three, plus value when ``reference`` outputs (N, m) are
    given). ``sample``: params at a seeded sample of points and parameters
    (False: all of them). Returns a ``CheckReport``: ``rows`` (one per
    quantity and method), ``failures``, ``passed``, ``n_skipped`` (elements
    whose difference stencil crosses a relu kink), ``samples``, ``elements``
    (each element's error, estimate and verdict: ``plot_check`` draws them).
    """
    from jaccli.verify.check import check as _check

    return _check(model, points, what, tol, value_tol, reference, numeric_model, chunk_size,
                  sample=sample)


def sensitivity(model, points, bootstrap=1000, level=0.95, bounds=None, seed=0, chunk_size=None):
    """Derivative-based global sensitivity of ``model`` over ``points``.

    ``points``: (N, n) array-like, a points file's path (streamed in
    chunks) or a Dask array (summed block by block on the Dask scheduler in use). Per output k and input j: ``nu`` = E[(dy_k/dx_j)^2] with a
    Poisson-bootstrap interval (``nu_lower``, ``nu_upper``; ``bootstrap``
    replicates, ``level``, ``seed``), ``mean_abs`` = E|dy_k/dx_j| with its
    interval, ``mean``, ``share`` of nu in sum_j nu, and ``bound``, an upper
    bound on the total Sobol' index from ``bounds`` (e.g. "uniform:0:1",
    "x1=uniform:0:1,x2=normal:0.5"; default: uniform on the points' range).
    Returns a ``SensitivityResult``: arrays (m, n), ``rows()`` for the table,
    ``warnings()``.
    """
    from jaccli.stats.sensitivity import sensitivity as _sensitivity

    return _sensitivity(model, points, bootstrap, level, bounds, seed, chunk_size)

