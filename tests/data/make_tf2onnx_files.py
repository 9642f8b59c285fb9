"""Make the tf2onnx test files with the real exporter, and their TensorFlow references.

Run by hand (never by the test suite, which cannot install TensorFlow) in a
venv outside the repository:

    python3 -m venv /work/tfvenv
    /work/tfvenv/bin/pip install tensorflow-cpu tf2onnx onnx onnxruntime
    /work/tfvenv/bin/python tests/data/make_tf2onnx_files.py            # Keras 3 models
    /work/tfvenv/bin/pip install tf_keras
    /work/tfvenv/bin/python tests/data/make_tf2onnx_files.py --keras2   # Keras 2: k2_*.onnx

(made with tensorflow-cpu 2.21.0, keras 3.15.1, tf_keras 2.21.0, tf2onnx 1.17.0,
onnx 1.23.2, onnxruntime 1.32.0, numpy 2.4.6, protobuf 7.36.2 on Python 3.11;
``manifest.json`` and ``manifest_keras2.json`` record the versions, each file's
node pattern, and the exports that failed. Names of a case run alone pass the
case names: ``... make_tf2onnx_files.py tanh prelu``; then no manifest is written.)

Each case is a small seeded Keras MLP, exported with
``tf2onnx.convert.from_keras`` at opsets 13 and 17 to ``tf2onnx/NAME.onnx``
(float32, as tf2onnx writes it). Keras 3 models need ``model.output_names``
set before ``from_keras`` (tf2onnx 1.17 otherwise fails with
``KeyError: 'keras_tensor_N'``); that is the only help given to the exporter.

Beside it ``NAME.npz`` holds the points ``X`` (N, n), flattened in C order
when the Keras input has an image shape, and references computed by
TensorFlow itself in float64: a float64 twin of the Keras model carrying the
float32 weights exactly (so the reference is the function the float32 file
describes) differentiated with ``tf.GradientTape``: ``value`` (N, m),
``jacobian`` (N, m, n), ``hessdiag`` (N, m, n) from a nested tape, and the
parameter Jacobian ``pjac:<initializer name>`` (N, m, *shape) for each ONNX
initializer equal bit for bit to one Keras weight (``param_names`` lists
them; ``param_keras`` the Keras weight each is). ``value_ort`` is
onnxruntime's float32 output on the file, for a sanity cross-check. Nothing
here reads the ONNX graph to make a reference.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
KERAS2 = "--keras2" in sys.argv  # tf.keras is tf_keras (Keras 2): pip install tf_keras
if KERAS2:
    os.environ["TF_USE_LEGACY_KERAS"] = "1"

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf2onnx  # noqa: E402
from onnx import numpy_helper  # noqa: E402

keras = tf.keras
L = keras.layers
HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tf2onnx")
N_POINTS = 5
PREFIX, MANIFEST = ("k2_", "manifest_keras2.json") if KERAS2 else ("", "manifest.json")
OPSETS = (13, 17)


def gelu_tanh(x):
    return keras.activations.gelu(x, approximate=True)


class Affine(L.Layer):
    """x * scale + shift: the float64 twin of a BatchNormalization layer that tf2onnx
    folds to Mul and Add with constants TensorFlow computed in float32."""

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(input_shape[-1],), name="scale")
        self.shift = self.add_weight(shape=(input_shape[-1],), name="shift")

    def call(self, x):
        return x * self.scale + self.shift


def batchnorm(dtype):
    return L.BatchNormalization(dtype=dtype) if dtype == "float32" else Affine(dtype=dtype)


def folded_batchnorm(layer):
    """TensorFlow's float32 inference fold of a BatchNormalization layer (tf.nn.batch_normalization):
    scale = rsqrt(var + eps) * gamma, shift = beta - mean * scale."""
    gamma, beta, mean, var = layer.weights
    scale = tf.math.rsqrt(var + tf.constant(layer.epsilon, tf.float32)) * gamma
    return [scale.numpy(), (beta - mean * scale).numpy()]


def twin_weights(model32):
    """The float64 twin's weights: the float32 weights exactly, BatchNorm as TF folds it."""
    out = []
    for layer in model32.layers:
        if isinstance(layer, L.BatchNormalization):
            out.extend(folded_batchnorm(layer))
        else:
            out.extend(np.asarray(w.numpy()) for w in layer.weights)
    return [w.astype(np.float64) for w in out]


# The float64 twin spells out three activations, with the constants Keras means:
# TensorFlow has no gradient of SoftsignGrad; its LeakyRelu op keeps alpha as a
# float32 attribute and tf.nn.gelu casts 0.044715 through float32 even in float64
# (TF's own float64 values were 3e-9 and 2.4e-10 from the exact functions).
def softsign_spelled(x):
    return x / (1 + tf.abs(x))


