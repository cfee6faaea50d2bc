import numpy as np
import torch

from deeprl.buffers.frames import FrameReplayBuffer
from deeprl.buffers.prioritized import PrioritizedReplay
from deeprl.buffers.replay import ReplayBuffer
from deeprl.core.console import say
from deeprl.core.errors import ConfigError

# replay_device=auto puts the observations on the GPU when they take at most this share of its
# free memory, leaving the rest to the networks, the batches and the allocator's cache.
AUTO_GPU_SHARE = 0.5


def make_replay(capacity: int, obs_shape, obs_dtype, action_shape, action_dtype, gamma: float,
                device: torch.device, *, n_step: int = 1, frame_stack: int = 0,
                prioritized: bool = False, alpha: float = 0.6, eps: float = 1e-6, replay_device: str = "cpu"):
    """The replay buffer for a run.

    frame_stack > 0: observations are stacks of that many frames along the first axis (Atari), and
    each frame is stored once (FrameReplayBuffer); 0: one obs and next_obs row per transition.
    n_step: n-step returns (per-sample rewards and discounts), with either storage.
    prioritized: proportional prioritized replay around that storage; sample(batch, rng, beta)
    then returns weights and indices, and update_priorities(indices, td_errors) must follow.
    Observations are stored as `storage_dtype(obs_dtype)`.
    replay_device: where the observations (the frame ring, or the obs rows) live: cpu (host memory),
    cuda (on the training GPU, sampled with a gather there) or auto (see `replay_obs_device`).
    Raises ConfigError("algo.buffer_size", ...) when the buffer cannot fit in available memory.
    """
    obs_dtype = storage_dtype(obs_dtype)
    if frame_stack:
        frame_shape = (obs_shape[0] // frame_stack, *obs_shape[1:])
        obs_bytes = FrameReplayBuffer.frames_nbytes(FrameReplayBuffer.default_frame_capacity(capacity), frame_shape,
                                                    obs_dtype)
    else:
        obs_bytes = ReplayBuffer.obs_nbytes_for(capacity, obs_shape, obs_dtype)
    obs_device, note = replay_obs_device(replay_device, torch.device(device), obs_bytes)
    if note:
        say(f"deeprl | {note}")
    args = (capacity, obs_shape, obs_dtype, action_shape, action_dtype, gamma, device, n_step, obs_device)
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


def replay_obs_device(setting: str, device: torch.device, obs_bytes: int,
                      free_bytes: int | None = None) -> tuple[torch.device | None, str]:
    """(the device for a replay's observations, or None for host memory; a line saying why, or "").

    `auto`: on the training GPU when the run trains on one and the observations take at most half
    of its free memory (`free_bytes`, default: what CUDA reports now); in host memory otherwise.
    On a GPU the host store costs a gather in numpy and a copy of the batch's observations per
    update; the device store sends only the slots and gathers there."""
    if setting == "cpu":
        return None, ""
    if setting not in ("auto", "cuda"):
        raise ConfigError("algo.replay_device", f"unknown replay device '{setting}'; use auto, cpu or cuda")
    if device.type != "cuda":
        if setting == "cuda":
            raise ConfigError("algo.replay_device", f"algo.replay_device=cuda needs the run on a GPU, but it "
                                                    f"trains on {device}; set algo.replay_device=auto or cpu")
        return None, ""
    size = f"{obs_bytes / 2**30:.2f} GiB"
    if setting == "cuda":
        return device, f"replay observations ({size}) on {device} (algo.replay_device=cuda)"
    free = torch.cuda.mem_get_info(device)[0] if free_bytes is None else free_bytes
    if obs_bytes <= AUTO_GPU_SHARE * free:
        return device, (f"replay observations ({size}) on {device} (replay_device auto: within half of "
                        f"the {free / 2**30:.0f} GiB free there)")
    return None, (f"replay observations ({size}) in host memory (replay_device auto: more than half of "
                  f"the {free / 2**30:.0f} GiB free on {device})")
