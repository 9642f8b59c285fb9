"""``--plot FILE`` and ``--plot-x``: the options, their checks before any work, and the
figure outputs a run writes beside its data (``jaccli.plots``; matplotlib is
imported only when --plot is given)."""

import functools

import click

from jaccli.errors import JaccliError
from jaccli.extras import install_hint
from jaccli.io import registry

PLOT_HELP = (f"Also draw a figure into FILE ({registry.suffix_list(registry.names(registry.FIGURES), registry.FIGURES)}; "
             f"needs matplotlib: {install_hint('matplotlib')}). The data written are the same "
             f"with or without it.")


def plot_options(func=None, *, plot_x=None, plot_x_metavar="NAME"):
    """``--plot FILE``, then ``--plot-x`` with the help ``plot_x`` when given."""
    if func is None:
        return functools.partial(plot_options, plot_x=plot_x, plot_x_metavar=plot_x_metavar)

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    if plot_x is not None:  # click lists the options in the reverse order of decoration
        wrapper = click.option("--plot-x", "plot_x", default=None, metavar=plot_x_metavar,
                               help=plot_x)(wrapper)
    return click.option("--plot", "plot", type=click.Path(dir_okay=False), default=None,
                        metavar="FILE", help=PLOT_HELP)(wrapper)


def plot_target(plot, inputs, output, plot_x=None):
    """Check ``--plot`` before any work: matplotlib installed, a figure suffix, a
    writable place that is neither an input nor -o. Returns ``plot``."""
    if plot is None:
        if plot_x is not None:
            raise JaccliError("--plot-x chooses what --plot draws: give --plot FILE too")
        return None
    import os

    from jaccli.io.writers import check_output_path
    from jaccli.plots import figure_format, require_matplotlib

    figure_format(plot, "--plot")
    require_matplotlib("--plot")
    check_output_path(plot, inputs)
    if output not in (None, "-") and os.path.abspath(output) == os.path.abspath(plot):
        raise JaccliError(f"--plot {plot}: is also -o; give the figure its own file")
    return plot


def derivative_figure(plot, plot_x, model, quantity, width):
    """(the figure output, its sample) of ``jacobian``/``hessdiag --plot``: the sample
    keeps the command's own columns, the last of the ``width`` written per row."""
    from jaccli.quantities import column_names
    from jaccli.plots import FigureFile, MAX_PANELS, derivative_title, input_indices
    from jaccli.plots import model_derivative_figure
    from jaccli.plots.sample import RunSample

    if quantity not in ("jacobian", "hessdiag"):
        raise JaccliError("--plot draws dy/dx against x: not with --wrt params")
    chosen = None if plot_x is None else input_indices(plot_x, model.input_names, "--plot-x",
                                                       limit=MAX_PANELS)
    own = len(column_names(quantity, model))
    sample = RunSample(model.n_inputs, slice(width - own, width))

    def draw():
        _, x, y = sample.arrays()
        title = derivative_title(model, quantity, len(x), sample.count)
        return model_derivative_figure(model, quantity, x, y, sample.mean_abs, title, chosen)

    return FigureFile(plot, draw, sample), sample


def confint_figure(plot, plot_x, model, fit, level):
    """(the figure output, its sample) of ``confint --plot``."""
    from jaccli.plots import CONFINT_ROWS, FigureFile, confint_figure as figure, input_indices
    from jaccli.plots import training_sample
    from jaccli.plots.sample import RunSample

    along = None if plot_x is None else input_indices([plot_x], model.input_names, "--plot-x")[0]
    sample = RunSample(model.n_inputs, slice(0, 6 * model.n_outputs), limit=CONFINT_ROWS)

    def draw():
        _, x, rows = sample.arrays()
        return figure(model, x, rows.reshape(len(rows), model.n_outputs, 6), level, along,
                      training_sample(model, fit), sample.count)

    return FigureFile(plot, draw, sample), sample


def table_figure(plot, draw):
    """The figure output of a table command (sensitivity, check): drawn from its result."""
    from jaccli.plots import FigureFile

    return None if plot is None else FigureFile(plot, draw)
