"""Read a Keras model file as a jaccli spec plus its tensors, without Keras.

A Keras model file needs no spec: when none is given (--spec, a spec file
beside the model, one embedded in the file), its own configuration is read.
Two layouts are read:

* the Keras 3 ``.keras`` archive: a zip holding ``config.json`` (the model's
  architecture) and ``model.weights.h5``, whose variables live in
  ``layers/<class name in snake case, made unique>/vars/<index>``, in the order
  the layer created them (``keras/src/saving/saving_lib.py``: ``_save_state``,
  ``_save_container_state``, ``Layer.save_own_variables``);
* the legacy HDF5 model file of ``model.save("m.h5")`` (Keras 2, tf.keras and
  Keras 3): a ``model_config`` JSON attribute and a ``model_weights`` group
  with one subgroup per layer, listing its datasets in a ``weight_names``
  attribute (``keras/src/legacy/saving/legacy_h5_format.py``). Weight names
  are ``dense/kernel:0`` in Keras 2 and ``sequential/dense/kernel`` or
  ``dense/kernel`` in Keras 3; only the last component is used.

A weights-only file (``model.save_weights``) is read with the model's
architecture JSON (``model.to_json()``: the same configuration, on its own)
by ``read_keras_json``; its weights are in one of the two layouts above.

A ``ReLU``/``LeakyReLU`` after ``relu``, ``sigmoid``, ``softplus``,
``exponential``, ``relu6`` or ``hard_sigmoid`` is the identity there and is
dropped (jaccli.formats.stack).

The configuration is parsed with ``json.loads`` and nothing else: no Keras
import, no deserialization, no pickle, no eval. A ``Lambda`` layer is refused
from its class name; its code is never looked at.

Supported: Sequential models and single-chain functional models (of one with
several outputs, the chain to the output layer ``output_name`` names) built from
``InputLayer``, ``Dense``, ``Activation`` / ``ReLU`` / ``LeakyReLU`` / ``ELU`` /
``Softmax`` (folded into the preceding linear ``Dense``), ``PReLU`` (its
``alpha`` the slope, a parameter), ``LayerNormalization`` (the ``layer_norm``
activation, gamma and beta a diagonal layer), ``Dropout`` and the
other layers that are the identity at inference, ``Flatten`` (of a vector, or first
of an input of known shape (batch, d1, d2, ...): its columns in C order),
``Normalization`` (before any ``Dense`` or ``BatchNormalization``: it becomes
the input scaling) and ``BatchNormalization`` (its inference map ``x * s + c``
is folded exactly).

``BatchNormalization`` is reported to the DenseStack (jaccli.formats.stack) with
its own tensors (``<layer>/gamma``, ``<layer>/beta``, ``<layer>/moving_mean``,
``<layer>/moving_variance``): a map after a linear ``Dense``, before the next
``Dense``, or of the outputs after the last activation. jaccli.formats.assemble
folds it, the parameters staying the file's tensors (gamma and beta included).

The modules, each importing only those listed before it:

* ``layers``: the layer vocabulary: layer classes jaccli reads, the
  activations, the variables each layer saves;
* ``chain``: the model configuration walked from input to output (Sequential
  or single-chain functional) into a list of layers;
* ``weights``: each layer's variables, in either weights layout;
* ``report``: the chain of layers reported to the DenseStack;
* ``files``: the files themselves (the archive, legacy HDF5, the model JSON)
  and the entry points below.
"""

from jaccli.formats.keras.files import (
    keras_json_config,
    keras_weights_store,
    read_keras,
    read_keras_json,
)

__all__ = ["keras_json_config", "keras_weights_store", "read_keras", "read_keras_json"]
