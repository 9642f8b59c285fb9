"""NPZ outputs written from their chunks (``jaccli.io.npz_archive``, ``NpzWriter``)
and a chunk's parts (``jaccli.io.parts``): the archive's bytes are those np.savez
writes, whatever order and form the chunks come in."""

import os
import time
from unittest import mock

import numpy as np
import pytest

from jaccli.io.npz_archive import array_entry, npy_header, write_npz
from jaccli.io.parts import by_name, joined, non_finite, row_count
from jaccli.io.writers import NpzWriter

NOW = 1_700_000_000.0  # zip entries carry the time they are written: the same for both


def savez_bytes(path, arrays):
    with mock.patch.object(time, "time", return_value=NOW):
        np.savez(path, **arrays)
    return path.read_bytes()


def archive_bytes(path, entries):
    with mock.patch.object(time, "time", return_value=NOW), open(path, "wb") as handle:
        write_npz(handle, entries)
    return path.read_bytes()


ARRAYS = {
    "c_order": np.arange(24.0).reshape(4, 3, 2),
    "fortran": np.asfortranarray(np.arange(12.0).reshape(3, 4)),
    "strided": np.arange(40.0).reshape(8, 5)[::2, 1:4],
    "float32": np.linspace(-1, 1, 7, dtype=np.float32),
    "names": np.array(["x1", "x2", "longer"]),
    "scalar": np.array(0.95),
    "empty": np.empty((0, 3)),
}


def test_arrays_are_written_as_savez_writes_them(tmp_path):
    ours = archive_bytes(tmp_path / "a.npz", {k: array_entry(v) for k, v in ARRAYS.items()})
    assert ours == savez_bytes(tmp_path / "b.npz", ARRAYS)
    with np.load(tmp_path / "a.npz") as back:
        for name, array in ARRAYS.items():
            assert back[name].dtype == array.dtype and np.array_equal(back[name], array)


def test_row_blocks_are_written_as_the_whole_array(tmp_path):
    whole = np.random.default_rng(0).normal(size=(10, 2, 3))
    blocks = [whole[:3].copy(), whole[3:4].copy(), whole[4:].copy()]
    ours = archive_bytes(tmp_path / "a.npz", {"jacobian": (npy_header(whole.shape, whole.dtype), blocks)})
    assert ours == savez_bytes(tmp_path / "b.npz", {"jacobian": whole})


def test_a_header_too_long_for_npy_1_0_is_written_as_2_0(tmp_path):
    wide = np.zeros(2, dtype=[(f"field{i}", "<f8") for i in range(5000)])  # a header of ~95 kB
    header = npy_header(wide.shape, wide.dtype)
    assert header[6:8] == b"\x02\x00"
    with pytest.warns(UserWarning, match="2.0"):  # np.save says so; the bytes are the same
        np.save(tmp_path / "w.npy", wide)
    assert (tmp_path / "w.npy").read_bytes() == header + wide.tobytes()


def test_object_arrays_are_refused():
    with pytest.raises(ValueError):
        array_entry(np.array([{"a": 1}], dtype=object))


def writer_chunks(block_form):
    """A value (N, 1) and a Jacobian (N, 1, 2) in chunks of 3 rows, out of order,
    as {name: rows} or side by side in one block of rows."""
    rng = np.random.default_rng(1)
    value, jacobian = rng.normal(size=(8, 1)), rng.normal(size=(8, 1, 2))
    chunks = []
    for start in (6, 0, 3):
        parts = {"value": value[start:start + 3].copy(), "jacobian": jacobian[start:start + 3].copy()}
        chunks.append((start, joined(parts) if block_form else parts))
    return {"value": value, "jacobian": jacobian}, chunks


@pytest.mark.parametrize("block_form", [False, True])
def test_npz_writer_keeps_the_chunks_of_each_part(tmp_path, block_form):
    expected, chunks = writer_chunks(block_form)
    extras = {"x": np.ones((8, 2)), "input_names": np.array(["a", "b"])}
    writer = NpzWriter(str(tmp_path / "out.npz"), [(k, v.shape) for k, v in expected.items()],
                       np.float64, lambda: extras)
    for start, chunk in chunks:
        writer.write(start, chunk)
    with mock.patch.object(time, "time", return_value=NOW):
        writer.commit()
    assert (tmp_path / "out.npz").read_bytes() == savez_bytes(tmp_path / "b.npz",
                                                               {**expected, **extras})


