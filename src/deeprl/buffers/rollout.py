"""On-policy rollout storage: what the current policy just did, in time order, for one update.

Unlike replay, a rollout is consumed whole and then discarded. It keeps the [T, N] layout
(T steps × N envs) because returns and advantages run backwards along time within each env
(see deeprl.core.returns for the formulas and the truncation/termination conventions).
"""

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch


class RolloutBatch(NamedTuple):
    """One rollout, [T, N] leading axes. Tensors feed the losses (on the training device); the
    numpy arrays feed the return and advantage math of deeprl.core.returns.

    `actions` are the policy's own samples (before any clipping or squashing to the env's bounds),
    so `log_probs` are theirs. `next_obs` is the true s' of every step (the episode's final
    observation where it ended), and `next_values` = V(s') for it: V(final obs) after a
    truncation, 0 after a termination, and 0 throughout for agents without a critic. `log_probs`,
    `values` and `next_values` are None for an agent that does not read them
    (`PolicyAgent.READS_COLLECTION_ESTIMATES`).
    """

    obs: torch.Tensor
    actions: torch.Tensor
    log_probs: torch.Tensor | None
    next_obs: torch.Tensor
    values: np.ndarray | None
    next_values: np.ndarray | None
    rewards: np.ndarray
    terminated: np.ndarray
    dones: np.ndarray

    @property
    def size(self) -> int:
        return self.rewards.size


