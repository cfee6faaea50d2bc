"""Each DQN variant solves CartPole-v1 with a fixed seed at its tuned settings."""

import pytest

from conftest import run_in_process

pytestmark = pytest.mark.learning


VARIANTS = [
    # Dueling and prioritized replay are less reliable on CartPole than plain (double) DQN: see
    # the measured seeds in their conf/tuned/*_cartpole.yaml.
    ["algo=dqn", "seed=1"],  # fp32: tests/learning/test_dqn_cartpole.py
    ["algo=dueling_dqn", "seed=1"],
    ["algo=prioritized_dqn", "seed=3"],
    ["algo=rainbow_lite", "seed=1"],
]
CASES = [(v, p) for v in VARIANTS for p in ("fp32", "bf16") if (v[0], p) != ("algo=dqn", "fp32")]


@pytest.mark.parametrize(("variant", "precision"), CASES, ids=[f"{' '.join(v)} {p}" for v, p in CASES])
def test_variant_solves_cartpole(tmp_path, variant, precision):
    # bf16 autocast (fp32 weights, loss and Q head) must leave learning unharmed.
    summary = run_in_process(tmp_path, *variant, f"algo.precision={precision}", "env=cartpole", "eval.every=0")
    assert summary["eval_return_mean"] >= 475, summary
