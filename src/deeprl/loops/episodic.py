"""The episodic loop (REINFORCE): batches of whole episodes played by the current policy.

Each batch starts every env on a fresh episode. Envs keep playing episodes until the batch holds
at least `batch_steps` steps of finished episodes; an env then stops contributing when its current
episode ends, so no episode in the batch is cut short and long episodes are not under-sampled.
(What envs play after that is stepped but not learned from; with one env nothing is wasted.)
"""

import numpy as np
import torch

from deeprl.buffers.rollout import Rollout, select_episodes
from deeprl.envs.episodes import EpisodeTracker
from deeprl.loops.session import Session

# Keys of an algo config that belong to this loop rather than to the agent.
LOOP_KEYS = ("batch_steps",)
SHARED_KEYS = ()


def run(agent, envs, session: Session, *, spec, device, seed: int, rng: np.random.Generator,
        total_steps: int, batch_steps: int) -> None:
    num_envs = envs.num_envs

    def charts(step):
        return {"charts/learning_rate": agent.learning_rate(step)}

    rollout = Rollout(max(batch_steps // num_envs, 1) * 2)
    obs, _ = envs.reset(seed=seed)
    step = 0
    while step < total_steps:
        obs = torch.as_tensor(obs, device=device)
        tracker = EpisodeTracker.for_envs(envs)  # a fresh one: the reset below cuts episodes short
        active = np.ones(num_envs, dtype=bool)  # envs whose steps still go into the batch
        kept = []
        lengths = np.zeros(num_envs, dtype=np.int64)
        collected = 0  # steps in the batch's finished episodes
        while active.any() and step < total_steps:
            env_actions, actions = agent.explore(obs)
            next_obs, rewards, terminated, truncated, infos = envs.step(env_actions)
            rollout.add(obs, actions, rewards, terminated, truncated, infos)
            kept.append(active.copy())
            obs = torch.as_tensor(next_obs, device=device)
            step += num_envs
            dones = terminated | truncated
            session.episodes(step, tracker.step(rewards, dones, infos))
            lengths += 1
            ended = dones & active
            collected += int(lengths[ended].sum())
            lengths[dones] = 0
            if collected >= batch_steps:
                active &= ~ended
            session.tick(step, agent, charts)

        batch = rollout.finish(obs, agent.log_prob, agent.value)
        keep = np.array(kept)
        # Out of steps mid-batch: drop each env's unfinished episode.
        keep &= np.cumsum(batch.dones[::-1], axis=0)[::-1] > 0
        if keep.any():
            metrics = agent.update(select_episodes(batch, keep), step)
            session.metrics(step, metrics)
        if step < total_steps:
            obs, _ = envs.reset()  # the next batch starts fresh episodes in every env
