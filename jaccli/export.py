"""Write trained scikit-learn and PyTorch MLPs as jaccli model files.

    from jaccli.export import from_sklearn, from_torch
    from_sklearn(pipeline, "model.npz")       # MLPRegressor / MLPClassifier
    from_torch(net, "model.h5")               # torch.nn.Sequential

Each call writes one weight file that carries its own spec (contract section 1:
the NPZ entry or HDF5 root attribute ``jaccli_spec``), so ``jaccli info
model.npz`` works with nothing else. Tensors are float64 and named after their
source: ``coefs_0``/``intercepts_0`` for scikit-learn (its ``coefs_[0]`` and
``intercepts_[0]``, layout in_out) and the module path for PyTorch
(``0.weight``/``0.bias``, layout out_in, the names its ``state_dict`` uses).

scikit-learn and torch are imported only inside the function that needs them,
so ``import jaccli.export`` works with neither installed.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import Optional

import numpy as np
import yaml

from .errors import JaccliError

__all__ = ["from_sklearn", "from_torch"]


# --------------------------------------------------------------------------
# The exporter-neutral description of a network, and the file writer.


@dataclass
class _Dense:
    weight_name: str
    weight: np.ndarray
    bias_name: Optional[str]  # None: the layer has no bias
    bias: Optional[np.ndarray]
    activation: Optional[str] = None  # None while a following module may still set it
    alpha: Optional[float] = None  # leaky_relu / elu parameter


@dataclass
class _Affine:
    """The map x -> (x - offset) / scale, the contract's input scaling.

    Its inverse y -> y * scale + offset is the contract's output scaling, so the
    same (offset, scale) pair describes a target transformer's inverse.
    """

    offset: np.ndarray
    scale: np.ndarray

    def then(self, other: Optional["_Affine"], what: str) -> "_Affine":
        """Apply self first, then other: one affine map, composed exactly."""
        if other is None:
            return self
        if self.scale.shape != other.scale.shape and self.scale.ndim and other.scale.ndim:
            raise JaccliError(f"{what}: two scalings of {self.scale.size} and {other.scale.size} columns cannot be chained")
        return _Affine(self.offset + other.offset * self.scale, self.scale * other.scale)


def _compose(first: Optional[_Affine], second: Optional[_Affine], what: str) -> Optional[_Affine]:
    return second if first is None else first.then(second, what)


def _float64(array, what: str) -> np.ndarray:
    """A finite real float64 copy of ``array``, or an error naming ``what``."""
    array = np.asarray(array)
    if array.dtype.kind not in "biuf":
        raise JaccliError(f"{what} has dtype {array.dtype}; only real numbers can be exported")
    array = np.array(array, dtype=np.float64)  # a copy: later folding never aliases the source
    if not np.all(np.isfinite(array)):
        raise JaccliError(f"{what} contains NaN or infinite values")
    return array


def _names(given, count: int, what: str, owner: str):
    """The spec's ``inputs``/``outputs`` entry: a list of names, or the count."""
    if given is None:
        return count
    names = [str(name) for name in given]
    if len(names) != count:
        raise JaccliError(f"{owner}: {len(names)} {what} names given but the model has {count} {what}s")
    if len(set(names)) != len(names) or any(not name for name in names):
        raise JaccliError(f"{owner}: {what} names must be distinct and non-empty, got {names}")
    return names


def _scaling_entry(affine: _Affine, count: int, what: str, owner: str) -> dict:
    offset = np.broadcast_to(affine.offset, (count,)) if affine.offset.ndim == 0 else affine.offset
    scale = np.broadcast_to(affine.scale, (count,)) if affine.scale.ndim == 0 else affine.scale
    if offset.shape != (count,) or scale.shape != (count,):
        raise JaccliError(
            f"{owner}: {what} has offset shape {offset.shape} and scale shape {scale.shape};"
            f" the model has {count}"
        )
    if np.any(scale == 0):
        raise JaccliError(f"{owner}: {what} has a zero scale")
    # tolist() gives Python floats, which yaml.safe_dump writes with repr: exact.
    return {"offset": offset.tolist(), "scale": scale.tolist()}


