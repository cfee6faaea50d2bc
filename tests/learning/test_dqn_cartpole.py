"""`train algo=dqn env=cartpole` solves CartPole-v1 at its default settings (the tuned preset)."""

import pytest

from conftest import run_in_process

pytestmark = pytest.mark.learning


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_dqn_solves_cartpole_at_default_total_steps(tmp_path, seed):
    summary = run_in_process(tmp_path, "algo=dqn", "env=cartpole", f"seed={seed}", "eval.every=0")
    assert summary["eval_return_mean"] >= 475, summary
