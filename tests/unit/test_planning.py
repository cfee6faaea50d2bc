"""Value iteration and policy iteration against each other, exact linear solves, and known values."""

import gymnasium as gym
import numpy as np
import pytest

from deeprl.algos.planning import (
    PolicyIteration,
    ValueIteration,
    evaluate_exact,
    greedy,
    lookahead,
    proper_policy,
    reaches_terminal,
)
from deeprl.core.errors import ConfigError
from deeprl.envs import EnvSpec
from deeprl.envs.gridworld import GridWorld
from deeprl.envs.model import tabular_model

EXITS = {"+": 1.0, "-": -1.0}
MAZE = ["S.#......", "..#.###..", "..#...#.#", ".####.#..", "......#.G", ".####.##.", "........."]


def four_by_three(**kwargs):
    args = dict(layout=["...+", ".#.-", "S..."], terminals=EXITS, step_reward=-0.04, slip=0.8)
    return GridWorld(**{**args, **kwargs}).model


def spec_for(model):
    return EnvSpec("test", (), np.dtype(np.int64), gym.spaces.Discrete(model.n_actions), model.n_states)


def plan(algo, model, gamma, **kwargs):
    kwargs.setdefault("tol", 1e-11)
    if algo is PolicyIteration:
        kwargs.setdefault("evaluation", "exact")
        kwargs.setdefault("eval_sweeps", 100_000)
    agent = algo(spec_for(model), None, None, None, 0, gamma=gamma, **kwargs)
    agent.prepare(model)
    for sweeps in range(1, 100_001):
        _, converged = agent.sweep()
        if converged:
            agent.sweeps = sweeps
            return agent
    raise AssertionError("did not converge")


WORLDS = {
    "4x3 gamma=1": (four_by_three(), 1.0),
    "4x3 gamma=0.9": (four_by_three(), 0.9),
    "4x3 harsh": (four_by_three(step_reward=-2.0), 1.0),
    "4x3 no slip": (four_by_three(slip=1.0), 0.95),
    "maze gamma=1": (GridWorld(MAZE, {"G": 0.0}, step_reward=-1.0, slip=1.0).model, 1.0),
    "slippery maze": (GridWorld(MAZE, {"G": 0.0}, step_reward=-1.0, slip=0.6).model, 0.99),
    "frozenlake gamma=1": (tabular_model(gym.make("FrozenLake-v1")), 1.0),
    "cliffwalking": (tabular_model(gym.make("CliffWalking-v1")), 0.9),
    "taxi": (tabular_model(gym.make("Taxi-v4")), 1.0),
}


def policy_values(model, policy, gamma):
    return evaluate_exact(model, policy, gamma)


@pytest.mark.parametrize("name", WORLDS)
def test_value_and_policy_iteration_agree_with_each_other_and_a_linear_solve(name):
    model, gamma = WORLDS[name]
    vi = plan(ValueIteration, model, gamma)
    pi_exact = plan(PolicyIteration, model, gamma)
    pi_iterative = plan(PolicyIteration, model, gamma, evaluation="iterative", eval_sweeps=20)
    scale = max(1.0, np.abs(vi.V).max())
    for pi in (pi_exact, pi_iterative):
        np.testing.assert_allclose(pi.V, vi.V, atol=1e-7 * scale)
    # Each policy found is optimal: its exact value (I - gamma P_pi)^-1 R_pi is V*, whatever ties
    # the two planners broke differently.
    for agent in (vi, pi_exact, pi_iterative):
        np.testing.assert_allclose(policy_values(model, agent.policy, gamma), vi.V, atol=1e-7 * scale)
    # V* satisfies the Bellman optimality equation, and Q* is its one-step lookahead.
    np.testing.assert_allclose(lookahead(model, vi.V, gamma).max(axis=1), vi.V, atol=1e-8 * scale)
    np.testing.assert_allclose(vi.Q, lookahead(model, vi.V, gamma), atol=1e-12)
    np.testing.assert_array_equal(vi.V[model.terminal], 0.0)


def test_four_by_three_matches_the_textbook():
    """AIMA (3rd ed.) fig. 17.3: utilities of the 4x3 world at gamma = 1, R = -0.04."""
    agent = plan(ValueIteration, four_by_three(), 1.0)
    expected = [[0.812, 0.868, 0.918, None], [0.762, None, 0.660, None], [0.705, 0.655, 0.611, 0.388]]
    grid = four_by_three().grid
    for (r, c), value in np.ndenumerate(np.array(expected, dtype=object)):
        if value is not None:
            assert agent.V[grid.states[r, c]] == pytest.approx(value, abs=5e-4)
    # The optimal policy of fig. 17.2: the long way round from (2, 3), north from the start.
    N, E, S, W = range(4)
    policy = {(0, 0): E, (0, 1): E, (0, 2): E, (1, 0): N, (1, 2): N, (2, 0): N, (2, 1): W, (2, 2): W, (2, 3): W}
    for (r, c), action in policy.items():
        assert agent.policy[grid.states[r, c]] == action, (r, c)


