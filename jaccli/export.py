"""Write trained scikit-learn and PyTorch MLPs as jaccli model files.

    from jaccli.export import from_sklearn, from_torch
    from_sklearn(pipeline, "model.npz")       # MLPRegressor / MLPClassifier
    from_torch(net, "model.h5")               # torch.nn.Sequential (or .safetensors)

Each call writes one weight file that carries its own spec (the NPZ entry,
HDF5 root attribute or safetensors ``__metadata__`` entry ``jaccli_spec``), so ``jaccli info model.npz`` works with
nothing else. The layers are reported to jaccli.formats.stack.DenseStack, as a
model file's reader does. Tensors are float64 and named after their
source: ``coefs_0``/``intercepts_0`` for scikit-learn (its ``coefs_[0]`` and
``intercepts_[0]``, layout in_out) and the module path for PyTorch
(``0.weight``/``0.bias``, layout out_in, the names its ``state_dict`` uses).

scikit-learn and torch are imported only inside the function that needs them,
so ``import jaccli.export`` works with neither installed.
"""

from __future__ import annotations

import os

import numpy as np
import yaml

from jaccli.errors import JaccliError
from jaccli.formats.stack import DenseStack, checked_tensor
from jaccli.formats.safetensors import write_safetensors
from jaccli.formats.discovery import keras_json_paths, sibling_spec_paths
from jaccli.formats.file_kinds import suffix
from jaccli.io.writers import AtomicFile, written_whole
from jaccli.limits import folder_as_written

__all__ = ["from_sklearn", "from_torch"]

# A scaling (offset, scale): x -> (x - offset) / scale on the inputs; on the
# outputs its inverse y -> y * scale + offset, so a fitted target scaler's
# (offset, scale) describes its inverse transform too.


# --------------------------------------------------------------------------
# The file writer


def _check_model_path(path):
    """Refuse a path that cannot be written, or from which jaccli would not read the embedded spec."""
    extension = suffix(path)
    if extension not in (".npz", ".h5", ".hdf5", ".safetensors"):
        raise JaccliError(f"{path}: the model file must end in .npz, .h5, .hdf5 or .safetensors")
    directory = folder_as_written(path)
    if not os.path.isdir(directory):
        raise JaccliError(f"{path}: directory {directory} does not exist")
    # A spec file beside the model wins over the embedded one, so it would
    # silently replace ours.
    sidecars = sibling_spec_paths(path)
    if extension in (".h5", ".hdf5"):  # a Keras model JSON beside an HDF5 file wins too
        from jaccli.formats.keras import keras_json_config

        sidecars += [p for p in keras_json_paths(path)[:1] if keras_json_config(p) is not None]
    for sidecar in sidecars:
        if os.path.exists(sidecar):
            raise JaccliError(
                f"{sidecar} exists and would be used instead of the spec embedded in {path};"
                " remove it or export to another name"
            )


def _write_model(path, built):
    """Write a DenseStack's (spec, tensors) to ``path`` whole, or leave it untouched."""
    path = os.fspath(path)
    _check_model_path(path)
    spec, tensors = built
    spec_text = yaml.safe_dump(spec, sort_keys=False)
    with written_whole(AtomicFile(path)) as target:
        if suffix(path) == ".npz":
            # Plain float arrays and a 0-d unicode array: loadable with allow_pickle=False.
            with open(target.temp_path, "wb") as stream:
                np.savez(stream, **tensors, jaccli_spec=np.array(spec_text))
        elif suffix(path) == ".safetensors":
            with open(target.temp_path, "wb") as stream:
                write_safetensors(stream, tensors, {"jaccli_spec": spec_text})
        else:
            import h5py

            with h5py.File(target.temp_path, "w") as h5:
                for name, array in tensors.items():
                    h5.create_dataset(name, data=array, dtype=np.float64)
                h5.attrs["jaccli_spec"] = spec_text


# --------------------------------------------------------------------------
# scikit-learn


_SKLEARN_HIDDEN = {"identity": "linear", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}
_SKLEARN_OUTPUT = {"identity": "linear", "logistic": "sigmoid", "softmax": "softmax", "exp": "exp"}


def _sklearn_scaling(transformer, what: str):
    """The fitted scaler's transform as (offset, scale): (x - offset) / scale; None if it is the identity."""
    offset, scale = _sklearn_scaler_scaling(transformer, what)
    if np.all(offset == 0) and np.all(scale == 1):
        return None  # e.g. StandardScaler(with_mean=False, with_std=False)
    return offset, scale


