"""The episodic loop (REINFORCE): batches of whole episodes played by the current policy.

Each batch starts every env on a fresh episode. Envs keep playing episodes until the batch holds
at least `batch_steps` steps of finished episodes; an env then stops contributing when its current
episode ends, so no episode in the batch is cut short and long episodes are not under-sampled.
(What envs play after that is stepped but not learned from; with one env nothing is wasted.)
"""

import numpy as np

from deeprl.buffers.rollout import Rollout, select_episodes
from deeprl.envs.episodes import EpisodeTracker
from deeprl.loops.base import PolicyLoop


class EpisodicLoop(PolicyLoop):
    KEYS = ("batch_steps",)

    def __init__(self, agent, envs, session, *, spec, device, seed: int, rng: np.random.Generator,
                 total_steps: int, batch_steps: int):
        super().__init__(agent, envs, session, device=device, seed=seed, total_steps=total_steps)
        self.batch_steps = batch_steps
        self.rollout = Rollout(max(batch_steps // envs.num_envs, 1) * 2)
        self.new_batch()

    def new_batch(self) -> None:
        num_envs = self.envs.num_envs
        self.tracker = EpisodeTracker.for_envs(self.envs)  # a fresh one: the reset cuts episodes short
        self.active = np.ones(num_envs, dtype=bool)  # envs whose steps still go into the batch
        self.kept: list[np.ndarray] = []
        self.lengths = np.zeros(num_envs, dtype=np.int64)
        self.collected = 0  # steps in the batch's finished episodes

    def run(self) -> None:
        agent, envs, session = self.agent, self.envs, self.session
        while self.step < self.total_steps and not session.stopping:
            env_actions, actions, log_probs, values = agent.explore(self.obs)
            next_obs, rewards, terminated, truncated, infos = envs.step(env_actions)
            self.rollout.add(self.obs, actions, rewards, terminated, truncated, infos, log_probs=log_probs,
                             values=values)
            self.kept.append(self.active.copy())
            self.obs = self.observe(next_obs)
            self.step = step = self.step + envs.num_envs
            dones = terminated | truncated
            session.episodes(step, self.tracker.step(rewards, dones, infos))
            self.lengths += 1
            ended = dones & self.active
            self.collected += int(self.lengths[ended].sum())
            self.lengths[dones] = 0
            if self.collected >= self.batch_steps:
                self.active &= ~ended
            if not self.active.any() or step >= self.total_steps:
                self.learn(step)
            session.tick(step, agent, self.charts)

    def learn(self, step: int) -> None:
        batch = self.rollout.finish(self.obs, self.agent.log_prob, self.agent.value)
        keep = np.array(self.kept)
        # Out of steps mid-batch: drop each env's unfinished episode.
        keep &= np.cumsum(batch.dones[::-1], axis=0)[::-1] > 0
        if keep.any():
            metrics = self.agent.update(select_episodes(batch, keep), step)
            self.session.metrics(step, metrics)
        # The next batch starts fresh episodes in every env (also after the last one: a run that is
        # resumed with more total_steps goes on from here).
        self.obs = self.observe(self.envs.reset()[0])
        self.new_batch()

    def state_dict(self) -> dict:
        return {**super().state_dict(), "rollout": self.rollout.state_dict(), "active": self.active.copy(),
                "kept": [k.copy() for k in self.kept], "lengths": self.lengths.copy(), "collected": self.collected}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if state["envs"] is None:  # the envs restarted: so does the batch
            self.rollout = Rollout(self.rollout.capacity)
            self.new_batch()
            return
        self.rollout.load_state_dict(state["rollout"], self.device)
        self.active, self.kept = state["active"].copy(), [k.copy() for k in state["kept"]]
        self.lengths, self.collected = state["lengths"].copy(), int(state["collected"])
