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


# The course's value-iteration example, written out here from its description, independently of
# deeprl's gridworld: a 4 x 3 grid (row 0 on top) with a wall at (1, 1); the cost of being in a
# cell, paid each step: 0 on plain cells, -1 on G at (0, 3), +1 on R at (1, 3); G and R absorbing;
# deterministic N, E, S, W moves that stay put at the wall or the edge; gamma = 0.9;
# V_0(s) = C(s) and V_k+1(s) = min_a [C(s) + gamma V_k(s')].
COURSE_COSTS = np.array([[0.0, 0.0, 0.0, -1.0], [0.0, np.nan, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
COURSE_ABSORBING = {(0, 3), (1, 3)}
COURSE_SWEEPS = (1, 2, 3, 4, 10, 100, 1000)


def course_value_iteration(sweeps, gamma=0.9) -> dict[int, np.ndarray]:
    """{k: V_k as a (3, 4) array, nan at the wall} for k = 0 and each of `sweeps`."""
    rows, cols = COURSE_COSTS.shape
    wall = np.isnan(COURSE_COSTS)

    def successors(r, c):
        if (r, c) in COURSE_ABSORBING:
            return [(r, c)]
        out = []
        for dr, dc in ((-1, 0), (0, 1), (1, 0), (0, -1)):
            nr, nc = r + dr, c + dc
            inside = 0 <= nr < rows and 0 <= nc < cols and not wall[nr, nc]
            out.append((nr, nc) if inside else (r, c))
        return out

    V = COURSE_COSTS.copy()
    values = {0: V.copy()}
    for k in range(1, max(sweeps) + 1):
        new = np.full_like(V, np.nan)
        for r in range(rows):
            for c in range(cols):
                if not wall[r, c]:
                    new[r, c] = COURSE_COSTS[r, c] + gamma * min(V[s] for s in successors(r, c))
        V = new
        if k in sweeps:
            values[k] = V.copy()
    return values


def cost_maze():
    """The shipped env=cost_maze with the settings its value-iteration preset picks."""
    from conftest import compose_config
    from deeprl.envs.gridworld import gridworld_kwargs

    cfg = compose_config("algo=value_iteration", "env=cost_maze")
    return GridWorld(**gridworld_kwargs(cfg.env)).model, cfg.algo


def on_grid(model, V):
    """V (as the agent holds it) as a (rows, cols) array in the world's convention, nan at walls."""
    states = model.grid.states
    return np.where(states >= 0, model.sign * V[states], np.nan)


def test_cost_maze_value_iteration_matches_the_course_sweep_by_sweep():
    model, algo = cost_maze()
    assert algo.gamma == 0.9 and algo.init_values == "cell"
    expected = course_value_iteration(COURSE_SWEEPS)
    agent = ValueIteration(spec_for(model), None, None, None, 0, gamma=algo.gamma, tol=algo.tol,
                           init_values=algo.init_values)
    agent.prepare(model)
    np.testing.assert_allclose(on_grid(model, agent.V), expected[0], atol=1e-12)  # V_0 = C
    for k in range(1, max(COURSE_SWEEPS) + 1):
        agent.sweep()
        if k in COURSE_SWEEPS:
            np.testing.assert_allclose(on_grid(model, agent.V), expected[k], atol=1e-12,
                                       err_msg=f"sweep {k}")
    # Sweep 1 by hand, and the fixed point: G pays -1 forever, -1 / (1 - 0.9); R +1 forever.
    np.testing.assert_allclose(expected[1], [[0, 0, -0.9, -1.9], [0, np.nan, 0, 1.9], [0, 0, 0, 0]],
                               atol=1e-12)
    final = on_grid(model, agent.V)
    assert final[0, 3] == pytest.approx(-10.0) and final[1, 3] == pytest.approx(10.0)
    assert final[0, 2] == pytest.approx(-9.0) and final[2, 0] == pytest.approx(-10.0 * 0.9**5)


def course_optimal_actions(model, gamma=0.9) -> np.ndarray:
    """(S, A) bool: the actions minimising the course's cost Q*(s, a) = C(s) + gamma V*(s'), from
    the independent iteration above (V_1000 is V* to double precision); ties included."""
    V = course_value_iteration((1000,), gamma)[1000]
    optimal = np.zeros((model.n_states, model.n_actions), dtype=bool)
    moves = ((-1, 0), (0, 1), (1, 0), (0, -1))  # N, E, S, W
    for (r, c), s in np.ndenumerate(model.grid.states):
        if s < 0:
            continue
        q = []
        for dr, dc in moves:
            nr, nc = (r, c) if (r, c) in COURSE_ABSORBING else (r + dr, c + dc)
            if not (0 <= nr < 3 and 0 <= nc < 4) or np.isnan(COURSE_COSTS[nr, nc]):
                nr, nc = r, c
            q.append(COURSE_COSTS[r, c] + gamma * V[nr, nc])
        optimal[s] = np.array(q) <= min(q) + 1e-9
    return optimal


@pytest.mark.parametrize("evaluation", ["exact", "iterative"])
def test_policy_iteration_finds_the_policy_that_minimises_the_cost_maze_cost(evaluation):
    model, _ = cost_maze()
    optimal = course_optimal_actions(model)
    agent = plan(PolicyIteration, model, 0.9, evaluation=evaluation, eval_sweeps=50)
    wrong = [int(s) for s in range(model.n_states) if not optimal[s, agent.policy[s]]]
    assert not wrong, f"states {wrong} take an action that does not minimise the cost"
    V_star = course_value_iteration((1000,))[1000]
    np.testing.assert_allclose(on_grid(model, agent.V), V_star, atol=1e-6)
    # Value iteration's greedy policy minimises it too, from V_0 = C as from V_0 = 0.
    for init in ("cell", "zero"):
        vi = plan(ValueIteration, model, 0.9, init_values=init)
        assert all(optimal[s, vi.policy[s]] for s in range(model.n_states)), init


def test_initial_values_are_zero_or_each_cells_own_number():
    model = four_by_three()
    for how, expected in (("zero", 0.0), ("cell", model.cell_values)):
        agent = ValueIteration(spec_for(model), None, None, None, 0, gamma=0.9, tol=1e-8,
                               init_values=how)
        agent.prepare(model)
        np.testing.assert_array_equal(agent.V, expected)
    assert sorted(model.cell_values[model.terminal]) == [-1.0, 1.0]  # the exits' rewards
    toy = tabular_model(gym.make("FrozenLake-v1"))
    agent = ValueIteration(spec_for(toy), None, None, None, 0, gamma=0.9, tol=1e-8,
                           init_values="cell")
    with pytest.raises(ConfigError, match="algo.init_values: cell needs a world with a number per"):
        agent.prepare(toy)


def test_the_sweep_record_thins_out_but_keeps_the_textbook_sweeps():
    from deeprl.loops.planning import recorded

    assert all(recorded(k, every_sweep=True) for k in range(5000))
    kept = [k for k in range(20_001) if recorded(k, every_sweep=False)]
    assert set(COURSE_SWEEPS) | {0, 99, 100, 110, 990, 1100, 9900, 10_000, 20_000} <= set(kept)
    assert 101 not in kept and 1010 not in kept and 10_100 not in kept
    # 0-99, then every 10th to 990, every 100th to 9900, every 1000th to 20000.
    assert len(kept) == 100 + 90 + 90 + 11