def leaky_spelled(slope):
    return lambda x: tf.where(x > 0, x, tf.constant(slope, x.dtype) * x)


def gelu_tanh_spelled(x):
    c, s = tf.constant(0.044715, x.dtype), tf.constant(np.sqrt(2 / np.pi), x.dtype)
    return 0.5 * x * (1 + tf.tanh(s * (x + c * x ** 3)))


SOFTSIGN = {"float32": "softsign", "float64": softsign_spelled}
LEAKY = {"float32": "leaky_relu", "float64": leaky_spelled(0.2)}  # Keras' default negative_slope
GELU_TANH = {"float32": gelu_tanh, "float64": gelu_tanh_spelled}


def leaky_layer(dtype):
    if dtype == "float32":
        return L.LeakyReLU(negative_slope=0.1, dtype=dtype)
    return L.Activation(leaky_spelled(0.1), dtype=dtype)


def dense_net(acts, head=None, n_in=3, units=(5, 4), n_out=2, extra=None):
    """A builder: Dense layers with activations ``acts`` (one per hidden layer)."""
    def build(dtype):
        layers = [keras.Input((n_in,), dtype=dtype)]
        for k, (u, a) in enumerate(zip(units, acts)):
            a = a.get(dtype) if isinstance(a, dict) else a
            layers.append(L.Dense(u, activation=a, dtype=dtype))
            if extra and k == 0:
                layers.append(extra(dtype))
        layers.append(L.Dense(n_out, activation=head, dtype=dtype))
        return keras.Sequential(layers)
    return build


def shaped_net(shape):
    """Flatten an image-shaped input, then a tanh MLP."""
    def build(dtype):
        return keras.Sequential([keras.Input(shape, dtype=dtype), L.Flatten(dtype=dtype),
                                 L.Dense(6, activation="tanh", dtype=dtype), L.Dense(2, dtype=dtype)])
    return build


def keras2_cases():
    """The same kinds of net in Keras 2 (tf_keras), whose activations tf2onnx writes differently
    (hard_sigmoid is 0.2 x + 0.5 clipped; ReLU(max_value=6) a Relu6; no mish/hard_silu strings)."""
    def leaky2(dtype):
        if dtype == "float32":
            return L.LeakyReLU(alpha=0.1, dtype=dtype)
        return L.Activation(leaky_spelled(0.1), dtype=dtype)
    return {
        "tanh": dense_net(["tanh", "tanh"]),
        "hard_sigmoid": dense_net(["hard_sigmoid"], n_in=4, units=(6,)),
        "relu6_layer": dense_net([None, "tanh"], n_in=3, extra=lambda d: L.ReLU(max_value=6.0, dtype=d)),
        "gelu_tanh": dense_net([GELU_TANH], n_in=3, units=(6,)),
        "swish": dense_net(["swish"], n_in=4, units=(5,)),
        "mish": dense_net(["mish"], n_in=3, units=(5,)),
        "elu": dense_net(["elu", "tanh"]),
        "selu": dense_net(["selu"], n_in=2, units=(5,)),
        "leaky_relu_layer": dense_net([None], units=(6,), extra=leaky2),
        "prelu": dense_net([None, "tanh"], n_in=3, extra=lambda d: L.PReLU(dtype=d)),
        "batchnorm": dense_net([None, "tanh"], n_in=4, extra=batchnorm),
        "layernorm": dense_net([None, "tanh"], n_in=4, extra=lambda d: L.LayerNormalization(dtype=d)),
        "softmax_head": dense_net(["tanh"], head="softmax", n_in=4, units=(6,), n_out=3),
        "flatten_1x1x5": shaped_net((1, 1, 5)),
    }


