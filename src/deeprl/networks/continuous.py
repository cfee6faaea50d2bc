"""Networks of the continuous-action off-policy agents (DDPG, TD3, SAC).

- `StackedMLP`: n MLPs of one shape evaluated together (each layer of all n is one batched
  matrix product), with their gradients written out layer by layer instead of recorded by autograd.
- `Critics`: n independent Q(s, a) MLPs (one for DDPG, twins for TD3 and SAC) on a StackedMLP.
- `DeterministicActor`: μ(s) = tanh(MLP(s)) in [-1, 1]^d, on a StackedMLP of one network.
- `SquashedGaussianActor`: u ~ N(mean(s), std(s)), a = tanh(u), with the log-density of a after
  the tanh change of variables; on a StackedMLP of one network, its gradient written out too.

Actors output actions in [-1, 1]^d and critics take them there; deeprl.core.actions.ActionScale
maps them to the env's bounds (and stored env actions back).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from deeprl.networks.mlp import ACTIVATIONS
from deeprl.networks.policy import LOG_2PI, gaussian_log_prob

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # as Stable-Baselines3's SAC
LOG2 = math.log(2.0)


# ∂L/∂z of each activation h = f(z), given ∂L/∂h, z and h: aten's own backward kernels, the ones
# autograd would run.
ACTIVATION_GRADS = {
    "relu": lambda g, z, h: torch.ops.aten.threshold_backward(g, h, 0),
    "tanh": lambda g, z, h: torch.ops.aten.tanh_backward(g, h),
    "elu": lambda g, z, h: torch.ops.aten.elu_backward(g, 1.0, 1, 1, True, h),  # F.elu's alpha = 1
    "gelu": lambda g, z, h: torch.ops.aten.gelu_backward(g, z),
    "silu": lambda g, z, h: torch.ops.aten.silu_backward(g, z),
}


class StackedMLP(nn.Module):
    """`n` MLPs of one shape (in_dim → hidden_sizes → out_dim, `activation` after each hidden
    layer) reading the same input [batch, in_dim]: outputs [n, batch, out_dim]. Layer l of all n is
    one weight tensor [n, in, out] applied with a batched matmul, so twin critics cost the calls of
    one. Initialised as nn.Linear (uniform within ±1/√fan_in, weights and biases).

    Learning does not go through autograd: `evaluate` keeps each layer's input, pre-activation and
    output, and `backward` / `input_gradient` apply the chain rule layer by layer with the kernels
    autograd would run. For networks this small autograd's bookkeeping (a graph node per operation,
    gradient accumulation into each parameter) costs about a quarter of a learning step;
    tests/unit/test_continuous.py checks both against autograd for every activation.

    `low` (e.g. torch.bfloat16): `evaluate`, `backward` and `input_gradient` multiply the
    hidden-to-hidden layers in that dtype, where nearly all the arithmetic of a wide network is
    (products accumulate in fp32; inputs, outputs and gradients are rounded to `low`). The first
    layer (which reads the observation and action as given), the output layer, the biases, the
    activations, the parameters and their gradients stay fp32, as does `forward` (acting, where a
    product over a few observations gains nothing from casting every weight).

    `gemm="onednn"`: the same hidden-to-hidden products of learning, kept in fp32, go to oneDNN's
    matmul (one call per network) instead of torch's batched matmul (MKL's sgemm on x86 builds),
    for CPUs where MKL leaves speed behind (deeprl.core.device.onednn_pays). Same arithmetic,
    different kernels: results agree to float rounding, not bit for bit.
    """

    def __init__(self, in_dim: int, hidden_sizes, activation: str, out_dim: int, n: int,
                 low: torch.dtype | None = None, gemm: str = "torch"):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"network.activation: unknown '{activation}'; use one of {sorted(ACTIVATIONS)}")
        self._act, self._act_grad = ACTIVATIONS[activation], ACTIVATION_GRADS[activation]
        sizes = [in_dim, *(int(s) for s in hidden_sizes), out_dim]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
            bound = 1.0 / math.sqrt(n_in)  # nn.Linear's kaiming_uniform(a=√5) and bias bounds
            self.weights.append(nn.Parameter(torch.empty(n, n_in, n_out).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(n, 1, n_out).uniform_(-bound, bound)))
        self._params = tuple(zip(self.weights, self.biases, strict=True))
        self._firsts: dict[int, tuple] = {}
        self.low = low
        if gemm not in ("torch", "onednn"):
            raise ValueError(f"StackedMLP: gemm must be torch or onednn, got {gemm!r}")
        self.onednn = gemm == "onednn" and low is None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Through autograd, like any module, in fp32: [batch, in_dim] → [n, batch, out_dim]."""
        *hidden, (weight, bias) = self._params
        x = x.expand(weight.shape[0], *x.shape)  # every network reads the same input (a view, no copy)
        for w, b in hidden:
            x = self._act(torch.baddbmm(b, x, w))
        return _affine(x, weight, bias)

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, first: int | None = None):
        """(outputs [n, batch, out_dim], cache) without autograd; the cache is what `backward` and
        `input_gradient` need. `first=k`: the first k networks only."""
        params = self._params if first is None else self._first(first)
        *hidden, (weight, bias) = params
        x = x.expand(weight.shape[0], *x.shape)
        inputs, pre = [x], []  # each layer's input (the last: the output layer's); pre-activations
        lows = [None] * len(params)  # a `low` layer's input and weight in `low`, for the gradients
        for layer, (w, b) in enumerate(hidden):
            if layer and self.low is not None:  # a hidden-to-hidden product
                lows[layer] = (x.to(self.low), w.to(self.low))
                pre.append(torch.bmm(*lows[layer]).float().add_(b))
            elif self._onednn_layer(layer, params):
                pre.append(_onednn_each(x, w.transpose(1, 2), b))
            else:
                pre.append(torch.baddbmm(b, x, w))
            x = self._act(pre[-1])
            inputs.append(x)
        return _affine(x, weight, bias), (params, inputs, pre, lows)

    def _first(self, k: int) -> tuple:
        # Views of the parameters, made once: every update changes the parameters in place.
        if k not in self._firsts:
            self._firsts[k] = tuple((w[:k], b[:k]) for w, b in self._params)
        return self._firsts[k]

    @torch.no_grad()
    def backward(self, cache, dy: torch.Tensor) -> None:
        """Set each parameter's .grad to ∂L/∂θ given dy = ∂L/∂output [n, batch, out_dim] for the
        outputs of `evaluate(...)` (all n networks). Written into the existing .grad tensors (views
        of a flat gradient, see deeprl.core.params.flat_parameters), which autograd would add to."""
        params, inputs, pre, lows = cache
        if params is not self._params:
            raise ValueError("StackedMLP.backward: the cache must come from evaluate() of all networks (first=None)")
        g = dy  # ∂L/∂z of the current layer (the output layer has no activation)
        for layer in reversed(range(len(params))):
            weight, bias = params[layer]
            x, grad_w = inputs[layer], _grad_of(weight)
            g_low = None if lows[layer] is None else g.to(self.low)
            if g_low is not None:
                grad_w.copy_(torch.bmm(lows[layer][0].transpose(1, 2), g_low))
            elif self._onednn_layer(layer, params):
                for i in range(weight.shape[0]):  # xᵀ g, as oneDNN's x Wᵀ with x ← gᵀ and W ← xᵀ
                    grad_w[i].copy_(_onednn(x[i].t(), g[i].t()))
            elif _matrix_vector(weight):
                torch.sum(x * g, 1, out=grad_w.view(grad_w.shape[:-1]))
            elif layer == 0:  # the input is one matrix all networks read (an expanded view)
                torch.matmul(x[0].t(), g, out=grad_w)
            else:
                torch.bmm(x.transpose(1, 2), g, out=grad_w)
            torch.sum(g, 1, keepdim=True, out=_grad_of(bias))
            if layer:
                onednn = self._onednn_layer(layer, params)
                g = self._act_grad(self._input_grad(g, weight, lows[layer], g_low, onednn), pre[layer - 1], x)

    @torch.no_grad()
    def input_gradient(self, cache, dy: torch.Tensor, last: int) -> torch.Tensor:
        """∂L/∂x for the `last` input columns [batch, last], given dy = ∂L/∂output [k, batch, out]
        for the outputs of `evaluate(...)`, summed over the k networks evaluated."""
        params, inputs, pre, lows = cache
        g = dy
        for layer in reversed(range(1, len(params))):
            onednn = self._onednn_layer(layer, params)
            g = self._act_grad(self._input_grad(g, params[layer][0], lows[layer], onednn=onednn),
                               pre[layer - 1], inputs[layer])
        return _affine_input_grad(g, params[0][0][:, -last:]).sum(0)

    def _onednn_layer(self, layer: int, params) -> bool:
        """Whether `layer` is a hidden-to-hidden product that oneDNN multiplies."""
        return self.onednn and 0 < layer < len(params) - 1

    def _input_grad(self, g: torch.Tensor, weight: torch.Tensor, low, g_low=None, onednn=False) -> torch.Tensor:
        """∂L/∂(layer input) = g Wᵀ, in `low` for a layer evaluated there (`g_low`: g already cast),
        by oneDNN for a layer it multiplies."""
        if onednn:
            return _onednn_each(g, weight)
        if low is None:
            return _affine_input_grad(g, weight)
        return torch.bmm(g.to(self.low) if g_low is None else g_low, low[1].transpose(1, 2)).float()


