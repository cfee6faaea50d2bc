"""Saving and restoring the state of a run's vector env, for exact resume.

Pure-Python envs (gymnasium's classic control and toy text, deeprl's gridworlds, MinAtar) are
captured whole, wrappers, time-limit counters and random generators included, by pickling each
sub-env.
Other envs cannot be captured that way: Box2D worlds and the ALE emulator are native objects
(LunarLander's pickle re-creates a fresh env from its arguments; the ALE's does not pickle). For
those `capture` returns None and a resumed run starts new episodes in every env instead, which
the run reports on the console and in summary.json.
"""

import pickle

import gymnasium as gym
from gymnasium.utils import EzPickle

# Modules whose envs keep all their state in plain Python/numpy attributes (MinAtar's games too).
CAPTURABLE = ("gymnasium.envs.classic_control.", "gymnasium.envs.toy_text.", "deeprl.envs.gridworld",
              "minatar.gym")


def capturable(envs: gym.vector.VectorEnv) -> bool:
    envs_list = getattr(envs, "envs", None)
    if not envs_list:
        return False
    for env in envs_list:
        inner = env.unwrapped
        if isinstance(inner, EzPickle) or not type(inner).__module__.startswith(CAPTURABLE):
            return False
    return True


def capture(envs: gym.vector.VectorEnv) -> bytes | None:
    """The sub-envs of a synchronous vector env, pickled, or None where that would not be exact."""
    if not capturable(envs):
        return None
    return pickle.dumps((envs.envs, envs.action_space))


def restore(envs: gym.vector.VectorEnv, state: bytes) -> None:
    """Put captured sub-envs (and the action space's generator) back into `envs`."""
    sub_envs, action_space = pickle.loads(state)
    if len(sub_envs) != envs.num_envs:
        raise ValueError(f"checkpoint holds {len(sub_envs)} envs, the run has {envs.num_envs}")
    for env in envs.envs:
        env.close()
    envs.envs = list(sub_envs)
    envs.action_space = action_space
