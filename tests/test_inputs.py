"""Points from anywhere, never from the wrong columns; outputs by path; files that are not models.

The model here is one linear layer y = a + 10 b + 100 c, so the value at a
point says which column went to which input. Shell features (a named pipe,
``<(cmd)``, ``/dev/stdin``, a pipe into standard input) run through a real
``bash -c`` and the installed console script.
"""

import io
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

import jaccli
from jaccli.cli import cli

POINT_COMMANDS = ["value", "jacobian", "hessdiag", "hessian", "laplacian", "confint", "check",
                  "sensitivity"]
WEIGHTS = {"W0": np.array([[1.0], [10.0], [100.0]]), "b0": np.array([0.0])}


def run(*args, input=None, cwd=None):
    old = os.getcwd()
    if cwd:
        os.chdir(cwd)
    try:
        return CliRunner().invoke(cli, [str(a) for a in args], input=input, catch_exceptions=False)
    finally:
        os.chdir(old)


def one_error(result, *words):
    """Exit 2 and one 'Error:' line holding every word; return the line."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def values(result):
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    return [float(line) for line in lines[1:]]


def make_model(directory, inputs=("a", "b", "c"), outputs=("y",), stem="model"):
    np.savez(Path(directory) / f"{stem}.npz", **WEIGHTS)
    spec = {"inputs": list(inputs) if not isinstance(inputs, int) else inputs,
            "outputs": list(outputs), "layers": [{"units": 1, "activation": "linear"}]}
    (Path(directory) / f"{stem}.yaml").write_text(yaml.safe_dump(spec))
    return str(Path(directory) / f"{stem}.npz")


@pytest.fixture
def named(tmp_path):
    return make_model(tmp_path)


@pytest.fixture
def counted(tmp_path):
    return make_model(tmp_path, inputs=3, stem="counted")


def write(directory, name, text):
    path = Path(directory) / name
    path.write_text(text)
    return str(path)


def jaccli_command():
    script = Path(sys.executable).with_name("jaccli")
    return str(script) if script.exists() else f"{sys.executable} -m jaccli.cli"


def shell(script, cwd, timeout=60):
    """``script`` through a real bash, with $JACCLI set to the console script."""
    env = dict(os.environ, JACCLI=jaccli_command())
    return subprocess.run(["bash", "-c", script], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


# ---------------------------------------------------------------- never the wrong columns


@pytest.mark.parametrize("model, text", [
    ("named", "C,B,A\n3,2,1\n"),  # the case: a=1, b=2, c=3, by name whatever the case
    ("named", ' c , "B" ,a \n3,2,1\n'),  # header cells trimmed
    ("named", "1,2,3\n"),  # no header: n columns in order
    ("counted", "p,q,r\n1,2,3\n"),  # a count spec: an unnamed header of n cells by position
    ("counted", "X3,x2,x1\n3,2,1\n"),  # ... and a header naming the defaults by name
])
def test_points_are_taken_from_the_right_columns(request, tmp_path, model, text):
    points = write(tmp_path, "p.csv", text)
    path = request.getfixturevalue(model)
    assert values(run("value", path, "--points", points, "-q")) == [321.0]


def test_header_lacking_a_named_input_is_an_error(named, tmp_path):
    points = write(tmp_path, "p.csv", "p,q,r\n3,2,1\n")
    line = one_error(run("value", named, "--points", points), "p.csv", "--columns")
    assert "no input column 'a', 'b', 'c'" in line and "p, q, r" in line


def test_header_lacking_one_input_names_only_that_one(named, tmp_path):
    points = write(tmp_path, "p.csv", "a,b,z,extra\n1,2,3,4\n")
    line = one_error(run("value", named, "--points", points), "--columns")
    assert "no input column 'c' (" in line and "a, b, z, extra" in line


@pytest.mark.parametrize("header, width", [("p,q", 2), ("p,q,r,s", 4)])
def test_count_spec_refuses_another_width(counted, tmp_path, header, width):
    points = write(tmp_path, "p.csv", header + "\n" + ",".join(["1"] * width) + "\n")
    one_error(run("value", counted, "--points", points), "p.csv", f"{width} columns", "--columns")


def test_headerless_file_of_another_width_says_so_without_a_header(named, tmp_path):
    points = write(tmp_path, "p.csv", "1,2\n")
    line = one_error(run("value", named, "--points", points), "2 columns", "--columns")
    assert "header" not in line.split("p.csv: ")[1].split(";")[0]


@pytest.mark.parametrize("columns", ["r,p,q", "R, P ,q", "3,1,2", "r,1,2"])
def test_columns_picks_by_name_or_number_in_spec_order(named, tmp_path, columns):
    points = write(tmp_path, "p.csv", "p,q,r,s\n2,3,1,9\n")
    assert values(run("value", named, "--points", points, "--columns", columns, "-q")) == [321.0]


def test_columns_numbers_on_a_headerless_file_and_an_npy(named, tmp_path):
    points = write(tmp_path, "p.tsv", "9\t3\t2\t1\n")
    assert values(run("value", named, "--points", points, "--columns", "4,3,2", "-q")) == [321.0]
    npy = tmp_path / "p.npy"
    np.save(npy, np.array([[9.0, 3.0, 2.0, 1.0], [0.0, 0.0, 0.0, 1.0]]))
    assert values(run("value", named, "--points", npy, "--columns", "4,3,2", "-q")) == [321.0, 1.0]


@pytest.mark.parametrize("columns, words", [
    ("p,q", ["--columns", "2 columns", "3 inputs"]),
    ("p,q,zz", ["--columns", "zz", "p, q, r, s"]),
    ("1,2,5", ["--columns", "5", "4 columns"]),
    ("1,1,2", ["--columns", "twice"]),
    ("0,1,2", ["--columns", "0"]),
])
def test_bad_columns_are_errors(named, tmp_path, columns, words):
    points = write(tmp_path, "p.csv", "p,q,r,s\n2,3,1,9\n")
    one_error(run("value", named, "--points", points, "--columns", columns), *words)


def test_columns_names_need_a_header(named, tmp_path):
    points = write(tmp_path, "p.csv", "2,3,1,9\n")
    one_error(run("value", named, "--points", points, "--columns", "r,p,q"), "p.csv", "header")


@pytest.mark.parametrize("option, value", [("--columns", "1,2,3"), ("--points-format", "csv")])
def test_point_file_options_with_at_are_errors(named, option, value):
    one_error(run("value", named, "--at", "1,2,3", option, value), option, "--at")


@pytest.mark.parametrize("command", POINT_COMMANDS)
def test_every_command_reading_points_takes_columns_and_points_format(command):
    text = run(command, "--help").stdout
    assert "--columns" in text and "--points-format" in text


def test_every_command_refuses_the_wrong_columns(named, tmp_path):
    points = write(tmp_path, "p.csv", "p,q,r\n3,2,1\n")
    train = write(tmp_path, "t.csv", "a,b,c,y\n1,2,3,321\n2,2,2,222\n1,1,1,111\n0,0,1,100\n"
                                     "0,1,0,10.5\n")
    for command in ["value", "jacobian", "hessdiag", "hessian", "laplacian", "check", "sensitivity"]:
        one_error(run(command, named, "--points", points), "p.csv", "--columns")
    one_error(run("confint", named, "--points", points, "--train", train), "p.csv", "--columns")


def test_confint_train_columns_follow_the_same_rule(named, tmp_path):
    good = "a,b,c,y\n1,2,3,321\n2,2,2,222\n1,1,1,111\n0,0,1,100\n0,1,0,10.5\n"
    train = write(tmp_path, "t.csv", good)
    swapped = write(tmp_path, "s.csv", "Y,C,B,A\n" + "".join(
        ",".join(reversed(line.split(","))) + "\n" for line in good.splitlines()[1:]))
    first = run("confint", named, "--train", train, "--at", "1,1,1", "-q")
    second = run("confint", named, "--train", swapped, "--at", "1,1,1", "-q")
    assert first.exit_code == 0, first.stderr
    assert first.stdout == second.stdout
    wrong = write(tmp_path, "w.csv", "p,q,r,y\n" + "".join(
        line + "\n" for line in good.splitlines()[1:]))
    one_error(run("confint", named, "--train", wrong, "--at", "1,1,1"), "w.csv", "--train-columns")
    picked = run("confint", named, "--train", wrong, "--train-columns", "p,q,r", "--at", "1,1,1",
                 "-q")
    assert picked.stdout == first.stdout
    numbers = run("confint", named, "--train", wrong, "--train-columns", "1,2,3", "--target", "4",
                  "--at", "1,1,1", "-q")
    assert numbers.stdout == first.stdout


def test_check_reads_reference_outputs_case_insensitively(named, tmp_path):
    points = write(tmp_path, "p.csv", "A,B,C,Y\n1,2,3,321\n")
    result = run("check", named, "--points", points, "--what", "value", "-q")
    assert result.exit_code == 0, result.stderr
    assert "value" in result.stdout


# ---------------------------------------------------------------- points from anywhere


def test_named_pipe_through_a_real_shell(named, tmp_path):
    write(tmp_path, "p.csv", "c,b,a\n3,2,1\n")
    proc = shell('mkfifo fifo && (cat p.csv > fifo &) && $JACCLI value model.npz --points fifo -q',
                 tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["y", "321.0"]


@pytest.mark.parametrize("producer", ["cat p.csv", "cat p.tsv", "cat p.npy"])
def test_process_substitution(named, tmp_path, producer):
    write(tmp_path, "p.csv", "c,b,a\n3,2,1\n")
    write(tmp_path, "p.tsv", "3\t2\t1\n")
    np.save(tmp_path / "p.npy", np.array([[1.0, 2.0, 3.0]]))
    expected = 321.0 if "npy" in producer or "csv" in producer else 123.0
    proc = shell(f"$JACCLI value model.npz --points <({producer}) -q", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["y", repr(expected)]


def test_dev_stdin_and_dash_take_tsv_and_npy(named, tmp_path):
    write(tmp_path, "p.tsv", "a\tb\tc\n1\t2\t3\n")
    np.save(tmp_path / "p.npy", np.array([[1.0, 2.0, 3.0]]))
    for script in ["$JACCLI value model.npz --points /dev/stdin -q < p.tsv",
                   "cat p.tsv | $JACCLI value model.npz --points - -q",
                   "cat p.npy | $JACCLI value model.npz --points - -q",
                   "$JACCLI value model.npz --points /dev/stdin -q < p.npy"]:
        proc = shell(script, tmp_path)
        assert proc.returncode == 0, (script, proc.stderr)
        assert proc.stdout.splitlines() == ["y", "321.0"], script


def test_stdin_pipe_without_points_asks_about_dash(named, tmp_path):
    write(tmp_path, "p.csv", "a,b,c\n1,2,3\n")
    proc = shell("cat p.csv | $JACCLI jacobian model.npz", tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "did you mean --points -?" in proc.stderr


def test_check_reads_a_pipe_once_for_points_and_reference_and_the_spec_from_stdin(tmp_path):
    """check takes the inputs and the reference outputs from one read of <(...), and
    --dtype float32 (two loads of the model) reads the spec from standard input once."""
    make_model(tmp_path, stem="w")
    os.rename(tmp_path / "w.yaml", tmp_path / "spec.yaml")
    proc = shell("cat spec.yaml | $JACCLI check w.npz --spec - --dtype float32 -q --what value "
                 "--points <(printf 'Y,c,b,a\\n321,3,2,1\\n')", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[1].startswith("value,reference,0.0,")


def test_spec_from_stdin(tmp_path):
    make_model(tmp_path, stem="w")
    os.rename(tmp_path / "w.yaml", tmp_path / "spec.yaml")
    proc = shell("cat spec.yaml | $JACCLI value w.npz --spec - --at 1,2,3 -q", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["y", "321.0"]
    result = run("value", tmp_path / "w.npz", "--spec", "-", "--at", "1,2,3", "-q",
                 input=(tmp_path / "spec.yaml").read_text())
    assert values(result) == [321.0]
    one_error(run("value", tmp_path / "w.npz", "--spec", "-", "--points", "-", input="1,2,3\n"),
              "--spec -", "--points -")


@pytest.mark.parametrize("fmt, name, data", [
    ("csv", "p.dat", b"a,b,c\n1,2,3\n"),
    ("tsv", "p", b"1\t2\t3\n"),
    ("txt", "p.data", b"1 2 3\n"),
    ("npy", "p.bin", None),
])
def test_points_format_overrides_the_extension(named, tmp_path, fmt, name, data):
    path = tmp_path / name
    if data is None:
        np.save(open(path, "wb"), np.array([[1.0, 2.0, 3.0]]))
    else:
        path.write_bytes(data)
    assert values(run("value", named, "--points", path, "--points-format", fmt, "-q")) == [321.0]


@pytest.mark.parametrize("name, data", [
    ("p", b"a,b,c\n1,2,3\n"),
    ("p.dat", b"# a comment\n1\t2\t3\n"),
    ("p.points", b"1 2 3\n"),
    ("p.raw", None),
])
def test_format_from_the_content_when_the_extension_says_nothing(named, tmp_path, name, data):
    path = tmp_path / name
    if data is None:
        np.save(open(path, "wb"), np.array([[1.0, 2.0, 3.0]]))
    else:
        path.write_bytes(data)
    assert values(run("value", named, "--points", path, "-q")) == [321.0]


def test_comma_txt_and_headerless_tsv_named_csv_are_read(named, tmp_path):
    comma_txt = write(tmp_path, "p.txt", "1,2,3\n4,5,6\n")
    tab_csv = write(tmp_path, "q.csv", "1\t2\t3\n4\t5\t6\n")
    for points in (comma_txt, tab_csv):
        assert values(run("value", named, "--points", points, "-q")) == [321.0, 654.0]


def test_mismatched_explicit_format_does_not_invent_a_header(named, tmp_path):
    """--points-format npy on a text file, csv on an NPY: said plainly."""
    text = write(tmp_path, "p.csv", "1,2,3\n")
    one_error(run("value", named, "--points", text, "--points-format", "npy"), "p.csv", "NPY")


def test_unknown_points_format_is_a_usage_error(named, tmp_path):
    text = write(tmp_path, "p.csv", "1,2,3\n")
    one_error(run("value", named, "--points", text, "--points-format", "xlsx"), "--points-format")


def test_missing_points_file_is_still_named(named, tmp_path):
    one_error(run("value", named, "--points", tmp_path / "nope.csv"), "nope.csv", "no such")


def test_fifo_is_read_once(named, tmp_path):
    """A second open of a FIFO would wait for a writer that never comes: the timeout catches it."""
    write(tmp_path, "p.csv", "a,b,c\n" + "1,2,3\n" * 1000)
    proc = shell("mkfifo fifo && (cat p.csv > fifo &) && "
                 "$JACCLI jacobian model.npz --points fifo -o out.npy -q", tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert np.load(tmp_path / "out.npy").shape == (1000, 1, 3)


@pytest.mark.parametrize("kind", ["csv", "npy"])
def test_a_large_pipe_is_spooled_once_and_streamed(named, tmp_path, kind):
    """Past JACCLI_STREAM_TEXT_BYTES a pipe is copied to a temporary file as it is read
    and streamed from there (memory stays bounded); the file is gone afterwards."""
    x = np.random.default_rng(1).normal(size=(500, 3))
    rows = "".join(f"{c!r},{b!r},{a!r}\n" for a, b, c in x.tolist())
    write(tmp_path, "p.csv", "c,b,a\n" + rows)
    np.save(tmp_path / "p.npy", x)
    (tmp_path / "spool").mkdir()
    env = "JACCLI_STREAM_TEXT_BYTES=1000 TMPDIR=spool"
    proc = shell(f"cat p.{kind} | {env} $JACCLI value model.npz --points - -q -o piped.npy && "
                 f"{env} $JACCLI value model.npz --points <(cat p.{kind}) -q -o subst.npy",
                 tmp_path)
    assert proc.returncode == 0, proc.stderr
    expected = x @ WEIGHTS["W0"]
    for name in ("piped.npy", "subst.npy"):
        np.testing.assert_allclose(np.load(tmp_path / name), expected, rtol=1e-15)
    assert os.listdir(tmp_path / "spool") == []


def test_spooled_stdin_is_streamed_rows(monkeypatch, tmp_path):
    from jaccli.io import points

    monkeypatch.setattr(points, "STREAM_TEXT_BYTES", 100)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    table = points.open_points("-", stdin=io.BytesIO(b"a,b\n" + b"1.5,2.5\n" * 50))
    rows = table.take([points.input_columns(["b", "a"])])
    assert isinstance(rows, points.TextRows) and rows.source == "<stdin>"
    assert np.asarray(rows).tolist() == [[2.5, 1.5]] * 50
    del table, rows
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------- outputs by path


def test_output_without_extension_is_csv(named, tmp_path):
    out = tmp_path / "result"
    result = run("value", named, "--at", "1,2,3", "-o", out, "-q")
    assert result.exit_code == 0, result.stderr
    assert out.read_text() == "y\n321.0\n"
    assert run("value", named, "--at", "1,2,3", "-o", "/dev/null", "-q").exit_code == 0
    run("value", named, "--at", "1,2,3", "-o", out, "--format", "npy", "-q")
    assert np.load(open(out, "rb")).tolist() == [[321.0]]


def test_txt_output_is_tsv(named, tmp_path):
    out = tmp_path / "r.txt"
    result = run("jacobian", named, "--at", "1,2,3", "-o", out, "-q")
    assert result.exit_code == 0, result.stderr
    assert out.read_text() == "dy/da\tdy/db\tdy/dc\n1.0\t10.0\t100.0\n"


def test_output_into_a_pipe_through_a_shell(named, tmp_path):
    proc = shell("$JACCLI value model.npz --at 1,2,3 -q -o >(cat > piped)  && sleep 0.5 && cat piped",
                 tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "y\n321.0\n"


def test_check_help_offers_only_what_check_writes(named, tmp_path):
    text = run("check", "--help").stdout.split("Options:")[1]
    assert "npz" not in text and ".npy" not in text.split("-o, --output")[1]
    assert "--format [csv|tsv|jsonl|json]" in text
    assert "Output file: .csv, .tsv/.txt, .jsonl/.ndjson or .json;" in " ".join(text.split())
    one_error(run("check", named, "--at", "1,2,3", "-o", tmp_path / "c.npy"), "c.npy")


# ---------------------------------------------------------------- files that are not models


class Payload:
    """Unpickling this creates the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def torch_like_zip(path, marker, member="net/data.pkl"):
    """What torch.save writes: a zip whose */data.pkl is a pickle (here, a live payload)."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(member, pickle.dumps(Payload(marker), protocol=2))
        archive.writestr("net/version", "3\n")
    return path


@pytest.mark.parametrize("name, kind", [
    ("model.pt", "zip"), ("model.pth", "zip"), ("model.ckpt", "zip"),
    ("model.pkl", "pickle"), ("model.joblib", "pickle"),
    ("model.npz", "zip"),  # a torch.save zip named as an NPZ: found by its data.pkl
    ("model.bin", "pickle"), ("model.h5", "pickle"), ("model", "pickle"),
])
def test_pickles_and_torch_files_are_refused_without_unpickling(tmp_path, name, kind):
    marker = tmp_path / "payload_ran"
    path = tmp_path / name
    if kind == "zip":
        torch_like_zip(path, marker)
    else:
        path.write_bytes(pickle.dumps(Payload(marker), protocol=4))
    result = run("value", path, "--at", "1,2")
    line = one_error(result, name, "jaccli.export.from_")
    assert "no tensor" not in line and "data.pkl ..." not in line
    assert not marker.exists()
    with pytest.raises(jaccli.JaccliError):
        jaccli.load(path)
    assert not marker.exists()


def test_payload_is_live(tmp_path):
    """Unpickled the unsafe way, the payload does create its marker (so the test above means something)."""
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(Payload(marker)))
    assert marker.exists()


@pytest.mark.parametrize("name, advice", [("model.pt", "from_torch"), ("model.pkl", "from_sklearn")])
def test_refusal_says_how_to_export(tmp_path, name, advice):
    path = tmp_path / name
    path.write_bytes(b"\x80\x04K\x01.")
    one_error(run("info", path), name, advice)


def test_pickles_refused_through_the_console_script(tmp_path):
    marker = tmp_path / "payload_ran"
    torch_like_zip(tmp_path / "m.pt", marker)
    proc = shell("$JACCLI value m.pt --at 1,2", tmp_path)
    assert proc.returncode == 2 and "from_torch" in proc.stderr and "Traceback" not in proc.stderr
    assert not marker.exists()


def three_layer_file(directory):
    rng = np.random.default_rng(4)
    tensors = {"W0": rng.normal(size=(2, 4)), "b0": rng.normal(size=4),
               "W1": rng.normal(size=(4, 4)), "b1": rng.normal(size=4),
               "W2": rng.normal(size=(4, 1)), "b2": rng.normal(size=1)}
    np.savez(Path(directory) / "deep.npz", **tensors)
    spec = {"inputs": 2, "layers": [{"units": 4, "activation": "tanh"},
                                    {"units": 4, "activation": "tanh"}]}
    (Path(directory) / "deep.yaml").write_text(yaml.safe_dump(spec))
    return str(Path(directory) / "deep.npz")


def test_unused_tensors_are_warned_about_even_with_quiet(tmp_path):
    path = three_layer_file(tmp_path)
    result = run("value", path, "--at", "1,2", "-q")
    assert result.exit_code == 0
    assert "W2" in result.stderr and "b2" in result.stderr and "warning:" in result.stderr
    assert "W2" not in result.stdout
    with pytest.warns(UserWarning, match="W2"):
        jaccli.load(path)


def test_no_warning_when_every_tensor_is_used(named):
    result = run("value", named, "--at", "1,2,3")
    assert result.exit_code == 0 and "warning:" not in result.stderr
