"""A trained agent in Python: `deeprl.load(<run dir or checkpoint>)`, for a notebook or a script.

    import deeprl

    trained = deeprl.load("outputs/dqn/cartpole/2026-12-07_10-00-00")   # final.pt, or the newest
    env = trained.make_env(render_mode="human")    # the task as the run saw it (Atari: preprocessed)
    obs, _ = env.reset(seed=0)
    done = False
    while not done:
        obs, reward, terminated, truncated, _ = env.step(trained.act(obs))
        done = terminated or truncated
    returns, lengths = trained.evaluate(episodes=10)   # what `evaluate <run dir>` measures

`act` takes one observation as `make_env`'s env gives it and returns its action, chosen as the
run's evaluations choose (greedy, or epsilon-greedy with the run's evaluation epsilon, or the
policy's deterministic or sampled action: the run's `algo.deterministic_eval`). `agent` is the
algorithm's own object (its networks: `q` for the DQN family, `net` for the
policy gradients, `actor` for DDPG, TD3 and SAC; `Q` for a table).
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from deeprl.core.checkpoint import UnreadableCheckpoint, check_agent_state, read
from deeprl.core.errors import ConfigError


@dataclass
class Trained:
    """A run's agent, loaded from one of its checkpoints, with the run's config."""

    agent: object
    config: DictConfig
    run_dir: Path
    checkpoint: Path

    def act(self, obs) -> object:
        """The action for one observation (an int for a discrete action space, else an array)."""
        action = self.agent.act(np.asarray(obs)[None], step=0, eval_mode=True)[0]
        return int(action) if np.ndim(action) == 0 else np.asarray(action)

    def make_env(self, render_mode: str | None = None):
        """One env of the run's task, wrapped as its evaluations were (no learning-time wrappers:
        Atari plays full games with unclipped rewards)."""
        from deeprl.envs.make import _thunk

        return _thunk(self.config.env, training=False, render_mode=render_mode)()

    def evaluate(self, episodes: int = 10, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Returns and lengths of `episodes` episodes, as `evaluate <run dir>` plays them (episode i
        reset with seed + i; by default 20000 + the run's seed, the `evaluate` command's)."""
        from deeprl.loops.evaluate import evaluate

        return evaluate(self.agent, self.config.env, episodes, 20_000 + int(self.config.seed) if seed is None else seed)


def load(path: str | Path, device: str | None = None) -> Trained:
    """The agent of a run dir (its final.pt, or the newest checkpoint of a run that has not finished)
    or of one checkpoint file, on `device` (by default the run's `device` setting: `auto` takes a
    GPU for convolutional networks). Raises ConfigError for a path that holds no run."""
    from deeprl.runs import locate, run_config

    run_dir, checkpoint, _ = locate(Path(path).expanduser(), command="", then="load it then")
    cfg = run_config(run_dir)
    if device is not None:
        cfg.device = device
    return Trained(agent_from(cfg, run_dir, checkpoint), cfg, run_dir, checkpoint)


def agent_from(cfg: DictConfig, run_dir: Path, checkpoint: Path):
    """The agent `cfg` builds, with the state saved in `checkpoint` (for `evaluate` and `load`)."""
    from deeprl.build import build

    # Read to the CPU (random generator states must stay there) and mapped, so that a replay buffer
    # saved in the checkpoint is never read; the agent moves its tensors to its own device.
    try:
        saved = read(checkpoint, "agent")["agent"]
        if not isinstance(saved, dict):
            raise UnreadableCheckpoint("its 'agent' entry is not an agent's state")
    except UnreadableCheckpoint as error:
        raise ConfigError("checkpoint", f"cannot read {checkpoint}: {error}; pass a checkpoint written by `train` "
                                        "(a run dir's checkpoints/*.pt)") from None
    cfg.num_envs = 1
    built = build(cfg, run_dir, with_loop=False)
    built.envs.close()
    check_agent_state(built.agent, saved, "checkpoint")
    built.agent.load_state_dict(saved)
    return built.agent
