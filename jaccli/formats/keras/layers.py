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
    "elu": ("elu", {"alpha": 1.0}),
    "selu": ("selu", None),
    "softplus": ("softplus", None),
    "softsign": ("softsign", None),
    "swish": ("silu", None),
    "silu": ("silu", None),
    "gelu": ("gelu", None),
    "exponential": ("exp", None),
    "softmax": ("softmax", None),
    "softmax_v2": ("softmax", None),  # tf.nn.softmax's name in TF 2.x
    "leaky_relu": ("leaky_relu", {"alpha": 0.2}),
    "log_softmax": ("log_softmax", None),  # keras.activations.log_softmax (Keras 3)
    # Keras 3 (keras/src/activations/activations.py): relu6 = min(max(x, 0), 6),
    # hard_silu (alias hard_swish) = x relu6(x + 3) / 6, mish = x tanh(softplus x),
    # celu with alpha 1, log_sigmoid, hard_tanh = clip to [-1, 1], tanh_shrink = x - tanh x
    "relu6": ("relu6", None),
    "hard_silu": ("hardswish", None),
    "hard_swish": ("hardswish", None),
    "mish": ("mish", None),
    "celu": ("celu", {"alpha": 1.0}),
    "log_sigmoid": ("log_sigmoid", None),
    "hard_tanh": ("hardtanh", None),
    "tanh_shrink": ("tanhshrink", None),
}
# Names that mean different functions in different Keras versions, by the major
# version the file records (keras_version): hard_sigmoid is 0.2 x + 0.5 clipped to
# [0, 1] in Keras 2 (tf-keras) but relu6(x + 3) / 6 in Keras 3.
_BY_VERSION = {"hard_sigmoid": {"2": ("hardsigmoid", {"alpha": 0.2, "beta": 0.5}),
                                "3": ("hardsigmoid", {"alpha": 1.0 / 6.0, "beta": 0.5})}}

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
    "PReLU",
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
    if cls == "PReLU":
        return ["alpha"]
    return []


def activation(identifier, fname, entry, version=None):
    """Our (name, parameters or None) for a serialized Keras activation; ``version``: the
    keras_version the file records (None: not recorded)."""
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
    if identifier in _BY_VERSION:
        major = str(version or "").split(".")[0]
        if major not in _BY_VERSION[identifier]:
            refuse(fname, entry, f"activation '{identifier}' differs between Keras 2 and 3, "
                                 f"and the file records no Keras version of either")
        return _BY_VERSION[identifier][major]
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


def layer_activation(entry, fname, version=None):
    """(name, parameters) of an activation-only layer (Activation, ReLU, LeakyReLU, ELU, Softmax)."""
    cls = layer_class(entry)
    config = entry.get("config") or {}
    if cls == "Activation":
        return activation(config.get("activation"), fname, entry, version)
    if cls == "ReLU":
        slope = config.get("negative_slope", 0.0) or 0.0
        top = config.get("max_value")
        if (config.get("threshold") or 0.0) != 0 or (top is not None and (slope != 0 or top <= 0)):
            refuse(fname, entry, "ReLU with a threshold, a max_value <= 0, or max_value with a negative slope")
        if top is not None:  # min(max(x, 0), max_value): MobileNet's ReLU(6.0)
            return ("relu6", None) if top == 6 else ("hardtanh", {"min_val": 0.0, "max_val": float(top)})
        return ("relu", None) if slope == 0 else ("leaky_relu", {"alpha": float(slope)})
    if cls == "LeakyReLU":
        # Keras 3 saves negative_slope, Keras 2 alpha (both default 0.3).
        slope = config.get("negative_slope", config.get("alpha"))
        if slope is None:
            refuse(fname, entry, "LeakyReLU without a saved slope")
        return "leaky_relu", {"alpha": float(slope)}
    if cls == "ELU":
        # Keras 3's ELU layer does not save alpha; Keras reloads it with the
        # class default 1.0, and so do we.
        return "elu", {"alpha": float(config.get("alpha", 1.0))}
    # Softmax: model_chain refused every other class.
    if not is_last_axis(config.get("axis", -1)):
        refuse(fname, entry, f"softmax over axis {config.get('axis')}")
    return "softmax", None
