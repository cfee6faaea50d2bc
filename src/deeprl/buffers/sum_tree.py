import math

import numpy as np


class SumTree:
    """Priorities of `capacity` slots in a binary tree whose inner nodes hold the sums below them.

    Node 1 is the root, node i has children 2i and 2i + 1, and slot s is the leaf `leaves + s`.
    Updates and prefix-sum searches touch one node per level (log2 capacity levels), done for a
    whole batch at once with numpy. Inner nodes are recomputed from their children, never updated
    by adding differences, so rounding errors do not accumulate.
    """

    def __init__(self, capacity: int):
        self.capacity = int(capacity)
        self.leaves = 1 << max(0, (self.capacity - 1).bit_length())
        self.tree = np.zeros(2 * self.leaves, dtype=np.float64)

    @property
    def total(self) -> float:
        return float(self.tree[1])

    def __getitem__(self, slots) -> np.ndarray:
        return self.tree[self.leaves + np.asarray(slots)]

    def update(self, slots, priorities) -> None:
        """Set the priorities (>= 0) of `slots`; for a slot given twice the last value wins."""
        slots = np.asarray(slots, dtype=np.int64).ravel()
        priorities = np.broadcast_to(np.asarray(priorities, dtype=np.float64), slots.shape)
        if len(slots) == 1:  # one env's new transition: plain integers up the path, no array calls
            self._update_one(int(slots[0]), float(priorities[0]))
            return
        if len(slots) == 0:
            return
        if slots.min() < 0 or slots.max() >= self.capacity:
            raise IndexError(f"SumTree: slots must be in [0, {self.capacity})")
        if not np.all(priorities >= 0) or not np.all(np.isfinite(priorities)):
            raise ValueError("SumTree: priorities must be finite and >= 0")
        # Keep the last occurrence of each slot.
        unique, last = np.unique(slots[::-1], return_index=True)
        nodes = self.leaves + unique
        tree = self.tree
        tree[nodes] = priorities[::-1][last]
        for _ in range(self.leaves.bit_length() - 1):  # one level up per pass, to the root
            # Two slots under one parent give that parent twice: it is written twice with the same
            # sum (its children are final by now), which is cheaper than de-duplicating each level.
            nodes = nodes >> 1
            tree[nodes] = tree[2 * nodes] + tree[2 * nodes + 1]

    def _update_one(self, slot: int, priority: float) -> None:
        if not 0 <= slot < self.capacity:
            raise IndexError(f"SumTree: slots must be in [0, {self.capacity})")
        if not (priority >= 0 and math.isfinite(priority)):
            raise ValueError("SumTree: priorities must be finite and >= 0")
        tree = self.tree
        node = self.leaves + slot
        tree[node] = priority
        node >>= 1
        while node:
            tree[node] = tree[2 * node] + tree[2 * node + 1]
            node >>= 1

    def find(self, values) -> np.ndarray:
        """For each value in [0, total), the slot s with prefix(s) <= value < prefix(s) + p(s).

        Never returns a zero-priority slot while the total is positive: the descent only turns
        to a subtree with mass in it, even when rounding pushes a value past the total.
        """
        values = np.array(values, dtype=np.float64, copy=True)
        nodes = np.ones(len(values), dtype=np.int64)
        for _ in range(self.leaves.bit_length() - 1):  # one level down per pass
            left = self.tree[2 * nodes]
            right_mass = self.tree[2 * nodes + 1] > 0
            go_right = ((values >= left) & right_mass) | (left <= 0)
            values -= np.where(go_right, left, 0.0)
            nodes = 2 * nodes + go_right
        return nodes - self.leaves

    def sample(self, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        """Slots drawn with probability priority / total, one from each of `batch_size` equal
        segments of [0, total) (stratified, as in Schaul et al. 2016)."""
        total = self.total
        if not total > 0:
            raise ValueError("SumTree.sample: all priorities are zero")
        values = (np.arange(batch_size) + rng.random(batch_size)) * (total / batch_size)
        return self.find(values)
