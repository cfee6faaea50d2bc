"""DQN learns MinAtar Breakout: a short claim over several seeds, against the random policy."""

import numpy as np
import pytest

from conftest import run_in_process

QUIET = ["log.progress=false", "device=cpu", "checkpoint.keep=0"]

# Mean return of the uniform random policy over 400 Breakout games (v0, sticky actions 0.1):
# 0.49, per-game standard deviation 0.75 (measured with 8 envs, seed 100).
RANDOM_BREAKOUT = 0.49


@pytest.mark.learning
def test_dqn_triples_the_random_score_on_breakout_within_20k_steps(tmp_path):
    """Claim: DQN (the MinAtar preset, with learning from step 1000 and epsilon decayed over the
    first 4000 steps) ends 20k steps of MinAtar Breakout with a greedy evaluation (20 games) whose
    mean over seeds 1, 2, 3 is at least 1.5: three times the random policy's 0.49. Measured final
    returns of seeds 1, 2, 3: 2.9, 3.35, 3.4 (mean 3.2) with bf16 autocast (precision auto on an
    AVX-512 BF16 CPU); 3.35, 3.15, 2.8 (3.1) in fp32; 2.65, 2.7, 2.45 (2.6) in fp32 under
    ATEN_CPU_CAPABILITY=default (scalar kernels). About 40 s a seed on 2 busy cores."""
    means = []
    for seed in (1, 2, 3):
        summary = run_in_process(tmp_path / f"seed{seed}", "algo=dqn", "env=minatar_breakout",
                                 "total_steps=20000", "algo.learning_starts=1000", "algo.exploration.fraction=0.2",
                                 "eval.every=0", "eval.episodes=20", "checkpoint.every_minutes=0", f"seed={seed}",
                                 *QUIET)
        means.append(summary["eval_return_mean"])
    assert np.mean(means) >= 1.5, f"final eval returns by seed: {means} (random policy: {RANDOM_BREAKOUT})"
