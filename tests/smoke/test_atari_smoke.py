"""ALE Breakout through deeprl's env factory and a few hundred DQN steps on it."""

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import compose_config, run_in_process
from deeprl.envs import make_vec_env


def test_breakout_vector_env_steps_with_same_step_autoreset():
    envs = make_vec_env(compose_config("env=breakout", "env.max_frames=800").env, 4, seed=0)
    obs, _ = envs.reset(seed=0)
    rng = np.random.default_rng(0)
    dones = 0
    for _ in range(300):
        next_obs, rewards, terminated, truncated, infos = envs.step(rng.integers(0, 4, 4))
        assert next_obs.shape == (4, 4, 84, 84) and next_obs.dtype == np.uint8
        assert np.all(np.abs(rewards) <= 1.0)
        for i in np.flatnonzero(terminated | truncated):
            dones += 1
            final = infos["final_obs"][i]
            assert final.shape == (4, 84, 84)
            np.testing.assert_array_equal(final[:3], obs[i, 1:])  # the true last stack
            assert all(np.array_equal(next_obs[i, 0], next_obs[i, j]) for j in range(4))  # a new episode
        obs = next_obs
    envs.close()
    assert dones > 0


def test_dqn_trains_a_few_hundred_steps_on_breakout_and_logs_full_games(tmp_path):
    # At most 100 agent steps per game (400 frames), so games end inside the run.
    summary = run_in_process(tmp_path, "env=breakout", "env.max_frames=400", "total_steps=320", "num_envs=2",
                             "algo.learning_starts=160", "algo.buffer_size=1000", "algo.batch_size=8",
                             "eval.every=0", "eval.episodes=2", "log.every=64", "device=cpu")
    assert summary["eval_episodes"] == 2 and summary["total_steps"] == 320
    acc = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0})
    acc.Reload()
    lengths = [e.value for e in acc.Scalars("charts/episodic_length")]
    # Whole games only: a game of 5 lives lasts until the 100-step limit (~35 steps a life at random),
    # so each env (160 steps) reports one game, never its lives one by one.
    assert len(lengths) == 2 and all(length > 50 for length in lengths)
    assert all(e.value > 50 for e in acc.Scalars("eval/episodic_length"))
