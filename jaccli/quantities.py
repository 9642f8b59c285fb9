"""The quantities jaccli computes, one record each: the one vocabulary that the
model's methods, the computing commands, ``--with``, the output columns, the
summary's grouping and ``jaccli check`` are made from.

A record says how a quantity is computed (an engine sweep, or the model's own
method for the parameter Jacobian, which needs the file's parameter map), the
shape of its result, the working memory a point needs (the default chunk
size), its CSV column names, and how the summary groups its columns. The
model is passed duck-typed (``n_inputs``, ``n_outputs``, ``n_parameters``,
``input_names``, ``output_names``, ``parameters``, ``network``). The module
imports neither NumPy nor the engine when it loads (the CLI builds its help
texts from it, and ``--help`` stays fast): a quantity's sweep is looked up in
``jaccli.engine.sweeps.SWEEPS`` by its name when it runs.
"""

from dataclasses import dataclass
from typing import Callable, Optional

from jaccli.errors import JaccliError


@dataclass(frozen=True)
class Quantity:
    name: str  # the API's name: model.<name>(X), an NPZ/Zarr array's key
    shape: Callable  # shape(model, n_points) -> the result's shape
    floats_per_point: Callable  # (model) -> the widest buffer of a chunk, per point
    columns: Callable  # (model) -> CSV column names, output-major
    per_output: bool = False  # one column per output: the summary shows one table of them
    with_option: bool = False  # may be asked for with --with beside a command's own quantity
    check_name: Optional[str] = None  # its name in ``jaccli check`` (None: not checked there)

    def compute(self, network, x, out=None, work=None):
        """The engine's sweep of this quantity over the points ``x`` (the parameter
        Jacobian has none: the model computes it, through the file's parameter map)."""
        from jaccli.engine.sweeps import SWEEPS

        return SWEEPS[self.name](network, x, out=out, work=work)


def _widest(model):
    return max(model.network.widths)


def parameter_labels(model):
    """``W0[0,1]``, ``b0[3]``, ...: every parameter in parameter order."""
    import numpy as np

    def index(shape, flat):
        return ",".join(str(i) for i in np.unravel_index(flat, shape))
    return [f"{name}[{index(shape, i)}]" for name, shape in model.parameters
            for i in range(int(np.prod(shape)))]


# floats_per_point: tangents carry n rows per point, adjoints m (model.chunk_size_for).
QUANTITIES = {q.name: q for q in (
    Quantity("value", lambda mo, N: (N, mo.n_outputs), _widest,
             lambda mo: list(mo.output_names),
             per_output=True, with_option=True),
    Quantity("jacobian", lambda mo, N: (N, mo.n_outputs, mo.n_inputs),
             lambda mo: min(mo.n_inputs, mo.n_outputs) * _widest(mo),
             lambda mo: [f"d{y}/d{x}" for y in mo.output_names for x in mo.input_names],
             with_option=True, check_name="jacobian"),
    Quantity("hessdiag", lambda mo, N: (N, mo.n_outputs, mo.n_inputs),
             lambda mo: mo.n_inputs * _widest(mo),
             lambda mo: [f"d2{y}/d{x}2" for y in mo.output_names for x in mo.input_names],
             with_option=True, check_name="hessdiag"),
    Quantity("param_jacobian", lambda mo, N: (N, mo.n_outputs, mo.n_parameters),
             lambda mo: mo.n_outputs * _widest(mo),
             lambda mo: [f"d{y}/d{p}" for y in mo.output_names for p in parameter_labels(mo)],
             check_name="params"),
    Quantity("hessian", lambda mo, N: (N, mo.n_outputs, mo.n_inputs, mo.n_inputs),
             lambda mo: max(mo.n_outputs * mo.n_inputs ** 2, mo.n_inputs * _widest(mo)),
             lambda mo: [f"d2{y}/d{a}d{b}" for y in mo.output_names for a in mo.input_names
                         for b in mo.input_names]),
    Quantity("laplacian", lambda mo, N: (N, mo.n_outputs),
             lambda mo: mo.n_inputs * _widest(mo),
             lambda mo: [f"lap({y})" for y in mo.output_names],
             per_output=True, with_option=True),
)}

#: What --with accepts, and what jaccli check checks (its own names).
WITH_QUANTITIES = tuple(name for name, q in QUANTITIES.items() if q.with_option)
CHECKED = tuple(q.check_name for q in QUANTITIES.values() if q.check_name)


def quantity(name):
    """The record of ``name``; an unknown name is an error listing the known ones."""
    if name not in QUANTITIES:
        raise JaccliError(f"unknown quantity {name!r} ({', '.join(QUANTITIES)})")
    return QUANTITIES[name]


def column_names(name, model):
    """The CSV column names of quantity ``name`` for ``model``."""
    return quantity(name).columns(model)
