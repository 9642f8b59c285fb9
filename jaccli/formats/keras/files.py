"""The Keras files: the ``.keras`` zip archive, the legacy HDF5 model file, the
architecture JSON of ``model.to_json()`` with its weights file. Each is read
into its model configuration and weights, then handed to ``chain``,
``weights`` and ``report``."""

from __future__ import annotations

import io
import json
import zipfile

import h5py
import numpy as np

from jaccli.errors import JaccliError, param
from jaccli.formats.file_kinds import is_zip, suffix
from jaccli.formats.hdf5 import H5_ERRORS, hdf5_store
from jaccli.formats.keras.chain import all_layers, model_chain
from jaccli.formats.keras.report import build
from jaccli.formats.keras.weights import ArchiveWeights, LegacyWeights
from jaccli.formats.npz import ZIP_ERRORS
from jaccli.formats.spec import MAX_SPEC_BYTES
from jaccli.messages import clip

_DAMAGED = (OSError, RuntimeError, KeyError, ValueError, TypeError, AttributeError, IndexError,
            EOFError, zipfile.BadZipFile, NotImplementedError)

# Refuse to inflate more than this from a zip member (archives of small MLPs
# are far below it; this guards against decompression bombs).
_MAX_MEMBER_BYTES = 1 << 30


def read_keras(path: str, output_name=None) -> tuple[dict, dict[str, np.ndarray]]:
    """Read a Keras model file (.keras archive, or legacy HDF5 full-model file with a
    `model_config` attribute) and return (spec, tensors).

    ``spec`` is a spec as YAML would give it (inputs and outputs as counts,
    layout ``in_out``); ``tensors`` maps every tensor name the spec uses
    (``<layer name>/kernel``, ``<layer name>/bias``) to a float64 array.
    Raises JaccliError, with one line naming the file, for anything that is
    not a readable Keras model made of supported layers. ``output_name``: the
    output layer to read, of a functional model with several.
    """
    fname = str(path)
    try:
        if is_zip(path):
            return _read_archive(path, fname, output_name)
        try:
            is_h5 = h5py.is_hdf5(path)
        except OSError as exc:
            raise JaccliError(f"{fname}: cannot read the file ({exc})") from None
        if is_h5:
            return _read_legacy_h5(path, fname, output_name)
    except _DAMAGED as exc:
        raise _damaged(fname, exc, "Keras model file") from None
    if suffix(fname) == ".keras":
        raise JaccliError(f"{fname}: damaged Keras archive (not a valid zip file)")
    raise JaccliError(
        f"{fname}: not a Keras model file (neither a .keras zip archive nor HDF5)"
    )


def read_keras_json(json_path, weights_path, config=None, output_name=None):
    """(spec, tensors) of a Keras architecture JSON (``model.to_json()``) and the
    HDF5 file its weights were saved in.

    The weights file may be Keras 2's ``model.save_weights("model.h5")`` (one
    group per layer name, as in a model file's ``model_weights``), Keras 3's
    ``model.save_weights("model.weights.h5")`` (``layers/<class>/vars/<i>``,
    as inside a ``.keras`` archive), or a whole model file. ``config``: the
    JSON already parsed (by ``keras_json_config``).
    """
    json_path, weights_path = str(json_path), str(weights_path)
    config = keras_json_config(json_path) if config is None else config
    if config is None:
        raise JaccliError(f"{json_path}: not a Keras model JSON (model.to_json())")
    source = f"{weights_path} (with {json_path})"
    try:
        chain, n_inputs = model_chain(config, json_path, output_name)
    except _DAMAGED as exc:
        raise _damaged(json_path, exc, "Keras model JSON") from None
    try:
        with h5py.File(weights_path, "r") as h5:
            if "layers" in h5 or "_layer_checkpoint_dependencies" in h5:
                weights = ArchiveWeights(h5, all_layers(config), weights_path)
            else:
                weights = LegacyWeights(h5["model_weights"] if "model_weights" in h5 else h5,
                                        weights_path)
            # Keras 2 records its version in the JSON and the weights file; Keras 3 in
            # neither, but only Keras 3 writes weights under layers/<name>/vars
            version = _version(config) or _version(h5.attrs.get("keras_version")) or \
                ("3" if "layers" in h5 else None)
            return build(chain, n_inputs, weights, source, version)
    except _DAMAGED as exc:
        raise _damaged(source, exc, "Keras weights or model JSON") from None


def keras_json_config(path):
    """The model config in a Keras architecture JSON file, or None if ``path``
    does not hold one (a YAML spec, other JSON, an unreadable file)."""
    try:
        with open(path, "rb") as handle:
            text = handle.read(MAX_SPEC_BYTES + 1)
    except OSError:
        return None
    if not text.removeprefix(b"\xef\xbb\xbf").lstrip().startswith(b"{") or len(text) > MAX_SPEC_BYTES:
        return None
    try:
        config = json.loads(text.decode("utf-8-sig"))
    except (ValueError, RecursionError):
        return None
    return config if isinstance(config, dict) and "class_name" in config else None


