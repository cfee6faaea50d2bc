"""Tabular Q-learning and SARSA: a table Q[s, a] updated from each transition.

    Q(s, a) <- Q(s, a) + alpha * (r + gamma * (1 - terminated) * Q(s', .) - Q(s, a))

with Q(s', .) = max_a' Q(s', a') for Q-learning (off-policy) and Q(s', a') for the action the
policy takes next for SARSA (on-policy). Exploration is epsilon-greedy or Boltzmann (softmax over
Q / temperature), each annealed linearly; alpha is constant, annealed linearly, or 1 / n(s, a)^power
per state-action pair (the Robbins-Monro form under which Q-learning converges).
"""

from typing import NamedTuple

import numpy as np

from deeprl.core.errors import ConfigError
from deeprl.core.schedules import linear_schedule
from deeprl.envs import EnvSpec

TABULAR_ENVS = "env=gridworld_4x3, maze, gridworld, frozenlake, frozenlake8x8, cliffwalking or taxi"


def require_state_index(algo: str, spec: EnvSpec) -> None:
    if not spec.n_states:
        raise ConfigError(
            "env",
            f"{algo} is tabular and needs observations that are a discrete state index, but {spec.id} "
            f"observes shape {spec.obs_shape}; use {TABULAR_ENVS} (with env.one_hot=false)",
        )
    if not spec.discrete:
        raise ConfigError("env", f"{algo} needs discrete actions; use {TABULAR_ENVS}")


def state_index(obs: np.ndarray) -> np.ndarray:
    """A batch of state indices (leading axis = env)."""
    return np.asarray(obs, dtype=np.int64).reshape(-1)


