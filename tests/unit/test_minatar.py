"""MinAtar through deeprl's env factory (real games): shapes, sticky actions, full-game scores, the
torso, the checks that pair it with the envs, and exact env state capture."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode

from conftest import compose_config
from deeprl.buffers import ReplayBuffer, frame_stack_of, make_replay
from deeprl.build import network_cost
from deeprl.checks import check_spec
from deeprl.core.device import AUTO_CUDA_MACS
from deeprl.core.errors import ConfigError
from deeprl.envs import make_vec_env, spec_of
from deeprl.envs import state as env_state
from deeprl.envs.episodes import EpisodeTracker
from deeprl.envs.make import _thunk
from deeprl.networks import MinAtarCNN

# Channels per game (MinAtar's README), and each game's minimal action set size.
GAMES = {"breakout": (4, 3), "asterix": (4, 5), "freeway": (7, 3), "seaquest": (10, 6), "space_invaders": (6, 4)}


def envs_for(game: str, num_envs: int = 2, *overrides: str):
    cfg = compose_config(f"env=minatar_{game}", *overrides)
    return cfg, make_vec_env(cfg.env, num_envs, seed=0)


@pytest.mark.parametrize("game", list(GAMES))
def test_observations_are_channels_first_uint8_maps(game):
    cfg, envs = envs_for(game)
    channels, _ = GAMES[game]
    spec = spec_of(envs, cfg.env.id)
    assert spec.obs_shape == (channels, 10, 10) and spec.obs_dtype == np.uint8
    assert spec.n_actions == 6  # v0: all six actions, as the paper's DQN
    obs, _ = envs.reset(seed=0)
    assert obs.shape == (2, channels, 10, 10) and obs.dtype == np.uint8
    for _ in range(20):
        obs, *_ = envs.step(envs.action_space.sample())
        assert set(np.unique(obs)) <= {0, 1}
    # The same cells as the game's own (10, 10, C) bool state, channels moved to the front.
    game_state = envs.envs[0].unwrapped.game.state()
    np.testing.assert_array_equal(obs[0], game_state.transpose(2, 0, 1).astype(np.uint8))
    envs.close()


@pytest.mark.parametrize("game", list(GAMES))
def test_v1_is_the_minimal_action_set(game):
    _, envs = envs_for(game, 1, f"env.id=MinAtar/{compose_config(f'env=minatar_{game}').env.game}-v1")
    assert envs.single_action_space.n == GAMES[game][1]
    envs.close()


def test_sticky_actions_ramping_and_time_limit_reach_the_game():
    _, envs = envs_for("seaquest", 1)
    env = envs.envs[0]
    game = env.unwrapped.game
    assert game.sticky_action_prob == 0.1 and game.env.ramping is True
    assert env.spec.max_episode_steps == 27000
    envs.close()
    _, envs = envs_for("seaquest", 1, "env.repeat_action_probability=0.0", "env.difficulty_ramping=false",
                       "env.max_episode_steps=null")
    game = envs.envs[0].unwrapped.game
    assert game.sticky_action_prob == 0.0 and game.env.ramping is False
    envs.close()


def test_sticky_actions_repeat_the_previous_action_about_a_tenth_of_the_time():
    env = _thunk(compose_config("env=minatar_breakout").env, training=True)()
    env.reset(seed=0)
    game = env.unwrapped.game
    repeats, n = 0, 3000
    for _ in range(n):
        before = game.last_action
        game.act(3 if before == 1 else 1)  # never the previous action: a repeat is MinAtar's doing
        repeats += game.last_action == before
    assert 0.07 < repeats / n < 0.13
    env.close()


def test_episode_return_is_the_full_game_score():
    """A game ends only at game over (no lives); the tracker's return is the sum of its rewards."""
    _, envs = envs_for("space_invaders", 3)
    tracker = EpisodeTracker.for_envs(envs)
    assert not tracker.full_games  # nothing to add up below the learner: every reward is the game's
    envs.reset(seed=1)
    rng = np.random.default_rng(0)
    sums = np.zeros(3)
    finished = []
    while len(finished) < 6:
        _, rewards, terminated, truncated, infos = envs.step(rng.integers(0, 6, 3))
        sums += rewards
        for i, ret, length in tracker.step_envs(rewards, terminated | truncated, infos):
            assert terminated[i] and not truncated[i]  # game over, not a time limit
            assert ret == sums[i] and length > 0
            finished.append(ret)
            sums[i] = 0
    assert all(float(r).is_integer() for r in finished) and max(finished) > 0
    envs.close()


