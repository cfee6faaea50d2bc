"""Atari 2600 games through the ALE, with the DQN preprocessing (Mnih et al. 2015; Machado et al. 2018).

One env is a stack of gymnasium wrappers (innermost first):

    gym.make("ALE/<Game>-v5", frameskip=1, repeat_action_probability=p)   sticky actions when p > 0
    AtariFrames           no-op reset (1..noop_max), frame skip with max over the last two frames,
                          84x84 grayscale uint8 (drives the ALE itself, see its docstring)
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
Why not gymnasium's own `AtariPreprocessing`: it needs OpenCV only for the resize. The resize is
Pillow's BOX filter (the mean of the pixels whose centres fall in each output pixel), computed by
`BoxResize` in numpy with the same result in half the time. Speed per agent step: docs/atari.md.
"""

import re

import gymnasium as gym
import numpy as np

from deeprl.core.errors import ConfigError, nearest


def rom_name(game: str) -> str:
    """'SpaceInvaders' -> 'space_invaders' (the ROM name ale-py uses)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", game).lower()


PIL_BITS = 22  # Pillow's fixed point for 8-bit resampling (Resample.c: PRECISION_BITS = 32 - 8 - 2)


def box_taps(n_in: int, n_out: int) -> list[list[int]]:
    """The input pixels Pillow's BOX filter averages into each output pixel, one axis.

    Pillow takes the pixels whose centres fall in (centre - support, centre + support] of the
    output pixel, with equal weights; not the area overlap (210 -> 84 rows averages 3, 2, 3, 2, ...
    rows). The arithmetic is Resample.c's precompute_coeffs, in the same doubles.
    """
    scale = n_in / n_out
    filterscale = max(scale, 1.0)
    support, ss = 0.5 * filterscale, 1.0 / filterscale
    taps = []
    for i in range(n_out):
        centre = (i + 0.5) * scale
        lo, hi = max(int(centre - support + 0.5), 0), min(int(centre + support + 0.5), n_in)
        taps.append([x for x in range(lo, hi) if -0.5 < (x - centre + 0.5) * ss <= 0.5])
    return taps


class BoxResize:
    """`Image.resize(size, Image.Resampling.BOX)` of uint8 images, bit for bit, in numpy.

    Pillow resizes columns, rounds to uint8, then resizes rows. An output pixel is
    (sum of its n taps * round(2**22 / n) + 2**21) >> 22. Where every output of a pass averages one
    or two pixels that is (a + b + 1) >> 1, done in uint8 as (a | b) - ((a ^ b) >> 1) (b = a for
    one pixel); other passes sum weighted taps in int32, as Pillow does. For Atari's 210x160 -> 84x84
    it takes about half of Pillow's time; tests check it against Pillow for several sizes.
    """

    def __init__(self, shape: tuple[int, ...], size: tuple[int, int]):
        channels = (1,) * (len(shape) - 2)  # colour channels broadcast against the weights
        self.passes = [self._plan(shape[1], size[1], axis=1, weight_shape=(-1, *channels)),
                       self._plan(shape[0], size[0], axis=0, weight_shape=(-1, 1, *channels))]

    @staticmethod
    def _plan(n_in: int, n_out: int, axis: int, weight_shape: tuple[int, ...]):
        """(axis, tap indices per slot, None for the rounded mean of two taps, else the weights
        round(2**22 / n) and, per slot after the first, a 0xFF/0x00 mask or None when all have it)."""
        taps = box_taps(n_in, n_out)
        counts = [len(t) for t in taps]
        if not 0 < min(counts) <= max(counts) <= 257:  # 257 taps of 255 still fit a uint16 sum
            raise ValueError(f"BoxResize: {n_in} -> {n_out} pixels is out of its range")
        if max(counts) <= 2:
            return axis, [np.array([t[0] for t in taps]), np.array([t[-1] for t in taps])], None
        slots = range(max(counts))  # slot j of an output with fewer taps repeats one, masked out
        index = [np.array([t[min(j, len(t) - 1)] for t in taps]) for j in slots]
        weights = np.array([int(0.5 + 1.0 / n * (1 << PIL_BITS)) for n in counts], dtype=np.int32)
        masks = [None if j < min(counts) else
                 np.array([255 * (j < n) for n in counts], dtype=np.uint8).reshape(weight_shape)
                 for j in slots[1:]]
        return axis, index, (weights.reshape(weight_shape), masks)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        # np.take rather than fancy indexing: image[:, index] comes out in column order, and every
        # operation after it pays for that.
        for axis, index, weights in self.passes:
            if weights is None:
                a, b = image.take(index[0], axis=axis), image.take(index[1], axis=axis)
                image = (a | b) - ((a ^ b) >> 1)
            else:  # the taps of one output have equal weights: sum them (uint16), weigh once
                weight, masks = weights
                taps = [image.take(i, axis=axis) for i in index]
                taps[1:] = [t if m is None else t & m for t, m in zip(taps[1:], masks, strict=True)]
                total = np.add(taps[0], taps[1], dtype=np.uint16)
                for t in taps[2:]:
                    total += t
                total = total * weight
                total += 1 << (PIL_BITS - 1)
                total >>= PIL_BITS
                image = total.astype(np.uint8)
        return image


class HoldsEmulator:
    """For wrappers that keep the env's ALEInterface, which does not pickle: they pickle without it
    and bind again to the unpickled env's own emulator (deeprl.envs.state restores its state)."""

    _handles: tuple[str, ...] = ()

    def _bind(self, ale) -> None:
        raise NotImplementedError

    def __getstate__(self) -> dict:
        return {key: value for key, value in self.__dict__.items() if key not in self._handles}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._bind(self.env.unwrapped.ale)


