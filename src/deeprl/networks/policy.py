"""Policy and value heads, and their assembly with torsos into an actor-critic network.

The action distributions are written as a few tensor formulas instead of `torch.distributions`
objects: building a distribution object per forward pass costs more than the small MLPs it sits
on, and the formulas are what the tests check.
"""

import math

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import nn

LOG_2PI = math.log(2.0 * math.pi)


# Diagonal Gaussian -------------------------------------------------------------------------


def gaussian_log_prob(mean: torch.Tensor, log_std: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """log N(actions; mean, diag(exp(log_std))²), summed over the action dimensions."""
    z = (actions - mean) * torch.exp(-log_std)
    return (-0.5 * z.pow(2) - log_std - 0.5 * LOG_2PI).sum(-1)


def gaussian_entropy(log_std: torch.Tensor) -> torch.Tensor:
    """Entropy of a diagonal Gaussian: Σ_i (½ log(2πe) + log σ_i)."""
    return (0.5 + 0.5 * LOG_2PI + log_std).sum(-1)


# Categorical -------------------------------------------------------------------------------


def categorical_log_prob(logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[action]: the negated cross-entropy, one fused kernel (forward and back)."""
    if logits.dim() != 2:
        return categorical_log_prob(logits.reshape(-1, logits.shape[-1]), actions.reshape(-1)).reshape(actions.shape)
    return -F.cross_entropy(logits, actions.long(), reduction="none")


def categorical_entropy(logits: torch.Tensor) -> torch.Tensor:
    log_p = F.log_softmax(logits, dim=-1)
    return -(log_p.exp() * log_p).sum(-1)


class CategoricalHead(nn.Module):
    """Logits over `n_actions` discrete actions. Its distribution parameters are the logits."""

    discrete = True

    def __init__(self, in_dim: int, n_actions: int):
        super().__init__()
        self.out = nn.Linear(in_dim, n_actions)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.linear(features, self.out.weight, self.out.bias)

    def sample(self, logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        # Inverse-CDF sampling with one uniform per row: a few cheap kernels (torch.multinomial
        # costs several times more for a handful of actions).
        u = torch.rand((*logits.shape[:-1], 1), generator=generator, device=logits.device)
        cdf = F.softmax(logits, dim=-1).cumsum(-1)
        # The first action whose cumulative probability reaches u (clamped against rounding).
        return torch.searchsorted(cdf, u).squeeze(-1).clamp_(max=logits.shape[-1] - 1)

    def mode(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.argmax(-1)

    def log_prob(self, logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return categorical_log_prob(logits, actions)

    def entropy(self, logits: torch.Tensor) -> torch.Tensor:
        return categorical_entropy(logits)


class GaussianHead(nn.Module):
    """Mean of a diagonal Gaussian from the features; the log-std is a free parameter, the same for
    every state (state-independent), as in PPO's original continuous-control setup."""

    discrete = False

    def __init__(self, in_dim: int, action_dim: int, init_log_std: float = 0.0):
        super().__init__()
        self.out = nn.Linear(in_dim, action_dim)
        self.log_std = nn.Parameter(torch.full((action_dim,), float(init_log_std)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.linear(features, self.out.weight, self.out.bias)

    def sample(self, mean: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + noise * self.log_std.exp()

    def mode(self, mean: torch.Tensor) -> torch.Tensor:
        return mean

    def log_prob(self, mean: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return gaussian_log_prob(mean, self.log_std, actions)

    def entropy(self, mean: torch.Tensor) -> torch.Tensor:
        return gaussian_entropy(self.log_std).expand(mean.shape[:-1])


class ValueHead(nn.Module):
    """A scalar V(s) per observation."""

    def __init__(self, in_dim: int):
        super().__init__()
        self.out = nn.Linear(in_dim, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.linear(features, self.out.weight, self.out.bias).squeeze(-1)


# Observation normalisation -----------------------------------------------------------------


class RunningNorm(nn.Module):
    """(obs - mean) / std with a running mean and variance over every observation seen, clipped.

    The statistics are buffers, so they travel with the network's state_dict into checkpoints
    and evaluation. They only change when `update` is called.
    """

    def __init__(self, shape, clip: float = 10.0, eps: float = 1e-8):
        super().__init__()
        self.clip, self.eps = clip, eps
        self.register_buffer("mean", torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("var", torch.ones(shape, dtype=torch.float64))
        self.register_buffer("count", torch.tensor(eps, dtype=torch.float64))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        std = torch.sqrt(self.var + self.eps).float()
        return ((obs.float() - self.mean.float()) / std).clamp(-self.clip, self.clip)

    @torch.no_grad()
    def update(self, obs: torch.Tensor) -> None:
        """Merge a batch (leading axis = samples) into the running moments (Chan et al.)."""
        batch = obs.reshape(-1, *self.mean.shape).double()
        n = batch.shape[0]
        batch_mean, batch_var = batch.mean(0), batch.var(0, unbiased=False)
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean += delta * n / total
        self.var.copy_((self.var * self.count + batch_var * n + delta.pow(2) * self.count * n / total) / total)
        self.count.copy_(total)


# Assembly ------------------------------------------------------------------------------------


class ActorCriticNet(nn.Module):
    """obs → (distribution parameters, V(s)).

    `critic_torso=None` with a value head means the critic shares the actor's torso (one set of
    features, two heads); `value_head=None` means no critic at all (plain REINFORCE).
    """

    def __init__(self, actor_torso: nn.Module, policy_head: nn.Module, critic_torso: nn.Module | None,
                 value_head: nn.Module | None, obs_norm: nn.Module | None = None):
        super().__init__()
        self.obs_norm = obs_norm
        self.actor_torso = actor_torso
        self.head = policy_head
        self.critic_torso = critic_torso
        self.value_head = value_head

    def normalize(self, obs: torch.Tensor) -> torch.Tensor:
        return obs if self.obs_norm is None else self.obs_norm(obs)

    @property
    def has_critic(self) -> bool:
        return self.value_head is not None

    @property
    def shared(self) -> bool:
        return self.value_head is not None and self.critic_torso is None

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = self.normalize(obs)
        features = self.actor_torso(x)
        params = self.head(features)
        if self.value_head is None:
            return params, None
        critic_features = features if self.critic_torso is None else self.critic_torso(x)
        return params, self.value_head(critic_features)

    def policy(self, obs: torch.Tensor) -> torch.Tensor:
        return self.head(self.actor_torso(self.normalize(obs)))

    def policy_and_shared_value(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(distribution parameters, V(s) or None) in the policy's one pass. V comes only with a
        shared torso, where it is a small head on features computed anyway; a critic with a torso
        of its own would cost a second pass, cheaper batched over a whole rollout."""
        features = self.actor_torso(self.normalize(obs))
        return self.head(features), (self.value_head(features) if self.shared else None)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        x = self.normalize(obs)
        torso = self.actor_torso if self.critic_torso is None else self.critic_torso
        return self.value_head(torso(x))

    def actor_parameters(self) -> list[nn.Parameter]:
        """Parameters only the policy loss should move (everything but the critic's own)."""
        return [*self.head.parameters()] + ([] if self.shared else [*self.actor_torso.parameters()])

    def critic_parameters(self) -> list[nn.Parameter]:
        """The value head, its torso, and with a shared torso the torso too."""
        if self.value_head is None:
            return []
        torso = self.actor_torso if self.critic_torso is None else self.critic_torso
        return [*torso.parameters(), *self.value_head.parameters()]


def orthogonal_init(module: nn.Module, gain: float) -> None:
    """Orthogonal weights and zero biases for every linear and convolution layer in `module`
    (the initialisation PPO's reference implementation uses).

    The QR decomposition behind it runs on one thread: its last bits depend on the thread count,
    and a run must start from the same weights on every machine (and in every process state).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for layer in module.modules():
            if isinstance(layer, (nn.Linear, nn.Conv2d)):
                # Drawn in a contiguous tensor and copied: channels_last convolution weights cannot
                # be viewed as the matrix orthogonal_ fills; copy_ keeps their memory format.
                weight = torch.empty(layer.weight.shape, dtype=layer.weight.dtype, device=layer.weight.device)
                nn.init.orthogonal_(weight, gain)
                with torch.no_grad():
                    layer.weight.copy_(weight)
                nn.init.zeros_(layer.bias)
    finally:
        torch.set_num_threads(threads)


def build_actor_critic(network, obs_shape, action_space, *, critic: bool = True, shared: bool = False,
                       ortho_init: bool = True, init_log_std: float = 0.0,
                       normalize_obs: bool = False) -> ActorCriticNet:
    """Torso(s) from the `network` config, a categorical or Gaussian policy head from the action
    space, and optionally a value head on its own torso or on the actor's."""
    actor_torso = instantiate(network, obs_shape=obs_shape)
    if hasattr(action_space, "n"):
        head = CategoricalHead(actor_torso.out_dim, int(action_space.n))
    else:
        head = GaussianHead(actor_torso.out_dim, int(math.prod(action_space.shape)), init_log_std)
    critic_torso = instantiate(network, obs_shape=obs_shape) if critic and not shared else None
    value_head = ValueHead((actor_torso if critic_torso is None else critic_torso).out_dim) if critic else None
    if ortho_init:
        # √2 for ReLU/tanh layers; a near-zero policy head starts near-uniform (or at mean 0);
        # the value head starts at unit scale.
        for torso in (actor_torso, critic_torso):
            if torso is not None:
                orthogonal_init(torso, math.sqrt(2.0))
        orthogonal_init(head, 0.01)
        if value_head is not None:
            orthogonal_init(value_head, 1.0)
    obs_norm = RunningNorm(tuple(obs_shape)) if normalize_obs else None
    return ActorCriticNet(actor_torso, head, critic_torso, value_head, obs_norm)
