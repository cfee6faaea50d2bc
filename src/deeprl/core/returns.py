"""Return and advantage estimates over a rollout: pure numpy, time on the leading axis.

Every array is [T, N] (T steps of N envs, or one env's episodes laid end to end with N = 1).
Step t of env n is the transition (s_t, a_t, r_t, s'_t):

- `terminated[t]`: s'_t is terminal, so nothing is bootstrapped from it.
- `dones[t]`: the episode ended at this step, by termination *or* by truncation (time limit).
  The next row of the same env belongs to a new episode, so no sum runs across it.
- `next_values[t]`: V(s'_t) for the true next state: under same-step autoreset that is
  V(final_obs) where the episode ended, V(s_{t+1}) elsewhere, V(last obs) at t = T-1.

A truncated episode therefore stops the sums (done) but still bootstraps from V(s') (not
terminated); a terminated one does neither.
"""

import numpy as np


def gae(rewards, values, next_values, terminated, dones, gamma: float, lam: float) -> np.ndarray:
    """Generalised advantage estimates (Schulman et al. 2016).

    δ_t = r_t + γ (1 - terminated_t) V(s'_t) - V(s_t);  A_t = δ_t + γ λ (1 - done_t) A_{t+1}.
    λ = 1 gives the n-step return advantage (bootstrapped at the rollout's end), λ = 0 the TD error.
    """
    rewards, values, next_values = _f64(rewards), _f64(values), _f64(next_values)
    not_terminal = 1.0 - _f64(terminated)
    carry = gamma * lam * (1.0 - _f64(dones))
    deltas = rewards + gamma * not_terminal * next_values - values
    advantages = np.zeros_like(deltas)
    last = np.zeros_like(deltas[0])
    for t in range(len(deltas) - 1, -1, -1):
        last = deltas[t] + carry[t] * last
        advantages[t] = last
    return advantages


def nstep_returns(rewards, next_values, terminated, dones, gamma: float) -> np.ndarray:
    """Discounted reward sums to the end of the episode or the rollout, whichever comes first,
    bootstrapped there with γ V(s') unless the episode terminated (A2C's n-step targets)."""
    rewards, next_values = _f64(rewards), _f64(next_values)
    not_terminal = 1.0 - _f64(terminated)
    dones = _f64(dones)
    returns = np.zeros_like(rewards)
    following = next_values[-1]  # what follows the last step (if no episode ends there): V(s'_{T-1})
    for t in range(len(rewards) - 1, -1, -1):
        # At an episode end the continuation is V(final obs), or nothing after a termination;
        # elsewhere it is the next step's return.
        following = dones[t] * not_terminal[t] * next_values[t] + (1.0 - dones[t]) * following
        returns[t] = rewards[t] + gamma * following
        following = returns[t]
    return returns


def reward_to_go(rewards, dones, gamma: float, next_values=None, terminated=None) -> np.ndarray:
    """Σ_{t' ≥ t} γ^{t'-t} r_{t'} up to the end of each episode (REINFORCE's "reward to go").

    Without `next_values` this is pure Monte Carlo: every episode end is treated as final, and the
    last row is expected to be one. With `next_values` and `terminated` it is `nstep_returns`:
    a time-limit truncation (or a cut at the last row) bootstraps from γ V(s').
    """
    if next_values is not None:
        if terminated is None:
            raise ValueError("reward_to_go: pass `terminated` together with `next_values`")
        return nstep_returns(rewards, next_values, terminated, dones, gamma)
    zeros = np.zeros_like(_f64(rewards))
    return nstep_returns(rewards, zeros, zeros, dones, gamma)


def episode_returns(rewards, dones, gamma: float) -> np.ndarray:
    """The whole episode's discounted return Σ_t γ^t r_t, repeated at each of its steps (the
    original REINFORCE weight, before the reward-to-go refinement). The last row must end an
    episode; use on complete episodes only."""
    rewards, dones = _f64(rewards), _f64(dones)
    rtg = reward_to_go(rewards, dones, gamma)
    out = np.zeros_like(rtg)
    start = np.ones_like(rtg[0])  # rows that start an episode carry its full return
    current = np.zeros_like(rtg[0])
    for t in range(len(rtg)):
        current = start * rtg[t] + (1.0 - start) * current
        out[t] = current
        start = dones[t]
    return out


def _f64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)
