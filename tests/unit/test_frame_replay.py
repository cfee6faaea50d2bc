"""The frame-dedup buffer returns exactly what a naive obs/next_obs store returns for the same slots."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deeprl.buffers import FrameReplayBuffer, PrioritizedReplay, ReplayBuffer
from deeprl.core.errors import ConfigError

CPU = torch.device("cpu")
FRAME = (2, 3)  # tiny frames keep the property test fast


class StackedStream:
    """Vector envs shaped like FrameStackObservation under same-step autoreset.

    Frames are random small-valued arrays (so equal frames happen by chance too); an episode starts
    with its first frame repeated k times; on done the stored s' is the episode's true last stack
    and the next obs is the new episode's first stack.
    """

    def __init__(self, num_envs, k, rng, p_term, p_trunc):
        self.n, self.k, self.rng = num_envs, k, rng
        self.p_term, self.p_trunc = p_term, p_trunc
        self.obs = np.stack([self._first() for _ in range(num_envs)])

    def _frame(self):
        return self.rng.integers(0, 3, size=(1, *FRAME), dtype=np.uint8)

    def _first(self):
        return np.repeat(self._frame(), self.k, axis=0)

    def step(self):
        obs = self.obs.copy()
        next_obs = np.concatenate([obs[:, 1:], np.stack([self._frame() for _ in range(self.n)])], axis=1)
        u = self.rng.random(self.n)
        terminated = u < self.p_term
        truncated = ~terminated & (u < self.p_term + self.p_trunc)
        self.obs = next_obs.copy()
        for e in np.flatnonzero(terminated | truncated):
            self.obs[e] = self._first()
        actions = self.rng.integers(0, 4, self.n)
        rewards = self.rng.normal(size=self.n).astype(np.float32)
        return obs, actions, rewards, next_obs, terminated, truncated


def assert_same(a, b, slots):
    ba, bb = a._batch(slots), b._batch(slots)
    for name in ("obs", "actions", "rewards", "next_obs", "discounts"):
        x, y = getattr(ba, name), getattr(bb, name)
        assert x.dtype == y.dtype and x.shape == y.shape, name
        assert torch.equal(x, y), name


def live_slots(buffer):
    return (buffer._first_slot() + np.arange(len(buffer))) % buffer.capacity


def fill_both(stream_steps, capacity, k, n_step, gamma=0.9, frame_capacity=None):
    naive = ReplayBuffer(capacity, (k, *FRAME), np.uint8, (), np.int64, gamma, CPU, n_step)
    dedup = FrameReplayBuffer(capacity, (k, *FRAME), np.uint8, (), np.int64, gamma, CPU, n_step,
                              frame_stack=k, frame_capacity=frame_capacity)
    for transition in stream_steps:
        naive.add(*transition)
        dedup.add(*transition)
    return naive, dedup


@settings(max_examples=60, deadline=None)
@given(num_envs=st.integers(1, 3), capacity=st.integers(4, 40), k=st.sampled_from([1, 2, 4]),
       steps=st.integers(1, 60), n_step=st.sampled_from([1, 3]), p_term=st.floats(0, 0.4),
       p_trunc=st.floats(0, 0.2), seed=st.integers(0, 2**16), tight=st.booleans())
def test_dedup_matches_naive_on_frame_stacks(num_envs, capacity, k, steps, n_step, p_term, p_trunc, seed, tight):
    stream = StackedStream(num_envs, k, np.random.default_rng(seed), p_term, p_trunc)
    # tight: a frame ring smaller than the transitions need, so the oldest ones are dropped early.
    frame_capacity = 2 * (k + 1) * num_envs + capacity // 4 if tight else None
    naive, dedup = fill_both((stream.step() for _ in range(steps)), capacity, k, n_step,
                             frame_capacity=frame_capacity)
    assert 0 < len(dedup) <= len(naive)
    assert_same(naive, dedup, live_slots(dedup))
    if tight:
        return
    assert len(dedup) == len(naive)
    # The same generator samples the same slots from both.
    a = naive.sample(16, np.random.default_rng(seed))
    b = dedup.sample(16, np.random.default_rng(seed))
    assert torch.equal(a.obs, b.obs) and torch.equal(a.next_obs, b.next_obs)


@settings(max_examples=25, deadline=None)
@given(num_envs=st.integers(1, 3), capacity=st.integers(4, 30), steps=st.integers(1, 40), seed=st.integers(0, 2**16))
def test_dedup_is_exact_for_observations_that_are_not_stacks(num_envs, capacity, steps, seed):
    rng = np.random.default_rng(seed)

    def transition():
        obs = rng.integers(0, 2, size=(num_envs, 4, *FRAME), dtype=np.uint8)
        next_obs = rng.integers(0, 2, size=(num_envs, 4, *FRAME), dtype=np.uint8)
        return (obs, rng.integers(0, 4, num_envs), rng.random(num_envs), next_obs,
                rng.random(num_envs) < 0.2, rng.random(num_envs) < 0.1)

    naive, dedup = fill_both((transition() for _ in range(steps)), capacity, 4, 1)
    assert_same(naive, dedup, live_slots(naive))


def test_each_frame_is_stored_once_along_an_episode():
    stream = StackedStream(2, 4, np.random.default_rng(0), p_term=0.0, p_trunc=0.0)
    _, dedup = fill_both((stream.step() for _ in range(50)), 100, 4, 1)
    # Per env: its first frame (the padding) once, then one new frame per step.
    assert dedup.frames_written == 2 * (1 + 50)


def test_frames_overwritten_early_drop_the_oldest_transitions_only():
    # A frame ring too small for the transition ring: very short episodes need more than one frame
    # per transition, so the oldest transitions go before the capacity is reached.
    stream = StackedStream(2, 4, np.random.default_rng(1), p_term=0.5, p_trunc=0.0)
    steps = [stream.step() for _ in range(200)]
    naive, dedup = fill_both(steps, 64, 4, 3, frame_capacity=80)
    assert 0 < len(dedup) < len(naive) == 64
    slots = live_slots(dedup)  # the newest len(dedup) transitions
    assert_same(naive, dedup, slots)
    batch = dedup.sample(256, np.random.default_rng(0))
    assert set(batch.rewards.numpy()) <= set(dedup._batch(slots).rewards.numpy())


def test_prioritized_dedup_never_samples_dropped_transitions():
    stream = StackedStream(2, 4, np.random.default_rng(2), p_term=0.5, p_trunc=0.0)
    naive = ReplayBuffer(64, (4, *FRAME), np.uint8, (), np.int64, 0.9, CPU)
    per = PrioritizedReplay(FrameReplayBuffer(64, (4, *FRAME), np.uint8, (), np.int64, 0.9, CPU,
                                              frame_stack=4, frame_capacity=80))
    for _ in range(200):
        transition = stream.step()
        naive.add(*transition)
        per.add(*transition)
    live = set(live_slots(per.buffer).tolist())
    assert len(live) < 64
    batch = per.sample(512, np.random.default_rng(0), beta=0.4)
    assert set(batch.indices.tolist()) <= live
    expected = naive._batch(batch.indices)
    assert torch.equal(batch.obs, expected.obs) and torch.equal(batch.next_obs, expected.next_obs)


def test_real_breakout_stream_is_reproduced_exactly():
    from conftest import compose_config
    from deeprl.envs import make_vec_env
    from deeprl.loops.off_policy import final_observations

    envs = make_vec_env(compose_config("env=breakout", "env.max_frames=600").env, 2, seed=0)
    obs, _ = envs.reset(seed=0)
    naive = ReplayBuffer(500, (4, 84, 84), np.uint8, (), np.int64, 0.99, CPU, n_step=3)
    dedup = FrameReplayBuffer(500, (4, 84, 84), np.uint8, (), np.int64, 0.99, CPU, n_step=3, frame_stack=4)
    rng = np.random.default_rng(0)
    dones_seen = 0
    for _ in range(300):
        actions = rng.integers(0, 4, 2)
        next_obs, rewards, terminated, truncated, infos = envs.step(actions)
        dones = terminated | truncated
        dones_seen += dones.sum()
        real_next = final_observations(next_obs, dones, infos)
        naive.add(obs, actions, rewards, real_next, terminated, truncated)
        dedup.add(obs, actions, rewards, real_next, terminated, truncated)
        obs = next_obs
    envs.close()
    assert dones_seen >= 3  # life losses and time limits happened inside the stream
    assert_same(naive, dedup, live_slots(naive))
    assert dedup.frames_written < 600 * 1.2  # about one frame per transition instead of eight


def test_one_million_breakout_transitions_fit_in_7_5_gb():
    nbytes = FrameReplayBuffer.nbytes_for(10**6, 10**6 + 10**6 // 32 + 1024, 4, (1, 84, 84), np.uint8,
                                          (), np.int64)
    assert nbytes <= 7.5e9
    naive = ReplayBuffer.nbytes_for(10**6, (4, 84, 84), np.uint8, (), np.int64)
    assert naive > 56e9


@pytest.mark.parametrize("cls", [ReplayBuffer, FrameReplayBuffer])
def test_a_buffer_larger_than_memory_fails_at_start_naming_the_key(cls):
    with pytest.raises(ConfigError, match=r"^algo\.buffer_size: .*GiB.*lower algo\.buffer_size"):
        cls(10**9, (4, 84, 84), np.uint8, (), np.int64, 0.99, CPU)
