"""The stderr summary: statistics, ranking, colour rules, the lazy progress bar."""

import io
import os

import numpy as np
from click.testing import CliRunner
from rich.console import Console

from conftest import SAMPLES
from jaccli.cli import cli
from jaccli.cli.summary import ColumnStats, LazyProgress


def test_column_stats_merge_chunks_exactly():
    rows = np.random.default_rng(0).normal(size=(101, 4)) * [1, 10, 0.1, 3] + [0, 5, -2, 1]
    stats = ColumnStats(4)
    for start in range(0, 101, 17):
        stats.update(rows[start:start + 17])
    np.testing.assert_allclose(stats.mean, rows.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(stats.std, rows.std(axis=0, ddof=1), rtol=1e-12)
    np.testing.assert_array_equal(stats.low, rows.min(axis=0))
    np.testing.assert_array_equal(stats.high, rows.max(axis=0))
    np.testing.assert_allclose(stats.mean_abs, np.abs(rows).mean(axis=0), rtol=1e-13)


def test_summary_ranks_by_mean_abs_and_has_no_escape_codes(tmp_path):
    points = tmp_path / "p.csv"
    points.write_text("x1,x2\n-1.5,0.5\n0.7,0.3\n1.2,-1.4\n")
    result = CliRunner().invoke(cli, ["jacobian", os.path.join(SAMPLES, "sincos.npz"), "-p",
                                      str(points)], env={"NO_COLOR": "1"})
    assert result.exit_code == 0
    assert "\x1b[" not in result.stderr
    jac = np.array([line.split(",") for line in result.stdout.splitlines()[1:]], dtype=float)
    ranked = np.argsort(-np.abs(jac).mean(axis=0))
    names = ["df/dx1", "df/dx2"]
    first, second = (result.stderr.index(names[i]) for i in ranked)
    assert first < second
    assert "3 points" in result.stderr


def test_progress_bar_appears_only_after_the_delay():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=80)
    quick = LazyProgress(console, total=10, enabled=True, delay=60.0)
    quick.advance(5)
    quick.close()
    assert quick.bar is None
    slow = LazyProgress(console, total=10, enabled=True, delay=0.0)
    slow.advance(5)
    slow.close()
    assert slow.bar is not None
    off = LazyProgress(console, total=10, enabled=False, delay=0.0)
    off.advance(5)
    assert off.bar is None


# ---------------------------------------------------------------- an 80-column terminal

def terminal(width=80):
    out = io.StringIO()
    return out, Console(file=out, width=width, force_terminal=True, no_color=True,
                        highlight=False, color_system=None)


def assert_fits(text, numbers, width=80):
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width, "\n".join(lines)
    assert "…" not in text  # rich's mark of a cut cell
    for number in numbers:
        assert number in text, number


def test_summaries_fit_80_columns_without_cutting_a_number(monkeypatch):
    import jaccli
    from jaccli.cli import summary

    model = jaccli.load(os.path.join(SAMPLES, "screen7.npz"))
    points = os.path.join(SAMPLES, "screen7_points.csv")
    result = jaccli.sensitivity(model, points, bootstrap=100, bounds="uniform:0:1")
    out, console = terminal()
    summary.print_sensitivity_summary(console, model, result, 0.5)
    numbers = [summary._g(v) for v in result.nu[0]] + [summary._g(v, 3) for v in result.bound[0]]
    numbers += [summary._g(v) for v in result.mean[0]] + [summary._g(v) for v in result.mean_abs[0]]
    assert_fits(out.getvalue(), numbers)
    assert "(continued)" in out.getvalue()
    # the computing commands' table, with long column names
    X = np.loadtxt(points, delimiter=",", skiprows=1)
    hd = model.hessdiag(X).reshape(len(X), -1)
    stats = ColumnStats(hd.shape[1])
    stats.update(hd)
    out, console = terminal()
    columns = [f"d2power_output/dinput_{j}2" for j in range(7)]
    summary.print_summary(console, model, "hessdiag", columns, stats, len(X), 0.1,
                          [("power_output: hessdiag", list(range(7)))])
    assert_fits(out.getvalue(), [summary._g(v, 6) for v in stats.std] + columns)
    # check's report, and a failure's line (a wrong tanh derivative)
    from jaccli.engine import activations

    def wrong_tanh(z):
        t = np.tanh(z)
        return t, (1.0 - t * t) * 1.001, -2.0 * t * (1.0 - t * t)

    monkeypatch.setitem(activations.ACTIVATIONS, "tanh", activations.Activation("tanh", wrong_tanh))
    noisy = jaccli.load(os.path.join(SAMPLES, "noisy.npz"))
    report = jaccli.check(noisy, [[0.5, -1.0], [1.0, 0.25]], what="jacobian,hessdiag")
    worst = report.failures[0][1]["worst_analytic"]
    out, console = terminal()
    summary.print_check_report(console, noisy, report, "float64")
    assert_fits(out.getvalue(), ["PASS", "FAIL", "richardson", "time (s)", f"{worst:.10g}"])
    # a wide terminal keeps one table
    out, console = terminal(200)
    summary.print_sensitivity_summary(console, model, result, 0.5)
    assert "(continued)" not in out.getvalue() and "█" in out.getvalue()


def test_one_point_is_singular():
    model = os.path.join(SAMPLES, "noisy.npz")
    res = CliRunner().invoke(cli, ["check", model, "--at", "0.5,0.5"], env={"NO_COLOR": "1"})
    assert res.exit_code == 0, res.output
    assert "; 1 point;" in res.stderr and "1 points" not in res.stderr
    res = CliRunner().invoke(cli, ["confint", model, "--train",
                                   os.path.join(SAMPLES, "noisy_train.csv"), "--at", "0,0"])
    assert "1 query point;" in res.stderr and "1 query points" not in res.stderr
    res = CliRunner().invoke(cli, ["value", model, "--at", "0,0"])
    assert "1 point in" in res.stderr


def test_sensitivity_names_its_assumption_and_hints_at_normal_bounds(tmp_path):
    model = os.path.join(SAMPLES, "sincos.npz")
    rng = np.random.default_rng(5)
    np.save(tmp_path / "normal.npy", rng.normal(size=(2000, 2)))
    np.save(tmp_path / "uniform.npy", rng.uniform(-2, 2, size=(2000, 2)))
    base = ["sensitivity", model, "-B", "50", "--points"]
    res = CliRunner().invoke(cli, base + [str(tmp_path / "normal.npy")], env={"NO_COLOR": "1"})
    text = " ".join(res.stderr.split())
    assert "S_T <= assumes independent inputs, each uniform on the range of its points" in text
    assert "hint: the points of x1 and x2 look normal, not uniform" in text
    assert "--bounds normal:SD" in text
    res = CliRunner().invoke(cli, base + [str(tmp_path / "uniform.npy")])
    assert "uniform on the range of its points" in res.stderr and "hint:" not in res.stderr
    res = CliRunner().invoke(cli, base + [str(tmp_path / "normal.npy"), "--bounds", "normal"])
    text = " ".join(res.stderr.split())
    assert "hint:" not in text and "assumes independent inputs: x1 normal sd" in text
    assert "(the points' sd)" in text