def _build_spec(layers, layout, input_names, output_names, input_scaling, output_scaling, owner):
    n_in = layers[0].weight.shape[1 if layout == "out_in" else 0]
    n_out = layers[-1].weight.shape[0 if layout == "out_in" else 1]
    spec = {
        "inputs": _names(input_names, n_in, "input", owner),
        "outputs": _names(output_names, n_out, "output", owner),
        "layout": layout,
    }
    if input_scaling is not None:
        spec["input_scaling"] = _scaling_entry(input_scaling, n_in, "input scaling", owner)
    if output_scaling is not None:
        spec["output_scaling"] = _scaling_entry(output_scaling, n_out, "output scaling", owner)
    spec["layers"] = []
    for layer in layers:
        entry = {
            "units": int(layer.weight.shape[0 if layout == "out_in" else 1]),
            "activation": layer.activation,
            "weight": layer.weight_name,
            "bias": layer.bias_name,
        }
        if layer.alpha is not None:
            entry["alpha"] = float(layer.alpha)
        spec["layers"].append(entry)
    return spec


def _write_model(path, layers, layout, input_names, output_names, input_scaling, output_scaling, owner):
    path = os.fspath(path)
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in (".npz", ".h5", ".hdf5"):
        raise JaccliError(f"{path}: the model file must end in .npz, .h5 or .hdf5")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise JaccliError(f"{path}: directory {directory} does not exist")
    # A spec file next to the model wins over the embedded one (contract 1,
    # "where the spec comes from"), so it would silently replace ours.
    for sidecar in (os.path.splitext(path)[0] + ".yaml", os.path.splitext(path)[0] + ".yml"):
        if os.path.exists(sidecar):
            raise JaccliError(
                f"{sidecar} exists and would be used instead of the spec embedded in {path};"
                " remove it or export to another name"
            )

    spec = _build_spec(layers, layout, input_names, output_names, input_scaling, output_scaling, owner)
    spec_text = yaml.safe_dump(spec, sort_keys=False)
    tensors = {}
    for layer in layers:
        tensors[layer.weight_name] = layer.weight
        if layer.bias_name is not None:
            tensors[layer.bias_name] = layer.bias

    # Write next to the target, then rename: a reader never sees half a file
    # and an error never damages an existing model.
    handle, temp_path = tempfile.mkstemp(dir=directory, prefix=".jaccli-export-", suffix=suffix)
    os.close(handle)
    try:
        if suffix == ".npz":
            # Plain float arrays and a 0-d unicode array: loadable with allow_pickle=False.
            with open(temp_path, "wb") as stream:
                np.savez(stream, **tensors, jaccli_spec=np.array(spec_text))
        else:
            import h5py

            with h5py.File(temp_path, "w") as h5:
                for name, array in tensors.items():
                    h5.create_dataset(name, data=array, dtype=np.float64)
                h5.attrs["jaccli_spec"] = spec_text
        with open(temp_path, "rb+") as stream:
            os.fsync(stream.fileno())
        # mkstemp creates the file 0600; give it the mode a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp_path, 0o666 & ~umask)
        os.replace(temp_path, path)
    except BaseException:
        try:
            os.unlink(temp_path)
        except OSError:
            pass
        raise


# --------------------------------------------------------------------------
# scikit-learn


_SKLEARN_HIDDEN = {"identity": "linear", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}
_SKLEARN_OUTPUT = {"identity": "linear", "logistic": "sigmoid", "softmax": "softmax", "exp": "exp"}


def _sklearn_affine(transformer, what: str) -> Optional[_Affine]:
    """The fitted scaler's transform as (x - offset) / scale; None if it is the identity."""
    affine = _sklearn_scaler_affine(transformer, what)
    if np.all(affine.offset == 0) and np.all(affine.scale == 1):
        return None  # e.g. StandardScaler(with_mean=False, with_std=False)
    return affine


def _sklearn_scaler_affine(transformer, what: str) -> _Affine:
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
    return _Affine(_float64(offset, f"{what}: {name} offset"), _float64(scale, f"{what}: {name} scale"))


def _sklearn_target_affine(regressor, what: str) -> Optional[_Affine]:
    """A TransformedTargetRegressor's inverse transform as y * scale + offset."""
    from sklearn.preprocessing import FunctionTransformer

    transformer = regressor.transformer_
    if isinstance(transformer, FunctionTransformer):
        if transformer.func is None and transformer.inverse_func is None:
            return None  # the default: no target transformation at all
        raise JaccliError(f"{what}: a target func/inverse_func is arbitrary code; only scaler transformers are supported")
    # A scaler's transform is (y - offset) / scale; its inverse is y * scale + offset.
    return _sklearn_affine(transformer, f"{what} transformer")


