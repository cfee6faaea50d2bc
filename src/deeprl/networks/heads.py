import torch
import torch.nn.functional as F
from torch import nn

# Heads apply their layers functionally (F.linear on the layers' parameters): a module call per
# layer costs as much as a small matmul, and DQN evaluates its head once per environment step.


class QHead(nn.Module):
    """One Q-value per action."""

    def __init__(self, in_dim: int, n_actions: int):
        super().__init__()
        self.out = nn.Linear(in_dim, n_actions)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.linear(features, self.out.weight, self.out.bias)


class DuelingHead(nn.Module):
    """Q = V + A - mean(A) (Wang et al. 2016): the mean keeps V and A identifiable."""

    def __init__(self, in_dim: int, n_actions: int):
        super().__init__()
        self.value = nn.Linear(in_dim, 1)
        self.advantage = nn.Linear(in_dim, n_actions)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        value = F.linear(features, self.value.weight, self.value.bias)
        advantage = F.linear(features, self.advantage.weight, self.advantage.bias)
        return value + advantage - advantage.mean(dim=-1, keepdim=True)
