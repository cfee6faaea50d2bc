"""Gridworld MDPs from a text layout, with their full model (P[s, a, s'], R[s, a]) for the planners.

Cells: `.` empty, `#` wall, `S` start (several = a uniform choice), and one character per terminal
cell or reward cell, given by `terminals` / `rewards` (e.g. terminals {"+": 1.0, "-": -1.0}).
Actions 0..3 are N, E, S, W. With `slip` = p the intended move happens with probability p and each
perpendicular one with (1 - p) / 2; a move into a wall or off the grid stays put.

When a cell's number is paid (`pay`):
- `enter` (the default): every step pays `step_reward` plus the number of the cell it lands in, so
  a terminal's number arrives with the step that enters it. On entering a terminal the episode
  ends (`terminal: end`), or the agent stays there collecting nothing more (`terminal: absorbing`,
  the episode then ends only at the time limit); both are the same MDP for the planners.
- `occupy`: every step pays `step_reward` plus the number of the cell it starts from, i.e. a cell
  pays for each step the agent spends in it. With `terminal: absorbing` a terminal cell keeps the
  agent (every action stays) and keeps paying its number every step: it is an ordinary absorbing
  state of the MDP, not a terminal one (its value is number / (1 - gamma)). With `terminal: end`
  no step is spent in a terminal, so its number must be 0.

`objective: cost` says every number (`terminals`, `rewards`, `step_reward`) is a cost to minimise.
The env then returns reward = -cost and the model holds -cost (flagged `cost`), so the planners and
learners maximise as usual; reports turn values back into costs (deeprl.loops.report).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from deeprl.core.errors import ConfigError
from deeprl.envs.model import Grid, TabularModel

EMPTY, WALL, START = ".", "#", "S"
MOVES = ((-1, 0), (0, 1), (1, 0), (0, -1))  # N, E, S, W as (d_row, d_col)
ACTION_NAMES = ("N", "E", "S", "W")
TERMINAL_MODES = ("end", "absorbing")
PAY_MODES = ("enter", "occupy")
OBJECTIVES = ("reward", "cost")
CELL_PIXELS = 32
EMPTY_RGB, WALL_RGB, LINE_RGB = (235, 235, 235), (70, 70, 70), (160, 160, 160)
GOOD_RGB, BAD_RGB, AGENT_RGB = (40, 170, 60), (210, 50, 40), (40, 90, 220)


@dataclass(frozen=True)
class Layout:
    chars: np.ndarray  # (rows, cols) the layout's characters
    states: np.ndarray  # (rows, cols) state index of each cell, -1 for walls
    cells: tuple[tuple[int, int], ...]  # (row, col) of each state
    starts: tuple[int, ...]
    terminal: np.ndarray  # (S,) bool
    reward: np.ndarray  # (S,) the cell's number as written (a reward; a cost if objective: cost)


def _rows(layout) -> list[str]:
    if isinstance(layout, str):
        return [line.strip() for line in layout.strip().splitlines() if line.strip()]
    if not isinstance(layout, Sequence) or not all(isinstance(row, str) for row in layout):
        raise ConfigError("env.layout", f"must be a list of strings (one per row), got {layout!r}")
    return list(layout)


def _cell_values(mapping, key: str) -> dict[str, float]:
    mapping = dict(mapping or {})
    for char, value in mapping.items():
        if not isinstance(char, str) or len(char) != 1 or char in (EMPTY, WALL, START):
            raise ConfigError(f"env.{key}", f"keys must be single characters other than '.', '#' and 'S', got {char!r}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"env.{key}", f"the reward of '{char}' must be a number, got {value!r}")
    return {char: float(value) for char, value in mapping.items()}


def parse_layout(layout, terminals: Mapping | None = None, rewards: Mapping | None = None) -> Layout:
    """Check and index a text layout; each problem is a ConfigError saying where and how to fix it."""
    terminals, rewards = _cell_values(terminals, "terminals"), _cell_values(rewards, "rewards")
    both = set(terminals) & set(rewards)
    if both:
        raise ConfigError("env.rewards", f"'{sorted(both)[0]}' is also a terminal; a cell is one or the other")
    rows = _rows(layout)
    if not rows or not rows[0]:
        raise ConfigError("env.layout", "is empty; give at least one row, e.g. ['S..+']")
    for i, row in enumerate(rows):
        if len(row) != len(rows[0]):
            raise ConfigError("env.layout", f"rows must all have the same length: row {i} has {len(row)} "
                                            f"cells, row 0 has {len(rows[0])} (pad with '#')")
    known = {EMPTY, WALL, START, *terminals, *rewards}
    for i, row in enumerate(rows):
        for j, char in enumerate(row):
            if char not in known:
                raise ConfigError("env.layout", f"unknown cell '{char}' at row {i}, column {j}; use "
                                                f"'.', '#', 'S' or a key of env.terminals / env.rewards")
    chars = np.array([list(row) for row in rows])
    states = np.full(chars.shape, -1)
    open_cells = chars != WALL
    states[open_cells] = np.arange(open_cells.sum())
    cells = tuple((int(r), int(c)) for r, c in zip(*np.nonzero(open_cells), strict=True))
    starts = tuple(int(s) for s, (r, c) in enumerate(cells) if chars[r, c] == START)
    if not starts:
        raise ConfigError("env.layout", "has no start cell; mark one with 'S'")
    terminal = np.array([chars[r, c] in terminals for r, c in cells])
    reward = np.array([terminals.get(chars[r, c], rewards.get(chars[r, c], 0.0)) for r, c in cells])
    return Layout(chars, states, cells, starts, terminal, reward)


def check_slip(slip) -> float:
    if isinstance(slip, bool) or not isinstance(slip, (int, float)) or not 0.0 <= slip <= 1.0:
        raise ConfigError("env.slip", f"is the probability of the intended move and must be in [0, 1], "
                                      f"got {slip!r}; e.g. env.slip=0.8 (or 1.0 for a deterministic world)")
    return float(slip)


def check_modes(terminal: str = "end", pay: str = "enter", objective: str = "reward") -> None:
    for key, value, modes in (("terminal", terminal, TERMINAL_MODES), ("pay", pay, PAY_MODES),
                              ("objective", objective, OBJECTIVES)):
        if value not in modes:
            raise ConfigError(f"env.{key}", f"unknown mode '{value}'; use {' or '.join(modes)}")


def build_model(layout: Layout, step_reward: float, slip: float, *, pay: str = "enter",
                terminal: str = "end", objective: str = "reward") -> TabularModel:
    """The model of a parsed layout; with objective: cost, R holds -cost (see the top)."""
    check_modes(terminal, pay, objective)
    sign = -1.0 if objective == "cost" else 1.0
    # occupy + absorbing: terminal cells keep the agent and keep paying, so they are not terminal.
    keeps_paying = pay == "occupy" and terminal == "absorbing"
    ends = np.zeros_like(layout.terminal) if keeps_paying else layout.terminal
    if pay == "occupy" and ends.any() and (layout.reward[ends] != 0).any():
        s = int(np.flatnonzero(ends & (layout.reward != 0))[0])
        char = layout.chars[layout.cells[s]]
        raise ConfigError(
            "env.terminal",
            f"with env.pay=occupy a cell pays for each step spent in it, and with "
            f"env.terminal=end no step is spent in a terminal, so '{char}' would never pay its "
            f"{layout.reward[s]:g}; set env.terminal=absorbing (the agent stays there, paying "
            "every step) or env.pay=enter")
    n_states, n_actions = len(layout.cells), len(MOVES)
    rows, cols = layout.chars.shape
    P = np.zeros((n_states, n_actions, n_states))
    for s, (r, c) in enumerate(layout.cells):
        if layout.terminal[s]:
            P[s, :, s] = 1.0  # absorbing
            continue
        for a in range(n_actions):
            # Intended move with probability slip, each perpendicular one with (1 - slip) / 2.
            for direction, prob in ((a, slip), ((a + 1) % 4, (1 - slip) / 2), ((a + 3) % 4, (1 - slip) / 2)):
                dr, dc = MOVES[direction]
                nr, nc = r + dr, c + dc
                inside = 0 <= nr < rows and 0 <= nc < cols and layout.states[nr, nc] >= 0
                P[s, a, layout.states[nr, nc] if inside else s] += prob
    cell = sign * layout.reward
    if pay == "occupy":  # the cell the step starts from pays, whatever the action
        R = np.repeat((sign * step_reward + cell)[:, None], n_actions, axis=1)
    else:  # the cell the step lands in pays
        R = sign * step_reward + P @ cell
    R[ends] = 0.0
    initial = np.zeros(n_states)
    initial[list(layout.starts)] = 1.0 / len(layout.starts)
    grid = Grid(layout.chars, layout.states, MOVES)
    return TabularModel(P, R, ends.copy(), initial, ACTION_NAMES, grid, cost=objective == "cost",
                        cell_values=cell)


class GridWorld(gym.Env):
    """A gridworld with a known model; observations are the state index (row-major over open cells)."""

    # rgb_array: a frame for videos, CELL_PIXELS per cell (a multiple of 16, as video encoders like);
    # four moves a second, slow enough to follow.
    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(self, layout, terminals=None, rewards=None, step_reward: float = 0.0, slip: float = 1.0,
                 terminal: str = "end", render_mode: str | None = None, pay: str = "enter",
                 objective: str = "reward"):
        check_modes(terminal, pay, objective)
        if isinstance(step_reward, bool) or not isinstance(step_reward, (int, float)):
            raise ConfigError("env.step_reward", f"must be a number, got {step_reward!r}")
        self.layout = parse_layout(layout, terminals, rewards)
        self.model = build_model(self.layout, float(step_reward), check_slip(slip), pay=pay,
                                 terminal=terminal, objective=objective)
        self.step_reward = float(step_reward)
        self.absorbing = terminal == "absorbing"
        self.pay_on_entry = pay == "enter"
        # What a step pays as a reward (-cost in a cost world): the step's part, each cell's part.
        self._step_pay = self.model.sign * self.step_reward
        self._cell_pay = self.model.cell_values
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Discrete(self.model.n_states)
        self.action_space = gym.spaces.Discrete(self.model.n_actions)
        # Sparse successors of each (s, a) for sampling: at most three cells have probability > 0.
        self._successors = [[self._successors_of(s, a) for a in range(self.model.n_actions)]
                            for s in range(self.model.n_states)]
        self.state = self.layout.starts[0]

    def _successors_of(self, s: int, a: int) -> tuple[np.ndarray, np.ndarray]:
        states = np.flatnonzero(self.model.P[s, a])
        return states, np.cumsum(self.model.P[s, a, states])

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.state = int(self.np_random.choice(self.layout.starts))
        return self.state, {}

    def step(self, action):
        s = self.state
        if self.model.terminal[s]:  # only in absorbing mode (pay: enter): stay, collect nothing
            return s, 0.0, False, False, {}
        states, cumulative = self._successors[s][int(action)]
        u = self.np_random.random() * cumulative[-1]
        s_next = int(states[np.searchsorted(cumulative, u, side="right")])
        self.state = s_next
        # pay: enter -> the cell landed in pays; occupy -> the cell the step started from (an
        # absorbing cell then pays again on every step the agent stays in it).
        reward = self._step_pay + float(self._cell_pay[s_next if self.pay_on_entry else s])
        terminated = bool(self.model.terminal[s_next]) and not self.absorbing
        return s_next, reward, terminated, False, {}

    def render(self):
        if self.render_mode == "rgb_array":
            return self._frame()
        chars = self.layout.chars.copy()
        chars[self.layout.cells[self.state]] = "@"
        return "\n".join("".join(row) for row in chars)

    def _frame(self) -> np.ndarray:
        """The grid as an RGB image: walls dark, cells that pay tinted green (a reward) or red (a
        cost or a penalty) by size, terminals full strength, the agent a blue disc."""
        chars = self.layout.chars
        colors = np.full((*chars.shape, 3), EMPTY_RGB, dtype=np.float64)
        colors[chars == WALL] = WALL_RGB
        pay = np.asarray(self._cell_pay, dtype=np.float64)
        largest = np.abs(pay).max(initial=0.0)
        for s, (r, c) in enumerate(self.layout.cells):
            if pay[s] != 0:
                strength = 1.0 if self.layout.terminal[s] else 0.25 + 0.5 * abs(pay[s]) / largest
                colors[r, c] += strength * (np.asarray(GOOD_RGB if pay[s] > 0 else BAD_RGB) - colors[r, c])
        frame = colors.round().astype(np.uint8).repeat(CELL_PIXELS, axis=0).repeat(CELL_PIXELS, axis=1)
        frame[::CELL_PIXELS] = frame[:, ::CELL_PIXELS] = LINE_RGB
        r, c = self.layout.cells[self.state]
        y, x = np.ogrid[:CELL_PIXELS, :CELL_PIXELS]
        disc = (y - CELL_PIXELS / 2 + 0.5) ** 2 + (x - CELL_PIXELS / 2 + 0.5) ** 2 <= (0.3 * CELL_PIXELS) ** 2
        frame[r * CELL_PIXELS:(r + 1) * CELL_PIXELS, c * CELL_PIXELS:(c + 1) * CELL_PIXELS][disc] = AGENT_RGB
        return frame


def gridworld_kwargs(env_cfg) -> dict:
    """The GridWorld constructor's arguments from an `env` config (kind: gridworld)."""
    from omegaconf import OmegaConf

    def plain(key, default=None):
        value = env_cfg.get(key, default)
        return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value

    return dict(layout=plain("layout"), terminals=plain("terminals"), rewards=plain("rewards"),
                step_reward=plain("step_reward", 0.0), slip=plain("slip", 1.0),
                terminal=plain("terminal", "end"), pay=plain("pay", "enter"),
                objective=plain("objective", "reward"))


def gridworld_thunk(env_cfg, render_mode=None):
    from deeprl.envs.model import OneHotObservation

    kwargs = gridworld_kwargs(env_cfg)
    GridWorld(**kwargs)  # a bad layout fails here, as a ConfigError, not inside the vector env
    limit = env_cfg.get("max_episode_steps")

    def thunk():
        env = GridWorld(**kwargs, render_mode=render_mode)
        if limit:
            env = gym.wrappers.TimeLimit(env, int(limit))
        return OneHotObservation(env) if env_cfg.get("one_hot") else env

    return thunk