def independent_value_iteration(P: dict, n_states: int, n_actions: int, gamma: float) -> list[float]:
    """Value iteration straight from gymnasium's P[s][a] = [(prob, s', r, terminated), ...] lists."""
    V = [0.0] * n_states
    while True:
        new = [max(sum(p * (r + (0.0 if done else gamma * V[s2])) for p, s2, r, done in P[s][a])
                   for a in range(n_actions)) for s in range(n_states)]
        if max(abs(a - b) for a, b in zip(new, V, strict=True)) < 1e-12:
            return new
        V = new


@pytest.mark.parametrize("gamma", [0.9, 1.0])
def test_frozenlake_values_match_an_independent_computation(gamma):
    env = gym.make("FrozenLake-v1", map_name="4x4", is_slippery=True)
    expected = independent_value_iteration(env.unwrapped.P, 16, 4, gamma)
    agent = plan(ValueIteration, tabular_model(env), gamma)
    np.testing.assert_allclose(agent.V, expected, atol=1e-8)
    if gamma == 0.9:  # the values usually quoted for the 4x4 lake
        np.testing.assert_allclose(agent.V[[0, 4, 8, 9, 10, 13, 14]],
                                   [0.0689, 0.0919, 0.1454, 0.2475, 0.2996, 0.3799, 0.6390], atol=1e-4)
    else:  # undiscounted: the best chance of reaching the goal from the start is 14/17
        assert agent.V[0] == pytest.approx(14 / 17, abs=1e-8)


def test_cliffwalking_optimal_path_takes_13_steps():
    agent = plan(PolicyIteration, tabular_model(gym.make("CliffWalking-v1")), 1.0)
    assert agent.V[36] == pytest.approx(-13.0)


def test_policy_iteration_stops_in_few_improvements():
    assert plan(PolicyIteration, four_by_three(), 1.0).sweeps <= 10


def test_greedy_keeps_the_current_action_on_ties():
    Q = np.array([[1.0, 1.0, 0.0], [0.0, 2.0, 2.0 + 1e-12], [3.0, 0.0, 0.0]])
    np.testing.assert_array_equal(greedy(Q), [0, 2, 0])
    np.testing.assert_array_equal(greedy(Q, current=np.array([1, 1, 2])), [1, 1, 0])


def test_proper_policy_reaches_a_terminal_from_every_state():
    for name in ("4x3 gamma=1", "maze gamma=1", "frozenlake gamma=1", "taxi"):
        model, _ = WORLDS[name]
        assert reaches_terminal(model, proper_policy(model)).all(), name


def test_policy_iteration_with_gamma_one_needs_reachable_terminals():
    closed = GridWorld(["S.#..", "..#.+"], terminals={"+": 1.0}, step_reward=-0.1, slip=1.0).model
    with pytest.raises(ConfigError, match="algo.gamma: with gamma=1 .* set algo.gamma below 1"):
        plan(PolicyIteration, closed, 1.0)
    assert plan(PolicyIteration, closed, 0.9).V[0] == pytest.approx(-1.0, abs=1e-6)  # -0.1 / (1 - 0.9)


def test_value_iteration_reports_the_largest_change_per_sweep():
    model = four_by_three()
    agent = ValueIteration(spec_for(model), None, None, None, 0, gamma=1.0, tol=1e-3)
    agent.prepare(model)
    deltas = []
    converged = False
    while not converged:
        metrics, converged = agent.sweep()
        deltas.append(metrics["max_delta"])
    assert deltas[-1] < 1e-3 <= deltas[-2]
    # From V = 0 the first sweep gives max_a R(s, a): largest next to the +1 exit, 0.8 * 1 - 0.04.
    assert deltas[0] == pytest.approx(0.76)


def test_planner_acts_greedily_on_state_indices_and_round_trips_its_state():
    model = four_by_three()
    agent = plan(ValueIteration, model, 1.0)
    np.testing.assert_array_equal(agent.act(np.arange(model.n_states), 0, eval_mode=True), agent.policy)
    other = ValueIteration(spec_for(model), None, None, None, 0, gamma=1.0, tol=1e-8)
    other.load_state_dict(agent.state_dict())
    np.testing.assert_array_equal(other.policy, agent.policy)
    np.testing.assert_array_equal(other.V, agent.V)
