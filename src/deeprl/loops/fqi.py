"""The fitted Q-iteration loop: collect one dataset with the behaviour policy, then iterate.

`total_steps` is the dataset size (env steps); `iterations` regressions follow, stopping early
once no Q-value moves by `tol`. TensorBoard: charts/episodic_return over collection steps,
planning/max_delta and losses/fit_loss over iterations.
"""

import numpy as np

from deeprl.algos.tabular import Transition
from deeprl.envs.episodes import EpisodeTracker
from deeprl.envs.model import describe
from deeprl.loops import report
from deeprl.loops.off_policy import final_observations
from deeprl.loops.session import Session

LOOP_KEYS = ("iterations", "tol", "figure_every")


def run(agent, envs, session: Session, *, spec, device, seed: int, rng: np.random.Generator,
        total_steps: int, iterations: int, tol: float, figure_every: int) -> dict:
    num_envs = envs.num_envs
    model = describe(envs.envs[0])
    agent.prepare(model)
    tracker = EpisodeTracker(num_envs)
    batches: list[Transition] = []
    obs, _ = envs.reset(seed=seed)
    step = 0
    while step < total_steps:
        actions = agent.act(obs, step)
        next_obs, rewards, terminated, truncated, infos = envs.step(actions)
        dones = terminated | truncated
        # The last field is SARSA's next action; FQI's max target has no use for it.
        batches.append(Transition(obs, actions, rewards, final_observations(next_obs, dones, infos),
                                  terminated, actions))
        obs, step = next_obs, step + num_envs
        session.episodes(step, tracker.step(rewards, dones))
        session.logger.progress(step)
    data = Transition(*(np.concatenate(column) for column in zip(*batches, strict=True)))

    converged, k = False, 0
    while not converged and k < iterations:
        k += 1
        metrics = agent.update(data, k)
        session.logger.scalars({"planning/max_delta": metrics["max_delta"],
                                "losses/fit_loss": metrics["fit_loss"]}, k)
        converged = metrics["max_delta"] < tol
        if figure_every and k % figure_every == 0 and not converged:
            report.log_figure(session, model, *agent.values(), k, f"fitted Q-iteration, iteration {k}")
    status = "converged" if converged else "stopped (not converged; raise algo.iterations)"
    report.finish(agent, model, session, k, f"fitted_q_iteration: {len(data.obs)} transitions, "
                                            f"{status} after {k} iterations")
    return {"iterations": k, "converged": converged, "dataset_size": len(data.obs)}
