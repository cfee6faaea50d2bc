"""Tabular Q-learning / SARSA updates and exploration, and fitted Q-iteration."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from deeprl.algos.fqi import FittedQIteration
from deeprl.algos.planning import ValueIteration
from deeprl.algos.tabular import (
    TabularQ,
    Transition,
    boltzmann,
    epsilon_greedy,
    epsilon_greedy_one,
    require_state_index,
)
from deeprl.core.errors import ConfigError
from deeprl.envs import EnvSpec
from deeprl.envs.gridworld import GridWorld

NET = OmegaConf.create({"_target_": "deeprl.networks.MLP", "hidden_sizes": [32], "activation": "relu"})


def spec(n_states=5, n_actions=3):
    return EnvSpec("test", (), np.dtype(np.int64), gym.spaces.Discrete(n_actions), n_states)


def exploration(**overrides):
    cfg = {"kind": "epsilon", "start": 1.0, "end": 0.1, "fraction": 0.5, "eval": 0.0,
           "temperature": 1.0, "temperature_end": 0.1}
    return OmegaConf.create({**cfg, **overrides})


def agent(rule="q_learning", total_steps=1000, **overrides):
    kwargs = dict(rule=rule, gamma=0.9, alpha=0.5, alpha_decay="constant", alpha_end=0.0, alpha_power=1.0,
                  q_init=0.0, exploration=exploration())
    kwargs.update(overrides)
    return TabularQ(spec(), None, None, np.random.default_rng(0), total_steps, **kwargs)


def batch(s, a, r, s2, terminated, a2=None):
    arr = np.asarray
    return Transition(arr(s), arr(a), arr(r, dtype=float), arr(s2), arr(terminated, dtype=bool),
                      arr(a2 if a2 is not None else a))


def test_q_learning_update_bootstraps_from_the_greedy_value_unless_terminated():
    q = agent()
    q.Q[2] = [1.0, 3.0, 2.0]
    q.update(batch([0], [1], [1.0], [2], [False]), step=0)
    assert q.Q[0, 1] == pytest.approx(0.5 * (1.0 + 0.9 * 3.0))
    q.update(batch([1], [0], [2.0], [2], [True]), step=0)
    assert q.Q[1, 0] == pytest.approx(0.5 * 2.0)


def test_sarsa_bootstraps_from_the_next_action_taken():
    q = agent(rule="sarsa")
    q.Q[2] = [1.0, 3.0, 2.0]
    q.update(batch([0], [1], [1.0], [2], [False], a2=[0]), step=0)
    assert q.Q[0, 1] == pytest.approx(0.5 * (1.0 + 0.9 * 1.0))


def test_every_transition_of_a_batch_counts_even_on_the_same_pair():
    q = agent()
    q.update(batch([0, 0], [1, 1], [1.0, 1.0], [1, 1], [True, True]), step=0)
    assert q.Q[0, 1] == pytest.approx(1.0)  # two updates of 0.5 * 1.0 from Q = 0


def test_step_size_schedules():
    visits = agent(alpha=1.0, alpha_decay="visits", alpha_power=1.0)
    for reward in (4.0, 2.0, 6.0):  # alpha = 1/n: the running mean of the targets
        visits.update(batch([0], [0], [reward], [1], [True]), step=0)
    assert visits.Q[0, 0] == pytest.approx(4.0)
    linear = agent(alpha=0.5, alpha_decay="linear", alpha_end=0.1)
    assert [linear.learning_rate(t) for t in (0, 500, 1000, 2000)] == pytest.approx([0.5, 0.3, 0.1, 0.1])


def test_epsilon_greedy_decays_and_evaluation_is_greedy():
    q = agent()
    assert [q.epsilon(t) for t in (0, 250, 500, 900)] == pytest.approx([1.0, 0.55, 0.1, 0.1])
    q.Q[:] = [[0.0, 1.0, 0.0]] * 5
    states = np.zeros(4000, dtype=np.int64)
    assert set(q.act(states, step=0)) == {0, 1, 2}
    late = q.act(states, step=1000)
    assert abs((late == 1).mean() - (0.9 + 0.1 / 3)) < 0.03
    np.testing.assert_array_equal(q.act(states, step=0, eval_mode=True), 1)


def test_greedy_ties_are_broken_at_random():
    q = agent()
    actions = q.act(np.zeros(3000, dtype=np.int64), step=0, eval_mode=True)  # all-zero table
    assert set(actions) == {0, 1, 2}


def test_one_env_acts_exactly_as_a_batch_of_one():
    """The scalar form for one env makes the same draws in the same order: same actions, and the
    stream left in the same state."""
    table = np.random.default_rng(5).integers(-2, 3, size=(50, 4)).astype(float)  # many ties
    batch_rng, one_rng = np.random.default_rng(9), np.random.default_rng(9)
    for i in range(2000):
        row, eps = table[i % 50], (0.0, 0.3, 1.0)[i % 3]
        assert epsilon_greedy_one(row, eps, one_rng) == epsilon_greedy(row[None], eps, batch_rng)[0]
    assert one_rng.random() == batch_rng.random()


@pytest.mark.parametrize("rule", TabularQ.RULES)
@pytest.mark.parametrize("alpha_decay", ["constant", "linear", "visits"])
def test_one_env_learns_bit_for_bit_as_a_batch_of_one(rule, alpha_decay):
    """`update` on one env takes the scalar form; `td_update` on one-element arrays is the batch
    form. Fed the same transitions, their tables agree exactly after every step, not approximately."""
    one, batched = (agent(rule, alpha_decay=alpha_decay, alpha_power=0.6, alpha_end=0.01) for _ in range(2))
    data = np.random.default_rng(3)
    for step in range(1, 501):
        s, a, s2, a2 = data.integers(0, 5), data.integers(0, 3), data.integers(0, 5), data.integers(0, 3)
        r, terminated = data.normal(), data.random() < 0.2
        metrics = one.update(batch([s], [a], [r], [s2], [terminated], [a2]), step)
        td_error = batched.td_update(*(np.array([x]) for x in (s, a, r, s2, terminated, a2)), step)
        assert metrics["td_error"] == abs(td_error[0]) and metrics["q_values"] == batched.Q[s, a]
        assert np.array_equal(one.Q, batched.Q) and one.last_alpha == batched.last_alpha
    assert np.array_equal(one.visits, batched.visits)
    assert np.abs(one.Q).max() > 0.1  # it learned something


def test_boltzmann_samples_softmax_of_q_over_temperature():
    rng = np.random.default_rng(0)
    Q = np.tile([0.0, 1.0, 2.0], (20000, 1))
    for temperature in (0.5, 2.0):
        counts = np.bincount(boltzmann(Q, temperature, rng), minlength=3) / len(Q)
        expected = np.exp(Q[0] / temperature) / np.exp(Q[0] / temperature).sum()
        np.testing.assert_allclose(counts, expected, atol=0.015)
    q = agent(exploration=exploration(kind="boltzmann", temperature=1.0, temperature_end=0.01))
    assert q.temperature(0) == 1.0 and q.temperature(500) == pytest.approx(0.01)
    q.Q[0] = [0.0, 1.0, 0.0]
    assert (q.act(np.zeros(500, dtype=np.int64), step=1000) == 1).all()  # cold: greedy
    assert "charts/temperature" in q.charts(0) and "charts/epsilon" not in q.charts(0)


def test_tabular_algorithms_need_a_state_index():
    box = EnvSpec("CartPole-v1", (4,), np.dtype(np.float32), gym.spaces.Discrete(2))
    with pytest.raises(ConfigError, match=r"env: q_learning is tabular .* CartPole-v1 observes shape \(4,\); use"):
        require_state_index("q_learning", box)


def test_state_dict_round_trip():
    q = agent()
    q.update(batch([0], [1], [1.0], [2], [False]), step=0)
    other = agent()
    other.load_state_dict(q.state_dict())
    np.testing.assert_array_equal(other.Q, q.Q)
    np.testing.assert_array_equal(other.visits, q.visits)


# Fitted Q-iteration ---------------------------------------------------------------------------

def deterministic_world():
    return GridWorld(["S..", ".#.", "..G"], terminals={"G": 1.0}, step_reward=-0.1, slip=1.0)


def exhaustive_dataset(env):
    """Every (s, a) once, from the model (deterministic world: one successor each)."""
    model = env.model
    rows = [(s, a, model.R[s, a], int(model.P[s, a].argmax()), bool(model.terminal[model.P[s, a].argmax()]))
            for s in range(model.n_states) if not model.terminal[s] for a in range(model.n_actions)]
    s, a, r, s2, done = map(np.array, zip(*rows, strict=True))
    return Transition(s, a, r.astype(float), s2, done, a)


def fqi(env, **overrides):
    kwargs = dict(gamma=0.9, regressor="table", behaviour="uniform", behaviour_epsilon=0.3, lr=1e-2,
                  fit_steps=300, batch_size=64)
    kwargs.update(overrides)
    sp = spec(env.model.n_states, env.model.n_actions)
    return FittedQIteration(sp, NET, torch.device("cpu"), np.random.default_rng(0), 1000, **kwargs)


def optimal_q(env, gamma):
    vi = ValueIteration(spec(env.model.n_states, 4), None, None, None, 0, gamma=gamma, tol=1e-12)
    vi.prepare(env.model)
    while not vi.sweep()[1]:
        pass
    return vi.Q


def test_fitted_q_iteration_with_a_table_on_complete_data_is_value_iteration():
    env = deterministic_world()
    agent = fqi(env)
    data = exhaustive_dataset(env)
    for k in range(1, 200):
        metrics = agent.update(data, k)
        if metrics["max_delta"] < 1e-12:
            break
    live = ~env.model.terminal
    np.testing.assert_allclose(agent.Q[live], optimal_q(env, 0.9)[live], atol=1e-9)
    assert metrics["fit_loss"] == pytest.approx(0.0, abs=1e-12)


def test_fitted_q_iteration_table_keeps_unvisited_pairs_at_zero_and_averages_targets():
    env = deterministic_world()
    agent = fqi(env)
    data = Transition(np.array([0, 0]), np.array([1, 1]), np.array([1.0, 3.0]), np.array([1, 1]),
                      np.array([True, True]), np.array([1, 1]))
    agent.update(data, 1)
    assert agent.Q[0, 1] == 2.0 and np.count_nonzero(agent.Q) == 1


@pytest.fixture
def one_thread():
    # Small networks on a shared CPU: more threads only wait for each other.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_fitted_q_iteration_with_a_network_fits_the_optimal_policy(one_thread):
    env = deterministic_world()
    torch.manual_seed(0)
    agent = fqi(env, regressor="mlp", fit_steps=200)
    data = exhaustive_dataset(env)
    for k in range(1, 26):
        agent.update(data, k)
    live = ~env.model.terminal
    Q_star = optimal_q(env, 0.9)
    np.testing.assert_allclose(agent.Q[live], Q_star[live], atol=0.05)


def test_expert_behaviour_follows_the_optimal_policy_with_epsilon_noise():
    env = deterministic_world()
    agent = fqi(env, behaviour="expert", behaviour_epsilon=0.2)
    with pytest.raises(ConfigError, match="algo.behaviour: expert needs an env with a known model"):
        agent.prepare(None)
    agent.prepare(env.model)
    np.testing.assert_array_equal(agent.expert, optimal_q(env, 0.9).argmax(axis=1))
    actions = agent.act(np.zeros(5000, dtype=np.int64), step=0)
    assert abs((actions == agent.expert[0]).mean() - (0.8 + 0.2 / 4)) < 0.03
