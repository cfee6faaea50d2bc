"""The tabular learning loop (Q-learning, SARSA): act, step, update the table from each transition.

No replay: every transition updates Q once, as it happens. SARSA's target needs the action the
policy takes in s', so the next action is chosen before the update.
"""

import numpy as np

from deeprl.algos.tabular import Transition
from deeprl.envs.episodes import EpisodeTracker
from deeprl.envs.model import describe
from deeprl.loops import report
from deeprl.loops.off_policy import final_observations
from deeprl.loops.session import Session

LOOP_KEYS = ("figure_every",)


def run(agent, envs, session: Session, *, spec, device, seed: int, rng: np.random.Generator,
        total_steps: int, figure_every: int) -> dict:
    num_envs = envs.num_envs
    model = describe(envs.envs[0])  # for the report only: learners never read the model
    tracker = EpisodeTracker(num_envs)
    obs, _ = envs.reset(seed=seed)
    actions = agent.act(obs, 0)
    step = 0
    while step < total_steps:
        next_obs, rewards, terminated, truncated, infos = envs.step(actions)
        dones = terminated | truncated
        real_next = final_observations(next_obs, dones, infos)
        prev, step = step, step + num_envs
        next_actions = agent.act(next_obs, step)
        # Where an episode just ended, next_obs already starts the next one: SARSA's bootstrap
        # action must be drawn in the true s' instead (it matters only after a truncation).
        target_actions = np.where(dones, agent.act(real_next, step), next_actions) if dones.any() else next_actions
        metrics = agent.update(Transition(obs, actions, rewards, real_next, terminated, target_actions), step)
        session.metrics(step, metrics)
        session.episodes(step, tracker.step(rewards, dones))
        if figure_every and step // figure_every > prev // figure_every and step < total_steps:
            report.log_figure(session, model, *agent.values(), step, f"{agent.rule}, step {step}")
        session.tick(step, agent, agent.charts)
        obs, actions = next_obs, next_actions
    report.finish(agent, model, session, step, f"{agent.rule}: {step} steps")
    return {}
