"""`env.vectorization: sync | async` on real envs: the async vector env (one worker process per
env) gives the same transitions, autoresets and full-game statistics as the sync one for the same
seeds, and its state saves and restores across the two kinds."""

import os
import signal
import time

import gymnasium as gym
import numpy as np
import pytest

from conftest import compose_config
from deeprl.envs import make_vec_env
from deeprl.envs import state as env_state
from deeprl.envs.episodes import EpisodeTracker

ENVS = {  # env overrides, number of random steps (enough for several episodes to end)
    "cartpole": (["env=cartpole", "+env.vectorization=sync"], 200),
    "minatar_breakout": (["env=minatar_breakout"], 300),
    "breakout": (["env=breakout"], 400),  # life losses, FIRE after reset, full-game stats
}


def vec_env(name: str, vectorization: str, num_envs: int = 3):
    overrides, _ = ENVS[name]
    cfg = compose_config(*overrides, f"env.vectorization={vectorization}")
    return make_vec_env(cfg.env, num_envs, seed=7)


def rollout(envs, steps: int, seed: int = 0, reset: bool = True) -> list:
    """Everything the loops read from `steps` random steps: observations, rewards, dones, the true
    last observations of finished episodes and the finished games' scores."""
    rng = np.random.default_rng(seed)
    record = [envs.reset(seed=7)[0]] if reset else []
    tracker = EpisodeTracker.for_envs(envs)
    for _ in range(steps):
        actions = rng.integers(envs.single_action_space.n, size=envs.num_envs)
        obs, rewards, terminated, truncated, infos = envs.step(actions)
        record += [obs, rewards, terminated, truncated]
        if "final_obs" in infos:
            record += [infos["_final_obs"], *[o for o in infos["final_obs"] if o is not None]]
        record += tracker.step_envs(rewards, terminated | truncated, infos)
    return record


def same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("name", list(ENVS))
def test_async_gives_the_same_transitions_as_sync(name):
    _, steps = ENVS[name]
    sync, asynchronous = vec_env(name, "sync"), vec_env(name, "async")
    try:
        assert isinstance(sync, gym.vector.SyncVectorEnv) and isinstance(asynchronous, gym.vector.AsyncVectorEnv)
        assert asynchronous.metadata.get("full_game_stats") == sync.metadata.get("full_game_stats")
        a, b = rollout(sync, steps), rollout(asynchronous, steps)
        assert any(isinstance(x, tuple) for x in a), "no episode ended: lengthen the rollout"
        assert same(a, b)
    finally:
        sync.close(), asynchronous.close()


@pytest.mark.parametrize("name", ["minatar_breakout", "breakout"])
@pytest.mark.parametrize(("first", "then"), [("async", "sync"), ("sync", "async"), ("async", "async")])
def test_saved_env_state_restores_into_either_kind(name, first, then):
    """The envs' state is captured in the workers and continues exactly in a fresh vector env of
    either kind, through life losses, game overs and resets: MinAtar's by pickling, the ALE's by its
    emulator state (sticky actions' generator included) under deeprl's pickled wrappers. The
    random generator of the action space comes back too."""
    source, target = vec_env(name, first), vec_env(name, then)
    try:
        rollout(source, 50)
        state = env_state.capture(source)
        assert state is not None
        reference = rollout(source, 350, seed=1, reset=False) + [source.action_space.sample()]
        assert any(isinstance(x, tuple) for x in reference), "no episode ended: lengthen the rollout"
        target.reset(seed=123)  # some other episode, replaced by the restore
        env_state.restore(target, state)
        assert same(rollout(target, 350, seed=1, reset=False) + [target.action_space.sample()], reference)
    finally:
        source.close(), target.close()


def test_workers_ignore_the_stop_signals_and_exit_with_close():
    """A Ctrl-C reaches the whole process group: the workers must leave it to the run (which
    finishes its step, checkpoints and closes them)."""
    # Python's own handlers in this process, whatever an earlier test in this worker left behind.
    before = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
    previous = {signum: signal.signal(signum, handler) for signum, handler in before.items()}
    envs = vec_env("minatar_breakout", "async", num_envs=2)
    try:
        envs.reset(seed=0)
        pids = [process.pid for process in envs.processes]
        for pid in pids:
            os.kill(pid, signal.SIGINT)
            os.kill(pid, signal.SIGTERM)
        time.sleep(0.2)
        assert all(process.is_alive() for process in envs.processes)
        envs.step(np.zeros(2, dtype=np.int64))
        assert {signum: signal.getsignal(signum) for signum in before} == before  # this process keeps its own
    finally:
        envs.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    assert not any(process.is_alive() for process in envs.processes)


