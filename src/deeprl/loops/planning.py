"""The planning loop: sweeps of a planner over the env's known model until it converges.

Planners never step the env to learn (evaluation does, by rollouts of the greedy policy); their
budget is `algo.max_sweeps`, and `total_steps` is ignored. TensorBoard's x axis here is the sweep,
and so is the loop's `step` (checkpoints every `checkpoint.every` sweeps, resume from a sweep).
"""

import numpy as np

from deeprl.envs.model import tabular_model
from deeprl.loops import report


class PlanningLoop:
    KEYS = ("max_sweeps", "figure_every")
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
            session.logger.scalars(self.metrics, sweep, "planning/")
            session.logger.progress(sweep)
            if self.figure_every and sweep % self.figure_every == 0 and not self.converged:
                report.log_figure(session, model, *agent.values(), sweep, f"{agent.name}, sweep {sweep}")
            if not self.converged and self.step < self.max_sweeps:
                session.tick_sweep(sweep)
        if session.stopping:
            return {}
        delta = self.metrics.get("max_delta", float("nan"))
        status = "converged" if self.converged else "stopped (not converged; raise algo.max_sweeps)"
        report.finish(agent, model, session, self.step,
                      f"{agent.name}: {status} after {self.step} sweeps, last max |dV| = {delta:.3g}")
        # Planners take no environment steps (evaluation rollouts aside): they sweep the model.
        return {"sweeps": self.step, "converged": self.converged, "start_value": float(model.initial @ agent.V),
                "total_steps": 0, "sps": 0.0}

    def state_dict(self) -> dict:
        return {"step": self.step, "converged": self.converged, "metrics": dict(self.metrics)}

    def load_state_dict(self, state: dict) -> None:
        self.step, self.converged = int(state["step"]), bool(state["converged"])
        self.metrics = dict(state["metrics"])
