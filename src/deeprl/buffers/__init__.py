"""Replay and rollout storage."""

from deeprl.buffers.frames import FrameReplayBuffer
from deeprl.buffers.make import frame_stack_of, make_replay, storage_dtype
from deeprl.buffers.prioritized import PrioritizedReplay
from deeprl.buffers.replay import Batch, ReplayBuffer
from deeprl.buffers.sum_tree import SumTree

__all__ = ["Batch", "ReplayBuffer", "FrameReplayBuffer", "PrioritizedReplay", "SumTree", "make_replay",
           "frame_stack_of", "storage_dtype"]
