"""Networks of the continuous-action off-policy agents (DDPG, TD3, SAC).

- `Critics`: n independent Q(s, a) MLPs (one for DDPG, twins for TD3 and SAC) evaluated together:
  each layer of all n critics is one batched matrix product, so the twins cost the calls of one.
- `DeterministicActor`: μ(s) = tanh(MLP(s)) in [-1, 1]^d.
- `SquashedGaussianActor`: u ~ N(mean(s), std(s)), a = tanh(u), with the log-density of a after
  the tanh change of variables.

Actors output actions in [-1, 1]^d and critics take them there; deeprl.core.actions.ActionScale
maps them to the env's bounds (and stored env actions back).
"""

import math

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import nn

from deeprl.networks.mlp import ACTIVATIONS
from deeprl.networks.policy import LOG_2PI, gaussian_log_prob

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # as Stable-Baselines3's SAC
LOG2 = math.log(2.0)


class Critics(nn.Module):
    """`n` Q-networks over the concatenation (observation, action) → [n, batch] values.

    Each critic is an MLP (hidden_sizes, activation) with nn.Linear's default initialisation; layer
    l of all critics is one weight tensor [n, in, out], applied with a batched matmul.
    """

    def __init__(self, in_dim: int, hidden_sizes, activation: str, n: int):
        super().__init__()
        self.n = n
        self._act = ACTIVATIONS[activation]
        sizes = [in_dim, *(int(s) for s in hidden_sizes), 1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
            bound = 1.0 / math.sqrt(n_in)  # nn.Linear's kaiming_uniform(a=√5) and bias bounds
            # Hidden layers as [n, in, out] for baddbmm; the one-unit output layer as [n, 1, in] rows
            # (a matrix-vector product is cheaper as a multiply and a sum than as a bmm).
            shape = (n, n_in, n_out) if n_out > 1 else (n, 1, n_in)
            self.weights.append(nn.Parameter(torch.empty(shape).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(n, 1, n_out).uniform_(-bound, bound)))
        self._params = tuple(zip(self.weights, self.biases, strict=True))
        self._detached: dict[int | None, tuple] = {}

    def forward(self, obs: torch.Tensor, actions: torch.Tensor, params=None) -> torch.Tensor:
        """Q_i(s, a) for each critic i: shape [n, batch]. `params`: (weight, bias) pairs to use
        instead of the module's own (e.g. detached ones, so a loss reaches the actions only)."""
        x = torch.cat([obs.reshape(obs.shape[0], -1).float(), actions], dim=1)
        *hidden, (weight, bias) = params if params is not None else self._params
        x = x.expand(weight.shape[0], *x.shape)  # every critic reads the same input (a view, no copy)
        for w, b in hidden:
            x = self._act(torch.baddbmm(b, x, w))
        return (x * weight).sum(-1) + bias.squeeze(-1)

    def detached(self, first: int | None = None) -> tuple:
        """The parameters without their gradient connection (the actor's loss leaves Q's weights
        alone); `first=k` keeps only the first k critics (TD3's actor reads Q₁ alone).

        Made once and kept: they are views of the parameters, which every update (optimizer step,
        load_state_dict, Polyak average) changes in place, so they always read the current values."""
        if first not in self._detached:
            self._detached[first] = tuple((w[:first].detach(), b[:first].detach()) for w, b in self._params)
        return self._detached[first]


class DeterministicActor(nn.Module):
    """μ(s) = tanh(W · torso(s) + b) in [-1, 1]^d."""

    def __init__(self, network, obs_shape, action_dim: int):
        super().__init__()
        self.torso = instantiate(network, obs_shape=obs_shape)
        self.head = nn.Linear(self.torso.out_dim, action_dim)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.head(self.torso(obs)))


class SquashedGaussianActor(nn.Module):
    """A Gaussian over pre-squash actions u with state-dependent mean and log-std (clamped to
    [-20, 2]); the action is tanh(u) ∈ [-1, 1]^d."""

    def __init__(self, network, obs_shape, action_dim: int):
        super().__init__()
        self.torso = instantiate(network, obs_shape=obs_shape)
        self.mean = nn.Linear(self.torso.out_dim, action_dim)
        self.log_std = nn.Linear(self.torso.out_dim, action_dim)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.torso(obs)
        return self.mean(features), self.log_std(features).clamp(LOG_STD_MIN, LOG_STD_MAX)

    def sample(self, obs: torch.Tensor, generator: torch.Generator | None = None):
        """(a = tanh(u), log π(a|s)) with u = mean + std · ε drawn by reparameterisation, so
        gradients flow through a into the mean and std."""
        mean, log_std = self(obs)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        u = mean + noise * log_std.exp()
        # log N(u; mean, std²) with (u − mean) / std written as the noise it is (the same value and
        # gradient, in fewer operations), then the tanh correction.
        log_prob = (-0.5 * noise.pow(2) - log_std).sum(-1) - 0.5 * LOG_2PI * mean.shape[-1]
        return torch.tanh(u), log_prob - tanh_log_det(u)

    def mode(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self(obs)[0])


def tanh_log_det(u: torch.Tensor) -> torch.Tensor:
    """Σ log(1 − tanh²(u)) over dimensions, as 2 (log 2 − u − softplus(−2u)): finite even where
    tanh(u) rounds to ±1."""
    return (2.0 * (LOG2 - u - F.softplus(-2.0 * u))).sum(-1)


def squashed_log_prob(mean: torch.Tensor, log_std: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """log density of a = tanh(u), u ~ N(mean, std²), summed over dimensions:
    log N(u) − Σ log(1 − tanh²(u)) (the change of variables through tanh)."""
    return gaussian_log_prob(mean, log_std, u) - tanh_log_det(u)
