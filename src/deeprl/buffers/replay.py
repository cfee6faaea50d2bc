from typing import NamedTuple

import numpy as np
import torch


class Batch(NamedTuple):
    """A sampled minibatch, already on the training device.

    `discounts` is the factor in front of the bootstrap value: gamma**n for an n-step
    transition and 0 after a true termination, so the TD target is always
    `rewards + discounts * V(next_obs)`. Truncation by a time limit is not a termination:
    it keeps its discount and bootstraps.
    """

    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_obs: torch.Tensor
    discounts: torch.Tensor


class ReplayBuffer:
    """Uniform experience replay in a circular numpy store (one row per transition)."""

    def __init__(self, capacity: int, obs_shape, obs_dtype, action_shape, action_dtype,
                 gamma: float, device: torch.device):
        self.capacity = int(capacity)
        self.gamma = float(gamma)
        self.device = device
        self.obs = np.zeros((self.capacity, *obs_shape), dtype=obs_dtype)
        self.next_obs = np.zeros((self.capacity, *obs_shape), dtype=obs_dtype)
        self.actions = np.zeros((self.capacity, *action_shape), dtype=action_dtype)
        self.rewards = np.zeros(self.capacity, dtype=np.float32)
        self.terminated = np.zeros(self.capacity, dtype=np.float32)
        self.pos = 0
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(self, obs, actions, rewards, next_obs, terminated) -> None:
        """Store one transition per vector env (leading axis = env)."""
        n = len(rewards)
        idx = (self.pos + np.arange(n)) % self.capacity
        self.obs[idx] = obs
        self.next_obs[idx] = next_obs
        self.actions[idx] = actions
        self.rewards[idx] = rewards
        self.terminated[idx] = terminated
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int, rng: np.random.Generator) -> Batch:
        idx = rng.integers(0, self.size, size=batch_size)
        return self._batch(idx)

    def _batch(self, idx: np.ndarray) -> Batch:
        discounts = self.gamma * (1.0 - self.terminated[idx])
        to = self._to_device
        return Batch(to(self.obs[idx]), to(self.actions[idx]), to(self.rewards[idx]),
                     to(self.next_obs[idx]), to(discounts.astype(np.float32)))

    def _to_device(self, array: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(array)
        if self.device.type == "cuda":
            return tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor
