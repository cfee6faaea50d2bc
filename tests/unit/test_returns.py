"""GAE, n-step returns and reward-to-go against values computed by hand, including what a
time-limit truncation (bootstrap from V(final obs), stop the sum) and a termination (no bootstrap)
do differently."""

import numpy as np
import pytest

from deeprl.core.returns import episode_returns, gae, nstep_returns, reward_to_go

G, LAM = 0.9, 0.8


def col(*xs):
    """A [T, 1] column (one env)."""
    return np.array(xs, dtype=np.float64)[:, None]


def test_gae_without_episode_end_matches_hand_computation():
    r = col(1.0, 2.0, 3.0)
    v = col(0.5, 1.0, 1.5)
    nv = col(1.0, 1.5, 4.0)  # V(s_{t+1}), and V(last obs) = 4 after the last step
    zeros = col(0, 0, 0)
    d2 = 3.0 + G * 4.0 - 1.5
    d1 = 2.0 + G * 1.5 - 1.0
    d0 = 1.0 + G * 1.0 - 0.5
    a2 = d2
    a1 = d1 + G * LAM * a2
    a0 = d0 + G * LAM * a1
    np.testing.assert_allclose(gae(r, v, nv, zeros, zeros, G, LAM), col(a0, a1, a2))


def test_gae_termination_drops_bootstrap_and_stops_the_trace():
    r, v = col(1.0, 1.0, 1.0), col(2.0, 3.0, 5.0)
    # Step 1 terminates; step 2 is the first of a new episode (next_values after a termination
    # are irrelevant: pass something large to show it is ignored).
    nv = col(3.0, 100.0, 7.0)
    terminated = col(0, 1, 0)
    dones = col(0, 1, 0)
    a2 = 1.0 + G * 7.0 - 5.0
    a1 = 1.0 - 3.0  # no bootstrap, and nothing from step 2 flows back
    a0 = (1.0 + G * 3.0 - 2.0) + G * LAM * a1
    np.testing.assert_allclose(gae(r, v, nv, terminated, dones, G, LAM), col(a0, a1, a2))


def test_gae_truncation_bootstraps_from_final_obs_but_stops_the_trace():
    r, v = col(1.0, 1.0, 1.0), col(2.0, 3.0, 5.0)
    nv = col(3.0, 10.0, 7.0)  # V(final obs of the truncated episode) = 10
    terminated = col(0, 0, 0)
    dones = col(0, 1, 0)  # a time limit ended the episode at step 1
    a2 = 1.0 + G * 7.0 - 5.0
    a1 = 1.0 + G * 10.0 - 3.0  # bootstraps from the final observation...
    a0 = (1.0 + G * 3.0 - 2.0) + G * LAM * a1  # ...and nothing of step 2 flows back
    np.testing.assert_allclose(gae(r, v, nv, terminated, dones, G, LAM), col(a0, a1, a2))


def test_gae_columns_are_independent_envs():
    rng = np.random.default_rng(0)
    r, v, nv = rng.normal(size=(3, 5, 2))
    term = (rng.random((5, 2)) < 0.3).astype(float)
    dones = np.maximum(term, (rng.random((5, 2)) < 0.3).astype(float))
    both = gae(r, v, nv, term, dones, G, LAM)
    for i in range(2):
        alone = gae(r[:, i:i + 1], v[:, i:i + 1], nv[:, i:i + 1], term[:, i:i + 1], dones[:, i:i + 1], G, LAM)
        np.testing.assert_allclose(both[:, i:i + 1], alone)


@pytest.mark.parametrize("lam", [0.0, 1.0])
def test_gae_limits_are_td_error_and_nstep_return(lam):
    rng = np.random.default_rng(1)
    r, v, nv = rng.normal(size=(3, 6, 3))
    term = (rng.random((6, 3)) < 0.2).astype(float)
    dones = np.maximum(term, (rng.random((6, 3)) < 0.2).astype(float))
    # Within an episode V(s'_t) is V(s_{t+1}); only episode ends and the last row differ.
    nv[:-1] = np.where(dones[:-1] > 0, nv[:-1], v[1:])
    adv = gae(r, v, nv, term, dones, G, lam)
    if lam == 0.0:
        np.testing.assert_allclose(adv, r + G * (1 - term) * nv - v)
    else:
        np.testing.assert_allclose(adv + v, nstep_returns(r, nv, term, dones, G))


