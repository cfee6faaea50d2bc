import os
import signal
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from omegaconf import OmegaConf

from deeprl.conf import named_env_config
from deeprl.core.errors import ConfigError, nearest
from deeprl.core.imports import import_user_module
from deeprl.envs.model import OneHotObservation
from deeprl.envs.one_env import OneEnvVector


@dataclass(frozen=True)
class EnvSpec:
    """What agents need to know about an environment to build their networks."""

    id: str
    obs_shape: tuple[int, ...]
    obs_dtype: np.dtype
    action_space: gym.Space
    # Number of states when an observation is a discrete state index (tabular algorithms), else 0.
    n_states: int = 0

    @property
    def discrete(self) -> bool:
        return isinstance(self.action_space, gym.spaces.Discrete)

    @property
    def n_actions(self) -> int:
        return int(self.action_space.n)

    @property
    def action_shape(self) -> tuple[int, ...]:
        return tuple(self.action_space.shape or ())


def registered_id(env_id: str) -> str:
    """The id under which gymnasium's registry holds `env_id`. An env of one's own is written
    `module:EnvId`, gymnasium's syntax: `module` is imported (it calls `gymnasium.register`), and
    EnvId is the id. The folder `train` was started in is searched too, as `python -m` and
    `python script.py` do (a console script's import path does not hold it)."""
    module, colon, name = env_id.partition(":")
    if colon:
        import_user_module(module, "env.id", env_id, "<module>:<registered id>, gymnasium's syntax")
        return name
    return env_id


def entry_module(spec: gym.envs.registration.EnvSpec) -> str:
    """The module of a registered env's entry point (written "module:Class", or the class itself)."""
    entry = spec.entry_point
    return entry.partition(":")[0] if isinstance(entry, str) else str(getattr(entry, "__module__", ""))


def _check_gym_id(env_id: str) -> None:
    module, colon, _ = env_id.partition(":")
    written = env_id
    env_id = registered_id(env_id)
    # ALE and MinAtar games are registered and preprocessed by their own env configs, not env=gym.
    namespace, _, name = env_id.partition("/")
    if name and namespace == "ALE":
        raise ConfigError("env.id", f"{env_id} is an ALE game, built with the DQN-paper preprocessing by env=atari; "
                                    f"use {game_config('atari', name.split('-v')[0])}")
    if name and namespace == "MinAtar":
        game, _, version = name.rpartition("-v")
        also = "" if version == "0" else f" env.id={env_id}"  # the named configs take v0
        raise ConfigError("env.id", f"{env_id} is a MinAtar game, built by env=minatar; use "
                                    f"{game_config('minatar', game, also)}")
    if not namespace or not name:
        legacy = legacy_ale_game(env_id)
        if legacy is not None:
            game, sticky = legacy
            match = "" if sticky else "; its actions were not sticky: add env.repeat_action_probability=0 to match"
            raise ConfigError("env.id", f"{env_id} is an ALE game (an id of the older ALE versions), built with the "
                                        f"DQN-paper preprocessing by env=atari; use {game_config('atari', game)}{match}")
    try:
        gym.spec(env_id)
    except gym.error.Error as e:  # NameNotFound, VersionNotFound, NamespaceNotFound, DeprecatedEnv, ...
        first_line = str(e).strip().splitlines()[0]
        if colon:
            ids = sorted(key for key, spec in gym.registry.items() if entry_module(spec) == module)
            instead = nearest(env_id, ids, cutoff=0.8)
            fix = (f"did you mean env.id={module}:{instead}?" if instead else
                   "it registers " + ", ".join(f"env.id={module}:{i}" for i in ids) if ids else f"{module} registers no env: call gymnasium.register")
            raise ConfigError("env.id", f"{module} was imported but gymnasium does not know '{env_id}' "
                                        f"({first_line}); {fix}") from None
        instead = registered_like(env_id, first_line)
        fix = f"did you mean env.id={instead}?" if instead else "pick a registered id, e.g. env=gym env.id=CartPole-v1"
        raise ConfigError("env.id", f"gymnasium does not know '{written}' ({first_line}); {fix}") from None


def game_config(kind: str, game: str, also: str = "") -> str:
    """How to ask for an ALE or MinAtar game: its named env config (env=pong, env=minatar_seaquest,
    with its tuned presets) when it has one, else the generic config with env.game."""
    own = named_env_config("game", game, kind)
    generic = f"env={kind} env.game={game}{also}"
    return f"env={own}{also} (its own config; or {generic})" if own else generic


