"""`deeprl.load`: a run trained by the real `train` command, loaded in Python, acts in the run's own
task as the run's evaluations act, and measures what `evaluate <run dir>` measures."""

import json
import re
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import consoles
import deeprl
from conftest import train_cli
from deeprl.core.errors import ConfigError

RUNS = {  # name: train overrides (short runs: these tests are about loading and acting, not learning)
    "dqn_cartpole": ["algo=dqn", "env=cartpole", "total_steps=2000", "algo.learning_starts=500"],
    "ppo_pendulum": ["algo=ppo", "env=pendulum", "total_steps=2048", "num_envs=1"],
    "dqn_breakout": ["algo=dqn", "env=breakout", "total_steps=200", "algo.learning_starts=100",
                     "algo.buffer_size=1000", "device=cpu"],
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    cwd = tmp_path_factory.mktemp("trained")
    found = {}
    for name, overrides in RUNS.items():
        result = train_cli(*overrides, f"hydra.run.dir={name}", "eval.every=0", "eval.episodes=1",
                           "log.progress=false", cwd=cwd)
        assert result.returncode == 0, result.stderr[-3000:]
        found[name] = cwd / name
    return found


def play(trained, seed: int) -> float:
    env = trained.make_env()
    try:
        obs, _ = env.reset(seed=seed)
        total, done = 0.0, False
        while not done:
            action = trained.act(obs)
            assert env.action_space.contains(action)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        return total
    finally:
        env.close()


@pytest.mark.parametrize("name", ["dqn_cartpole", "ppo_pendulum"])
def test_act_plays_the_episodes_the_evaluation_plays(runs, name):
    """Both act greedily here (DQN's evaluation epsilon is 0; PPO takes its mean action), so an
    episode played by hand from the same reset seed is the same episode, return for return (one
    episode at a time: the network then sees batches of one either way, the same arithmetic)."""
    trained = deeprl.load(runs[name])
    assert trained.checkpoint == runs[name] / "checkpoints" / "final.pt"
    for seed in (500, 501, 502):
        returns, lengths = trained.evaluate(episodes=1, seed=seed)
        assert len(returns) == len(lengths) == 1
        assert play(trained, seed) == returns[0], f"seed {seed}"


def test_evaluate_in_python_measures_what_the_evaluate_command_measures(runs):
    trained = deeprl.load(runs["dqn_cartpole"], device="cpu")
    returns, lengths = trained.evaluate(episodes=4)  # the command's default seed: 20000 + the run's
    result = consoles.run("evaluate", str(runs["dqn_cartpole"]), "--episodes", "4")
    assert result.returncode == 0, result.stderr[-3000:]
    written = json.loads((runs["dqn_cartpole"] / "evaluation-episodes4.json").read_text())
    assert written["returns"] == returns.tolist() and written["lengths"] == lengths.tolist()


def test_an_atari_agent_acts_on_the_preprocessed_frames_of_its_own_env(runs):
    trained = deeprl.load(runs["dqn_breakout"] / "checkpoints" / "final.pt")
    env = trained.make_env()
    try:
        obs, _ = env.reset(seed=1)
        assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8  # stacked 84x84 grayscale, as in training
        assert isinstance(env.action_space, gym.spaces.Discrete)
        for _ in range(20):
            action = trained.act(obs)
            assert isinstance(action, int) and env.action_space.contains(action)
            obs, *_ = env.step(action)
    finally:
        env.close()


def test_a_path_without_a_run_is_refused_with_what_to_pass(runs, tmp_path):
    with pytest.raises(ConfigError, match="no such file or directory; pass a run dir or a .pt file"):
        deeprl.load(tmp_path / "nothing")
    holder = tmp_path / "holder"
    shutil.copytree(runs["dqn_cartpole"], holder / "run")
    with pytest.raises(ConfigError, match=re.escape(f"is not a run dir but holds one; pass it: {holder / 'run'}")):
        deeprl.load(holder)
