"""Figures of jaccli's results (the ``jaccli[plot]`` extra: matplotlib, headless).

    jaccli.plot_sensitivity(result, "dgsm.png")       # jaccli.sensitivity's result
    jaccli.plot_derivatives(model, X, "dydx.png")     # dy/dx_j against x_j
    jaccli.plot_confint(result, X, "ci.png")          # jaccli.confint's result at X
    jaccli.plot_check(report, "check.png")            # jaccli.check's report

Each returns the matplotlib Figure (``path``: also saved there, whole or not
at all, in the format of its extension: .png, .svg or .pdf). matplotlib is
imported only when a figure is drawn, so the command line starts as fast
without it. Large point sets are drawn from a bounded, seeded sample
(``sample``).
"""

import os

from jaccli.errors import JaccliError
from jaccli.extras import install_hint
from jaccli.io import registry

INSTALL_HINT = install_hint("matplotlib")
FORMATS = registry.names(registry.FIGURES)


def require_matplotlib(what="plotting"):
    """One line saying what to install when matplotlib is missing. Only looked up,
    not imported: a run imports it when it draws, after the computation, so that
    its memory (some 45 MB) does not add to the computation's peak."""
    import importlib.util
    import sys

    try:
        found = sys.modules.get("matplotlib", True) is not None and \
            importlib.util.find_spec("matplotlib") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise JaccliError(f"{what} needs matplotlib, which is not installed: {INSTALL_HINT}")


def figure_format(path, what="path"):
    """The figure format of ``path`` by its extension (.png, .svg, .pdf)."""
    suffix = os.path.splitext(str(path))[1].lower()
    formats = registry.by_suffix(registry.FIGURES)
    if suffix not in formats:
        listed = registry.suffix_list(FORMATS, registry.FIGURES)
        raise JaccliError(f"{what} {path}: a figure is {listed}, not "
                          f"{repr(suffix) if suffix else 'a name with no extension'}")
    return formats[suffix]


class FigureFile:
    """A figure written as an output of a run, whole or not at all: ``draw()`` (a
    function returning the Figure) is called by ``prepare`` and saved to a
    temporary file beside ``path``, renamed onto it by ``commit``. ``sample``
    (optional): what ``write(start, rows)`` feeds, as the data go by."""

    def __init__(self, path, draw, sample=None):
        from jaccli.io.writers import AtomicFile

        self.target, self.format, self.draw, self.sample = path, figure_format(path), draw, sample
        self.atomic, self.prepared, self.figure = AtomicFile(path), False, None

    def write(self, start, rows):
        if self.sample is not None:
            self.sample.write(start, rows)

    def prepare(self):
        figure = self.figure = self.draw()
        try:
            figure.savefig(self.atomic.temp_path, format=self.format)
        except OSError as exc:
            raise JaccliError(f"{self.target}: cannot write the figure: "
                              f"{exc.strerror or exc}") from None
        self.prepared = True

    def commit(self):
        if not self.prepared:
            self.prepare()
        self.atomic.commit()

    def abort(self):
        self.atomic.abort()


def save_figure(figure, path):
    """Save ``figure`` to ``path`` whole or not at all (format from the extension)."""
    from jaccli.io.writers import written_whole

    with written_whole(FigureFile(path, lambda: figure)):
        pass
    return figure


def _finish(figure, path):
    return figure if path is None else save_figure(figure, path)


def input_indices(names, input_names, what="inputs", limit=None):
    """Indices of the inputs ``names`` (a list, or a comma-separated text), matched as a
    header's names are; at most ``limit`` of them."""
    from jaccli.io.selection import header_index

    items = names.split(",") if isinstance(names, str) else list(names)
    items = [str(item).strip() for item in items if str(item).strip()]
    if not items:
        raise JaccliError(f"{what}: name at least one input ({', '.join(input_names)})")
    if limit is not None and len(items) > limit:
        raise JaccliError(f"{what}: at most {limit} inputs per output (got {len(items)})")
    out = []
    for item in items:
        index = header_index(list(input_names), item, what, "input")
        if index is None:
            raise JaccliError(f"{what}: no input named {item!r} (the inputs: "
                              f"{', '.join(input_names)})")
        out.append(index)
    return out


def plot_sensitivity(result, path=None):
    """``jaccli.sensitivity``'s result: per output, nu as sorted bars with its bootstrap
    interval, and the bound on each input's total Sobol' index, with what it assumes."""
    require_matplotlib("plot_sensitivity")
    from jaccli.plots.draw import sensitivity_figure

    title = (f"jaccli sensitivity: {result.n_points:,} points, {result.bootstrap} bootstrap "
             f"replicates")
    return _finish(sensitivity_figure(result, title), path)


