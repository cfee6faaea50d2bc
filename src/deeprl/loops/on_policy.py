"""The on-policy loop (actor-critic, A2C, PPO): collect n_steps per env with the current policy,
hand the rollout to the agent's update, discard it, repeat."""

import numpy as np

from deeprl.buffers.rollout import Rollout
from deeprl.loops.base import PolicyLoop


class OnPolicyLoop(PolicyLoop):
    KEYS = ("n_steps",)

    def __init__(self, agent, envs, session, *, spec, device, seed: int, rng: np.random.Generator,
                 total_steps: int, n_steps: int):
        super().__init__(agent, envs, session, device=device, seed=seed, total_steps=total_steps)
        # An agent may fix the rollout length (online actor-critic learns from every single step).
        self.n_steps = getattr(agent, "rollout_steps", None) or n_steps
        self.rollout = Rollout(self.n_steps)

    def run(self) -> None:
        agent, envs, session, rollout = self.agent, self.envs, self.session, self.rollout
        estimates = (agent.log_prob, agent.value) if agent.READS_COLLECTION_ESTIMATES else (None, None)
        while self.step < self.total_steps and not session.stopping:
            env_actions, actions, log_probs, values = agent.explore(self.obs)
            next_obs, rewards, terminated, truncated, infos = envs.step(env_actions)
            # With same-step autoreset, infos["final_obs"] holds s' where an episode just ended.
            rollout.add(self.obs, actions, rewards, terminated, truncated, infos, log_probs=log_probs,
                        values=values)
            self.obs = self.observe(next_obs)
            self.step = step = self.step + envs.num_envs
            session.episodes(step, self.tracker.step(rewards, terminated | truncated, infos))
            # The last rollout is cut short if total_steps is not a multiple of n_steps × num_envs.
            if len(rollout) == self.n_steps or step >= self.total_steps:
                metrics = agent.update(rollout.finish(self.obs, *estimates), step)
                session.metrics(step, metrics)
            session.tick(step, agent, self.charts)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "rollout": self.rollout.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.rollout.load_state_dict(state["rollout"], self.device)
