"""Replay for stacked frames that stores every frame once.

A stack of k frames overlaps the next one in k - 1 frames, and s' of a transition is s of the next,
so a naive store (obs and next_obs rows) keeps each Atari frame 2k = 8 times: 56 GB for a million
transitions. Here frames live once in a circular frame store and each transition keeps k + k
pointers (obs and next_obs), so a million Breakout transitions take about 7.3 GB.

Exactness does not rely on how the env pads or resets. For each env the buffer remembers the
last s' it stored: when the next `obs` is equal to it (the episode goes on), its pointers are
reused; otherwise (a new episode) the frames of `obs` are stored, consecutive equal frames once
(so FrameStackObservation's padding with copies of the first frame costs one frame). When s'
is `obs` shifted by one frame, only its newest frame is stored; otherwise all of it. Sampling
therefore returns exactly the arrays that were added.

Frames are written in order into a ring of `frame_capacity` frames. Every frame a transition points
to was written during its own `add` call or the k calls before (the stack shifts by one frame a
call, and s is the previous call's s'). Each transition records the smallest frame id its call
needs; when the ring wraps past it, the transition is dropped with the oldest ones, so `len()` can
stay a little under `capacity` when episodes are very short. The default frame ring
(capacity * 33/32 + 1024 frames) covers episodes of 32 steps and longer (each episode costs one
extra frame); the 1024 spare frames cover the k + 1 newest calls of up to 100 envs.
"""

import numpy as np
import torch

from deeprl.buffers.replay import ReplayBuffer


