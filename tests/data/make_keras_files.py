"""Generate the real Keras files under tests/data/keras/ (run once, by hand).

The tests read these files WITHOUT Keras installed; this script needs Keras.
Generated with:
    keras 3.15.1 (TensorFlow backend), tensorflow-cpu 2.21.0, tf_keras 2.21.0
    (the Keras 2 API, for the *_k2.h5 files), h5py 3.14.0, numpy 2.4.6, Python 3.11.
Run:
    python -m venv venv && venv/bin/pip install tensorflow-cpu tf-keras h5py
    KERAS_BACKEND=tensorflow venv/bin/python tests/data/make_keras_files.py

The TensorFlow backend is used because Keras 3 on JAX/NumPy/torch computes
some ops (tanh, ...) in float32 even with floatx float64
(keras/src/backend/common/dtypes.py: BIT64_TO_BIT32_DTYPE); on TensorFlow the
references are exact float64.

For every model NAME it writes:
    NAME.keras       Keras 3 archive           (model.save)
    NAME.h5          Keras 3 legacy HDF5 file  (model.save)
    NAME_k2.h5       Keras 2 (tf_keras) legacy HDF5 file, for some models
    NAME_ref.npz     X (points), Y = model.predict(X) in float64,
                     J = dY/dX (N, m, n) and H = d2Y/dX2 (N, m, n, n) by
                     TensorFlow autodiff
and the refusal cases (lambda_canary, conv2d, two_branch, two_inputs,
hard_sigmoid, double_activation, corrupt_*, weights-only files).
"""

import io
import os
import shutil
import sys
import zipfile

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras  # noqa: E402
import tf_keras  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "keras")
# The Lambda canary writes this file if its code is ever run.
CANARY = "/tmp/jaccli_keras_lambda_canary_ran"

keras.config.set_floatx("float64")
tf_keras.backend.set_floatx("float64")


def points(rng, n, count=6):
    return rng.normal(size=(count, n)) * 1.5


def randomize(model, rng):
    """Give every weight a seeded, non-trivial value (BatchNormalization's
    moving variance stays positive)."""
    for layer in model.layers:
        values = []
        for w in layer.get_weights():
            if w.ndim == 0:  # Normalization's count
                values.append(w)
                continue
            v = rng.normal(size=w.shape) * 0.8
            values.append(v)
        names = [w.name.split("/")[-1].split(":")[0] for w in layer.weights]
        if layer.__class__.__name__ == "BatchNormalization":
            values = [
                np.abs(v) + 0.3 if n in ("moving_variance", "gamma") else v
                for n, v in zip(names, values)
            ]
        if layer.__class__.__name__ == "Normalization":
            continue  # adapted on data instead
        if values:
            layer.set_weights(values)


def reference(model, x):
    x = tf.constant(x, dtype=tf.float64)
    try:
        with tf.GradientTape() as outer:
            outer.watch(x)
            with tf.GradientTape() as inner:
                inner.watch(x)
                y = model(x, training=False)
            jac = inner.batch_jacobian(y, x)
        hess = outer.batch_jacobian(jac, x).numpy()
    except LookupError:
        # TensorFlow has no second derivative of softsign: no H reference.
        with tf.GradientTape() as inner:
            inner.watch(x)
            y = model(x, training=False)
        jac = inner.batch_jacobian(y, x)
        hess = np.full(jac.shape + (x.shape[1],), np.nan)
    y_pred = np.asarray(model.predict(x.numpy(), verbose=0), dtype=np.float64)
    assert np.allclose(y_pred, y.numpy(), rtol=1e-12, atol=1e-14)
    assert y_pred.dtype == np.float64
    return y_pred, jac.numpy(), hess


def save_all(name, model, x, k2=None):
    y, jac, hess = reference(model, x)
    model.save(os.path.join(OUT, f"{name}.keras"))
    model.save(os.path.join(OUT, f"{name}.h5"))
    refs = dict(X=x, Y=y, J=jac)
    if not np.isnan(hess).any():
        refs["H"] = hess
    np.savez(os.path.join(OUT, f"{name}_ref.npz"), **refs)
    if k2 is not None:
        # The same weights in a Keras 2 model; its predictions must agree.
        k2.set_weights(model.get_weights())
        for layer in k2.layers:
            if hasattr(layer, "finalize_state"):  # Normalization's mean/variance
                layer.finalize_state()
        y2, _, _ = reference(k2, x)
        np.testing.assert_allclose(y2, y, rtol=1e-12, atol=1e-14)
        k2.save(os.path.join(OUT, f"{name}_k2.h5"), save_format="h5")