def _unwrap_sklearn(estimator, what: str):
    """(input affine, fitted MLP, output affine) behind Pipelines and target transforms."""
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import Pipeline

    if isinstance(estimator, Pipeline):
        input_affine = None
        for step_name, step in estimator.steps[:-1]:
            if step is None or step == "passthrough":
                continue
            input_affine = _compose(input_affine, _sklearn_affine(step, f"{what} step {step_name!r}"), what)
        last_name, last = estimator.steps[-1]
        inner_in, mlp, output_affine = _unwrap_sklearn(last, f"{what} step {last_name!r}")
        return _compose(input_affine, inner_in, what), mlp, output_affine
    if isinstance(estimator, TransformedTargetRegressor):
        if not hasattr(estimator, "regressor_"):
            raise JaccliError(f"{what}: TransformedTargetRegressor is not fitted")
        input_affine, mlp, inner_out = _unwrap_sklearn(estimator.regressor_, f"{what} regressor")
        # The inner regressor's output goes through this transformer's inverse last.
        return input_affine, mlp, _compose(inner_out, _sklearn_target_affine(estimator, what), what)
    if isinstance(estimator, (MLPRegressor, MLPClassifier)):
        if not hasattr(estimator, "coefs_"):
            raise JaccliError(f"{what}: {type(estimator).__name__} is not fitted")
        return None, estimator, None
    raise JaccliError(
        f"{what}: {type(estimator).__name__} is not supported; expected MLPRegressor, MLPClassifier,"
        " or a Pipeline / TransformedTargetRegressor around one"
    )


def from_sklearn(estimator, path, scaler=None, input_names=None, output_names=None) -> None:
    """Write a fitted scikit-learn MLP as a jaccli model file with an embedded spec.

    estimator: a fitted ``MLPRegressor`` or ``MLPClassifier``, or a ``Pipeline``
        of scalers ending in one, or a ``TransformedTargetRegressor`` (scaler
        transformer) around either. The outputs are what ``predict`` returns for
        a regressor and what ``predict_proba`` returns for a classifier, except
        that a binary (or multilabel) classifier has one logistic output per
        label: P(class ``classes_[1]``), not ``predict_proba``'s two columns.
    path: ``.npz``, ``.h5`` or ``.hdf5``; tensors ``coefs_i`` and ``intercepts_i``.
    scaler: a fitted ``StandardScaler``/``MinMaxScaler``/``RobustScaler``/
        ``MaxAbsScaler`` applied to the raw inputs before ``estimator``; it
        becomes the input scaling (composed with any scalers in a Pipeline).
    input_names: defaults to ``feature_names_in_`` when the estimator was fitted
        on a DataFrame, else the count (x1..xn).
    output_names: defaults to the count (y1..ym).
    """
    owner = f"from_sklearn({type(estimator).__name__})"
    input_affine, mlp, output_affine = _unwrap_sklearn(estimator, owner)
    if scaler is not None:
        input_affine = _compose(_sklearn_affine(scaler, f"{owner} scaler"), input_affine, owner)

    if mlp.activation not in _SKLEARN_HIDDEN or mlp.out_activation_ not in _SKLEARN_OUTPUT:
        raise JaccliError(f"{owner}: activation {mlp.activation!r} / {mlp.out_activation_!r} is not supported")
    layers = []
    last = len(mlp.coefs_) - 1
    for i, (coef, intercept) in enumerate(zip(mlp.coefs_, mlp.intercepts_)):
        activation = _SKLEARN_OUTPUT[mlp.out_activation_] if i == last else _SKLEARN_HIDDEN[mlp.activation]
        layers.append(
            _Dense(
                f"coefs_{i}",
                _float64(coef, f"{owner} coefs_[{i}]"),
                f"intercepts_{i}",
                _float64(intercept, f"{owner} intercepts_[{i}]"),
                activation,
            )
        )

    if input_names is None:
        names = getattr(estimator, "feature_names_in_", None)
        if names is None and scaler is not None:
            names = getattr(scaler, "feature_names_in_", None)
        input_names = None if names is None else [str(name) for name in names]
    _write_model(path, layers, "in_out", input_names, output_names, input_affine, output_affine, owner)


# --------------------------------------------------------------------------
# PyTorch


