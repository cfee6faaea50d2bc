"""The DQN preprocessing on the real ALE Breakout."""

import numpy as np
import pytest

from conftest import compose_config
from deeprl.core.errors import ConfigError
from deeprl.envs import make_vec_env, spec_of
from deeprl.envs.atari import AtariFrames, EpisodicLife, FireReset, rom_name
from deeprl.envs.episodes import EpisodeTracker


def breakout(*overrides):
    return compose_config("env=breakout", *overrides).env


def wrappers(env):
    chain = []
    while hasattr(env, "env"):
        chain.append(type(env).__name__)
        env = env.env
    return chain


def test_observations_are_stacks_of_four_84x84_uint8_frames():
    envs = make_vec_env(breakout(), 2, seed=0)
    spec = spec_of(envs, "ALE/Breakout-v5")
    assert spec.obs_shape == (4, 84, 84) and spec.obs_dtype == np.uint8 and spec.n_actions == 4
    obs, _ = envs.reset(seed=0)
    assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8
    # A new episode is padded with copies of its first frame.
    assert all(np.array_equal(obs[0, 0], obs[0, j]) for j in range(4))
    assert 0 < obs.mean() < 255
    next_obs, *_ = envs.step(np.array([1, 2]))
    np.testing.assert_array_equal(next_obs[:, :3], obs[:, 1:])  # the stack shifts by one frame
    envs.close()


def test_training_and_evaluation_wrappers():
    train = make_vec_env(breakout(), 1, seed=0)
    evaluate = make_vec_env(breakout(), 1, seed=0, training=False)
    train_chain, eval_chain = wrappers(train.envs[0]), wrappers(evaluate.envs[0])
    assert train_chain[:5] == ["FrameStackObservation", "ClipReward", "FireReset", "EpisodicLife",
                               "RecordEpisodeStatistics"]
    assert "EpisodicLife" not in eval_chain and "ClipReward" not in eval_chain
    assert eval_chain[:3] == ["FrameStackObservation", "FireReset", "RecordEpisodeStatistics"]
    assert "AtariFrames" in train_chain and train.metadata["full_game_stats"]
    train.close(), evaluate.close()


def test_frame_skip_and_no_op_starts():
    starts = set()
    for seed in range(6):
        envs = make_vec_env(breakout("env.repeat_action_probability=0.0"), 1, seed=seed)
        _, info = envs.reset(seed=seed)
        # 1..30 no-op frames, then FIRE and UP (4 frames each).
        assert 1 + 8 <= info["episode_frame_number"][0] <= 30 + 8
        starts.add(int(info["episode_frame_number"][0]))
        before = info["frame_number"][0]
        _, _, _, _, info = envs.step(np.array([0]))
        assert info["frame_number"][0] - before == 4
        envs.close()
    assert len(starts) > 1


def test_a_game_of_breakout_is_reported_once_with_all_its_lives():
    envs = make_vec_env(breakout(), 1, seed=1)
    tracker = EpisodeTracker.for_envs(envs)
    envs.reset(seed=1)
    rng = np.random.default_rng(0)
    agent_steps, clipped, life_dones, games = 0, 0.0, 0, []
    while not games:
        _, rewards, terminated, truncated, infos = envs.step(rng.integers(0, 4, 1))
        agent_steps += 1
        clipped += rewards[0]
        assert abs(rewards[0]) <= 1.0
        life_dones += int(terminated[0] | truncated[0])
        games = tracker.step(rewards, terminated | truncated, infos)
    envs.close()
    (score, length), = games
    assert life_dones == 5  # Breakout has 5 lives: each lost one ends a learning episode
    assert score >= clipped  # unclipped bricks are worth 1, 4 or 7
    # The game's length also counts the steps the wrappers took: FIRE + UP after each of the 5
    # (re)starts and one no-op after each of the 4 lives lost before the last.
    assert length == agent_steps + 2 * 5 + 4


def test_colour_stacks_are_channels_first():
    envs = make_vec_env(breakout("env.grayscale=false", "env.frame_stack=2"), 1, seed=0)
    obs, _ = envs.reset(seed=0)
    assert obs.shape == (1, 6, 84, 84)
    np.testing.assert_array_equal(obs[0, :3], obs[0, 3:])
    envs.close()


@pytest.mark.parametrize("override, key", [("env.game=NoSuchGame", "env.game"),
                                           ("env.frame_stack=0", "env.frame_stack"),
                                           ("env.repeat_action_probability=1.5", "env.repeat_action_probability"),
                                           ("env.fire_reset=maybe", "env.fire_reset")])
def test_bad_atari_settings_name_the_key(override, key):
    with pytest.raises(ConfigError, match=rf"^{key}: "):
        make_vec_env(breakout(override), 1, seed=0)


def test_every_atari_config_builds_its_game():
    for name, game in [("pong", "Pong"), ("spaceinvaders", "SpaceInvaders"), ("seaquest", "Seaquest"),
                       ("beamrider", "BeamRider")]:
        cfg = compose_config(f"env={name}")
        assert cfg.env.id == f"ALE/{game}-v5" and cfg.network._target_ == "deeprl.networks.NatureCNN"
    cfg = compose_config("env=atari", "env.game=MsPacman")
    assert cfg.env.id == "ALE/MsPacman-v5"
    envs = make_vec_env(cfg.env, 1, seed=0)
    assert envs.reset(seed=0)[0].shape == (1, 4, 84, 84)
    envs.close()
    assert rom_name("SpaceInvaders") == "space_invaders"


def test_wrappers_are_importable_building_blocks():
    assert {AtariFrames, EpisodicLife, FireReset}
