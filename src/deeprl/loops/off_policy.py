"""The off-policy loop (DQN family): act, step, store in replay, update from replay."""

import numpy as np

from deeprl.buffers import ReplayBuffer
from deeprl.envs.episodes import EpisodeTracker
from deeprl.loops.session import Session

# Keys of an algo config that belong to this loop rather than to the agent.
LOOP_KEYS = ("buffer_size", "batch_size", "learning_starts", "train_freq", "gradient_steps")
SHARED_KEYS = ("gamma",)


def final_observations(next_obs: np.ndarray, dones: np.ndarray, infos: dict) -> np.ndarray:
    """The true s' of each transition: with same-step autoreset, envs that just finished already
    show the next episode's first observation, and their last one is in infos["final_obs"]."""
    if not dones.any():
        return next_obs
    real = next_obs.copy()
    for i in np.flatnonzero(dones):
        real[i] = infos["final_obs"][i]
    return real


def run(agent, envs, session: Session, *, spec, gamma: float, device, seed: int, rng: np.random.Generator,
        total_steps: int, buffer_size: int, batch_size: int, learning_starts: int, train_freq: int,
        gradient_steps: int) -> None:
    num_envs = envs.num_envs

    def charts(step):
        return {"charts/epsilon": agent.epsilon(step), "charts/learning_rate": agent.learning_rate(step)}

    buffer = ReplayBuffer(buffer_size, spec.obs_shape, spec.obs_dtype, spec.action_shape,
                          envs.single_action_space.dtype, gamma, device)
    tracker = EpisodeTracker(num_envs)
    obs, _ = envs.reset(seed=seed)
    step = 0
    while step < total_steps:
        actions = agent.act(obs, step)
        next_obs, rewards, terminated, truncated, infos = envs.step(actions)
        dones = terminated | truncated
        # Only termination cuts the bootstrap; a time-limit truncation still bootstraps from s'.
        buffer.add(obs, actions, rewards, final_observations(next_obs, dones, infos), terminated)
        obs = next_obs
        prev, step = step, step + num_envs
        session.episodes(step, tracker.step(rewards, dones))

        if step > learning_starts:
            # One round of `gradient_steps` updates per `train_freq` env steps passed.
            rounds = step // train_freq - prev // train_freq
            for _ in range(rounds * gradient_steps):
                metrics = agent.update(buffer.sample(batch_size, rng), step)
            if rounds:
                session.metrics(step, metrics)
        session.tick(step, agent, charts)
