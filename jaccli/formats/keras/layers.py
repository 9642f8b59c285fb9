"""The Keras layer vocabulary: which layer classes jaccli reads, which
activations it knows, and the variables each layer saves."""

from jaccli.errors import JaccliError
from jaccli.messages import clip


# Keras activation names (as serialized in a layer config) -> ours.
# `gelu`: keras.activations.gelu(x, approximate=False) in Keras 3
# (keras/src/activations/activations.py) and tf-keras (tf_keras/activations.py),
# so a Dense(activation="gelu") computes the exact erf form.
# `leaky_relu` as a string: Keras 3 keras.activations.leaky_relu has
# negative_slope=0.2; tf-keras resolves it to tf.nn.leaky_relu, alpha=0.2.
_ACTIVATIONS = {
    "linear": ("linear", None),
    "sigmoid": ("sigmoid", None),
    "tanh": ("tanh", None),
    "relu": ("relu", None),
    "elu": ("elu", 1.0),
    "selu": ("selu", None),
    "softplus": ("softplus", None),
    "softsign": ("softsign", None),
    "swish": ("silu", None),
    "silu": ("silu", None),
    "gelu": ("gelu", None),
    "exponential": ("exp", None),
    "softmax": ("softmax", None),
    "softmax_v2": ("softmax", None),  # tf.nn.softmax's name in TF 2.x
    "log_softmax": ("log_softmax", None),  # keras.activations.log_softmax (Keras 3)
    "leaky_relu": ("leaky_relu", 0.2),
}

# Modules under which Keras serializes its own built-in activation functions.
_BUILTIN_ACTIVATION_MODULES = (
    "keras.activations",
    "keras.src.activations",
    "keras.src.activations.activations",
    "tf_keras.activations",
    "builtins",
)

# Layers that compute the identity at inference time (no weights used).
IDENTITY_LAYERS = (
    "Dropout",
    "AlphaDropout",
    "GaussianDropout",
    "GaussianNoise",
    "ActivityRegularization",
    "Identity",
    "Flatten",  # of a (batch, n) input: the input rank is checked separately
)

SUPPORTED_LAYERS = (
    "Dense",
    "Activation",
    "ReLU",
    "LeakyReLU",
    "ELU",
    "Softmax",
    "Normalization",
    "BatchNormalization",
    "LayerNormalization",
) + IDENTITY_LAYERS


def layer_name(entry):
    config = entry.get("config") if isinstance(entry.get("config"), dict) else {}
    return str(entry.get("name") or config.get("name") or "?")


def layer_class(entry):
    return str(entry.get("class_name", "?"))


def refuse(fname, entry, why):
    raise JaccliError(
        f"{fname}: layer '{layer_name(entry)}' ({layer_class(entry)}) is not "
        f"supported: {why}"
    )


def weight_roles(entry):
    """The variables a layer saves, in the order it creates them (Keras 3
    ``.keras`` files address them by that index)."""
    cls = layer_class(entry)
    config = entry.get("config") or {}
    if cls == "Dense":
        return ["kernel", "bias"] if config.get("use_bias", True) else ["kernel"]
    if cls == "BatchNormalization":
        roles = []
        if config.get("scale", True):
            roles.append("gamma")
        if config.get("center", True):
            roles.append("beta")
        return roles + ["moving_mean", "moving_variance"]
    if cls == "LayerNormalization":  # keras/src/layers/normalization/layer_normalization.py build()
        return [role for role, flag in (("gamma", "scale"), ("beta", "center")) if config.get(flag, True)]
    if cls == "Normalization":
        return ["mean", "variance", "count"]
    return []


def activation(identifier, fname, entry):
    """Our (name, alpha) for a serialized Keras activation."""
    if identifier is None:
        return "linear", None
    if isinstance(identifier, dict):
        module = str(identifier.get("module") or "")
        inner = identifier.get("config")
        if (
            identifier.get("class_name") == "function"
            and isinstance(inner, str)
            and module in _BUILTIN_ACTIVATION_MODULES
        ):
            identifier = inner
        else:
            refuse(fname, entry, f"a custom activation ({clip(identifier)})")
    if not isinstance(identifier, str) or identifier not in _ACTIVATIONS:
        refuse(
            fname,
            entry,
            f"activation '{identifier}' has no exact jaccli equivalent",
        )
    return _ACTIVATIONS[identifier]


def is_last_axis(axis):
    if isinstance(axis, list) and len(axis) == 1:
        axis = axis[0]
    return axis in (-1, 1)


def layer_activation(entry, fname):
    """(name, alpha) of an activation-only layer (Activation, ReLU, LeakyReLU, ELU, Softmax)."""
    cls = layer_class(entry)
    config = entry.get("config") or {}
    if cls == "Activation":
        return activation(config.get("activation"), fname, entry)
    if cls == "ReLU":
        slope = config.get("negative_slope", 0.0) or 0.0
        if config.get("max_value") is not None or (config.get("threshold") or 0.0) != 0:
            refuse(fname, entry, "ReLU with max_value or threshold")
        return ("relu", None) if slope == 0 else ("leaky_relu", float(slope))
    if cls == "LeakyReLU":
        # Keras 3 saves negative_slope, Keras 2 alpha (both default 0.3).
        slope = config.get("negative_slope", config.get("alpha"))
        if slope is None:
            refuse(fname, entry, "LeakyReLU without a saved slope")
        return "leaky_relu", float(slope)
    if cls == "ELU":
        # Keras 3's ELU layer does not save alpha; Keras reloads it with the
        # class default 1.0, and so do we.
        return "elu", float(config.get("alpha", 1.0))
    # Softmax: model_chain refused every other class.
    if not is_last_axis(config.get("axis", -1)):
        refuse(fname, entry, f"softmax over axis {config.get('axis')}")
    return "softmax", None
