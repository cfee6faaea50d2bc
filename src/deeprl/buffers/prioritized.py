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

    On a GPU the TD errors are not waited for: `update_priorities` starts their copy to the host
    and returns, and they are applied when the buffer is next used (add, sample, save), by which
    time the loop's next action has synchronised anyway. The order of effects is the same as
    applying them at once, so results do not change; only the blocking `.cpu()` per update goes.
    """

    def __init__(self, buffer: ReplayBuffer, alpha: float = 0.6, eps: float = 1e-6):
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        self.buffer = buffer
        self.alpha, self.eps = float(alpha), float(eps)
        self.tree = SumTree(buffer.capacity)
        self.max_priority = 1.0  # of |TD error| + eps, before the exponent
        self.pending = None  # (slots, TD errors on their way to the host, CUDA event or None)
        self._host: torch.Tensor | None = None  # pinned host memory the TD errors are copied into

    def __len__(self) -> int:
        return len(self.buffer)

    @property
    def capacity(self) -> int:
        return self.buffer.capacity

    def add(self, obs, actions, rewards, next_obs, terminated, truncated=None) -> None:
        self.apply_pending()
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
        self.apply_pending()
        slots = self.tree.sample(batch_size, rng)
        probs = self.tree[slots] / self.tree.total
        weights = (len(self.buffer) * probs) ** -beta
        weights /= weights.max()
        return self.buffer._batch(slots, weights)._replace(indices=slots)

    def state_dict(self) -> dict:
        self.apply_pending()
        return {"buffer": self.buffer.state_dict(), "tree": torch.from_numpy(self.tree.tree),
                "max_priority": self.max_priority}

    def load_state_dict(self, state: dict) -> None:
        self.pending = None
        self.buffer.load_state_dict(state["buffer"])
        self.tree.tree[:] = state["tree"].numpy()
        self.max_priority = float(state["max_priority"])

    @property
    def saved_nbytes(self) -> int:
        return self.buffer.saved_nbytes + self.tree.tree.nbytes

    def update_priorities(self, indices, td_errors) -> None:
        """New priorities |TD error| + ε for the sampled slots; a GPU tensor is applied later."""
        self.apply_pending()
        if isinstance(td_errors, torch.Tensor):
            td_errors = td_errors.detach().float()
            if td_errors.is_cuda:
                if self._host is None or self._host.shape != td_errors.shape:  # one pinned buffer, reused
                    self._host = torch.empty(td_errors.shape, dtype=torch.float32, pin_memory=True)
                host = self._host  # free again: apply_pending above has read it
                host.copy_(td_errors, non_blocking=True)
                event = torch.cuda.Event()
                event.record()
                self.pending = (np.array(indices), host, event)
                return
            td_errors = td_errors.numpy()
        self._apply(indices, td_errors)

    def apply_pending(self) -> None:
        if self.pending is None:
            return
        indices, host, event = self.pending
        self.pending = None
        event.synchronize()
        self._apply(indices, host.numpy())

    def _apply(self, indices, td_errors) -> None:
        priorities = np.abs(np.asarray(td_errors, dtype=np.float64)) + self.eps
        self.max_priority = max(self.max_priority, float(priorities.max()))
        self.tree.update(indices, priorities ** self.alpha)
