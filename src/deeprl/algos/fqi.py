"""Fitted Q-iteration (Ernst et al. 2005; Riedmiller 2005 with a network): batch RL from a fixed
dataset of transitions collected once by a behaviour policy. Each iteration k regresses

    Q_{k+1} <- argmin_Q  sum_i (Q(s_i, a_i) - y_i)^2,   y_i = r_i + gamma * (1 - terminated_i) * max_a' Q_k(s'_i, a')

With a table the regression is exact (the mean target of each visited pair), so FQI is value
iteration on the dataset's empirical model; with a network (one-hot states in, one Q per action
out) it generalises, warm-started from the previous iterate. Pairs the data never visits keep
their initial value (0) in the table.
"""

import numpy as np
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import nn

from deeprl.algos.planning import lookahead
from deeprl.algos.tabular import Transition, greedy_random_ties, require_state_index, state_index
from deeprl.core import eager
from deeprl.core.errors import ConfigError
from deeprl.envs import EnvSpec
from deeprl.envs.model import TabularModel
from deeprl.networks import QHead


class FittedQIteration:
    OBSERVES_STATE_INDEX = True  # the network, if any, gets a one-hot of the index (build.py)

    def __init__(self, spec: EnvSpec, network, device: torch.device, rng: np.random.Generator,
                 total_steps: int, *, gamma: float, regressor: str, behaviour: str,
                 behaviour_epsilon: float, lr: float, fit_steps: int, batch_size: int):
        require_state_index("fitted_q_iteration", spec)
        if regressor not in ("table", "mlp"):
            raise ConfigError("algo.regressor", f"unknown '{regressor}'; use table or mlp")
        if behaviour not in ("uniform", "expert"):
            raise ConfigError("algo.behaviour", f"unknown '{behaviour}'; use uniform or expert")
        self.gamma, self.rng, self.device = float(gamma), rng, device
        # Evaluation draws from its own stream, so how often a run evaluates never changes training.
        self.eval_rng = np.random.default_rng(rng.integers(2**63))
        self.regressor, self.behaviour, self.behaviour_epsilon = regressor, behaviour, float(behaviour_epsilon)
        self.fit_steps, self.batch_size = int(fit_steps), int(batch_size)
        self.n_states, self.n_actions = spec.n_states, spec.n_actions
        self.expert: np.ndarray | None = None
        self.Q = np.zeros((self.n_states, self.n_actions))  # the table, or the network's current output
        if regressor == "mlp":
            torso = instantiate(network, obs_shape=(self.n_states,))
            self.net = nn.Sequential(torso, QHead(torso.out_dim, self.n_actions)).to(device)
            self.optimizer = torch.optim.Adam(self.net.parameters(), lr=lr)
            self.eye = torch.eye(self.n_states, device=device)
            self.Q = self._net_table()

    def prepare(self, model: TabularModel | None) -> None:
        """The expert behaviour is epsilon-greedy around the optimal policy of the known model."""
        if self.behaviour != "expert":
            return
        if model is None:
            raise ConfigError("algo.behaviour", "expert needs an env with a known model; use behaviour=uniform")
        V = np.zeros(model.n_states)
        for _ in range(100_000):
            V_new = lookahead(model, V, self.gamma).max(axis=1)
            done = np.abs(V_new - V).max() < 1e-10
            V = V_new
            if done:
                break
        self.expert = lookahead(model, V, self.gamma).argmax(axis=1)

    def act(self, obs: np.ndarray, step: int, eval_mode: bool = False) -> np.ndarray:
        s = state_index(obs)
        if eval_mode:
            return greedy_random_ties(self.Q[s], self.eval_rng)
        uniform = self.rng.integers(0, self.n_actions, size=len(s))
        if self.behaviour == "uniform":
            return uniform
        return np.where(self.rng.random(len(s)) < self.behaviour_epsilon, uniform, self.expert[s])

    def update(self, data: Transition, iteration: int) -> dict[str, float]:
        """One FQI iteration on the whole dataset."""
        s, a, s_next = state_index(data.obs), np.asarray(data.actions), state_index(data.next_obs)
        Q_old = self.Q.copy()
        # ALGO LOGIC: regression targets from the previous iterate, held fixed during the fit.
        not_done = 1.0 - np.asarray(data.terminated, dtype=float)
        y = data.rewards + self.gamma * not_done * Q_old[s_next].max(axis=1)
        if self.regressor == "table":
            pair = s * self.n_actions + a
            size = self.n_states * self.n_actions
            counts = np.bincount(pair, minlength=size).reshape(self.Q.shape)
            sums = np.bincount(pair, weights=y, minlength=size).reshape(self.Q.shape)
            seen = counts > 0
            self.Q[seen] = sums[seen] / counts[seen]
        else:
            self._fit(s, a, y)
            self.Q = self._net_table()
        fit_loss = float(np.mean((self.Q[s, a] - y) ** 2))
        return {"max_delta": float(np.abs(self.Q - Q_old).max()), "fit_loss": fit_loss}

    def _fit(self, s: np.ndarray, a: np.ndarray, y: np.ndarray) -> None:
        s_t = torch.as_tensor(s, device=self.device)
        a_t = torch.as_tensor(a, device=self.device)
        y_t = torch.as_tensor(y, dtype=torch.float32, device=self.device)
        for _ in range(self.fit_steps):
            i = torch.as_tensor(self.rng.integers(0, len(s), size=min(self.batch_size, len(s))),
                                device=self.device)
            q = self.net(self.eye[s_t[i]]).gather(1, a_t[i, None]).squeeze(1)
            loss = F.mse_loss(q, y_t[i])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            eager.step(self.optimizer)

    @torch.no_grad()
    def _net_table(self) -> np.ndarray:
        return self.net(self.eye).double().cpu().numpy()

    def values(self) -> tuple[np.ndarray, np.ndarray]:
        return self.Q.max(axis=1), self.Q.argmax(axis=1)

    def state_dict(self) -> dict:
        state = {"Q": self.Q.copy(), "expert": self.expert, "eval_rng": self.eval_rng.bit_generator.state}
        if self.regressor == "mlp":
            state.update(net=self.net.state_dict(), optimizer=self.optimizer.state_dict())
        return state

    def load_state_dict(self, state: dict) -> None:
        self.Q, self.expert = state["Q"].copy(), state["expert"]
        if "eval_rng" in state:
            self.eval_rng.bit_generator.state = state["eval_rng"]
        if self.regressor == "mlp":
            self.net.load_state_dict(state["net"])
            self.optimizer.load_state_dict(state["optimizer"])
