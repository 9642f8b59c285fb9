"""Zarr points (read a chunk at a time, checked like NPY) and Zarr outputs (whole or nothing)."""

import os
import pickle

import numpy as np
import pytest

zarr = pytest.importorskip("zarr")

from jaccli.errors import JaccliError  # noqa: E402
from jaccli.io.points import read_points  # noqa: E402
from jaccli.io.zarr_store import ZarrWriter, is_zarr_path  # noqa: E402


def ZarrRows(path, n_inputs):
    """The rows a command reads from ``path`` for a model of ``n_inputs`` inputs."""
    return read_points(str(path), [f"x{i + 1}" for i in range(n_inputs)])


def make_store(path, data, chunks="auto"):
    array = zarr.create_array(str(path), shape=data.shape, chunks=chunks, dtype=data.dtype)
    array[...] = data
    return str(path)


def test_rows_read_across_chunks(tmp_path):
    data = np.arange(3000.0).reshape(1000, 3)
    rows = ZarrRows(make_store(tmp_path / "p.zarr", data, (300, 3)), 3)
    assert rows.shape == (1000, 3) and len(rows) == 1000
    for start, stop in [(0, 1000), (250, 700), (299, 301), (999, 1000), (0, 0), (10, 2000)]:
        np.testing.assert_array_equal(rows[start:stop], data[start:stop])
    np.testing.assert_array_equal(np.asarray(rows), data)


def test_an_array_inside_a_group_by_its_path(tmp_path):
    root = zarr.open_group(str(tmp_path / "set.zarr"), mode="w")
    inner = root.create_group("run1").create_array("x", shape=(5, 2), chunks=(2, 2), dtype="f4")
    inner[...] = np.ones((5, 2))
    rows = ZarrRows(str(tmp_path / "set.zarr" / "run1" / "x"), 2)
    assert rows.dtype == np.float32 and len(rows) == 5
    assert is_zarr_path(str(tmp_path / "set.zarr" / "run1" / "x"))
    with pytest.raises(JaccliError, match="holding 0 arrays.*name the points array"):
        ZarrRows(str(tmp_path / "set.zarr"), 2)


def test_a_store_holding_one_array_is_that_array(tmp_path):
    root = zarr.open_group(str(tmp_path / "one.zarr"), mode="w")
    root.create_array("points", shape=(4, 2), chunks=(4, 2), dtype="f8")[...] = 7.0
    assert ZarrRows(str(tmp_path / "one.zarr"), 2)[0:4].tolist() == [[7.0, 7.0]] * 4


@pytest.mark.parametrize("data,message", [
    (np.zeros((5, 4)), r"has shape \(5, 4\); expected \(N, 3\) or \(3,\)"),
    (np.zeros((2, 5, 3)), r"has shape \(2, 5, 3\)"),
    (np.zeros((5, 3), dtype=bool), "has dtype bool, not real numbers"),
    (np.zeros((0, 3)), "zero points"),
])
def test_bad_arrays_one_line_as_for_npy(tmp_path, data, message):
    path = make_store(tmp_path / "bad.zarr", data)
    with pytest.raises(JaccliError, match=message) as info:
        ZarrRows(path, 3)
    assert str(info.value).startswith(path) and "\n" not in str(info.value)


def test_missing_and_not_a_store(tmp_path):
    with pytest.raises(JaccliError, match="no such Zarr store"):
        ZarrRows(str(tmp_path / "none.zarr"), 3)
    (tmp_path / "plain.zarr").mkdir()
    with pytest.raises(JaccliError, match="not a Zarr store"):
        ZarrRows(str(tmp_path / "plain.zarr"), 3)


def test_one_point_and_integers(tmp_path):
    rows = ZarrRows(make_store(tmp_path / "one.zarr", np.array([1, 2, 3], dtype="i4"), (3,)), 3)
    assert rows.shape == (1, 3)
    assert rows[0:1].tolist() == [[1, 2, 3]]


def test_pickles_as_its_path_and_reopens(tmp_path):
    data = np.random.default_rng(0).normal(size=(100, 2))
    rows = ZarrRows(make_store(tmp_path / "p.zarr", data, (30, 2)), 2)
    blob = pickle.dumps(rows)
    assert len(blob) < 500  # the path, not the data
    np.testing.assert_array_equal(pickle.loads(blob)[40:90], data[40:90])


def written(path):
    return zarr.open_group(str(path), mode="r")


def test_writer_chunks_by_rows_and_names_things(tmp_path):
    target = str(tmp_path / "out.zarr")
    writer = ZarrWriter(target, {"value": (1000, 2), "jacobian": (1000, 2, 3)}, np.float64,
                        {"input_names": ["a", "b", "c"], "output_names": ["y", "z"]})
    value, jac = np.random.default_rng(1).normal(size=(1000, 2)), np.ones((1000, 2, 3))
    for start in range(0, 1000, 300):
        stop = min(start + 300, 1000)
        writer.write(start, {"value": value[start:stop], "jacobian": jac[start:stop].reshape(-1, 6)})
    assert not os.path.exists(target)  # nothing under the name until commit
    writer.commit()
    group = written(target)
    assert group.attrs["input_names"] == ["a", "b", "c"]
    np.testing.assert_array_equal(group["value"][...], value)
    np.testing.assert_array_equal(group["jacobian"][...], jac)
    assert group["jacobian"].metadata.dimension_names == ("point", "output", "input")
    assert [p for p in os.listdir(tmp_path) if p.startswith(".")] == []


