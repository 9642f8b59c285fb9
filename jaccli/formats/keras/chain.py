"""The model configuration, from Sequential or a single-chain functional model
to a list of layers from input to output (the InputLayer left out)."""

from jaccli.errors import JaccliError, param
from jaccli.formats.keras.layers import SUPPORTED_LAYERS, layer_class, layer_name, refuse

def all_layers(model_config):
    """All layer entries of the model's config, in the model's layer order."""
    config = model_config.get("config")
    layers = config.get("layers") if isinstance(config, dict) else config
    if not isinstance(layers, list):
        return []
    return [e for e in layers if isinstance(e, dict)]


def model_chain(model_config, fname, output_name=None):
    """(layers from input to output without the InputLayer, input width or None);
    ``output_name``: the output layer of a functional model with several."""
    cls = layer_class(model_config)
    layers = all_layers(model_config)
    if cls == "Sequential":
        chain = layers
        if output_name is not None and (not layers or layer_name(layers[-1]) != output_name):
            raise JaccliError(f"{fname}: a Sequential model has one output; "
                              f"check {param('output_name')}")
    elif cls in ("Functional", "Model"):
        chain = _functional_chain(model_config.get("config") or {}, layers, fname, output_name)
    else:
        raise JaccliError(
            f"{fname}: model class '{cls}' is not supported: jaccli reads "
            "Sequential and functional Keras models only"
        )
    if not chain:
        raise JaccliError(f"{fname}: the model configuration lists no layers")

    input_shape = None
    body = []
    for i, entry in enumerate(chain):
        config = entry.get("config") if isinstance(entry.get("config"), dict) else {}
        if layer_class(entry) == "InputLayer":
            if i != 0:
                refuse(fname, entry, "an InputLayer inside the model")
            input_shape = config.get("batch_shape") or config.get("batch_input_shape")
            continue
        if input_shape is None and i == 0:
            # Keras 2 Sequential without an InputLayer keeps the shape on layer 0.
            build = entry.get("build_config") or {}
            input_shape = config.get("batch_input_shape") or build.get("input_shape")
        body.append(entry)
    # Refuse unknown layers before anything else, so the message names them.
    for entry in body:
        if layer_class(entry) not in SUPPORTED_LAYERS:
            why = "jaccli reads Dense stacks only"
            if layer_class(entry) == "Lambda":
                why += " (Lambda code is never run)"
            refuse(fname, entry, why)
    n_inputs = None
    if isinstance(input_shape, list):
        if len(input_shape) != 2:
            n_inputs = _flattened_width(input_shape, body, fname)
        elif isinstance(input_shape[1], int):
            n_inputs = input_shape[1]
    return body, n_inputs


# Layers that are the identity at inference and keep the input's shape.
_SHAPELESS = ("Dropout", "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization")


def _flattened_width(input_shape, body, fname):
    """An input (batch, d1, d2, ...) that a Flatten first makes (batch, d1 d2 ...): its
    width, the points' columns in C order (Keras flattens so); refused otherwise."""
    shape = tuple(input_shape)
    dims = shape[1:]
    first = next((layer_class(e) for e in body if layer_class(e) not in _SHAPELESS), None)
    if len(dims) < 2 or first != "Flatten" or not all(isinstance(d, int) and d > 0 for d in dims):
        raise JaccliError(
            f"{fname}: the model's input has shape {shape}: jaccli reads models of a vector "
            "input (batch, n), or of an input of known shape that a Flatten layer flattens first"
        )
    flatten = next(e for e in body if layer_class(e) == "Flatten")
    if (flatten.get("config") or {}).get("data_format") == "channels_first":
        refuse(fname, flatten, "data_format='channels_first' reorders the columns before "
                               "flattening; jaccli reads channels_last (C order)")
    width = 1
    for d in dims:
        width *= d
    return width


def _tensor_sources(obj, out):
    """Append the names of the layers whose output tensors `obj` refers to.

    Keras 3 nodes hold ``{"class_name": "__keras_tensor__", "config":
    {"keras_history": [layer, node, tensor]}}``; Keras 2 nodes hold
    ``[layer, node, tensor, kwargs]`` lists.
    """
    if isinstance(obj, dict):
        if obj.get("class_name") == "__keras_tensor__":
            history = (obj.get("config") or {}).get("keras_history") or ["?"]
            out.append(str(history[0]))
            return
        for value in obj.values():
            _tensor_sources(value, out)
    elif isinstance(obj, list):
        if (
            len(obj) >= 3
            and isinstance(obj[0], str)
            and isinstance(obj[1], int)
            and isinstance(obj[2], int)
        ):
            out.append(obj[0])
            for extra in obj[3:]:
                _tensor_sources(extra, out)
            return
        for value in obj:
            _tensor_sources(value, out)


def _endpoints(spec):
    """Layer names of a functional model's input_layers / output_layers."""
    if isinstance(spec, dict):
        spec = list(spec.values())
    if (
        isinstance(spec, list)
        and len(spec) >= 3
        and isinstance(spec[0], str)
        and isinstance(spec[1], int)
    ):
        return [spec[0]]  # a single [name, node, tensor] (Keras 3)
    names = []
    _tensor_sources(spec, names)
    return names


def _chosen(outputs, output_name, fname):
    """The output layers, or the one named ``output_name``."""
    if output_name is None:
        return outputs
    if output_name not in outputs:
        names = ", ".join(f"'{name}'" for name in outputs)
        raise JaccliError(f"{fname}: '{output_name}' is not an output layer of the model "
                          f"(its outputs: {names}): check {param('output_name')}")
    return [output_name]


def _functional_chain(config, layers, fname, output_name=None):
    inputs = _endpoints(config.get("input_layers"))
    outputs = _chosen(_endpoints(config.get("output_layers")), output_name, fname)
    if len(inputs) != 1 or len(outputs) != 1:
        names = ", ".join(f"'{name}'" for name in outputs)
        pick = f": pick one with {param('output_name')}" if len(outputs) > 1 else ""
        raise JaccliError(
            f"{fname}: the model has {len(inputs)} inputs and {len(outputs)} "
            f"outputs ({names}): jaccli reads single-input, single-output chains only{pick}"
        )
    by_name = {layer_name(e): e for e in layers}
    chain = []
    name = outputs[0]
    while True:
        entry = by_name.get(name)
        if entry is None:
            raise JaccliError(
                f"{fname}: the model configuration refers to an unknown layer '{name}'"
            )
        if any(entry is seen for seen in chain):
            refuse(fname, entry, "a cycle in the layer graph")
        chain.append(entry)
        nodes = entry.get("inbound_nodes") or []
        if layer_class(entry) == "InputLayer" or (name == inputs[0] and not nodes):
            break
        if len(nodes) != 1:
            refuse(
                fname,
                entry,
                f"a layer used {len(nodes)} times (shared layers are not supported)",
            )
        sources = []
        _tensor_sources(nodes[0], sources)
        if len(sources) != 1:
            raise JaccliError(
                f"{fname}: layer '{name}' ({layer_class(entry)}) is not supported: "
                f"it takes {len(sources)} inputs, jaccli reads single-chain models only"
            )
        name = sources[0]
    chain.reverse()
    on_chain = {id(e) for e in chain}
    for entry in layers if output_name is None else ():  # the other outputs' layers: unused
        if id(entry) not in on_chain:
            raise JaccliError(
                f"{fname}: layer '{layer_name(entry)}' ({layer_class(entry)}) is "
                "not supported: it is off the single input-to-output chain "
                "(branches are not supported)"
            )
    return chain
