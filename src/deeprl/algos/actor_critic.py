"""Actor-critic with a bootstrapped critic, in the two textbook forms (e.g. Sutton & Barto 13.5,
Berkeley CS285's actor-critic assignment).

mode=batch: collect n_steps × num_envs transitions with the current policy; fit V^π to the
bootstrapped targets r + γ V(s') (recomputed `target_updates` times, `critic_steps` gradient
steps on each); then evaluate A(s, a) = r + γ V(s') - V(s) with the fitted critic and take one
policy-gradient step on -E[log π(a|s) A].

mode=online: the same after every single transition (one per env; `n_steps` is ignored): one
critic step toward r + γ V(s'), then A from the updated critic, then one policy step.

γ V(s') is dropped after a termination and kept after a time-limit truncation, where s' is the
episode's real last observation.
"""

import numpy as np
import torch

from deeprl.algos.policy import PolicyAgent, explained_variance, flat, normalize
from deeprl.buffers.rollout import RolloutBatch
from deeprl.core.errors import ConfigError
from deeprl.core.optim import param_groups
from deeprl.envs import EnvSpec

MODES = ("batch", "online")


class ActorCritic(PolicyAgent):
    READS_COLLECTION_ESTIMATES = False  # V and log π come from the networks as the update moves them

    def __init__(self, spec: EnvSpec, network, device: torch.device, rng: np.random.Generator,
                 total_steps: int, *, mode: str, gamma: float, actor_lr: float, critic_lr: float,
                 anneal_lr: bool, adam_eps: float, target_updates: int, critic_steps: int,
                 norm_adv: bool, ent_coef: float, max_grad_norm: float | None, shared_torso: bool,
                 ortho_init: bool, init_log_std: float, action_bounds: str, normalize_obs: bool,
                 deterministic_eval: bool):
        if mode not in MODES:
            raise ConfigError("algo.mode", f"unknown '{mode}'; use batch or online")
        super().__init__("actor_critic", spec, network, device, rng, total_steps, critic=True,
                         shared_torso=shared_torso, ortho_init=ortho_init, init_log_std=init_log_std,
                         action_bounds=action_bounds, normalize_obs=normalize_obs, anneal_lr=anneal_lr,
                         deterministic_eval=deterministic_eval)
        self.gamma = gamma
        self.target_updates, self.critic_steps = (1, 1) if mode == "online" else (target_updates, critic_steps)
        # Online mode fixes the rollout length the on-policy loop collects between updates.
        self.rollout_steps = 1 if mode == "online" else None
        self.norm_adv, self.ent_coef, self.max_grad_norm = norm_adv, ent_coef, max_grad_norm
        # One optimizer, two learning rates. With a shared torso the torso sits in the critic's group
        # (it is trained by both losses). Adam skips parameters a loss left without a gradient.
        self.optimizer = torch.optim.Adam(
            param_groups((self.net.actor_parameters(), actor_lr), (self.net.critic_parameters(), critic_lr)),
            eps=adam_eps, fused=device.type in ("cpu", "cuda"))

    def update(self, batch: RolloutBatch, step: int) -> dict[str, torch.Tensor]:
        self.set_learning_rate(step)
        obs, next_obs, actions = flat(batch.obs), flat(batch.next_obs), flat(batch.actions)
        rewards = self.tensor(batch.rewards).reshape(-1)
        not_terminal = 1.0 - self.tensor(batch.terminated).reshape(-1)

        # ALGO LOGIC: fit V^π by regression on bootstrapped targets, held fixed for a few steps each.
        for _ in range(self.target_updates):
            with torch.no_grad():
                targets = rewards + self.gamma * not_terminal * self.net.value(next_obs)
            for _ in range(self.critic_steps):
                value_loss = (self.net.value(obs) - targets).pow(2).mean()
                self.step(value_loss, self.max_grad_norm)

        # Advantages from the fitted critic; no gradient flows into it from the policy loss.
        with torch.no_grad():
            values = self.net.value(obs)
            targets = rewards + self.gamma * not_terminal * self.net.value(next_obs)
            advantages = targets - values
            if self.norm_adv:
                advantages = normalize(advantages)
        log_probs, entropy, _ = self.evaluate(obs, actions)
        entropy = entropy.mean()
        policy_loss = -(log_probs * advantages).mean() - self.ent_coef * entropy
        self.step(policy_loss, self.max_grad_norm)

        self.update_obs_stats(batch.obs)
        return {"policy_loss": policy_loss.detach(), "value_loss": value_loss.detach(),
                "entropy": entropy.detach(), "explained_variance": explained_variance(values, targets)}
