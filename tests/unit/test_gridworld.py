"""The gridworld env: layout parsing, the slip model, rewards, terminals, and the model it exposes."""

import gymnasium as gym
import numpy as np
import pytest

from deeprl.core.errors import ConfigError
from deeprl.envs.gridworld import GridWorld, parse_layout
from deeprl.envs.model import OneHotObservation, tabular_model

LAYOUT_4X3 = ["...+", ".#.-", "S..."]
EXITS = {"+": 1.0, "-": -1.0}
N, E, S, W = range(4)


def world(**kwargs):
    args = dict(layout=LAYOUT_4X3, terminals=EXITS, step_reward=-0.04, slip=0.8)
    args.update(kwargs)
    return GridWorld(**args)


def state(env, row, col):
    return int(env.layout.states[row, col])


@pytest.mark.parametrize("slip", [0.0, 0.3, 0.8, 1.0])
def test_every_transition_row_is_a_distribution(slip):
    P = world(slip=slip).model.P
    assert (P >= 0).all()
    np.testing.assert_allclose(P.sum(axis=2), 1.0, atol=1e-12)


def test_slip_sends_the_intended_move_with_p_and_each_perpendicular_with_half_the_rest():
    env = world(slip=0.8)
    P = env.model.P
    s = state(env, 2, 1)  # bottom row, between the start and (2, 2); the wall is above it
    # North: the wall above keeps it in place (0.8); east and west each 0.1.
    assert P[s, N, s] == pytest.approx(0.8)
    assert P[s, N, state(env, 2, 2)] == pytest.approx(0.1)
    assert P[s, N, state(env, 2, 0)] == pytest.approx(0.1)
    # East: intended 0.8; perpendicular north bumps the wall (stay) and south leaves the grid (stay).
    assert P[s, E, state(env, 2, 2)] == pytest.approx(0.8)
    assert P[s, E, s] == pytest.approx(0.2)
    # Never the opposite direction.
    assert P[s, E, state(env, 2, 0)] == 0.0


def test_deterministic_world_moves_as_told_and_walls_stay_put():
    env = world(slip=1.0)
    P = env.model.P
    start = state(env, 2, 0)
    assert P[start, N, state(env, 1, 0)] == 1.0
    assert P[start, W, start] == 1.0  # off the grid
    assert P[state(env, 0, 1), S, state(env, 0, 1)] == 1.0  # into the wall


def test_rewards_terminals_and_absorbing_model():
    env = world()
    model = env.model
    goal, pit, below_goal = state(env, 0, 3), state(env, 1, 3), state(env, 0, 2)
    assert model.terminal[[goal, pit]].all() and model.terminal.sum() == 2
    # R(s, a) = step reward + expected reward of the landing cell.
    assert model.R[below_goal, E] == pytest.approx(-0.04 + 0.8 * 1.0)
    assert model.R[state(env, 2, 0), N] == pytest.approx(-0.04)
    # Terminals absorb with nothing more to collect.
    for t in (goal, pit):
        np.testing.assert_array_equal(model.P[t, :, t], 1.0)
        np.testing.assert_array_equal(model.R[t], 0.0)
    np.testing.assert_array_equal(model.initial, np.eye(model.n_states)[state(env, 2, 0)])


def test_per_cell_reward_is_paid_on_landing():
    env = GridWorld(["S~G"], terminals={"G": 5.0}, rewards={"~": -2.0}, step_reward=-1.0, slip=1.0)
    env.reset(seed=0)
    assert env.step(E)[1:3] == (-3.0, False)
    assert env.step(E)[1:3] == (4.0, True)


def test_steps_sample_the_model():
    env = world(slip=0.6)
    env.reset(seed=0)
    s = state(env, 2, 1)
    counts = np.zeros(env.model.n_states)
    for _ in range(4000):
        env.state = s
        counts[env.step(N)[0]] += 1
    np.testing.assert_allclose(counts / counts.sum(), env.model.P[s, N], atol=0.03)


