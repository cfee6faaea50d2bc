"""Proximal policy optimisation with the clipped surrogate objective (Schulman et al. 2017).

Each update takes a fresh rollout of n_steps × num_envs transitions, estimates advantages with
GAE(λ), and runs `n_epochs` passes of minibatch gradient steps on

    L = -E[min(ρ A, clip(ρ, 1-ε, 1+ε) A)] + c_v E[(V - R)²] - c_H E[H(π)],   ρ = π(a|s) / π_old(a|s)

where π_old is the policy that collected the rollout. The clip removes any incentive to move ρ
outside [1-ε, 1+ε], which keeps the many steps on one batch close to the data's policy.
"""

import numpy as np
import torch
import torch.nn.functional as F

from deeprl.algos.policy import PolicyAgent, explained_variance, flat, normalize
from deeprl.buffers.rollout import RolloutBatch
from deeprl.envs import EnvSpec


def clipped_surrogate(ratio: torch.Tensor, advantages: torch.Tensor, clip_coef: float) -> torch.Tensor:
    """PPO's policy loss from the ratios π(a|s) / π_old(a|s): the negated pessimistic (min) of the
    unclipped and clipped objectives."""
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - clip_coef, 1.0 + clip_coef) * advantages
    return -torch.min(unclipped, clipped).mean()


DIAGNOSTICS = ("policy_loss", "value_loss", "approx_kl", "clipfrac", "entropy")


class PPO(PolicyAgent):
    def __init__(self, spec: EnvSpec, network, device: torch.device, rng: np.random.Generator,
                 total_steps: int, *, gamma: float, gae_lambda: float, reward_scale: float, lr: float,
                 anneal_lr: bool,
                 adam_eps: float, n_epochs: int, num_minibatches: int, clip_coef: float,
                 clip_vloss: bool, norm_adv: bool, ent_coef: float, vf_coef: float,
                 max_grad_norm: float | None, target_kl: float | None, shared_torso: bool,
                 ortho_init: bool, init_log_std: float, action_bounds: str, normalize_obs: bool,
                 deterministic_eval: bool):
        super().__init__("ppo", spec, network, device, rng, total_steps, critic=True,
                         shared_torso=shared_torso, ortho_init=ortho_init, init_log_std=init_log_std,
                         action_bounds=action_bounds, normalize_obs=normalize_obs, anneal_lr=anneal_lr,
                         deterministic_eval=deterministic_eval)
        self.gamma, self.gae_lambda, self.reward_scale = gamma, gae_lambda, reward_scale
        self.n_epochs, self.num_minibatches = n_epochs, num_minibatches
        self.clip_coef, self.clip_vloss, self.norm_adv = clip_coef, clip_vloss, norm_adv
        self.ent_coef, self.vf_coef = ent_coef, vf_coef
        self.max_grad_norm, self.target_kl = max_grad_norm, target_kl
        self.optimizer = self.flat_adam(lr, adam_eps)

    def update(self, batch: RolloutBatch, step: int) -> dict[str, torch.Tensor]:
        self.set_learning_rate(step)
        # ALGO LOGIC: advantages from the critic that acted (its values were stored at collection).
        advantages, returns = self.gae_targets(batch)
        old_values = self.tensor(batch.values).reshape(-1)
        obs, actions, old_log_probs = flat(batch.obs), flat(batch.actions), batch.log_probs.reshape(-1)

        size = len(returns)
        minibatch = -(-size // self.num_minibatches)  # ceil: a ragged last rollout still gets covered
        whole = self.num_minibatches == 1  # one minibatch: no shuffling, normalise once
        if whole and self.norm_adv:
            advantages = normalize(advantages)
        for epoch in range(self.n_epochs):
            # Diagnostics are measured on the last epoch (on every epoch when an early stop may need
            # them): on every minibatch they would cost a tenth of a small network's update.
            track = epoch == self.n_epochs - 1 or self.target_kl is not None
            stats: dict[str, list[torch.Tensor]] = {k: [] for k in DIAGNOSTICS}
            order = [slice(None)] if whole else torch.randperm(size, generator=self.generator,
                                                                device=self.device).split(minibatch)
            for idx in order:
                # One forward pass gives the log-probabilities, the values and (for the bonus or the
                # diagnostic) the entropy.
                log_probs, entropy, values = self.evaluate(obs[idx], actions[idx], entropy=self.ent_coef > 0 or track)
                log_ratio = log_probs - old_log_probs[idx]
                ratio = log_ratio.exp()
                mb_adv = normalize(advantages[idx]) if self.norm_adv and not whole else advantages[idx]
                policy_loss = clipped_surrogate(ratio, mb_adv, self.clip_coef)
                if self.clip_vloss:
                    # The value may move at most ε from the one that collected the data, as the policy.
                    clipped = old_values[idx] + (values - old_values[idx]).clamp(-self.clip_coef, self.clip_coef)
                    value_loss = torch.max((values - returns[idx]).pow(2),
                                           (clipped - returns[idx]).pow(2)).mean()
                else:
                    value_loss = F.mse_loss(values, returns[idx])
                loss = policy_loss + self.vf_coef * value_loss
                if self.ent_coef > 0:
                    loss = loss - self.ent_coef * entropy.mean()
                self.step(loss, self.max_grad_norm)

                if track:
                    with torch.no_grad():
                        # KL(π_old || π) estimated by E[(ρ - 1) - log ρ] (low variance, always >= 0).
                        approx_kl = ((ratio - 1.0) - log_ratio).mean()
                        clipfrac = ((ratio - 1.0).abs() > self.clip_coef).float().mean()
                    for key, value in zip(DIAGNOSTICS, (policy_loss, value_loss, approx_kl, clipfrac, entropy.mean()),
                                          strict=True):
                        stats[key].append(value.detach())
            # Early stop once the policy has moved too far from the data's (a sync, so only if asked).
            if self.target_kl is not None and torch.stack(stats["approx_kl"]).mean().item() > self.target_kl:
                break

        metrics = {k: torch.stack(v).mean() for k, v in stats.items()}
        metrics["explained_variance"] = explained_variance(old_values, returns)
        self.update_obs_stats(obs)
        return metrics
