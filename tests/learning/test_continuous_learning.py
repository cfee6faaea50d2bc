"""DDPG, TD3 and SAC learn Pendulum-v1 at their tuned presets (20k steps) on most seeds.

Claim of every test here: at least 2 of seeds 1, 2, 3 end with a final deterministic evaluation
(50 episodes, the presets' setting) at or above -250, which leaves a margin below what the
presets are documented to reach (>= -200 on every seed of 1-5; about -150 typical, see
docs/continuous.md). The seeds run one after another in-process and stop once the claim is decided.
"""

import pytest

from conftest import assert_at_least, final_returns
from deeprl.core.device import cpu_has_native_bf16

pytestmark = pytest.mark.learning

SEEDS = (1, 2, 3)


@pytest.mark.parametrize("algo", ["ddpg", "td3", "sac"])
def test_reaches_the_pendulum_threshold_on_most_seeds(tmp_path, algo):
    returns = final_returns(tmp_path, SEEDS, f"algo={algo}", "env=pendulum", "eval.every=0",
                            threshold=-250, at_least=2)
    assert_at_least(returns, -250, 2)


@pytest.mark.skipif(not cpu_has_native_bf16(), reason="bf16 products are emulated on this CPU, 25-40x slower than "
                                                      "fp32, and algo.precision=auto never picks them here")
def test_sac_with_bf16_products_reaches_the_pendulum_threshold_on_most_seeds(tmp_path):
    """The same claim with the hidden-to-hidden products in bf16 (what `auto` picks for wide
    networks on a CPU with native bf16; forced here on the preset's 64-64 networks), after 12k of
    the preset's 20k steps: this test is about bf16's numerics, and SAC has settled by then.
    Measured on an AVX-512 BF16 CPU: final returns -166, -149, -154, -169, -177, -141 (seeds 1-6)
    at 12k; evaluated every 2k steps (10 episodes), seeds 1-4 dipped to -408 and -324 at 8k and
    stayed within -146 to -204 from 10k to 20k."""
    returns = final_returns(tmp_path, SEEDS, "algo=sac", "env=pendulum", "algo.precision=bf16", "total_steps=12000",
                            "eval.every=0", threshold=-250, at_least=2)
    assert_at_least(returns, -250, 2)
