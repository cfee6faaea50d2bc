"""The on-policy loop (actor-critic, A2C, PPO): collect n_steps per env with the current policy,
hand the rollout to the agent's update, discard it, repeat."""

import numpy as np
import torch

from deeprl.buffers.rollout import Rollout
from deeprl.envs.episodes import EpisodeTracker
from deeprl.loops.session import Session

# Keys of an algo config that belong to this loop rather than to the agent.
LOOP_KEYS = ("n_steps",)
SHARED_KEYS = ()


def run(agent, envs, session: Session, *, spec, device, seed: int, rng: np.random.Generator,
        total_steps: int, n_steps: int) -> None:
    num_envs = envs.num_envs
    # An agent may fix the rollout length (online actor-critic learns from every single step).
    n_steps = getattr(agent, "rollout_steps", None) or n_steps

    def charts(step):
        return {"charts/learning_rate": agent.learning_rate(step)}

    rollout = Rollout(n_steps)
    tracker = EpisodeTracker.for_envs(envs)  # full-game scores when the env reports them (Atari)
    obs, _ = envs.reset(seed=seed)
    obs = torch.as_tensor(obs, device=device)
    step = 0
    while step < total_steps:
        # The last rollout is cut short if total_steps is not a multiple of n_steps × num_envs.
        for _ in range(n_steps):
            env_actions, actions = agent.explore(obs)
            next_obs, rewards, terminated, truncated, infos = envs.step(env_actions)
            # With same-step autoreset, infos["final_obs"] holds s' where an episode just ended.
            rollout.add(obs, actions, rewards, terminated, truncated, infos)
            obs = torch.as_tensor(next_obs, device=device)
            step += num_envs
            session.episodes(step, tracker.step(rewards, terminated | truncated, infos))
            session.tick(step, agent, charts)
            if step >= total_steps:
                break
        metrics = agent.update(rollout.finish(obs, agent.log_prob, agent.value), step)
        session.metrics(step, metrics)