def greedy_random_ties(Q_rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """argmax per row, choosing uniformly among tied actions (an all-zero table has no preference)."""
    best = Q_rows >= Q_rows.max(axis=1, keepdims=True)
    return np.argmax(best * rng.random(Q_rows.shape), axis=1)


def epsilon_greedy(Q_rows: np.ndarray, eps: float, rng: np.random.Generator) -> np.ndarray:
    """Per row: a uniformly random action with probability eps, else greedy with random ties."""
    explore = rng.random(len(Q_rows)) < eps
    actions = rng.integers(0, Q_rows.shape[1], size=len(Q_rows))
    if explore.all():
        return actions
    return np.where(explore, actions, greedy_random_ties(Q_rows, rng))


def epsilon_greedy_one(Q_row: np.ndarray, eps: float, rng: np.random.Generator) -> int:
    """`epsilon_greedy` for a single row, on scalars: the same draws in the same order, hence the
    same action, in about half the time (numpy pays about a microsecond per call on a one-element
    array, and `integers(size=...)` four)."""
    explore = rng.random() < eps
    action = rng.integers(0, len(Q_row))
    if explore:
        return int(action)
    return int(np.argmax((Q_row >= Q_row.max()) * rng.random(len(Q_row))))


def boltzmann(Q_rows: np.ndarray, temperature: float, rng: np.random.Generator) -> np.ndarray:
    logits = Q_rows / temperature
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    cumulative = np.cumsum(probs, axis=1)
    u = rng.random((len(Q_rows), 1)) * cumulative[:, -1:]
    return np.minimum((cumulative <= u).sum(axis=1), Q_rows.shape[1] - 1)


class Transition(NamedTuple):
    obs: np.ndarray  # (B,) state indices
    actions: np.ndarray  # (B,)
    rewards: np.ndarray  # (B,)
    next_obs: np.ndarray  # (B,) the true s' (the final observation when an episode ended)
    terminated: np.ndarray  # (B,) bool: no bootstrap beyond s'
    next_actions: np.ndarray  # (B,) the action the behaviour policy takes in s' (SARSA's target)


class TabularQ:
    LEARNED = ("Q",)
    RULES = ("q_learning", "sarsa")
    OBSERVES_STATE_INDEX = True  # observations are state indices, not network inputs (build.py)

    def __init__(self, spec: EnvSpec, network, device, rng: np.random.Generator, total_steps: int, *,
                 rule: str, gamma: float, alpha: float, alpha_decay: str, alpha_end: float,
                 alpha_power: float, q_init: float, exploration):
        require_state_index(rule, spec)
        if rule not in self.RULES:
            raise ConfigError("algo.rule", f"unknown '{rule}'; use q_learning or sarsa")
        if alpha_decay not in ("constant", "linear", "visits"):
            raise ConfigError("algo.alpha_decay", f"unknown '{alpha_decay}'; use constant, linear or visits")
        if exploration.kind not in ("epsilon", "boltzmann"):
            raise ConfigError("algo.exploration.kind", f"unknown '{exploration.kind}'; use epsilon or boltzmann")
        self.rule, self.gamma, self.rng, self.total_steps = rule, float(gamma), rng, total_steps
        # Evaluation draws from its own stream, so how often a run evaluates never changes training.
        self.eval_rng = np.random.default_rng(rng.integers(2**63))
        self.alpha, self.alpha_decay, self.alpha_end = float(alpha), alpha_decay, float(alpha_end)
        self.alpha_power = float(alpha_power)
        self.exploration = exploration.kind
        self.eps_start, self.eps_end, self.eps_eval = exploration.start, exploration.end, exploration.eval
        self.temp_start, self.temp_end = exploration.temperature, exploration.temperature_end
        self.decay_steps = exploration.fraction * total_steps
        self.Q = np.full((spec.n_states, spec.n_actions), float(q_init))
        self.visits = np.zeros((spec.n_states, spec.n_actions), dtype=np.int64)
        self.last_alpha = self.alpha

    def epsilon(self, step: int) -> float:
        return linear_schedule(self.eps_start, self.eps_end, self.decay_steps, step)

    def temperature(self, step: int) -> float:
        return linear_schedule(self.temp_start, self.temp_end, self.decay_steps, step)

    def learning_rate(self, step: int) -> float:
        if self.alpha_decay == "linear":
            return linear_schedule(self.alpha, self.alpha_end, self.total_steps, step)
        return self.alpha if self.alpha_decay == "constant" else self.last_alpha

    def charts(self, step: int) -> dict:
        explore = ({"charts/epsilon": self.epsilon(step)} if self.exploration == "epsilon"
                   else {"charts/temperature": self.temperature(step)})
        return {**explore, "charts/learning_rate": self.learning_rate(step)}

    def act(self, obs: np.ndarray, step: int, eval_mode: bool = False) -> np.ndarray:
        s = state_index(obs)
        if len(s) == 1:  # one env, the usual case
            return np.array([self.act_one(int(s[0]), step, eval_mode)])
        if not eval_mode and self.exploration == "boltzmann":
            return boltzmann(self.Q[s], self.temperature(step), self.rng)
        eps = self.eps_eval if eval_mode else self.epsilon(step)
        return epsilon_greedy(self.Q[s], eps, self.eval_rng if eval_mode else self.rng)

    def act_one(self, s: int, step: int, eval_mode: bool = False) -> int:
        """`act` for one env's state index, on Python scalars: the same draws, the same action."""
        if not eval_mode and self.exploration == "boltzmann":
            return int(boltzmann(self.Q[s:s + 1], self.temperature(step), self.rng)[0])
        eps = self.eps_eval if eval_mode else self.epsilon(step)
        return epsilon_greedy_one(self.Q[s], eps, self.eval_rng if eval_mode else self.rng)

    def update(self, batch: Transition, step: int) -> dict[str, float]:
        s, a, s_next = state_index(batch.obs), np.asarray(batch.actions), state_index(batch.next_obs)
        r, terminated, a_next = (np.asarray(x) for x in (batch.rewards, batch.terminated, batch.next_actions))
        if len(s) == 1:
            td_error, q = self.update_one(int(s[0]), int(a[0]), float(r[0]), int(s_next[0]), bool(terminated[0]),
                                          int(a_next[0]), step)
            return {"td_error": abs(td_error), "q_values": q}
        td_error = self.td_update(s, a, r, s_next, terminated, a_next, step)
        return {"td_error": float(np.abs(td_error).mean()), "q_values": float(self.Q[s, a].mean())}

    def update_one(self, s: int, a: int, r: float, s_next: int, terminated: bool, a_next: int,
                   step: int) -> tuple[float, float]:
        """`update` for one env's transition, on Python scalars rather than one-element arrays (the
        same float64 arithmetic, bit for bit, in a fraction of the time): the TD error and the
        updated Q(s, a)."""
        Q = self.Q
        bootstrap = Q[s_next].max() if self.rule == "q_learning" else Q[s_next, a_next]
        td_error = float(r + self.gamma * (1.0 - terminated) * bootstrap - Q[s, a])
        self.visits[s, a] += 1
        if self.alpha_decay == "visits":
            # On an array, as for several envs: numpy's array power may take a SIMD path whose
            # rounding its scalar power need not share, and results must not move.
            alpha = float((self.alpha / self.visits[[s], [a]] ** self.alpha_power)[0])
            self.last_alpha = alpha
        else:
            alpha = self.learning_rate(step)
        Q[s, a] += alpha * td_error
        return td_error, float(Q[s, a])

    def td_update(self, s, a, r, s_next, terminated, a_next, step: int):
        """Update Q from one transition per env, as arrays over the envs; returns the TD errors."""
        # ALGO LOGIC: the bootstrap is the greedy value (Q-learning) or that of the next action
        # actually taken (SARSA); termination, not truncation, cuts it.
        if self.rule == "q_learning":
            bootstrap = self.Q[s_next].max(axis=-1)
        else:
            bootstrap = self.Q[s_next, a_next]
        target = r + self.gamma * (1.0 - terminated) * bootstrap
        td_error = target - self.Q[s, a]
        np.add.at(self.visits, (s, a), 1)
        if self.alpha_decay == "visits":
            alpha = self.alpha / self.visits[s, a] ** self.alpha_power
            self.last_alpha = float(alpha.mean())
        else:
            alpha = self.learning_rate(step)
        np.add.at(self.Q, (s, a), alpha * td_error)  # add.at: two envs may update the same pair
        return td_error

    def values(self) -> tuple[np.ndarray, np.ndarray]:
        """V(s) = max_a Q(s, a) and the greedy policy, for reports."""
        return self.Q.max(axis=1), self.Q.argmax(axis=1)

    def state_dict(self) -> dict:
        return {"Q": self.Q.copy(), "visits": self.visits.copy(), "last_alpha": self.last_alpha,
                "eval_rng": self.eval_rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.Q, self.visits = state["Q"].copy(), state["visits"].copy()
        self.last_alpha = state["last_alpha"]
        if "eval_rng" in state:
            self.eval_rng.bit_generator.state = state["eval_rng"]