class FrameReplayBuffer(ReplayBuffer):
    """ReplayBuffer for frame stacks (obs shape (k * c, H, W), newest frame last), frames stored once.

    Same interface as ReplayBuffer (add, sample, n_step); `frame_stack` is k, `frame_capacity` the
    number of frames in the frame ring (default capacity * 33/32 + 1024).
    """

    def __init__(self, capacity: int, obs_shape, obs_dtype, action_shape, action_dtype,
                 gamma: float, device, n_step: int = 1, obs_device=None, *, frame_stack: int = 4,
                 frame_capacity: int | None = None):
        obs_shape = tuple(obs_shape)
        if frame_stack < 1 or len(obs_shape) < 2 or obs_shape[0] % frame_stack:
            raise ValueError(f"FrameReplayBuffer: obs shape {obs_shape} is not a stack of {frame_stack} frames "
                             "along the first axis")
        self.frame_stack = int(frame_stack)
        self.frame_shape = (obs_shape[0] // frame_stack, *obs_shape[1:])
        self.frame_capacity = int(frame_capacity or self.default_frame_capacity(capacity))
        if self.frame_capacity >= 2**31:
            raise ValueError("FrameReplayBuffer: frame_capacity must be < 2**31")
        super().__init__(capacity, obs_shape, obs_dtype, action_shape, action_dtype, gamma, device, n_step,
                         obs_device)
        self._oldest = 0  # logical id of the oldest transition whose frames are all still stored

    @staticmethod
    def default_frame_capacity(capacity: int) -> int:
        return int(capacity) + int(capacity) // 32 + 1024

    def _nbytes(self, action_shape, action_dtype) -> int:
        return self.nbytes_for(self.capacity, self.frame_capacity, self.frame_stack, self.frame_shape,
                               self.obs_dtype, action_shape, action_dtype)

    @staticmethod
    def nbytes_for(capacity, frame_capacity, frame_stack, frame_shape, obs_dtype, action_shape,
                   action_dtype) -> int:
        action = int(np.prod(action_shape, dtype=np.int64)) * np.dtype(action_dtype).itemsize
        per_transition = 2 * frame_stack * 4 + 8 + action + 4 + 4 + 1  # pointers, need_from, ...
        return FrameReplayBuffer.frames_nbytes(frame_capacity, frame_shape, obs_dtype) + int(capacity) * per_transition

    @staticmethod
    def frames_nbytes(frame_capacity, frame_shape, obs_dtype) -> int:
        """Bytes of the frame ring: the observation store, what algo.replay_device places."""
        return int(frame_capacity) * int(np.prod(frame_shape)) * np.dtype(obs_dtype).itemsize

    @property
    def obs_nbytes(self) -> int:
        return self.frames_nbytes(self.frame_capacity, self.frame_shape, self.obs_dtype)

    def _allocate_obs(self) -> None:
        k = self.frame_stack
        self.frames = self._rows((self.frame_capacity, *self.frame_shape))
        self.obs_ptr = np.zeros((self.capacity, k), dtype=np.int32)  # physical frame slots
        self.next_ptr = np.zeros((self.capacity, k), dtype=np.int32)
        self.need_from = np.zeros(self.capacity, dtype=np.int64)  # smallest frame id the call needs
        self.frames_written = 0  # frame ids are 0, 1, 2, ...; id f lives in slot f % frame_capacity
        self._last_next: np.ndarray | None = None  # per env: the last s' added, and its frame ids
        self._last_next_ids: np.ndarray | None = None
        self._has_last: np.ndarray | None = None

    # --- adding -----------------------------------------------------------------------------

    def add(self, obs, actions, rewards, next_obs, terminated, truncated=None) -> None:
        super().add(obs, actions, rewards, next_obs, terminated, truncated)
        # Drop the oldest transitions whose frames the ring has overwritten (or the slot reused).
        oldest = max(self._oldest, self.added - self.capacity)
        horizon = self.frames_written - self.frame_capacity
        while oldest < self.added and self.need_from[oldest % self.capacity] < horizon:
            oldest += 1
        if oldest >= self.added:
            raise ValueError(f"FrameReplayBuffer: frame_capacity={self.frame_capacity} is too small to hold "
                             "the frames of the newest transitions")
        self._oldest = oldest
        self.size = self.added - oldest

    def _first_slot(self) -> int:
        return self._oldest % self.capacity if self.size < min(self.added, self.capacity) else 0

    def _write(self, frames: np.ndarray) -> np.ndarray:
        """Store frames (m, *frame_shape) in order; returns their ids."""
        ids = self.frames_written + np.arange(len(frames))
        self._put(self.frames, ids % self.frame_capacity, frames)
        self.frames_written += len(frames)
        return ids

    def _write_stack(self, stack: np.ndarray) -> np.ndarray:
        """Ids for the k frames of one stack, storing consecutive equal frames once."""
        ids = np.empty(self.frame_stack, dtype=np.int64)
        for j, frame in enumerate(stack):
            if j > 0 and np.array_equal(frame, stack[j - 1]):
                ids[j] = ids[j - 1]
            else:
                ids[j] = self._write(frame[None])[0]
        return ids

    def _store_obs(self, idx: np.ndarray, obs, next_obs) -> None:
        n, k = len(idx), self.frame_stack
        obs = np.asarray(obs).reshape(n, k, *self.frame_shape)
        next_obs = np.asarray(next_obs).reshape(n, k, *self.frame_shape)
        if self._last_next is None:
            self._last_next = np.zeros_like(next_obs)
            self._last_next_ids = np.zeros((n, k), dtype=np.int64)
            self._has_last = np.zeros(n, dtype=bool)

        # The common case, for all envs at once: s continues the last s' and s' shifts s by one frame.
        flat = n, -1
        continues = self._has_last & (obs.reshape(flat) == self._last_next.reshape(flat)).all(axis=1)
        shifts = (next_obs[:, :-1].reshape(flat) == obs[:, 1:].reshape(flat)).all(axis=1)
        obs_ids = self._last_next_ids.copy()
        for e in np.flatnonzero(~continues):  # a new episode (or an unrelated observation)
            obs_ids[e] = self._write_stack(obs[e])
        next_ids = np.empty_like(obs_ids)
        next_ids[:, :-1] = obs_ids[:, 1:]
        next_ids[shifts, -1] = self._write(next_obs[shifts, -1])
        for e in np.flatnonzero(~shifts):
            next_ids[e] = self._write_stack(next_obs[e])

        self.obs_ptr[idx] = obs_ids % self.frame_capacity
        self.next_ptr[idx] = next_ids % self.frame_capacity
        self.need_from[idx] = min(obs_ids.min(), next_ids.min())
        self._last_next[:] = next_obs
        self._last_next_ids[:] = next_ids
        self._has_last[:] = True

    # --- checkpoints ------------------------------------------------------------------------

    COUNTERS = ReplayBuffer.COUNTERS + ("_oldest", "frames_written", "_last_next", "_last_next_ids", "_has_last")

    def _arrays(self) -> dict[str, int]:
        rows = min(self.added, self.capacity)
        return {"frames": min(self.frames_written, self.frame_capacity), "obs_ptr": rows, "next_ptr": rows,
                "need_from": rows, "actions": rows, "rewards": rows, "terminated": rows, "truncated": rows}

    # --- sampling ---------------------------------------------------------------------------

    def _obs(self, idx: np.ndarray) -> np.ndarray:
        if self.obs_device is not None:
            return self.obs_ptr[idx]  # gathered on the device
        return self.frames[self.obs_ptr[idx]].reshape(len(idx), *self.obs_shape)

    def _next_obs(self, idx: np.ndarray) -> np.ndarray:
        if self.obs_device is not None:
            return self.next_ptr[idx]
        return self.frames[self.next_ptr[idx]].reshape(len(idx), *self.obs_shape)

    def _gather_obs(self, keys: torch.Tensor, next_: bool) -> torch.Tensor:
        return self.frames.index_select(0, keys.reshape(-1)).view(len(keys), *self.obs_shape)
