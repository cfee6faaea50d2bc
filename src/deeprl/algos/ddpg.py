"""Deep deterministic policy gradient (Lillicrap et al. 2016) and TD3 (Fujimoto et al. 2018).

DDPG is Q-learning for continuous actions. A deterministic actor μ(s) ∈ [-1, 1]^d (scaled to the
env's bounds) replaces the argmax: the critic regresses Q(s, a) on y = r + discount · Q'(s', μ'(s'))
(the buffer's discount is γ^n, and 0 after a termination: a time-limit truncation still
bootstraps), and the actor ascends Q(s, μ(s)) along ∇ₐQ. Primed networks are Polyak averages
θ' ← τθ + (1 − τ)θ'. Exploration adds Gaussian (or Ornstein-Uhlenbeck) noise to μ(s).

TD3 is three switches on the same rule (conf/algo/td3.yaml):
- twin critics (`twin_critics`): y uses min(Q'₁, Q'₂), against Q-value overestimation;
- target policy smoothing (`target_noise`, `target_noise_clip`): μ'(s') + clip(ε, ±c), ε ~ N(0, σ²);
- delayed policy updates (`policy_delay`): the actor and the targets move once per that many
  critic updates.
"""

import numpy as np
import torch

from deeprl.algos.continuous import ContinuousAgent, adam
from deeprl.buffers import Batch
from deeprl.core.params import adam_step, flat_parameters
from deeprl.envs import EnvSpec
from deeprl.networks.continuous import DeterministicActor


class DDPG(ContinuousAgent):
    LEARNED = (*ContinuousAgent.LEARNED, "actor_target")

    def __init__(self, spec: EnvSpec, network, device: torch.device, rng: np.random.Generator,
                 total_steps: int, *, gamma: float, tau: float, actor_lr: float, critic_lr: float,
                 exploration, twin_critics: bool, policy_delay: int, target_noise: float,
                 target_noise_clip: float, precision: str = "fp32", cpu_gemm: str = "torch",
                 anneal_lr: bool = False):
        super().__init__("ddpg", spec, network, device, rng, n_critics=2 if twin_critics else 1, gamma=gamma,
                         tau=tau, critic_lr=critic_lr, precision=precision, cpu_gemm=cpu_gemm,
                         total_steps=total_steps, anneal_lr=anneal_lr)
        self.policy_delay = policy_delay
        self.target_noise, self.target_noise_clip = target_noise, target_noise_clip
        self.noise_kind, self.noise_std = exploration.noise, float(exploration.std)
        self.ou_theta, self.ou_dt = float(exploration.ou_theta), float(exploration.ou_dt)
        self.ou_state: np.ndarray | None = None  # Ornstein-Uhlenbeck noise carries over between steps
        self.actor = DeterministicActor(network, spec.obs_shape, self.action_dim, self.low, self.gemm).to(device)
        self.actor_target = DeterministicActor(network, spec.obs_shape, self.action_dim, self.low, self.gemm).to(device)
        self.actor_target.load_state_dict(self.actor.state_dict())
        self.actor_target.requires_grad_(False)
        self.actor_flat = flat_parameters(self.actor.parameters())
        self.actor_target_flat = flat_parameters(self.actor_target.parameters()).requires_grad_(False)
        self.actor_optimizer = adam(self.actor_flat, actor_lr)
        self.targets.append((self.actor_target_flat, self.actor_flat))
        self.actor_metrics: dict[str, torch.Tensor] = {}

    def policy(self, obs: torch.Tensor, eval_mode: bool) -> torch.Tensor:
        return self.actor(obs)

    def explore(self, unit: np.ndarray) -> np.ndarray:
        return np.clip(unit + self.noise(len(unit)), -1.0, 1.0)

    def noise(self, n: int) -> np.ndarray:
        """Exploration noise in [-1, 1]-action units, one row per env."""
        white = self.rng.standard_normal((n, self.action_dim)).astype(np.float32)
        if self.noise_kind == "gaussian":
            return self.noise_std * white
        # Ornstein-Uhlenbeck: x ← x − θ x dt + σ √dt ε, temporally correlated (the DDPG paper's choice).
        if self.ou_state is None or self.ou_state.shape[0] != n:
            self.ou_state = np.zeros((n, self.action_dim), dtype=np.float32)
        self.ou_state = (self.ou_state - self.ou_theta * self.ou_state * self.ou_dt
                         + self.noise_std * np.sqrt(self.ou_dt) * white).astype(np.float32)
        return self.ou_state

    def update(self, batch: Batch, step: int) -> tuple[dict, torch.Tensor | None]:
        self.set_learning_rate(step)
        obs, next_obs = batch.obs, batch.next_obs
        actions = self.unit_actions(batch.actions)
        # ALGO LOGIC: the critic's target is a constant; no gradient flows through it.
        with torch.no_grad():
            next_actions = self.actor_target.evaluate(next_obs)[0]
            if self.target_noise > 0:
                # TD3's target policy smoothing: Q' is read near μ'(s'), not at one sharp point.
                noise = torch.randn(next_actions.shape, generator=self.generator, device=next_actions.device)
                noise = (noise * self.target_noise).clamp(-self.target_noise_clip, self.target_noise_clip)
                next_actions = (next_actions + noise).clamp(-1.0, 1.0)
            # With twin critics, the smaller estimate (TD3's clipped double Q); alone, Q' itself.
            next_q = self.critic_target.evaluate(next_obs, next_actions)[0].amin(dim=0)
            td_target = batch.rewards + batch.discounts * next_q
        q, losses, priorities = self.critic_step(obs, actions, td_target, batch.weights)

        self.updates += 1
        if self.updates % self.policy_delay == 0:
            # The actor ascends Q₁(s, μ(s)) by the deterministic policy gradient: the loss
            # −mean_b Q₁(s_b, μ(s_b)) has gradient Σ_b ∇ₐL(a = μ(s_b)) · ∂μ(s_b)/∂θ, the critic's
            # action-gradient carried back through the actor (the critic's weights stay put).
            mu, cache = self.actor.evaluate(obs)
            q_mu, grad_mu = self.q_action_gradient(obs, mu, first=1)
            self.actor.backward(cache, grad_mu)
            adam_step(self.actor_optimizer)
            self.update_targets()
            self.actor_metrics = {"actor_loss": -q_mu.mean()}
        return {**self.critic_metrics(losses, q), **self.actor_metrics}, priorities

    def charts(self, step: int) -> dict:
        return {**super().charts(step), "charts/exploration_noise": self.noise_std}

    STATE = (*ContinuousAgent.STATE, "actor_target")

    def state_dict(self) -> dict:
        return {**super().state_dict(), "ou_state": self.ou_state}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.ou_state = state["ou_state"]
