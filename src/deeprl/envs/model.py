"""Known models of small discrete MDPs, for the planners and the tabular reports.

`tabular_model(env)` turns an env with a known model (our GridWorld, or a gymnasium toy-text env
with its `P[s][a] = [(prob, next_state, reward, terminated), ...]` table) into dense arrays:

    P[s, a, s']  transition probabilities (each row sums to 1)
    R[s, a]      expected reward of taking a in s
    terminal[s]  the episode ends on entering s

Terminal states are made absorbing with zero reward (P[t, a, t] = 1, R[t, a] = 0), so V(t) = 0
and the value of a state is the expected sum of rewards until the episode ends. This is the same
MDP whether an env ends the episode on a terminal or keeps the agent there.

A world that counts costs (a gridworld with `objective: cost`) is held here as reward = -cost, so
every planner and learner maximises as usual; `cost` says so, and `sign` turns values back into the
world's own convention (cost-to-go) for what users see.
"""

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from deeprl.core.errors import ConfigError

ARROWS = {(-1, 0): "↑", (0, 1): "→", (1, 0): "↓", (0, -1): "←"}


@dataclass(frozen=True)
class Grid:
    """How states sit on a 2-D grid, for drawing values and policies."""

    chars: np.ndarray  # (rows, cols) one display character per cell
    states: np.ndarray  # (rows, cols) state index of each cell, -1 where there is none (walls)
    moves: tuple[tuple[int, int], ...]  # (d_row, d_col) of each action; (0, 0) for non-moves

    def arrow(self, action: int) -> str:
        return ARROWS.get(self.moves[action], str(action)) if action < len(self.moves) else str(action)


@dataclass(frozen=True)
class TabularModel:
    P: np.ndarray  # (S, A, S)
    R: np.ndarray  # (S, A)
    terminal: np.ndarray  # (S,) bool
    initial: np.ndarray  # (S,) start-state distribution
    action_names: tuple[str, ...]
    grid: Grid | None = None
    # True when the world counts costs: R and values here are -cost (see the module docstring).
    cost: bool = False
    # (S,) each state's own number (its cell's reward, or -cost), where the world has one per cell:
    # the V_0 of value iteration's `init_values: cell`. None for worlds without one (toy text).
    cell_values: np.ndarray | None = None

    @property
    def sign(self) -> float:
        """Values in the world's own convention are sign * V (-1 turns -cost back into cost)."""
        return -1.0 if self.cost else 1.0

    @property
    def n_states(self) -> int:
        return self.P.shape[0]

    @property
    def n_actions(self) -> int:
        return self.P.shape[1]


def tabular_model(env: gym.Env) -> TabularModel:
    """The known model of `env` (unwrapped through any wrappers), or a ConfigError naming the env."""
    base = env.unwrapped
    if hasattr(base, "model") and isinstance(base.model, TabularModel):
        return base.model
    if isinstance(getattr(base, "P", None), dict):
        return _from_toy_text(base)
    raise ConfigError(
        "env",
        f"{type(base).__name__} has no known model for planning; use env=gridworld_4x3, maze, "
        "cost_maze, frozenlake, frozenlake8x8, cliffwalking or taxi",
    )


def describe(env: gym.Env) -> TabularModel | None:
    """The model when the env has one, else None (tabular learners run without it)."""
    try:
        return tabular_model(env)
    except ConfigError:
        return None


def _from_toy_text(base) -> TabularModel:
    n_states, n_actions = int(base.observation_space.n), int(base.action_space.n)
    P = np.zeros((n_states, n_actions, n_states))
    R = np.zeros((n_states, n_actions))
    terminal = np.zeros(n_states, dtype=bool)
    for s in range(n_states):
        for a in range(n_actions):
            for prob, s_next, reward, done in base.P[s][a]:
                P[s, a, int(s_next)] += prob  # FrozenLake lists the same s' more than once
                R[s, a] += prob * reward
                terminal[int(s_next)] |= bool(done)
    # The episode ends on entering a terminal state: make it absorbing with zero reward.
    # (CliffWalking's table still lists moves out of the goal; FrozenLake's already self-loops.)
    ends = np.flatnonzero(terminal)
    P[ends] = 0.0
    P[ends, :, ends] = 1.0
    R[terminal] = 0.0
    initial = np.asarray(getattr(base, "initial_state_distrib", np.eye(n_states)[0]), dtype=float)
    names, grid = _toy_text_layout(base, n_actions)
    return TabularModel(P, R, terminal, initial / initial.sum(), names, grid)


def _toy_text_layout(base, n_actions: int) -> tuple[tuple[str, ...], Grid | None]:
    from gymnasium.envs.toy_text import CliffWalkingEnv, FrozenLakeEnv, TaxiEnv

    if isinstance(base, FrozenLakeEnv):
        chars = base.desc.astype(str)
        states = np.arange(chars.size).reshape(chars.shape)
        return ("left", "down", "right", "up"), Grid(chars, states, ((0, -1), (1, 0), (0, 1), (-1, 0)))
    if isinstance(base, CliffWalkingEnv):
        chars = np.full(base.shape, ".")
        chars[base._cliff] = "C"
        chars[np.unravel_index(base.start_state_index, base.shape)] = "S"
        chars[-1, -1] = "G"
        states = np.arange(chars.size).reshape(chars.shape)
        states[base._cliff] = -1  # listed as states, but stepping there puts the agent back at the start
        return ("up", "right", "down", "left"), Grid(chars, states, ((-1, 0), (0, 1), (1, 0), (0, -1)))
    if isinstance(base, TaxiEnv):  # 500 states are (taxi row, taxi col, passenger, destination)
        return ("south", "north", "east", "west", "pickup", "dropoff"), None
    return tuple(str(a) for a in range(n_actions)), None


class OneHotObservation(gym.ObservationWrapper):
    """A discrete state index as a float one-hot vector, for networks (e.g. DQN on a gridworld)."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        if not isinstance(env.observation_space, gym.spaces.Discrete):
            raise ConfigError("env.one_hot", f"needs a discrete observation space, not {env.observation_space}")
        self.n = int(env.observation_space.n)
        self.observation_space = gym.spaces.Box(0.0, 1.0, (self.n,), np.float32)

    def observation(self, observation):
        one_hot = np.zeros(self.n, np.float32)
        one_hot[int(observation)] = 1.0
        return one_hot
