"""Warnings under --quiet, float32 text, the memory budget of a chunk, write failures."""

import numpy as np
import pytest
from click.testing import CliRunner

from jaccli.cli import cli

from . import nets
from conftest import SAMPLES


def run(*args, input=None, env=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input, env=env)


@pytest.fixture
def ill_conditioned(tmp_path):
    """A linear model fitted on two nearly collinear inputs: Z's condition number ~1e9."""
    rng = np.random.default_rng(3)
    a = rng.uniform(-1, 1, size=40)
    X = np.column_stack([a, a + 1e-9 * rng.normal(size=40)])
    y = 2.0 * a + 0.1 * rng.normal(size=40)
    model = nets.write_model(tmp_path, "lin", {"W0": np.array([[1.0], [1.0]]), "b0": np.zeros(1)},
                             {"inputs": ["a", "b"], "outputs": ["y"],
                              "layers": [{"units": 1, "activation": "linear"}]})
    train = nets.write_csv(tmp_path / "train.csv", ["a", "b", "y"], np.column_stack([X, y]))
    return model, train


@pytest.mark.parametrize("quiet", [[], ["-q"], ["--quiet"]])
def test_quiet_silences_the_summary_never_a_warning(ill_conditioned, quiet):
    model, train = ill_conditioned
    res = run("confint", model, "--train", train, "--at", "0.5,0.5", *quiet)
    assert res.exit_code == 0, res.output
    assert "warning: (y) Z is ill-conditioned (condition number" in res.stderr
    assert ("least-squares fit" in res.stderr) == (not quiet)


def test_quiet_keeps_the_overflow_warning(tmp_path):
    model = nets.write_model(tmp_path, "exp", {"W0": np.array([[1000.0]]), "b0": np.zeros(1)},
                             {"inputs": 1, "outputs": 1,
                              "layers": [{"units": 1, "activation": "exp"}]})
    res = run("value", model, "--at", "1", "-q")
    assert res.exit_code == 0, res.output
    assert res.stderr.startswith("warning: 1 result(s) are NaN or infinite")


def _significant_digits(text):
    mantissa = text.lower().lstrip("-").split("e")[0].replace(".", "")
    return len(mantissa.lstrip("0").rstrip("0"))


def test_float32_text_is_the_shortest_exact_round_trip():
    from jaccli.io.writers import float32_texts

    rng = np.random.default_rng(1)
    bits = rng.integers(0, 2 ** 32, size=100_000, dtype=np.uint64).astype(np.uint32)
    x = bits.view(np.float32)  # every exponent, subnormals, a few NaN and inf
    special = np.array([0.0, -0.0, 1e-45, -1e-45, 1.17549435e-38, 3.4028235e38, 0.1, 1 / 3],
                       dtype=np.float32)
    x = np.concatenate([x, special])
    texts = float32_texts(x)
    back = np.array(texts, dtype=np.float64).astype(np.float32)
    finite = np.isfinite(x)
    assert np.array_equal(back[finite].view(np.uint32), x[finite].view(np.uint32))  # -0 too
    assert np.array_equal(np.isnan(back), np.isnan(x))
    numpy_digits = [_significant_digits(np.format_float_scientific(v, unique=True))
                    for v in x[finite]]
    ours = [_significant_digits(t) for t, ok in zip(texts, finite) if ok]
    assert ours == numpy_digits


def test_float32_csv_output_has_float32_digits(tmp_path):
    rng = np.random.default_rng(2)
    model = nets.write_tanh_net(tmp_path, "net", rng.normal(size=2 * 3 + 3 + 3 + 1), 2, 3)
    X = rng.uniform(-1, 1, size=(50, 2))
    points = nets.write_csv(tmp_path / "p.csv", ["x1", "x2"], X)
    res = run("jacobian", model, "--points", points, "--dtype", "float32", "-q")
    assert res.exit_code == 0, res.output
    cells = [c for line in res.stdout.splitlines()[1:] for c in line.split(",")]
    import jaccli

    want = jaccli.load(model, dtype="float32").jacobian(X).ravel()
    assert np.array_equal(np.array(cells, dtype=np.float64).astype(np.float32), want)
    assert [_significant_digits(c) for c in cells] == \
        [_significant_digits(str(v)) for v in want]  # numpy's float32 repr
    assert max(len(c) for c in cells) <= 15


