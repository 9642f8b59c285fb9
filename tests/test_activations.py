"""The activation table's newer entries against torch.func and mpmath, kinks included.

Each entry's (s, s', s'') is compared with torch's own module differentiated by
torch.func (the framework a file comes from decides the derivative at a kink),
and, in the smooth parts and far tails, with mpmath at 40 digits.
"""

import math
import os

import numpy as np
import pytest

import jaccli
from conftest import save_model
from jaccli.engine.activations import ACTIVATIONS
from jaccli.errors import JaccliError

torch = pytest.importorskip("torch")
mpmath = pytest.importorskip("mpmath")
nn = torch.nn
F = torch.nn.functional

ULP_BELOW_3 = 2.9999999999999996


def _hardsigmoid_twice_differentiable(x):
    """torch's hardsigmoid with a second derivative (torch's own has none): the same
    values, and slope 1/6 on the open interval (-3, 3) only, as its backward."""
    inside = (x > -3) & (x < 3)
    return torch.where(inside, (x + 3) / 6, (x >= 3).to(x.dtype))


# (entry, parameters, torch function)
CASES = [
    ("hardtanh", {}, nn.Hardtanh()),
    ("hardtanh", {"min_val": -2.0, "max_val": 0.5}, nn.Hardtanh(-2.0, 0.5)),
    ("relu6", {}, nn.ReLU6()),
    ("hardsigmoid", {}, _hardsigmoid_twice_differentiable),
    ("hardswish", {}, nn.Hardswish()),
    ("mish", {}, nn.Mish()),
    ("celu", {}, nn.CELU()),
    ("celu", {"alpha": 0.5}, nn.CELU(0.5)),
    ("elu", {"alpha": 0.5}, nn.ELU(0.5)),
    ("selu", {}, nn.SELU()),
    ("log_sigmoid", {}, nn.LogSigmoid()),
    ("tanhshrink", {}, nn.Tanhshrink()),
    ("softplus", {}, nn.Softplus(1.0, math.inf)),
    ("softplus", {"beta": 2.0, "threshold": 20.0}, nn.Softplus(2.0, 20.0)),
    ("softplus", {"beta": 0.5, "threshold": 3.0}, nn.Softplus(0.5, 3.0)),
]
IDS = [f"{name}{params or ''}" for name, params, _ in CASES]


def _grid(kinks):
    """Random points, the kinks, and the floats next to each kink."""
    rng = np.random.default_rng(7)
    near = [np.nextafter(k, d) for k in kinks for d in (-np.inf, np.inf)]
    fixed = [-40, -20, -6, -3, -1, -0.5, -1e-8, 0, 1e-8, 0.5, 1, 3, 6, 10, 20, 40]
    return np.concatenate([rng.normal(size=300) * 4, fixed, kinks, near])


def _torch_derivatives(f, z):
    x = torch.tensor(z, dtype=torch.float64)
    first = torch.func.vmap(torch.func.grad(f))(x)
    second = torch.func.vmap(torch.func.grad(torch.func.grad(f)))(x)
    return [t.detach().numpy() for t in (f(x), first, second)]


@pytest.mark.parametrize("name,params,function", CASES, ids=IDS)
def test_entry_matches_torch_func(name, params, function):
    """s, s', s'' to 1e-14 of max(1, |torch's|) at every point, at and beside each kink."""
    entry = ACTIVATIONS[name]
    params = {**entry.params, **params}
    z = _grid(entry.kink_points(params))
    expected = _torch_derivatives(function, z)
    for order, (ours, theirs) in enumerate(zip(entry.rule(z, **params), expected)):
        error = np.abs(ours - theirs) / np.maximum(1.0, np.abs(theirs))
        assert error.max() <= 1e-14, (name, order, z[np.argmax(error)], error.max())


