"""The contract every training loop keeps, so that any run can be checkpointed and resumed.

A loop is an object: everything it carries from one step to the next (the step counter, the
current observations, the episode tracker, its buffer, a batch in progress) is an attribute, and
`state_dict()` / `load_state_dict()` save and restore all of it. `start()` begins a fresh run,
`load_state_dict()` instead continues a saved one, and `run()` goes on until `total_steps` or until
the session is asked to stop (a signal), always between two whole steps. Random streams, the
agent and the session are saved by the run, not here.
"""

import numpy as np
import torch

from deeprl.envs import state as env_state
from deeprl.envs.episodes import EpisodeTracker


class EnvLoop:
    """What loops that step a vector env share: step counter, observations, episode tracker, and
    the env's own state."""

    KEYS: tuple[str, ...] = ()  # algo config keys this loop consumes
    SHARED_KEYS: tuple[str, ...] = ()  # algo config keys both it and the agent receive
    save_buffer = True  # checkpoint.buffer: whether checkpoints hold the replay buffer
    starts_trained = False  # init_from: the agent starts from another run's, not untrained

    def __init__(self, agent, envs, session, *, seed: int, total_steps: int):
        self.agent, self.envs, self.session = agent, envs, session
        self.seed, self.total_steps = seed, total_steps
        self.step = 0
        self.obs = None
        self.tracker = EpisodeTracker.for_envs(envs)  # full-game scores when the env reports them (Atari)
        self.notes: list[str] = []  # what a resume could not restore exactly, for the console and summary

    @property
    def end_step(self) -> int:
        """The step a finished run ends at: total_steps, or a few steps past it, as vector envs step
        in whole batches (8 envs and total_steps=1500 end at 1504, as SB3's would)."""
        return max(self.step, self.total_steps)

    def start(self) -> None:
        self.obs = self.observe(self.envs.reset(seed=self.seed)[0])

    def observe(self, obs):
        """The form the loop keeps observations in (numpy here; tensors for policy-gradient loops)."""
        return obs

    def run(self) -> dict | None:
        raise NotImplementedError

    def state_dict(self) -> dict:
        obs = self.obs.cpu() if isinstance(self.obs, torch.Tensor) else np.array(self.obs, copy=True)
        return {"step": self.step, "obs": obs, "tracker": self.tracker.state_dict(),
                "envs": env_state.capture(self.envs)}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])
        if state["envs"] is not None:
            env_state.restore(self.envs, state["envs"])
            obs = state["obs"]
            self.obs = self.observe(obs.numpy() if isinstance(obs, torch.Tensor) else obs)
            self.tracker.load_state_dict(state["tracker"])
        else:
            # The env's state could not be saved (Box2D): every env starts a new episode, from
            # a seed that depends on the step, so the resumed run is still reproducible.
            self.obs = self.observe(self.envs.reset(seed=self.seed + self.step)[0])
            self.notes.append(f"{self.session.env_cfg.id} envs cannot be saved: the episodes in progress "
                              f"at step {self.step} restarted")


class PolicyLoop(EnvLoop):
    """Loops of the policy-gradient family: observations kept as tensors on the training device,
    the learning rate charted."""

    def __init__(self, agent, envs, session, *, device, seed: int, total_steps: int):
        super().__init__(agent, envs, session, seed=seed, total_steps=total_steps)
        self.device = device

    def observe(self, obs) -> torch.Tensor:
        return torch.as_tensor(obs, device=self.device)

    def charts(self, step: int) -> dict:
        return {"charts/learning_rate": self.agent.learning_rate(step)}
