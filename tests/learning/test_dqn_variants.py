"""Each DQN variant solves CartPole-v1 with a fixed seed at its tuned settings."""

import pytest

from conftest import run_in_process

pytestmark = pytest.mark.learning


@pytest.mark.parametrize("variant", [
    # Dueling and prioritized replay are less reliable on CartPole than plain (double) DQN: see
    # the measured seeds in their conf/tuned/*_cartpole.yaml.
    ["algo=dueling_dqn", "seed=1"],
    ["algo=prioritized_dqn", "seed=2"],
    ["algo=rainbow_lite", "seed=1"],
    ["algo=dqn", "algo.precision=bf16", "seed=1"],
], ids=lambda v: " ".join(v))
def test_variant_solves_cartpole(tmp_path, variant):
    summary = run_in_process(tmp_path, *variant, "env=cartpole", "eval.every=0")
    assert summary["eval_return_mean"] >= 475, summary
