"""Saving and restoring the state of a run's vector env, for exact resume.

Pure-Python envs (gymnasium's classic control and toy text, deeprl's gridworlds, MinAtar) are
captured whole, wrappers, time-limit counters and random generators included, by pickling each
sub-env (in its worker process when the vector env is async, see StateCapture).
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


def _capturable_env(env: gym.Env) -> bool:
    inner = env.unwrapped
    return not isinstance(inner, EzPickle) and type(inner).__module__.startswith(CAPTURABLE)


def capturable(envs: gym.vector.VectorEnv) -> bool:
    if isinstance(envs, gym.vector.AsyncVectorEnv):
        return all(envs.call("capturable"))
    envs_list = getattr(envs, "envs", None)
    return bool(envs_list) and all(_capturable_env(env) for env in envs_list)


class StateCapture(gym.Wrapper):
    """The outermost wrapper of each env in an AsyncVectorEnv worker: the main process saves the
    env's state with `envs.call("saved_state")` and puts states back with
    `envs.set_attr("pending_state", states)` then `envs.call("load_pending_state")`, one pickled
    env stack per worker."""

    pending_state: bytes | None = None

    def capturable(self) -> bool:
        return _capturable_env(self.env)

    def saved_state(self) -> bytes:
        return pickle.dumps(self.env)

    def load_pending_state(self) -> None:
        self.env.close()
        self.env, self.pending_state = pickle.loads(self.pending_state), None


def capture(envs: gym.vector.VectorEnv) -> bytes | None:
    """The sub-envs of the vector env, pickled one by one, or None where that would not be exact.
    The same state restores into either kind of vector env (sync or async)."""
    if not capturable(envs):
        return None
    if isinstance(envs, gym.vector.AsyncVectorEnv):
        states = list(envs.call("saved_state"))
    else:
        states = [pickle.dumps(env) for env in envs.envs]
    return pickle.dumps((states, envs.action_space))


def restore(envs: gym.vector.VectorEnv, state: bytes) -> None:
    """Put captured sub-envs (and the action space's generator) back into `envs`."""
    sub_envs, action_space = pickle.loads(state)
    if len(sub_envs) != envs.num_envs:
        raise ValueError(f"checkpoint holds {len(sub_envs)} envs, the run has {envs.num_envs}")
    # Checkpoints written before envs were pickled one by one hold the env objects themselves.
    states = [env if isinstance(env, bytes) else pickle.dumps(env) for env in sub_envs]
    if isinstance(envs, gym.vector.AsyncVectorEnv):
        envs.set_attr("pending_state", states)
        envs.call("load_pending_state")
    else:
        for env in envs.envs:
            env.close()
        envs.envs = [pickle.loads(env) for env in states]
    envs.action_space = action_space
