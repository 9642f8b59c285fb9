"""The layer events an ONNX graph is read as, in order from input to output."""

from dataclasses import dataclass, field
from typing import Callable, List, Optional

import numpy as np


@dataclass
class Dense:
    """``y = x @ W + b`` (layout ``in_out``) or ``x @ W.T + b`` (``out_in``)."""

    weight: np.ndarray
    bias: Optional[np.ndarray]
    layout: str
    weight_name: str
    bias_name: Optional[str]
    where: str  # "node 'name' (OpType)", for messages
    weight_scale: float = 1.0  # Gemm's alpha and beta: x (alpha W) + beta b
    bias_scale: float = 1.0
    constant: bool = False  # W and b are the graph's constants, not parameters


@dataclass
class Activation:
    name: str  # a jaccli activation name
    params: dict  # its numbers
    where: str
    tensors: dict = field(default_factory=dict)  # parameter -> (initializer name, array): PRelu's slope


@dataclass
class Affine:
    """``y = x * scale + offset``; scale and offset are 1-D, of size 1 or n."""

    scale: np.ndarray
    offset: np.ndarray
    where: str


@dataclass
class BatchNorm:
    """Inference BatchNormalization: ``(x - mean) / sqrt(var + eps) * scale + bias``, per feature.

    ``names``: the file's names of scale, bias (parameters) and mean, var (stored statistics).
    """

    scale: np.ndarray
    bias: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    eps: float
    names: dict
    where: str


@dataclass
class LayerNorm:
    """LayerNorm over the features, (x - mean) / sqrt(var + eps) * weight + bias; weight
    and bias (initializers: parameters) may be None."""

    eps: float
    weight: Optional[np.ndarray]
    bias: Optional[np.ndarray]
    weight_name: Optional[str]
    bias_name: Optional[str]
    where: str
    features: Optional[int] = None  # the width normalised over, when the graph says


@dataclass
class Identity:
    where: str


@dataclass
class OnnxGraph:
    events: list
    input_name: str
    output_name: str
    dtype: str  # the graph input's element type: float32, float64 or float16
    producer: str  # e.g. "pytorch 2.13.0"
    opsets: dict  # domain -> version
    notes: List[str] = field(default_factory=list)  # e.g. the classifier output taken
    # One name per output column: a classifier's class labels; a chosen output's name
    # (its columns numbered after it when it has several), or None: y1, y2, ...
    column_names: Optional[Callable[[int], Optional[List[str]]]] = None
