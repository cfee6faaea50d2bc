"""REINFORCE: Monte-Carlo policy gradient over whole episodes (Williams 1992).

    ∇J ≈ mean over steps of ∇ log π(a_t|s_t) · (G_t - b(s_t))

G_t is the discounted return of the whole episode (`reward_to_go=false`, the original estimator)
or only of the rewards from t on (`reward_to_go=true`: earlier rewards cannot depend on a_t, so
dropping them only removes variance). The baseline b is nothing, the batch mean of G, or a learned
V(s) fitted by regression on G after each policy step (`baseline: none | mean | value`);
`normalize_returns` rescales the weights G - b to zero mean and unit variance.

Episodes cut by a time limit end the sums like any other episode; with a learned V and reward to
go, they are continued by γ V(final obs) instead (the time limit is not part of the task).
"""

import numpy as np
import torch

from deeprl.algos.policy import PolicyAgent, explained_variance, flat, normalize
from deeprl.buffers.rollout import RolloutBatch
from deeprl.core.errors import ConfigError
from deeprl.core.optim import param_groups
from deeprl.core.returns import episode_returns, reward_to_go
from deeprl.envs import EnvSpec

BASELINES = ("none", "mean", "value")


class Reinforce(PolicyAgent):
    def __init__(self, spec: EnvSpec, network, device: torch.device, rng: np.random.Generator,
                 total_steps: int, *, gamma: float, lr: float, value_lr: float, anneal_lr: bool,
                 adam_eps: float, reward_to_go: bool, baseline: str, normalize_returns: bool,
                 value_steps: int, ent_coef: float, max_grad_norm: float | None, ortho_init: bool,
                 init_log_std: float, action_bounds: str, normalize_obs: bool,
                 deterministic_eval: bool):
        if baseline not in BASELINES:
            raise ConfigError("algo.baseline", f"unknown '{baseline}'; use none, mean or value")
        super().__init__("reinforce", spec, network, device, rng, total_steps, critic=baseline == "value",
                         shared_torso=False, ortho_init=ortho_init, init_log_std=init_log_std,
                         action_bounds=action_bounds, normalize_obs=normalize_obs, anneal_lr=anneal_lr,
                         deterministic_eval=deterministic_eval)
        self.gamma, self.reward_to_go, self.baseline = gamma, reward_to_go, baseline
        self.normalize_returns, self.value_steps = normalize_returns, value_steps
        self.ent_coef, self.max_grad_norm = ent_coef, max_grad_norm
        self.optimizer = torch.optim.Adam(
            param_groups((self.net.actor_parameters(), lr), (self.net.critic_parameters(), value_lr)),
            eps=adam_eps, fused=device.type in ("cpu", "cuda"))

    def returns(self, batch: RolloutBatch) -> np.ndarray:
        if not self.reward_to_go:
            return episode_returns(batch.rewards, batch.dones, self.gamma)
        if self.baseline == "value":
            return reward_to_go(batch.rewards, batch.dones, self.gamma, batch.next_values, batch.terminated)
        return reward_to_go(batch.rewards, batch.dones, self.gamma)

    def update(self, batch: RolloutBatch, step: int) -> dict[str, torch.Tensor]:
        self.set_learning_rate(step)
        obs, actions = flat(batch.obs), flat(batch.actions)
        returns = self.tensor(self.returns(batch)).reshape(-1)

        # ALGO LOGIC: the baseline depends on the state only, so subtracting it keeps the gradient
        # unbiased while removing the part of G that any action would have earned.
        metrics = {}
        with torch.no_grad():
            if self.baseline == "value":
                values = self.net.value(obs)
                weights = returns - values
                metrics["explained_variance"] = explained_variance(values, returns)
            elif self.baseline == "mean":
                weights = returns - returns.mean()
            else:
                weights = returns
            if self.normalize_returns:
                weights = normalize(weights)
        log_probs, entropy, _ = self.evaluate(obs, actions)
        entropy = entropy.mean()
        policy_loss = -(log_probs * weights).mean() - self.ent_coef * entropy
        self.step(policy_loss, self.max_grad_norm)

        if self.baseline == "value":
            for _ in range(self.value_steps):
                value_loss = (self.net.value(obs) - returns).pow(2).mean()
                self.step(value_loss, self.max_grad_norm)
            metrics["value_loss"] = value_loss.detach()

        self.update_obs_stats(batch.obs)
        metrics.update(policy_loss=policy_loss.detach(), entropy=entropy.detach())
        return metrics
