import numpy as np
import torch

from deeprl.buffers.frames import FrameReplayBuffer
from deeprl.buffers.prioritized import PrioritizedReplay
from deeprl.buffers.replay import ReplayBuffer


def make_replay(capacity: int, obs_shape, obs_dtype, action_shape, action_dtype, gamma: float,
                device: torch.device, *, n_step: int = 1, frame_stack: int = 0,
                prioritized: bool = False, alpha: float = 0.6, eps: float = 1e-6):
    """The replay buffer for a run.

    frame_stack > 0: observations are stacks of that many frames along the first axis (Atari), and
    each frame is stored once (FrameReplayBuffer); 0: one obs and next_obs row per transition.
    n_step: n-step returns (per-sample rewards and discounts), with either storage.
    prioritized: proportional prioritized replay around that storage; sample(batch, rng, beta)
    then returns weights and indices, and update_priorities(indices, td_errors) must follow.
    Observations are stored as `storage_dtype(obs_dtype)`.
    Raises ConfigError("algo.buffer_size", ...) when the buffer cannot fit in available memory.
    """
    obs_dtype = storage_dtype(obs_dtype)
    args = (capacity, obs_shape, obs_dtype, action_shape, action_dtype, gamma, device, n_step)
    if frame_stack:
        buffer = FrameReplayBuffer(*args, frame_stack=frame_stack)
    else:
        buffer = ReplayBuffer(*args)
    return PrioritizedReplay(buffer, alpha=alpha, eps=eps) if prioritized else buffer


def storage_dtype(obs_dtype) -> np.dtype:
    """How a replay stores observations: float64 ones (MuJoCo's) as float32, which is what the
    networks compute in; any other dtype as it is."""
    return np.dtype(np.float32) if np.dtype(obs_dtype) == np.float64 else np.dtype(obs_dtype)


def frame_stack_of(env_cfg, obs_shape, obs_dtype) -> int:
    """The frame stack size to deduplicate for this env: its `frame_stack` when observations are
    uint8 image stacks, else 0 (no frames to share)."""
    k = int(env_cfg.get("frame_stack", 0) or 0)
    if k > 0 and np.dtype(obs_dtype) == np.uint8 and len(obs_shape) == 3 and obs_shape[0] % k == 0:
        return k
    return 0
