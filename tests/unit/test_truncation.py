"""Time-limit truncation must bootstrap, termination must not, under same-step autoreset."""

import numpy as np
from omegaconf import OmegaConf

from deeprl.buffers import ReplayBuffer
from deeprl.envs import make_vec_env, spec_of
from deeprl.loops.off_policy import final_observations


def step_until_done(env_cfg, actions_fn, max_steps=1000):
    envs = make_vec_env(env_cfg, 2, seed=0)
    obs, _ = envs.reset(seed=0)
    for _ in range(max_steps):
        next_obs, rewards, terminated, truncated, infos = envs.step(actions_fn())
        dones = terminated | truncated
        if dones.any():
            return obs, next_obs, terminated, truncated, infos, dones, envs
        obs = next_obs
    raise AssertionError("no episode ended")


def test_truncated_transition_keeps_last_observation_and_discount():
    cfg = OmegaConf.create({"kind": "gym", "id": "CartPole-v1", "kwargs": {}, "max_episode_steps": 5})
    obs, next_obs, terminated, truncated, infos, dones, envs = step_until_done(
        cfg, lambda: np.array([0, 1]))
    assert truncated.all() and not terminated.any()  # alternating actions never fail in 5 steps
    real_next = final_observations(next_obs, dones, infos)
    # The reset observation of the new episode must not be stored as s'.
    assert not np.allclose(real_next, next_obs)
    np.testing.assert_array_equal(real_next, np.stack(infos["final_obs"]))
    buffer = ReplayBuffer(4, (4,), np.float32, (), np.int64, 0.99, __import__("torch").device("cpu"))
    buffer.add(obs, np.array([0, 1]), np.ones(2), real_next, terminated)
    batch = buffer.sample(8, np.random.default_rng(0))
    assert np.allclose(batch.discounts.numpy(), 0.99)  # bootstraps through the time limit


def test_terminated_transition_gets_zero_discount():
    cfg = OmegaConf.create({"kind": "gym", "id": "CartPole-v1", "kwargs": {}, "max_episode_steps": None})
    obs, next_obs, terminated, truncated, infos, dones, envs = step_until_done(
        cfg, lambda: np.array([0, 0]))  # always pushing left topples the pole
    assert terminated.any() and not truncated.any()
    real_next = final_observations(next_obs, dones, infos)
    buffer = ReplayBuffer(4, spec_of(envs, "CartPole-v1").obs_shape, np.float32, (), np.int64, 0.99,
                          __import__("torch").device("cpu"))
    buffer.add(obs, np.array([0, 0]), np.ones(2), real_next, terminated)
    discounts = buffer._batch(np.arange(2)).discounts.numpy()
    np.testing.assert_allclose(discounts, np.where(terminated, 0.0, 0.99))
