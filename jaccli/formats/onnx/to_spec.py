"""An ONNX model's events as a jaccli spec and its tensors, through the one DenseStack."""

import numpy as np

from jaccli.formats.onnx.events import Activation, BatchNorm, Dense, Identity, LayerNorm
from jaccli.formats.onnx.graph import read_onnx
from jaccli.formats.stack import DenseStack


def onnx_spec_and_tensors(path, output_name=None):
    """(spec dict, tensors, notes) for the model in ``path``, through the one DenseStack.

    Constant affine maps before the first dense layer become the input
    scaling and those after the last layer (and its activation) the output
    scaling; one between two layers is a map of the next layer (folded when
    the model is assembled, the parameters staying the file's initializers).
    Each dense layer keeps its initializer's layout: a MatMul's (in, out)
    weight beside Gemm's (out, in) ones is listed in the shape the file holds.
    """
    graph = read_onnx(path, output_name)
    events = [e for e in graph.events if not isinstance(e, Identity)]
    layout = next(e.layout for e in events if isinstance(e, Dense))
    source = str(path) if output_name is None else f"{path}: output '{output_name}'"
    stack = DenseStack(source, layout=layout, dense="dense (Gemm/MatMul)")
    for event in events:
        if isinstance(event, Dense):
            stack.dense(event.weight, event.bias, where=event.where,
                        weight_name=event.weight_name, layout=event.layout,
                        bias_name=event.bias_name or f"{event.weight_name}:bias",
                        weight_scale=event.weight_scale, bias_scale=event.bias_scale,
                        constant=event.constant)
        elif isinstance(event, BatchNorm):
            names = {"weight": event.names["scale"], "bias": event.names["bias"],
                     "mean": event.names["mean"], "var": event.names["var"]}
            stack.batchnorm(event.mean, event.var, event.eps, event.scale, event.bias,
                            names=names, where=event.where)
        elif isinstance(event, Activation):
            stack.activation(event.name, event.params, where=event.where, tensors=event.tensors)
        elif isinstance(event, LayerNorm):
            stack.layernorm(event.eps, event.weight, event.bias, where=event.where,
                            names={"weight": event.weight_name, "bias": event.bias_name},
                            features=event.features)
        else:
            stack.affine(_scalar_or_vector(event.scale), _scalar_or_vector(event.offset),
                         where=event.where)
    spec, tensors = stack.build()
    names = graph.column_names(spec["outputs"]) if graph.column_names else None
    if names is not None:  # a classifier's columns by class label, or the chosen output's name
        spec["outputs"] = list(names)
    return spec, tensors, list(graph.notes)


def _scalar_or_vector(array):
    """A size-1 array as a 0-d one: it applies to every feature, whatever their number."""
    array = np.asarray(array, dtype=np.float64)
    return array.reshape(()) if array.size == 1 else array.reshape(-1)
