"""Seeded random sources for the differential tests: small torch MLPs and scikit-learn MLPs.

Everything is float64 and small (1-4 dense layers, widths 1-8, 2-6 inputs,
1-3 outputs). A torch network mixes every module jaccli reads with the
things that trip readers up: BatchNorm1d in eval with non-trivial statistics,
LayerNorm of the inputs, right after a Linear or after an activation (with
or without gamma and beta, trained values), a Softmax or LogSoftmax head,
inference-time no-ops, constant scalings of both signs (``Scale``, a custom
module that from_torch may refuse and ONNX writes as Mul/Add or Sub/Div),
one activation object used several times, and one Linear used twice (tied).
"""

import functools
import warnings

import numpy as np


def _torch():
    """(torch, torch.nn), imported on first use: collecting the tests needs no torch."""
    import torch

    return torch, torch.nn


# Slopes and alphas are short decimals: an ONNX float attribute is float32, and
# only a short decimal survives that round trip exactly (issue 19, item 3).
LEAKY_SLOPES = (0.01, 0.05, 0.1, 0.2, 0.3)
ELU_ALPHAS = (0.5, 1.0, 1.3)
LAYER_NORM_EPS = (1e-5, 1e-3, 0.1)
ACTIVATIONS = ("tanh", "sigmoid", "relu", "leaky_relu", "elu", "selu", "softplus",
               "softsign", "silu", "gelu", "gelu_tanh", "none", "hardtanh", "relu6",
               "hardsigmoid", "hardswish", "mish", "celu", "log_sigmoid", "tanhshrink", "prelu")
HARDTANH_BOUNDS = ((-1.0, 1.0), (-0.5, 2.0), (0.0, 6.0), (-2.0, 0.25))
SOFTPLUS_BETAS = ((1.0, 20.0), (2.0, 20.0), (0.5, 3.0), (3.0, 1.5))  # (beta, threshold)
PRELU_SLOPES = (-0.2, 0.01, 0.25, 0.5)
# torch's CELU backward takes 1 / alpha in float32 (3e-8 off for alpha 1.3): alphas
# whose reciprocal float32 holds exactly, so that torch's derivatives are exact
CELU_ALPHAS = (0.5, 1.0, 2.0)


@functools.lru_cache(maxsize=None)
def make_scale_module():
    """The class ``Scale``: ``x * c + d`` (``divide=False``) or ``(x - d) / c``, constants as buffers."""
    torch, nn = _torch()

    class Scale(nn.Module):
        def __init__(self, c, d, divide=False):
            super().__init__()
            self.divide = divide
            self.register_buffer("c", torch.as_tensor(c, dtype=torch.float64), persistent=False)
            self.register_buffer("d", torch.as_tensor(d, dtype=torch.float64), persistent=False)
            # x * c with a negative scalar c and no offset is written -(x * |c|): the exporters
            # then write a Neg node (exact: a negation rounds nothing).
            self.negate = not divide and np.ndim(c) == 0 and c < 0 and np.all(np.asarray(d) == 0)

        def forward(self, x):
            if self.negate:
                return -(x * -self.c)
            return (x - self.d) / self.c if self.divide else x * self.c + self.d

        def extra_repr(self):
            op = "(x - {d}) / {c}" if self.divide else "x * {c} + {d}"
            return op.format(c=self.c.tolist(), d=self.d.tolist())

    return Scale


def activation_module(name, rng, width=1):
    """A fresh torch module for the activation ``name`` (None for "none") of ``width`` units."""
    _, nn = _torch()
    if name == "none":
        return None
    if name == "leaky_relu":
        return nn.LeakyReLU(float(rng.choice(LEAKY_SLOPES)))
    if name == "elu":
        return nn.ELU(float(rng.choice(ELU_ALPHAS)))
    if name in ("gelu", "gelu_tanh"):
        return nn.GELU(approximate="tanh" if name == "gelu_tanh" else "none")
    if name == "hardtanh":
        return nn.Hardtanh(*HARDTANH_BOUNDS[rng.integers(len(HARDTANH_BOUNDS))])
    if name == "softplus" and rng.random() < 0.5:
        return nn.Softplus(*SOFTPLUS_BETAS[rng.integers(len(SOFTPLUS_BETAS))])
    if name == "celu":
        return nn.CELU(float(rng.choice(CELU_ALPHAS)))
    if name == "prelu":  # one slope for all, or one per unit; slopes of either sign
        torch, _ = _torch()
        prelu = nn.PReLU(width if rng.random() < 0.6 else 1)
        with torch.no_grad():
            prelu.weight.copy_(torch.as_tensor(rng.choice(PRELU_SLOPES, size=prelu.weight.shape)))
        return prelu
    classes = {"tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "relu": nn.ReLU, "selu": nn.SELU,
               "softplus": nn.Softplus, "softsign": nn.Softsign, "silu": nn.SiLU,
               "relu6": nn.ReLU6, "hardsigmoid": nn.Hardsigmoid, "hardswish": nn.Hardswish,
               "mish": nn.Mish, "log_sigmoid": nn.LogSigmoid, "tanhshrink": nn.Tanhshrink}
    return classes[name]()


