"""DQN's refinements solve CartPole-v1 at their tuned presets on most seeds, and bf16 autocast learns.

Seeds run one after another in-process and stop once the claim is decided. Final greedy
evaluation, 10 episodes. "Native" is the measuring CPU (AVX-512 BF16); "avx2" adds ATEN_CPU_CAPABILITY=avx2,
MKL_ENABLE_INSTRUCTIONS=AVX2 and ONEDNN_MAX_CPU_ISA=AVX2 (the kernels of an AVX2-only CPU, bf16
emulated); "default" is ATEN_CPU_CAPABILITY=default (scalar kernels, another float path).

- prioritized_dqn and rainbow_lite (double + dueling + prioritized + 3-step): at least 3 of seeds
  1-5 end at >= 475. Measured, seeds 1-5: prioritized 500 on all five natively (and identically on
  seeds 1-4 under avx2), 500, 207.2, 500, 500, 500 under default; rainbow_lite 500, 500, 500, 500,
  479.7 natively, 495.0, 366.3, 500, 500, 500 under default.
- DQN under bf16 autocast (fp32 weights, loss and Q head) learns: after 20k steps at least 2 of
  seeds 1-3 end at >= 100 (a random policy averages about 22). Measured at 20k steps: 196, 191,
  136, 167, 200, 134 (seeds 1-6, native bf16), 149, 138, 145, 161, 191, 122 (seeds 1-6, avx2: bf16
  emulated), 138, 165, 140 (seeds 1-3, default).

Not claimed, because measured not to hold: that DQN under bf16 *solves* CartPole (at the full 50k
steps it ends >= 475 on 3 of seeds 1-6 natively, 500, 166, 55, 500, 302, 500, and on 3 of 6 under
avx2, 109, 408, 500, 327, 500, 500: the others collapse late), nor that dueling_dqn alone does at
its preset (seeds 1-5: 500, 241, 500, 500, 259; neither target.every=200 nor batch 128 with
target.every=500 made it robust). rainbow_lite covers the dueling head. Plain DQN (and
double_dqn, the same preset) is claimed in test_dqn_cartpole.py.
"""

import pytest

from conftest import assert_at_least, final_returns

pytestmark = pytest.mark.learning


@pytest.mark.parametrize("algo", ["prioritized_dqn", "rainbow_lite"])
def test_variant_solves_cartpole_on_most_seeds(tmp_path, algo):
    returns = final_returns(tmp_path, (1, 2, 3, 4, 5), f"algo={algo}", "env=cartpole", "eval.every=0",
                            threshold=475, at_least=3)
    assert_at_least(returns, 475, 3)


def test_dqn_learns_under_bf16_autocast_on_most_seeds(tmp_path):
    # Without native bf16 this runs emulated, about 3x slower than fp32: 20k steps keep it short.
    returns = final_returns(tmp_path, (1, 2, 3), "algo=dqn", "env=cartpole", "algo.precision=bf16",
                            "total_steps=20000", "eval.every=0", threshold=100, at_least=2)
    assert_at_least(returns, 100, 2)