def same_infos(a: dict, b: dict, path: str = "") -> bool:
    """Equal info dicts: the same keys, nested dicts equal, arrays of the same dtype and values
    (object arrays element by element: final observations, None where an env had none). The
    values of episode.t, the wall-clock seconds RecordEpisodeStatistics reports, are not compared."""
    if a.keys() != b.keys():
        return False
    for key, x in a.items():
        y = b[key]
        if isinstance(x, dict):
            if not (isinstance(y, dict) and same_infos(x, y, f"{path}{key}.")):
                return False
        elif path.endswith("episode.") and key == "t":
            if x.dtype != y.dtype or x.shape != y.shape:
                return False
        elif x.dtype != y.dtype or x.shape != y.shape:
            return False
        elif x.dtype == object:
            if not all((u is None and v is None) or np.array_equal(u, v) for u, v in zip(x, y, strict=True)):
                return False
        elif not np.array_equal(x, y):
            return False
    return True


# Every kind of env deeprl makes, with its step infos: toy text (a transition probability, Taxi's
# action mask), one-hot observations, gridworlds, classic control cut by a short time limit,
# continuous actions, MinAtar, and Atari with life losses and full-game statistics.
ONE_ENV = {
    "frozenlake": (["env=frozenlake8x8"], 400),
    "taxi": (["env=taxi"], 400),
    "frozenlake_one_hot": (["env=frozenlake", "env.one_hot=true"], 300),
    "gridworld": (["env=gridworld_4x3"], 300),
    "cliffwalking": (["env=cliffwalking", "env.max_episode_steps=50"], 300),
    "cartpole_truncated": (["env=cartpole", "env.max_episode_steps=15"], 300),
    "pendulum": (["env=pendulum", "env.max_episode_steps=40"], 200),
    "minatar_breakout": (["env=minatar_breakout"], 300),
    "breakout": (["env=breakout"], 400),
}


