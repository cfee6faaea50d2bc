"""What a tabular run leaves behind: `values.csv`, `policy.txt`, the value grid on the console, and
a heatmap of V with the greedy policy as arrows (TensorBoard image `planning/values`); planners
also `values_by_sweep.csv`.

Grid envs (gridworlds, FrozenLake, CliffWalking) are drawn as grids; envs without a grid (Taxi)
get per-state lines instead, and no heatmap.

Values are shown in the world's own convention: agents hold reward = -cost for a cost world
(`model.cost`), and every function here that is given the model turns V and Q back into costs
(cost-to-go, minimised) with `model.sign`. The greedy action is the same either way.
"""

import csv
import io
from pathlib import Path

import numpy as np

from deeprl.core.checkpoint import write_text_atomic
from deeprl.core.console import say
from deeprl.envs.model import TabularModel

FIGURE_TAG = "planning/values"


def _cell_text(model: TabularModel, r: int, c: int) -> str | None:
    """The layout character for walls and terminal cells; None for cells that show a number/arrow."""
    s = model.grid.states[r, c]
    if s < 0 or model.terminal[s]:
        return str(model.grid.chars[r, c])
    return None


def no_choice(model: TabularModel) -> np.ndarray:
    """(S,) bool: terminal states, and absorbing ones where every action stays (a cost maze's G and
    R): no action to show there."""
    states = np.arange(model.n_states)
    return model.terminal | (model.P[states, :, states] == 1.0).all(axis=1)


def shown(model: TabularModel | None, values: np.ndarray) -> np.ndarray:
    """Values as the agent holds them, in the world's convention (+ 0.0: no -0.000 for cost 0)."""
    return (model.sign if model is not None else 1.0) * values + 0.0


def value_grid(model: TabularModel, V: np.ndarray) -> str:
    """V (as the agent holds it) on the grid, in the world's convention."""
    V = shown(model, V)
    rows, cols = model.grid.states.shape
    lines = []
    for r in range(rows):
        cells = [_cell_text(model, r, c) or f"{V[model.grid.states[r, c]]:.3f}" for c in range(cols)]
        lines.append(" ".join(f"{cell:>8}" for cell in cells))
    return "\n".join(lines)


def policy_grid(model: TabularModel, policy: np.ndarray) -> str:
    rows, cols = model.grid.states.shape
    stays = no_choice(model)

    def cell(r: int, c: int) -> str:
        s = model.grid.states[r, c]
        if s < 0 or stays[s]:
            return str(model.grid.chars[r, c])
        return model.grid.arrow(int(policy[s]))

    return "\n".join(" ".join(cell(r, c) for c in range(cols)) for r in range(rows))


def write_values(path: Path, model: TabularModel | None, V: np.ndarray, policy: np.ndarray,
                 Q: np.ndarray | None = None) -> None:
    """One row per state: state, row, col, cell, value, greedy action, and Q per action if given
    (values and Q in the world's convention: costs for a cost world)."""
    V, Q = shown(model, V), (shown(model, Q) if Q is not None else None)
    n_actions = Q.shape[1] if Q is not None else int(policy.max(initial=0)) + 1
    names = model.action_names if model else tuple(str(a) for a in range(n_actions))
    where = {}
    stays = no_choice(model) if model is not None else None
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
            if stays is not None and stays[s]:
                name = ""  # nothing to choose once the episode is over, or where every action stays
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

    V = shown(model, V)  # the world's convention; low costs are green, as high rewards are

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
    image = ax.imshow(np.ma.masked_invalid(grid), cmap="RdYlGn_r" if model.cost else "RdYlGn")
    fig.colorbar(image, cax=fig.add_axes((0.84, 0.06, 0.03, 0.86)))
    small = 7 if cols > 8 else 9
    stays = no_choice(model)
    arrows = []  # (col, row, d_col, d_row) for one quiver call: far cheaper than an artist per cell
    for (r, c), s in np.ndenumerate(states):
        label = _cell_text(model, r, c)
        if label is not None:  # terminals, and labelled cells without a state (not plain walls)
            if label != "#":
                ax.text(c, r, label, ha="center", va="center", fontsize=12, weight="bold",
                        color="white" if s < 0 else "black")
            continue
        dr, dc = model.grid.moves[int(policy[s])]
        if (dr, dc) != (0, 0) and not stays[s]:
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


def write_values_by_sweep(run_dir, model: TabularModel,
                          history: list[tuple[int, np.ndarray]]) -> Path:
    """`values_by_sweep.csv`: V after each recorded sweep (sweep 0 = V_0), in the world's
    convention.

    Grid worlds: columns sweep,row,col,value, one row per cell with a state (walls left out), cells
    row-major. Worlds without a grid (Taxi): sweep,state,value. Written atomically."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if model.grid is not None:
        cells = [(r, c, int(s)) for (r, c), s in np.ndenumerate(model.grid.states) if s >= 0]
        writer.writerow(["sweep", "row", "col", "value"])
        for sweep, V in history:
            values = shown(model, V)
            writer.writerows([sweep, r, c, f"{values[s]:.10g}"] for r, c, s in cells)
    else:
        writer.writerow(["sweep", "state", "value"])
        for sweep, V in history:
            writer.writerows([sweep, s, f"{v:.10g}"] for s, v in enumerate(shown(model, V)))
    return write_text_atomic(Path(run_dir) / "values_by_sweep.csv", out.getvalue())


def finish(agent, model: TabularModel | None, session, step: int, headline: str) -> None:
    """At the end of a run: files in the run dir, the final figure, the value grid on the console."""
    V, policy = agent.values()
    run_dir = Path(session.run_dir)
    write_values(run_dir / "values.csv", model, V, policy, getattr(agent, "Q", None))
    write_policy(run_dir / "policy.txt", model, policy)
    log_figure(session, model, V, policy, step, headline)
    lines = [headline]
    cost = model is not None and model.cost
    if model is not None:
        what = "cost-to-go" if cost else "value"
        lines.append(f"{what} of the start state(s): {float(model.initial @ shown(model, V)):.4f}")
    if model is not None and model.grid is not None:
        lines += ["V (cost-to-go; the policy minimises it):" if cost else "V:",
                  value_grid(model, V), "greedy policy:", policy_grid(model, policy)]
    lines.append(f"values -> {run_dir / 'values.csv'}, policy -> {run_dir / 'policy.txt'}")
    if (run_dir / "values_by_sweep.csv").is_file():  # planners write it just before
        lines.append(f"values after each sweep -> {run_dir / 'values_by_sweep.csv'}")
    say("\n".join(lines), above_bar=True)