EFBIG_CHILD = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write then fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]),) * 2)
sys.argv = ["jaccli"] + sys.argv[2:]
from jaccli.cli import main
main()
"""


@pytest.mark.parametrize("fmt", ["csv", "tsv", "npy", "npz"])
@pytest.mark.parametrize("limit", [1000, 20_000])
def test_a_file_size_limit_is_one_line_and_leaves_the_old_file(tmp_path, fmt, limit):
    import os
    import subprocess
    import sys

    X = np.random.default_rng(4).uniform(-1, 1, size=(3000, 2))
    points = nets.write_csv(tmp_path / "p.csv", ["x1", "x2"], X)
    out = tmp_path / f"out.{fmt}"
    out.write_text("the old file\n")
    model = os.path.join(SAMPLES, "sincos.npz")
    proc = subprocess.run(
        [sys.executable, "-c", EFBIG_CHILD, str(limit), "hessian", model,
         "--points", str(points), "-o", str(out), "-q", "--chunk-size", "7"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == f"Error: {out}: cannot write the output: File too large\n"
    assert out.read_text() == "the old file\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out." + fmt, "p.csv"]


def test_summary_titles_have_no_trailing_spaces_and_hessian_pairs_once(tmp_path):
    import os

    model = os.path.join(SAMPLES, "sincos.npz")
    res = run("hessian", model, "--at", "0.5,-0.2")
    assert res.exit_code == 0, res.output
    lines = res.stderr.splitlines()
    assert all(line == line.rstrip() for line in lines)
    assert "f: hessian (symmetric: each pair once)" in lines
    listed = [c for c in ("d2f/dx1dx1", "d2f/dx1dx2", "d2f/dx2dx1", "d2f/dx2dx2")
              if c in res.stderr]
    assert listed == ["d2f/dx1dx1", "d2f/dx1dx2", "d2f/dx2dx2"]
    train = os.path.join(SAMPLES, "noisy_train.csv")
    res = run("confint", os.path.join(SAMPLES, "noisy.npz"), "--train", train, "--at", "0,0")
    assert all(line == line.rstrip() for line in res.stderr.splitlines())
    res = run("sensitivity", model, "--points", os.path.join(SAMPLES, "sincos_points.csv"))
    assert res.exit_code == 0, res.output
    assert all(line == line.rstrip() for line in res.stderr.splitlines())


def test_point_counts_have_thousands_separators(tmp_path):
    import os

    X = np.zeros((1_000_000, 2))
    np.save(tmp_path / "p.npy", X)
    res = run("value", os.path.join(SAMPLES, "canonical.npz"), "--points", tmp_path / "p.npy",
              "-o", tmp_path / "v.npy")
    assert res.exit_code == 0, res.output
    assert "1,000,000 points in " in res.stderr


def test_a_chunk_is_held_to_the_memory_budget(tmp_path, monkeypatch):
    import os

    import jaccli
    from jaccli.errors import ResourceError

    np.save(tmp_path / "p.npy", np.random.default_rng(5).uniform(-1, 1, size=(20_000, 2)))
    model = os.path.join(SAMPLES, "sincos.npz")
    base = ["hessdiag", model, "--points", tmp_path / "p.npy", "-o", tmp_path / "h.npy", "-q"]
    env = {"JACCLI_MAX_MEMORY": "4M"}
    res = run(*base, "--chunk-size", "1000000000", env=env)
    assert res.exit_code == 2
    assert res.stderr.startswith("Error: --chunk-size 1,000,000,000: 1 chunk(s) of 20,000 points "
                                 "for hessdiag would take ")
    assert "the limit is 4.0 MiB (JACCLI_MAX_MEMORY); chunks of about " in res.stderr
    assert len(res.stderr.splitlines()) == 1 and not (tmp_path / "h.npy").exists()
    assert run(*base, env=env).exit_code == 0  # the default chunk fits
    assert run(*base, "--chunk-size", "100", env=env).exit_code == 0
    monkeypatch.setenv("JACCLI_MAX_MEMORY", "4M")
    with pytest.raises(ResourceError, match="^chunk_size 1,000,000,000"):
        jaccli.load(model).hessdiag(np.zeros((20_000, 2)), chunk_size=10 ** 9)
