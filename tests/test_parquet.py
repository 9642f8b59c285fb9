"""Parquet points and outputs (pyarrow: the ``arrow`` extra), and the one-line
error that names the extra when pyarrow is missing."""

import os

import numpy as np
import pytest
from click.testing import CliRunner

import jaccli
from conftest import SAMPLES, random_model, save_model
from nets import SAME_RESULT_RTOL
from jaccli.cli import cli

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

CANONICAL = os.path.join(SAMPLES, "canonical.npz")


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def write_parquet(path, columns, row_group_size=None):
    pq.write_table(pa.table(columns), str(path), row_group_size=row_group_size)
    return path


def test_points_by_name_in_any_order_with_other_columns(tmp_path):
    x = np.random.default_rng(0).normal(size=(50, 2))
    path = write_parquet(tmp_path / "p.parquet", {"label": [f"r{i}" for i in range(50)],
                                                  "x2": x[:, 1], " X1 ": x[:, 0]}, 7)
    out = tmp_path / "j.npy"
    result = run("jacobian", CANONICAL, "-p", path, "-o", out, "-q", "--chunk-size", "5")
    assert result.exit_code == 0, result.stderr
    np.testing.assert_allclose(np.load(out), jaccli.load(CANONICAL).jacobian(x),
                               rtol=SAME_RESULT_RTOL, atol=0)  # chunks of 5 against one


def test_points_by_position_and_integer_columns(tmp_path):
    path = write_parquet(tmp_path / "p.parquet", {"a": np.arange(4), "b": np.arange(4.0) / 2})
    result = run("value", CANONICAL, "-p", path, "-q")
    assert result.exit_code == 0, result.stderr
    expected = jaccli.load(CANONICAL).value(np.column_stack([np.arange(4.0), np.arange(4.0) / 2]))
    np.testing.assert_array_equal(np.loadtxt(result.stdout.splitlines()[1:], ndmin=2), expected)


def test_points_format_option_overrides_the_extension(tmp_path):
    path = write_parquet(tmp_path / "p.data", {"x1": [1.0], "x2": [1.0]})
    result = run("jacobian", CANONICAL, "-p", path, "--points-format", "parquet", "-q")
    assert result.exit_code == 0, result.stderr


@pytest.mark.parametrize("columns,message", [
    ({"x1": ["a"], "x2": [1.0]}, "column 'x1' holds string values, not numbers"),
    ({"x1": pa.array([1.0, None]), "x2": [1.0, 2.0]}, "point 2, column 'x1' is empty (null)"),
    ({"x1": pa.array([], pa.float64()), "x2": pa.array([], pa.float64())}, "zero points"),
    ({"a": [1.0], "b": [1.0], "c": [1.0]}, "names none of the inputs"),
])
def test_bad_points_are_one_line(tmp_path, columns, message):
    path = write_parquet(tmp_path / "p.parquet", columns)
    result = run("value", CANONICAL, "-p", path)
    assert result.exit_code == 2
    assert message in result.stderr and result.stderr.count("\n") == 1


def test_not_parquet_is_one_line(tmp_path):
    path = tmp_path / "p.parquet"
    path.write_text("x1,x2\n1,2\n")
    result = run("value", CANONICAL, "-p", path)
    assert result.exit_code == 2
    assert "not a readable Parquet file" in result.stderr and result.stderr.count("\n") == 1


def test_nan_in_parquet_points_names_the_point(tmp_path):
    path = write_parquet(tmp_path / "p.parquet", {"x1": [1.0, np.nan], "x2": [1.0, 2.0]})
    result = run("value", CANONICAL, "-p", path)
    assert result.exit_code == 2 and "point 2, column 1 is nan" in result.stderr


@pytest.mark.parametrize("command,with_", [("value", None), ("jacobian", None), ("hessdiag", "value")])
def test_parquet_output_one_column_per_csv_column(tmp_path, command, with_):
    rng = np.random.default_rng(2)
    spec, tensors = random_model(rng, [3, 5, 2], ["tanh", "linear"])
    model = save_model(tmp_path, spec, tensors)
    x = rng.normal(size=(300, 3))
    np.save(tmp_path / "p.npy", x)
    extra = ["--with", with_] if with_ else []
    out = tmp_path / "out.parquet"
    assert run(command, model, "-p", tmp_path / "p.npy", "-o", out, "-q", "--chunk-size", "64",
               *extra).exit_code == 0
    table = pq.read_table(str(out))
    csv = run(command, model, "-p", tmp_path / "p.npy", "-q", *extra).stdout.splitlines()
    assert table.column_names == next(iter([csv[0].split(",")]))
    np.testing.assert_allclose(np.column_stack([c.to_numpy() for c in table.columns]),
                               np.loadtxt(csv[1:], delimiter=",", ndmin=2),
                               rtol=SAME_RESULT_RTOL, atol=0)  # chunks of 64 against one


def test_parquet_output_float32(tmp_path):
    out = tmp_path / "v.parquet"
    assert run("value", CANONICAL, "--at", "1,1", "--dtype", "float32", "-o", out, "-q").exit_code == 0
    assert pq.read_table(str(out)).schema.field("y").type == pa.float32()


def test_columns_option_picks_parquet_columns(tmp_path):
    x = np.random.default_rng(1).normal(size=(5, 2))
    path = write_parquet(tmp_path / "p.parquet", {"a": x[:, 0], "b": x[:, 1], "c": x[:, 0]})
    out = tmp_path / "v.npy"
    assert run("value", CANONICAL, "-p", path, "--columns", "b,3", "-o", out, "-q").exit_code == 0
    np.testing.assert_array_equal(np.load(out), jaccli.load(CANONICAL).value(x[:, ::-1]))
