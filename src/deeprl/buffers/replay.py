import copy
from typing import NamedTuple

import numpy as np
import torch

from deeprl.buffers.memory import check_fits, check_fits_cuda
from deeprl.buffers.staging import BatchStaging


class Batch(NamedTuple):
    """A sampled minibatch, already on the training device.

    `discounts` is the factor in front of the bootstrap value: gamma**n for an n-step
    transition and 0 after a true termination, so the TD target is always
    `rewards + discounts * V(next_obs)`. Truncation by a time limit is not a termination:
    it keeps its discount and bootstraps.
    Prioritized replay also fills `weights` (importance-sampling weights, max 1) and `indices`
    (the buffer slots, to hand back to `update_priorities` with the TD errors).
    """

    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_obs: torch.Tensor
    discounts: torch.Tensor
    weights: torch.Tensor | None = None
    indices: np.ndarray | None = None


class ReplayBuffer:
    """Uniform experience replay in a circular numpy store (one row per transition).

    Vector envs add one transition each per call, interleaved: env e's consecutive transitions sit
    `num_envs` slots apart, which is how n-step returns find an episode's next steps.

    n_step > 1: a sample from slot i sums rewards r_i + γ r_{i+1} + ... over up to n steps of the
    same env and returns the s' of the last step taken, with discount γ^k (k = steps taken). The
    window stops early at the end of an episode: after a termination the discount is 0; after a
    truncation it is γ^k and the target bootstraps from the truncated state. It also stops at the
    newest transition stored for that env. `add` needs `truncated` for that (without it, a time
    limit looks like a continuing episode).
    """

    def __init__(self, capacity: int, obs_shape, obs_dtype, action_shape, action_dtype,
                 gamma: float, device: torch.device, n_step: int = 1, obs_device: torch.device | None = None):
        if int(n_step) < 1:
            raise ValueError(f"n_step must be >= 1, got {n_step}")
        self.capacity = int(capacity)
        self.gamma = float(gamma)
        self.n_step = int(n_step)
        self.device = device
        # On a GPU a batch goes over in one copy from a pinned buffer (deeprl.buffers.staging).
        self.staging = BatchStaging(device) if torch.device(device).type == "cuda" else None
        # Observations kept on a device (algo.replay_device): written there through a pinned buffer
        # of their own, sampled with a gather there; the rest of the store stays in numpy.
        self.obs_device = None if obs_device is None else torch.device(obs_device)
        self.write_staging = BatchStaging(self.obs_device) if self.obs_device is not None and \
            self.obs_device.type == "cuda" else None
        self.obs_shape, self.obs_dtype = tuple(obs_shape), np.dtype(obs_dtype)
        nbytes = self._nbytes(action_shape, action_dtype)
        what = f"a replay buffer of {self.capacity:,} transitions of shape {self.obs_shape}"
        check_fits(nbytes, what, per_item=nbytes // max(self.capacity, 1))
        if self.obs_device is not None and self.obs_device.type == "cuda":
            check_fits_cuda(self.obs_nbytes, what, self.obs_device)
        self._allocate_obs()
        self.actions = np.zeros((self.capacity, *action_shape), dtype=action_dtype)
        self.rewards = np.zeros(self.capacity, dtype=np.float32)
        self.terminated = np.zeros(self.capacity, dtype=np.float32)
        self.truncated = np.zeros(self.capacity, dtype=bool)
        self.pos = 0
        self.size = 0
        self.added = 0  # transitions ever added; the newest has logical id added - 1
        self.num_envs: int | None = None

    @staticmethod
    def nbytes_for(capacity, obs_shape, obs_dtype, action_shape, action_dtype) -> int:
        """Bytes the arrays of a full buffer take."""
        obs = int(np.prod(obs_shape)) * np.dtype(obs_dtype).itemsize
        action = int(np.prod(action_shape, dtype=np.int64)) * np.dtype(action_dtype).itemsize
        return int(capacity) * (2 * obs + action + 4 + 4 + 1)

    def _nbytes(self, action_shape, action_dtype) -> int:
        return self.nbytes_for(self.capacity, self.obs_shape, self.obs_dtype, action_shape, action_dtype)

    @staticmethod
    def obs_nbytes_for(capacity, obs_shape, obs_dtype) -> int:
        """Bytes of the observation store (obs and next_obs rows): what algo.replay_device places."""
        return 2 * int(capacity) * int(np.prod(obs_shape)) * np.dtype(obs_dtype).itemsize

    @property
    def obs_nbytes(self) -> int:
        return self.obs_nbytes_for(self.capacity, self.obs_shape, self.obs_dtype)

    def _allocate_obs(self) -> None:
        self.obs = self._rows((self.capacity, *self.obs_shape))
        self.next_obs = self._rows((self.capacity, *self.obs_shape))

    def _rows(self, shape) -> np.ndarray | torch.Tensor:
        """A zeroed observation store: numpy, or a tensor on `obs_device`."""
        if self.obs_device is None:
            return np.zeros(shape, dtype=self.obs_dtype)
        return torch.zeros(shape, dtype=torch.from_numpy(np.zeros(0, self.obs_dtype)).dtype, device=self.obs_device)

    def _put(self, store, slots: np.ndarray, values) -> None:
        """store[slots] = values, for either kind of store."""
        if isinstance(store, np.ndarray):
            store[slots] = values
            return
        arrays = [np.asarray(slots, dtype=np.int64), np.asarray(values, dtype=self.obs_dtype)]
        if self.write_staging is not None:
            slots_t, values_t = self.write_staging.send(arrays)
        else:
            slots_t, values_t = (torch.from_numpy(np.ascontiguousarray(a)) for a in arrays)
        store.index_copy_(0, slots_t, values_t)

    def __len__(self) -> int:
        return self.size

    @property
    def oldest(self) -> int:
        """Logical id of the oldest stored transition."""
        return self.added - self.size

    def add(self, obs, actions, rewards, next_obs, terminated, truncated=None) -> None:
        """Store one transition per vector env (leading axis = env)."""
        n = len(rewards)
        if self.num_envs is None:
            self.num_envs = n
        elif n != self.num_envs:
            raise ValueError(f"add: got {n} transitions, the buffer was filled with {self.num_envs} envs")
        idx = (self.pos + np.arange(n)) % self.capacity
        self._store_obs(idx, obs, next_obs)
        self.actions[idx] = actions
        self.rewards[idx] = rewards
        self.terminated[idx] = terminated
        self.truncated[idx] = False if truncated is None else truncated
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)
        self.added += n

    def _store_obs(self, idx: np.ndarray, obs, next_obs) -> None:
        self._put(self.obs, idx, obs)
        self._put(self.next_obs, idx, next_obs)

    def _obs(self, idx: np.ndarray) -> np.ndarray:
        """The observations of slots `idx`; with a device store, what `_gather_obs` takes instead."""
        return self.obs[idx] if self.obs_device is None else idx

    def _next_obs(self, idx: np.ndarray) -> np.ndarray:
        return self.next_obs[idx] if self.obs_device is None else idx

    def _gather_obs(self, keys: torch.Tensor, next_: bool) -> torch.Tensor:
        """The observations of a batch, gathered on the device from what `_obs` returned."""
        return (self.next_obs if next_ else self.obs).index_select(0, keys)

    def _first_slot(self) -> int:
        # Stored transitions occupy slots first, first + 1, ..., first + size - 1 (mod capacity).
        return 0

    def sample(self, batch_size: int, rng: np.random.Generator) -> Batch:
        idx = (self._first_slot() + rng.integers(0, self.size, size=batch_size)) % self.capacity
        return self._batch(idx)

    def latest(self, batch_size: int) -> Batch:
        """The newest `batch_size` transitions, for learning without replay (the Nature ablation)."""
        idx = (self.pos - 1 - np.arange(min(batch_size, self.size))) % self.capacity
        return self._batch(idx)

    def _batch(self, idx: np.ndarray, weights: np.ndarray | None = None) -> Batch:
        """The transitions in slots `idx` as tensors on the device (with prioritized replay's
        importance weights when given)."""
        last, rewards, discounts = self._returns(idx)
        arrays = [self._obs(idx), self.actions[idx], rewards, self._next_obs(last), discounts]
        if weights is not None:
            arrays.append(weights.astype(np.float32))
        if self.staging is not None:
            tensors = self.staging.send(arrays)
        else:
            tensors = [torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]
        if self.obs_device is not None:
            tensors[0], tensors[3] = self._gather_obs(tensors[0], False), self._gather_obs(tensors[3], True)
        return Batch(*tensors[:5], weights=tensors[5] if weights is not None else None)

    def _returns(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(slot whose s' to bootstrap from, n-step reward, discount) for each sampled slot."""
        if self.n_step == 1:
            discounts = self.gamma * (1.0 - self.terminated[idx])
            return idx, self.rewards[idx], discounts.astype(np.float32)
        # How many newer transitions of the same env are stored after each sampled one.
        newer = ((self.pos - 1 - idx) % self.capacity) // self.num_envs
        rewards = np.zeros(len(idx))
        steps = np.zeros(len(idx), dtype=np.int64)
        last = idx.copy()
        open_ = np.ones(len(idx), dtype=bool)  # the window has not ended yet
        for k in range(self.n_step):
            j = (idx + k * self.num_envs) % self.capacity
            open_ &= newer >= k
            rewards += np.where(open_, self.gamma ** k * self.rewards[j], 0.0)
            steps += open_
            last = np.where(open_, j, last)
            open_ &= (self.terminated[j] == 0) & ~self.truncated[j]
        discounts = self.gamma ** steps * (1.0 - self.terminated[last])
        return last, rewards.astype(np.float32), discounts.astype(np.float32)

    # Checkpoints ---------------------------------------------------------------------------
    # Everything that changes as transitions are added: the filled rows of the arrays (as tensors
    # sharing the arrays' memory, so saving copies nothing first) and the counters.
    COUNTERS = ("pos", "size", "added", "num_envs")

    def _arrays(self) -> dict[str, int]:
        """The stored arrays, each with the number of leading rows that hold data."""
        rows = min(self.added, self.capacity)
        return {name: rows for name in ("obs", "next_obs", "actions", "rewards", "terminated", "truncated")}

    def state_dict(self) -> dict:
        arrays = {name: self._saved(getattr(self, name)[:rows]) for name, rows in self._arrays().items()}
        counters = {name: copy.deepcopy(getattr(self, name)) for name in self.COUNTERS}
        return {"capacity": self.capacity, "arrays": arrays, "counters": counters}

    def load_state_dict(self, state: dict) -> None:
        if state["capacity"] != self.capacity:
            raise ValueError(f"replay: the checkpoint holds {state['capacity']} slots, this buffer {self.capacity}")
        for name, value in state["counters"].items():
            setattr(self, name, copy.deepcopy(value))
        for name, tensor in state["arrays"].items():
            store = getattr(self, name)
            if isinstance(store, np.ndarray):
                store[:len(tensor)] = tensor.numpy()
            else:  # a store on a device, whichever device the checkpoint was written from
                store[:len(tensor)].copy_(tensor)

    @staticmethod
    def _saved(rows) -> torch.Tensor:
        # numpy rows as a tensor sharing their memory; a device store's rows copied to the host, so a
        # checkpoint loads the same on a machine with or without that device.
        return torch.from_numpy(rows) if isinstance(rows, np.ndarray) else rows.cpu()

    @property
    def saved_nbytes(self) -> int:
        """Bytes the arrays add to a checkpoint now."""
        return sum(getattr(self, name)[:rows].nbytes for name, rows in self._arrays().items())

