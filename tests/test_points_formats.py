"""The points formats are records (jaccli.io.registry.POINTS): every help text that lists
what --points and --train read names every one of them, the --*-format choices are their
names, a suffix names its format in any case, and each record says what its reader does."""

import numpy as np
import pytest

from jaccli.cli import cli
from jaccli.errors import JaccliError
from jaccli.extras import EXTRAS
from jaccli.io import registry
from jaccli.io.points import open_points, read_points

POINTS = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]


def write_points(directory, fmt, stem="pts"):
    """A points file of ``fmt`` holding POINTS (columns a, b, c when it has names)."""
    form = registry.points_format(fmt)
    path = directory / f"{stem}{form.suffixes[0]}"
    if form.reader == "text":
        delimiter = form.delimiters[0] if fmt != "txt" else " "
        rows = [delimiter.join(f"{v:g}" for v in row) for row in POINTS]
        path.write_text("\n".join([delimiter.join("abc")] + rows) + "\n")
    elif fmt == "npy":
        np.save(path, np.array(POINTS))
    elif fmt == "parquet":
        pa = pytest.importorskip("pyarrow")
        pq = pytest.importorskip("pyarrow.parquet")
        pq.write_table(pa.table({n: [row[i] for row in POINTS] for i, n in enumerate("abc")}),
                       str(path))
    else:
        zarr = pytest.importorskip("zarr")
        data = np.array(POINTS)
        zarr.create_array(str(path), shape=data.shape, dtype=data.dtype)[...] = data
    return path


def option_of(command, option):
    return next(p for p in cli.commands[command].params if option in p.opts)


def commands_reading(option):
    return [name for name, command in cli.commands.items()
            if any(option in p.opts for p in command.params)]


@pytest.mark.parametrize("command, option", [(c, "--points") for c in commands_reading("--points")]
                         + [("confint", "--train")])
def test_every_help_that_lists_points_formats_names_every_one(command, option):
    text = " ".join(option_of(command, option).help.split())
    for form in registry.POINTS:
        for suffix in form.suffixes:
            assert suffix in text, (command, option, suffix, text)
        assert not form.note or form.note in text, (command, option, form.note)
    assert "standard input" in text


@pytest.mark.parametrize("command, option", [(c, "--points-format")
                                             for c in commands_reading("--points-format")]
                         + [("confint", "--train-format")])
def test_the_format_choices_are_the_records_names(command, option):
    assert list(option_of(command, option).type.choices) == registry.names(registry.POINTS)


def test_every_command_that_reads_points_is_checked():
    assert len(commands_reading("--points")) >= 8


@pytest.mark.parametrize("fmt", registry.names(registry.POINTS))
def test_an_upper_case_suffix_names_the_format(tmp_path, fmt):
    lower = write_points(tmp_path, fmt)
    upper = lower.with_name(lower.stem.upper() + lower.suffix.upper())
    lower.rename(upper)
    assert registry.points_format_of(upper.suffix) is registry.points_format(fmt)
    assert np.asarray(read_points(str(upper), ["a", "b", "c"])).tolist() == POINTS


def test_an_upper_case_suffix_works_on_the_command_line(tmp_path):
    """.PARQUET is read as Parquet: by its content the file would be binary, not points."""
    from test_inputs import make_model, run, values

    make_model(tmp_path)
    path = write_points(tmp_path, "parquet")
    path = path.rename(path.with_suffix(".PARQUET"))
    assert values(run("value", tmp_path / "model.npz", "--points", path, "-q")) == [321.0, 654.0]


@pytest.mark.parametrize("fmt", registry.names(registry.POINTS))
def test_each_record_says_whether_its_columns_have_names(tmp_path, fmt):
    table = open_points(str(write_points(tmp_path, fmt)))
    form = registry.points_format(fmt)
    assert (table.header is not None) == form.names


def test_each_record_is_complete():
    for form in registry.POINTS:
        assert form.reader in ("text", "npy", "parquet", "zarr"), form
        assert (form.reader == "text") == bool(form.delimiters), form
        assert form.package is None or form.package in EXTRAS, form
    assert registry.points_format(registry.TEXT_BY_CONTENT).reader == "text"


def test_txt_means_whitespace_for_points_and_tsv_for_outputs():
    assert registry.points_format_of(".txt").name == "txt"
    assert registry.by_suffix()[".txt"] == "tsv"


def test_the_unknown_format_error_lists_every_format(tmp_path):
    path = write_points(tmp_path, "csv")
    with pytest.raises(JaccliError) as caught:
        open_points(str(path), "xlsx")
    for name in registry.names(registry.POINTS):
        assert name in str(caught.value)