class AtariFrames(HoldsEmulator, gym.Wrapper):
    """No-op reset, frame skip with a max over the last two frames, and a resized frame.

    The max removes the flicker of sprites drawn on alternate frames. Observations are uint8,
    (size, size) in grayscale or (size, size, 3) in colour. Equivalent to gymnasium's
    AtariPreprocessing with terminal_on_life_loss=False, with Pillow's BOX filter for the resize.

    The skipped frames drive the emulator directly (`ale.act`) rather than through the env's
    step(), which would copy out a full screen after every frame only for it to be dropped. Only
    the last two frames are read, straight from the ALE into preallocated buffers, as grayscale
    (the ALE's own luminance palette) or RGB. Sticky actions and the frame limit live inside the
    ALE, so they act exactly as they do through step().
    """

    def __init__(self, env: gym.Env, *, noop_max: int = 30, frame_skip: int = 4, screen_size: int = 84,
                 grayscale: bool = True):
        super().__init__(env)
        base = env.unwrapped
        if noop_max > 0 and base.get_action_meanings()[0] != "NOOP":
            raise ValueError("AtariFrames: no-op reset needs action 0 to be NOOP")
        self.noop_max, self.frame_skip, self.grayscale = noop_max, frame_skip, grayscale
        self.size = (screen_size, screen_size)
        self._bind(base.ale)
        self._actions = list(base._action_set)  # agent action -> ALE action, as AtariEnv.step maps it
        screen = tuple(self._ale.getScreenDims())
        self._frames = np.zeros((2, *screen) if grayscale else (2, *screen, 3), dtype=np.uint8)
        self._max = np.zeros_like(self._frames[0])
        self._resize = BoxResize(self._max.shape, self.size)
        shape = self.size if grayscale else (*self.size, 3)
        self.observation_space = gym.spaces.Box(0, 255, shape=shape, dtype=np.uint8)

    _handles = ("_ale", "_grab")

    def _bind(self, ale) -> None:
        self._ale = ale
        self._grab = ale.getScreenGrayscale if self.grayscale else ale.getScreenRGB

    @property
    def ale(self):
        return self._ale

    def _obs(self) -> np.ndarray:
        np.maximum(self._frames[0], self._frames[1], out=self._max)
        return self._resize(self._max)

    def _info(self) -> dict:
        ale = self._ale  # the keys AtariEnv.step returns
        return {"lives": ale.lives(), "episode_frame_number": ale.getEpisodeFrameNumber(),
                "frame_number": ale.getFrameNumber()}

    def step(self, action):
        ale, frames, act = self._ale, self._frames, self._actions[action]
        reward, last = 0, self.frame_skip - 1
        for t in range(self.frame_skip):
            reward += ale.act(act)
            if ale.game_over():  # terminal or truncated: this frame is the observation
                self._grab(frames[0])
                frames[1] = frames[0]
                break
            if t >= last - 1:
                self._grab(frames[t - last + 1])  # the last two frames into slots 0 and 1
        if self.frame_skip == 1:  # its one frame went to slot 1
            frames[0] = frames[1]
        terminated, truncated = ale.game_over(with_truncation=False), ale.game_truncated()
        return self._obs(), float(reward), terminated, truncated, self._info()

    def reset(self, *, seed=None, options=None):
        _, info = self.env.reset(seed=seed, options=options)
        noops = int(self.env.unwrapped.np_random.integers(1, self.noop_max + 1)) if self.noop_max > 0 else 0
        for _ in range(noops):
            self._ale.act(self._actions[0])
            if self._ale.game_over():
                _, info = self.env.reset()
            else:
                info = None
        self._grab(self._frames[0])
        self._frames[1] = self._frames[0]
        return self._obs(), self._info() if info is None else info