def plot_check(report, path=None):
    """``jaccli.check``'s report: |analytic - numerical| against the error estimate,
    log-log, with the allowed difference and the failures marked."""
    require_matplotlib("plot_check")
    from jaccli.plots.draw import check_figure

    verdict = "passed" if report.passed else f"FAILED ({len(report.failures)} quantities)"
    title = f"jaccli check at {report.n_points:,} points: {verdict}"
    return _finish(check_figure(report, title), path)


def plot_derivatives(model, points, path=None, quantity="jacobian", inputs=None,
                     seed=None):
    """dy/dx_j (``quantity`` "jacobian") or d2y/dx_j2 ("hessdiag") against x_j at
    ``points`` ((N, n) array-like, or a points file's path): per output, the inputs named in ``inputs`` or the 6 with the
    largest mean |derivative|. Beyond 20,000 points a seeded sample is drawn
    (and ranked)."""
    import numpy as np

    from jaccli.plots import sample as sampling

    require_matplotlib("plot_derivatives")
    if quantity not in ("jacobian", "hessdiag"):
        raise JaccliError(f"quantity must be 'jacobian' or 'hessdiag', not {quantity!r}")
    X = points_of(model, points)
    chosen = None if inputs is None else input_indices(inputs, model.input_names, "inputs",
                                                        limit=MAX_PANELS)
    limit = sampling.sample_limit(model.n_inputs * (model.n_outputs + 1))
    _, x = sampling.sample_rows(X, limit, sampling.SEED if seed is None else seed)
    y = np.asarray(getattr(model, quantity)(x), dtype=np.float64).reshape(len(x), -1)
    title = derivative_title(model, quantity, len(x), len(X))
    return _finish(model_derivative_figure(model, quantity, x, y, np.abs(y).mean(axis=0),
                                           title, chosen), path)


MAX_PANELS = 6


def points_of(model, points):
    """The points: an array-like, or a points file's path (read lazily when large)."""
    if isinstance(points, (str, os.PathLike)):
        from jaccli.io.points import read_points

        return read_points(str(points), model.input_names)
    return model.as_points(points)


def derivative_title(model, quantity, drawn, total):
    what = {"jacobian": "dy/dx", "hessdiag": "d2y/dx2"}[quantity]
    where = f"{total:,} points" if drawn == total else \
        f"a seeded sample of {drawn:,} of {total:,} points"
    return f"jaccli {quantity} {os.path.basename(str(model.path))}: {what} at {where}"


def model_derivative_figure(model, quantity, x, y, mean_abs, title, chosen):
    """The derivative dependence figure of ``quantity`` with ``model``'s names."""
    from jaccli.plots import draw
    from jaccli.quantities import column_names

    return draw.derivative_figure(x, y, mean_abs, list(model.input_names),
                                  column_names(quantity, model), title, chosen)


def plot_confint(model, result, points, path=None, x=None, train=True):
    """``jaccli.confint``'s result at ``points`` (N, n): per output, the prediction
    with its confidence and prediction intervals against input ``x`` (a name;
    default: the input whose range is largest): bands when the other inputs are
    constant over the points, error bars otherwise; ``train``: the training points
    behind (a seeded sample of them)."""
    import numpy as np

    from jaccli.plots.sample import sample_rows

    require_matplotlib("plot_confint")
    X = points_of(model, points)
    along = None if x is None else input_indices([x], model.input_names, "x")[0]
    behind = training_sample(model, result.fit) if train else None
    index, sample = sample_rows(X, CONFINT_ROWS)
    return _finish(confint_figure(model, sample, np.asarray(result.intervals)[index],
                                  result.level, along, behind, len(X)), path)


#: Points a confint figure draws at most (a seeded sample beyond it).
CONFINT_ROWS = 5_000


def confint_figure(model, x, intervals, level, along=None, train=None, total=None):
    """The confint figure of the points ``x`` (k, n) and their ``intervals`` (k, m, 6),
    a sample of ``total`` points (default: all of them)."""
    from jaccli.plots.draw import confint_figure as draw

    total = len(x) if total is None else total
    where = f"{total:,} points" if len(x) == total else \
        f"a seeded sample of {len(x):,} of {total:,} points"
    title = (f"jaccli confint {os.path.basename(str(model.path))}: level {level:g}, {where}")
    return draw(x, intervals, list(model.input_names), list(model.output_names), level, title,
                along, train)


TRAINING_DRAWN = 2_000


def training_sample(model, fit, limit=TRAINING_DRAWN):
    """(x, targets) of a seeded sample of the training points behind ``fit`` (the targets
    are the model's values plus the residuals), or None when it holds no inputs."""
    import numpy as np

    from jaccli.plots.sample import sample_rows

    if getattr(fit, "X_train", None) is None:
        return None
    index, x = sample_rows(fit.X_train, limit)
    if not len(x):
        return None
    values = np.asarray(model.value(x), dtype=np.float64)
    return x, values + np.asarray(fit.residuals)[index]
