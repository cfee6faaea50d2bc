"""The off-policy loop (DQN family): act, step, store in replay, update from replay."""

import numpy as np

from deeprl.buffers import PrioritizedReplay, frame_stack_of, make_replay
from deeprl.core.schedules import linear_schedule
from deeprl.envs.episodes import EpisodeTracker
from deeprl.loops.session import Session

# Keys of an algo config that belong to this loop rather than to the agent.
LOOP_KEYS = ("buffer_size", "batch_size", "learning_starts", "train_freq", "gradient_steps", "replay",
             "n_step", "prioritized")
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
        gradient_steps: int, replay: bool, n_step: int, prioritized) -> None:
    num_envs = envs.num_envs

    def charts(step):
        return {"charts/epsilon": agent.epsilon(step), "charts/learning_rate": agent.learning_rate(step)}

    # Without replay the buffer only holds the newest batch (and any n-step window behind it).
    capacity = buffer_size if replay else batch_size + (n_step - 1) * num_envs
    buffer = make_replay(capacity, spec.obs_shape, spec.obs_dtype, spec.action_shape,
                         envs.single_action_space.dtype, gamma, device, n_step=n_step,
                         frame_stack=frame_stack_of(session.env_cfg, spec.obs_shape, spec.obs_dtype),
                         prioritized=replay and prioritized["enabled"], alpha=prioritized["alpha"],
                         eps=prioritized["eps"])

    def sample(step):
        if not replay:
            return buffer.latest(batch_size)
        if isinstance(buffer, PrioritizedReplay):
            # Importance-sampling correction grows to full strength (beta = 1) by the end.
            beta = linear_schedule(prioritized["beta_start"], 1.0, total_steps, step)
            return buffer.sample(batch_size, rng, beta=beta)
        return buffer.sample(batch_size, rng)

    tracker = EpisodeTracker.for_envs(envs)  # full-game scores when the env reports them (Atari)
    obs, _ = envs.reset(seed=seed)
    step = 0
    while step < total_steps:
        actions = agent.act(obs, step)
        next_obs, rewards, terminated, truncated, infos = envs.step(actions)
        dones = terminated | truncated
        # Only termination cuts the bootstrap; a time-limit truncation still bootstraps from s'.
        buffer.add(obs, actions, rewards, final_observations(next_obs, dones, infos), terminated, truncated)
        obs = next_obs
        prev, step = step, step + num_envs
        session.episodes(step, tracker.step(rewards, dones, infos))

        if step > learning_starts:
            # One round of `gradient_steps` updates per `train_freq` env steps passed.
            rounds = step // train_freq - prev // train_freq
            for _ in range(rounds * gradient_steps):
                batch = sample(step)
                metrics = agent.update(batch, step)
                td_errors = metrics.pop("td_errors")
                if batch.indices is not None:
                    buffer.update_priorities(batch.indices, td_errors)
            if rounds:
                session.metrics(step, metrics)
        session.tick(step, agent, charts)