class Rollout:
    """Step-by-step storage that becomes a RolloutBatch. Allocated at the first `add` from the
    shapes and dtypes it is given (so it needs no spec), and grows if more than `n_steps` are added
    (episodic collection does not know its length in advance).

    Per step it stores what the env and the sampler produce, and the log-probabilities and values
    V(s_t) when the acting pass gives them (a shared torso; the network does not change during a
    rollout). `finish` computes the rest in batched passes over the whole rollout (one pass costs
    less than one per step): log-probabilities and V(s_t) where acting did not give them, V of each
    episode's final observation and of the observation after the last step.
    """

    def __init__(self, n_steps: int):
        self.capacity = int(n_steps)
        self.t = 0
        self._tensors: dict[str, torch.Tensor] | None = None
        self._arrays: dict[str, np.ndarray] = {}
        self._final_obs: dict[tuple[int, int], np.ndarray] = {}
        self._kept: set[str] = set()  # which of log_probs and values this rollout stores per step

    def __len__(self) -> int:
        return self.t

    def add(self, obs: torch.Tensor, actions: torch.Tensor, rewards: np.ndarray, terminated: np.ndarray,
            truncated: np.ndarray, infos: dict, *, log_probs: torch.Tensor | None = None,
            values: torch.Tensor | None = None) -> None:
        """One vector-env step (leading axis = env). `obs` is s_t; `infos` the step's infos, whose
        "final_obs" holds the last observation of the envs whose episode just ended. `log_probs`
        (of `actions`) and `values` (V(s_t)) are kept if given from the rollout's first step on;
        `finish` computes what is not kept."""
        if self._tensors is None:
            self._allocate(obs, actions, len(rewards))
        elif self.t == self.capacity:
            self._grow()
        t = self.t
        tensors = self._tensors
        tensors["obs"][t] = obs
        tensors["actions"][t] = actions
        given = {"log_probs": log_probs, "values": values}
        if t == 0:
            self._kept = {k for k, v in given.items() if v is not None}
        for k in self._kept:
            if k not in tensors:
                tensors[k] = torch.zeros((self.capacity, *given[k].shape), dtype=given[k].dtype, device=obs.device)
            tensors[k][t] = given[k]
        arrays = self._arrays
        arrays["rewards"][t] = rewards
        arrays["terminated"][t] = terminated
        dones = terminated | truncated
        arrays["dones"][t] = dones
        if dones.any():
            for i in np.flatnonzero(dones):
                self._final_obs[(t, int(i))] = infos["final_obs"][i]
        self.t += 1

    def finish(self, last_obs: torch.Tensor,
               log_prob_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None,
               value_fn: Callable[[torch.Tensor], torch.Tensor | None] | None) -> RolloutBatch:
        """The batch of everything added since the last `finish`. `last_obs` is the observation
        after the last step. `log_prob_fn(obs, actions)` and `value_fn(obs)` (None without a critic)
        are the policy and critic that collected the data, called without gradient on flat batches.
        Both None: an agent that does not read them; the batch's log_probs, values and next_values
        are None."""
        T = self.t
        obs = self._tensors["obs"][:T].clone()
        actions = self._tensors["actions"][:T].clone()
        n = obs.shape[1]
        next_obs = torch.cat([obs[1:], last_obs.unsqueeze(0).to(obs.dtype)])
        terminated, dones = self._arrays["terminated"][:T].copy(), self._arrays["dones"][:T].copy()
        ended = list(self._final_obs)
        if ended:
            final = torch.as_tensor(np.stack([self._final_obs[k] for k in ended]), device=obs.device)
            rows, cols = (torch.tensor(x, device=obs.device) for x in zip(*ended, strict=True))
            next_obs[rows, cols] = final.to(obs.dtype)

        batch = RolloutBatch(obs=obs, actions=actions, log_probs=None, next_obs=next_obs, values=None,
                             next_values=None, rewards=self._arrays["rewards"][:T].copy(),
                             terminated=terminated, dones=dones)
        self.t = 0
        self._final_obs = {}
        if log_prob_fn is None and value_fn is None:
            return batch
        kept = {k: self._tensors[k][:T] for k in self._kept}
        with torch.no_grad():
            log_probs = kept["log_probs"].clone() if "log_probs" in kept else \
                log_prob_fn(obs.flatten(0, 1), actions.flatten(0, 1)).reshape(T, n)
            # V of every s_t not kept, of the observation after the last step and of every
            # episode's final observation, in one pass.
            extra = [last_obs.to(obs.dtype)] + ([final.to(obs.dtype)] if ended else [])
            if "values" in kept:
                rest = value_fn(torch.cat(extra))
                all_values = None if rest is None else torch.cat([kept["values"].reshape(-1).float(), rest.float()])
            else:
                all_values = value_fn(torch.cat([obs.flatten(0, 1), *extra]))
        values = np.zeros((T, n), np.float32)
        next_values = np.zeros((T, n), np.float32)
        if all_values is not None:
            all_values = all_values.float().cpu().numpy()
            values[:] = all_values[:T * n].reshape(T, n)
            next_values[:-1] = values[1:]
            next_values[-1] = all_values[T * n:T * n + n]
            final_values = all_values[T * n + n:]
            for k, v in zip(ended, final_values, strict=True):
                # Episode ends: V(final obs) after a truncation, nothing after a termination.
                next_values[k] = 0.0 if terminated[k] else v

        return batch._replace(log_probs=log_probs, values=values, next_values=next_values)

    def state_dict(self) -> dict:
        """The steps added since the last `finish` (a rollout in progress), on the CPU."""
        tensors = {k: v[:self.t].cpu() for k, v in self._tensors.items()} if self._tensors is not None else None
        return {"t": self.t, "capacity": self.capacity, "tensors": tensors,
                "arrays": {k: v[:self.t].copy() for k, v in self._arrays.items()},
                "final_obs": dict(self._final_obs), "kept": sorted(self._kept)}

    def load_state_dict(self, state: dict, device: torch.device) -> None:
        self.t, self.capacity = int(state["t"]), int(state["capacity"])
        self._final_obs = dict(state["final_obs"])
        # A rollout saved before log-probabilities and values were kept per step: finish computes them.
        self._kept = set(state.get("kept", ()))
        if state["tensors"] is None:
            self._tensors, self._arrays = None, {}
            return
        self._tensors, self._arrays = {}, {}
        for k, v in state["tensors"].items():
            self._tensors[k] = torch.zeros((self.capacity, *v.shape[1:]), dtype=v.dtype, device=device)
            self._tensors[k][:self.t] = v.to(device)
        for k, v in state["arrays"].items():
            self._arrays[k] = np.zeros((self.capacity, *v.shape[1:]), dtype=v.dtype)
            self._arrays[k][:self.t] = v

    def _allocate(self, obs: torch.Tensor, actions: torch.Tensor, num_envs: int) -> None:
        T, device = self.capacity, obs.device
        self._tensors = {name: torch.zeros((T, *x.shape), dtype=x.dtype, device=device)
                         for name, x in (("obs", obs), ("actions", actions))}
        self._arrays = {"rewards": np.zeros((T, num_envs), np.float32),
                        "terminated": np.zeros((T, num_envs), bool), "dones": np.zeros((T, num_envs), bool)}

    def _grow(self) -> None:
        self._tensors = {k: torch.cat([v, torch.zeros_like(v)]) for k, v in self._tensors.items()}
        self._arrays = {k: np.concatenate([v, np.zeros_like(v)]) for k, v in self._arrays.items()}
        self.capacity *= 2


def select_episodes(batch: RolloutBatch, keep: np.ndarray) -> RolloutBatch:
    """The rows `keep[t, i]` of each env, env after env, as one [L, 1] sequence.

    Each env's kept rows must be whole episodes from t = 0 (so its last kept row ends one):
    laid end to end they stay valid for the return math, which restarts at every `done`.
    """
    cols = [np.flatnonzero(keep[:, i]) for i in range(keep.shape[1])]
    rows_np = np.concatenate(cols)
    envs_np = np.concatenate([np.full(len(c), i) for i, c in enumerate(cols)])
    device = batch.obs.device
    rows, envs = torch.as_tensor(rows_np, device=device), torch.as_tensor(envs_np, device=device)

    def tensor(x: torch.Tensor) -> torch.Tensor:
        return x[rows, envs].unsqueeze(1)

    def array(x: np.ndarray) -> np.ndarray:
        return x[rows_np, envs_np][:, None]

    return RolloutBatch(obs=tensor(batch.obs), actions=tensor(batch.actions),
                        log_probs=tensor(batch.log_probs), next_obs=tensor(batch.next_obs),
                        values=array(batch.values), next_values=array(batch.next_values),
                        rewards=array(batch.rewards), terminated=array(batch.terminated),
                        dones=array(batch.dones))