def _sklearn_scaler_scaling(transformer, what: str):
    from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, RobustScaler, StandardScaler

    name = type(transformer).__name__
    if not hasattr(transformer, "n_features_in_"):
        raise JaccliError(f"{what}: {name} is not fitted")
    if isinstance(transformer, StandardScaler):
        # mean_ is computed even with with_mean=False, but transform does not use it.
        n = transformer.n_features_in_
        offset = transformer.mean_ if transformer.with_mean else np.zeros(n)
        scale = transformer.scale_ if transformer.with_std else np.ones(n)
    elif isinstance(transformer, MinMaxScaler):
        if transformer.clip:
            raise JaccliError(f"{what}: MinMaxScaler(clip=True) is not an affine map; refit with clip=False")
        # transform is x * scale_ + min_  ==  (x - (-min_ / scale_)) / (1 / scale_)
        offset = -transformer.min_ / transformer.scale_
        scale = 1.0 / transformer.scale_
    elif isinstance(transformer, RobustScaler):
        n = transformer.n_features_in_
        offset = transformer.center_ if transformer.with_centering else np.zeros(n)
        scale = transformer.scale_ if transformer.with_scaling else np.ones(n)
    elif isinstance(transformer, MaxAbsScaler):
        offset = np.zeros(transformer.n_features_in_)
        scale = transformer.scale_
    else:
        raise JaccliError(
            f"{what}: {name} is not supported; use StandardScaler, MinMaxScaler, RobustScaler or MaxAbsScaler"
        )
    return checked_tensor(offset, f"{what}: {name} offset"), checked_tensor(scale, f"{what}: {name} scale")


def _sklearn_target_scaling(regressor, what: str):
    """A TransformedTargetRegressor's transformer as (offset, scale); its inverse is y * scale + offset."""
    from sklearn.preprocessing import FunctionTransformer

    transformer = regressor.transformer_
    if isinstance(transformer, FunctionTransformer):
        if transformer.func is None and transformer.inverse_func is None:
            return None  # the default: no target transformation at all
        raise JaccliError(f"{what}: a target func/inverse_func is arbitrary code; only scaler transformers are supported")
    return _sklearn_scaling(transformer, f"{what} transformer")


def _unwrap_sklearn(estimator, what: str):
    """(input scalings, fitted MLP, output scalings) behind Pipelines and target transforms.

    Each list is in the order the data goes through it; None entries are identities.
    """
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import Pipeline

    if isinstance(estimator, Pipeline):
        steps = [_sklearn_scaling(step, f"{what} step {step_name!r}")
                 for step_name, step in estimator.steps[:-1] if step is not None and step != "passthrough"]
        last_name, last = estimator.steps[-1]
        inner_in, mlp, outputs = _unwrap_sklearn(last, f"{what} step {last_name!r}")
        return steps + inner_in, mlp, outputs
    if isinstance(estimator, TransformedTargetRegressor):
        if not hasattr(estimator, "regressor_"):
            raise JaccliError(f"{what}: TransformedTargetRegressor is not fitted")
        inputs, mlp, inner_out = _unwrap_sklearn(estimator.regressor_, f"{what} regressor")
        # The inner regressor's output goes through this transformer's inverse last.
        return inputs, mlp, inner_out + [_sklearn_target_scaling(estimator, what)]
    if isinstance(estimator, (MLPRegressor, MLPClassifier)):
        if not hasattr(estimator, "coefs_"):
            raise JaccliError(f"{what}: {type(estimator).__name__} is not fitted")
        return [], estimator, []
    raise JaccliError(
        f"{what}: {type(estimator).__name__} is not supported; expected MLPRegressor, MLPClassifier,"
        " or a Pipeline / TransformedTargetRegressor around one"
    )