def test_writer_single_quantity_buffers_to_whole_chunks(tmp_path, monkeypatch):
    import jaccli.io.zarr_store as zs

    monkeypatch.setattr(zs, "OUTPUT_CHUNK_BYTES", 100 * 16)  # 100 rows of 2 float64
    target = str(tmp_path / "v.zarr")
    writer = ZarrWriter(target, {"value": (1050, 2)}, np.float64)
    data = np.arange(2100.0).reshape(1050, 2)
    for start in range(0, 1050, 37):
        writer.write(start, data[start:start + 37])
    writer.commit()
    assert written(target)["value"].chunks == (100, 2)
    np.testing.assert_array_equal(written(target)["value"][...], data)


def test_writer_abort_and_failure_leave_nothing(tmp_path):
    target = str(tmp_path / "out.zarr")
    writer = ZarrWriter(target, {"value": (10, 1)}, np.float64)
    writer.write(0, np.ones((5, 1)))
    writer.abort()
    assert os.listdir(tmp_path) == []
    writer = ZarrWriter(target, {"value": (10, 1)}, np.float64)
    with pytest.raises(ValueError, match="in order"):
        writer.write(5, np.ones((5, 1)))
    writer.write(0, np.ones((5, 1)))
    with pytest.raises(ValueError, match="incomplete"):
        writer.commit()
    writer.abort()
    assert os.listdir(tmp_path) == []


def test_writer_replaces_an_existing_store_only_on_commit(tmp_path):
    target = str(tmp_path / "out.zarr")
    first = ZarrWriter(target, {"value": (3, 1)}, np.float64)
    first.write(0, np.zeros((3, 1)))
    first.commit()
    second = ZarrWriter(target, {"value": (3, 1)}, np.float64)
    second.write(0, np.ones((3, 1)))
    second.abort()
    assert written(target)["value"][...].tolist() == [[0.0]] * 3  # untouched by a failed run
    third = ZarrWriter(target, {"value": (3, 1)}, np.float64)
    third.write(0, np.ones((3, 1)))
    third.commit()
    assert written(target)["value"][...].tolist() == [[1.0]] * 3
    assert sorted(os.listdir(tmp_path)) == ["out.zarr"]


# ---------------------------------------------------------------- the CLI


def cli_run(*args):
    from click.testing import CliRunner

    from jaccli.cli import cli

    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def canonical(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    points = np.random.default_rng(3).normal(size=(50, 2))
    root_group = zarr.open_group(str(tmp_path / "set.zarr"), mode="w")
    root_group.create_array("x", shape=points.shape, chunks=(16, 2), dtype="f8")[...] = points
    np.save(tmp_path / "pts.npy", points)
    return os.path.join(root, "sample_models", "canonical.npz"), points


def test_cli_points_format_and_an_array_inside_a_store(canonical, tmp_path):
    model, points = canonical
    os.rename(tmp_path / "set.zarr", tmp_path / "set.store")  # a name that does not say Zarr
    by_format = cli_run("value", model, "--points", tmp_path / "set.store" / "x",
                        "--points-format", "zarr", "-q")
    assert by_format.exit_code == 0, by_format.output
    expected = cli_run("value", model, "--points", tmp_path / "pts.npy", "-q")
    assert by_format.output == expected.output
    by_content = cli_run("value", model, "--points", tmp_path / "set.store" / "x", "-q")
    assert by_content.output == expected.output  # a directory Zarr wrote is known by its files


def test_cli_format_zarr_and_confint_into_a_store(canonical, tmp_path):
    model, points = canonical
    out = tmp_path / "result"
    result = cli_run("hessdiag", model, "--points", tmp_path / "set.zarr" / "x", "-o", out,
                     "--format", "zarr", "-q")
    assert result.exit_code == 0, result.output
    import jaccli

    np.testing.assert_array_equal(written(out)["hessdiag"][...], jaccli.load(model).hessdiag(points))
    train = np.column_stack([points, np.sin(points[:, :1])])
    np.save(tmp_path / "train.npy", train)
    ci = cli_run("confint", model, "--train", tmp_path / "train.npy", "--points",
                 tmp_path / "set.zarr" / "x", "-o", tmp_path / "ci.zarr", "-q")
    assert ci.exit_code == 0, ci.output
    assert written(tmp_path / "ci.zarr")["confint"].shape == (50, 1, 6)
    assert written(tmp_path / "ci.zarr")["confint"].metadata.dimension_names == ("point", "output", "field")


def test_cli_refuses_to_replace_a_directory_or_the_input_store(canonical, tmp_path):
    model, _ = canonical
    (tmp_path / "plain.zarr").mkdir()
    plain = cli_run("value", model, "--at", "1,1", "-o", tmp_path / "plain.zarr")
    assert plain.exit_code == 2 and "is a directory" in plain.output
    own = cli_run("value", model, "--points", tmp_path / "set.zarr" / "x", "-o", tmp_path / "set.zarr")
    assert own.exit_code == 2 and "is one of the inputs" in own.output
    assert written(tmp_path / "set.zarr")["x"].shape == (50, 2)


def test_columns_picked_by_number_travel_with_the_rows(tmp_path):
    data = np.arange(60.0).reshape(20, 3)
    path = make_store(tmp_path / "p.zarr", data, (8, 3))
    rows = read_points(path, ["a", "b"], columns="3,1")
    np.testing.assert_array_equal(rows[5:15], data[5:15][:, [2, 0]])
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(rows))[0:20], data[:, [2, 0]])
    with pytest.raises(JaccliError, match=r"expected \(N, 2\) or \(2,\), or pick the columns"):
        read_points(path, ["a", "b"])
