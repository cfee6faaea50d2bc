"""The planning loop: sweeps of a planner over the env's known model until it converges.

Planners never step the env to learn (evaluation does, by rollouts of the greedy policy); their
budget is `algo.max_sweeps`, and `total_steps` is ignored. TensorBoard's x axis here is the sweep,
and so is the loop's `step` (checkpoints every `checkpoint.every` sweeps, resume from a sweep).

The loop keeps V after every sweep (sweep 0 is the planner's V_0) and writes them at the end as
`values_by_sweep.csv` (report.write_values_by_sweep), so any sweep can be held against a textbook
table. Kept in memory (and in checkpoints): every sweep while (max_sweeps + 1) x states values
fit in KEEP_EVERY_SWEEP; past that, sweeps 0-99, then every 10th up to 999, every 100th up to 9999
and so on (see `recorded`), plus the last one, which is a few hundred rows of states at most.
"""

import numpy as np

from deeprl.core.console import plural
from deeprl.envs.model import tabular_model
from deeprl.loops import report

# Values (sweeps x states) kept for values_by_sweep.csv before the record thins out: 8 MB.
KEEP_EVERY_SWEEP = 1_000_000


def recorded(sweep: int, every_sweep: bool) -> bool:
    """Whether V after `sweep` is kept: all of them, or two significant digits' worth (0-99, then
    100, 110, ..., 990, 1000, 1100, ...), which still holds 1, 2, 3, 4, 10, 100, 1000."""
    return every_sweep or sweep < 100 or sweep % 10 ** (len(str(sweep)) - 2) == 0


class PlanningLoop:
    # Its video comes at the end, `video.every` steps never coming round (Run._finish).
    VIDEO_AT_END = True
    KEYS = ("max_sweeps", "figure_every")
    # Reads envs.envs[0] (its model, its states), so the envs must live in this process.
    READS_ENV = True
    SHARED_KEYS = ()

    def __init__(self, agent, envs, session, *, spec, device, seed: int, rng: np.random.Generator,
                 total_steps: int, max_sweeps: int, figure_every: int):
        self.agent, self.envs, self.session = agent, envs, session
        self.max_sweeps, self.figure_every = max_sweeps, figure_every
        self.model = tabular_model(envs.envs[0])
        agent.prepare(self.model)
        self.step = 0  # sweeps done
        self.converged = False
        self.metrics: dict = {}
        self.notes: list[str] = []
        self.every_sweep = (max_sweeps + 1) * self.model.n_states <= KEEP_EVERY_SWEEP
        self.history: list[tuple[int, np.ndarray]] = [(0, agent.V.copy())]  # (sweep, V), V_0 first

    @property
    def end_step(self) -> int:
        """Where the final evaluation and checkpoint stand: the last sweep, the x axis of a
        planner's curves (total_steps, which planners ignore, would put them far to its right)."""
        return self.step

    def start(self) -> None:
        pass

    def run(self) -> dict:
        agent, session, model = self.agent, self.session, self.model
        session.logger.progress_total(self.max_sweeps, "sweep")
        session.logger.progress(self.step)
        while not self.converged and self.step < self.max_sweeps and not session.stopping:
            self.step += 1
            sweep = self.step
            self.metrics, self.converged = agent.sweep()
            if recorded(sweep, self.every_sweep):
                self.history.append((sweep, agent.V.copy()))
            session.logger.scalars(self.metrics, sweep, "planning/")
            session.logger.progress(sweep)
            if self.figure_every and sweep % self.figure_every == 0 and not self.converged:
                report.log_figure(session, model, *agent.values(), sweep, f"{agent.name}, sweep {sweep}")
            if not self.converged and self.step < self.max_sweeps:
                session.tick_sweep(sweep)
        if session.stopping:
            return {}
        if not self.history or self.history[-1][0] != self.step:
            self.history.append((self.step, agent.V.copy()))
        delta = self.metrics.get("max_delta", float("nan"))
        status = "converged" if self.converged else "stopped (not converged; raise algo.max_sweeps)"
        report.write_values_by_sweep(session.run_dir, model, self.history)
        report.finish(agent, model, session, self.step,
                      f"{agent.name}: {status} after {plural(self.step, 'sweep')}, last max |dV| = {delta:.3g}")
        # Planners take no environment steps (evaluation rollouts aside): they sweep the model.
        # start_value is in the returns' convention (reward = -cost): it compares with eval returns.
        start_value = float(model.initial @ agent.V)
        summary = {"sweeps": self.step, "converged": self.converged, "start_value": start_value,
                   "total_steps": 0, "sps": 0.0}
        if model.cost:
            summary["start_cost"] = -start_value
        return summary

    def state_dict(self) -> dict:
        sweeps = np.array([sweep for sweep, _ in self.history], dtype=np.int64)
        values = (np.stack([V for _, V in self.history]) if self.history
                  else np.zeros((0, self.model.n_states)))
        return {"step": self.step, "converged": self.converged, "metrics": dict(self.metrics),
                "history_sweeps": sweeps, "history_values": values}

    def load_state_dict(self, state: dict) -> None:
        self.step, self.converged = int(state["step"]), bool(state["converged"])
        self.metrics = dict(state["metrics"])
        # A checkpoint from before values_by_sweep.csv has no record: it starts at the resume.
        sweeps, values = state.get("history_sweeps", ()), state.get("history_values", ())
        self.history = [(int(sweep), np.array(V, dtype=float))
                        for sweep, V in zip(sweeps, values, strict=True)]
