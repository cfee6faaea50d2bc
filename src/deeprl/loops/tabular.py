"""The tabular learning loop (Q-learning, SARSA): act, step, update the table from each transition.

No replay: every transition updates Q once, as it happens. SARSA's target needs the action the
policy takes in s', so the next action is chosen before the update (and kept in the loop's state).
"""

import math

import numpy as np

from deeprl.algos.tabular import Transition
from deeprl.envs.model import describe
from deeprl.loops import report
from deeprl.loops.base import EnvLoop
from deeprl.loops.off_policy import final_observations


class TabularLoop(EnvLoop):
    KEYS = ("figure_every",)
    # Reads envs.envs[0] (its model, its states), so the envs must live in this process.
    READS_ENV = True

    def __init__(self, agent, envs, session, *, spec, device, seed: int, rng: np.random.Generator,
                 total_steps: int, figure_every: int):
        super().__init__(agent, envs, session, seed=seed, total_steps=total_steps)
        self.figure_every = figure_every
        self.model = describe(envs.envs[0])  # for the report only: learners never read the model
        self.actions = None

    def start(self) -> None:
        super().start()
        self.actions = self.agent.act(self.obs, 0)

    def run(self) -> dict:
        if self.envs.num_envs == 1:
            self._run_one()
        else:
            self._run_batch()
        if not self.session.stopping:
            report.finish(self.agent, self.model, self.session, self.step, f"{self.agent.rule}: {self.step} steps")
        return {}

    def _run_one(self) -> None:
        """One env, the usual case: `_run_batch`'s steps on Python scalars rather than one-element
        arrays, the same draws and arithmetic, about twice as fast (a toy-text env's step is a few
        microseconds, and every numpy call on a one-element array costs about one)."""
        agent, envs, session, tracker = self.agent, self.envs, self.session, self.tracker
        s, a = int(self.obs[0]), int(self.actions[0])
        while self.step < self.total_steps and not session.stopping:
            next_obs, rewards, terminated, truncated, infos = envs.step(self.actions)
            s_next, r, ended = int(next_obs[0]), float(rewards[0]), bool(terminated[0])
            done = ended or bool(truncated[0])
            prev = self.step
            self.step = step = prev + 1
            a_next = agent.act_one(s_next, step)
            # Where the episode just ended, s_next already starts the next one: the true s' is the
            # final observation, and SARSA's bootstrap action is drawn there.
            if done:
                true_next = int(infos["final_obs"][0])
                a_target = agent.act_one(true_next, step)
            else:
                true_next, a_target = s_next, a_next
            td_error, q = agent.update_one(s, a, r, true_next, ended, a_target, step)
            # What session.metrics does at every step, called only where it would log or stop.
            if session.logs_at(step) or not math.isfinite(abs(td_error) + q):
                session.metrics(step, {"td_error": abs(td_error), "q_values": q})
            finished = tracker.step_one(r, done)
            if finished:
                session.episodes(step, finished)
            self._figure(prev, step)
            self.obs, self.actions = next_obs, np.array([a_next])
            s, a = s_next, a_next
            session.tick(step, agent, agent.charts)

    def _run_batch(self) -> None:
        agent, envs, session = self.agent, self.envs, self.session
        while self.step < self.total_steps and not session.stopping:
            obs, actions = self.obs, self.actions
            next_obs, rewards, terminated, truncated, infos = envs.step(actions)
            dones = terminated | truncated
            real_next = final_observations(next_obs, dones, infos)
            prev = self.step
            self.step = step = prev + envs.num_envs
            next_actions = agent.act(next_obs, step)
            # Where an episode just ended, next_obs already starts the next one: SARSA's bootstrap
            # action must be drawn in the true s' instead (it matters only after a truncation).
            target_actions = np.where(dones, agent.act(real_next, step), next_actions) if dones.any() else next_actions
            metrics = agent.update(Transition(obs, actions, rewards, real_next, terminated, target_actions), step)
            session.metrics(step, metrics)
            session.episodes(step, self.tracker.step(rewards, dones))
            self._figure(prev, step)
            self.obs, self.actions = next_obs, next_actions
            session.tick(step, agent, agent.charts)

    def _figure(self, prev: int, step: int) -> None:
        """The value figure, every `figure_every` steps (the final one is the report's)."""
        fig = self.figure_every
        if fig and step // fig > prev // fig and step < self.total_steps:
            report.log_figure(self.session, self.model, *self.agent.values(), step, f"{self.agent.rule}, step {step}")

    def state_dict(self) -> dict:
        return {**super().state_dict(), "actions": np.array(self.actions, copy=True)}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        # After an env restart the next actions are drawn anew for the new first observations.
        self.actions = state["actions"].copy() if state["envs"] is not None else self.agent.act(self.obs, self.step)