def from_sklearn(estimator, path, scaler=None, input_names=None, output_names=None) -> None:
    """Write a fitted scikit-learn MLP as a jaccli model file with an embedded spec.

    estimator: a fitted ``MLPRegressor`` or ``MLPClassifier``, or a ``Pipeline``
        of scalers ending in one, or a ``TransformedTargetRegressor`` (scaler
        transformer) around either. The outputs are what ``predict`` returns for
        a regressor and what ``predict_proba`` returns for a classifier: one
        column per class, a binary classifier's two (1 - p and p, the first a
        constant layer of the file, not a parameter), a multilabel classifier's
        one per label.
    path: ``.npz``, ``.h5``, ``.hdf5`` or ``.safetensors``; tensors ``coefs_i`` and ``intercepts_i``.
    scaler: a fitted ``StandardScaler``/``MinMaxScaler``/``RobustScaler``/
        ``MaxAbsScaler`` applied to the raw inputs before ``estimator``; it
        becomes the input scaling (composed with any scalers in a Pipeline).
    input_names: defaults to ``feature_names_in_`` when the estimator was fitted
        on a DataFrame, else the count (x1..xn).
    output_names: defaults to a classifier's class labels (``classes_``), else the
        count (y1..ym).
    """
    owner = f"from_sklearn({type(estimator).__name__})"
    inputs, mlp, outputs = _unwrap_sklearn(estimator, owner)
    if scaler is not None:
        inputs = [_sklearn_scaling(scaler, f"{owner} scaler")] + inputs
    if mlp.activation not in _SKLEARN_HIDDEN or mlp.out_activation_ not in _SKLEARN_OUTPUT:
        raise JaccliError(f"{owner}: activation {mlp.activation!r} / {mlp.out_activation_!r} is not supported")

    stack = DenseStack(owner, layout="in_out")
    for scaling in filter(None, inputs):
        stack.scale_inputs(*scaling)
    last = len(mlp.coefs_) - 1
    for i, (coef, intercept) in enumerate(zip(mlp.coefs_, mlp.intercepts_)):
        where = f"coefs_[{i}]/intercepts_[{i}]"
        stack.dense(coef, intercept, where=where, weight_name=f"coefs_{i}", bias_name=f"intercepts_{i}")
        activation = _SKLEARN_OUTPUT[mlp.out_activation_] if i == last else _SKLEARN_HIDDEN[mlp.activation]
        stack.activation(activation, where=where)
    if _is_binary(mlp):  # predict_proba's [1 - p, p]: a constant layer after the logistic unit
        stack.dense(np.array([[-1.0, 1.0]]), np.array([1.0, 0.0]), where="predict_proba",
                    weight_name="complement_weight", bias_name="complement_bias", constant=True)
    for scaling in filter(None, outputs):
        stack.scale_outputs(*scaling)
    if output_names is None and mlp.out_activation_ in ("softmax", "logistic") and (
            _is_binary(mlp) or mlp.out_activation_ == "softmax"):
        output_names = [str(label) for label in mlp.classes_]
        output_names = output_names if len(set(output_names)) == len(output_names) else None

    if input_names is None:
        names = getattr(estimator, "feature_names_in_", None)
        if names is None and scaler is not None:
            names = getattr(scaler, "feature_names_in_", None)
        input_names = None if names is None else [str(name) for name in names]
    _write_model(path, stack.build(input_names, output_names))


def _is_binary(mlp):
    """A two-class classifier: one logistic unit, P(classes_[1])."""
    return mlp.out_activation_ == "logistic" and getattr(mlp, "n_outputs_", 0) == 1 and \
        len(getattr(mlp, "classes_", ())) == 2


# --------------------------------------------------------------------------
# PyTorch


def _torch_scaling(value, what: str):
    """input_scaling / output_scaling argument as (offset, scale): a {offset, scale} mapping or a fitted scaler."""
    if value is None:
        return None
    if isinstance(value, dict):
        if set(value) != {"offset", "scale"}:
            raise JaccliError(f"from_torch: {what} must have exactly the keys offset and scale, got {sorted(value)}")
        return value["offset"], value["scale"]
    if type(value).__module__.startswith("sklearn."):
        return _sklearn_scaling(value, f"from_torch {what}")
    raise JaccliError(
        f"from_torch: {what} must be a dict(offset=..., scale=...) or a fitted scikit-learn scaler,"
        f" not {type(value).__name__}"
    )


def _torch_modules(module, prefix=""):
    """(dotted name, module) for every leaf of nested Sequentials, in the order they run.

    The container's own list, not ``named_children()``, which yields a module
    object once however often the Sequential runs it (an activation or a Linear
    used twice must be exported twice).
    """
    import torch.nn as nn

    for name, child in module._modules.items():
        if child is None:
            continue
        full_name = prefix + name
        plain_sequential = isinstance(child, nn.Sequential) and type(child).forward is nn.Sequential.forward
        if plain_sequential and not (child._forward_hooks or child._forward_pre_hooks):
            yield from _torch_modules(child, full_name + ".")
        else:
            yield full_name, child