def _torch_scaling(value, what: str) -> Optional[_Affine]:
    """input_scaling / output_scaling argument: a {offset, scale} mapping or a fitted scaler."""
    if value is None:
        return None
    if isinstance(value, dict):
        if set(value) != {"offset", "scale"}:
            raise JaccliError(f"from_torch: {what} must have exactly the keys offset and scale, got {sorted(value)}")
        return _Affine(_float64(value["offset"], f"from_torch {what} offset"), _float64(value["scale"], f"from_torch {what} scale"))
    if type(value).__module__.startswith("sklearn."):
        return _sklearn_affine(value, f"from_torch {what}")
    raise JaccliError(
        f"from_torch: {what} must be a dict(offset=..., scale=...) or a fitted scikit-learn scaler,"
        f" not {type(value).__name__}"
    )


def _torch_modules(module, prefix=""):
    """(dotted name, module) for every leaf of nested Sequentials, in order."""
    import torch.nn as nn

    for name, child in module.named_children():
        full_name = prefix + name
        plain_sequential = isinstance(child, nn.Sequential) and type(child).forward is nn.Sequential.forward
        if plain_sequential and not (child._forward_hooks or child._forward_pre_hooks):
            yield from _torch_modules(child, full_name + ".")
        else:
            yield full_name, child


