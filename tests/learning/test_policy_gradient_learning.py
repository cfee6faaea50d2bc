"""Each policy-gradient algorithm reaches its task's threshold at its tuned preset on most seeds.

Claim of every test here: at least 2 of seeds 1, 2, 3 end with a final greedy evaluation
(10 episodes) at or above the threshold: 475 on CartPole-v1 (its solved mark), -250 on
Pendulum-v1. The seeds run one after another in-process and stop once the claim is decided, so a
claim that holds on seeds 1 and 2 costs two runs. Measured, seeds 1-3, on an AVX-512 BF16 CPU's
kernels and under ATEN_CPU_CAPABILITY=default (scalar kernels, another float path): every CartPole
run (reinforce, batch and online actor_critic, a2c, ppo) ends at 500; PPO on Pendulum ends at
-196.6, -149.8, -144.7 and -226.7, -150.9, -143.7.
"""

import pytest

from conftest import assert_at_least, final_returns

pytestmark = pytest.mark.learning

SEEDS = (1, 2, 3)


@pytest.mark.parametrize("algo", ["reinforce", "actor_critic", "a2c", "ppo"])
def test_solves_cartpole_on_most_seeds(tmp_path, algo):
    returns = final_returns(tmp_path, SEEDS, f"algo={algo}", "env=cartpole", "eval.every=0",
                            threshold=475, at_least=2)
    assert_at_least(returns, 475, 2)


def test_online_actor_critic_solves_cartpole_on_most_seeds(tmp_path):
    # The other form of actor-critic: one critic and one policy step after every transition.
    # Advantages of 8 samples are too few to normalise, and single steps want smaller rates.
    returns = final_returns(tmp_path, SEEDS, "algo=actor_critic", "env=cartpole", "algo.mode=online",
                            "num_envs=8", "algo.norm_adv=false", "algo.actor_lr=1e-3", "algo.critic_lr=5e-3",
                            "eval.every=0", threshold=475, at_least=2)
    assert_at_least(returns, 475, 2)


def test_ppo_reaches_the_pendulum_threshold_on_most_seeds(tmp_path):
    returns = final_returns(tmp_path, SEEDS, "algo=ppo", "env=pendulum", "eval.every=0",
                            threshold=-250, at_least=2)
    assert_at_least(returns, -250, 2)
