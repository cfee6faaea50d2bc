"""Synchronous advantage actor-critic (A2C; the synchronous form of Mnih et al. 2016's A3C).

Every n_steps × num_envs transitions: one gradient step on

    L = -E[log π(a|s) A] + c_v E[(V(s) - R)²] - c_H E[H(π(·|s))]

with R the n-step return (gae_lambda = 1: rewards to the end of the rollout, then V of the state
reached; cut at episode ends) or the GAE(λ) return A + V for λ < 1.
"""

import numpy as np
import torch

from deeprl.algos.policy import PolicyAgent, explained_variance, flat, normalize
from deeprl.buffers.rollout import RolloutBatch
from deeprl.core.errors import ConfigError
from deeprl.core.optim import RMSpropTF, param_groups
from deeprl.core.params import flat_parameters
from deeprl.envs import EnvSpec


class A2C(PolicyAgent):
    def __init__(self, spec: EnvSpec, network, device: torch.device, rng: np.random.Generator,
                 total_steps: int, *, gamma: float, gae_lambda: float, reward_scale: float, lr: float,
                 anneal_lr: bool,
                 optimizer: str, optim_eps: float, rms_alpha: float, norm_adv: bool, ent_coef: float,
                 vf_coef: float, max_grad_norm: float | None, shared_torso: bool, ortho_init: bool,
                 init_log_std: float, action_bounds: str, normalize_obs: bool,
                 deterministic_eval: bool):
        super().__init__("a2c", spec, network, device, rng, total_steps, critic=True,
                         shared_torso=shared_torso, ortho_init=ortho_init, init_log_std=init_log_std,
                         action_bounds=action_bounds, normalize_obs=normalize_obs, anneal_lr=anneal_lr,
                         deterministic_eval=deterministic_eval)
        self.gamma, self.gae_lambda, self.reward_scale = gamma, gae_lambda, reward_scale
        self.norm_adv, self.ent_coef, self.vf_coef = norm_adv, ent_coef, vf_coef
        self.max_grad_norm = max_grad_norm
        if optimizer in ("rmsprop", "rmsprop_tf"):  # the A3C paper's and Stable-Baselines3's choice
            # One flat tensor behind all parameters: the optimizer step is a few calls, not a loop.
            self.params = [flat_parameters(self.net.parameters())]
            # torch's arithmetic, or TensorFlow's (as A3C and RL-Zoo's Atari A2C ran it; core/optim.py)
            rmsprop = torch.optim.RMSprop if optimizer == "rmsprop" else RMSpropTF
            self.optimizer = rmsprop(param_groups((self.params, lr)), alpha=rms_alpha, eps=optim_eps)
        elif optimizer == "adam":
            self.optimizer = self.flat_adam(lr, optim_eps)
        else:
            raise ConfigError("algo.optimizer", f"unknown '{optimizer}'; use rmsprop, rmsprop_tf or adam")

    def update(self, batch: RolloutBatch, step: int) -> dict[str, torch.Tensor]:
        self.set_learning_rate(step)
        # ALGO LOGIC: the critic that acted gives the baselines; λ = 1 makes A + V the n-step return.
        advantages, returns = self.gae_targets(batch)
        if self.norm_adv:
            advantages = normalize(advantages)

        log_probs, entropy, values = self.evaluate(flat(batch.obs), flat(batch.actions))
        policy_loss = -(log_probs * advantages).mean()
        value_loss = (values - returns).pow(2).mean()
        entropy = entropy.mean()
        loss = policy_loss + self.vf_coef * value_loss - self.ent_coef * entropy
        self.step(loss, self.max_grad_norm)

        self.update_obs_stats(batch.obs)
        return {"policy_loss": policy_loss.detach(), "value_loss": value_loss.detach(),
                "entropy": entropy.detach(),
                "explained_variance": explained_variance(self.tensor(batch.values).reshape(-1), returns)}
