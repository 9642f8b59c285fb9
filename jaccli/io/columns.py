"""CSV column names: one per array entry, output-major (all of y1's columns, then y2's)."""

import numpy as np


def _index(shape, flat):
    return ",".join(str(i) for i in np.unravel_index(flat, shape))


def parameter_labels(model):
    """``W0[0,1]``, ``b0[3]``, ...: every parameter in parameter order."""
    return [f"{name}[{_index(shape, i)}]" for name, shape in model.parameters
            for i in range(int(np.prod(shape)))]


def column_names(quantity, model):
    inputs, outputs = model.input_names, model.output_names
    if quantity == "value":
        return list(outputs)
    if quantity == "laplacian":
        return [f"lap({y})" for y in outputs]
    if quantity == "jacobian":
        return [f"d{y}/d{x}" for y in outputs for x in inputs]
    if quantity == "hessdiag":
        return [f"d2{y}/d{x}2" for y in outputs for x in inputs]
    if quantity == "hessian":
        return [f"d2{y}/d{a}d{b}" for y in outputs for a in inputs for b in inputs]
    if quantity == "param_jacobian":
        return [f"d{y}/d{p}" for y in outputs for p in parameter_labels(model)]
    raise ValueError(quantity)