class EpisodicLife(HoldsEmulator, gym.Wrapper):
    """A lost life ends the learning episode (terminated=True); the game itself goes on.

    reset() after a life loss only takes a no-op step; a real reset happens at game over.
    The full-game statistics (info["episode"]) come from below this wrapper: when the no-op step
    itself ends the game, its statistics are passed on in the reset info so none is lost.
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.lives = 0
        self.game_over = True
        self._bind(env.unwrapped.ale)  # looked up once: `unwrapped` walks the whole wrapper chain

    _handles = ("ale",)

    def _bind(self, ale) -> None:
        self.ale = ale

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


class ClipReward(gym.wrappers.ClipReward):
    """gymnasium's ClipReward with the clip done on a Python float (np.clip on one float costs
    2.5 us, eight times the rest of the wrapper)."""

    def __init__(self, env: gym.Env, low: float = -1.0, high: float = 1.0):
        super().__init__(env, low, high)
        self.low, self.high = float(low), float(high)
        self.func = None  # reward() below clips; gymnasium's lambda here would not pickle (env state)

    def reward(self, reward):
        return min(max(float(reward), self.low), self.high)


class FrameStackObservation(gym.wrappers.FrameStackObservation):
    """gymnasium's frame stack (a new episode padded with copies of its first frame), shifting one
    preallocated stack in place and copying it once per step, where gymnasium concatenates a deque
    and then deep-copies the result."""

    def __init__(self, env: gym.Env, stack_size: int):
        super().__init__(env, stack_size, padding_type="reset")
        self._stack = np.zeros(self.observation_space.shape, dtype=self.observation_space.dtype)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._stack[:-1] = self._stack[1:]
        self._stack[-1] = obs
        return self._stack.copy(), reward, terminated, truncated, info

    def reset(self, *, seed=None, options=None):
        obs, info = self.env.reset(seed=seed, options=options)
        self._stack[:] = obs
        return self._stack.copy(), info


def needs_fire(env: gym.Env) -> bool:
    meanings = env.unwrapped.get_action_meanings()
    return len(meanings) >= 3 and meanings[1] == "FIRE"


class StackChannels(gym.ObservationWrapper):
    """(stack, H, W, C) stacks of colour frames -> (stack * C, H, W): channels first, each frame
    contiguous (the layout FrameReplayBuffer stores each frame of once)."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        k, h, w, c = env.observation_space.shape
        self.observation_space = gym.spaces.Box(0, 255, shape=(k * c, h, w), dtype=np.uint8)

    def observation(self, obs):
        return np.ascontiguousarray(np.moveaxis(obs, -1, 1)).reshape(self.observation_space.shape)


def game_like(game: str) -> str | None:
    """The ALE game meant by an unknown name: another case, an id's pieces left on ("ALE/Pong-v5"),
    or a close spelling. From the registered ids (`ALE/<Game>-v5`)."""
    games = sorted({key[4:].rsplit("-v", 1)[0] for key in gym.registry if key.startswith("ALE/")})
    plain = game.removeprefix("ALE/").rsplit("-v", 1)[0].replace("_", "").replace(" ", "")
    return nearest(plain, games, cutoff=0.8)


def check_atari_cfg(env_cfg) -> None:
    import ale_py

    gym.register_envs(ale_py)
    # ALE prints a two-line banner to stderr when it makes its first env; warnings and errors stay.
    # (Without this, a config error found once the env exists would not be the only line on stderr.)
    ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Warning)
    try:
        gym.spec(env_cfg.id)
    except gym.error.Error:
        meant = game_like(str(env_cfg.game))
        fix = (f"did you mean env.game={meant}?" if meant else
               "use the CamelCase name of the ALE id, e.g. env.game=Breakout or env.game=SpaceInvaders")
        raise ConfigError("env.game", f"ALE has no game '{env_cfg.game}' (id {env_cfg.id}); {fix}") from None
    # The ranges and choices of the keys (frame_skip, screen_size, fire_reset, ...) are in one table.
    from deeprl.validate import check_keys

    check_keys(env_cfg, prefix="env.")


def atari_thunk(env_cfg, training: bool, render_mode=None):
    """A function building one preprocessed Atari env (learning-time wrappers when `training`)."""
    check_atari_cfg(env_cfg)
    # AtariFrames reads the screens itself; the env's own observation (reset only) matches them.
    make_kwargs = dict(frameskip=1, repeat_action_probability=float(env_cfg.repeat_action_probability),
                       full_action_space=bool(env_cfg.full_action_space),
                       obs_type="grayscale" if env_cfg.grayscale else "rgb")
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
            env = ClipReward(env, -1.0, 1.0)
        env = FrameStackObservation(env, int(env_cfg.frame_stack))
        if not env_cfg.grayscale:
            env = StackChannels(env)
        # Tells EpisodeTracker that dones may be life losses and full games come in info["episode"].
        env.metadata = {**env.metadata, "full_game_stats": True}
        return env

    return thunk
