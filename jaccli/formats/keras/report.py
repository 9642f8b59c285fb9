"""The chain of layers reported to a DenseStack (jaccli.formats.stack): Dense
layers and their activations, activation layers, the identity layers,
Normalization as the input scaling, BatchNormalization as a map, LayerNormalization
as the layer_norm activation and its gamma and beta."""

import numpy as np

from jaccli.errors import JaccliError
from jaccli.formats.keras.layers import (
    IDENTITY_LAYERS,
    activation,
    is_last_axis,
    layer_activation,
    layer_class,
    layer_name,
    refuse,
)
from jaccli.formats.stack import DenseStack, checked_tensor

# Keras 3 backend.epsilon() default; Normalization divides by
# max(sqrt(variance), epsilon). The value is not stored in the model file.
_KERAS_EPSILON = 1e-7


def _add_batchnorm(stack, entry, arrays, fname, where):
    """BatchNormalization at inference, its tensors named '<layer>/gamma' and so on:
    keras/src/backend/*/nn.py batch_normalization computes x * inv + (beta - mean * inv)
    with inv = gamma / sqrt(variance + epsilon)."""
    config = entry.get("config") or {}
    if not is_last_axis(config.get("axis", -1)):
        refuse(fname, entry, f"normalization over axis {config.get('axis')}")
    if config.get("renorm"):
        refuse(fname, entry, "batch renormalization (renorm=True)")
    name = layer_name(entry)
    roles = {"weight": "gamma", "bias": "beta", "mean": "moving_mean", "var": "moving_variance"}
    stack.batchnorm(arrays["moving_mean"], arrays["moving_variance"],
                    float(config.get("epsilon", 1e-3)), arrays.get("gamma"), arrays.get("beta"),
                    names={field: f"{name}/{role}" for field, role in roles.items()}, where=where)


def _add_layernorm(stack, entry, weights, fname, where):
    """LayerNormalization over the last axis: keras/src/layers/normalization/
    layer_normalization.py computes (x - mean) * rsqrt(variance + epsilon) * gamma + beta
    (the biased variance; epsilon 1e-3 by default); its tensors '<layer>/gamma', '/beta'."""
    config = entry.get("config") or {}
    if not is_last_axis(config.get("axis", -1)):
        refuse(fname, entry, f"normalization over axis {config.get('axis')}")
    if config.get("rms_scaling"):
        refuse(fname, entry, "rms_scaling=True (x / sqrt(mean(x^2) + epsilon), no centring)")
    name, arrays = layer_name(entry), weights.get(entry)
    stack.layernorm(float(config.get("epsilon", 1e-3)), arrays.get("gamma"), arrays.get("beta"),
                    names={"weight": f"{name}/gamma", "bias": f"{name}/beta"}, where=where)


def _normalization_scaling(entry, arrays, fname):
    """Normalization as (offset, scale): y = (x - offset) / scale."""
    config = entry.get("config") or {}
    if config.get("invert"):
        refuse(fname, entry, "Normalization with invert=True")
    axis = config.get("axis", [-1])
    if axis not in (None, []) and not is_last_axis(axis):
        refuse(fname, entry, f"normalization over axis {axis}")
    if config.get("mean") is not None:
        where = f"{fname}: layer '{layer_name(entry)}' (Normalization)"
        mean = checked_tensor(config["mean"], f"{where} mean")
        variance = checked_tensor(config.get("variance"), f"{where} variance")
    else:
        mean, variance = arrays["mean"], arrays["variance"]
    # keras/src/layers/preprocessing/normalization.py (and tf-keras):
    # (x - mean) / maximum(sqrt(variance), backend.epsilon())
    return mean, np.maximum(np.sqrt(variance), _KERAS_EPSILON)


def _check_dense(entry, arrays, fname):
    """Refuse quantized weights and a kernel that disagrees with the layer's units."""
    config = entry.get("config") or {}
    policy = config.get("dtype")
    policy_name = ""
    if isinstance(policy, dict):
        policy_name = str((policy.get("config") or {}).get("name", ""))
        if "Quantized" in str(policy.get("class_name", "")):
            policy_name = policy_name or "quantized"
    if any(q in policy_name for q in ("int8", "int4", "float8", "quantized", "gptq")):
        refuse(fname, entry, f"quantized weights (dtype policy '{policy_name}')")
    kernel = arrays["kernel"]
    units = config.get("units")
    if kernel.ndim != 2 or (units is not None and kernel.shape[1] != units):
        raise JaccliError(
            f"{fname}: kernel of layer '{layer_name(entry)}' has shape {kernel.shape}, the "
            f"config says {units} units"
        )


def build(chain, n_inputs, weights, fname, version=None):
    """(spec, tensors) of the layer chain: each layer reported to a DenseStack in order."""
    stack = DenseStack(fname, layout="in_out", dense="Dense", inputs=n_inputs)
    for entry in chain:
        cls = layer_class(entry)
        where = f"layer '{layer_name(entry)}' ({cls})"
        if cls in IDENTITY_LAYERS:
            stack.identity()
        elif cls == "Dense":
            arrays = weights.get(entry)
            _check_dense(entry, arrays, fname)
            act, params = activation((entry.get("config") or {}).get("activation"), fname, entry,
                                     version)
            name = layer_name(entry)
            stack.dense(arrays["kernel"], arrays.get("bias"), where=where,
                        weight_name=f"{name}/kernel", bias_name=f"{name}/bias")
            stack.activation(act, params, where=where)
        elif cls == "Normalization":
            _add_normalization(stack, entry, weights, fname, where)
        elif cls == "BatchNormalization":
            _add_batchnorm(stack, entry, weights.get(entry), fname, where)
        elif cls == "PReLU":  # its alpha, one slope per unit (or one for all), a parameter
            shared = (entry.get("config") or {}).get("shared_axes")
            if shared not in (None, [], [1], [-1]):
                refuse(fname, entry, f"PReLU with shared_axes {shared}")
            slope = (f"{layer_name(entry)}/alpha", weights.get(entry)["alpha"])
            stack.activation("prelu", where=where, tensors={"slope": slope})
        elif cls == "LayerNormalization":
            _add_layernorm(stack, entry, weights, fname, where)
        else:
            act, params = layer_activation(entry, fname, version)
            stack.activation(act, params, where=where)
    return stack.build()


def _add_normalization(stack, entry, weights, fname, where):
    """Normalization as the input scaling, one value per input."""
    from_config = (entry.get("config") or {}).get("mean") is not None
    arrays = {} if from_config else weights.get(entry)
    offset, scale = _normalization_scaling(entry, arrays, fname)
    width = stack.width
    if width is None:
        width = offset.size if offset.ndim == 1 else None
    if width is None:
        refuse(fname, entry, "the number of inputs is unknown")
    offset = np.broadcast_to(offset, (width,)).astype(np.float64)
    scale = np.broadcast_to(scale, (width,)).astype(np.float64)
    stack.scale_inputs(offset, scale, where=where)