def test_episode_ends_on_a_terminal_or_absorbs():
    ending = world(slip=1.0)
    ending.reset(seed=0)
    ending.state = state(ending, 0, 2)
    obs, reward, terminated, truncated, _ = ending.step(E)
    assert (obs, terminated, truncated) == (state(ending, 0, 3), True, False)
    assert reward == pytest.approx(0.96)

    absorbing = world(slip=1.0, terminal="absorbing")
    absorbing.reset(seed=0)
    absorbing.state = state(absorbing, 0, 2)
    assert absorbing.step(E)[1:3] == (pytest.approx(0.96), False)
    for action in range(4):
        assert absorbing.step(action)[:3] == (state(absorbing, 0, 3), 0.0, False)
    np.testing.assert_array_equal(absorbing.model.P, ending.model.P)  # the same MDP


def test_several_starts_are_chosen_uniformly():
    env = GridWorld(["S.S", "..G"], terminals={"G": 1.0})
    starts = {env.reset(seed=seed)[0] for seed in range(50)}
    assert starts == {state(env, 0, 0), state(env, 0, 2)}
    assert env.model.initial[list(starts)] == pytest.approx([0.5, 0.5])


def test_layout_may_be_one_multiline_string():
    env = GridWorld("""
        S.+
        .#.
    """, terminals={"+": 1.0})
    assert env.layout.chars.shape == (2, 3) and env.model.n_states == 5


def test_one_hot_observation_and_model_through_wrappers():
    env = OneHotObservation(gym.wrappers.TimeLimit(world(), 10))
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == (11,) and obs.sum() == 1.0
    assert tabular_model(env) is env.unwrapped.model


@pytest.mark.parametrize(("layout", "terminals", "message"), [
    (["....", "...+"], EXITS, "no start cell"),
    (["S.x+"], EXITS, "unknown cell 'x' at row 0, column 2"),
    (["S..+", ".#."], EXITS, "same length: row 1 has 3 cells, row 0 has 4"),
    ([], EXITS, "is empty"),
    (["S.G"], {"GG": 1.0}, "single characters"),
    (["S.#"], {"#": 1.0}, "single characters"),
    (["S.G"], {"G": "high"}, "must be a number"),
])
def test_bad_layouts_are_config_errors_that_say_what_to_fix(layout, terminals, message):
    with pytest.raises(ConfigError, match="env.(layout|terminals)") as error:
        parse_layout(layout, terminals)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("slip", [-0.1, 1.5, "high", True])
def test_slip_outside_the_unit_interval_is_a_config_error(slip):
    with pytest.raises(ConfigError, match=r"env.slip: .*\[0, 1\]"):
        world(slip=slip)


def test_unknown_terminal_mode_is_a_config_error():
    with pytest.raises(ConfigError, match="env.terminal: unknown mode 'exit'"):
        world(terminal="exit")


# The course's cost maze: costs per state, G (-1) and R (+1) absorbing and paying every step.
COST_MAZE = dict(layout=["...G", ".#.R", "S..."], terminals={"G": -1.0, "R": 1.0}, slip=1.0,
                 terminal="absorbing", pay="occupy", objective="cost")


def test_a_cost_world_holds_minus_the_cost_of_the_cell_each_step_starts_in():
    env = GridWorld(**COST_MAZE)
    model = env.model
    green, red, plain = state(env, 0, 3), state(env, 1, 3), state(env, 0, 2)
    assert model.cost and model.sign == -1.0
    # occupy + absorbing: G and R keep the agent and keep paying, so nothing is terminal.
    assert not model.terminal.any()
    for cell, cost in ((green, -1.0), (red, 1.0), (plain, 0.0)):
        np.testing.assert_array_equal(model.R[cell], -cost)  # whatever the action; as a reward
        assert model.cell_values[cell] == -cost
    for cell in (green, red):
        np.testing.assert_array_equal(model.P[cell, :, cell], 1.0)
    assert model.P[plain, E, green] == 1.0 and model.P[plain, N, plain] == 1.0  # the edge stays put


