"""The bench's quiet-machine verdict: other work's share of the cores during the run,
not the load average its own workers raise."""

from bench import quiet


def test_the_verdict_follows_the_other_works_share():
    assert "machine quiet" in quiet.describe({"other_share": 0.01, "steal_share": 0.0}, 1.9, 2)
    assert "NOT quiet" in quiet.describe({"other_share": 0.41, "steal_share": 0.002}, 0.2, 2)
    assert "not measured" in quiet.describe({}, 0.5, 2)


def test_a_watch_reports_shares_of_the_runs_core_seconds():
    shares = quiet.CpuWatch().report(cores=2)
    if quiet.busy_and_steal() is None:  # not Linux
        assert shares == {}
    else:
        assert set(shares) == {"other_share", "steal_share"}
        assert all(value >= 0 for value in shares.values())
