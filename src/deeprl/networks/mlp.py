import math

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "gelu": nn.GELU, "silu": nn.SiLU}


class MLP(nn.Module):
    """Flattened observation -> hidden layers with an activation after each. `out_dim` features."""

    def __init__(self, obs_shape, hidden_sizes=(64, 64), activation="relu"):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"network.activation: unknown '{activation}'; use one of {sorted(ACTIVATIONS)}")
        layers: list[nn.Module] = [nn.Flatten()]
        in_dim = int(math.prod(obs_shape))
        for size in hidden_sizes:
            layers += [nn.Linear(in_dim, int(size)), ACTIVATIONS[activation]()]
            in_dim = int(size)
        self.body = nn.Sequential(*layers)
        self.out_dim = in_dim

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.body(obs.float())
