"""Saving and restoring the state of a run's vector env, for exact resume.

Each sub-env is pickled whole, wrappers, time-limit counters and random generators included (in
its worker process when the vector env is async, see StateCapture), by `dump_env`:
- Pure-Python envs (gymnasium's classic control and toy text, deeprl's gridworlds, MinAtar) keep
  all their state in Python/numpy attributes and pickle as they are.
- MuJoCo and ALE envs pickle through EzPickle, which re-creates a fresh env from the constructor
  arguments; `dump_env` adds what the fresh one lacks: the simulator's whole MjData (copied into
  the fresh env's with `mj_copyData`) or the emulator's state with its random generator
  (`cloneState(include_rng=True)`), and the env's own generator.
  deeprl's Atari wrappers pickle without their handle on the emulator and take the new env's.
- Box2D (LunarLander, BipedalWalker, CarRacing) keeps its world in native objects with no state
  API: `capture` returns None and a resumed run starts new episodes in every env instead, which
  the run reports on the console and in summary.json. So does an env of one's own (its module is
  not known to keep its state in attributes), and any env whose wrapper stack does not pickle.
"""

import pickle

import gymnasium as gym
from gymnasium.utils import EzPickle

# Modules whose envs keep all their state in plain Python/numpy attributes (MinAtar's games too).
CAPTURABLE = ("gymnasium.envs.classic_control.", "gymnasium.envs.toy_text.", "deeprl.envs.gridworld",
              "minatar.gym")


def native_kind(inner: gym.Env) -> str | None:
    """'mujoco' or 'ale' for the natively simulated envs whose state we can read and write, else None."""
    module = type(inner).__module__
    if module.startswith("gymnasium.envs.mujoco."):
        from gymnasium.envs.mujoco.mujoco_env import MujocoEnv

        return "mujoco" if isinstance(inner, MujocoEnv) else None
    if module.startswith("ale_py."):
        from ale_py.env import AtariEnv

        return "ale" if isinstance(inner, AtariEnv) else None
    return None


def _capturable_env(env: gym.Env) -> bool:
    inner = env.unwrapped
    if native_kind(inner) is not None:
        return True
    return not isinstance(inner, EzPickle) and type(inner).__module__.startswith(CAPTURABLE)


def _native_state(inner: gym.Env):
    """What EzPickle's fresh env would lack: (kind, simulator or emulator state, the env's generator)."""
    kind = native_kind(inner)
    if kind is None:
        return None
    # The whole MjData, not only mj_getState's integration state: some envs read quantities the
    # last step derived (Ant reads its torso's xpos before stepping, as the previous mj_step left it).
    sim = inner.data if kind == "mujoco" else inner.ale.cloneState(include_rng=True)
    return kind, sim, inner._np_random, inner._np_random_seed


def _set_native_state(inner: gym.Env, state) -> None:
    kind, sim, inner._np_random, inner._np_random_seed = state
    if kind == "mujoco":
        import mujoco

        mujoco.mj_copyData(inner.data, inner.model, sim)  # into the env's own MjData (its renderer holds it)
    else:
        inner.ale.restoreState(sim)


def dump_env(env: gym.Env) -> bytes | None:
    """One env's whole state: the wrapper stack pickled, plus a native env's own state. None for a
    stack that does not pickle (gymnasium's FlattenObservation holds a lambda; an env of one's own
    may hold anything): the run then goes on as for an env that cannot be saved."""
    try:
        return pickle.dumps((env, _native_state(env.unwrapped)))
    except (pickle.PicklingError, AttributeError, TypeError):
        return None


def load_env(data: bytes) -> gym.Env:
    loaded = pickle.loads(data)
    # Checkpoints written before native envs were captured hold the pickled env alone.
    env, native = loaded if isinstance(loaded, tuple) else (loaded, None)
    if native is not None:
        _set_native_state(env.unwrapped, native)
    return env


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

    def saved_state(self) -> bytes | None:
        return dump_env(self.env)  # None rather than an error: an error ends gymnasium's worker

    def load_pending_state(self) -> None:
        self.env.close()
        self.env, self.pending_state = load_env(self.pending_state), None


def capture(envs: gym.vector.VectorEnv) -> bytes | None:
    """The sub-envs of the vector env, pickled one by one, or None where that would not be exact.
    The same state restores into either kind of vector env (sync or async)."""
    if not capturable(envs):
        return None
    if isinstance(envs, gym.vector.AsyncVectorEnv):
        states = list(envs.call("saved_state"))
    else:
        states = [dump_env(env) for env in envs.envs]
    if any(state is None for state in states):
        return None
    return pickle.dumps((states, envs.action_space))


def restore(envs: gym.vector.VectorEnv, state: bytes) -> None:
    """Put captured sub-envs (and the action space's generator) back into `envs`."""
    sub_envs, action_space = pickle.loads(state)
    if len(sub_envs) != envs.num_envs:
        raise ValueError(f"checkpoint holds {len(sub_envs)} envs, the run has {envs.num_envs}")
    # Checkpoints written before envs were pickled one by one hold the env objects themselves.
    states = [env if isinstance(env, bytes) else dump_env(env) for env in sub_envs]
    if isinstance(envs, gym.vector.AsyncVectorEnv):
        envs.set_attr("pending_state", states)
        envs.call("load_pending_state")
    else:
        for env in envs.envs:
            env.close()
        envs.envs = [load_env(env) for env in states]
    envs.action_space = action_space
