"""Replay and rollout storage."""

from deeprl.buffers.replay import Batch, ReplayBuffer

__all__ = ["Batch", "ReplayBuffer"]
