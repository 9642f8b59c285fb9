"""--plot and jaccli.plot_*: what each figure draws (through matplotlib's objects: the
plotted arrays, labels and titles), the sample behind it, and that the data written
are the same bytes with or without it."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("matplotlib")

import jaccli  # noqa: E402
from jaccli import plots  # noqa: E402
from jaccli.cli import cli  # noqa: E402
from jaccli.plots.sample import BottomK, RunSample, row_keys, sample_rows  # noqa: E402

from conftest import SAMPLES  # noqa: E402
from . import nets  # noqa: E402

SINCOS = os.path.join(SAMPLES, "sincos.npz")
UNIFORM = os.path.join(SAMPLES, "sincos_uniform.csv")
NOISY = os.path.join(SAMPLES, "noisy.npz")
NOISY_TRAIN = os.path.join(SAMPLES, "noisy_train.csv")
SCREEN7 = os.path.join(SAMPLES, "screen7.npz")
SCREEN7_POINTS = os.path.join(SAMPLES, "screen7_points.csv")


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def drawn(monkeypatch):
    """The figures the command line draws, as matplotlib Figures."""
    figures = []
    prepare = plots.FigureFile.prepare

    def keep(self):
        prepare(self)
        figures.append(self.figure)

    monkeypatch.setattr(plots.FigureFile, "prepare", keep)
    return figures


def visible_axes(figure):
    return [ax for ax in figure.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]


def csv_table(text):
    lines = text.splitlines()
    return lines[0].split(","), np.array([line.split(",") for line in lines[1:]], dtype=float)


# ---------------------------------------------------------------- the sample


def test_bottom_k_is_the_same_sample_whatever_the_chunks_and_their_order():
    rows = np.arange(10_000, dtype=float)[:, None] * [1.0, -1.0]
    whole = BottomK(500, seed=3)
    whole.offer(0, rows)
    index, kept = whole.sample()
    chunked = BottomK(500, seed=3)
    starts = list(range(0, 10_000, 137))
    for start in reversed(starts):  # out of order, as worker threads may read them
        chunked.offer(start, rows[start:start + 137])
    chunked.offer(0, rows[:137])  # a chunk read twice counts once
    index2, kept2 = chunked.sample()
    assert len(index) == 500 and np.array_equal(index, index2) and np.array_equal(kept, kept2)
    assert np.array_equal(kept[:, 0], index)  # each row kept with its own number
    keys = row_keys(3, 0, 10_000)
    assert set(index) == set(np.argsort(keys)[:500])  # the 500 smallest keys
    other = BottomK(500, seed=4)
    other.offer(0, rows)
    assert not np.array_equal(other.sample()[0], index)


def test_bottom_k_sample_is_uniform_over_the_rows():
    index, _ = sample_rows(np.zeros((100_000, 1)), limit=5_000)
    counts = np.histogram(index, bins=10, range=(0, 100_000))[0]
    assert counts.sum() == 5_000 and np.all(np.abs(counts - 500) < 5 * np.sqrt(500))


def test_run_sample_joins_points_and_results_by_row_and_ranks_on_every_row():
    X = np.random.default_rng(0).normal(size=(50_000, 3))
    sample = RunSample(3, slice(1, 4), limit=1_000)
    tapped = sample.tap(X)
    for start in range(0, 50_000, 4096):
        x = tapped[start:start + 4096]
        sample.write(start, np.column_stack([np.zeros(len(x)), 2 * x]))  # another column first
    index, x, y = sample.arrays()
    assert len(index) == 1_000 and np.array_equal(x, X[index]) and np.array_equal(y, 2 * X[index])
    np.testing.assert_allclose(sample.mean_abs, 2 * np.abs(X).mean(axis=0), rtol=1e-12)
    assert sample.count == 50_000


# ---------------------------------------------------------------- jacobian / hessdiag


def test_jacobian_plot_draws_each_derivative_against_its_input(tmp_path, drawn):
    res = run("jacobian", SINCOS, "--points", UNIFORM, "--plot", tmp_path / "j.png")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "j.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    header, jac = csv_table(res.stdout)
    _, X = csv_table(open(UNIFORM).read())
    (figure,) = drawn
    axes = visible_axes(figure)
    assert len(axes) == 2
    # ranked by mean |dy/dx_j|: x2 first
    mean_abs = np.abs(jac).mean(axis=0)
    assert mean_abs[1] > mean_abs[0]
    for ax, j in zip(axes, (1, 0)):
        assert ax.get_xlabel() == f"x{j + 1}" and ax.get_ylabel() == header[j]
        assert ax.get_title() == f"{header[j]}: mean |.| {mean_abs[j]:.4g}"
        offsets = ax.collections[0].get_offsets()  # 1,000 points: dots, every one
        np.testing.assert_array_equal(offsets, np.column_stack([X[:, j], jac[:, j]]))
        zero = [line for line in ax.lines if list(line.get_ydata()) == [0, 0]]
        assert zero, "a zero line"
    assert "1,000 points" in figure._suptitle.get_text()
    assert "wrote" in res.stderr and "j.png" in res.stderr


def test_many_points_are_drawn_as_their_density_from_a_bounded_sample(tmp_path, drawn):
    X = np.random.default_rng(1).uniform(-2, 2, size=(30_000, 2))
    np.save(tmp_path / "p.npy", X)
    res = run("hessdiag", SINCOS, "--points", tmp_path / "p.npy", "-o", tmp_path / "h.npy",
              "--plot", tmp_path / "h.svg", "--plot-x", "x1", "--chunk-size", "1000")
    assert res.exit_code == 0, res.output
    assert b"<svg" in (tmp_path / "h.svg").read_bytes()[:400]
    (figure,) = drawn
    (ax,) = visible_axes(figure)
    assert ax.get_xlabel() == "x1" and ax.get_ylabel() == "d2f/dx12"
    counts = ax.collections[0].get_array()  # a hexbin: counts per cell
    assert counts.sum() == 20_000  # the sample, not the 30,000 points
    assert "a seeded sample of 20,000 of 30,000 points" in figure._suptitle.get_text()


def test_plot_x_picks_the_panels_and_names_are_checked(tmp_path, drawn):
    out = tmp_path / "s.png"
    res = run("jacobian", SCREEN7, "--points", SCREEN7_POINTS, "-q", "--plot", out,
              "--plot-x", "x7,X1")
    assert res.exit_code == 0, res.output
    assert [ax.get_xlabel() for ax in visible_axes(drawn[0])] == ["x7", "x1"]
    res = run("jacobian", SCREEN7, "--points", SCREEN7_POINTS, "-q", "--plot", out)
    assert len(visible_axes(drawn[1])) == 6  # at most 6 of the 7 inputs, by mean |dy/dx_j|
    assert "x7" not in [ax.get_xlabel() for ax in visible_axes(drawn[1])]
    res = run("jacobian", SCREEN7, "--points", SCREEN7_POINTS, "--plot", out, "--plot-x", "x9")
    assert res.exit_code == 2 and "--plot-x: no input named 'x9'" in res.stderr
    res = run("jacobian", SCREEN7, "--points", SCREEN7_POINTS, "--plot-x", "x1")
    assert res.exit_code == 2 and "give --plot FILE too" in res.stderr
    res = run("jacobian", SCREEN7, "--points", SCREEN7_POINTS, "--plot", out, "--wrt", "params")
    assert res.exit_code == 2 and "not with --wrt params" in res.stderr


def test_with_plots_the_commands_own_columns(tmp_path, drawn):
    res = run("jacobian", SINCOS, "--points", UNIFORM, "--with", "value,hessdiag", "-q",
              "--plot", tmp_path / "j.png")
    assert res.exit_code == 0, res.output
    header, table = csv_table(res.stdout)
    ax = visible_axes(drawn[0])[0]
    assert ax.get_ylabel() == "df/dx2"
    np.testing.assert_array_equal(ax.collections[0].get_offsets()[:, 1],
                                  table[:, header.index("df/dx2")])


@pytest.mark.parametrize("suffix", [".csv", ".npy", ".jsonl"])
def test_the_data_are_the_same_bytes_with_or_without_plot(tmp_path, suffix):
    X = np.random.default_rng(2).uniform(-2, 2, size=(5_000, 2))
    np.save(tmp_path / "p.npy", X)
    plain, plotted = tmp_path / f"a{suffix}", tmp_path / f"b{suffix}"
    base = ["jacobian", SINCOS, "--points", tmp_path / "p.npy", "--chunk-size", "700", "-q"]
    assert run(*base, "-o", plain).exit_code == 0
    assert run(*base, "-o", plotted, "--plot", tmp_path / "f.png").exit_code == 0
    assert plain.read_bytes() == plotted.read_bytes()
    assert run(*base).stdout == run(*base, "--plot", tmp_path / "g.png").stdout


def test_table_commands_write_the_same_bytes_with_or_without_plot(tmp_path):
    for command in (["sensitivity", SCREEN7, "--points", SCREEN7_POINTS, "-B", "50"],
                    ["confint", NOISY, "--train", NOISY_TRAIN, "--points", UNIFORM],
                    ["check", NOISY, "--points", os.path.join(SAMPLES, "noisy_points.csv")]):
        plain = run(*command, "-q")
        plotted = run(*command, "-q", "--plot", tmp_path / f"{command[0]}.pdf")
        assert plain.exit_code == plotted.exit_code == 0, plotted.output
        assert plain.stdout == plotted.stdout
        assert (tmp_path / f"{command[0]}.pdf").read_bytes()[:5] == b"%PDF-"


# ---------------------------------------------------------------- sensitivity


def test_sensitivity_plot_bars_whiskers_bounds_and_assumption(tmp_path, drawn):
    res = run("sensitivity", SCREEN7, "--points", SCREEN7_POINTS, "--bounds", "uniform:0:1",
              "-q", "-o", tmp_path / "s.json", "--plot", tmp_path / "s.png")
    assert res.exit_code == 0, res.output
    rows = json.loads((tmp_path / "s.json").read_text())["rows"]
    nu = {r["input"]: r for r in rows}
    (figure,) = drawn
    left, right = visible_axes(figure)
    order = sorted(nu, key=lambda name: -nu[name]["nu"])
    labels = [t.get_text() for t in left.get_yticklabels()]
    ticks = left.get_yticks()
    assert [labels[i] for i in np.argsort(-ticks)] == order  # the largest nu on top
    from matplotlib.container import BarContainer, ErrorbarContainer

    (bar_container,) = [c for c in left.containers if isinstance(c, BarContainer)]
    (errors,) = [c for c in left.containers if isinstance(c, ErrorbarContainer)]
    bars = sorted(bar_container.patches, key=lambda p: -p.get_y())
    np.testing.assert_allclose([b.get_width() for b in bars], [nu[n]["nu"] for n in order])
    whiskers = errors.lines[2][0].get_segments()  # the errorbar's bars
    np.testing.assert_allclose(sorted((s[0][0], s[1][0]) for s in whiskers),
                               sorted((nu[n]["nu_lower"], nu[n]["nu_upper"]) for n in order))
    bound_bars = sorted(right.containers[0].patches, key=lambda p: -p.get_y())
    np.testing.assert_allclose([b.get_width() for b in bound_bars],
                               [min(nu[n]["bound"], 1) for n in order])
    assert "nu with its 95% bootstrap interval" in left.get_title()
    assert right.get_title() == "S_T <=" and right.get_xlim() == (0, 1.05)
    notes = " ".join(t.get_text() for t in figure.texts)
    assert "S_T bounds assume independent inputs" in notes and "uniform on [0, 1]" in notes


def test_sensitivity_plot_says_a_bound_of_one_or_more_says_nothing():
    model = jaccli.load(SINCOS)
    result = jaccli.sensitivity(model, UNIFORM, bootstrap=50)
    figure = jaccli.plot_sensitivity(result)
    right = visible_axes(figure)[1]
    texts = [t.get_text() for t in right.texts]
    assert all("(>= 1: no information)" in t for t in texts)  # both bounds exceed 1 here
    notes = " ".join(t.get_text() for t in figure.texts)
    assert "every input uniform with its points' range" in notes


# ---------------------------------------------------------------- confint


def line_points(tmp_path):
    x1 = np.linspace(-3, 3, 61)
    return nets.write_csv(tmp_path / "line.csv", ["x1", "x2"],
                          np.column_stack([x1, np.full_like(x1, 0.5)])), x1


def test_confint_plot_bands_along_the_one_input_that_varies(tmp_path, drawn):
    points, x1 = line_points(tmp_path)
    res = run("confint", NOISY, "--train", NOISY_TRAIN, "--points", points, "-q",
              "--plot", tmp_path / "ci.png")
    assert res.exit_code == 0, res.output
    header, table = csv_table(res.stdout)
    (ax,) = visible_axes(drawn[0])
    assert ax.get_xlabel() == "x1" and ax.get_ylabel() == "y"
    (line,) = [ln for ln in ax.lines if ln.get_label() == "prediction"]
    np.testing.assert_array_equal(line.get_xdata(), x1)
    np.testing.assert_array_equal(line.get_ydata(), table[:, header.index("y")])
    bands = {c.get_label(): c for c in ax.collections}
    assert set(bands) >= {"95% prediction interval", "95% confidence interval", "training data"}
    path = bands["95% confidence interval"].get_paths()[0].vertices
    for column in ("y_lower", "y_upper"):  # the band's outline holds both edges
        assert np.isin(np.round(table[:, header.index(column)], 12), np.round(path[:, 1], 12)).all()
    train = np.loadtxt(NOISY_TRAIN, delimiter=",", skiprows=1)
    offsets = bands["training data"].get_offsets()
    assert len(offsets) == len(train)
    assert set(map(tuple, np.round(offsets, 12))) == set(map(tuple, np.round(train[:, [0, 2]], 12)))


def test_confint_plot_error_bars_when_other_inputs_vary_and_plot_x(tmp_path, drawn):
    points = os.path.join(SAMPLES, "noisy_points.csv")
    res = run("confint", NOISY, "--train", NOISY_TRAIN, "--points", points, "-q",
              "--plot", tmp_path / "ci.png", "--plot-x", "x2")
    assert res.exit_code == 0, res.output
    header, table = csv_table(res.stdout)
    (ax,) = visible_axes(drawn[0])
    assert ax.get_xlabel() == "x2" and "error bars" in ax.get_title()
    confidence = [c for c in ax.containers if "confidence" in c.get_label()][0]
    data_line, _, (bars,) = confidence.lines
    _, X = csv_table(open(points).read())
    np.testing.assert_array_equal(data_line.get_xdata(), X[:, 1])
    segments = bars.get_segments()
    np.testing.assert_allclose([s[0][1] for s in segments], table[:, header.index("y_lower")])
    np.testing.assert_allclose([s[1][1] for s in segments], table[:, header.index("y_upper")])


def test_confint_plot_from_the_api(tmp_path):
    model = jaccli.load(NOISY)
    X = np.column_stack([np.linspace(-2, 2, 9), np.zeros(9)])
    result = jaccli.confint(model, NOISY_TRAIN, X)
    figure = jaccli.plot_confint(model, result, X, tmp_path / "ci.png", train=False)
    assert (tmp_path / "ci.png").exists()
    (ax,) = visible_axes(figure)
    (line,) = [ln for ln in ax.lines if ln.get_label() == "prediction"]
    np.testing.assert_array_equal(line.get_ydata(), result["y"])
    with pytest.raises(jaccli.JaccliError, match="x: no input named 'z'"):
        jaccli.plot_confint(model, result, X, x="z")


# ---------------------------------------------------------------- check


def test_check_plot_errors_against_estimates_with_the_allowed_line(tmp_path, drawn):
    points = os.path.join(SAMPLES, "noisy_points.csv")
    res = run("check", NOISY, "--points", points, "-q", "--plot", tmp_path / "c.png")
    assert res.exit_code == 0, res.output
    axes = visible_axes(drawn[0])
    assert [ax.get_title().split(":")[0] for ax in axes] == ["jacobian", "hessdiag", "params"]
    model = jaccli.load(NOISY)
    report = jaccli.check(model, np.loadtxt(points, delimiter=",", skiprows=1))
    for ax, quantity in zip(axes, ("jacobian", "hessdiag", "params")):
        elements = report.elements[quantity]
        assert ax.get_xscale() == ax.get_yscale() == "log"
        assert ax.get_title() == f"{quantity}: {elements['status'].size:,} checked, 0 failed"
        dots = ax.collections[0].get_offsets()
        error = elements["abs_error"].ravel()
        assert len(dots) == error.size  # every element passed: one dot each
        positive = np.sort(error[error > 0])  # zeros are drawn at the floor, below them
        np.testing.assert_allclose(np.sort(dots[:, 1])[len(dots) - len(positive):], positive)
        (allowed,) = [ln for ln in ax.lines if ln.get_label().startswith("allowed")]
        x, y = allowed.get_xdata(), allowed.get_ydata()
        np.testing.assert_allclose(y, elements["threshold"][0] + 3 * x)


def test_check_plot_marks_the_failures(tmp_path, monkeypatch):
    from jaccli.engine import activations

    def wrong_tanh(z):
        t = np.tanh(z)
        return t, (1.0 - t * t) * 1.001, -2.0 * t * (1.0 - t * t)

    monkeypatch.setitem(activations.ACTIVATIONS, "tanh", activations.Activation("tanh", wrong_tanh))
    model = jaccli.load(NOISY)
    X = np.loadtxt(os.path.join(SAMPLES, "noisy_points.csv"), delimiter=",", skiprows=1)
    report = jaccli.check(model, X, what="jacobian")
    assert not report.passed
    figure = jaccli.plot_check(report, tmp_path / "c.png")
    (ax,) = visible_axes(figure)
    failed = [c for c in ax.collections if c.get_label().startswith("failed")]
    status = report.elements["jacobian"]["status"].ravel()
    error = report.elements["jacobian"]["abs_error"].ravel()
    assert failed and failed[0].get_label() == f"failed ({np.count_nonzero(status == 1)})"
    np.testing.assert_allclose(np.sort(failed[0].get_offsets()[:, 1]), np.sort(error[status == 1]))
    assert "FAILED" in figure._suptitle.get_text()


# ---------------------------------------------------------------- the API, errors, start-up


def test_plot_derivatives_and_sensitivity_from_the_api(tmp_path):
    model = jaccli.load(SINCOS)
    X = np.loadtxt(UNIFORM, delimiter=",", skiprows=1)
    figure = jaccli.plot_derivatives(model, X, tmp_path / "d.pdf", quantity="hessdiag",
                                     inputs=["x1"])
    assert (tmp_path / "d.pdf").read_bytes()[:5] == b"%PDF-"
    (ax,) = visible_axes(figure)
    np.testing.assert_array_equal(ax.collections[0].get_offsets(),
                                  np.column_stack([X[:, 0], model.hessdiag(X)[:, 0, 0]]))
    result = jaccli.sensitivity(model, X, bootstrap=50)
    assert jaccli.plot_sensitivity(result, tmp_path / "s.svg") is not None
    with pytest.raises(jaccli.JaccliError, match="quantity must be"):
        jaccli.plot_derivatives(model, X, quantity="hessian")
    with pytest.raises(jaccli.JaccliError, match=r"path .*d\.jpg: a figure is \.png, \.svg or \.pdf"):
        jaccli.plot_derivatives(model, X, tmp_path / "d.jpg")


def test_plot_errors_are_one_line_before_any_work(tmp_path, monkeypatch):
    out = tmp_path / "out.csv"
    res = run("jacobian", SINCOS, "--points", UNIFORM, "-o", out, "--plot", tmp_path / "f.jpg")
    assert res.exit_code == 2 and "--plot" in res.stderr and ".png, .svg or .pdf" in res.stderr
    res = run("jacobian", SINCOS, "--points", UNIFORM, "-o", out, "--plot", out)
    assert res.exit_code == 2
    res = run("jacobian", SINCOS, "--points", UNIFORM, "--plot", tmp_path / "nowhere" / "f.png")
    assert res.exit_code == 2 and "does not exist" in res.stderr
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if the extra were missing
    res = run("sensitivity", SINCOS, "--points", UNIFORM, "-o", out, "--plot", tmp_path / "f.png")
    assert res.exit_code == 2
    assert res.stderr == ("Error: --plot needs matplotlib, which is not installed: "
                          "pip install 'jaccli[plot]'\n")
    assert not out.exists()


def test_a_figure_that_fails_leaves_neither_output(tmp_path, monkeypatch):
    from jaccli.plots import draw

    def broken(*args, **kwargs):
        raise RuntimeError("drawing failed")

    monkeypatch.setattr(draw, "derivative_figure", broken)
    out, figure = tmp_path / "out.csv", tmp_path / "f.png"
    res = run("jacobian", SINCOS, "--points", UNIFORM, "-o", out, "--plot", figure)
    assert res.exit_code != 0
    assert sorted(os.listdir(tmp_path)) == []


def test_matplotlib_is_imported_only_with_plot(tmp_path):
    code = ("import sys; from jaccli.cli import main; sys.argv = ['jaccli'] + sys.argv[1:]\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "sys.stderr.write('MPL %s' % ('matplotlib' in sys.modules))")
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(jaccli.__file__)))
    env.pop("DISPLAY", None)
    plain = subprocess.run([sys.executable, "-c", code, "jacobian", SINCOS, "--at", "1,1", "-q"],
                           capture_output=True, text=True, env=env)
    assert plain.stderr.endswith("MPL False")
    plotted = subprocess.run([sys.executable, "-c", code, "jacobian", SINCOS, "--at", "1,1", "-q",
                              "--plot", str(tmp_path / "f.png")], capture_output=True, text=True,
                             env=env)
    assert plotted.stderr.endswith("MPL True") and (tmp_path / "f.png").exists()
    assert "pyplot" not in plotted.stderr