def test_minatar_cnn_is_the_papers_torso_without_pixel_scaling():
    torso = MinAtarCNN((10, 10, 10))
    assert torso.conv.out_channels == 16 and torso.conv.kernel_size == (3, 3)
    assert torso.fc.in_features == 16 * 8 * 8 and torso.out_dim == 128
    obs = torch.randint(0, 2, (5, 10, 10, 10), dtype=torch.uint8)
    torch.testing.assert_close(torso(obs), torso(obs.float()))  # 0/1 stay 0/1: no division by 255
    n_params = sum(p.numel() for p in torso.parameters())
    assert n_params == 16 * 10 * 9 + 16 + 1024 * 128 + 128
    assert MinAtarCNN.multiply_adds((10, 10, 10)) == 64 * 16 * 90 + 1024 * 128
    with pytest.raises(ValueError, match="MinAtarCNN needs"):
        MinAtarCNN((4,))


def test_replay_stores_plain_rows_not_frame_stacks():
    cfg, envs = envs_for("breakout", 1)
    spec = spec_of(envs, cfg.env.id)
    assert frame_stack_of(cfg.env, spec.obs_shape, spec.obs_dtype) == 0
    buffer = make_replay(100, spec.obs_shape, spec.obs_dtype, spec.action_shape, np.int64, 0.99, torch.device("cpu"))
    assert type(buffer) is ReplayBuffer and buffer.obs_dtype == np.uint8
    envs.close()


@pytest.mark.parametrize(("overrides", "match"), [
    (["network=mlp"], "use network=minatar_cnn"),
    (["network=nature_cnn"], "network=minatar_cnn"),
])
def test_networks_that_cannot_take_minatar_maps_are_named(overrides, match):
    cfg, envs = envs_for("breakout", 1, *overrides)
    with pytest.raises(ConfigError, match=match) as info:
        check_spec(cfg, spec_of(envs, cfg.env.id))
    assert info.value.key == "network"
    envs.close()


def test_minatar_cnn_on_vectors_points_to_mlp():
    cfg = compose_config("env=cartpole", "network=minatar_cnn")
    envs = make_vec_env(cfg.env, 1, seed=0)
    with pytest.raises(ConfigError, match="minatar_cnn takes image stacks.*use network=mlp"):
        check_spec(cfg, spec_of(envs, cfg.env.id))
    envs.close()


def test_unknown_game_is_a_config_error():
    with pytest.raises(ConfigError, match="MinAtar has no env 'MinAtar/Pong-v0'") as info:
        make_vec_env(compose_config("env=minatar", "env.game=Pong").env, 1, seed=0)
    assert info.value.key == "env.game"


def test_device_auto_counts_the_small_torso_like_an_mlp():
    """DQN's batch of 32 through the MinAtar torso stays under the CUDA threshold; PPO's minibatches
    of 256 (8 envs x 128 steps / 4) go over it."""
    for algo, above in (("dqn", False), ("ppo", True)):
        cfg, envs = envs_for("seaquest", 1, f"algo={algo}")
        convolutional, macs = network_cost(cfg, spec_of(envs, cfg.env.id))
        assert not convolutional and (macs >= AUTO_CUDA_MACS) == above
        envs.close()


def test_envs_are_captured_and_continue_exactly_after_restore():
    cfg = compose_config("env=minatar_asterix")

    def envs():
        return gym.vector.SyncVectorEnv([_thunk(cfg.env, training=True)] * 2, autoreset_mode=AutoresetMode.SAME_STEP)

    a, b = envs(), envs()
    a.reset(seed=3)
    b.reset(seed=99)
    rng = np.random.default_rng(0)
    for _ in range(50):
        a.step(rng.integers(0, 6, 2))
    saved = env_state.capture(a)
    assert saved is not None
    env_state.restore(b, saved)
    for _ in range(300):  # through game overs and autoresets (sticky actions and spawns are random)
        actions = rng.integers(0, 6, 2)
        for x, y in zip(a.step(actions)[:4], b.step(actions)[:4], strict=True):
            np.testing.assert_array_equal(x, y)


def test_rendered_frames_are_uint8_blocks():
    env = _thunk(compose_config("env=minatar_breakout").env, training=False, render_mode="rgb_array")()
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (160, 160, 3) and frame.dtype == np.uint8 and frame.max() > 0
    env.close()