def _torch_kind(module):
    """How a module maps onto a dense stack: ("linear"|"skip"|"batchnorm"|"activation", name,
    params), params the activation's numbers (``None``: its defaults).

    Exact class checks on ``forward``: a subclass that overrides forward computes
    something else, and is refused rather than exported by its parent's name.
    """
    import torch.nn as nn

    def plain(cls):
        return isinstance(module, cls) and type(module).forward is cls.forward

    if plain(nn.Linear):
        return ("linear", None, None)
    if plain(nn.Identity) or plain(nn.Dropout) or plain(nn.AlphaDropout):
        return ("skip", None, None)  # identities at inference
    if plain(nn.Flatten):
        if (module.start_dim, module.end_dim) != (1, -1):
            return ("unsupported", "only Flatten() with start_dim=1, end_dim=-1", None)
        return ("skip", None, None)  # identity on the (N, n) input a MLP takes
    if plain(nn.LayerNorm):
        if len(module.normalized_shape) != 1:
            return ("unsupported", "only LayerNorm over the last dimension, normalized_shape=(d,)", None)
        return ("layernorm", None, None)
    if plain(nn.BatchNorm1d):
        if not module.track_running_stats or module.running_mean is None:
            return ("unsupported", "BatchNorm1d needs running statistics, track_running_stats=True", None)
        return ("batchnorm", None, None)
    if plain(nn.PReLU):
        return ("prelu", None, None)
    simple = {nn.Tanh: "tanh", nn.Sigmoid: "sigmoid", nn.ReLU: "relu", nn.SELU: "selu",
              nn.Softsign: "softsign", nn.SiLU: "silu", nn.ReLU6: "relu6",
              nn.Hardsigmoid: "hardsigmoid", nn.Hardswish: "hardswish", nn.Mish: "mish",
              nn.LogSigmoid: "log_sigmoid", nn.Tanhshrink: "tanhshrink"}
    for cls, name in simple.items():
        if plain(cls):
            return ("activation", name, None)
    with_params = {nn.LeakyReLU: ("leaky_relu", {"alpha": "negative_slope"}),
                   nn.ELU: ("elu", {"alpha": "alpha"}), nn.CELU: ("celu", {"alpha": "alpha"}),
                   nn.Hardtanh: ("hardtanh", {"min_val": "min_val", "max_val": "max_val"}),
                   nn.Softplus: ("softplus", {"beta": "beta", "threshold": "threshold"})}
    for cls, (name, fields) in with_params.items():
        if plain(cls):  # (ReLU6 is a Hardtanh with its own forward: matched above)
            return ("activation", name, {ours: float(getattr(module, theirs))
                                         for ours, theirs in fields.items()})
    if plain(nn.GELU):
        gelu = {"none": "gelu", "tanh": "gelu_tanh"}.get(module.approximate)
        return ("activation", gelu, None) if gelu else ("unsupported", f"approximate={module.approximate!r}", None)
    for cls, name in ((nn.Softmax, "softmax"), (nn.LogSoftmax, "log_softmax")):
        if plain(cls):
            if module.dim not in (-1, 1):
                return ("unsupported", f"dim={module.dim}; only dim=-1 or 1", None)
            return ("activation", name, None)
    return ("unsupported", None, None)


def _torch_tensor(tensor, what: str) -> np.ndarray:
    import torch

    if tensor.is_complex():
        raise JaccliError(f"{what} is complex; only real tensors can be exported")
    return checked_tensor(tensor.detach().to(device="cpu", dtype=torch.float64).numpy(), what)


