"""Soft actor-critic (Haarnoja et al. 2018), with twin critics and a learned temperature.

The policy is a squashed Gaussian: a = tanh(u), u ~ N(mean(s), std(s)), with log π(a|s) including
the tanh change of variables (deeprl.networks.continuous.squashed_log_prob). It maximises return
plus α times entropy:
- critics: Q_i(s, a) → y = r + discount · (min_j Q'_j(s', a') − α log π(a'|s')), a' ~ π(·|s');
- actor:   minimise E[α log π(a|s) − min_j Q_j(s, a)], a ~ π(·|s) reparameterised;
- α:       with `entropy.autotune`, log α descends −log α · (log π(a|s) + H̄), which raises α while
           the policy's entropy is below the target H̄ (default −|A|) and lowers it above.
The targets Q' are Polyak averages of the critics. Evaluation acts with tanh(mean(s)).
"""

import numpy as np
import torch

from deeprl.algos.continuous import ContinuousAgent, adam
from deeprl.buffers import Batch
from deeprl.core.params import adam_step, flat_parameters
from deeprl.envs import EnvSpec
from deeprl.networks.continuous import SquashedGaussianActor


class SAC(ContinuousAgent):
    def __init__(self, spec: EnvSpec, network, device: torch.device, rng: np.random.Generator,
                 total_steps: int, *, gamma: float, tau: float, actor_lr: float, critic_lr: float,
                 entropy, target_every: int, precision: str = "fp32", cpu_gemm: str = "torch",
                 anneal_lr: bool = False):
        super().__init__("sac", spec, network, device, rng, n_critics=2, gamma=gamma, tau=tau,
                         critic_lr=critic_lr, precision=precision, cpu_gemm=cpu_gemm, total_steps=total_steps,
                         anneal_lr=anneal_lr)
        self.target_every = target_every
        self.actor = SquashedGaussianActor(network, spec.obs_shape, self.action_dim, self.low, self.gemm).to(device)
        self.actor_flat = flat_parameters(self.actor.parameters())
        self.actor_optimizer = adam(self.actor_flat, actor_lr)
        self.autotune = bool(entropy.autotune)
        # The target entropy H̄: −|A| by default (one nat less per action dimension than a unit Gaussian).
        self.target_entropy = float(-self.action_dim if entropy.target is None else entropy.target)
        self.log_alpha = torch.tensor([float(np.log(entropy.alpha))], device=device, requires_grad=self.autotune)
        self.alpha_optimizer = adam(self.log_alpha, critic_lr)

    def policy(self, obs: torch.Tensor, eval_mode: bool) -> torch.Tensor:
        if eval_mode:
            return self.actor.mode(obs)
        return self.actor.sample(obs, self.generator, log_prob=False)

    def update(self, batch: Batch, step: int) -> tuple[dict, torch.Tensor | None]:
        self.set_learning_rate(step)
        obs, next_obs = batch.obs, batch.next_obs
        actions = self.unit_actions(batch.actions)
        alpha = self.log_alpha.detach().exp()  # this update's temperature, for all three losses
        # ALGO LOGIC: the soft TD target is a constant; no gradient flows through it.
        with torch.no_grad():
            next_actions, next_log_prob, _ = self.actor.rsample(next_obs, self.generator)
            next_q = self.critic_target.evaluate(next_obs, next_actions)[0].amin(dim=0)
            td_target = batch.rewards + batch.discounts * (next_q - alpha * next_log_prob)
        q, losses, priorities = self.critic_step(obs, actions, td_target, batch.weights)

        # Actor: minimise L = mean_b(α log π(a_b|s_b) − min_i Q_i(s_b, a_b)), a_b reparameterised.
        # ∂L/∂a comes from the critics (their weights stay put), ∂L/∂log π = α / batch; the actor
        # takes both back through its sampling and its network.
        pi_actions, log_prob, cache = self.actor.rsample(obs, self.generator)
        q_pi, grad_pi = self.q_action_gradient(obs, pi_actions)
        self.actor.backward(cache, grad_pi, alpha / len(log_prob))
        adam_step(self.actor_optimizer)
        actor_loss = (alpha * log_prob - q_pi).mean()
        metrics = {**self.critic_metrics(losses, q), "actor_loss": actor_loss, "alpha": alpha[0]}

        if self.autotune:
            # alpha_loss = −log α · mean(log π(a|s) + H̄); its gradient in log α is the negated mean,
            # set directly (an autograd pass for one scalar costs more than the rest of this step).
            gap = (log_prob.detach() + self.target_entropy).mean().reshape(1)
            self.log_alpha.grad = -gap
            adam_step(self.alpha_optimizer)
            metrics["alpha_loss"] = -(alpha.log() * gap)[0]

        self.updates += 1
        if self.updates % self.target_every == 0:
            self.update_targets()
        return metrics, priorities

    STATE = (*ContinuousAgent.STATE, "alpha_optimizer")

    def state_dict(self) -> dict:
        return {**super().state_dict(), "log_alpha": self.log_alpha.detach().clone()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
