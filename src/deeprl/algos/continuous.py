"""What DDPG, TD3 and SAC share: continuous actions scaled to the env's bounds, Q(s, a) critics
with a Polyak-averaged target copy, flat parameters and fused Adam, acting, and checkpoints.

Each agent's learning rule (its losses) is in its own file (deeprl.algos.ddpg, deeprl.algos.sac);
this module holds the plumbing around it. Actors work in [-1, 1]^d and critics take actions
there: the replay stores env actions, and `unit_actions` maps a batch back.
"""

import copy
import math

import numpy as np
import torch
from torch import nn

from deeprl.algos.base import require_continuous
from deeprl.core.actions import ActionScale
from deeprl.core.console import say
from deeprl.core.device import (
    bf16_pays_for_mlp,
    precision_note,
    resolve_cpu_gemm,
    resolve_precision,
)
from deeprl.core.optim import param_groups, scheduled_lr, set_scheduled_lr
from deeprl.core.params import adam_step, flat_parameters, polyak_update
from deeprl.core.seeding import restore_generator
from deeprl.envs import EnvSpec
from deeprl.networks.continuous import Critics


class ContinuousAgent:
    """Builds the critics (`n_critics` Q-networks on an MLP of `network`'s sizes) and their target;
    subclasses add the actor (`self.actor`, `self.actor_flat`, `self.actor_optimizer`) and their
    `update` and `policy`."""
    LEARNED = ("critic", "critic_target", "actor")

    def __init__(self, name: str, spec: EnvSpec, network, device: torch.device, rng: np.random.Generator, *,
                 n_critics: int, gamma: float, tau: float, critic_lr: float, precision: str, cpu_gemm: str,
                 total_steps: int, anneal_lr: bool):
        require_continuous(name, spec)
        self.device, self.rng, self.gamma, self.tau = device, rng, gamma, tau
        self.total_steps, self.anneal_lr = total_steps, anneal_lr
        # bf16 for the hidden-to-hidden products of learning (see StackedMLP), where they pay.
        wide = bf16_pays_for_mlp(network.hidden_sizes)
        self.precision = resolve_precision(precision, device, large=wide)
        note = precision_note(self.precision, device)
        if note:  # one line at build time: bf16 asked for where it only costs time
            say(note)
        self.low = torch.bfloat16 if self.precision == "bf16" else None
        # Which library multiplies the fp32 hidden-to-hidden products of learning on a CPU (StackedMLP).
        self.gemm = resolve_cpu_gemm(cpu_gemm, device, self.precision, large=wide)
        self.scale = ActionScale(spec.action_space, device)
        self.action_shape = tuple(spec.action_space.shape)
        self.action_dim = int(math.prod(self.action_shape))
        self.obs_dim = int(math.prod(spec.obs_shape))
        self.critic = Critics(self.obs_dim + self.action_dim, network.hidden_sizes, network.activation,
                              n_critics, self.low, self.gemm).to(device)
        # The target is a copy that learning never touches; it trails the critics by Polyak averaging.
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        # One flat tensor per network: Adam, zeroing and the Polyak average are one kernel each.
        self.critic_flat = flat_parameters(self.critic.parameters())
        self.critic_target_flat = flat_parameters(self.critic_target.parameters()).requires_grad_(False)
        self.critic_optimizer = adam(self.critic_flat, critic_lr)
        # (target, online) flat parameters that update_targets averages; DDPG adds its actor's.
        self.targets = [(self.critic_target_flat, self.critic_flat)]
        # Sampling in the update (SAC's actions, TD3's target noise) has its own stream.
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(int(rng.integers(2**62)))
        self.updates = 0
        self.actor: nn.Module
        self.actor_flat: nn.Parameter
        self.actor_optimizer: torch.optim.Optimizer

    # Acting --------------------------------------------------------------------------------

    def policy(self, obs: torch.Tensor, eval_mode: bool) -> torch.Tensor:
        """Actions in [-1, 1]^d for a batch of observations (a stochastic policy's exploration)."""
        raise NotImplementedError

    def explore(self, unit: np.ndarray) -> np.ndarray:
        """Exploration added to the policy's [-1, 1]^d actions while training (DDPG's noise, in
        numpy: on one observation a handful of tensor operations cost more than the network)."""
        return unit

    def act(self, obs: np.ndarray, step: int, eval_mode: bool = False) -> np.ndarray:
        obs_t = torch.from_numpy(np.asarray(obs))
        if self.device.type != "cpu":
            obs_t = obs_t.to(self.device, non_blocking=True)
        with torch.inference_mode():
            unit = self.policy(obs_t, eval_mode).cpu().numpy()
        if not eval_mode:
            unit = self.explore(unit)
        return self.scale.from_unit(unit).astype(np.float32).reshape(len(unit), *self.action_shape)

    # Learning helpers ----------------------------------------------------------------------

    def unit_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """Stored env actions, back in [-1, 1]^d where the critics take them."""
        return self.scale.to_unit(actions.reshape(actions.shape[0], -1))

    def critic_step(self, obs: torch.Tensor, actions: torch.Tensor, td_target: torch.Tensor,
                    weights: torch.Tensor | None):
        """One Adam step on L = Σ_i mean_b w_b (Q_i(s_b, a_b) − y_b)² (w = prioritized replay's
        importance weights, or 1). Returns the critics' values Q [n_critics, batch], each critic's
        loss and, for prioritized replay (weights given), the per-sample |TD error| averaged over
        the critics (the new priorities); else None."""
        q, cache = self.critic.evaluate(obs, actions)
        td = q - td_target.unsqueeze(0)  # [n_critics, batch]
        weighted = td if weights is None else weights * td
        losses = (weighted * td).mean(dim=1)
        # ∂L/∂Q = 2 w (Q − y) / batch, taken back through the critics' layers (Critics.backward).
        self.critic.backward(cache, weighted * (2.0 / td.shape[1]))
        adam_step(self.critic_optimizer)
        return q, losses, None if weights is None else td.abs().mean(dim=0)

    def critic_metrics(self, losses: torch.Tensor, q: torch.Tensor) -> dict:
        metrics = {f"qf{i + 1}_loss": losses[i] for i in range(len(losses))}
        metrics["qf1_values"] = q[0].mean()
        return metrics

    def q_action_gradient(self, obs: torch.Tensor, actions: torch.Tensor, first: int | None = None):
        """(min_i Q_i(s, a) [batch], ∇ₐ of −mean_b min_i Q_i(s_b, a) at `actions` [batch, d]) over
        the first k critics (all by default; TD3 reads Q₁ alone). The critics' weights take no
        part: the actor's step moves the actor only."""
        q, cache = self.critic.evaluate(obs, actions, first)
        batch = q.shape[1]
        if len(q) == 1:
            return q[0], self.critic.action_gradient(cache, torch.full_like(q, -1.0 / batch))
        # ∂(−mean_b min_i Q_ib)/∂Q: −1/batch on each sample's smallest critic, 0 elsewhere (split
        # evenly between critics that tie, as autograd's amin does).
        q_min = q.amin(dim=0)
        lowest = q == q_min
        dq = lowest * (-1.0 / batch) / lowest.sum(dim=0)
        return q_min, self.critic.action_gradient(cache, dq)

    def set_learning_rate(self, step: int) -> None:
        """Each optimizer's rate for the update at env step `step` (algo.anneal_lr: falling
        linearly from the configured rate to 0 at total_steps, as RL-Zoo's `lin_<lr>` schedules do
        for every optimizer, SAC's temperature included). Set from the step, so a resumed run
        takes the same rates."""
        if self.anneal_lr:
            for optimizer in self.optimizers():
                set_scheduled_lr(optimizer, True, self.total_steps, step)

    def update_targets(self) -> None:
        targets, sources = zip(*self.targets, strict=True)
        polyak_update(targets, sources, self.tau)

    def charts(self, step: int) -> dict:
        group = self.critic_optimizer.param_groups[0]
        return {"charts/learning_rate": scheduled_lr(group, self.anneal_lr, self.total_steps, step)}

    # Checkpoints ---------------------------------------------------------------------------
    # Modules and optimizers by attribute name; subclasses list theirs in STATE.
    STATE = ("critic", "critic_target", "critic_optimizer", "actor", "actor_optimizer")

    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [getattr(self, name) for name in self.STATE if name.endswith("optimizer")]

    def state_dict(self) -> dict:
        state = {name: getattr(self, name).state_dict() for name in self.STATE}
        state.update(generator=self.generator.get_state(), updates=self.updates)
        return state

    def load_state_dict(self, state: dict) -> None:
        for name in self.STATE:
            getattr(self, name).load_state_dict(state[name])
        for optimizer in self.optimizers():  # saved before algo.anneal_lr: the rate never moved
            for group in optimizer.param_groups:
                group.setdefault("base_lr", group["lr"])
        restore_generator(self.generator, state["generator"])  # a CUDA run's state on a CPU, or the reverse
        self.updates = state["updates"]


def adam(flat: torch.Tensor, lr: float) -> torch.optim.Adam:
    """Fused Adam on one flat parameter tensor, its base rate kept for annealing."""
    return torch.optim.Adam(param_groups(([flat], lr)), fused=True)