def _torch_kind(module):
    """How a module maps onto a dense stack: ("linear"|"skip"|"batchnorm"|"activation", name, alpha).

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
    if plain(nn.BatchNorm1d):
        if not module.track_running_stats or module.running_mean is None:
            return ("unsupported", "BatchNorm1d needs running statistics, track_running_stats=True", None)
        return ("batchnorm", None, None)
    simple = {nn.Tanh: "tanh", nn.Sigmoid: "sigmoid", nn.ReLU: "relu", nn.SELU: "selu",
              nn.Softsign: "softsign", nn.SiLU: "silu"}
    for cls, name in simple.items():
        if plain(cls):
            return ("activation", name, None)
    if plain(nn.LeakyReLU):
        return ("activation", "leaky_relu", float(module.negative_slope))
    if plain(nn.ELU):
        return ("activation", "elu", float(module.alpha))
    if plain(nn.GELU):
        gelu = {"none": "gelu", "tanh": "gelu_tanh"}.get(module.approximate)
        return ("activation", gelu, None) if gelu else ("unsupported", f"approximate={module.approximate!r}", None)
    if plain(nn.Softplus):
        # torch returns x itself where beta*x > threshold; log(1+e^x) - x < e^-threshold there.
        if module.beta != 1 or module.threshold < 20:
            return ("unsupported", "only beta=1 and threshold >= 20", None)
        return ("activation", "softplus", None)
    if plain(nn.Softmax):
        if module.dim not in (-1, 1):
            return ("unsupported", f"dim={module.dim}; only dim=-1 or 1", None)
        return ("activation", "softmax", None)
    return ("unsupported", None, None)


def _torch_tensor(tensor, what: str) -> np.ndarray:
    import torch

    if tensor.is_complex():
        raise JaccliError(f"{what} is complex; only real tensors can be exported")
    return _float64(tensor.detach().to(device="cpu", dtype=torch.float64).numpy(), what)


def from_torch(module, path, input_names=None, output_names=None, input_scaling=None, output_scaling=None) -> None:
    """Write a ``torch.nn.Sequential`` MLP as a jaccli model file with an embedded spec.

    Supported modules: ``Linear`` (with or without bias) and, each right after
    a Linear, one of Identity, Tanh, Sigmoid, ReLU, LeakyReLU, ELU, SELU,
    Softplus (beta=1), Softsign, SiLU, GELU (both approximations) and Softmax
    (dim=-1, last module only). Dropout, AlphaDropout, Identity and Flatten are
    inference-time identities and are skipped; nested Sequentials are
    flattened; ``BatchNorm1d`` (running statistics) is folded exactly into the
    neighbouring Linear, whose tensors are then named ``<linear>+<bn>.weight``.
    The network is exported as it computes in ``eval()`` mode.

    path: ``.npz``, ``.h5`` or ``.hdf5``; tensors keep their module paths
        (``0.weight``, ``0.bias``), layout out_in.
    input_scaling: the network sees (x - offset) / scale: a dict with keys
        ``offset`` and ``scale`` (arrays or scalars) or a fitted scikit-learn
        scaler that was applied to the inputs before training.
    output_scaling: y = net(x) * scale + offset, the same forms (a fitted
        target scaler's inverse transform).
    """
    import torch.nn as nn
    from torch.nn.modules.lazy import LazyModuleMixin

    owner = f"from_torch({type(module).__name__})"
    if not (isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward):
        raise JaccliError(f"{owner}: only torch.nn.Sequential is supported (a custom forward cannot be read)")
    if module._forward_hooks or module._forward_pre_hooks:
        raise JaccliError(f"{owner}: the Sequential has forward hooks, which the export cannot represent")

    layers: list[_Dense] = []
    # A BatchNorm1d that follows an activation (or comes first) is an affine map
    # x * scale + shift waiting to be folded into the next Linear's columns.
    pending_scale = pending_shift = None
    pending_name = ""
    for name, child in _torch_modules(module):
        kind, detail, alpha = _torch_kind(child)
        label = f"{owner}: module {name} ({type(child).__name__})"
        if isinstance(child, LazyModuleMixin) and child.has_uninitialized_params():
            raise JaccliError(f"{label} is not initialized (lazy module): run one forward pass first")
        if getattr(child, "_forward_hooks", None) or getattr(child, "_forward_pre_hooks", None):
            raise JaccliError(f"{label} has forward hooks, which the export cannot represent")
        if kind == "unsupported":
            hint = detail or "supported: Linear, the activations listed in from_torch's docstring, Dropout, Flatten, BatchNorm1d"
            raise JaccliError(f"{label} is not supported ({hint})")
        if kind == "skip":
            continue
        if layers and layers[-1].activation == "softmax":
            raise JaccliError(f"{label} follows a Softmax; Softmax must be the last module")

        if kind == "linear":
            if layers and layers[-1].activation is None:
                layers[-1].activation = "linear"
            weight = _torch_tensor(child.weight, f"{label} weight")
            bias = None if child.bias is None else _torch_tensor(child.bias, f"{label} bias")
            weight_name, bias_name = f"{name}.weight", (None if bias is None else f"{name}.bias")
            if layers and layers[-1].weight.shape[0] != weight.shape[1]:
                raise JaccliError(f"{label} takes {weight.shape[1]} inputs but receives {layers[-1].weight.shape[0]}")
            if pending_scale is not None:
                # W (s*x + t) + b  ==  (W diag(s)) x + (W t + b)
                folded_bias = weight @ pending_shift + (0.0 if bias is None else bias)
                weight = weight * pending_scale[np.newaxis, :]
                bias = folded_bias
                weight_name, bias_name = f"{pending_name}+{name}.weight", f"{pending_name}+{name}.bias"
                pending_scale = pending_shift = None
            layers.append(_Dense(weight_name, weight, bias_name, bias))
        elif kind == "batchnorm":
            # Inference: (x - mean) / sqrt(var + eps) * gamma + beta  ==  x * scale + shift
            mean = _torch_tensor(child.running_mean, f"{label} running_mean")
            var = _torch_tensor(child.running_var, f"{label} running_var")
            gamma = np.ones_like(mean) if child.weight is None else _torch_tensor(child.weight, f"{label} weight")
            beta = np.zeros_like(mean) if child.bias is None else _torch_tensor(child.bias, f"{label} bias")
            scale = gamma / np.sqrt(var + child.eps)
            shift = beta - mean * scale
            if layers and layers[-1].activation is None and pending_scale is None:
                # Right after a Linear: fold into its rows.
                last = layers[-1]
                last.bias = shift + scale * (0.0 if last.bias is None else last.bias)
                last.weight = last.weight * scale[:, np.newaxis]
                stem = last.weight_name[: -len(".weight")]
                last.weight_name, last.bias_name = f"{stem}+{name}.weight", f"{stem}+{name}.bias"
            elif pending_scale is None:
                pending_scale, pending_shift, pending_name = scale, shift, name
            else:  # two in a row: compose them, still one affine map
                pending_scale, pending_shift = pending_scale * scale, pending_shift * scale + shift
                pending_name = f"{pending_name}+{name}"
        else:  # activation
            if not layers or pending_scale is not None:
                raise JaccliError(f"{label}: an activation must directly follow a Linear")
            if layers[-1].activation is not None:
                raise JaccliError(f"{label}: two activations in a row cannot be one dense layer")
            layers[-1].activation, layers[-1].alpha = detail, alpha

    if not layers:
        raise JaccliError(f"{owner}: the Sequential has no Linear layer")
    if pending_scale is not None:
        raise JaccliError(f"{owner}: module {pending_name} (BatchNorm1d) at the end has no Linear to fold into")
    if layers[-1].activation is None:
        layers[-1].activation = "linear"

    _write_model(
        path,
        layers,
        "out_in",
        input_names,
        output_names,
        _torch_scaling(input_scaling, "input_scaling"),
        _torch_scaling(output_scaling, "output_scaling"),
        owner,
    )