def keras_weights_store(path):
    """The variables of a ``.keras`` archive as a TensorStore by their paths in
    model.weights.h5 (``layers/dense/vars/0``), for a spec given by the user."""
    try:
        with zipfile.ZipFile(path) as archive:
            if "model.weights.h5" not in archive.namelist():
                raise JaccliError(f"{path}: the Keras archive has no model.weights.h5")
            data = _zip_read(archive, "model.weights.h5", path)
    except ZIP_ERRORS as exc:
        raise JaccliError(f"{path}: not a readable .keras archive ({clip(str(exc), 200)})") from None
    try:
        handle = h5py.File(io.BytesIO(data), "r")
    except H5_ERRORS:
        raise JaccliError(f"{path}: model.weights.h5 in the archive is not a readable "
                          f"HDF5 file") from None
    try:
        return hdf5_store(handle, path, "model.weights.h5 ")
    except BaseException:
        handle.close()
        raise


def _damaged(fname, exc, what):
    # h5py, zipfile and json raise these for a damaged file or a config of
    # unexpected types; the user can only replace the file.
    detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    return JaccliError(f"{fname}: damaged or unexpected {what} ({detail})")


def _read_archive(path, fname, output_name=None):
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            if "config.json" not in names:
                raise JaccliError(f"{fname}: the Keras archive has no config.json")
            config_text = _zip_read(zf, "config.json", fname)
            if "model.weights.h5" not in names:
                if "model.weights.npz" in names:
                    raise JaccliError(
                        f"{fname}: weights stored as model.weights.npz are not "
                        "supported (save with the default .h5 weights)"
                    )
                raise JaccliError(
                    f"{fname}: the Keras archive has no model.weights.h5"
                )
            weights_bytes = _zip_read(zf, "model.weights.h5", fname)
            metadata = _zip_read(zf, "metadata.json", fname) if "metadata.json" in names else "{}"
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
        raise JaccliError(f"{fname}: damaged Keras archive ({exc})") from None
    config = _parse_json(config_text, fname, "config.json")
    try:
        version = _version(json.loads(metadata))
    except (ValueError, RecursionError):  # the version is only needed for hard_sigmoid
        version = None
    try:
        h5 = h5py.File(io.BytesIO(weights_bytes), "r")
    except OSError:
        raise JaccliError(
            f"{fname}: model.weights.h5 in the archive is not a readable HDF5 file"
        ) from None
    with h5:
        chain, n_inputs = model_chain(config, fname, output_name)
        weights = ArchiveWeights(h5, all_layers(config), fname)
        return build(chain, n_inputs, weights, fname, version)


def _version(record):
    """The keras_version a file records (metadata.json, an HDF5 attribute), or None."""
    version = record.get("keras_version") if isinstance(record, dict) else record
    if isinstance(version, np.ndarray) and version.shape == ():
        version = version[()]
    version = version.decode("utf-8", errors="replace") if isinstance(version, bytes) else version
    return version if isinstance(version, str) else None


def _read_legacy_h5(path, fname, output_name=None):
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise JaccliError(f"{fname}: cannot open the HDF5 file ({exc})") from None
    with h5:
        if "model_config" not in h5.attrs:
            raise JaccliError(
                f"{fname}: no 'model_config' attribute: not a Keras model file "
                f"(a weights-only file needs a spec, see {param('spec')})"
            )
        raw = h5.attrs["model_config"]
        if isinstance(raw, np.ndarray) and raw.shape == ():
            raw = raw[()]
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", errors="replace")
        if not isinstance(raw, str):
            raise JaccliError(f"{fname}: the 'model_config' attribute is not text")
        config = _parse_json(raw, fname, "model_config")
        group = h5["model_weights"] if "model_weights" in h5 else h5
        chain, n_inputs = model_chain(config, fname, output_name)
        weights = LegacyWeights(group, fname)
        return build(chain, n_inputs, weights, fname, _version(h5.attrs.get("keras_version")))


def _zip_read(zf, member, fname):
    info = zf.getinfo(member)
    if info.file_size > _MAX_MEMBER_BYTES:
        raise JaccliError(
            f"{fname}: {member} in the archive is too large "
            f"({info.file_size} bytes uncompressed)"
        )
    return zf.read(member)


def _parse_json(text, fname, what):
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    try:
        config = json.loads(text)
    except ValueError as exc:
        raise JaccliError(f"{fname}: {what} is not valid JSON ({exc})") from None
    except RecursionError:
        raise JaccliError(f"{fname}: {what} is nested too deeply to be a Keras model") from None
    if not isinstance(config, dict) or "class_name" not in config:
        raise JaccliError(f"{fname}: {what} does not describe a Keras model")
    return config
