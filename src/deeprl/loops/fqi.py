"""The fitted Q-iteration loop: collect one dataset with the behaviour policy, then iterate.

`total_steps` is the dataset size (env steps); `iterations` regressions follow, stopping early
once no Q-value moves by `tol`. TensorBoard: charts/episodic_return over collection steps,
planning/max_delta and losses/fit_loss over iterations. The loop's state holds the dataset so
far and the iteration count, so a run resumes in either phase.
"""

import numpy as np

from deeprl.algos.tabular import Transition
from deeprl.envs.model import describe
from deeprl.loops import report
from deeprl.loops.base import EnvLoop
from deeprl.loops.off_policy import final_observations


class FQILoop(EnvLoop):
    # Its video comes at the end, `video.every` steps never coming round (Run._finish).
    VIDEO_AT_END = True
    KEYS = ("iterations", "tol", "figure_every")
    # Reads envs.envs[0] (its model, its states), so the envs must live in this process.
    READS_ENV = True

    def __init__(self, agent, envs, session, *, spec, device, seed: int, rng: np.random.Generator,
                 total_steps: int, iterations: int, tol: float, figure_every: int):
        super().__init__(agent, envs, session, seed=seed, total_steps=total_steps)
        self.iterations, self.tol, self.figure_every = iterations, tol, figure_every
        self.model = describe(envs.envs[0])
        agent.prepare(self.model)
        self.batches: list[Transition] = []
        self.iteration = 0
        self.converged = False

    def run(self) -> dict:
        agent, envs, session = self.agent, self.envs, self.session
        while self.step < self.total_steps and not session.stopping:
            obs = self.obs
            actions = agent.act(obs, self.step)
            next_obs, rewards, terminated, truncated, infos = envs.step(actions)
            dones = terminated | truncated
            # The last field is SARSA's next action; FQI's max target has no use for it.
            self.batches.append(Transition(obs, actions, rewards, final_observations(next_obs, dones, infos),
                                           terminated, actions))
            self.obs, self.step = next_obs, self.step + envs.num_envs
            session.episodes(self.step, self.tracker.step(rewards, dones))
            session.logger.progress(self.step)
            if self.step < self.total_steps:
                session.tick_sweep(self.step)
        if session.stopping:
            return {}
        data = Transition(*(np.concatenate(column) for column in zip(*self.batches, strict=True)))

        while not self.converged and self.iteration < self.iterations and not session.stopping:
            self.iteration = k = self.iteration + 1
            metrics = agent.update(data, k)
            session.check_finite(k, metrics, "")
            session.logger.scalars({"planning/max_delta": metrics["max_delta"],
                                    "losses/fit_loss": metrics["fit_loss"]}, k)
            self.converged = metrics["max_delta"] < self.tol
            if self.figure_every and k % self.figure_every == 0 and not self.converged:
                report.log_figure(session, self.model, *agent.values(), k, f"fitted Q-iteration, iteration {k}")
        if session.stopping:
            return {}
        status = "converged" if self.converged else "stopped (not converged; raise algo.iterations)"
        report.finish(agent, self.model, session, self.iteration, f"fitted_q_iteration: {len(data.obs)} transitions, "
                                                                  f"{status} after {self.iteration} iterations")
        rewarded = int(np.count_nonzero(data.rewards))
        if not rewarded:  # then every target is 0: "converged" after one iteration says nothing
            session.logger.write("deeprl | warning: no transition in the data has a reward, so Q is 0 and the greedy "
                                 "policy arbitrary; collect more (total_steps) or use algo.behaviour=expert")
        return {"iterations": self.iteration, "converged": self.converged, "dataset_size": len(data.obs),
                "rewarded_transitions": rewarded}

    def state_dict(self) -> dict:
        return {**super().state_dict(), "batches": list(self.batches), "iteration": self.iteration,
                "converged": self.converged}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.batches, self.iteration = list(state["batches"]), int(state["iteration"])
        self.converged = bool(state["converged"])
