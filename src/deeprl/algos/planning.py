"""Dynamic programming with a known model: value iteration and policy iteration.

Both plan on a TabularModel (P[s, a, s'], R[s, a], terminal[s]); a terminal state's value is 0,
so V(s) is the expected (discounted) sum of rewards until the episode ends. gamma = 1 works for
episodic worlds in which the policies involved reach a terminal state.

The loop (loops/planning.py) hands the agent the model with `prepare(model)` and calls `sweep()`
until it reports convergence or `max_sweeps` have run; `act` is then greedy in V.

A cost world's model holds reward = -cost (deeprl.envs.model), so the planners maximise here and
V is minus the cost-to-go; the reports show the world's own convention.
"""

import numpy as np

from deeprl.algos.tabular import require_state_index, state_index
from deeprl.core.errors import ConfigError
from deeprl.envs import EnvSpec
from deeprl.envs.model import TabularModel


def lookahead(model: TabularModel, V: np.ndarray, gamma: float) -> np.ndarray:
    """Q(s, a) = R(s, a) + gamma * sum_s' P(s' | s, a) V(s'), with V = 0 beyond a terminal."""
    return model.R + gamma * model.P @ np.where(model.terminal, 0.0, V)


def greedy(Q: np.ndarray, current: np.ndarray | None = None, atol: float = 1e-9) -> np.ndarray:
    """argmax_a Q(s, a); with `current`, keep its action unless another is better by more than atol.

    Keeping ties stops policy iteration from cycling between equally good actions.
    """
    best = Q.argmax(axis=1)
    if current is None:
        return best
    rows = np.arange(len(Q))
    return np.where(Q[rows, current] >= Q[rows, best] - atol, current, best)


