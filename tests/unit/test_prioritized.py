import numpy as np
import pytest
import torch

from deeprl.buffers import FrameReplayBuffer, PrioritizedReplay, ReplayBuffer, make_replay

CPU = torch.device("cpu")


def filled(n=4, alpha=1.0, eps=0.0):
    per = PrioritizedReplay(ReplayBuffer(8, (1,), np.float32, (), np.int64, 0.9, CPU), alpha=alpha, eps=eps)
    for t in range(n):
        per.add(np.array([[t]], np.float32), np.array([t]), np.array([float(t)]), np.array([[t + 1]], np.float32),
                np.array([False]))
    return per


def test_new_transitions_get_the_max_priority():
    per = filled(4)
    np.testing.assert_allclose(per.tree[np.arange(4)], 1.0)  # max starts at 1
    per.update_priorities(np.array([0, 1]), np.array([3.0, -0.5]))
    per.add(np.array([[9]], np.float32), np.array([0]), np.array([9.0]), np.array([[9]], np.float32), np.array([False]))
    np.testing.assert_allclose(per.tree[np.arange(5)], [3.0, 0.5, 1.0, 1.0, 3.0])


def test_priorities_are_abs_td_plus_eps_to_the_alpha():
    per = filled(3, alpha=0.5, eps=0.01)
    per.update_priorities(np.array([0, 1, 2]), torch.tensor([-3.99, 0.0, 0.99]))
    np.testing.assert_allclose(per.tree[np.arange(3)], [2.0, 0.1, 1.0])


def test_importance_weights_hand_computed():
    per = filled(4)
    per.update_priorities(np.arange(4), np.array([1.0, 1.0, 2.0, 4.0]))  # P = 1/8, 1/8, 2/8, 4/8
    beta = 0.5
    batch = per.sample(256, np.random.default_rng(0), beta=beta)
    # w_i = (N P_i)^-beta / max_j w_j, N = 4: (1/2)^-.5, (1/2)^-.5, 1, 2^-.5 -> divided by sqrt(2)
    expected = {0: 1.0, 1: 1.0, 2: 2 ** -0.5, 3: 0.5}
    weights = batch.weights.numpy()
    assert batch.weights.dtype == torch.float32 and weights.max() == pytest.approx(1.0)
    for slot, w in zip(batch.indices, weights, strict=True):
        assert w == pytest.approx(expected[int(slot)])
    # The batch's content is the buffer's content at those slots.
    np.testing.assert_array_equal(batch.rewards.numpy(), batch.indices.astype(np.float32))


def test_beta_one_gives_full_correction_and_beta_zero_none():
    per = filled(4)
    per.update_priorities(np.arange(4), np.array([1.0, 1.0, 2.0, 4.0]))
    assert torch.all(per.sample(64, np.random.default_rng(0), beta=0.0).weights == 1.0)
    batch = per.sample(512, np.random.default_rng(0), beta=1.0)
    probs = per.tree[batch.indices] / per.tree.total
    np.testing.assert_allclose(batch.weights.numpy() * probs, (batch.weights.numpy() * probs)[0], rtol=1e-6)


def test_sampling_follows_updated_priorities():
    per = filled(4)
    per.update_priorities(np.arange(4), np.array([0.0, 0.0, 0.0, 5.0]))  # eps=0: only slot 3
    batch = per.sample(32, np.random.default_rng(0))
    assert set(batch.indices.tolist()) == {3}


def test_uniform_batches_have_no_weights():
    buffer = make_replay(8, (1,), np.float32, (), np.int64, 0.9, CPU)
    buffer.add(np.zeros((1, 1), np.float32), np.array([0]), np.array([1.0]), np.zeros((1, 1), np.float32),
               np.array([False]))
    batch = buffer.sample(4, np.random.default_rng(0))
    assert batch.weights is None and batch.indices is None


def test_make_replay_picks_storage_and_per():
    per = make_replay(16, (4, 84, 84), np.uint8, (), np.int64, 0.99, CPU, frame_stack=4, prioritized=True,
                      n_step=3)
    assert isinstance(per, PrioritizedReplay) and isinstance(per.buffer, FrameReplayBuffer)
    assert per.buffer.n_step == 3
    plain = make_replay(16, (4,), np.float32, (), np.int64, 0.99, CPU)
    assert type(plain) is ReplayBuffer
