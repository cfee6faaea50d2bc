"""Proportional prioritized experience replay (Schaul et al. 2016) around any replay storage."""

import numpy as np
import torch

from deeprl.buffers.replay import Batch, ReplayBuffer
from deeprl.buffers.sum_tree import SumTree


class PrioritizedReplay:
    """Samples slot i with probability p_i^α / Σ_j p_j^α, where p_i = |TD error_i| + ε.

    Wraps a ReplayBuffer or FrameReplayBuffer (n-step included): storage and targets are the
    inner buffer's, this only decides which slots to sample and how to weight them.
    New transitions get the largest priority seen so far, so each is replayed at least once soon.
    The sampled batch carries `indices` (slots) and `weights` = (N · P(i))^-β normalised by the
    batch maximum; β is given per call (annealed towards 1 by the caller). After the update, hand
    the TD errors back with `update_priorities(batch.indices, td_errors)`.
    """

    def __init__(self, buffer: ReplayBuffer, alpha: float = 0.6, eps: float = 1e-6):
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        self.buffer = buffer
        self.alpha, self.eps = float(alpha), float(eps)
        self.tree = SumTree(buffer.capacity)
        self.max_priority = 1.0  # of |TD error| + eps, before the exponent

    def __len__(self) -> int:
        return len(self.buffer)

    @property
    def capacity(self) -> int:
        return self.buffer.capacity

    def add(self, obs, actions, rewards, next_obs, terminated, truncated=None) -> None:
        buffer = self.buffer
        oldest, added = buffer.oldest, buffer.added
        buffer.add(obs, actions, rewards, next_obs, terminated, truncated)
        # Slots that left the buffer without being written again (a frame store dropping its oldest
        # transitions early) must not be sampled; the new ones start at the max priority.
        gone = np.arange(oldest, buffer.oldest) % buffer.capacity
        self.tree.update(gone, 0.0)
        new = np.arange(added, buffer.added) % buffer.capacity
        self.tree.update(new, self.max_priority ** self.alpha)

    def sample(self, batch_size: int, rng: np.random.Generator, beta: float = 1.0) -> Batch:
        slots = self.tree.sample(batch_size, rng)
        probs = self.tree[slots] / self.tree.total
        weights = (len(self.buffer) * probs) ** -beta
        weights /= weights.max()
        batch = self.buffer._batch(slots)
        return batch._replace(weights=self.buffer._to_device(weights.astype(np.float32)), indices=slots)

    def state_dict(self) -> dict:
        return {"buffer": self.buffer.state_dict(), "tree": torch.from_numpy(self.tree.tree),
                "max_priority": self.max_priority}

    def load_state_dict(self, state: dict) -> None:
        self.buffer.load_state_dict(state["buffer"])
        self.tree.tree[:] = state["tree"].numpy()
        self.max_priority = float(state["max_priority"])

    @property
    def saved_nbytes(self) -> int:
        return self.buffer.saved_nbytes + self.tree.tree.nbytes

    def update_priorities(self, indices, td_errors) -> None:
        if isinstance(td_errors, torch.Tensor):
            td_errors = td_errors.detach().float().cpu().numpy()
        priorities = np.abs(np.asarray(td_errors, dtype=np.float64)) + self.eps
        self.max_priority = max(self.max_priority, float(priorities.max()))
        self.tree.update(indices, priorities ** self.alpha)
