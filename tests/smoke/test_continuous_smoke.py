"""DDPG, TD3 and SAC run end to end on every continuous env deeprl ships, through the same
off-policy loop and replay as DQN, and log their TensorBoard tags."""

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import compose_config, run_in_process
from deeprl.buffers import PrioritizedReplay
from deeprl.build import build

SHORT = ["total_steps=400", "algo.learning_starts=200", "algo.batch_size=32", "algo.buffer_size=1000",
         "eval.every=0", "eval.episodes=2", "log.every=100", "checkpoint.every_minutes=0"]

TAGS = {
    "ddpg": {"losses/qf1_loss", "losses/qf1_values", "losses/actor_loss", "charts/exploration_noise"},
    "td3": {"losses/qf1_loss", "losses/qf2_loss", "losses/qf1_values", "losses/actor_loss"},
    "sac": {"losses/qf1_loss", "losses/qf2_loss", "losses/qf1_values", "losses/actor_loss", "losses/alpha",
            "losses/alpha_loss"},
}
COMMON = {"charts/episodic_return", "charts/episodic_length", "charts/SPS", "charts/learning_rate",
          "eval/episodic_return", "eval/episodic_length"}


def scalar_tags(run_dir) -> set[str]:
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return set(acc.Tags()["scalars"])


@pytest.mark.parametrize("algo", ["ddpg", "td3", "sac"])
def test_runs_on_pendulum_and_logs_its_tags(tmp_path, algo):
    summary = run_in_process(tmp_path, f"algo={algo}", "env=pendulum", *SHORT)
    assert summary["total_steps"] == 400 and np.isfinite(summary["eval_return_mean"])
    tags = scalar_tags(tmp_path)
    assert TAGS[algo] | COMMON <= tags, sorted(TAGS[algo] | COMMON - tags)
    if algo != "sac":
        assert "losses/alpha" not in tags


# One smoke run per shipped preset (HalfCheetah and Hopper) and per other MuJoCo env, cut short.
MUJOCO = [("ddpg", "halfcheetah"), ("td3", "halfcheetah"), ("sac", "halfcheetah"), ("ddpg", "hopper"),
          ("td3", "hopper"), ("sac", "hopper"), ("sac", "walker2d"), ("td3", "ant")]


@pytest.mark.parametrize(("algo", "env"), MUJOCO, ids=[f"{a}-{e}" for a, e in MUJOCO])
def test_mujoco_presets_run(tmp_path, algo, env):
    summary = run_in_process(tmp_path, f"algo={algo}", f"env={env}", *SHORT, "eval.episodes=1",
                             "env.max_episode_steps=100")
    assert summary["total_steps"] == 400 and np.isfinite(summary["eval_return_mean"])
    if env in ("halfcheetah", "hopper"):  # the presets: the published 1M-step protocol
        cfg = compose_config(f"algo={algo}", f"env={env}")
        assert list(cfg.network.hidden_sizes) == [256, 256] and cfg.total_steps == 1_000_000
        assert cfg.algo.batch_size == 256 and cfg.algo.actor_lr == cfg.algo.critic_lr == 3e-4 and cfg.algo.tau == 0.005


@pytest.mark.parametrize("env", ["mountaincar_continuous", "lunarlander_continuous"])
def test_other_continuous_envs_run(tmp_path, env):
    summary = run_in_process(tmp_path, "algo=td3", f"env={env}", *SHORT, "env.max_episode_steps=100")
    assert summary["total_steps"] == 400


def test_any_box_action_gym_id_runs(tmp_path):
    summary = run_in_process(tmp_path, "algo=sac", "env=gym", "env.id=InvertedPendulum-v5", *SHORT)
    assert summary["total_steps"] == 400


def test_random_steps_come_first_and_are_uniform_within_bounds(tmp_path):
    run = build(compose_config("algo=sac", "env=pendulum", *SHORT, "total_steps=200", "log.progress=false"),
                tmp_path)
    run.execute()
    actions = run.loop.buffer.actions[:200, 0]
    # Pendulum's torque is in [-2, 2]: 200 uniform draws cover it and average near 0.
    assert actions.min() >= -2.0 and actions.max() <= 2.0
    assert actions.min() < -1.8 and actions.max() > 1.8 and abs(actions.mean()) < 0.3
    assert run.agent.updates == 0  # nothing learned before learning_starts


def test_prioritized_n_step_replay_serves_continuous_agents(tmp_path):
    run = build(compose_config("algo=sac", "env=pendulum", *SHORT, "algo.prioritized.enabled=true", "algo.n_step=3",
                               "log.progress=false"), tmp_path)
    assert isinstance(run.loop.buffer, PrioritizedReplay)
    run.execute()
    priorities = run.loop.buffer.tree[np.arange(len(run.loop.buffer))]
    # The agent's |TD errors| went back as priorities: new transitions enter at the maximum, and the
    # sampled ones now each carry their own.
    assert np.unique(priorities).size > 50
    assert run.agent.updates == 200 and torch.isfinite(run.agent.critic_flat).all()
