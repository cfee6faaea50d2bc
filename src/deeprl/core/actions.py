"""Continuous actions: mapping between [-1, 1]^d and a Box's [low, high] bounds (numpy or torch)."""

import gymnasium as gym
import numpy as np
import torch


class ActionScale:
    """The affine map a = bias + scale · u taking u ∈ [-1, 1] (a tanh output) to [low, high] per
    dimension, and back. Works on numpy arrays and on torch tensors (on `device`)."""

    def __init__(self, space: gym.spaces.Box, device: torch.device | None = None):
        low = np.asarray(space.low, dtype=np.float32).reshape(-1)
        high = np.asarray(space.high, dtype=np.float32).reshape(-1)
        if not (np.isfinite(low).all() and np.isfinite(high).all()):
            raise ValueError("ActionScale needs finite action bounds")
        self.low, self.high = low, high
        self.scale_np = (high - low) / 2.0
        self.bias_np = (high + low) / 2.0
        self.scale = torch.as_tensor(self.scale_np, device=device)
        self.bias = torch.as_tensor(self.bias_np, device=device)

    def from_unit(self, u):
        if isinstance(u, torch.Tensor):
            return u * self.scale + self.bias
        return u * self.scale_np + self.bias_np

    def to_unit(self, a):
        if isinstance(a, torch.Tensor):
            return (a - self.bias) / self.scale
        return (a - self.bias_np) / self.scale_np