class _Builder:
    """Collects the module list of one random Sequential; each feature is a coin toss."""

    def __init__(self, rng, scalings=True):
        self.rng = rng
        self.modules = []
        # half of the nets have no custom module at all (none when ``scalings`` is False)
        self.scalings = rng.random() < 0.5 and scalings
        self.share_activations = rng.random() < 0.3
        self.shared = {}  # activation name -> the one module object reused
        self.Scale = make_scale_module()

    def coin(self, p):
        return self.rng.random() < p

    def maybe_scale(self, width):
        """A constant scaling x*c+d or (x-d)/c: scalar or per-feature, either sign."""
        if not (self.scalings and self.coin(0.4)):
            return
        size = 1 if self.coin(0.4) else width
        sign = np.where(self.rng.random(size) < 0.5, -1.0, 1.0)
        c = sign * self.rng.choice([0.5, 2.0, 3.0, 0.1, 4.0, 1.7], size=size)
        d = np.round(self.rng.normal(size=size), 3) if self.coin(0.6) else np.zeros(size)
        if size == 1:
            c, d = float(c[0]), float(d[0])
        self.modules.append(self.Scale(c, d, divide=self.coin(0.4)))

    def maybe_noop(self):
        _, nn = _torch()
        if self.coin(0.2):
            choice = self.rng.integers(3)
            self.modules.append([nn.Dropout(0.3), nn.Identity(), nn.Flatten()][choice])

    def batchnorm(self, width):
        """BatchNorm1d with running statistics and a gamma of either sign: a non-trivial inference map."""
        torch, nn = _torch()
        bn = nn.BatchNorm1d(width)
        with torch.no_grad():
            bn.running_mean.copy_(torch.as_tensor(self.rng.normal(scale=0.5, size=width)))
            bn.running_var.copy_(torch.as_tensor(self.rng.uniform(0.5, 2.0, size=width)))
            sign = np.where(self.rng.random(width) < 0.3, -1.0, 1.0)
            bn.weight.copy_(torch.as_tensor(sign * self.rng.uniform(0.5, 1.5, size=width)))
            bn.bias.copy_(torch.as_tensor(self.rng.normal(scale=0.5, size=width)))
        self.modules.append(bn)

    def layernorm(self, width):
        """LayerNorm over the features: affine (gamma of either sign) or not, bias or not."""
        torch, nn = _torch()
        affine, bias = self.coin(0.7), self.coin(0.7)
        norm = nn.LayerNorm(width, eps=float(self.rng.choice(LAYER_NORM_EPS)),
                            elementwise_affine=affine, bias=bias)
        if affine:
            with torch.no_grad():
                sign = np.where(self.rng.random(width) < 0.3, -1.0, 1.0)
                norm.weight.copy_(torch.as_tensor(sign * self.rng.uniform(0.5, 1.5, size=width)))
                if bias:
                    norm.bias.copy_(torch.as_tensor(self.rng.normal(scale=0.5, size=width)))
        self.modules.append(norm)

    def activation(self, name, width):
        if name == "none":
            return
        key = (name, width) if name == "prelu" else name  # a PReLU's slopes fit its width
        if self.share_activations and key in self.shared:
            self.modules.append(self.shared[key])
            return
        module = activation_module(name, self.rng, width)
        self.shared[key] = module
        self.modules.append(module)