CASES = {
    "tanh": dense_net(["tanh", "tanh"]),
    "sigmoid": dense_net(["sigmoid"], n_in=4, units=(6,), n_out=1),
    "relu": dense_net(["relu", "relu", "relu"], n_in=5, units=(8, 6, 4), n_out=3),
    "elu": dense_net(["elu", "tanh"]),
    "selu": dense_net(["selu"], n_in=2, units=(5,)),
    "softplus": dense_net(["softplus", "softplus"], n_in=4),
    "softsign": dense_net([SOFTSIGN], n_in=3, units=(7,), n_out=1),
    "swish": dense_net(["swish", "silu"], n_in=4),
    "gelu_erf": dense_net(["gelu", "gelu"], n_in=3),
    "gelu_tanh": dense_net([GELU_TANH], n_in=3, units=(6,)),
    "leaky_relu": dense_net([LEAKY, "tanh"], n_in=4),
    "leaky_relu_layer": dense_net([None], units=(6,), extra=leaky_layer),
    "relu6": dense_net(["relu6", "tanh"], n_in=3),
    "hard_sigmoid": dense_net(["hard_sigmoid"], n_in=4, units=(6,)),
    "hard_silu": dense_net(["hard_silu", "tanh"], n_in=3),
    "mish": dense_net(["mish"], n_in=3, units=(5,)),
    "softmax_head": dense_net(["tanh"], head="softmax", n_in=4, units=(6,), n_out=3),
    "log_softmax_head": dense_net(["tanh"], head="log_softmax", n_in=4, units=(6,), n_out=3),
    "prelu": dense_net([None, "tanh"], n_in=3, extra=lambda d: L.PReLU(dtype=d)),
    "batchnorm": dense_net([None, "tanh"], n_in=4, extra=batchnorm),
    "layernorm": dense_net([None, "tanh"], n_in=4, extra=lambda d: L.LayerNormalization(dtype=d)),
    "dropout": dense_net(["tanh", "sigmoid"], n_in=3, extra=lambda d: L.Dropout(0.3, dtype=d)),
    "flatten_1x1x5": shaped_net((1, 1, 5)),
    "flatten_4x3": shaped_net((4, 3)),
}


def wpath(w):
    return getattr(w, "path", None) or w.name.split(":")[0]  # Keras 3 / Keras 2


def seeded_weights(model, seed):
    """Random float32 weights for every variable (biases too: tf2onnx drops zero biases)."""
    rng = np.random.default_rng(seed)
    out = []
    for w in model.weights:
        path = wpath(w)
        if path.endswith("moving_variance"):
            value = rng.uniform(0.5, 2.0, w.shape)
        elif path.endswith("gamma"):
            value = rng.uniform(0.5, 1.5, w.shape)
        elif path.endswith("alpha"):
            value = rng.uniform(0.05, 0.4, w.shape)
        else:
            value = rng.normal(0.0, 0.8, w.shape)
        out.append(value.astype(np.float32))
    return out


def references(model64, X, shape):
    """value, jacobian, hessdiag and the Jacobian wrt each weight, by GradientTape in float64."""
    x = tf.constant(X, dtype=tf.float64)

    def f(flat):
        return model64(tf.reshape(flat, (-1,) + shape), training=False)

    with tf.GradientTape() as outer:
        outer.watch(x)
        with tf.GradientTape() as inner:
            inner.watch(x)
            y = f(x)
        J = inner.batch_jacobian(y, x)
    H = outer.batch_jacobian(J, x)  # (N, m, n, n)
    with tf.GradientTape() as tape:
        y2 = f(x)
    P = tape.jacobian(y2, model64.trainable_weights)  # each (N, m, *shape)
    return {"value": y.numpy(), "jacobian": J.numpy(),
            "hessdiag": np.diagonal(H.numpy(), axis1=-2, axis2=-1).copy()}, P


def export(model32, shape, opset):
    if not KERAS2:
        model32.output_names = ["y"]  # tf2onnx 1.17 + Keras 3 needs it (see the docstring)
    spec = (tf.TensorSpec((None,) + shape, tf.float32, name="x"),)
    proto, _ = tf2onnx.convert.from_keras(model32, input_signature=spec, opset=opset)
    return proto


def param_map(proto, model64):
    """ONNX initializer name -> (index of the twin's weight it equals bit for bit, sign):
    sign -1 where the file stores the weight negated (tf2onnx's PReLU stores -alpha)."""
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    weights = [np.asarray(w.numpy()) for w in model64.trainable_weights]
    found = {}
    for name, arr in inits.items():
        hits = [(k, sign) for sign in (1, -1) for k, w in enumerate(weights)
                if arr.dtype == np.float32 and arr.size == w.size and np.array_equal(arr.ravel(), sign * w.ravel())]
        if len(hits) == 1:
            found[name] = hits[0]
    return found


def pattern(proto):
    """Each node as op(inputs): scalar constants by value, other initializers as W, the
    previous node's output as x, others by their node's op; attributes after a semicolon."""
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    made = {out: node.op_type for node in proto.graph.node for out in node.output}
    words = []
    for k, node in enumerate(proto.graph.node):
        previous = proto.graph.node[k - 1].output if k else [i.name for i in proto.graph.input]
        args = []
        for name in node.input:
            if name in inits:
                arr = inits[name]
                args.append(f"{arr.ravel()[0]:.9g}" if arr.size == 1 and arr.dtype.kind == "f"
                            else f"{arr.ravel().tolist()}" if arr.dtype.kind == "i" else f"W{list(arr.shape)}")
            else:
                args.append("x" if name in previous else made.get(name, name))
        attrs = [f"{a.name}={onnx.helper.get_attribute_value(a)}" for a in node.attribute]
        words.append(f"{node.op_type}({', '.join(args)}{'; ' + ', '.join(attrs) if attrs else ''})")
    return words


