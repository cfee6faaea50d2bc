"""Atari 2600 games through the ALE, with the DQN preprocessing (Mnih et al. 2015; Machado et al. 2018).

One env is a stack of gymnasium wrappers (innermost first):

    gym.make("ALE/<Game>-v5", frameskip=1, repeat_action_probability=p)   sticky actions when p > 0
    AtariFrames           no-op reset (1..noop_max), frame skip with max over the last two frames,
                          84x84 grayscale uint8
    RecordEpisodeStatistics   full-game return and length (all lives, unclipped): info["episode"]
    EpisodicLife          training only: a lost life ends the learning episode, not the game
    FireReset             press FIRE after every reset, for games that wait for it
    ClipReward            training only: rewards clipped to [-1, 1] for learning
    FrameStackObservation the last `frame_stack` frames, a new episode padded with its first frame

The statistics wrapper sits below the life-loss and clipping wrappers, so `info["episode"]` always
holds the score a human would read off the screen; `EpisodeTracker` reports that instead of the sum
of the (clipped, per-life) rewards the learner sees. Evaluation envs (training=False) have neither
episodic life nor clipping.

Why gymnasium wrappers rather than ale-py's C++ `AtariVectorEnv`: see docs/atari.md (measured speed
on the project's 2-core machines, and the vector env has no unclipped full-game statistics).
Why not gymnasium's own `AtariPreprocessing`: it needs OpenCV only for the resize; Pillow's box
filter (area averaging, like cv2.INTER_AREA) is already installed with matplotlib.
"""

import re

import gymnasium as gym
import numpy as np
from PIL import Image

from deeprl.core.errors import ConfigError


def rom_name(game: str) -> str:
    """'SpaceInvaders' -> 'space_invaders' (the ROM name ale-py uses)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", game).lower()


class AtariFrames(gym.Wrapper):
    """No-op reset, frame skip with a max over the last two frames, and a resized frame.

    The max removes the flicker of sprites drawn on alternate frames. Observations are uint8,
    (size, size) in grayscale or (size, size, 3) in colour. Equivalent to gymnasium's
    AtariPreprocessing with terminal_on_life_loss=False, with Pillow doing the resize.
    """

    def __init__(self, env: gym.Env, *, noop_max: int = 30, frame_skip: int = 4, screen_size: int = 84,
                 grayscale: bool = True):
        super().__init__(env)
        if noop_max > 0 and env.unwrapped.get_action_meanings()[0] != "NOOP":
            raise ValueError("AtariFrames: no-op reset needs action 0 to be NOOP")
        self.noop_max, self.frame_skip, self.grayscale = noop_max, frame_skip, grayscale
        self.size = (screen_size, screen_size)
        screen = env.observation_space.shape[:2]
        self._buffer = np.zeros((2, *screen) if grayscale else (2, *screen, 3), dtype=np.uint8)
        shape = self.size if grayscale else (*self.size, 3)
        self.observation_space = gym.spaces.Box(0, 255, shape=shape, dtype=np.uint8)

    @property
    def ale(self):
        return self.env.unwrapped.ale

    def _grab(self, slot: int) -> None:
        if self.grayscale:
            self.ale.getScreenGrayscale(self._buffer[slot])
        else:
            self.ale.getScreenRGB(self._buffer[slot])

    def _obs(self) -> np.ndarray:
        frame = np.maximum(self._buffer[0], self._buffer[1])
        return np.asarray(Image.fromarray(frame).resize(self.size, Image.Resampling.BOX))

    def step(self, action):
        total, terminated, truncated, info = 0.0, False, False, {}
        for t in range(self.frame_skip):
            _, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            if terminated or truncated:
                break
            if t >= self.frame_skip - 2:
                self._grab(t - self.frame_skip + 2)  # the last two frames into slots 0 and 1
        if terminated or truncated or self.frame_skip == 1:
            self._grab(0)
            self._buffer[1] = self._buffer[0]
        return self._obs(), total, terminated, truncated, info

    def reset(self, *, seed=None, options=None):
        _, info = self.env.reset(seed=seed, options=options)
        noops = int(self.env.unwrapped.np_random.integers(1, self.noop_max + 1)) if self.noop_max > 0 else 0
        for _ in range(noops):
            _, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:
                _, info = self.env.reset()
        self._grab(0)
        self._buffer[1] = self._buffer[0]
        return self._obs(), info


class EpisodicLife(gym.Wrapper):
    """A lost life ends the learning episode (terminated=True); the game itself goes on.

    reset() after a life loss only takes a no-op step; a real reset happens at game over.
    The full-game statistics (info["episode"]) come from below this wrapper: when the no-op step
    itself ends the game, its statistics are passed on in the reset info so none is lost.
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.lives = 0
        self.game_over = True

    @property
    def ale(self):
        return self.env.unwrapped.ale

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.game_over = terminated or truncated
        lives = self.ale.lives()
        if 0 < lives < self.lives:
            terminated = True
        self.lives = lives
        return obs, reward, terminated, truncated, info

    def reset(self, *, seed=None, options=None):
        if self.game_over or seed is not None:
            obs, info = self.env.reset(seed=seed, options=options)
        else:
            obs, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:
                episode = info.get("episode")
                obs, info = self.env.reset()
                if episode is not None:
                    info = {**info, "episode": episode}
        self.game_over = False
        self.lives = self.ale.lives()
        return obs, info


