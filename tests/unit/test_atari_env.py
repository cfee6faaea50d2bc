"""The DQN preprocessing on the real ALE Breakout."""

import gymnasium as gym
import numpy as np
import pytest
from PIL import Image

from conftest import compose_config
from deeprl.core.errors import ConfigError
from deeprl.envs import make_vec_env, spec_of
from deeprl.envs.atari import (
    AtariFrames,
    BoxResize,
    EpisodicLife,
    FireReset,
    StackChannels,
    atari_thunk,
    rom_name,
)
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


@pytest.mark.parametrize("game, meant", [("pong", "Pong"), ("Pong-v5", "Pong"), ("ALE/Pong-v5", "Pong"),
                                        ("space_invaders", "SpaceInvaders"), ("Brekout", "Breakout"),
                                        ("mspacman", "MsPacman"), ("NoSuchGame", None)])
def test_an_unknown_game_is_answered_with_the_game_meant(game, meant):
    with pytest.raises(ConfigError) as caught:
        make_vec_env(compose_config("env=atari", f"env.game={game}").env, 1, seed=0)
    fix = f"did you mean env.game={meant}?" if meant else "use the CamelCase name of the ALE id, e.g. env.game=Breakout"
    assert str(caught.value).startswith(f"env.game: ALE has no game '{game}' (id ALE/{game}-v5); {fix}")
    if meant:
        make_vec_env(compose_config("env=atari", f"env.game={meant}").env, 1, seed=0).close()


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


# ---- the preprocessing against a plain reference -----------------------------------------------

def luminance(rgb: np.ndarray) -> np.ndarray:
    """Grayscale from RGB as the ALE builds its grayscale palette (ColourPalette.cpp)."""
    return np.round(rgb @ np.array([0.2989, 0.5870, 0.1140])).astype(np.uint8)


def pillow_box(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Pillow's BOX resize to (rows, columns)."""
    return np.asarray(Image.fromarray(image).resize(size[::-1], Image.Resampling.BOX))


class ReferenceFrames(gym.Wrapper):
    """AtariFrames written plainly, as it was before it drove the ALE itself: every frame through
    env.step() with RGB observations, grayscale from RGB, max of the last two frames, Pillow's resize."""

    def __init__(self, env, grayscale: bool, noop_max: int = 30, frame_skip: int = 4, size: int = 84):
        super().__init__(env)
        self.grayscale, self.noop_max, self.frame_skip, self.size = grayscale, noop_max, frame_skip, (size, size)
        shape = self.size if grayscale else (*self.size, 3)
        self.observation_space = gym.spaces.Box(0, 255, shape=shape, dtype=np.uint8)

    def _obs(self, a, b):
        a, b = (luminance(a), luminance(b)) if self.grayscale else (a, b)
        return pillow_box(np.maximum(a, b), self.size)

    def step(self, action):
        total, screens = 0.0, []
        for _ in range(self.frame_skip):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += reward
            screens.append(obs)
            if terminated or truncated:  # the last frame alone
                return self._obs(obs, obs), total, terminated, truncated, info
        return self._obs(*screens[-2:]), total, terminated, truncated, info

    def reset(self, *, seed=None, options=None):
        obs, info = self.env.reset(seed=seed, options=options)
        for _ in range(int(self.env.unwrapped.np_random.integers(1, self.noop_max + 1))):
            obs, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:
                obs, info = self.env.reset()
        return self._obs(obs, obs), info


def reference_stack(cfg, training: bool):
    """The env stack of atari_thunk with ReferenceFrames and gymnasium's own clip and frame stack."""
    env = gym.make(cfg.id, frameskip=1, repeat_action_probability=cfg.repeat_action_probability)  # RGB
    env = ReferenceFrames(env, cfg.grayscale, cfg.noop_max, cfg.frame_skip, cfg.screen_size)
    env = gym.wrappers.RecordEpisodeStatistics(env)
    if training:
        env = EpisodicLife(env)
    env = FireReset(env)
    if training:
        env = gym.wrappers.ClipReward(env, -1.0, 1.0)
    env = gym.wrappers.FrameStackObservation(env, cfg.frame_stack)
    return env if cfg.grayscale else StackChannels(env)


def same_info(a: dict, b: dict) -> bool:
    keys = ("lives", "episode_frame_number", "frame_number")
    episode = [{k: d["episode"][k] for k in ("r", "l")} if "episode" in d else None for d in (a, b)]
    return [a[k] for k in keys] == [b[k] for k in keys] and episode[0] == episode[1]


@pytest.mark.parametrize("training, grayscale", [(True, True), (False, True), (True, False)])
def test_the_env_gives_what_a_plain_rgb_reference_gives(training, grayscale):
    # Same seed and actions, sticky actions as configured (0.25): the same stacked observations,
    # rewards, terminations and infos, step for step, across lost lives and a finished game.
    cfg = breakout(f"env.grayscale={str(grayscale).lower()}")
    assert cfg.repeat_action_probability == 0.25
    env, ref = atari_thunk(cfg, training)(), reference_stack(cfg, training)
    (obs, info), (ref_obs, ref_info) = env.reset(seed=5), ref.reset(seed=5)
    np.testing.assert_array_equal(obs, ref_obs)
    assert same_info(info, ref_info)
    rng = np.random.default_rng(0)
    lives, lives_lost, games = info["lives"], 0, 0
    for _ in range(500):
        action = int(rng.integers(0, 4))
        obs, reward, terminated, truncated, info = env.step(action)
        ref_obs, ref_reward, ref_terminated, ref_truncated, ref_info = ref.step(action)
        np.testing.assert_array_equal(obs, ref_obs)
        assert (reward, terminated, truncated) == (ref_reward, ref_terminated, ref_truncated)
        assert same_info(info, ref_info)
        lives_lost += info["lives"] < lives
        games += "episode" in info
        if terminated or truncated:
            (obs, info), (ref_obs, ref_info) = env.reset(), ref.reset()
            np.testing.assert_array_equal(obs, ref_obs)
            assert same_info(info, ref_info)
        lives = info["lives"]
    assert obs.shape == ((4, 84, 84) if grayscale else (12, 84, 84))
    assert lives_lost > 0 and games > 0
    env.close(), ref.close()


def test_the_ale_grayscale_is_the_luminance_of_its_rgb_screen():
    import ale_py

    gym.register_envs(ale_py)  # as deeprl.envs.atari does; this test alone would find no ALE ids
    env = gym.make("ALE/Breakout-v5", frameskip=4)
    env.reset(seed=0)
    ale = env.unwrapped.ale
    for action in [1, 2, 3, 0] * 10:
        env.step(action)
        np.testing.assert_array_equal(ale.getScreenGrayscale(), luminance(ale.getScreenRGB()))
    env.close()


@pytest.mark.parametrize("shape, size", [((210, 160), (84, 84)), ((210, 160, 3), (84, 84)),
                                         ((210, 160), (64, 64)), ((210, 160), (42, 30)),
                                         ((210, 160), (250, 200)), ((210, 160), (210, 160))])
def test_box_resize_is_pillows_box_filter(shape, size):
    resize, rng = BoxResize(shape, size), np.random.default_rng(0)
    images = list(rng.integers(0, 256, (20, *shape), dtype=np.uint8))
    images += [np.zeros(shape, np.uint8), np.full(shape, 255, np.uint8)]
    for image in images:
        out = resize(image)
        assert out.dtype == np.uint8 and out.shape == (*size, *shape[2:])
        np.testing.assert_array_equal(out, pillow_box(image, size))
