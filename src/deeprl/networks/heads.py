import torch
from torch import nn


class QHead(nn.Module):
    """One Q-value per action."""

    def __init__(self, in_dim: int, n_actions: int):
        super().__init__()
        self.out = nn.Linear(in_dim, n_actions)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.out(features)


class DuelingHead(nn.Module):
    """Q = V + A - mean(A) (Wang et al. 2016): the mean keeps V and A identifiable."""

    def __init__(self, in_dim: int, n_actions: int):
        super().__init__()
        self.value = nn.Linear(in_dim, 1)
        self.advantage = nn.Linear(in_dim, n_actions)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        advantage = self.advantage(features)
        return self.value(features) + advantage - advantage.mean(dim=-1, keepdim=True)
