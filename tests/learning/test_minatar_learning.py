"""DQN learns MinAtar Breakout: a short claim over several seeds, against the random policy."""

import pytest

from conftest import assert_at_least, final_returns

QUIET = ["log.progress=false", "device=cpu", "checkpoint.keep=0"]

# Mean return of the uniform random policy over 400 Breakout games (v0, sticky actions 0.1):
# 0.49, per-game standard deviation 0.75 (measured with 8 envs, seed 100).
RANDOM_BREAKOUT = 0.49


@pytest.mark.learning
def test_dqn_triples_the_random_score_on_breakout_within_20k_steps(tmp_path):
    """Claim: DQN (the MinAtar preset, with learning from step 1000 and epsilon decayed over the
    first 4000 steps) ends 20k steps of MinAtar Breakout with a greedy evaluation (20 games) of at
    least 1.5, three times the random policy's 0.49, on at least 2 of seeds 1, 2, 3. Measured final
    returns of seeds 1, 2, 3: 2.9, 3.35, 3.4 with bf16 autocast (precision auto on an AVX-512 BF16
    CPU); 3.35, 3.15, 2.8 in fp32; 2.65, 2.7, 2.45 in fp32 under ATEN_CPU_CAPABILITY=default
    (scalar kernels). About 45 s a seed on 2 busy cores; the third seed runs only if one of the
    first two misses."""
    returns = final_returns(tmp_path, (1, 2, 3), "algo=dqn", "env=minatar_breakout",
                            "total_steps=20000", "algo.learning_starts=1000", "algo.exploration.fraction=0.2",
                            "eval.every=0", "eval.episodes=20", "checkpoint.every_minutes=0", *QUIET,
                            threshold=1.5, at_least=2)
    assert_at_least(returns, 1.5, at_least=2)
