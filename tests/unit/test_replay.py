import numpy as np
import pytest
import torch

from deeprl.buffers import ReplayBuffer


def make_buffer(capacity=8, gamma=0.9):
    return ReplayBuffer(capacity, (2,), np.float32, (), np.int64, gamma, torch.device("cpu"))


def add(buffer, start, n, terminated=False):
    """Add n transitions whose obs encode their index i: obs=[i, -i], next=[i+1, -(i+1)], reward=i."""
    for i in range(start, start + n):
        buffer.add(np.array([[i, -i]], np.float32), np.array([i % 3]), np.array([float(i)]),
                   np.array([[i + 1, -(i + 1)]], np.float32), np.array([terminated]))


def test_samples_are_stored_transitions():
    buffer = make_buffer()
    add(buffer, 0, 5)
    batch = buffer.sample(64, np.random.default_rng(0))
    i = batch.rewards.numpy()
    assert batch.obs.shape == (64, 2) and batch.actions.shape == (64,)
    np.testing.assert_array_equal(batch.obs[:, 0].numpy(), i)
    np.testing.assert_array_equal(batch.next_obs[:, 0].numpy(), i + 1)
    np.testing.assert_array_equal(batch.actions.numpy(), i.astype(int) % 3)
    assert set(i.astype(int)) == {0, 1, 2, 3, 4}  # all stored rows reachable, nothing else


def test_circular_overwrite_keeps_latest_capacity_transitions():
    buffer = make_buffer(capacity=8)
    add(buffer, 0, 20)
    assert len(buffer) == 8
    batch = buffer.sample(500, np.random.default_rng(1))
    assert set(batch.rewards.numpy().astype(int)) == set(range(12, 20))


def test_vector_add_stores_one_row_per_env():
    buffer = make_buffer(capacity=8)
    obs = np.arange(6, dtype=np.float32).reshape(3, 2)
    buffer.add(obs, np.array([0, 1, 2]), np.array([1.0, 2.0, 3.0]), obs + 1, np.array([False, True, False]))
    assert len(buffer) == 3
    np.testing.assert_array_equal(buffer.obs[:3], obs)
    np.testing.assert_array_equal(buffer.terminated[:3], [0, 1, 0])


def test_discount_is_zero_only_after_termination():
    buffer = make_buffer(gamma=0.9)
    add(buffer, 0, 3, terminated=False)
    add(buffer, 3, 3, terminated=True)
    batch = buffer.sample(200, np.random.default_rng(2))
    terminal = batch.rewards.numpy() >= 3
    assert np.all(batch.discounts.numpy()[terminal] == 0.0)
    assert np.allclose(batch.discounts.numpy()[~terminal], 0.9)


def test_sampling_is_reproducible_with_the_same_generator():
    buffer = make_buffer()
    add(buffer, 0, 8)
    a = buffer.sample(16, np.random.default_rng(7)).rewards
    b = buffer.sample(16, np.random.default_rng(7)).rewards
    assert torch.equal(a, b)


@pytest.mark.parametrize("shape", [(4,), (4, 84, 84)])
def test_observation_dtype_and_shape_are_kept(shape):
    buffer = ReplayBuffer(4, shape, np.uint8, (), np.int64, 0.99, torch.device("cpu"))
    obs = np.full((1, *shape), 255, np.uint8)
    buffer.add(obs, np.array([0]), np.array([0.0]), obs, np.array([False]))
    batch = buffer.sample(2, np.random.default_rng(0))
    assert batch.obs.dtype == torch.uint8 and batch.obs.shape == (2, *shape)
