"""The off-policy loop: act, step, store in replay, update from replay.

It serves every agent that learns from replay (the DQN family, DDPG, TD3, SAC) and knows none of
them: the agent acts, learns from a batch and returns `(metrics, priorities)` (the new priority
of each sampled transition, used when replay is prioritized), and supplies its own charts.
"""

import gymnasium as gym
import numpy as np

from deeprl.buffers import PrioritizedReplay, frame_stack_of, make_replay
from deeprl.core.schedules import linear_schedule
from deeprl.loops.base import EnvLoop


def final_observations(next_obs: np.ndarray, dones: np.ndarray, infos: dict) -> np.ndarray:
    """The true s' of each transition: with same-step autoreset, envs that just finished already
    show the next episode's first observation, and their last one is in infos["final_obs"]."""
    if not dones.any():
        return next_obs
    real = next_obs.copy()
    for i in np.flatnonzero(dones):
        real[i] = infos["final_obs"][i]
    return real


class OffPolicyLoop(EnvLoop):
    # Keys of an algo config that belong to this loop rather than to the agent.
    KEYS = ("buffer_size", "batch_size", "learning_starts", "train_freq", "gradient_steps", "replay",
            "n_step", "prioritized", "random_starts", "replay_device")
    SHARED_KEYS = ("gamma",)

    def __init__(self, agent, envs, session, *, spec, gamma: float, device, seed: int,
                 rng: np.random.Generator, total_steps: int, buffer_size: int, batch_size: int,
                 learning_starts: int, train_freq: int, gradient_steps: int, replay: bool, n_step: int,
                 prioritized, random_starts: bool, replay_device: str = "cpu"):
        super().__init__(agent, envs, session, seed=seed, total_steps=total_steps)
        self.rng = rng
        self.batch_size, self.train_freq, self.gradient_steps = batch_size, train_freq, gradient_steps
        self.replay, self.prioritized = replay, prioritized
        # Uniform random actions before learning starts (DDPG, TD3, SAC); DQN's epsilon does the same.
        self.random_starts = random_starts
        # Updates begin once the step passes this (moved on when a resume starts from an empty buffer).
        self.learning_starts = self.configured_learning_starts = learning_starts
        num_envs = envs.num_envs
        # Without replay the buffer only holds the newest batch (and any n-step window behind it).
        capacity = buffer_size if replay else batch_size + (n_step - 1) * num_envs
        self.buffer = make_replay(capacity, spec.obs_shape, spec.obs_dtype, spec.action_shape,
                                  envs.single_action_space.dtype, gamma, device, n_step=n_step,
                                  frame_stack=frame_stack_of(session.env_cfg, spec.obs_shape, spec.obs_dtype),
                                  prioritized=replay and prioritized["enabled"], alpha=prioritized["alpha"],
                                  eps=prioritized["eps"], replay_device=replay_device)

    def start(self) -> None:
        super().start()
        num_envs = self.envs.num_envs
        if -(-self.total_steps // num_envs) * num_envs <= self.learning_starts:
            # A short smoke run may mean it; a search or a quick look at a score seldom does.
            self.session.logger.write(
                f"deeprl | note: total_steps={self.total_steps} ends before learning starts "
                f"(algo.learning_starts={self.learning_starts}): the agent is never updated and scores as "
                f"{'it started (init_from)' if self.starts_trained else 'untrained'}; raise total_steps or lower "
                "algo.learning_starts")

    def random_actions(self) -> np.ndarray:
        """One uniformly random action per env, from the loop's generator (Box: within its bounds)."""
        space, n = self.envs.single_action_space, self.envs.num_envs
        if isinstance(space, gym.spaces.Discrete):
            return space.start + self.rng.integers(0, space.n, size=n)
        return self.rng.uniform(space.low, space.high, size=(n, *space.shape)).astype(space.dtype)

    def sample(self, step: int):
        if not self.replay:
            return self.buffer.latest(self.batch_size)
        if isinstance(self.buffer, PrioritizedReplay):
            # Importance-sampling correction grows to full strength (beta = 1) by the end.
            beta = linear_schedule(self.prioritized["beta_start"], 1.0, self.total_steps, step)
            return self.buffer.sample(self.batch_size, self.rng, beta=beta)
        return self.buffer.sample(self.batch_size, self.rng)

    def run(self) -> None:
        agent, envs, buffer, session = self.agent, self.envs, self.buffer, self.session
        num_envs = envs.num_envs
        while self.step < self.total_steps and not session.stopping:
            obs = self.obs
            if self.random_starts and self.step < self.configured_learning_starts:
                actions = self.random_actions()
            else:
                actions = agent.act(obs, self.step)
            next_obs, rewards, terminated, truncated, infos = envs.step(actions)
            dones = terminated | truncated
            # Only termination cuts the bootstrap; a time-limit truncation still bootstraps from s'.
            buffer.add(obs, actions, rewards, final_observations(next_obs, dones, infos), terminated, truncated)
            self.obs = next_obs
            prev = self.step
            self.step = step = prev + num_envs
            session.episodes(step, self.tracker.step(rewards, dones, infos))

            if step > self.learning_starts:
                # One round of `gradient_steps` updates per `train_freq` env steps passed.
                rounds = step // self.train_freq - prev // self.train_freq
                for _ in range(rounds * self.gradient_steps):
                    batch = self.sample(step)
                    metrics, priorities = agent.update(batch, step)
                    if batch.indices is not None:
                        buffer.update_priorities(batch.indices, priorities)
                if rounds:
                    session.metrics(step, metrics)
            session.tick(step, agent, agent.charts)

    def state_dict(self) -> dict:
        state = super().state_dict()
        state["learning_starts"] = self.learning_starts
        state["buffer"] = self.buffer.state_dict() if self.save_buffer else None
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.learning_starts = state["learning_starts"]
        if state["buffer"] is not None:
            self.buffer.load_state_dict(state["buffer"])
        else:
            # Saved without its replay: refill it for learning_starts steps before updating again.
            self.learning_starts = self.step + self.configured_learning_starts
            self.notes.append(f"the replay buffer was not saved (checkpoint.buffer=false): it refills "
                              f"until step {self.learning_starts} before updates resume")