def test_hardsigmoid_first_derivative_is_torchs_own():
    """Against nn.Hardsigmoid itself (torch differentiates it once): zero where torch's
    is, and 1/6 where torch's backward gives float32(1/6) (0.16666667163, 3e-8 off: its
    constant is single precision, a torch quirk not followed)."""
    z = _grid((-3.0, 3.0))
    x = torch.tensor(z)
    first = torch.func.vmap(torch.func.grad(nn.Hardsigmoid()))(x).numpy()
    expected = np.where(first == 0, 0.0, 1 / 6)
    assert set(np.unique(first)) == {0.0, float(np.float32(1 / 6))}
    np.testing.assert_array_equal(ACTIVATIONS["hardsigmoid"].rule(z, 1 / 6, 0.5)[1], expected)


def test_torch_kink_conventions():
    """What torch's autograd gives exactly at the kinks, spelled out (the docs say so)."""
    def at(name, z, **params):
        return [float(v[0]) for v in ACTIVATIONS[name].rule(np.array([z]), **params)]

    assert at("relu6", 0.0)[1:] == at("relu6", 6.0)[1:] == [0.0, 0.0]
    assert at("hardtanh", -1.0, min_val=-1.0, max_val=1.0)[1] == 0.0
    assert at("hardswish", -3.0)[1:] == [0.0, 0.0] and at("hardswish", 3.0)[1:] == [1.0, 0.0]
    assert at("hardsigmoid", 3.0, alpha=1 / 6, beta=0.5)[1] == 0.0
    assert at("celu", 0.0, alpha=0.5)[1:] == [1.0, 0.0]
    assert at("elu", 0.0, alpha=0.5)[1:] == [0.5, 0.0]  # torch: the left s', and s'' = 0
    # softplus at its threshold: the curved piece's value and s', but s'' = 0 (torch)
    assert at("softplus", 0.5, beta=2.0, threshold=1.0)[2] == 0.0


# ---------------------------------------------------------------- mpmath


def _mp_functions():
    mp = mpmath.mp

    def softplus(beta):
        return lambda x: mp.log1p(mp.exp(beta * x)) / beta

    return {
        "mish": lambda x: x * mp.tanh(mp.log1p(mp.exp(x))),
        "log_sigmoid": lambda x: -mp.log1p(mp.exp(-x)),
        "tanhshrink": lambda x: x - mp.tanh(x),
        "softplus": softplus(1),
        "softplus_b2": softplus(2),
        "celu": lambda x: x if x >= 0 else mp.expm1(x),
        "hardswish": lambda x: x * mp.mpf(min(max(x + 3, 0), 6)) / 6,
        # older entries whose tails were once 0 or short of digits (sigmoid(-40) was 0.0)
        "sigmoid": lambda x: 1 / (1 + mp.exp(-x)),
        "silu": lambda x: x / (1 + mp.exp(-x)),
        "elu": lambda x: x if x >= 0 else mp.expm1(x),
    }


MP_CASES = [("mish", {}), ("log_sigmoid", {}), ("tanhshrink", {}), ("softplus", {}),
            ("softplus_b2", {"beta": 2.0}), ("celu", {}), ("hardswish", {}), ("sigmoid", {}),
            ("silu", {}), ("elu", {})]


@pytest.mark.parametrize("key,params", MP_CASES, ids=[k for k, _ in MP_CASES])
def test_entry_matches_mpmath(key, params):
    """Each of s, s', s'' against mpmath at 400 digits (its differences must resolve
    a 1e-304 second derivative beside a value of -1): relative 1e-14 in the tails (where
    1 - tanh^2 or 1 - sigmoid would cancel) and near 0 (where z - tanh z does), and
    1e-14 of max(1, |exact|) between (where s'' crosses 0)."""
    mp = mpmath.mp
    f = _mp_functions()[key]
    name = key.split("_b")[0]
    entry = ACTIVATIONS[name]
    params = {**entry.params, **params}
    z = np.array([-700, -60, -30, -9.5, -2.5, -1, -0.3, -1e-3, -1e-7, 1e-7, 1e-3, 0.3, 0.7,
                  1.5, 2.5, 9.5, 30, 60, 700])
    if name == "hardswish":
        z = z[(np.abs(z) < 2.9) | (np.abs(z) > 3.1)]
    ours = entry.rule(z, **params)
    for i, x in enumerate(z):
        for order in range(3):
            with mp.workdps(400):
                exact = float(mp.diff(f, mp.mpf(float(x)), order))
            got = ours[order][i]
            scale = abs(exact) if abs(x) > 9 or abs(x) < 0.01 else max(1.0, abs(exact))
            assert abs(got - exact) <= 1e-14 * scale + 1e-300, (key, x, order, got, exact)


