"""What the policy-gradient family (REINFORCE, actor-critic, A2C, PPO) shares: a stochastic policy
with an optional critic, how it acts, and its checkpoint. The learning rules are in the
subclasses (reinforce.py, actor_critic.py, a2c.py, ppo.py), each an `update` written out in full.

Continuous actions: the policy samples from an unbounded Gaussian and the rollout stores that
sample (and its log-probability). Only the action sent to the env is brought into bounds, by
clipping (`action_bounds=clip`) or by a tanh squash rescaled to [low, high] (`tanh`). With tanh the
stored log-probability is the Gaussian's, without the tanh Jacobian: the Jacobian depends on the
sample only, not on the parameters, so it cancels in every likelihood ratio and gradient used here.
"""

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from deeprl.core.actions import ActionScale
from deeprl.core.errors import ConfigError
from deeprl.core.optim import param_groups, scheduled_lr, set_scheduled_lr
from deeprl.core.params import flat_parameters, optimizer_step
from deeprl.core.returns import gae
from deeprl.core.seeding import restore_generator
from deeprl.envs import EnvSpec
from deeprl.networks.policy import build_actor_critic

ACTION_BOUNDS = ("clip", "tanh")


class PolicyAgent:
    """Acting, value estimates, learning-rate schedule and checkpoints; subclasses set
    `self.optimizer` and write `update`."""
    LEARNED = ("net",)  # the observation normaliser's statistics included
    # Whether `update` reads the log-probabilities and values of the policy and critic that
    # collected the rollout. An agent that recomputes both (ActorCritic) spares `Rollout.finish`
    # its passes over the rollout: for online actor-critic, two of the few per environment step.
    READS_COLLECTION_ESTIMATES = True

    def __init__(self, name: str, spec: EnvSpec, network, device: torch.device,
                 rng: np.random.Generator, total_steps: int, *, critic: bool, shared_torso: bool,
                 ortho_init: bool, init_log_std: float, action_bounds: str, normalize_obs: bool,
                 anneal_lr: bool, deterministic_eval: bool):
        space = spec.action_space
        if not isinstance(space, (gym.spaces.Discrete, gym.spaces.Box)):
            raise ConfigError("env", f"{name} supports Discrete and Box action spaces; {spec.id} has "
                                     f"{type(space).__name__}")
        self.device = device
        self.total_steps = total_steps
        self.anneal_lr = anneal_lr
        self.discrete = isinstance(space, gym.spaces.Discrete)
        self.net = build_actor_critic(network, spec.obs_shape, space, critic=critic, shared=shared_torso,
                                      ortho_init=ortho_init, init_log_std=init_log_std,
                                      normalize_obs=normalize_obs).to(device)
        self.head = self.net.head
        self.normalize_obs = normalize_obs
        self.deterministic_eval = deterministic_eval
        # Action sampling has its own stream, seeded from the run's generator.
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(int(rng.integers(2**62)))
        if not self.discrete:
            self.action_shape = tuple(space.shape)
            self.low = space.low.reshape(-1).astype(np.float32)
            self.high = space.high.reshape(-1).astype(np.float32)
            if action_bounds not in ACTION_BOUNDS:
                raise ConfigError("algo.action_bounds", f"unknown '{action_bounds}'; use clip or tanh")
            if action_bounds == "tanh" and not (np.isfinite(self.low).all() and np.isfinite(self.high).all()):
                raise ConfigError("algo.action_bounds", f"tanh squashing needs finite bounds but {spec.id} "
                                                        "has infinite ones; use algo.action_bounds=clip")
            self.squash = action_bounds == "tanh"
            self.scale = ActionScale(space) if self.squash else None
        self.optimizer: torch.optim.Optimizer  # set by the subclass
        self.params: list[nn.Parameter] | None = None  # one flat parameter, when `flat_adam` made it

    # Acting --------------------------------------------------------------------------------

    @torch.no_grad()
    def explore(self, obs: torch.Tensor) -> tuple[np.ndarray, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Sample for a batch of observations: (actions for the env, the raw samples to store, their
        log-probabilities and V(s), or None for both). With a shared torso this pass computed the
        features both heads need, so it gives the last two, and the rollout keeps them instead of
        passing its observations through the torso twice more. Otherwise they cost less batched
        over the rollout (an op per step costs more than a small network's pass over 1,000 rows)."""
        params, values = self.net.policy_and_shared_value(obs)
        actions = self.head.sample(params, self.generator)
        log_probs = self.head.log_prob(params, actions) if values is not None else None
        return self.to_env(actions), actions, log_probs, values

    def act(self, obs: np.ndarray, step: int, eval_mode: bool = False) -> np.ndarray:
        """Env actions for a batch of observations; evaluation takes the distribution's mode unless
        `deterministic_eval` is off (then it samples, as during training)."""
        with torch.no_grad():
            params = self.net.policy(torch.as_tensor(obs, device=self.device))
            greedy = eval_mode and self.deterministic_eval
            actions = self.head.mode(params) if greedy else self.head.sample(params, self.generator)
        return self.to_env(actions)

    @torch.no_grad()
    def log_prob(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self.head.log_prob(self.net.policy(obs), actions)

    @torch.no_grad()
    def value(self, obs: torch.Tensor) -> torch.Tensor | None:
        return self.net.value(obs) if self.net.has_critic else None

    def to_env(self, actions: torch.Tensor) -> np.ndarray:
        a = actions.numpy() if actions.device.type == "cpu" else actions.cpu().numpy()
        if self.discrete:
            return a
        if self.squash:
            a = self.scale.from_unit(np.tanh(a))
        else:
            a = np.clip(a, self.low, self.high)
        return a.reshape(len(a), *self.action_shape)

    # Learning helpers ----------------------------------------------------------------------

    def evaluate(self, obs: torch.Tensor, actions: torch.Tensor, entropy: bool = True):
        """(log π(a|s), entropy or None, V(s) or None) with gradients, for the losses."""
        params, values = self.net(obs)
        return (self.head.log_prob(params, actions), self.head.entropy(params) if entropy else None,
                values)

    def flat_adam(self, lr: float, eps: float) -> torch.optim.Adam:
        """Adam over one flat copy of every parameter (see `flat_parameters`), fused into one kernel.
        For agents with a single loss over all parameters."""
        self.params = [flat_parameters(self.net.parameters())]
        return torch.optim.Adam(param_groups((self.params, lr)), eps=eps, fused=self.device.type in ("cpu", "cuda"))

    def step(self, loss: torch.Tensor, max_grad_norm: float | None) -> None:
        """One optimizer step on `loss`, the global gradient norm clipped to `max_grad_norm`."""
        flat = self.params[0] if self.params is not None else None
        optimizer_step(self.optimizer, loss, max_grad_norm, self.net.parameters(), flat)

    def gae_targets(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat (advantages, returns) of a rollout by GAE(λ) from the values stored when it was
        collected, on rewards times `reward_scale` (A2C and PPO: with λ = 1, A + V is the n-step return)."""
        advantages = gae(batch.rewards * self.reward_scale, batch.values, batch.next_values,
                         batch.terminated, batch.dones, self.gamma, self.gae_lambda)
        return self.tensor(advantages).reshape(-1), self.tensor(advantages + batch.values).reshape(-1)

    def tensor(self, x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(x, dtype=torch.float32, device=self.device)

    def learning_rate(self, step: int, group: int = 0) -> float:
        return scheduled_lr(self.optimizer.param_groups[group], self.anneal_lr, self.total_steps, step)

    def set_learning_rate(self, step: int) -> None:
        set_scheduled_lr(self.optimizer, self.anneal_lr, self.total_steps, step)

    def update_obs_stats(self, obs: torch.Tensor) -> None:
        """Fold a batch's observations into the normaliser, after the update that used them, so the
        statistics that acted on a batch are the ones its update sees."""
        if self.normalize_obs:
            self.net.obs_norm.update(obs)

    # Checkpoints ---------------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {"net": self.net.state_dict(), "optimizer": self.optimizer.state_dict(),
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        restore_generator(self.generator, state["generator"])  # a CUDA run's state on a CPU, or the reverse


def flat(x: torch.Tensor) -> torch.Tensor:
    """[T, N, ...] -> [T*N, ...]."""
    return x.reshape(-1, *x.shape[2:])


def explained_variance(values: torch.Tensor, returns: torch.Tensor) -> torch.Tensor:
    """1 - Var(returns - V) / Var(returns): 1 is a perfect critic, 0 no better than a constant.
    NaN where the returns do not vary (all zero in a sparse-reward rollout, or a batch of one):
    then it is undefined, as Stable-Baselines3 and CleanRL log it too. The guard does not judge it
    (loops/session.py: UNDEFINED_AT_TIMES)."""
    var = returns.var(correction=0)  # the ratio is the same with n or n - 1; n also takes a batch of one
    return torch.where(var > 0, 1.0 - (returns - values).var(correction=0) / var, torch.nan)


def normalize(x: torch.Tensor) -> torch.Tensor:
    return (x - x.mean()) / (x.std() + 1e-8) if x.numel() > 1 else x - x.mean()