def test_npz_writer_refuses_missing_rows(tmp_path):
    expected, chunks = writer_chunks(False)
    writer = NpzWriter(str(tmp_path / "out.npz"), [(k, v.shape) for k, v in expected.items()],
                       np.float64, {})
    for start, chunk in chunks[:2]:
        writer.write(start, chunk)
    with pytest.raises(ValueError, match="incomplete"):
        writer.commit()
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_a_chunks_parts_joined_and_named():
    parts = {"value": np.array([[1.0], [2.0]]), "jacobian": np.array([[[3.0, 4.0]], [[5.0, np.inf]]])}
    rows = joined(parts)
    assert np.array_equal(rows, [[1, 3, 4], [2, 5, np.inf]])
    named = by_name(rows, [("value", (2, 1)), ("jacobian", (2, 1, 2))])
    assert all(np.array_equal(named[k], parts[k]) for k in parts)
    assert by_name(parts, None) is parts
    assert row_count(parts) == row_count(rows) == 2
    assert non_finite(parts) == non_finite(rows) == 1
    assert non_finite(np.array([[np.nan, 0.0, -np.inf]])) == 2


@pytest.mark.parametrize("preadv", [True, False], ids=["preadv", "pread"])
def test_npy_points_are_read_into_new_arrays(tmp_path, monkeypatch, preadv):
    """The points of an NPY file, read a slice at a time and whole (an NPZ output's x),
    whatever their dtype, with os.preadv or (where a system lacks it) os.pread; a file
    cut short after it was opened is one clear error."""
    from jaccli.errors import JaccliError
    from jaccli.io.npy_points import NpyRows

    if not preadv:
        monkeypatch.delattr(os, "preadv", raising=False)

    for array in (np.random.default_rng(2).normal(size=(50, 3)), np.arange(8.0, dtype=">f8").reshape(4, 2)):
        np.save(tmp_path / "p.npy", array)
        rows = NpyRows(str(tmp_path / "p.npy"), np.load(tmp_path / "p.npy", mmap_mode="r"))
        assert np.array_equal(rows[1:3], array[1:3]) and rows[1:3].flags.writeable
        assert np.array_equal(np.asarray(rows, dtype=np.float64), array) and rows[2:2].shape == (0, array.shape[1])
    with open(tmp_path / "p.npy", "r+b") as handle:
        handle.truncate(os.path.getsize(tmp_path / "p.npy") - 8)
    with pytest.raises(JaccliError, match="shorter than its header says"):
        rows[0:4]


# NpzWriter and ZarrWriter keep each chunk's arrays until they write (``jaccli.io.parts``):
# that holds only while a chunk's results are new arrays, never a worker's buffer that
# the next chunk overwrites. Every quantity, alone and together, on one workspace.
CHUNK_QUANTITIES = [("value",), ("jacobian",), ("hessdiag",), ("laplacian",), ("hessian",),
                    ("param_jacobian",), ("value", "jacobian"), ("value", "jacobian", "hessian"),
                    ("jacobian", "hessdiag", "laplacian"), ("value", "param_jacobian")]


@pytest.mark.parametrize("outputs", [1, 3])
@pytest.mark.parametrize("names", CHUNK_QUANTITIES, ids=",".join)
def test_a_chunks_results_survive_the_next_chunk(tmp_path, names, outputs):
    import jaccli
    from jaccli.engine.sweeps import Workspace

    rng = np.random.default_rng(outputs)
    dims = [2, 5, 4, outputs]
    tensors = {}
    for index, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        tensors[f"W{index}"], tensors[f"b{index}"] = rng.normal(size=(a, b)), rng.normal(size=b)
    spec = (f"{{inputs: 2, outputs: {outputs}, layers: [{{units: 5, activation: tanh}}, "
            f"{{units: 4, activation: softmax}}, {{units: {outputs}, activation: linear}}]}}")
    np.savez(tmp_path / "m.npz", jaccli_spec=np.array(spec), **tensors)
    model = jaccli.load(str(tmp_path / "m.npz"))
    work = Workspace()
    first = model.compute_chunk_together(list(names), rng.normal(size=(7, 2)), work)
    kept = {name: result.copy() for name, result in first.items()}
    model.compute_chunk_together(list(names), rng.normal(size=(7, 2)), work)
    if len(names) == 1:  # the single-quantity path (model.iter_chunks)
        alone = model.compute_chunk(names[0], rng.normal(size=(7, 2)), work=work)
        saved = alone.copy()
        model.compute_chunk(names[0], rng.normal(size=(7, 2)), work=work)
        assert np.array_equal(alone, saved)
    for name in names:
        assert np.array_equal(first[name], kept[name]), name