NEW = ["hardtanh", "relu6", "hardsigmoid", "hardswish", "mish", "celu", "log_sigmoid",
       "tanhshrink", "softplus", "prelu"]


@pytest.mark.parametrize("name", NEW)
def test_huge_arguments_stay_finite(name):
    """|z| up to 1e300 (and the float64 extremes): no overflow, no NaN, no warning."""
    entry = ACTIVATIONS[name]
    params = {**entry.params, **({"slope": np.array(0.25)} if name == "prelu" else {})}
    z = np.array([-1.7e308, -1e300, -1e30, -800.0, 800.0, 1e30, 1e300, 1.7e308])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        values = entry.rule(z, **params)
    assert all(np.isfinite(v).all() for v in values)


# ---------------------------------------------------------------- prelu: a parameter tensor


def _prelu_net(shared):
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(3, 4), nn.PReLU(4, 0.2), nn.Linear(4, 5),
                        nn.PReLU(1 if shared else 5, 0.1), nn.Linear(5, 2), nn.PReLU(2)).double()
    with torch.no_grad():
        for index in (1, 3, 5):
            net[index].weight.uniform_(-0.5, 0.9)
    spec = {"layout": "out_in", "layers": [
        {"weight": f"{2 * i}.weight", "bias": f"{2 * i}.bias", "activation": "prelu",
         "slope": f"{2 * i + 1}.weight"} for i in range(3)]}
    tensors = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    return net, spec, tensors


def _torch_quantities(net, X, names):
    x = torch.tensor(X)

    def single(point):
        return net(point[None])[0]

    hessian = np.stack([torch.func.hessian(single)(p).detach().numpy() for p in x])
    params = {k: v.detach() for k, v in net.named_parameters()}
    pj = torch.func.jacrev(lambda p: torch.func.functional_call(net, p, (x,)))(params)
    return {"value": net(x).detach().numpy(),
            "jacobian": np.stack([torch.func.jacrev(single)(p).detach().numpy() for p in x]),
            "hessian": hessian, "hessdiag": np.diagonal(hessian, axis1=2, axis2=3),
            "param_jacobian": np.concatenate(
                [pj[n].reshape(len(X), 2, -1).detach().numpy() for n in names], axis=2)}


@pytest.mark.parametrize("shared", [False, True], ids=["per-unit", "shared"])
def test_prelu_against_torch_func(tmp_path, shared):
    """nn.PReLU with num_parameters = d (the engine's parameters are the file's: the fast
    path) and = 1 (the slope broadcast, its column summed over the units)."""
    net, spec, tensors = _prelu_net(shared)
    model = jaccli.load(save_model(tmp_path, spec, tensors))
    names = [name for name, _ in model.parameters]
    assert names == list(tensors)  # 0.weight, 0.bias, 1.weight (the slope), 2.weight, ...
    assert (model.assembly.layout is None) == shared
    X = np.random.default_rng(1).normal(size=(7, 3))
    expected = _torch_quantities(net, X, names)
    for quantity, value in expected.items():
        actual = getattr(model, quantity)(X)
        scale = max(1.0, np.abs(value).max())
        assert np.abs(actual - value).max() <= 1e-13 * scale, quantity


def test_prelu_parameter_steps(tmp_path):
    """with_parameters moves the slope: the parameter Jacobian predicts the step."""
    _, spec, tensors = _prelu_net(True)
    model = jaccli.load(save_model(tmp_path, spec, tensors))
    X = np.random.default_rng(2).normal(size=(5, 3))
    theta = model.parameter_vector()
    slope = [p.offset for p in model.assembly.parameters if p.name == "3.weight"][0]
    step = np.zeros_like(theta)
    step[slope] = 1e-6
    moved = (model.with_parameters(theta + step).value(X) - model.value(X)) / 1e-6
    np.testing.assert_allclose(moved, model.param_jacobian(X)[:, :, slope], atol=1e-8)


