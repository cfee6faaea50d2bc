"""MinAtar (Young & Tian 2019): five Atari games cut down to a 10x10 grid, observed as one binary
map per kind of object (Breakout 4 channels, Asterix 4, Freeway 7, Seaquest 10, SpaceInvaders 6).

`minatar_thunk` builds MinAtar's own gymnasium env (`gym.make("MinAtar/<Game>-v0")`, which runs
`minatar.Environment`: sticky actions, difficulty ramping) and hands the agent its observation as
(C, 10, 10) uint8: channels first, as the torsos take images, and one byte per cell, which the
replay stores as it is (a float32 copy would make a 100k replay of Seaquest 800 MB instead of
200 MB). The games end at game over (no lives, rewards are small integers and never clipped), so
an episode's return is the full-game score. v0 is MinAtar's id for all six actions, v1 for each
game's minimal action set (docs/minatar.md says which was chosen and why).

The env is pure Python and numpy (the game's state, its RandomState, the sticky action), so a
checkpoint pickles it whole and a resumed run continues its episodes exactly (deeprl.envs.state).
"""

import warnings

import gymnasium as gym
import numpy as np

from deeprl.core.errors import ConfigError

GAMES = ("Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders")
# Video frames: each cell of the 10x10 map drawn as a block of this many pixels.
CELL_PIXELS = 16


def register() -> None:
    """MinAtar's gymnasium ids. The package declares them as a plugin entry point, which gymnasium 1.x
    no longer loads by itself."""
    if "MinAtar/Breakout-v0" not in gym.registry:
        from minatar.gym import register_envs

        register_envs()


class MinAtarObservations(gym.ObservationWrapper):
    """(H, W, C) bool maps -> (C, H, W) uint8, the same 0/1 values; rendered frames as uint8 RGB.
    (Gymnasium's uint8 images take deeprl.envs.make.ChannelsFirst instead.)"""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        height, width, channels = env.observation_space.shape
        self.observation_space = gym.spaces.Box(0, 1, (channels, height, width), np.uint8)
        # MinAtar's own display shows a frame every 50 ms; videos play at the same pace.
        self.metadata = {**env.metadata, "render_fps": 20}

    def observation(self, obs: np.ndarray) -> np.ndarray:
        # bool and uint8 share their bytes: a view, then one copy in channels-first order.
        return np.ascontiguousarray(obs.view(np.uint8).transpose(2, 0, 1))

    def render(self):
        frame = self.env.render()
        if self.render_mode != "rgb_array" or frame is None:
            return frame
        # MinAtar draws one float pixel per cell; a video wants uint8 frames large enough to see.
        frame = np.round(np.asarray(frame) * 255).astype(np.uint8)
        return frame.repeat(CELL_PIXELS, axis=0).repeat(CELL_PIXELS, axis=1)


def minatar_thunk(env_cfg, render_mode=None):
    register()
    if env_cfg.id not in gym.registry:
        raise ConfigError("env.game", f"MinAtar has no env '{env_cfg.id}'; set env.game to one of {', '.join(GAMES)} "
                                      "(env.id MinAtar/<Game>-v0 for all six actions, -v1 for the minimal set)")
    kwargs = {"sticky_action_prob": float(env_cfg.repeat_action_probability),
              "difficulty_ramping": bool(env_cfg.difficulty_ramping)}
    if env_cfg.get("max_episode_steps"):
        kwargs["max_episode_steps"] = int(env_cfg.max_episode_steps)
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    env_id = str(env_cfg.id)

    def thunk():
        with warnings.catch_warnings():
            # gymnasium calls v0 out of date because a v1 exists; for MinAtar v0 is the full action set.
            warnings.filterwarnings("ignore", message=".*is out of date", category=DeprecationWarning)
            # No passive checker: its one complaint would be MinAtar's float frames, which
            # MinAtarObservations.render turns into uint8.
            env = gym.make(env_id, disable_env_checker=True, **kwargs)
        return MinAtarObservations(env)

    return thunk
