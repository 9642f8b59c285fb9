"""The bench's floor row runs (``make bench`` is not run by the suite): the matrix
products alone, on a small one-output model, and the machine's own two-thread loops."""

import numpy as np

import jaccli
from bench import floor


def test_products_only_runs_the_sweeps_products(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "m.npz"
    np.savez(path, W0=rng.normal(size=(3, 5)), b0=np.zeros(5), W1=rng.normal(size=(5, 4)),
             b1=np.zeros(4), W2=rng.normal(size=(4, 1)), b2=np.zeros(1),
             jaccli_spec=np.array("{inputs: 3, outputs: 1, layers: [{units: 5, activation: tanh}, "
                                  "{units: 4, activation: tanh}, {units: 1, activation: linear}]}"))
    model = jaccli.load(str(path))
    points = rng.normal(size=(50, 3))
    for value in (False, True):
        floor.products_only(model, points, chunk=16, threads=2, value=value)()


def test_machine_threads_gives_a_speed_up_per_loop(monkeypatch):
    monkeypatch.setattr(floor, "LOOP_REPEATS", 2)
    scaling = floor.machine_threads(rounds=1)
    assert set(scaling) == {"product", "tanh"} and all(x > 0 for x in scaling.values())
    assert "in-cache product loop" in floor.describe_machine(scaling)