def test_check_skips_stencils_across_hardtanh_kinks(tmp_path):
    """`check` knows hardtanh's kinks are at min_val and max_val, not at 0."""
    tensors = {"W0": np.array([[1.0, 2.0]]), "b0": np.array([0.0, 0.0]),
               "W1": np.ones((2, 1)), "b1": np.zeros(1)}
    spec = {"layers": [{"units": 2, "activation": "hardtanh", "min_val": -0.5, "max_val": 2.0},
                       {"units": 1}]}
    model = jaccli.load(save_model(tmp_path, spec, tensors))
    from jaccli.verify.check import kink_sides

    sides = kink_sides(model.network, np.array([[-0.6], [-0.4], [0.9], [1.1]]))
    # columns: z > -0.5 for units 0 and 1 (z = x, 2x), then z > 2 for both
    np.testing.assert_array_equal(sides, [[False, False, False, False], [True, False, False, False],
                                           [True, True, False, False], [True, True, False, True]])


# ---------------------------------------------------------------- the spec


@pytest.mark.parametrize("layer,message", [
    ({"activation": "tanh", "beta": 2}, "activation 'tanh' takes no 'beta'"),
    ({"activation": "relu", "slope": "a"}, "activation 'relu' takes no 'slope'"),
    ({"activation": "prelu", "slope": 0.25}, "'slope' must be a tensor name, not 0.25"),
    ({"activation": "softplus", "beta": "x"}, "'beta' must be a finite number, not x"),
    ({"activation": "softplus", "beta": 0}, "softplus's beta must be > 0, not 0"),
    ({"activation": "hardtanh", "min_val": 2}, "hardtanh's min_val (2) is above its max_val (1)"),
    ({"activation": "celu", "alpha": -1}, "celu's alpha must be > 0, not -1"),
])
def test_spec_activation_fields(layer, message):
    from jaccli.formats.spec import parse_spec

    with pytest.raises(JaccliError) as error:
        parse_spec({"layers": [layer]}, "s.yaml")
    assert str(error.value) == f"s.yaml: layers[0]: {message}"


def test_spec_slope_shape_is_checked(tmp_path):
    _, spec, tensors = _prelu_net(False)
    tensors["1.weight"] = np.ones(3)
    with pytest.raises(JaccliError, match=r"tensor '1.weight' \(layers\[0\] slope\) has shape "
                                          r"\(3,\); expected \(4,\)"):
        jaccli.load(save_model(tmp_path, spec, tensors))


def test_spec_parameters_reach_the_rule(tmp_path):
    """beta and threshold given in the spec are the ones the model runs."""
    tensors = {"W0": np.eye(2), "b0": np.zeros(2)}
    spec = {"layers": [{"units": 2, "activation": "softplus", "beta": 2.0, "threshold": 1.0}]}
    model = jaccli.load(save_model(tmp_path, spec, tensors))
    y = model.value([0.25, 0.75])[0]
    assert y[1] == 0.75 and y[0] == pytest.approx(math.log1p(math.exp(0.5)) / 2, rel=1e-15)
    assert os.path.exists(tmp_path / "model.yaml")


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_keras_prelu_and_relu6_against_torch_func(tmp_path, suffix):
    """A Keras PReLU layer (its alpha the slope tensor, a parameter) and ReLU(max_value=6),
    against the same net written in torch and differentiated by torch.func."""
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("KERAS_BACKEND=torch runs this")
    rng = np.random.default_rng(5)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.PReLU(),
                              keras.layers.Dense(5), keras.layers.ReLU(max_value=6.0),
                              keras.layers.Dense(2)])
    for layer in model.layers:
        layer.set_weights([rng.normal(size=w.shape) * 1.5 for w in layer.get_weights()])
    model.save(str(tmp_path / f"m{suffix}"))
    loaded = jaccli.load(str(tmp_path / f"m{suffix}"))
    names = [name for name, _ in loaded.parameters]
    assert names[2].endswith("/alpha") and len(names) == 7
    arrays = dict(zip(names, (torch.tensor(w, dtype=torch.float64) for w in model.get_weights())))

    def forward(x, p):
        k0, b0, alpha, k1, b1, k2, b2 = (p[n] for n in names)
        z = x @ k0 + b0
        a = torch.where(z > 0, z, alpha * z)
        a = F.relu6(a @ k1 + b1)
        return a @ k2 + b2

    X = rng.normal(size=(6, 3)) * 2
    x = torch.tensor(X)
    expected_value = forward(x, arrays).numpy()
    np.testing.assert_allclose(expected_value, model.predict(X, verbose=0), rtol=1e-5, atol=1e-5)
    single = lambda point: forward(point[None], arrays)[0]  # noqa: E731
    expected = {
        "value": expected_value,
        "jacobian": np.stack([torch.func.jacrev(single)(p).numpy() for p in x]),
        "hessian": np.stack([torch.func.hessian(single)(p).numpy() for p in x]),
        "param_jacobian": np.concatenate([j.reshape(6, 2, -1).numpy() for j in torch.func.jacrev(
            lambda p: forward(x, p))(arrays).values()], axis=2)}
    for quantity, value in expected.items():
        actual = getattr(loaded, quantity)(X)
        assert np.abs(actual - value).max() <= 1e-13 * max(1.0, np.abs(value).max()), quantity