def test_nstep_returns_by_hand():
    r = col(1.0, 2.0, 3.0, 4.0)
    nv = col(0.0, 10.0, 0.0, 20.0)
    # Step 1 is truncated (bootstrap V(final)=10), step 3 is the rollout's end (bootstrap V(last)=20).
    terminated, dones = col(0, 0, 0, 0), col(0, 1, 0, 0)
    expected = col(1.0 + G * (2.0 + G * 10.0), 2.0 + G * 10.0, 3.0 + G * (4.0 + G * 20.0), 4.0 + G * 20.0)
    np.testing.assert_allclose(nstep_returns(r, nv, terminated, dones, G), expected)
    # The same step 1 terminated instead: no bootstrap.
    terminated = col(0, 1, 0, 0)
    expected[0:2] = col(1.0 + G * 2.0, 2.0)
    np.testing.assert_allclose(nstep_returns(r, nv, terminated, dones, G), expected)


def test_reward_to_go_monte_carlo_by_hand():
    # Two episodes laid end to end: [1, 2, 3] then [4, 5].
    r = col(1.0, 2.0, 3.0, 4.0, 5.0)
    dones = col(0, 0, 1, 0, 1)
    expected = col(1 + G * 2 + G**2 * 3, 2 + G * 3, 3.0, 4 + G * 5, 5.0)
    np.testing.assert_allclose(reward_to_go(r, dones, G), expected)


def test_reward_to_go_bootstraps_a_truncated_episode_only_with_a_value():
    r = col(1.0, 2.0, 3.0)
    dones = col(0, 0, 1)
    # Monte Carlo: a truncated episode ends like any other.
    np.testing.assert_allclose(reward_to_go(r, dones, G), col(1 + G * 2 + G**2 * 3, 2 + G * 3, 3.0))
    nv = col(0.0, 0.0, 10.0)
    truncated = reward_to_go(r, dones, G, next_values=nv, terminated=col(0, 0, 0))
    np.testing.assert_allclose(truncated, col(1 + G * 2 + G**2 * (3 + G * 10), 2 + G * (3 + G * 10), 3 + G * 10))
    terminated = reward_to_go(r, dones, G, next_values=nv, terminated=col(0, 0, 1))
    np.testing.assert_allclose(terminated, reward_to_go(r, dones, G))
    with pytest.raises(ValueError):
        reward_to_go(r, dones, G, next_values=nv)


def test_episode_returns_repeat_each_episodes_full_discounted_return():
    r = col(1.0, 2.0, 3.0, 4.0, 5.0)
    dones = col(0, 0, 1, 0, 1)
    first, second = 1 + G * 2 + G**2 * 3, 4 + G * 5
    np.testing.assert_allclose(episode_returns(r, dones, G), col(first, first, first, second, second))


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("lam", [0.0, 0.95, 1.0])
def test_gae_and_nstep_returns_agree_with_stable_baselines3(seed, lam):
    """The same rollouts through SB3's RolloutBuffer. SB3 marks episode starts rather than ends and
    handles a time-limit truncation by adding γ V(final obs) to the reward (OnPolicyAlgorithm's
    collect_rollouts); deeprl keeps the two kinds of end apart. Both must give the same numbers."""
    import gymnasium as gym
    import torch
    from stable_baselines3.common.buffers import RolloutBuffer

    rng = np.random.default_rng(seed)
    T, N, gamma = 16, 3, 0.97
    rewards = rng.normal(size=(T, N))
    values = rng.normal(size=(T, N))
    dones = rng.random((T, N)) < 0.2
    dones[-1, 0] = True  # a rollout that ends with an episode end in some env
    terminated = dones & (rng.random((T, N)) < 0.5)
    final_values = rng.normal(size=(T, N))  # V(final obs) where an episode ended
    last_values = rng.normal(size=N)  # V(s_T) after the rollout
    following = np.concatenate([values[1:], last_values[None]])
    next_values = np.where(dones, final_values, following)

    buffer = RolloutBuffer(T, gym.spaces.Box(-1, 1, (1,)), gym.spaces.Discrete(2), "cpu",
                           gae_lambda=lam, gamma=gamma, n_envs=N)
    starts = np.concatenate([np.ones((1, N), bool), dones[:-1]])
    truncated = dones & ~terminated
    for t in range(T):
        reward = rewards[t] + gamma * truncated[t] * final_values[t]  # SB3's time-limit bootstrap
        buffer.add(np.zeros((N, 1)), np.zeros((N, 1)), reward, starts[t], torch.as_tensor(values[t]),
                   torch.zeros(N))
    buffer.compute_returns_and_advantage(torch.as_tensor(last_values), dones[-1])

    advantages = gae(rewards, values, next_values, terminated, dones, gamma, lam)
    np.testing.assert_allclose(advantages, buffer.advantages, rtol=1e-5, atol=1e-5)
    if lam == 1.0:  # A2C's n-step targets are SB3's λ = 1 returns
        returns = nstep_returns(rewards, next_values, terminated, dones, gamma)
        np.testing.assert_allclose(returns, buffer.returns, rtol=1e-5, atol=1e-5)
