"""Each layer's variables by role ("kernel", "bias", "gamma", ...), in either
layout: ``layers/<class in snake case>/vars/<index>`` (a ``.keras`` archive's
model.weights.h5, Keras 3 ``save_weights``) or one group per layer name
listing its ``weight_names`` (a legacy model file's ``model_weights``, Keras 2
``save_weights``)."""

import re

import h5py
import numpy as np

from jaccli.errors import JaccliError
from jaccli.formats.keras.layers import layer_class, layer_name, weight_roles
from jaccli.formats.stack import checked_tensor
from jaccli.formats.tensors import check_tensor_size, tensor_bytes

def _read_dataset(dataset, fname, where, home):
    """A dataset's values as checked float64, after refusing data kept in other
    files or too large to hold."""
    if dataset.file != home.file or dataset.external or dataset.is_virtual:
        raise JaccliError(f"{fname}: '{where}' keeps its data in external files; refused")
    nbytes = tensor_bytes(dataset.shape or (), dataset.dtype)
    check_tensor_size(nbytes, f"{fname}: '{where}' {dataset.shape}")
    return checked_tensor(dataset[()], f"{fname}: weight '{where}'")


class ArchiveWeights:
    """Variables of a ``.keras`` archive's model.weights.h5."""

    def __init__(self, h5, all_layers, fname):
        self.h5 = h5
        self.fname = fname
        # Keras addresses each layer by its class name in snake case, made
        # unique in layer order (dense, dense_1, ...), not by the layer name.
        self.paths = {}
        used = {}
        for entry in all_layers:
            base = _snake_case(layer_class(entry))
            if base in used:
                used[base] += 1
                unique = f"{base}_{used[base]}"
            else:
                used[base] = 0
                unique = base
            self.paths[layer_name(entry)] = unique

    def get(self, entry):
        name = layer_name(entry)
        where = f"layers/{self.paths.get(name, '?')}/vars"
        group = self.h5.get(where)
        if group is None:
            # tf.keras 2.13-2.15 archives (see H5IOStore.get).
            legacy = where.replace("layers/", "_layer_checkpoint_dependencies/", 1)
            group = self.h5.get(legacy)
            if group is not None:
                where = legacy
        if not isinstance(group, h5py.Group):
            raise JaccliError(
                f"{self.fname}: model.weights.h5 has no '{where}' group for "
                f"layer '{name}'"
            )
        stored_name = group.attrs.get("name")
        if isinstance(stored_name, bytes):
            stored_name = stored_name.decode("utf-8", errors="replace")
        if stored_name is not None and stored_name != name:
            raise JaccliError(
                f"{self.fname}: model.weights.h5 '{where}' belongs to layer "
                f"'{stored_name}', not '{name}': weights and config do not match"
            )
        arrays = {}
        for index, role in enumerate(weight_roles(entry)):
            dataset = group.get(str(index))
            if not isinstance(dataset, h5py.Dataset):
                raise JaccliError(
                    f"{self.fname}: model.weights.h5 has no '{where}/{index}' "
                    f"({role} of layer '{name}')"
                )
            arrays[role] = _read_dataset(dataset, self.fname, f"{where}/{index}", self.h5)
        return arrays


class LegacyWeights:
    """Datasets of a legacy HDF5 model file's ``model_weights`` group, or of the
    root of a Keras 2 ``save_weights`` file (the same layout)."""

    def __init__(self, group, fname):
        self.group = group
        self.fname = fname
        self.prefix = group.name.strip("/")  # 'model_weights', or '' for the root

    def _path(self, *parts):
        return "/".join(filter(None, (self.prefix,) + parts))

    def get(self, entry):
        name = layer_name(entry)
        layer_group = self.group.get(name)
        if not isinstance(layer_group, h5py.Group):
            if not weight_roles(entry):
                return {}
            raise JaccliError(
                f"{self.fname}: no weights group '{self._path(name)}' for layer '{name}'"
            )
        arrays = {}
        for weight_name in _attribute_list(layer_group, "weight_names"):
            dataset = layer_group.get(weight_name)
            where = self._path(name, weight_name)
            if not isinstance(dataset, h5py.Dataset):
                raise JaccliError(f"{self.fname}: missing weight dataset '{where}'")
            # 'dense/kernel:0' (Keras 2), 'sequential/dense/kernel' (Keras 3).
            role = weight_name.rsplit("/", 1)[-1].split(":", 1)[0]
            arrays[role] = _read_dataset(dataset, self.fname, where, self.group)
        for role in weight_roles(entry):
            if role not in arrays and role != "count":
                raise JaccliError(
                    f"{self.fname}: layer '{name}' has no '{role}' weight in "
                    f"'{self._path(name)}'"
                )
        return arrays


def _attribute_list(group, name):
    """A list-of-strings attribute; Keras splits big ones into name0, name1, ...
    (legacy_h5_format.save_attributes_to_hdf5_group)."""
    if name in group.attrs:
        values = list(np.atleast_1d(group.attrs[name]))
    else:
        values, chunk = [], 0
        while f"{name}{chunk}" in group.attrs:
            values.extend(np.atleast_1d(group.attrs[f"{name}{chunk}"]))
            chunk += 1
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


def _snake_case(name):
    # keras/src/utils/naming.py: to_snake_case
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()