def test_check_passes_on_the_new_activations(tmp_path):
    """`check`'s finite differences agree with every new entry's derivatives (stencils
    across a kink skipped), parameters included (prelu's slope)."""
    rng = np.random.default_rng(9)
    names = ["hardtanh", "hardswish", "mish", "celu", "log_sigmoid", "tanhshrink", "softplus",
             "prelu", "hardsigmoid", "relu6"]
    widths = [3] + [4] * len(names) + [2]
    tensors, layers = {}, []
    for i, name in enumerate(names + ["linear"]):
        tensors[f"W{i}"] = rng.normal(size=(widths[i], widths[i + 1])) * 1.5
        tensors[f"b{i}"] = rng.normal(size=widths[i + 1])
        layers.append({"units": widths[i + 1], "activation": name})
    tensors["slope7"] = np.array([0.3, -0.2, 0.05, 0.6])
    layers[6].update(beta=2.0, threshold=3.0)
    model = jaccli.load(save_model(tmp_path, {"layers": layers}, tensors))
    report = jaccli.check(model, rng.normal(size=(6, 3)), what="jacobian,hessdiag,params",
                          sample=False)
    assert report.passed, report.failures


def test_keras_hard_sigmoid_by_the_recorded_version(tmp_path):
    """hard_sigmoid is relu6(x + 3) / 6 in Keras 3 (the version its files record, or its
    layers/<name>/vars weights) and 0.2 x + 0.5 clipped in Keras 2; unrecorded: refused."""
    keras = pytest.importorskip("keras")
    from jaccli.formats.keras.layers import activation

    entry = {"class_name": "Dense", "config": {"name": "d"}}
    assert activation("hard_sigmoid", "f", entry, "2.15.0") == \
        ("hardsigmoid", {"alpha": 0.2, "beta": 0.5})
    with pytest.raises(JaccliError, match="differs between Keras 2 and 3"):
        activation("hard_sigmoid", "f", entry, None)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="hard_sigmoid"),
                              keras.layers.Dense(1)])
    X = np.random.default_rng(0).normal(size=(5, 3)) * 3
    (tmp_path / "arch.json").write_text(model.to_json())
    model.save_weights(str(tmp_path / "m.weights.h5"))
    for path, spec in ((tmp_path / "m.keras", None), (tmp_path / "m.h5", None),
                       (tmp_path / "m.weights.h5", str(tmp_path / "arch.json"))):
        if spec is None:
            model.save(str(path))
        loaded = jaccli.load(str(path), spec=spec)
        assert loaded.network.layers[0].params == {"alpha": 1 / 6, "beta": 0.5}
        np.testing.assert_allclose(loaded.value(X), model.predict(X, verbose=0), rtol=1e-6,
                                   atol=1e-6)
