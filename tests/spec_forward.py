"""A spec dict run as written, map by map and layer by layer, with nothing folded:
the independent forward pass that tests hold jaccli's folded network against."""

import numpy as np


def apply_map(a, item, tensors):
    """One ``before``/``after``/``output_maps`` entry: {scale, offset} or {batchnorm: {...}}."""
    if "batchnorm" in item:
        norm = item["batchnorm"]
        a = (a - tensors[norm["mean"]]) / np.sqrt(tensors[norm["var"]] + norm.get("eps", 1e-5))
        if norm.get("weight"):
            a = a * tensors[norm["weight"]]
        return a + tensors[norm["bias"]] if norm.get("bias") else a
    return a * np.asarray(item.get("scale", 1.0)) + np.asarray(item.get("offset", 0.0))


def run_spec(spec, tensors, x, activate):
    """What ``spec`` computes at the points ``x``; ``activate(z, name, alpha)`` applies one activation."""
    a = np.asarray(x, dtype=np.float64)
    if "input_scaling" in spec:
        scaling = spec["input_scaling"]
        a = (a - np.asarray(scaling["offset"])) / np.asarray(scaling["scale"])
    for layer in spec["layers"]:
        for item in layer.get("before", []):
            a = apply_map(a, item, tensors)
        weight = tensors[layer["weight"]]
        layout = layer.get("layout", spec.get("layout", "in_out"))
        z = a @ (weight.T if layout == "out_in" else weight) * layer.get("weight_scale", 1.0)
        if layer.get("bias") is not None:
            z = z + np.ravel(tensors[layer["bias"]]) * layer.get("bias_scale", 1.0)
        for item in layer.get("after", []):
            z = apply_map(z, item, tensors)
        a = activate(z, layer["activation"], layer.get("alpha"))
    for item in spec.get("output_maps", []):
        a = apply_map(a, item, tensors)
    if "output_scaling" in spec:
        scaling = spec["output_scaling"]
        a = a * np.asarray(scaling["scale"]) + np.asarray(scaling["offset"])
    return a
