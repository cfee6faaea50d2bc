"""Replay batches packed into one buffer for one host-to-device copy (deeprl.buffers.staging), and
prioritized replay's deferred priorities on a GPU. The packing itself runs on the CPU here; the
pinned-memory and CUDA paths run in the tests marked `cuda` (scripts/gpu_check.sh)."""

import numpy as np
import pytest
import torch

from deeprl.buffers import make_replay
from deeprl.buffers.staging import ALIGN, BatchStaging, layout


def arrays(rng, batch=32):
    return [rng.integers(0, 255, (batch, 4, 84, 84), dtype=np.uint8), rng.integers(0, 6, batch),
            rng.standard_normal(batch).astype(np.float32), rng.integers(0, 255, (batch, 4, 84, 84), dtype=np.uint8),
            rng.random(batch).astype(np.float32), rng.random(batch).astype(np.float32)]


def test_layout_aligns_every_field():
    offsets, total = layout([np.zeros(3, np.uint8), np.zeros(5, np.int64), np.zeros(0, np.float32)])
    assert offsets == [0, ALIGN, 2 * ALIGN] and total == 2 * ALIGN


def test_a_packed_batch_round_trips_with_dtypes_and_shapes():
    rng = np.random.default_rng(0)
    staging = BatchStaging("cpu")
    first = arrays(rng)
    sent = staging.send(first)
    for array, tensor in zip(first, sent, strict=True):
        assert tensor.dtype == torch.from_numpy(array).dtype and tuple(tensor.shape) == array.shape
        assert np.array_equal(tensor.numpy(), array)
    # The two host buffers take turns: a batch stays intact through the next send.
    kept = [t.clone() for t in sent]
    staging.send(arrays(rng))
    assert all(torch.equal(a, b) for a, b in zip(kept, sent, strict=True))


def replay_pair(prioritized: bool, frame_stack: int, n_step: int):
    shape = (frame_stack, 84, 84) if frame_stack else (4,)
    dtype = np.uint8 if frame_stack else np.float32
    buffers = [make_replay(500, shape, dtype, (), np.int64, 0.99, torch.device("cpu"), n_step=n_step,
                           frame_stack=frame_stack, prioritized=prioritized) for _ in range(2)]
    inner = buffers[1].buffer if prioritized else buffers[1]
    inner.staging = BatchStaging("cpu")  # the packed path, as on a GPU
    rng = np.random.default_rng(1)
    obs = rng.integers(0, 255, (2, *shape)).astype(dtype)
    for _ in range(300):
        next_obs = rng.integers(0, 255, (2, *shape)).astype(dtype)
        if frame_stack:  # frames shift by one per step, as a frame stack does
            next_obs[:, :-1] = obs[:, 1:]
        step = (obs, rng.integers(0, 6, 2), rng.standard_normal(2).astype(np.float32), next_obs,
                rng.random(2) < 0.02, rng.random(2) < 0.01)
        for buffer in buffers:
            buffer.add(*step)
        obs = next_obs
    return buffers


@pytest.mark.parametrize("prioritized", [False, True])
@pytest.mark.parametrize("frame_stack, n_step", [(0, 1), (0, 3), (4, 1), (4, 3)])
def test_packed_replay_batches_equal_the_plain_ones(prioritized, frame_stack, n_step):
    plain, packed = replay_pair(prioritized, frame_stack, n_step)
    kwargs = {"beta": 0.4} if prioritized else {}
    for seed in range(3):
        a = plain.sample(32, np.random.default_rng(seed), **kwargs)
        b = packed.sample(32, np.random.default_rng(seed), **kwargs)
        for name in ("obs", "actions", "rewards", "next_obs", "discounts", "weights"):
            x, y = getattr(a, name), getattr(b, name)
            assert (x is None) == (y is None) and (x is None or torch.equal(x, y)), name
        assert (a.indices is None and b.indices is None) or np.array_equal(a.indices, b.indices)


@pytest.mark.cuda
def test_on_a_gpu_batches_come_over_in_one_pinned_copy():
    rng = np.random.default_rng(0)
    staging = BatchStaging("cuda")
    batches = [arrays(rng) for _ in range(3)]
    for batch in batches:
        sent = staging.send(batch)
        assert staging.hosts[staging.turn ^ 1].is_pinned()
        for array, tensor in zip(batch, sent, strict=True):
            assert tensor.is_cuda and np.array_equal(tensor.cpu().numpy(), array)


@pytest.mark.cuda
def test_on_a_gpu_deferred_priorities_give_the_same_tree_as_immediate_ones():
    rng = np.random.default_rng(0)
    buffers = [make_replay(200, (4,), np.float32, (), np.int64, 0.99, torch.device(d), prioritized=True)
               for d in ("cpu", "cuda")]
    for t in range(400):
        step = (rng.standard_normal((1, 4)).astype(np.float32), rng.integers(0, 2, 1),
                rng.standard_normal(1).astype(np.float32), rng.standard_normal((1, 4)).astype(np.float32),
                rng.random(1) < 0.05)
        for buffer in buffers:
            buffer.add(*step)
        if t > 50:
            td = torch.from_numpy(rng.standard_normal(16).astype(np.float32))
            slots = [b.sample(16, np.random.default_rng(t), beta=0.5).indices for b in buffers]
            assert np.array_equal(slots[0], slots[1])
            buffers[0].update_priorities(slots[0], td)
            buffers[1].update_priorities(slots[1], td.cuda())
            assert buffers[1].pending is not None  # not waited for
    buffers[1].apply_pending()
    assert np.array_equal(buffers[0].tree.tree, buffers[1].tree.tree)
    assert buffers[0].max_priority == buffers[1].max_priority