def make(name, build, opset, seed):
    keras.backend.clear_session()  # the same layer names whichever cases run
    keras.utils.set_random_seed(seed)
    model32 = build("float32")
    model32.set_weights(seeded_weights(model32, seed))
    keras.backend.clear_session()  # the twin's weights get the same names
    model64 = build("float64")
    model64.set_weights(twin_weights(model32))
    shape = tuple(model32.inputs[0].shape[1:])
    n = int(np.prod(shape))
    X = np.random.default_rng(seed + 1).normal(0.0, 1.2, (N_POINTS, n)).astype(np.float32).astype(np.float64)
    proto = export(model32, shape, opset)
    path = os.path.join(HERE, f"{PREFIX}{name}_op{opset}.onnx")
    onnx.save(proto, path)
    sess = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    value_ort = sess.run(None, {"x": X.astype(np.float32).reshape((-1,) + shape)})[0]
    ref, P = references(model64, X, shape)
    found = param_map(proto, model64)
    names = sorted(found)
    keras_names = [("-" if found[k][1] < 0 else "") + wpath(model64.trainable_weights[found[k][0]]) for k in names]
    arrays = dict(ref, X=X, value_ort=value_ort, param_names=np.array(names, dtype=str),
                  param_keras=np.array(keras_names, dtype=str))
    inits = {t.name: tuple(t.dims) for t in proto.graph.initializer}
    for k in names:  # by the file's shape of the tensor (tf2onnx stores LayerNorm's gamma as (1, n))
        arrays["pjac:" + k] = (found[k][1] * P[found[k][0]].numpy()).reshape((N_POINTS, -1) + inits[k])
    np.savez_compressed(os.path.join(HERE, f"{PREFIX}{name}_op{opset}.npz"), **arrays)
    ops = [node.op_type for node in proto.graph.node]
    gap = float(np.max(np.abs(value_ort - ref["value"])) / max(1.0, np.max(np.abs(ref["value"]))))
    return {"opset": opset, "ops": ops, "pattern": pattern(proto), "input_shape": list(shape),
            "n_initializers": len(proto.graph.initializer),
            "params_mapped": len(names), "params_keras": len(model64.trainable_weights),
            "ort_vs_tf64": gap}


def main(only=()):
    os.makedirs(HERE, exist_ok=True)
    manifest = {"versions": {"tensorflow": tf.__version__, "keras": getattr(keras, "__version__", None) or __import__("tf_keras").__version__,
                             "tf2onnx": tf2onnx.__version__, "onnx": onnx.__version__,
                             "onnxruntime": onnxruntime.__version__, "numpy": np.__version__},
                "files": {}}
    cases = keras2_cases() if KERAS2 else CASES
    for seed, (name, build) in enumerate(sorted(cases.items())):
        if only and name not in only:
            continue
        for opset in OPSETS:
            try:
                info = make(name, build, opset, 100 + seed)
            except Exception as exc:  # the exporter's failure is a finding: record it, keep no file
                for ext in (".onnx", ".npz"):
                    if os.path.exists(os.path.join(HERE, f"{PREFIX}{name}_op{opset}{ext}")):
                        os.remove(os.path.join(HERE, f"{PREFIX}{name}_op{opset}{ext}"))
                manifest["failed"] = manifest.get("failed", {})
                manifest["failed"][f"{PREFIX}{name}_op{opset}"] = f"{type(exc).__name__}: {str(exc)[:300]}"
                print(f"{PREFIX}{name}_op{opset} FAILED", type(exc).__name__, str(exc)[:300], flush=True)
                continue
            manifest["files"][f"{PREFIX}{name}_op{opset}"] = info
            print(f"{PREFIX}{name}_op{opset}", " ".join(info["ops"]), f"ort gap {info['ort_vs_tf64']:.1e}",
                  f"params {info['params_mapped']}/{info['params_keras']}", flush=True)
    if not only:
        with open(os.path.join(HERE, MANIFEST), "w") as fh:
            json.dump(manifest, fh, indent=1, sort_keys=True)
            fh.write("\n")


if __name__ == "__main__":
    main([a for a in sys.argv[1:] if a != "--keras2"])