def random_widths(rng):
    """[n_in, hidden..., n_out] for 1-4 dense layers, and the index of a tied pair or None."""
    depth = int(rng.integers(1, 5))
    widths = [int(rng.integers(2, 7))] + [int(rng.integers(1, 9)) for _ in range(depth - 1)]
    widths.append(int(rng.integers(1, 4)))
    tied = None
    if depth >= 3 and rng.random() < 0.3:
        tied = int(rng.integers(1, depth - 1))  # layers tied and tied+1 are one Linear (w, w)
        widths[tied + 1] = widths[tied + 2] = widths[tied]
    return widths, tied


def random_torch_net(seed, scalings=True):
    """A random float64 ``nn.Sequential`` in eval mode, reproducible from ``seed``;
    ``scalings=False``: no custom ``Scale`` module (what ``from_torch`` can export)."""
    torch, nn = _torch()
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    widths, tied = random_widths(rng)
    b = _Builder(rng, scalings)
    depth = len(widths) - 1
    b.maybe_scale(widths[0])
    if b.coin(0.1):
        b.layernorm(widths[0])  # of the inputs
    linears = []
    for i in range(depth):
        if tied is not None and i == tied + 1:
            linear = linears[-1]
        else:
            linear = nn.Linear(widths[i], widths[i + 1], bias=bool(rng.random() < 0.8))
        linears.append(linear)
        b.modules.append(linear)
        last = i == depth - 1
        if b.coin(0.2):
            b.layernorm(widths[i + 1])
        if b.coin(0.25):
            b.batchnorm(widths[i + 1])
        b.maybe_noop()
        if not last:
            b.activation(str(rng.choice(ACTIVATIONS)), widths[i + 1])
            if b.coin(0.1):
                b.layernorm(widths[i + 1])  # after the activation
            b.maybe_scale(widths[i + 1])
    head = rng.choice(["none", "activation", "softmax", "log_softmax"], p=[0.45, 0.3, 0.15, 0.1])
    if head == "activation":
        b.activation(str(rng.choice(ACTIVATIONS)), widths[-1])
    b.maybe_scale(widths[-1])
    if head == "softmax":
        b.modules.append(nn.Softmax(dim=-1))
    if head == "log_softmax":
        b.modules.append(nn.LogSoftmax(dim=-1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = nn.Sequential(*b.modules).double().eval()
    return net


def describe_torch_net(net):
    """One line: the modules in order; a module object seen before is marked ``=k`` (its first index)."""
    first, parts = {}, []
    for index, module in enumerate(net):
        text = repr(module) if not list(module.children()) else type(module).__name__
        text = text.replace("\n", " ")
        if id(module) in first:
            text += f"={first[id(module)]}"
        first.setdefault(id(module), index)
        parts.append(text)
    return " | ".join(parts)


def random_points(rng, n_inputs, count=4):
    """A handful of points, float32 numbers (the same points for a float32 graph); relu kinks are measure zero."""
    return rng.normal(scale=1.5, size=(count, n_inputs)).astype(np.float32).astype(np.float64)


# ----------------------------------------------------------------- scikit-learn


def random_sklearn_estimator(seed):
    """A briefly fitted MLPRegressor or MLPClassifier (2 or 3 classes), sometimes in a Pipeline with StandardScaler."""
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(seed)
    widths, _ = random_widths(rng)
    n_in, hidden, n_out = widths[0], tuple(widths[1:-1]), widths[-1]
    hidden = hidden or (int(rng.integers(1, 9)),)  # scikit-learn's MLPs have a hidden layer
    X = rng.normal(loc=rng.normal(size=n_in), scale=rng.uniform(0.5, 3, size=n_in), size=(40, n_in))
    activation = str(rng.choice(["identity", "logistic", "tanh", "relu"]))
    kind = rng.choice(["regressor", "binary", "multiclass"])
    common = dict(hidden_layer_sizes=hidden, activation=activation, max_iter=20,
                  random_state=int(seed) % (2 ** 31))
    if kind == "regressor":
        estimator = MLPRegressor(**common)
        y = rng.normal(size=(40, n_out)) if n_out > 1 else rng.normal(size=40)
    else:
        estimator = MLPClassifier(**common)
        classes = 2 if kind == "binary" else 3
        y = rng.integers(0, classes, size=40)
        y[:classes] = np.arange(classes)  # every class present
    if rng.random() < 0.5:
        estimator = make_pipeline(StandardScaler(), estimator)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator.fit(X, y)
    return estimator, X
