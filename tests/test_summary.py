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
