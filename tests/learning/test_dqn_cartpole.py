"""`train algo=dqn env=cartpole` solves CartPole-v1 at its default settings (the tuned preset).

Claim: at least 3 of seeds 1-5 end with a final greedy evaluation (10 episodes) of >= 475,
CartPole-v1's solved mark. The seeds run one after another in-process and stop once the claim is
decided (three passes cost three runs). Measured final returns: seeds 1-10 end at 500 except seed
10 at 475.9, on an AVX-512 BF16 CPU's kernels and identically under ATEN_CPU_CAPABILITY=avx2; under
ATEN_CPU_CAPABILITY=default (scalar kernels, another float path) seeds 1-4 end at 500 and seed 5
at 237.9. DQN on CartPole is chaotic: the last bit of one sum can turn a seed into a late
collapse, so the claim is about a majority of five seeds, never about one.
"""

import pytest

from conftest import assert_at_least, final_returns

pytestmark = pytest.mark.learning


def test_dqn_solves_cartpole_on_most_seeds(tmp_path):
    returns = final_returns(tmp_path, (1, 2, 3, 4, 5), "algo=dqn", "env=cartpole", "eval.every=0",
                            threshold=475, at_least=3)
    assert_at_least(returns, 475, 3)
