"""State round trips behind exact resume: replay buffers (uniform, n-step, frame store,
prioritized), rollouts, the episode tracker, vector envs (pure Python and MuJoCo; the ALE's in
test_vector_envs.py); finding a run's latest checkpoint."""

import pickle

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode

from conftest import compose_config
from deeprl.buffers import make_replay
from deeprl.buffers.rollout import Rollout
from deeprl.core.checkpoint import latest, load, prune, save_atomic, step_files
from deeprl.envs import make_vec_env
from deeprl.envs import state as env_state

CPU = torch.device("cpu")


def fill(buffer, rng, start, n, num_envs, frames=False):
    for t in range(start, start + n):
        if frames:  # stacks of 4 frames that shift by one each step, as Atari's
            obs = np.stack([np.stack([np.full((6, 6), (t + j + e) % 251, np.uint8) for j in range(4)])
                            for e in range(num_envs)])
            next_obs = np.concatenate([obs[:, 1:], np.full((num_envs, 1, 6, 6), (t + 4) % 251, np.uint8)], axis=1)
        else:
            obs = rng.normal(size=(num_envs, 3)).astype(np.float32)
            next_obs = rng.normal(size=(num_envs, 3)).astype(np.float32)
        buffer.add(obs, rng.integers(0, 2, num_envs), rng.normal(size=num_envs).astype(np.float32), next_obs,
                   rng.random(num_envs) < 0.05, rng.random(num_envs) < 0.05)


def assert_equal_fields(a, b) -> None:
    """Two batches (named tuples of tensors and arrays, fields possibly None) are equal, bit for bit."""
    for x, y in zip(a, b, strict=True):
        if isinstance(x, torch.Tensor):
            assert torch.equal(x, y)
        elif x is not None:
            np.testing.assert_array_equal(x, y)


def same_batches(a, b, rng_seed=7, **kwargs):
    assert_equal_fields(a.sample(16, np.random.default_rng(rng_seed), **kwargs),
                        b.sample(16, np.random.default_rng(rng_seed), **kwargs))


