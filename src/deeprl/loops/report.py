"""What a tabular run leaves behind: `values.csv`, `policy.txt`, the value grid on the console, and
a heatmap of V with the greedy policy as arrows (TensorBoard image `planning/values`).

Grid envs (gridworlds, FrozenLake, CliffWalking) are drawn as grids; envs without a grid (Taxi)
get per-state lines instead, and no heatmap.
"""

import csv
from pathlib import Path

import numpy as np
from tqdm import tqdm

from deeprl.envs.model import TabularModel

FIGURE_TAG = "planning/values"


def _cell_text(model: TabularModel, r: int, c: int) -> str | None:
    """The layout character for walls and terminal cells; None for cells that show a number/arrow."""
    s = model.grid.states[r, c]
    if s < 0 or model.terminal[s]:
        return str(model.grid.chars[r, c])
    return None


def value_grid(model: TabularModel, V: np.ndarray) -> str:
    rows, cols = model.grid.states.shape
    lines = []
    for r in range(rows):
        cells = [_cell_text(model, r, c) or f"{V[model.grid.states[r, c]]:.3f}" for c in range(cols)]
        lines.append(" ".join(f"{cell:>8}" for cell in cells))
    return "\n".join(lines)


def policy_grid(model: TabularModel, policy: np.ndarray) -> str:
    rows, cols = model.grid.states.shape
    return "\n".join(
        " ".join(_cell_text(model, r, c) or model.grid.arrow(int(policy[model.grid.states[r, c]]))
                 for c in range(cols))
        for r in range(rows)
    )


def write_values(path: Path, model: TabularModel | None, V: np.ndarray, policy: np.ndarray,
                 Q: np.ndarray | None = None) -> None:
    """One row per state: state, row, col, cell, value, greedy action, and Q per action if given."""
    n_actions = Q.shape[1] if Q is not None else int(policy.max(initial=0)) + 1
    names = model.action_names if model else tuple(str(a) for a in range(n_actions))
    where = {}
    if model is not None and model.grid is not None:
        for (r, c), s in np.ndenumerate(model.grid.states):
            if s >= 0:
                where[int(s)] = (r, c, str(model.grid.chars[r, c]))
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        q_names = [f"q_{name}" for name in names] if Q is not None else []
        out.writerow(["state", "row", "col", "cell", "value", "action", *q_names])
        for s in range(len(V)):
            r, c, cell = where.get(s, ("", "", ""))
            action = int(policy[s])
            name = names[action] if action < len(names) else str(action)
            if model is not None and model.terminal[s]:
                name = ""  # nothing to choose once the episode is over
            q = [f"{x:.6g}" for x in Q[s]] if Q is not None else []
            out.writerow([s, r, c, cell, f"{V[s]:.6g}", name, *q])


def write_policy(path: Path, model: TabularModel | None, policy: np.ndarray) -> None:
    if model is not None and model.grid is not None:
        text = policy_grid(model, policy)
    else:
        names = model.action_names if model else None
        text = "\n".join(f"{s} {names[a] if names else a}" for s, a in enumerate(policy))
    path.write_text(text + "\n", encoding="utf-8")


def value_figure(model: TabularModel, V: np.ndarray, policy: np.ndarray, title: str = ""):
    """A heatmap of V with the greedy action as an arrow in each cell (a matplotlib Figure), or
    None when the env has no grid. Drawn on a Figure with no pyplot state."""
    if model is None or model.grid is None:
        return None
    from matplotlib.figure import Figure

    states = model.grid.states
    rows, cols = states.shape
    grid = np.full(states.shape, np.nan)
    live = states >= 0
    grid[live] = V[states[live]]
    ends = np.zeros(states.shape, dtype=bool)
    ends[live] = model.terminal[states[live]]
    grid[ends] = np.nan  # terminals are labelled, not coloured: their value is 0 by definition
    fig = Figure(figsize=(1.2 + 0.8 * cols, 0.8 + 0.8 * rows), dpi=80)
    ax = fig.add_axes((0.08, 0.06, 0.72, 0.86))
    ax.set_facecolor("0.3")  # walls and other cells without a state
    ax.imshow(np.where(ends, 1.0, np.nan), cmap="Greys", vmin=0, vmax=5)  # terminals: light grey
    image = ax.imshow(np.ma.masked_invalid(grid), cmap="RdYlGn")
    fig.colorbar(image, cax=fig.add_axes((0.84, 0.06, 0.03, 0.86)))
    small = 7 if cols > 8 else 9
    arrows = []  # (col, row, d_col, d_row) for one quiver call: far cheaper than an artist per cell
    for (r, c), s in np.ndenumerate(states):
        label = _cell_text(model, r, c)
        if label is not None:  # terminals, and labelled cells without a state (not plain walls)
            if label != "#":
                ax.text(c, r, label, ha="center", va="center", fontsize=12, weight="bold",
                        color="white" if s < 0 else "black")
            continue
        dr, dc = model.grid.moves[int(policy[s])]
        if (dr, dc) != (0, 0):
            arrows.append((c, r - 0.1, dc, dr))
        ax.text(c, r + 0.3, f"{V[s]:.2f}", ha="center", va="center", fontsize=small)
    if arrows:
        x, y, u, v = np.array(arrows, dtype=float).T
        # Data-space vectors: with imshow's downward rows, d_row = -1 points up on screen.
        ax.quiver(x, y, u, v, angles="xy", scale_units="xy", scale=2.2, pivot="middle",
                  units="dots", width=2.5, headwidth=4, headlength=4, headaxislength=3.5)
    ax.set_xticks(range(cols))
    ax.set_yticks(range(rows))
    ax.set_title(title, fontsize=9)
    return fig


def log_figure(session, model: TabularModel | None, V: np.ndarray, policy: np.ndarray, step: int,
               title: str) -> None:
    fig = value_figure(model, V, policy, title)
    if fig is not None:
        session.logger.figure(FIGURE_TAG, fig, step)


def finish(agent, model: TabularModel | None, session, step: int, headline: str) -> None:
    """At the end of a run: files in the run dir, the final figure, the value grid on the console."""
    V, policy = agent.values()
    run_dir = Path(session.run_dir)
    write_values(run_dir / "values.csv", model, V, policy, getattr(agent, "Q", None))
    write_policy(run_dir / "policy.txt", model, policy)
    log_figure(session, model, V, policy, step, headline)
    lines = [headline]
    if model is not None:
        lines.append(f"value of the start state(s): {float(model.initial @ V):.4f}")
    if model is not None and model.grid is not None:
        lines += ["V:", value_grid(model, V),
                  "greedy policy:", policy_grid(model, policy)]
    lines.append(f"values -> {run_dir / 'values.csv'}, policy -> {run_dir / 'policy.txt'}")
    tqdm.write("\n".join(lines))  # above the progress bar, not through it