def build_models(rng):
    L, L2 = keras.layers, tf_keras.layers

    def both(make):
        # Fresh sessions: layer names restart at dense, dense_1, ...
        keras.backend.clear_session()
        tf_keras.backend.clear_session()
        return make(keras, L), make(tf_keras, L2)

    # 1. tanh / sigmoid / linear
    m3, m2 = both(
        lambda K, L: K.Sequential(
            [
                K.Input((3,)),
                L.Dense(5, activation="tanh"),
                L.Dense(4, activation="sigmoid"),
                L.Dense(2),
            ]
        )
    )
    randomize(m3, rng)
    save_all("seq_tanh_sigmoid", m3, points(rng, 3), k2=m2)

    # 2. relu, Dropout, softmax last
    m3, m2 = both(
        lambda K, L: K.Sequential(
            [
                K.Input((4,)),
                L.Dense(6, activation="relu"),
                L.Dropout(0.3),
                L.Dense(3, activation="softmax"),
            ]
        )
    )
    randomize(m3, rng)
    save_all("seq_relu_softmax", m3, points(rng, 4), k2=m2)

    # 3. gelu (Keras default: exact), swish, no bias on the last layer
    m3, m2 = both(
        lambda K, L: K.Sequential(
            [
                K.Input((2,)),
                L.Dense(5, activation="gelu"),
                L.Dense(5, activation="swish"),
                L.Dense(1, use_bias=False),
            ]
        )
    )
    randomize(m3, rng)
    save_all("seq_gelu_swish_nobias", m3, points(rng, 2), k2=m2)

    # 4. elu, selu, softplus, softsign, exponential
    m3, m2 = both(
        lambda K, L: K.Sequential(
            [
                K.Input((3,)),
                L.Dense(4, activation="elu"),
                L.Dense(4, activation="selu"),
                L.Dense(4, activation="softplus"),
                L.Dense(3, activation="softsign"),
                L.Dense(2, activation="exponential"),
            ]
        )
    )
    randomize(m3, rng)
    save_all("seq_elu_selu_softplus", m3, points(rng, 3), k2=m2)

    # 5. activation layers folded into linear Dense layers
    def act_layers(K, L):
        leaky = (
            L.LeakyReLU(negative_slope=0.15) if K is keras else L.LeakyReLU(alpha=0.15)
        )
        return K.Sequential(
            [
                K.Input((3,)),
                L.Dense(5),
                leaky,
                L.Dense(4, use_bias=False),
                L.Activation("tanh"),
                L.Dense(4),
                L.ELU(),
                L.Dense(4),
                L.ReLU(),
                L.Dense(3),
                L.Activation("linear"),
                L.Softmax(),
            ]
        )

    m3, m2 = both(act_layers)
    randomize(m3, rng)
    save_all("seq_activation_layers", m3, points(rng, 3), k2=m2)

    # 6. Normalization adapted on data, BatchNormalization after a non-linear
    #    Dense, after a linear Dense (then an Activation), and last.
    train = rng.normal(loc=[1.0, -2.0, 0.5], scale=[2.0, 0.5, 3.0], size=(64, 3))

    def norm_bn(K, L):
        return K.Sequential(
            [
                K.Input((3,)),
                L.Normalization(),
                L.Dense(6, activation="tanh"),
                L.BatchNormalization(epsilon=0.01),
                L.Dense(4),
                L.BatchNormalization(),
                L.Activation("softplus"),
                L.Dense(2, activation="tanh"),
                L.BatchNormalization(),
            ]
        )

    m3, m2 = both(norm_bn)
    m3.layers[0].adapt(train)
    randomize(m3, rng)
    save_all("seq_norm_batchnorm", m3, points(rng, 3) + [1.0, -2.0, 0.5], k2=m2)

    # 7. functional: BatchNormalization first, leaky_relu by name (0.2)
    def bn_first(K, L):
        inp = K.Input((3,))
        x = L.BatchNormalization()(inp)
        x = L.Dense(4, activation="leaky_relu")(x)
        x = L.Dropout(0.2)(x)
        out = L.Dense(1)(x)
        return K.Model(inp, out)

    keras.backend.clear_session()
    m3 = bn_first(keras, L)
    randomize(m3, rng)
    save_all("func_batchnorm_first", m3, points(rng, 3))

    # 8. functional chain (Keras 3 and Keras 2 node formats)
    def func_chain(K, L):
        inp = K.Input((3,), name="features")
        x = L.Dense(4, activation="softsign", name="hidden_a")(inp)
        x = L.Dropout(0.1)(x)
        x = L.Dense(3, activation="sigmoid", name="hidden_b")(x)
        out = L.Dense(2, name="head")(x)
        return K.Model(inp, out)

    m3, m2 = both(func_chain)
    randomize(m3, rng)
    save_all("func_chain", m3, points(rng, 3), k2=m2)


