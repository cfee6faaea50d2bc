"""The planning loop: sweeps of a planner over the env's known model until it converges.

Planners never step the env to learn (evaluation does, by rollouts of the greedy policy); their
budget is `algo.max_sweeps`, and `total_steps` is ignored. TensorBoard's x axis here is the sweep.
"""

import numpy as np

from deeprl.envs.model import tabular_model
from deeprl.loops import report
from deeprl.loops.session import Session

LOOP_KEYS = ("max_sweeps", "figure_every")


def run(agent, envs, session: Session, *, spec, device, seed: int, rng: np.random.Generator,
        total_steps: int, max_sweeps: int, figure_every: int) -> dict:
    model = tabular_model(envs.envs[0])
    agent.prepare(model)
    session.logger.progress_total(max_sweeps, "sweep")
    converged, sweep, metrics = False, 0, {}
    while not converged and sweep < max_sweeps:
        sweep += 1
        metrics, converged = agent.sweep()
        session.logger.scalars(metrics, sweep, "planning/")
        session.logger.progress(sweep)
        if figure_every and sweep % figure_every == 0 and not converged:
            report.log_figure(session, model, *agent.values(), sweep, f"{agent.name}, sweep {sweep}")
    delta = metrics.get("max_delta", float("nan"))
    status = "converged" if converged else "stopped (not converged; raise algo.max_sweeps)"
    report.finish(agent, model, session, sweep,
                  f"{agent.name}: {status} after {sweep} sweeps, last max |dV| = {delta:.3g}")
    # Planners take no environment steps (evaluation rollouts aside): they sweep the model.
    return {"sweeps": sweep, "converged": converged, "start_value": float(model.initial @ agent.V),
            "total_steps": 0, "sps": 0.0}