def from_torch(module, path, input_names=None, output_names=None, input_scaling=None, output_scaling=None) -> None:
    """Write a ``torch.nn.Sequential`` MLP as a jaccli model file with an embedded spec.

    Supported modules: ``Linear`` (with or without bias) and, each right after
    a Linear, one of Identity, Tanh, Sigmoid, ReLU, LeakyReLU, PReLU (its
    weight a parameter), ELU, CELU, SELU, Softplus (beta and threshold as
    torch computes them), Softsign, SiLU, Mish, GELU (both approximations),
    Hardtanh, ReLU6, Hardsigmoid, Hardswish, LogSigmoid, Tanhshrink, Softmax
    and LogSoftmax (dim=-1); a ReLU or LeakyReLU after ReLU, Sigmoid, Softplus (threshold
    >= 0), ReLU6 or Hardsigmoid is the identity there and is dropped. Dropout, AlphaDropout,
    Identity and Flatten are inference-time identities and are skipped; nested
    Sequentials are flattened; ``LayerNorm`` over the last dimension (first, right
    after a Linear, or before or after an activation) is the layer_norm activation and, with ``elementwise_affine``, a diagonal
    layer of its weight and bias (``layout: diagonal``); ``BatchNorm1d`` (running statistics) is written as its own
    tensors (``<bn>.weight``, ``<bn>.bias``, ``<bn>.running_mean``,
    ``<bn>.running_var``) and folded when the model is loaded, its weight and
    bias parameters of their own. A module that runs twice (an activation, or a
    Linear: tied weights) is written once, under the name of its first use.
    The network is exported as it computes in ``eval()`` mode.

    path: ``.npz``, ``.h5``, ``.hdf5`` or ``.safetensors``; tensors keep their module paths
        (``0.weight``, ``0.bias``), layout out_in.
    input_scaling: the network sees (x - offset) / scale: a dict with keys
        ``offset`` and ``scale`` (arrays or scalars) or a fitted scikit-learn
        scaler that was applied to the inputs before training.
    output_scaling: y = net(x) * scale + offset, the same forms (a fitted
        target scaler's inverse transform).
    """
    import torch.nn as nn

    owner = f"from_torch({type(module).__name__})"
    if not (isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward):
        raise JaccliError(f"{owner}: only torch.nn.Sequential is supported (a custom forward cannot be read)")
    if module._forward_hooks or module._forward_pre_hooks:
        raise JaccliError(f"{owner}: the Sequential has forward hooks, which the export cannot represent")

    stack = DenseStack(owner, layout="out_in", dense="Linear")
    scaling = _torch_scaling(input_scaling, "input_scaling")
    if scaling is not None:
        stack.scale_inputs(*scaling, where="input_scaling")
    first_names = {}  # a module used again keeps the name of its first use: its tensors are one
    for name, child in _torch_modules(module):
        _add_torch_module(stack, first_names.setdefault(id(child), name), child, owner)
    scaling = _torch_scaling(output_scaling, "output_scaling")
    if scaling is not None:
        stack.scale_outputs(*scaling, where="output_scaling")
    _write_model(path, stack.build(input_names, output_names))


def _add_torch_module(stack, name, child, owner):
    """Report one leaf module of the Sequential to the stack, or refuse it."""
    from torch.nn.modules.lazy import LazyModuleMixin

    kind, detail, params = _torch_kind(child)
    where = f"module {name} ({type(child).__name__})"
    label = f"{owner}: {where}"
    if isinstance(child, LazyModuleMixin) and child.has_uninitialized_params():
        raise JaccliError(f"{label} is not initialized (lazy module): run one forward pass first")
    if getattr(child, "_forward_hooks", None) or getattr(child, "_forward_pre_hooks", None):
        raise JaccliError(f"{label} has forward hooks, which the export cannot represent")
    if kind == "unsupported":
        hint = detail or "supported: Linear, the activations listed in from_torch's docstring, Dropout, Flatten, BatchNorm1d, LayerNorm"
        raise JaccliError(f"{label} is not supported ({hint})")
    if kind == "skip":
        stack.identity()
    elif kind == "linear":
        weight = _torch_tensor(child.weight, f"{label} weight")
        bias = None if child.bias is None else _torch_tensor(child.bias, f"{label} bias")
        stack.dense(weight, bias, where=where, weight_name=f"{name}.weight", bias_name=f"{name}.bias")
    elif kind == "layernorm":
        arrays = {field: None if getattr(child, field, None) is None
                  else _torch_tensor(getattr(child, field), f"{label} {field}")
                  for field in ("weight", "bias")}
        stack.layernorm(child.eps, arrays["weight"], arrays["bias"], features=child.normalized_shape[0],
                        names={field: f"{name}.{field}" for field in arrays}, where=where)
    elif kind == "batchnorm":
        # Inference: (x - running_mean) / sqrt(running_var + eps) * weight + bias
        roles = {"weight": "weight", "bias": "bias", "mean": "running_mean", "var": "running_var"}
        arrays = {field: None if getattr(child, attribute) is None
                  else _torch_tensor(getattr(child, attribute), f"{label} {attribute}")
                  for field, attribute in roles.items()}
        stack.batchnorm(arrays["mean"], arrays["var"], child.eps, arrays["weight"], arrays["bias"],
                        names={field: f"{name}.{attribute}" for field, attribute in roles.items()},
                        where=where)
    elif kind == "prelu":  # its weight, one slope per unit or one for all, is a parameter
        slope = (f"{name}.weight", _torch_tensor(child.weight, f"{label} weight"))
        stack.activation("prelu", where=where, tensors={"slope": slope})
    else:
        stack.activation(detail, params, where=where)
