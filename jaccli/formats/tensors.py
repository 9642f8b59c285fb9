"""Named tensors of a weight file: the ``TensorStore`` every format's reader
returns, and what the readers share (the embedded spec's name and text, the
size check, the short list of names in messages).

The stores themselves: HDF5 (jaccli.formats.hdf5), NPZ (jaccli.formats.npz),
safetensors (jaccli.formats.safetensors); where the spec comes from and
which store a file gets: jaccli.formats.discovery.
"""

import numpy as np

from jaccli.errors import JaccliError
from jaccli.messages import clip, short_list
from jaccli.formats.stack import checked_tensor
from jaccli.limits import check_memory

EMBEDDED_SPEC = "jaccli_spec"


class TensorStore:
    """Named tensors of one file, read when asked for, checked when taken.

    ``close`` (if given) releases the open file; ``read`` first copies out the
    tensors that will be taken.
    """

    def __init__(self, path, getter, names, close=None):
        self.path = str(path)
        self._get = getter
        self.names = names
        self._close = close

    def read(self, names):
        """A store of ``names`` read now, which outlives this store's open file.

        A tensor that cannot be read keeps its error until it is taken, so
        errors still come in the order the layers take their tensors.
        """
        values = {}
        for name in dict.fromkeys(names):
            try:
                values[name] = self._get(name)
            except JaccliError as exc:
                values[name] = exc

        def get(name):
            value = values.get(name)
            if isinstance(value, JaccliError):
                raise value
            return value

        return TensorStore(self.path, get, self.names)

    def close(self):
        if self._close is not None:
            close, self._close = self._close, None
            close()

    def take(self, name):
        array = self._get(name)
        if array is None:
            raise JaccliError(f"{self.path}: no tensor '{name}' in the file "
                              f"(it has: {short_list(self.names)})")
        return checked_tensor(array, f"{self.path}: tensor '{name}'")


def tensor_bytes(shape, dtype):
    """The bytes a tensor of ``shape`` and ``dtype`` takes in memory."""
    return int(np.prod(shape, dtype=object)) * max(np.dtype(dtype).itemsize, 1)


def check_tensor_size(nbytes, where):
    """Refuse, before reading it, a tensor larger than the memory budget (jaccli.limits)."""
    check_memory(nbytes, where, "a dense MLP's weights are far smaller: is this the right file?")


def embedded_spec_text(value, path, what):
    """An embedded spec as text: a str, bytes, or a one-element string array."""
    if value is None:
        return None
    if isinstance(value, np.ndarray) and value.dtype.kind in "USO" and value.size == 1:
        if value.dtype.kind == "U":  # UCS-4 code units: a damaged file may hold impossible ones
            codes = np.ascontiguousarray(value.astype(value.dtype.newbyteorder("="))).view(np.uint32)
            if codes.size and int(codes.max()) > 0x10FFFF:
                raise JaccliError(f"{path}: {what} is not valid text (a code point beyond U+10FFFF)")
        value = value.reshape(()).item()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        return value
    raise JaccliError(f"{path}: {what} must be a string holding the YAML spec, "
                      f"not {type(value).__name__} {clip(value)}")