@pytest.mark.parametrize("kind", ["uniform", "nstep", "prioritized", "frames", "frames_prioritized"])
@pytest.mark.parametrize("filled", [30, 200], ids=["part", "wrapped"])
def test_replay_round_trip_through_a_checkpoint_file(tmp_path, kind, filled):
    frames = kind.startswith("frames")
    shape, dtype = ((4, 6, 6), np.uint8) if frames else ((3,), np.float32)
    prioritized = kind.endswith("prioritized")

    def new():
        return make_replay(64, shape, dtype, (), np.int64, 0.9, CPU, n_step=3 if kind == "nstep" else 1,
                           frame_stack=4 if frames else 0, prioritized=prioritized)

    original, rng = new(), np.random.default_rng(0)
    fill(original, rng, 0, filled // 2, 2, frames)
    if prioritized:
        batch = original.sample(8, np.random.default_rng(1), beta=0.5)
        original.update_priorities(batch.indices, np.arange(8.0))
    save_atomic({"buffer": original.state_dict()}, tmp_path / "b.pt")
    restored = new()
    restored.load_state_dict(load(tmp_path / "b.pt", mmap=True)["buffer"])
    assert len(restored) == len(original)
    extra = {"beta": 0.5} if prioritized else {}
    same_batches(original, restored, **extra)
    # ...and both go on identically.
    fill(original, np.random.default_rng(5), filled, 20, 2, frames)
    fill(restored, np.random.default_rng(5), filled, 20, 2, frames)
    same_batches(original, restored, rng_seed=9, **extra)


def test_replay_refuses_a_checkpoint_of_another_size():
    a = make_replay(64, (3,), np.float32, (), np.int64, 0.9, CPU)
    b = make_replay(32, (3,), np.float32, (), np.int64, 0.9, CPU)
    with pytest.raises(ValueError, match="64 slots"):
        b.load_state_dict(a.state_dict())


def rollout_values(obs: torch.Tensor) -> torch.Tensor:
    return obs.sum(dim=1)


def rollout_log_probs(obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    return obs.mean(dim=1) - actions


def add_rollout_step(rollout: Rollout, t: int, keep: bool) -> None:
    """Step t of a 2-env rollout; `keep`: with the log-probabilities and values acting computed."""
    obs, actions = torch.full((2, 3), float(t)), torch.tensor([t % 2, 1])
    kept = dict(log_probs=rollout_log_probs(obs, actions), values=rollout_values(obs)) if keep else {}
    rollout.add(obs, actions, np.array([1.0, 2.0]), np.array([t == 2, False]), np.array([False, False]),
                {"final_obs": np.ones((2, 3)) * 9}, **kept)


def finished(rollout: Rollout):
    return rollout.finish(torch.ones(2, 3), rollout_log_probs, rollout_values)


@pytest.mark.parametrize("keep", [True, False], ids=["kept", "computed"])
def test_rollout_in_progress_round_trip(keep):
    rollout = Rollout(8)
    for t in range(5):
        add_rollout_step(rollout, t, keep)
    state = rollout.state_dict()
    copy = Rollout(8)
    copy.load_state_dict(state, CPU)
    assert len(copy) == 5
    for r in (rollout, copy):
        add_rollout_step(r, 5, keep)
    a, b = finished(rollout), finished(copy)
    assert_equal_fields(a, b)


def test_a_rollout_saved_before_acting_kept_its_values_resumes_by_computing_them():
    """A checkpoint from before the rollout kept log-probabilities and values per step (no "kept"
    entry): the resumed rollout computes them for every step in `finish`, as it used to."""
    old = Rollout(8)
    for t in range(3):
        add_rollout_step(old, t, keep=False)
    state = old.state_dict()
    del state["kept"]
    resumed, reference = Rollout(8), Rollout(8)
    resumed.load_state_dict(state, CPU)
    for t in range(6):
        if t >= 3:
            add_rollout_step(resumed, t, keep=True)  # the resumed run's acting passes them on
        add_rollout_step(reference, t, keep=False)
    assert_equal_fields(finished(resumed), finished(reference))


def cartpoles(n: int) -> gym.vector.SyncVectorEnv:
    return gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1")] * n, autoreset_mode=AutoresetMode.SAME_STEP)


def test_classic_control_envs_continue_exactly_after_restore():
    a, b = cartpoles(3), cartpoles(3)
    a.reset(seed=3)
    b.reset(seed=99)
    for _ in range(40):
        a.step(np.array([0, 1, 1]))
    saved = env_state.capture(a)
    assert saved is not None
    env_state.restore(b, saved)
    for t in range(300):  # through episode ends and autoresets (the envs' own generators)
        actions = np.array([t % 2, 1, 0])
        for x, y in zip(a.step(actions)[:4], b.step(actions)[:4], strict=True):
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize(("name", "first", "then"), [("hopper", "sync", "sync"), ("walker2d", "sync", "sync"),
                                                      ("halfcheetah", "sync", "sync"), ("ant", "sync", "sync"),
                                                      ("hopper", "async", "sync"), ("hopper", "sync", "async")])
def test_mujoco_envs_continue_exactly_after_restore(name, first, then):
    """The simulator's state travels with the pickled wrappers (the fresh model EzPickle builds gets
    the saved MjData and the env's generator), so the envs continue bit for bit through
    terminations, time limits and the resets after them (whose noise comes from that generator);
    saved in worker processes or in this one, restored into either."""
    def envs(vectorization: str, seed: int):
        cfg = compose_config(f"env={name}", "env.max_episode_steps=60", f"+env.vectorization={vectorization}")
        return make_vec_env(cfg.env, 2, seed=seed)

    a, b = envs(first, 1), envs(then, 2)
    try:
        a.reset(seed=3)
        b.reset(seed=99)
        for _ in range(40):
            a.step(a.action_space.sample())
        saved = env_state.capture(a)
        assert saved is not None
        env_state.restore(b, saved)
        ends = 0
        for _ in range(150):
            actions = a.action_space.sample()
            np.testing.assert_array_equal(actions, b.action_space.sample())  # the action space's generator
            step_a, step_b = a.step(actions), b.step(actions)
            for x, y in zip(step_a[:4], step_b[:4], strict=True):
                np.testing.assert_array_equal(x, y)
            ends += int(np.sum(step_a[2] | step_a[3]))
        assert ends >= 2, "no episode ended after the restore: lengthen the rollout"
    finally:
        a.close(), b.close()


def test_envs_saved_by_an_earlier_version_still_restore():
    """Checkpoints written before native envs were captured hold each env pickled alone."""
    a, b = cartpoles(2), cartpoles(2)
    a.reset(seed=3)
    b.reset(seed=4)
    env_state.restore(b, pickle.dumps(([pickle.dumps(env) for env in a.envs], a.action_space)))
    for t in range(100):
        actions = np.array([t % 2, 1])
        for x, y in zip(a.step(actions)[:4], b.step(actions)[:4], strict=True):
            np.testing.assert_array_equal(x, y)


def test_box2d_envs_are_not_captured():
    lander = gym.vector.SyncVectorEnv([lambda: gym.make("LunarLander-v3")], autoreset_mode=AutoresetMode.SAME_STEP)
    assert env_state.capture(lander) is None  # its pickle would re-create a fresh world, not this one


def test_latest_skips_unreadable_checkpoints_and_prune_keeps_the_newest(tmp_path, capsys):
    folder = tmp_path / "checkpoints"
    for step in (100, 200, 300):
        save_atomic({"step": step, "loop": {}}, folder / f"step_{step}.pt")
    save_atomic({"step": 250, "loop": {}}, folder / "final.pt")  # a run extended past its end
    path, state = latest(folder)
    assert path.name == "step_300.pt" and state["step"] == 300
    (folder / "step_300.pt").write_bytes((folder / "step_300.pt").read_bytes()[:40])
    path, state = latest(folder)
    assert path.name == "final.pt" and state["step"] == 250
    assert "skipping unreadable checkpoint" in capsys.readouterr().err
    save_atomic({"agent": {}}, folder / "final.pt")  # written before resume existed: no loop state
    path, _ = latest(folder)
    assert path.name == "step_200.pt"
    prune(folder, 1)
    assert [p.name for _, p in step_files(folder)] == ["step_300.pt"]
    (folder / "step_300.pt").unlink()
    (folder / "final.pt").unlink()
    assert latest(folder) is None
