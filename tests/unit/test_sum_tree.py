import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deeprl.buffers import SumTree


@pytest.mark.parametrize("capacity", [1, 3, 8, 1000])
def test_sampling_is_proportional_to_priority(capacity):
    tree = SumTree(capacity)
    priorities = np.random.default_rng(0).random(capacity) + 0.01
    tree.update(np.arange(capacity), priorities)
    assert tree.total == pytest.approx(priorities.sum())
    slots = tree.sample(100_000, np.random.default_rng(1))
    freq = np.bincount(slots, minlength=capacity) / len(slots)
    np.testing.assert_allclose(freq, priorities / priorities.sum(), atol=2e-3)


def test_updates_change_the_sums_and_the_sampling():
    tree = SumTree(5)
    tree.update([0, 1, 2, 3, 4], [1.0, 1.0, 1.0, 1.0, 1.0])
    tree.update([2], [6.0])
    assert tree.total == pytest.approx(10.0)
    np.testing.assert_allclose(tree[[0, 2, 4]], [1.0, 6.0, 1.0])
    freq = np.bincount(tree.sample(50_000, np.random.default_rng(0)), minlength=5) / 50_000
    np.testing.assert_allclose(freq, [0.1, 0.1, 0.6, 0.1, 0.1], atol=5e-3)


def test_find_returns_the_slot_whose_prefix_interval_holds_the_value():
    tree = SumTree(4)
    tree.update([0, 1, 2, 3], [1.0, 2.0, 0.0, 3.0])  # prefix intervals [0,1) [1,3) - [3,6)
    np.testing.assert_array_equal(tree.find([0.0, 0.99, 1.0, 2.99, 3.0, 5.99]), [0, 0, 1, 1, 3, 3])


def test_zero_priority_slots_are_never_sampled_even_past_the_total():
    tree = SumTree(6)
    tree.update(np.arange(6), [0.0, 2.0, 0.0, 0.0, 1e-3, 0.0])
    slots = tree.sample(10_000, np.random.default_rng(0))
    assert set(slots.tolist()) <= {1, 4}
    # Rounding can push a value past the total: the descent still ends on a slot with mass.
    assert tree.find([tree.total * (1 + 1e-9), 1e9]).tolist() == [4, 4]


def test_a_slot_given_twice_keeps_the_last_value():
    tree = SumTree(4)
    tree.update([1, 1, 2], [5.0, 7.0, 1.0])
    np.testing.assert_allclose(tree[[1, 2]], [7.0, 1.0])
    assert tree.total == pytest.approx(8.0)


def test_sums_do_not_drift_under_many_updates():
    tree = SumTree(100)
    rng = np.random.default_rng(0)
    for _ in range(2000):
        tree.update(rng.integers(0, 100, 32), rng.random(32) * 1e3)
    assert tree.total == pytest.approx(tree[np.arange(100)].sum(), rel=1e-12)


def test_bad_input_is_rejected():
    tree = SumTree(4)
    with pytest.raises(IndexError):
        tree.update([4], [1.0])
    with pytest.raises(ValueError):
        tree.update([0], [-1.0])
    with pytest.raises(ValueError, match="all priorities are zero"):
        tree.sample(2, np.random.default_rng(0))


@settings(max_examples=200, deadline=None)
@given(capacity=st.integers(1, 40),
       ops=st.lists(st.lists(st.tuples(st.integers(0, 39), st.floats(0, 100, allow_nan=False)), min_size=1,
                             max_size=8), min_size=1, max_size=12))
def test_tree_equals_a_rebuild_from_its_leaves_after_any_updates(capacity, ops):
    """Against the reference: after any sequence of one-slot and batch updates (repeats included),
    the tree is bit for bit the tree built at once from the leaves a dict of last values holds."""
    tree, expected = SumTree(capacity), {}
    for batch in ops:
        batch = [(slot % capacity, p) for slot, p in batch]
        slots, priorities = zip(*batch, strict=True)
        tree.update(list(slots), list(priorities))
        expected.update(batch)  # the last value of a repeated slot wins
        assert np.array_equal(tree.tree, rebuilt(tree.leaves, [expected.get(s, 0.0) for s in range(capacity)]))


def rebuilt(leaves: int, priorities: list[float]) -> np.ndarray:
    """The reference: a sum tree built bottom-up node by node in plain Python."""
    tree = [0.0] * (2 * leaves)
    for slot, p in enumerate(priorities):
        tree[leaves + slot] = float(p)
    for node in range(leaves - 1, 0, -1):
        tree[node] = tree[2 * node] + tree[2 * node + 1]
    return np.array(tree)
