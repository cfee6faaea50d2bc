"""An env of one's own: a module beside the command that calls `gymnasium.register`, named by
`env.id=<module>:<id>` (gymnasium's syntax), and optionally an env config and a tuned preset of
one's own on Hydra's search path. Real `train` and `evaluate` processes, started in that folder
(a console script's import path does not hold it)."""

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

import consoles
from conftest import train_cli

# A corridor of `length` cells: start at the left end, -1 a step, the episode ends at the right end.
# Observed as the cell's index, so the tabular learners take it as it is. The best return is
# -(length - 1): every step to the right.
CORRIDOR = '''
import gymnasium as gym
import numpy as np
from gymnasium import spaces


class Corridor(gym.Env):
    def __init__(self, length=4):
        self.length = length
        self.observation_space = spaces.Discrete(length)
        self.action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.cell = 0
        return 0, {}

    def step(self, action):
        self.cell = min(self.length - 1, max(0, self.cell + (1 if action == 1 else -1)))
        return self.cell, -1.0, self.cell == self.length - 1, False, {}


class Screen(gym.Env):
    """A 40x40 RGB screen, height x width x channels as gymnasium's image envs give them."""

    def __init__(self):
        self.observation_space = spaces.Box(0, 255, (40, 40, 3), np.uint8)
        self.action_space = spaces.Discrete(3)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), float(action == 1), False, False, {}


class Faulty(Corridor):
    """A corridor whose step raises at its 150th call: a bug in an env of one's own."""

    calls = 0

    def step(self, action):
        self.calls += 1
        if self.calls == 150:
            raise RuntimeError("the corridor caved in")
        return super().step(action)


def flat_blackjack(**kwargs):
    """Blackjack's tuple observation flattened (one-hot), as deeprl's refusal of it advises."""
    return gym.wrappers.FlattenObservation(gym.make("Blackjack-v1", **kwargs))


gym.register("Corridor-v0", entry_point=Corridor, max_episode_steps=50)
gym.register("FlatBlackjack-v0", entry_point=flat_blackjack, max_episode_steps=20)
gym.register("Faulty-v0", entry_point=Faulty, max_episode_steps=50)
gym.register("Screen-v0", entry_point=Screen, max_episode_steps=20)
'''

# An env config and a tuned preset of one's own, beside deeprl's (README, "An env of your own").
ENV_CONFIG = """defaults:
  - gym
  - _self_
name: corridor
id: corridor_env:Corridor-v0
kwargs:
  length: 6
"""
PRESET = """# @package _global_
total_steps: 3000
algo:
  alpha: 1.0
"""


@pytest.fixture
def project(tmp_path) -> Path:
    """A user's folder: the env's module, and myconf/ with an env config and a preset."""
    (tmp_path / "corridor_env.py").write_text(CORRIDOR)
    (tmp_path / "myconf" / "env").mkdir(parents=True)
    (tmp_path / "myconf" / "tuned").mkdir()
    (tmp_path / "myconf" / "env" / "corridor.yaml").write_text(ENV_CONFIG)
    (tmp_path / "myconf" / "tuned" / "q_learning_corridor.yaml").write_text(PRESET)
    return tmp_path


def evaluate_cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return consoles.run("evaluate", *args, cwd=cwd, timeout=120, env=env)