def test_a_cost_world_steps_pay_the_cell_they_start_in_and_absorbing_cells_keep_paying():
    env = GridWorld(**{**COST_MAZE, "step_reward": 0.5})  # with objective: cost, a cost per step
    env.reset(seed=0)
    env.state = state(env, 0, 2)
    # Left a plain cell: only the step's cost.
    assert env.step(E)[:4] == (state(env, 0, 3), -0.5, False, False)
    for action in range(4):  # in G: the step's cost plus G's -1, again and again, never terminated
        assert env.step(action)[:4] == (state(env, 0, 3), pytest.approx(0.5), False, False)
    env.state = state(env, 1, 3)
    assert env.step(W)[:3] == (state(env, 1, 3), pytest.approx(-1.5), False)


def test_costs_paid_on_entry_are_negated_rewards():
    costs = GridWorld(["S~G"], terminals={"G": 5.0}, rewards={"~": 2.0}, step_reward=1.0, slip=1.0,
                      objective="cost")
    rewards = GridWorld(["S~G"], terminals={"G": -5.0}, rewards={"~": -2.0}, step_reward=-1.0,
                        slip=1.0)
    np.testing.assert_array_equal(costs.model.R, rewards.model.R)
    np.testing.assert_array_equal(costs.model.P, rewards.model.P)
    assert costs.model.cost and not rewards.model.cost
    costs.reset(seed=0)
    assert costs.step(E)[1:3] == (-3.0, False)
    assert costs.step(E)[1:3] == (-6.0, True)


def test_a_per_state_world_with_ending_terminals_pays_nothing_there():
    # A terminal worth 0 is fine: the episode ends on entering it, nothing more to pay.
    env = GridWorld(["S.G"], terminals={"G": 0.0}, step_reward=-1.0, slip=1.0, pay="occupy")
    assert env.model.terminal[state(env, 0, 2)] and (env.model.R[:2] == -1.0).all()
    env.reset(seed=0)
    assert env.step(E)[1:3] == (-1.0, False)
    assert env.step(E)[1:3] == (-1.0, True)
    # A non-zero one would never be paid: a ConfigError that says what to set instead.
    with pytest.raises(ConfigError, match="env.terminal: with env.pay=occupy .* 'G' would never"):
        GridWorld(["S.G"], terminals={"G": 1.0}, slip=1.0, pay="occupy")


@pytest.mark.parametrize(("key", "value"), [("pay", "exit"), ("objective", "profit")])
def test_unknown_pay_and_objective_modes_are_config_errors(key, value):
    with pytest.raises(ConfigError, match=f"env.{key}: unknown mode '{value}'"):
        world(**{key: value})


def test_the_shipped_cost_maze_is_the_course_example():
    from conftest import compose_config
    from deeprl.envs.gridworld import gridworld_kwargs

    env = GridWorld(**gridworld_kwargs(compose_config("env=cost_maze").env))
    expected = GridWorld(**COST_MAZE)
    for field in ("P", "R", "terminal", "cell_values"):
        np.testing.assert_array_equal(getattr(env.model, field), getattr(expected.model, field))
    assert env.model.cost


def test_rgb_frames_draw_walls_exits_and_the_agent():
    from deeprl.envs.gridworld import AGENT_RGB, BAD_RGB, CELL_PIXELS, EMPTY_RGB, GOOD_RGB, WALL_RGB

    env = world(slip=1.0, render_mode="rgb_array", layout=["...+", ".#.-", "S.r."], rewards={"r": 0.5})
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (3 * CELL_PIXELS, 4 * CELL_PIXELS, 3) and frame.dtype == np.uint8

    def centre(row, col):
        return tuple(int(v) for v in frame[row * CELL_PIXELS + CELL_PIXELS // 2, col * CELL_PIXELS + CELL_PIXELS // 2])

    assert centre(2, 0) == AGENT_RGB  # the start
    assert centre(1, 1) == WALL_RGB and centre(0, 0) == EMPTY_RGB
    assert centre(0, 3) == GOOD_RGB and centre(1, 3) == BAD_RGB  # exits at full strength
    half = centre(2, 2)  # a reward cell worth half the largest number: a lighter green
    assert half not in (EMPTY_RGB, GOOD_RGB) and half[1] > half[0] and half[1] > half[2]
    env.step(E)
    frame = env.render()
    assert centre(2, 1) == AGENT_RGB and centre(2, 0) == EMPTY_RGB
    assert isinstance(world(render_mode="ansi").render(), str)