class FireReset(gym.Wrapper):
    """Press FIRE (then UP) after a reset: games like Breakout do nothing until the player fires."""

    def reset(self, *, seed=None, options=None):
        obs, info = self.env.reset(seed=seed, options=options)
        episode = info.get("episode")  # a game that ended inside the reset (see EpisodicLife)
        for action in (1, 2):
            obs, _, terminated, truncated, info = self.env.step(action)
            episode = info.get("episode", episode)
            if terminated or truncated:
                obs, info = self.env.reset()
        return obs, info if episode is None else {**info, "episode": episode}


def needs_fire(env: gym.Env) -> bool:
    meanings = env.unwrapped.get_action_meanings()
    return len(meanings) >= 3 and meanings[1] == "FIRE"


class StackChannels(gym.ObservationWrapper):
    """(stack, H, W, 3) colour stacks -> (stack * 3, H, W): channels first, each frame contiguous."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        k, h, w, c = env.observation_space.shape
        self.observation_space = gym.spaces.Box(0, 255, shape=(k * c, h, w), dtype=np.uint8)

    def observation(self, obs):
        return np.ascontiguousarray(np.moveaxis(obs, -1, 1)).reshape(self.observation_space.shape)


def check_atari_cfg(env_cfg) -> None:
    import ale_py

    gym.register_envs(ale_py)
    # ALE prints a two-line banner to stderr when it makes its first env; warnings and errors stay.
    # (Without this, a config error found once the env exists would not be the only line on stderr.)
    ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Warning)
    try:
        gym.spec(env_cfg.id)
    except gym.error.Error:
        raise ConfigError("env.game", f"ALE has no game '{env_cfg.game}' (id {env_cfg.id}); use the "
                          "CamelCase name of the ALE id, e.g. env.game=Breakout or env.game=SpaceInvaders") from None
    # The ranges and choices of the keys (frame_skip, screen_size, fire_reset, ...) are in one table.
    from deeprl.validate import check_keys

    check_keys(env_cfg, prefix="env.")


def atari_thunk(env_cfg, training: bool, render_mode=None):
    """A function building one preprocessed Atari env (learning-time wrappers when `training`)."""
    check_atari_cfg(env_cfg)
    make_kwargs = dict(frameskip=1, repeat_action_probability=float(env_cfg.repeat_action_probability),
                       full_action_space=bool(env_cfg.full_action_space))
    if env_cfg.get("max_frames"):
        make_kwargs["max_num_frames_per_episode"] = int(env_cfg.max_frames)
    if render_mode is not None:
        make_kwargs["render_mode"] = render_mode

    def thunk():
        env = gym.make(env_cfg.id, **make_kwargs)
        env = AtariFrames(env, noop_max=int(env_cfg.noop_max), frame_skip=int(env_cfg.frame_skip),
                          screen_size=int(env_cfg.screen_size), grayscale=bool(env_cfg.grayscale))
        env = gym.wrappers.RecordEpisodeStatistics(env)
        if training and env_cfg.terminal_on_life_loss:
            env = EpisodicLife(env)
        if env_cfg.fire_reset is True or (env_cfg.fire_reset == "auto" and needs_fire(env)):
            env = FireReset(env)
        if training and env_cfg.clip_rewards:
            env = gym.wrappers.ClipReward(env, -1.0, 1.0)
        env = gym.wrappers.FrameStackObservation(env, int(env_cfg.frame_stack))
        if not env_cfg.grayscale:
            env = StackChannels(env)
        # Tells EpisodeTracker that dones may be life losses and full games come in info["episode"].
        env.metadata = {**env.metadata, "full_game_stats": True}
        return env

    return thunk