@pytest.mark.parametrize("name", list(ONE_ENV))
def test_one_env_steps_exactly_as_sync_vector_env(name):
    """A run of one env steps through OneEnvVector, which skips SyncVectorEnv's per-step overhead:
    every step's observations, rewards, dones and infos are the same, dtypes included."""
    from deeprl.envs.make import _thunk
    from deeprl.envs.one_env import OneEnvVector

    overrides, steps = ONE_ENV[name]
    cfg = compose_config(*overrides)
    fast = make_vec_env(cfg.env, 1, seed=7)
    reference = gym.vector.SyncVectorEnv([_thunk(cfg.env, True)], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    try:
        assert type(fast) is OneEnvVector and fast._fast
        (obs_a, info_a), (obs_b, info_b) = fast.reset(seed=3), reference.reset(seed=3)
        assert np.array_equal(obs_a, obs_b) and obs_a.dtype == obs_b.dtype and same_infos(info_a, info_b)
        space = fast.single_action_space
        space.seed(11)
        ended = 0
        for _ in range(steps):
            actions = np.array([space.sample()])
            a, b = fast.step(actions), reference.step(actions.copy())
            for x, y in zip(a[:4], b[:4], strict=True):
                assert x.dtype == y.dtype and np.array_equal(x, y)
            assert same_infos(a[4], b[4])
            assert a[0] is not fast._observations  # a copy, as SyncVectorEnv returns
            ended += bool(a[2][0] or a[3][0])
        assert ended >= 2, "fewer than two episodes ended: lengthen the rollout"
    finally:
        fast.close(), reference.close()


@pytest.mark.parametrize("channels_first", [True, False])
def test_channel_last_images_of_a_gym_env_reach_the_networks_channels_first(channels_first):
    """CarRacing-v3 observes 96x96x3 uint8 screens; env=gym hands them on as 3x96x96 (what the CNNs
    take), the same pixels, unless env.channels_first=false."""
    cfg = compose_config("env=gym", "env.id=CarRacing-v3", "+env.kwargs.continuous=false",
                         f"env.channels_first={str(channels_first).lower()}")
    envs = make_vec_env(cfg.env, 1, seed=3)
    plain = gym.make("CarRacing-v3", continuous=False)
    try:
        obs, _ = envs.reset(seed=3)
        raw, _ = plain.reset(seed=3)
        shape = (3, 96, 96) if channels_first else (96, 96, 3)
        assert envs.single_observation_space.shape == shape and envs.single_observation_space.dtype == np.uint8
        for action in (3, 3, 1, 0):
            expected = np.transpose(raw, (2, 0, 1)) if channels_first else raw
            np.testing.assert_array_equal(obs[0], expected)
            obs = envs.step(np.array([action]))[0]
            raw = plain.step(action)[0]
    finally:
        envs.close()
        plain.close()


@pytest.mark.parametrize("vectorization", ["sync", "async"])
def test_a_gym_image_env_observes_its_last_frames_stacked_along_the_channels(vectorization):
    """env.frame_stack=3 on CarRacing: (9, 96, 96), the newest frame's channels last, each frame
    the env's screen channels first; a new episode starts as copies of its first frame. Against
    gymnasium's CarRacing stepped alongside, through an ended episode (max_episode_steps=4)."""
    cfg = compose_config("env=gym", "env.id=CarRacing-v3", "+env.kwargs.continuous=false", "env.frame_stack=3",
                         "env.max_episode_steps=4", f"+env.vectorization={vectorization}")
    envs = make_vec_env(cfg.env, 1, seed=3)
    plain = gym.make("CarRacing-v3", continuous=False, max_episode_steps=4)
    try:
        assert envs.single_observation_space.shape == (9, 96, 96)
        assert envs.single_observation_space.dtype == np.uint8 and envs.metadata["frame_stack"] == 3
        obs, _ = envs.reset(seed=3)
        frames = [np.transpose(plain.reset(seed=3)[0], (2, 0, 1))] * 3
        for t, action in enumerate((3, 3, 1, 0, 2, 3)):
            np.testing.assert_array_equal(obs[0], np.concatenate(frames), err_msg=f"step {t}")
            obs, _, terminated, truncated, infos = envs.step(np.array([action]))
            raw, _, ended, cut, _ = plain.step(action)
            frames = frames[1:] + [np.transpose(raw, (2, 0, 1))]
            if ended or cut:  # same-step autoreset: the final stack in the infos, a new episode in obs
                assert truncated[0] or terminated[0]
                np.testing.assert_array_equal(infos["final_obs"][0], np.concatenate(frames))
                frames = [np.transpose(plain.reset()[0], (2, 0, 1))] * 3
        assert t == 5
    finally:
        envs.close()
        plain.close()


def test_only_channel_last_uint8_images_are_turned():
    from deeprl.envs.make import ChannelsFirst

    def box(shape, dtype=np.uint8):
        return gym.spaces.Box(0, 255, shape, dtype)

    assert ChannelsFirst.wanted(box((96, 96, 3))) and ChannelsFirst.wanted(box((64, 48, 1)))
    assert ChannelsFirst.wanted(box((84, 84, 4)))
    assert not ChannelsFirst.wanted(box((4, 84, 84)))  # already channels first (a frame stack)
    assert not ChannelsFirst.wanted(box((84, 84)))  # one gray frame: no channel axis to move
    assert not ChannelsFirst.wanted(box((10, 10, 6)))  # MinAtar-like maps of 6 channels: not an image
    assert not ChannelsFirst.wanted(box((96, 96, 3), np.float32))
    assert not ChannelsFirst.wanted(gym.spaces.Discrete(5))


def flat_blackjack(**kwargs):
    """Blackjack's tuple observation flattened by gymnasium's wrapper, which holds a lambda."""
    return gym.wrappers.FlattenObservation(gym.make("Blackjack-v1", **kwargs))


@pytest.mark.parametrize("vectorization", ["sync", "async"])
def test_envs_whose_wrappers_do_not_pickle_are_not_saved_and_step_on(vectorization):
    """Blackjack is toy text (its state pickles), but not through FlattenObservation: the run's
    checkpoint then holds no env state (a resumed run starts new episodes, as for Box2D) instead of
    failing, and async workers live on."""
    if "FlatBlackjackTest-v0" not in gym.registry:
        gym.register("FlatBlackjackTest-v0", entry_point=flat_blackjack, max_episode_steps=20)
    cfg = compose_config("env=gym", "env.id=FlatBlackjackTest-v0", f"+env.vectorization={vectorization}")
    envs = make_vec_env(cfg.env, 2, seed=1)
    try:
        envs.reset(seed=1)
        assert env_state.capturable(envs)  # by its module: toy text
        assert env_state.capture(envs) is None
        obs = envs.step(np.array([0, 1]))[0]
        assert obs.shape == (2, 45)  # 32 + 11 + 2, one-hot
    finally:
        envs.close()
