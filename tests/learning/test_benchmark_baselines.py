"""The benchmark's own baselines are honest: the plain Q-learning loop that `q-learning-taxi`
times deeprl against really learns Taxi (scripts/benchmark.py), on several seeds."""

import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import compose_config
from deeprl.build import build

sys.path.insert(0, str(Path(__file__).parents[2] / "scripts"))
import benchmark  # noqa: E402


@pytest.mark.learning
def test_the_plain_q_learning_loop_comes_within_half_a_step_of_the_planner_on_taxi(tmp_path):
    cfg = compose_config("algo=value_iteration", "env=taxi", "log.progress=false", "eval.episodes=1")
    run = build(cfg, tmp_path)
    run.execute()
    optimum = benchmark.taxi_greedy_return(run.agent.Q)  # the same 100 seeded episodes
    assert optimum > 7.0
    # A table that never delivers scores -1 for each of the 200 steps of the time limit.
    assert benchmark.taxi_greedy_return(np.zeros((500, 6)), episodes=3) == -200.0
    preset = compose_config(*benchmark.TAXI_PRESET)
    algo, steps = preset.algo, int(preset.total_steps)
    for seed in (1, 2, 3):
        _, Q = benchmark.plain_q_learning(seed, steps, algo.alpha, algo.gamma, algo.exploration.start,
                                          algo.exploration.end, algo.exploration.fraction)
        assert benchmark.taxi_greedy_return(Q) >= optimum - 0.5, f"seed {seed}"