def refusals(rng):
    L = keras.layers
    keras.backend.clear_session()
    # A Lambda whose code, if it ever ran, would create CANARY.
    m = keras.Sequential(
        [
            keras.Input((2,)),
            L.Dense(3),
            # The path is a literal: Keras saves the function's bytecode only.
            L.Lambda(
                lambda x: x
                * float(open("/tmp/jaccli_keras_lambda_canary_ran", "w").close() is None)
            ),
            L.Dense(1),
        ]
    )
    m.save(os.path.join(OUT, "lambda_canary.keras"))
    m.save(os.path.join(OUT, "lambda_canary.h5"))
    if os.path.exists(CANARY):
        os.remove(CANARY)  # building the model ran it once, here

    keras.backend.clear_session()
    m = keras.Sequential(
        [keras.Input((4, 4, 1)), L.Conv2D(2, 3), L.Flatten(), L.Dense(1)]
    )
    m.save(os.path.join(OUT, "conv2d.keras"))
    m.save(os.path.join(OUT, "conv2d.h5"))

    keras.backend.clear_session()
    inp = keras.Input((3,))
    a = L.Dense(4, activation="tanh")(inp)
    b = L.Dense(4, activation="relu")(inp)
    out = L.Dense(1)(L.Add()([a, b]))
    m = keras.Model(inp, out)
    m.save(os.path.join(OUT, "two_branch.keras"))
    m.save(os.path.join(OUT, "two_branch.h5"))

    keras.backend.clear_session()
    i1, i2 = keras.Input((2,)), keras.Input((1,))
    out = L.Dense(1)(L.Concatenate()([i1, i2]))
    m = keras.Model([i1, i2], out)
    m.save(os.path.join(OUT, "two_inputs.keras"))

    keras.backend.clear_session()
    m = keras.Sequential([keras.Input((2,)), L.Dense(3, activation="hard_sigmoid")])
    m.save(os.path.join(OUT, "hard_sigmoid.keras"))

    keras.backend.clear_session()
    m = keras.Sequential(
        [keras.Input((2,)), L.Dense(3, activation="tanh"), L.Activation("relu")]
    )
    m.save(os.path.join(OUT, "double_activation.keras"))

    # Weights-only files (need a spec; documented in docs/keras.md).
    keras.backend.clear_session()
    tf_keras.backend.clear_session()
    m = keras.Sequential(
        [keras.Input((3,)), L.Dense(4, activation="tanh"), L.Dense(1)]
    )
    randomize(m, rng)
    m.save_weights(os.path.join(OUT, "weights_only.weights.h5"))
    m2 = tf_keras.Sequential(
        [tf_keras.Input((3,)), tf_keras.layers.Dense(4, activation="tanh"),
         tf_keras.layers.Dense(1)]
    )
    m2.set_weights(m.get_weights())
    m2.save_weights(os.path.join(OUT, "weights_only_k2.h5"), save_format="h5")
    x = points(rng, 3)
    np.savez(
        os.path.join(OUT, "weights_only_ref.npz"),
        X=x,
        Y=np.asarray(m.predict(x, verbose=0), dtype=np.float64),
    )

    corrupt_archives()


def corrupt_archives():
    good = os.path.join(OUT, "seq_tanh_sigmoid.keras")
    data = open(good, "rb").read()
    with open(os.path.join(OUT, "corrupt_truncated.keras"), "wb") as f:
        f.write(data[: len(data) // 2])

    def rewrite(name, change):
        with zipfile.ZipFile(good) as src, zipfile.ZipFile(
            os.path.join(OUT, name), "w", zipfile.ZIP_DEFLATED
        ) as dst:
            for item in src.namelist():
                content = change(item, src.read(item))
                if content is not None:
                    dst.writestr(item, content)

    rewrite(
        "corrupt_no_weights.keras",
        lambda item, c: None if item == "model.weights.h5" else c,
    )
    rewrite(
        "corrupt_no_config.keras",
        lambda item, c: None if item == "config.json" else c,
    )
    rewrite(
        "corrupt_bad_json.keras",
        lambda item, c: c[: len(c) // 2] if item == "config.json" else c,
    )

    def drop_dataset(item, content):
        if item != "model.weights.h5":
            return content
        buf = io.BytesIO(content)
        with h5py.File(buf, "a") as h5:
            del h5["layers/dense_1/vars/1"]
        return buf.getvalue()

    rewrite("corrupt_missing_dataset.keras", drop_dataset)


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    rng = np.random.default_rng(20240611)
    build_models(rng)
    refusals(rng)
    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write(
            "Real Keras files for tests/test_keras.py, written by "
            "tests/data/make_keras_files.py with keras "
            f"{keras.__version__} (TensorFlow backend), tensorflow "
            f"{tf.__version__}, tf_keras {tf_keras.__version__} (the *_k2.h5 "
            f"files), h5py {h5py.__version__}, numpy {np.__version__}, "
            f"Python {sys.version.split()[0]}.\n"
        )
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"wrote {len(os.listdir(OUT))} files, {total} bytes, into {OUT}")


if __name__ == "__main__":
    main()