def policy_model(model: TabularModel, policy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """P_pi[s, s'] and R_pi[s] of a deterministic policy."""
    rows = np.arange(model.n_states)
    return model.P[rows, policy], model.R[rows, policy]


def reaches_terminal(model: TabularModel, policy: np.ndarray | None = None) -> np.ndarray:
    """Which states reach a terminal with positive probability (under `policy`, or some policy)."""
    support = model.P > 0 if policy is None else (model.P[np.arange(model.n_states), policy] > 0)[:, None]
    reached = model.terminal.copy()
    while True:
        more = ~reached & (support[:, :, reached].any(axis=2)).any(axis=1)
        if not more.any():
            return reached
        reached |= more


def require_finite_values(model: TabularModel, gamma: float, *, every_state: bool) -> None:
    """With gamma = 1 a value is the undiscounted sum of rewards until a terminal, so a state that
    can never reach one has no finite value unless it collects nothing. Raises ConfigError naming
    algo.gamma when that is the case: `every_state` (policy iteration, whose exact evaluation solves
    a linear system that is then singular) for any such state; otherwise (value iteration) when
    such a state has a non-zero reward, on which value iteration diverges."""
    if gamma < 1.0:
        return
    stuck = ~reaches_terminal(model)
    if every_state:
        bad = stuck
    else:  # the states that cannot reach a terminal only lead to each other: nonzero R means divergence
        bad = stuck & (model.R != 0).any(axis=1)
    if not bad.any():
        return
    state = int(np.flatnonzero(bad)[0])
    where = f"state {state}"
    if model.grid is not None:
        cell = np.argwhere(model.grid.states == state)
        if len(cell):
            where += f" at row {cell[0][0]}, column {cell[0][1]}"
    raise ConfigError(
        "algo.gamma",
        f"with gamma=1 the value is finite only if every state reaches a terminal, but {int(stuck.sum())} "
        f"states (e.g. {where}) never do; set algo.gamma below 1 (e.g. algo.gamma=0.99) or give the world "
        "reachable terminal cells",
    )


def proper_policy(model: TabularModel) -> np.ndarray:
    """A policy that reaches a terminal from every state that can reach one.

    Each state takes an action that can step closer (in steps) to a terminal. With gamma = 1,
    policy iteration must start from such a policy: an improper one has no finite value.
    """
    policy = np.zeros(model.n_states, dtype=np.int64)
    reached = model.terminal.copy()
    while True:
        steps_closer = (model.P[:, :, reached] > 0).any(axis=2)  # (S, A)
        new = ~reached & steps_closer.any(axis=1)
        if not new.any():
            return policy
        policy[new] = steps_closer[new].argmax(axis=1)
        reached |= new


def evaluate_exact(model: TabularModel, policy: np.ndarray, gamma: float) -> np.ndarray:
    """V_pi from the linear Bellman equation (I - gamma P_pi) V = R_pi over non-terminal states."""
    P_pi, R_pi = policy_model(model, policy)
    live = ~model.terminal
    V = np.zeros(model.n_states)
    A = np.eye(live.sum()) - gamma * P_pi[np.ix_(live, live)]
    V[live] = np.linalg.solve(A, R_pi[live])
    return V


def evaluate_iterative(model: TabularModel, policy: np.ndarray, gamma: float, V: np.ndarray,
                       tol: float, max_sweeps: int) -> tuple[np.ndarray, int, float]:
    """Repeated expectation backups V <- R_pi + gamma P_pi V from V; returns (V, sweeps, last delta)."""
    P_pi, R_pi = policy_model(model, policy)
    live = ~model.terminal
    delta = np.inf
    for sweep in range(1, max_sweeps + 1):
        V_new = np.where(live, R_pi + gamma * P_pi @ np.where(live, V, 0.0), 0.0)
        delta = float(np.abs(V_new - V).max())
        V = V_new
        if delta < tol:
            return V, sweep, delta
    return V, max_sweeps, delta


INIT_VALUES = ("zero", "cell")


def initial_values(model: TabularModel, how: str) -> np.ndarray:
    """V_0: `zero`, or `cell`: each state's own number (its cell's reward, or -cost in a cost
    world), as in the textbook value iteration that starts from V_0(s) = C(s)."""
    if how == "zero":
        return np.zeros(model.n_states)
    if how == "cell":
        if model.cell_values is None:
            raise ConfigError("algo.init_values",
                              "cell needs a world with a number per cell (a gridworld: "
                              "env=gridworld, gridworld_4x3, maze, cost_maze); use zero")
        return np.array(model.cell_values, dtype=float)
    raise ConfigError("algo.init_values", f"unknown '{how}'; use {' or '.join(INIT_VALUES)}")


class _Planner:
    """What value and policy iteration share: the model, V, Q, the greedy policy, acting."""

    name = "planner"
    OBSERVES_STATE_INDEX = True  # observations are state indices, not network inputs (build.py)

    def __init__(self, spec: EnvSpec, gamma: float, tol: float):
        require_state_index(self.name, spec)
        self.gamma, self.tol = float(gamma), float(tol)
        self.n_states = spec.n_states
        self.model: TabularModel | None = None
        self.V = np.zeros(spec.n_states)
        self.Q = np.zeros((spec.n_states, spec.n_actions))
        self.policy = np.zeros(spec.n_states, dtype=np.int64)

    def prepare(self, model: TabularModel) -> None:
        if model.n_states != self.n_states:
            raise ValueError(f"the model has {model.n_states} states but the env observes {self.n_states}")
        self.model = model

    def act(self, obs: np.ndarray, step: int, eval_mode: bool = False) -> np.ndarray:
        return self.policy[state_index(obs)]

    def values(self) -> tuple[np.ndarray, np.ndarray]:
        return self.V, self.policy

    def state_dict(self) -> dict:
        return {"V": self.V.copy(), "Q": self.Q.copy(), "policy": self.policy.copy()}

    def load_state_dict(self, state: dict) -> None:
        self.V, self.Q, self.policy = state["V"].copy(), state["Q"].copy(), state["policy"].copy()


class ValueIteration(_Planner):
    """Synchronous Bellman optimality backups V(s) <- max_a Q(s, a) until max |dV| < tol."""

    name = "value_iteration"

    def __init__(self, spec: EnvSpec, network, device, rng, total_steps: int, *, gamma: float,
                 tol: float, init_values: str = "zero"):
        super().__init__(spec, gamma, tol)
        self.init_values = init_values

    def prepare(self, model: TabularModel) -> None:
        super().prepare(model)
        require_finite_values(model, self.gamma, every_state=False)
        # Sweep 0: V_0, with Q and the policy greedy in it (what a run stopped here would act on).
        self.V = initial_values(model, self.init_values)
        self.Q = lookahead(model, self.V, self.gamma)
        self.policy = greedy(self.Q)

    def sweep(self) -> tuple[dict, bool]:
        # ALGO LOGIC: one synchronous backup of every state from the previous V.
        Q = lookahead(self.model, self.V, self.gamma)
        V = Q.max(axis=1)
        delta = float(np.abs(V - self.V).max())
        self.V = V
        # Q and the policy greedy in the new V (Q* and pi* once V has converged).
        self.Q = lookahead(self.model, self.V, self.gamma)
        self.policy = greedy(self.Q)
        return {"max_delta": delta}, delta < self.tol


class PolicyIteration(_Planner):
    """Evaluate the policy (exactly, or by `eval_sweeps` backups at most), improve it greedily,
    until no state changes its action."""

    name = "policy_iteration"

    def __init__(self, spec: EnvSpec, network, device, rng, total_steps: int, *, gamma: float, tol: float,
                 evaluation: str, eval_sweeps: int):
        super().__init__(spec, gamma, tol)
        if evaluation not in ("exact", "iterative"):
            raise ConfigError("algo.evaluation", f"unknown '{evaluation}'; use exact or iterative")
        self.evaluation, self.eval_sweeps = evaluation, int(eval_sweeps)

    def prepare(self, model: TabularModel) -> None:
        super().prepare(model)
        require_finite_values(model, self.gamma, every_state=True)
        self.policy = proper_policy(model)

    def sweep(self) -> tuple[dict, bool]:
        if self.gamma == 1.0:
            self._check_proper()
        # ALGO LOGIC: policy evaluation ...
        if self.evaluation == "exact":
            V, sweeps, eval_delta = evaluate_exact(self.model, self.policy, self.gamma), 1, 0.0
        else:  # warm-started; few eval_sweeps make this modified policy iteration
            V, sweeps, eval_delta = evaluate_iterative(self.model, self.policy, self.gamma, self.V,
                                                       self.tol, self.eval_sweeps)
        delta = float(np.abs(V - self.V).max())
        self.V = V
        # ... then greedy improvement, keeping the current action on ties.
        self.Q = lookahead(self.model, self.V, self.gamma)
        policy = greedy(self.Q, current=self.policy)
        changes = int((policy != self.policy).sum())
        self.policy = policy
        metrics = {"max_delta": delta, "policy_changes": changes, "eval_sweeps": sweeps}
        # A truncated evaluation can leave the policy unchanged while V is still moving.
        return metrics, changes == 0 and eval_delta < self.tol

    def _check_proper(self) -> None:
        # prepare() made sure every state can reach a terminal; an improvement step can still pick
        # a policy that never does, where a loop pays more than ending the episode.
        stuck = ~reaches_terminal(self.model, self.policy)
        if stuck.any():
            raise ConfigError(
                "algo.gamma",
                f"with gamma=1 the greedy policy never reaches a terminal from {stuck.sum()} states (e.g. state "
                f"{np.flatnonzero(stuck)[0]}): looping there pays more than ending the episode, so the values "
                "are unbounded; set algo.gamma below 1 (e.g. algo.gamma=0.99)",
            )