def legacy_ale_game(env_id: str) -> tuple[str, bool] | None:
    """(game, sticky actions) for an id of the older ALE versions (`BreakoutNoFrameskip-v4`, as
    SB3's and CleanRL's Atari scripts write it, `Pong-v0`, `SeaquestDeterministic-v4`), else None."""
    import re

    if env_id in gym.registry and not str(gym.registry[env_id].entry_point).startswith("ale_py"):
        return None  # gymnasium's own (CartPole-v1): no need to import the ALE
    import ale_py

    gym.register_envs(ale_py)
    spec = gym.registry.get(env_id)
    if spec is None or not str(spec.entry_point).startswith("ale_py"):
        return None
    game = re.sub(r"(NoFrameskip|Deterministic)$", "", spec.name)
    return game, float(spec.kwargs.get("repeat_action_probability", 0.0)) > 0


def registered_like(env_id: str, message: str) -> str | None:
    """The registered id meant by an unknown one: the one gymnasium's message advises (a deprecated
    version), the newest version of the same name in another case or version, or a close spelling."""
    import re

    advised = re.search(r"Please use `([^`]+)` instead", message)
    if advised and advised.group(1) in gym.registry:
        return advised.group(1)

    def name(key: str) -> str:
        return key.rsplit("-v", 1)[0].lower()

    def version(key: str) -> int:
        tail = key.rsplit("-v", 1)[-1]
        return int(tail) if tail.isdigit() else -1

    ids = [key for key in gym.registry if not key.startswith(("ALE/", "MinAtar/"))]
    same = [key for key in ids if name(key) == name(env_id)]
    if same:
        return max(same, key=version)
    return nearest(env_id, ids, cutoff=0.8)


def _gym_thunk(env_cfg, render_mode=None):
    kwargs = dict(env_cfg.get("kwargs") or {})
    if env_cfg.get("max_episode_steps"):
        kwargs["max_episode_steps"] = int(env_cfg.max_episode_steps)
    if render_mode is not None:
        kwargs["render_mode"] = render_mode

    mujoco = str(gym.spec(registered_id(env_cfg.id)).entry_point).startswith("gymnasium.envs.mujoco")

    def thunk():
        if mujoco:  # in the process that makes the env: async workers too
            from deeprl.envs import mujoco_warnings

            mujoco_warnings.route()
        env = gym.make(env_cfg.id, **kwargs)
        if env_cfg.get("channels_first", True) and ChannelsFirst.wanted(env.observation_space):
            stack = int(env_cfg.get("frame_stack") or 1)
            if stack > 1:  # (stack, H, W, C) -> (stack * C, H, W): each frame's channels together
                from deeprl.envs.atari import FrameStackObservation, StackChannels

                env = StackChannels(FrameStackObservation(env, stack))
                env.metadata = {**env.metadata, "frame_stack": stack}  # checks.check_frame_stack
            else:
                env = ChannelsFirst(env)
        # Toy-text envs (FrozenLake, Taxi, ...) observe a state index; networks need a vector.
        return OneHotObservation(env) if env_cfg.get("one_hot") else env

    return thunk