def test_an_env_config_and_preset_of_ones_own_train_and_evaluate_where_the_module_is(project):
    result = train_cli("hydra.searchpath=[file://myconf]", "algo=q_learning", "env=corridor", "seed=1",
                       "log.progress=false", cwd=project)
    assert result.returncode == 0, result.stderr[-3000:]
    banner = result.stdout.splitlines()[0]
    assert "q_learning on corridor_env:Corridor-v0 | algo=q_learning with myconf/tuned/q_learning_corridor.yaml" in banner
    run_dir = next((project / "outputs" / "q_learning" / "corridor").iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    # The preset's 3000 steps, and the env config's length of 6 reached the env: the greedy policy
    # of a deterministic 6-cell corridor walks right, -5 (exact, as the tabular learning tests).
    assert summary["total_steps"] == 3000
    assert summary["eval_return_mean"] == -5.0

    # evaluate, started in the same folder, imports the module as train did.
    evaluated = evaluate_cli(str(run_dir), "--episodes", "3", cwd=project)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert json.loads((run_dir / "evaluation-episodes3.json").read_text())["return_mean"] == -5.0

    # Elsewhere the module is not found: one line with the two ways to find it; the second works.
    elsewhere = project / "elsewhere"
    elsewhere.mkdir()
    lost = evaluate_cli(str(run_dir), "--episodes", "3", cwd=elsewhere)
    assert lost.returncode != 0 and "Traceback" not in lost.stderr
    assert lost.stderr.strip().splitlines() == [
        "evaluate: error: env.id: no module named 'corridor_env' to import for env.id=corridor_env:Corridor-v0; run "
        "from the folder that holds corridor_env.py, or add that folder to PYTHONPATH (env.id=<module>:<registered "
        "id>, gymnasium's syntax)"]
    found = evaluate_cli(str(run_dir), "--episodes", "3", cwd=elsewhere,
                         env={**os.environ, "PYTHONPATH": str(project)})
    assert found.returncode == 0, found.stderr[-3000:]


def test_an_env_of_ones_own_runs_in_async_workers_with_env_gym(project):
    """env=gym env.id=<module>:<id>, stepped in worker processes (forked after the import), by a job
    that runs in its own dir (hydra.job.chdir=true): the module is still found where train started."""
    result = train_cli("hydra.job.chdir=true", "algo=dqn", "env=gym", "env.id=corridor_env:Corridor-v0", "+env.one_hot=true",
                       "+env.vectorization=async", "num_envs=2", "total_steps=400", "algo.learning_starts=100",
                       "eval.episodes=2", "log.progress=false", cwd=project)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "dqn on corridor_env:Corridor-v0 | algo=dqn, no tuned preset for env=gym" in result.stdout
    run_dir = next((project / "outputs" / "dqn" / "gym").iterdir())
    assert json.loads((run_dir / "summary.json").read_text())["total_steps"] == 400


def test_an_image_env_of_ones_own_trains_a_cnn_on_its_screens_turned_channels_first(project):
    """Screens of height x width x channels reach the Nature CNN as channels x height x width."""
    result = train_cli("algo=dqn", "env=gym", "env.id=corridor_env:Screen-v0", "network=nature_cnn",
                       "total_steps=200", "algo.learning_starts=100", "algo.buffer_size=1000", "eval.episodes=2",
                       "log.progress=false", cwd=project)
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = next((project / "outputs" / "dqn" / "gym").iterdir()) / "checkpoints" / "final.pt"
    first_conv = torch.load(checkpoint, map_location="cpu", weights_only=False)["agent"]["q"]["torso.convs.0.weight"]
    assert tuple(first_conv.shape) == (32, 3, 8, 8)  # 3 channels in: the screens' colours


def test_a_wrapped_env_that_does_not_pickle_trains_to_its_end_and_checkpoints_without_its_state(project):
    """FlattenObservation holds a lambda, so the env stack does not pickle: the checkpoints hold no
    env state (a resume then starts new episodes, as Box2D's) instead of the run failing at them."""
    result = train_cli("algo=dqn", "env=gym", "env.id=corridor_env:FlatBlackjack-v0", "total_steps=400",
                       "algo.learning_starts=100", "checkpoint.every=200", "eval.episodes=2", "log.progress=false",
                       cwd=project)
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoints = next((project / "outputs" / "dqn" / "gym").iterdir()) / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["best.pt", "final.pt", "step_200.pt"]
    assert torch.load(checkpoints / "final.pt", map_location="cpu", weights_only=False)["loop"]["envs"] is None


def test_an_env_that_raises_mid_run_shows_its_traceback_then_the_checkpoint_to_go_on_from(project):
    result = train_cli("algo=q_learning", "env=gym", "env.id=corridor_env:Faulty-v0", "total_steps=400",
                       "checkpoint.every=100", "eval.every=0", "log.progress=false", cwd=project)
    assert result.returncode == 1
    run_dir = next((project / "outputs" / "q_learning" / "gym").iterdir()).resolve()
    lines = result.stderr.strip().splitlines()
    assert lines[-2] == "RuntimeError: the corridor caved in"
    assert f'File "{project / "corridor_env.py"}", line ' in result.stderr  # the user's own line
    assert lines[-1] == (f"deeprl | the run failed at step 149 (the error above); its newest checkpoint is "
                         f"{run_dir}/checkpoints/step_100.pt; once the cause is fixed, go on from there with: "
                         f"train resume={run_dir}")
    log = (run_dir / "train.log").read_text()
    assert "RuntimeError: the corridor caved in" in log and "go on from there with" in log


BROKEN = "import numpy\n\n\nraise RuntimeError('the corridor has no doors')\n"


@pytest.mark.parametrize(("env_id", "expected"), [
    ("no_such_module:Corridor-v0", "env.id: no module named 'no_such_module' to import for "
                                   "env.id=no_such_module:Corridor-v0; run from the folder that holds no_such_module.py"),
    ("corridor_env:Coridor-v0", "env.id: corridor_env was imported but gymnasium does not know 'Coridor-v0' "
                                "(Environment `Coridor` doesn't exist. Did you mean: `Corridor`?); did you mean "
                                "env.id=corridor_env:Corridor-v0?"),
    ("corridor_env:Maze-v0", "env.id: corridor_env was imported but gymnasium does not know 'Maze-v0' (Environment "
                             "`Maze` doesn't exist.); it registers env.id=corridor_env:Corridor-v0"),
    ("broken_env:Corridor-v0", "env.id: importing broken_env for env.id=broken_env:Corridor-v0 failed: RuntimeError: "
                               "the corridor has no doors ({folder}/broken_env.py:4); fix the module, or run "
                               "`python -c 'import broken_env'` to see the traceback"),
], ids=["no such module", "a misspelt id", "an id it does not register", "a module that raises"])
def test_a_module_that_cannot_give_the_env_is_one_line_and_leaves_nothing(project, env_id, expected):
    (project / "broken_env.py").write_text(BROKEN)
    result = train_cli("algo=q_learning", "env=gym", f"env.id={env_id}", cwd=project, timeout=120)
    assert result.returncode != 0
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr + result.stdout, result.stderr
    assert lines[0].startswith("deeprl: error: " + expected.format(folder=project)), lines[0]
    assert not (project / "outputs").exists(), "a half-written run dir was left behind"


# A torso of one's own (README, "A network of your own"): obs_shape in, `out_dim` features out.
TORSO = '''
import math

import torch
from torch import nn


class Torso(nn.Module):
    def __init__(self, obs_shape, width=32):
        super().__init__()
        self.layer = nn.Linear(math.prod(obs_shape), width)
        self.out_dim = width

    def forward(self, obs):
        return torch.relu(self.layer(obs.reshape(obs.shape[0], -1).float()))
'''


def test_a_torso_of_ones_own_is_built_with_its_own_keys_and_learned(project):
    (project / "my_torso.py").write_text(TORSO)
    result = train_cli("algo=ppo", "env=cartpole", "network._target_=my_torso.Torso", "+network.width=24",
                       "total_steps=1024", "eval.episodes=2", "log.progress=false", cwd=project)
    assert result.returncode == 0, result.stderr[-3000:]
    assert ("deeprl | note: my_torso.Torso takes no hidden_sizes or activation: built without them (deeprl's mlp "
            "takes them; the network group and the tuned presets set them)") in result.stdout
    checkpoint = next((project / "outputs" / "ppo" / "cartpole").iterdir()) / "checkpoints" / "final.pt"
    net = torch.load(checkpoint, map_location="cpu", weights_only=False)["agent"]["net"]
    # The torso's own layer (CartPole's 4 numbers in, network.width=24 out), under the policy's head.
    assert tuple(net["actor_torso.layer.weight"].shape) == (24, 4)
    assert tuple(net["head.out.weight"].shape) == (2, 24)