def _onednn(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """x Wᵀ + b by oneDNN's fp32 matmul on dense CPU tensors (the op torch's own compiler emits for
    CPU linear layers); x [batch, in], W [out, in] (any strides), b [out] or None."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


def _onednn_each(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """`_onednn` for each network: x [n, batch, in], W [n, out, in], b [n, 1, out] or None →
    [n, batch, out] (a single network's without a copy)."""
    products = [_onednn(x[i], weight[i], None if bias is None else bias[i, 0]) for i in range(weight.shape[0])]
    return products[0].unsqueeze(0) if len(products) == 1 else torch.stack(products)


def _matrix_vector(weight: torch.Tensor) -> bool:
    """Several networks with one output unit: their batched matrix-vector product is slow in the
    CPU's batched matmul (twin critics, 64 units, batch 256: 19 µs against 7 µs as a multiply and
    a sum; its two gradients 25 and 19 µs against 5 and 3). A single network's is fast (3 µs)."""
    return weight.shape[-1] == 1 and weight.shape[0] > 1


def _affine(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """x W + b for each network: [n, batch, in] · [n, in, out] + [n, 1, out]."""
    if _matrix_vector(weight):
        return (x * weight.transpose(1, 2)).sum(-1, keepdim=True) + bias
    return torch.baddbmm(bias, x, weight)


def _affine_input_grad(g: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """∂L/∂x = g Wᵀ of `_affine`, given g = ∂L/∂(x W + b)."""
    if _matrix_vector(weight):
        return g * weight.transpose(1, 2)
    return torch.bmm(g, weight.transpose(1, 2))


class Critics(nn.Module):
    """`n` Q-networks over the concatenation (observation, action) → [n, batch] values: one
    StackedMLP with a single output unit; `evaluate`, `backward` and `action_gradient` as its own."""

    def __init__(self, in_dim: int, hidden_sizes, activation: str, n: int, low: torch.dtype | None = None,
                 gemm: str = "torch"):
        super().__init__()
        self.net = StackedMLP(in_dim, hidden_sizes, activation, 1, n, low, gemm)

    def forward(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Q_i(s, a) for each critic i: shape [n, batch]."""
        return self.net(_critic_input(obs, actions)).squeeze(-1)

    def evaluate(self, obs: torch.Tensor, actions: torch.Tensor, first: int | None = None):
        """(Q values [n, batch], cache) without autograd; `first=k`: the first k critics only (TD3's
        actor reads Q₁ alone)."""
        q, cache = self.net.evaluate(_critic_input(obs, actions), first)
        return q.squeeze(-1), (cache, actions.shape[-1])

    def backward(self, cache, dq: torch.Tensor) -> None:
        """Each parameter's .grad ← ∂L/∂θ, given dq = ∂L/∂Q [n, batch] (all critics)."""
        self.net.backward(cache[0], dq.unsqueeze(-1))

    def action_gradient(self, cache, dq: torch.Tensor) -> torch.Tensor:
        """∂L/∂a [batch, action_dim] given dq = ∂L/∂Q [k, batch] for the k critics evaluated, e.g.
        the deterministic policy gradient's ∇ₐQ."""
        inner, action_dim = cache
        return self.net.input_gradient(inner, dq.unsqueeze(-1), action_dim)


def _critic_input(obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    return torch.cat([obs.reshape(obs.shape[0], -1).float(), actions], dim=1)


def _grad_of(param: nn.Parameter) -> torch.Tensor:
    if param.grad is None:
        param.grad = torch.empty_like(param)
    return param.grad


class DeterministicActor(nn.Module):
    """μ(s) = tanh(MLP(s)) ∈ [-1, 1]^d, on `network`'s hidden sizes and activation; like the
    critics, with its gradient written out (`evaluate`, then `backward`)."""

    def __init__(self, network, obs_shape, action_dim: int, low: torch.dtype | None = None, gemm: str = "torch"):
        super().__init__()
        self.net = StackedMLP(int(math.prod(obs_shape)), network.hidden_sizes, network.activation, action_dim, 1,
                              low, gemm)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(obs.reshape(obs.shape[0], -1).float())[0])

    def evaluate(self, obs: torch.Tensor):
        """(μ(s) [batch, d], cache for `backward`), without autograd."""
        y, cache = self.net.evaluate(obs.reshape(obs.shape[0], -1).float())
        mu = torch.tanh(y[0])
        return mu, (cache, mu)

    def backward(self, cache, dmu: torch.Tensor) -> None:
        """Each parameter's .grad ← ∂L/∂θ = Σ_b ∂L/∂μ(s_b) · ∂μ(s_b)/∂θ, given dmu = ∂L/∂μ [batch, d]."""
        inner, mu = cache
        self.net.backward(inner, torch.ops.aten.tanh_backward(dmu, mu).unsqueeze(0))


class SquashedGaussianActor(nn.Module):
    """A Gaussian over pre-squash actions u with state-dependent mean and log-std (clamped to
    [-20, 2]); the action is tanh(u) ∈ [-1, 1]^d. One MLP (`network`'s hidden sizes and
    activation) outputs both, the mean in its first d units. For learning, `rsample` then
    `backward` take the gradient through it by hand, like the critics."""

    def __init__(self, network, obs_shape, action_dim: int, low: torch.dtype | None = None, gemm: str = "torch"):
        super().__init__()
        self.action_dim = action_dim
        self.net = StackedMLP(int(math.prod(obs_shape)), network.hidden_sizes, network.activation,
                              2 * action_dim, 1, low, gemm)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.net(obs.reshape(obs.shape[0], -1).float())[0].split(self.action_dim, dim=-1)
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def sample(self, obs: torch.Tensor, generator: torch.Generator | None = None, log_prob: bool = True):
        """(a = tanh(u), log π(a|s)) with u = mean + std · ε drawn by reparameterisation, so
        gradients flow through a into the mean and std. `log_prob=False` (acting): a alone."""
        mean, log_std = self(obs)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        u = mean + noise * log_std.exp()
        if not log_prob:
            return torch.tanh(u)
        return torch.tanh(u), _squashed_log_prob(noise, log_std, u)

    @torch.no_grad()
    def rsample(self, obs: torch.Tensor, generator: torch.Generator | None = None):
        """`sample`'s (a, log π(a|s)) and the same draw, without autograd, plus the cache that
        `backward` takes."""
        y, inner = self.net.evaluate(obs.reshape(obs.shape[0], -1).float())
        mean, raw_log_std = y[0].split(self.action_dim, dim=-1)
        log_std = raw_log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        std = log_std.exp()
        u = mean + noise * std
        a = torch.tanh(u)
        return a, _squashed_log_prob(noise, log_std, u), (inner, raw_log_std, noise, std, a)

    @torch.no_grad()
    def backward(self, cache, grad_actions: torch.Tensor, grad_log_prob: torch.Tensor) -> None:
        """Each parameter's .grad ← ∂L/∂θ given ∂L/∂a [batch, d] and ∂L/∂log π (broadcast to
        [batch]) for the outputs of `rsample`, with ε held fixed (reparameterisation).

        With u = mean + σ ε and a = tanh(u): ∂a/∂u = 1 − a²; log π = Σ(−½ε² − log σ) − const
        − Σ log(1 − tanh² u) has ∂/∂u = 2 tanh(u) = 2a and, through its −log σ term, ∂/∂log σ = −1;
        ∂u/∂mean = 1, ∂u/∂log σ = σ ε; the clamp passes gradient only inside [−20, 2]."""
        inner, raw_log_std, noise, std, a = cache
        g_log_prob = grad_log_prob.unsqueeze(-1)
        g_u = torch.ops.aten.tanh_backward(grad_actions, a) + g_log_prob * 2.0 * a
        g_log_std = (g_u * noise * std - g_log_prob) * (raw_log_std >= LOG_STD_MIN) * (raw_log_std <= LOG_STD_MAX)
        self.net.backward(inner, torch.cat([g_u, g_log_std], dim=-1).unsqueeze(0))

    def mode(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self(obs)[0])


def _squashed_log_prob(noise: torch.Tensor, log_std: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """log π(a|s) for a = tanh(u), u = mean + σ ε: log N(u; mean, σ²) with (u − mean) / σ written as
    the noise ε it is (the same value and gradient, in fewer operations), then the tanh correction."""
    log_density = (-0.5 * noise.pow(2) - log_std).sum(-1) - 0.5 * LOG_2PI * noise.shape[-1]
    return log_density - tanh_log_det(u)


def tanh_log_det(u: torch.Tensor) -> torch.Tensor:
    """Σ log(1 − tanh²(u)) over dimensions, as 2 (log 2 − u − softplus(−2u)): finite even where
    tanh(u) rounds to ±1."""
    return (2.0 * (LOG2 - u - F.softplus(-2.0 * u))).sum(-1)


def squashed_log_prob(mean: torch.Tensor, log_std: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """log density of a = tanh(u), u ~ N(mean, std²), summed over dimensions:
    log N(u) − Σ log(1 − tanh²(u)) (the change of variables through tanh)."""
    return gaussian_log_prob(mean, log_std, u) - tanh_log_det(u)
