"""Generate the Keras architecture-JSON files and the ReLU-after-ReLU models
under tests/data/keras/ (run once, by hand; adds files, removes none).

Needs the same environment as make_keras_files.py (whose helpers it uses):
    keras 3.15.1 (TensorFlow backend), tensorflow-cpu 2.21.0, tf_keras 2.21.0
    KERAS_BACKEND=tensorflow venv/bin/python tests/data/make_keras_json_files.py

Files, each NAME with NAME_ref.npz (X, Y = model.predict(X), J and H by
TensorFlow autodiff, as make_keras_files.py writes them):
    k2_seq.json + k2_seq.h5          Keras 2 (tf_keras) Sequential, the old
        style with input_shape on the first Dense: model.to_json() beside
        model.save_weights("k2_seq.h5") (weights only)
    k2_func.json + k2_func.h5        the same for a Keras 2 functional model
    k3_seq.json + k3_seq.weights.h5  Keras 3: model.to_json() beside
        model.save_weights(...) (weights only)
    relu_leaky.keras, relu_leaky.h5, relu_leaky_k2.h5, and relu_leaky_k2.json
        + relu_leaky_k2_weights.h5: Dense(relu) -> LeakyReLU(0.1), twice, then
        a linear Dense (a ReLU/LeakyReLU after a non-negative activation is
        the identity, which jaccli folds)
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from make_keras_files import OUT, keras, points, randomize, reference, tf_keras  # noqa: E402

import numpy as np  # noqa: E402


def save_ref(name, model, x):
    y, jac, hess = reference(model, x)
    np.savez(os.path.join(OUT, f"{name}_ref.npz"), X=x, Y=y, J=jac, H=hess)


def write_json(model, name):
    with open(os.path.join(OUT, name), "w") as handle:
        handle.write(model.to_json())


def keras2_files(rng):
    K, L = tf_keras, tf_keras.layers
    K.backend.clear_session()
    m = K.Sequential([
        L.Dense(5, activation="tanh", input_shape=(3,)),
        L.Dense(4, activation="relu"),
        L.Dropout(0.2),
        L.Dense(2),
    ])
    randomize(m, rng)
    write_json(m, "k2_seq.json")
    m.save_weights(os.path.join(OUT, "k2_seq.h5"), save_format="h5")
    save_ref("k2_seq", m, points(rng, 3))

    K.backend.clear_session()
    inp = K.Input((2,), name="features")
    x = L.Dense(4, activation="sigmoid", name="hidden")(inp)
    out = L.Dense(1, name="head")(x)
    m = K.Model(inp, out)
    randomize(m, rng)
    write_json(m, "k2_func.json")
    m.save_weights(os.path.join(OUT, "k2_func.h5"), save_format="h5")
    save_ref("k2_func", m, points(rng, 2))


def keras3_files(rng):
    L = keras.layers
    keras.backend.clear_session()
    m = keras.Sequential([keras.Input((3,)), L.Dense(4, activation="softplus"), L.Dense(2)])
    randomize(m, rng)
    write_json(m, "k3_seq.json")
    m.save_weights(os.path.join(OUT, "k3_seq.weights.h5"))
    save_ref("k3_seq", m, points(rng, 3))


def relu_leaky_files(rng):
    keras.backend.clear_session()
    L = keras.layers
    m3 = keras.Sequential([
        keras.Input((4,)),
        L.Dense(8, activation="relu"), L.LeakyReLU(negative_slope=0.1),
        L.Dense(8, activation="relu"), L.LeakyReLU(negative_slope=0.1),
        L.Dense(1),
    ])
    randomize(m3, rng)
    x = points(rng, 4)
    save_ref("relu_leaky", m3, x)
    m3.save(os.path.join(OUT, "relu_leaky.keras"))
    m3.save(os.path.join(OUT, "relu_leaky.h5"))

    tf_keras.backend.clear_session()
    L2 = tf_keras.layers
    m2 = tf_keras.Sequential([
        L2.Dense(8, activation="relu", input_shape=(4,)), L2.LeakyReLU(alpha=0.1),
        L2.Dense(8, activation="relu"), L2.LeakyReLU(alpha=0.1),
        L2.Dense(1),
    ])
    m2.set_weights(m3.get_weights())
    y2, _, _ = reference(m2, x)
    np.testing.assert_allclose(y2, np.load(os.path.join(OUT, "relu_leaky_ref.npz"))["Y"],
                               rtol=1e-12, atol=1e-14)
    m2.save(os.path.join(OUT, "relu_leaky_k2.h5"), save_format="h5")
    write_json(m2, "relu_leaky_k2.json")
    m2.save_weights(os.path.join(OUT, "relu_leaky_k2_weights.h5"), save_format="h5")


def main():
    rng = np.random.default_rng(20261201)
    keras2_files(rng)
    keras3_files(rng)
    relu_leaky_files(rng)


if __name__ == "__main__":
    main()