class ChannelsFirst(gym.ObservationWrapper):
    """Images observed height x width x channels (uint8, gymnasium's convention: CarRacing's 96x96x3)
    as channels x height x width, the layout deeprl's CNNs take (SB3's VecTransposeImage does the
    same). `env.channels_first: false` hands them on as the env gives them (a torso of one's own)."""

    @staticmethod
    def wanted(space: gym.Space) -> bool:
        """A uint8 image whose last axis is a few channels (1, 3 or 4) and the smallest."""
        return (isinstance(space, gym.spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3
                and space.shape[-1] in (1, 3, 4) and space.shape[-1] < min(space.shape[:2]))

    def __init__(self, env: gym.Env):
        super().__init__(env)
        space = env.observation_space
        self.observation_space = gym.spaces.Box(np.transpose(space.low, (2, 0, 1)), np.transpose(space.high, (2, 0, 1)),
                                                dtype=space.dtype)

    def observation(self, observation):
        return np.transpose(observation, (2, 0, 1))


def _thunk(env_cfg, training: bool, render_mode=None):
    # `training` is for kinds whose learning-time wrappers (reward clipping, life loss) differ from
    # evaluation; plain gymnasium tasks are the same either way.
    kind = env_cfg.get("kind", "gym")
    if kind == "gym":
        _check_gym_id(env_cfg.id)
        return _gym_thunk(env_cfg, render_mode)
    if kind == "gridworld":
        from deeprl.envs.gridworld import gridworld_thunk

        return gridworld_thunk(env_cfg, render_mode)
    if kind == "atari":
        from deeprl.envs.atari import atari_thunk

        return atari_thunk(env_cfg, training, render_mode)
    if kind == "minatar":
        from deeprl.envs.minatar import minatar_thunk

        return minatar_thunk(env_cfg, render_mode)
    raise ConfigError("env.kind", f"unknown env kind '{kind}'; use gym, gridworld, atari or minatar")


VECTORIZATIONS = ("sync", "async")


def make_vec_env(env_cfg, num_envs: int, seed: int, *, training: bool = True) -> gym.vector.VectorEnv:
    """`num_envs` copies of the task in one vector env: in this process (`env.vectorization: sync`,
    the default; a single env steps through OneEnvVector, a SyncVectorEnv without its per-step
    overhead) or one worker process per env (`async`, gymnasium's AsyncVectorEnv).

    Autoreset happens in the same step: when an episode ends, `obs` is already the first
    observation of the next episode and the true last observation is in info["final_obs"].
    That keeps every step a valid transition (no dummy reset step to skip).
    Seeds reach the envs at the first `reset(seed=...)`; the action space is seeded here.
    Both kinds give the same transitions for the same seeds; `async` pays a round trip between
    processes per step and wins when one env step costs more than that and cores are free
    (docs/atari.md).
    """
    thunk = _thunk(env_cfg, training)
    vectorization = str(env_cfg.get("vectorization", "sync"))
    if vectorization not in VECTORIZATIONS:
        raise ConfigError("env.vectorization", f"unknown vectorization '{vectorization}'; use sync or async")
    try:
        if vectorization == "async":
            envs = gym.vector.AsyncVectorEnv([in_worker(thunk)] * num_envs, autoreset_mode=AutoresetMode.SAME_STEP,
                                             context=WORKER_START)
        elif num_envs == 1:  # the usual case, stepped without SyncVectorEnv's per-step overhead
            envs = OneEnvVector(thunk, autoreset_mode=AutoresetMode.SAME_STEP)
        else:
            envs = gym.vector.SyncVectorEnv([thunk] * num_envs, autoreset_mode=AutoresetMode.SAME_STEP)
    except (TypeError, ValueError, KeyError, AssertionError, ImportError, gym.error.Error) as e:
        if isinstance(e, ConfigError):
            raise
        detail = (str(e).strip().splitlines() or [""])[0]
        if isinstance(e, (ImportError, gym.error.DependencyNotInstalled)):  # e.g. MuJoCo's v2/v3 versions
            newest = registered_like(env_cfg.id.rsplit("-v", 1)[0], "")
            fix = (f"use env.id={newest}" if newest and newest != env_cfg.id
                   else "install what it needs, or pick another env")
            raise ConfigError("env.id", f"{env_cfg.id} cannot be made here ({detail}); {fix}") from None
        kwargs = env_cfg.get("kwargs")
        if not kwargs:
            raise
        # gymnasium.make hands env.kwargs to the env's constructor, which rejects what it cannot use
        # (TypeError for an unknown one; ValueError or an assertion for a value out of range).
        kwargs = OmegaConf.to_container(kwargs) if OmegaConf.is_config(kwargs) else kwargs
        raise ConfigError("env.kwargs", f"{env_cfg.id} rejected env.kwargs={kwargs} ({type(e).__name__}: "
                                        f"{detail}); fix or remove the argument") from None
    envs.action_space.seed(seed)
    return envs


# How worker processes start: a fork of this process (fast, shares the imports); see docs/atari.md.
WORKER_START = "fork"
# Signals a worker ignores: the run's own handlers (in the main process) stop the run after its
# step and close the workers; a Ctrl-C reaching the whole process group must not kill them first.
WORKER_IGNORES = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)


def in_worker(thunk):
    """`thunk` for an AsyncVectorEnv worker: the env wrapped so its state can be saved from the main
    process (deeprl.envs.state.StateCapture), and the run's stop signals ignored in the worker.
    AsyncVectorEnv also calls it once in this process (for the spaces), where signals stay as set."""
    from deeprl.envs.state import StateCapture

    creator = os.getpid()

    def worker_thunk():
        if os.getpid() != creator:
            for signum in WORKER_IGNORES:
                signal.signal(signum, signal.SIG_IGN)
        return StateCapture(thunk())

    return worker_thunk


def spec_of(envs: gym.vector.VectorEnv, env_id: str) -> EnvSpec:
    obs_space = envs.single_observation_space
    if not isinstance(obs_space, (gym.spaces.Box, gym.spaces.Discrete)):
        raise ConfigError("env.id", f"{env_id} observes a {type(obs_space).__name__} space; deeprl's agents take "
                                    "Box (arrays) or Discrete (a state index) observations; pick another env, or make one of "
                                    "your own that flattens them (gymnasium.wrappers.FlattenObservation around it in "
                                    "the entry point it registers)")
    return EnvSpec(
        id=env_id,
        obs_shape=tuple(obs_space.shape),
        obs_dtype=np.dtype(obs_space.dtype),
        action_space=envs.single_action_space,
        n_states=int(obs_space.n) if isinstance(obs_space, gym.spaces.Discrete) else 0,
    )
