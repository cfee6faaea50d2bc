"""n-step rewards and discounts against hand-computed targets, for both storages and with PER."""

import numpy as np
import pytest
import torch

from deeprl.buffers import FrameReplayBuffer, PrioritizedReplay, ReplayBuffer

CPU = torch.device("cpu")
GAMMA = 0.5


class Plain:
    """obs of step t of an env is [t]; s' is [t + 1]."""

    @staticmethod
    def buffer(capacity, n_step):
        return ReplayBuffer(capacity, (1,), np.float32, (), np.int64, GAMMA, CPU, n_step)

    @staticmethod
    def obs(values):
        return np.asarray(values, np.float32).reshape(-1, 1)

    @staticmethod
    def value(obs):
        return obs[:, 0].numpy()


class Frames:
    """Stacks of 2 one-pixel frames whose newest frame is t (like FrameStack, without padding
    mattering here): obs of step t is [t - 1, t], s' is [t, t + 1]."""

    @staticmethod
    def buffer(capacity, n_step):
        return FrameReplayBuffer(capacity, (2, 1, 1), np.uint8, (), np.int64, GAMMA, CPU, n_step, frame_stack=2)

    @staticmethod
    def obs(values):
        values = np.asarray(values, np.int64)
        return np.stack([values - 1, values], axis=1).reshape(-1, 2, 1, 1).astype(np.uint8) + 1

    @staticmethod
    def value(obs):
        return obs[:, -1, 0, 0].numpy().astype(np.int64) - 1


STORAGES = [Plain, Frames]


def fill(storage, capacity, n_step, rewards, terminated=None, truncated=None):
    """One env; transition t has obs value t, next value t + 1, reward rewards[t]."""
    buffer = storage.buffer(capacity, n_step)
    for t, r in enumerate(rewards):
        buffer.add(storage.obs([t]), np.array([t]), np.array([r], np.float32), storage.obs([t + 1]),
                   np.array([bool(terminated and terminated[t])]), np.array([bool(truncated and truncated[t])]))
    return buffer


@pytest.mark.parametrize("storage", STORAGES)
def test_three_step_returns_stop_at_termination_and_at_the_newest_step(storage):
    #   t:        0  1  2  3  4  5
    rewards = [1, 2, 3, 4, 5, 6]
    terminated = [0, 0, 0, 1, 0, 0]
    buffer = fill(storage, 10, 3, rewards, terminated)
    batch = buffer._batch(np.arange(6))
    # t=0: 1 + .5*2 + .25*3, bootstrap from s' of t=2 with .5**3
    # t=1: 2 + .5*3 + .25*4, t=3 terminates -> discount 0
    # t=2: 3 + .5*4 (terminal)          t=3: 4 (terminal)
    # t=4: 5 + .5*6, only t=5 is stored after it -> 2 steps, .5**2
    # t=5: 6, the newest step -> 1 step, .5
    np.testing.assert_allclose(batch.rewards.numpy(), [2.75, 4.5, 5.0, 4.0, 8.0, 6.0])
    np.testing.assert_allclose(batch.discounts.numpy(), [0.125, 0.0, 0.0, 0.0, 0.25, 0.5])
    np.testing.assert_array_equal(storage.value(batch.next_obs), [3, 4, 4, 4, 6, 6])
    np.testing.assert_array_equal(storage.value(batch.obs), [0, 1, 2, 3, 4, 5])
    np.testing.assert_array_equal(batch.actions.numpy(), [0, 1, 2, 3, 4, 5])


@pytest.mark.parametrize("storage", STORAGES)
def test_truncation_ends_the_window_but_keeps_bootstrapping(storage):
    rewards = [1, 2, 3, 4]
    truncated = [0, 1, 0, 0]
    buffer = fill(storage, 10, 3, rewards, truncated=truncated)
    batch = buffer._batch(np.arange(4))
    # t=0: 1 + .5*2, then the episode was cut by a time limit: bootstrap from s' of t=1 with .5**2
    # t=1: 2 with .5; t=2: 3 + .5*4 with .5**2 (newest); t=3: 4 with .5
    np.testing.assert_allclose(batch.rewards.numpy(), [2.0, 2.0, 5.0, 4.0])
    np.testing.assert_allclose(batch.discounts.numpy(), [0.25, 0.5, 0.25, 0.5])
    np.testing.assert_array_equal(storage.value(batch.next_obs), [2, 2, 4, 4])


@pytest.mark.parametrize("storage", STORAGES)
def test_one_step_is_the_plain_target(storage):
    buffer = fill(storage, 10, 1, [1, 2, 3], terminated=[0, 1, 0])
    batch = buffer._batch(np.arange(3))
    np.testing.assert_allclose(batch.rewards.numpy(), [1, 2, 3])
    np.testing.assert_allclose(batch.discounts.numpy(), [0.5, 0.0, 0.5])


def reference(per_env, n):
    """n-step (reward, discount, next value) per (env, t), from each env's own list of steps."""
    out = {}
    for e, steps in per_env.items():
        for t in range(len(steps)):
            total, k = 0.0, 0
            while k < n and t + k < len(steps):
                r, term, trunc, nxt = steps[t + k]
                total += GAMMA ** k * r
                k += 1
                if term or trunc:
                    break
            out[(e, t)] = (total, 0.0 if term else GAMMA ** k, nxt)
    return out


@pytest.mark.parametrize("storage", STORAGES)
def test_interleaved_envs_and_wraparound(storage):
    # 2 envs, capacity 7 (not a multiple of 2), 6 calls: the ring wraps and each env's steps sit
    # two slots apart across the wrap.
    rng = np.random.default_rng(0)
    n, calls, capacity = 2, 6, 7
    buffer = storage.buffer(capacity, 3)
    per_env = {0: [], 1: []}
    values = np.array([0, 50])  # env 1's observations are 50, 51, ... (distinct from env 0's)
    log = []  # (env, t) of each added transition, in slot order
    for c in range(calls):
        rewards = rng.integers(1, 9, n).astype(np.float32)
        terminated = np.array([c == 2, False])
        truncated = np.array([False, c == 3])
        buffer.add(storage.obs(values), np.zeros(n, np.int64), rewards, storage.obs(values + 1), terminated, truncated)
        for e in range(n):
            per_env[e].append((float(rewards[e]), bool(terminated[e]), bool(truncated[e]), int(values[e] + 1)))
            log.append((e, c))
        values = values + 1
    expected = reference(per_env, 3)
    stored = log[-len(buffer):]  # the newest `capacity` transitions
    slots = np.arange(len(log) - len(buffer), len(log)) % capacity
    batch = buffer._batch(slots)
    for i, key in enumerate(stored):
        r, d, nxt = expected[key]
        assert batch.rewards[i].item() == pytest.approx(r), key
        assert batch.discounts[i].item() == pytest.approx(d), key
        assert storage.value(batch.next_obs[i:i + 1])[0] == nxt, key


@pytest.mark.parametrize("storage", STORAGES)
def test_prioritized_samples_carry_n_step_targets(storage):
    per = PrioritizedReplay(storage.buffer(10, 3))
    for t, r in enumerate([1, 2, 3, 4, 5, 6]):
        per.add(storage.obs([t]), np.array([t]), np.array([r], np.float32), storage.obs([t + 1]),
                np.array([t == 3]), np.array([False]))
    batch = per.sample(64, np.random.default_rng(0), beta=0.5)
    expected = dict(zip(range(6), [2.75, 4.5, 5.0, 4.0, 8.0, 6.0], strict=True))
    for slot, reward in zip(batch.indices, batch.rewards.numpy(), strict=True):
        assert reward == pytest.approx(expected[int(slot)])


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("n_step", [1, 3, 5])
def test_nstep_targets_agree_with_stable_baselines3(seed, n_step):
    """The same transitions (3 envs, terminations, time-limit truncations, a store that has wrapped)
    through SB3's NStepReplayBuffer: every stored transition gives the same n-step reward, the
    same s' to bootstrap from and the same discount (SB3's γ^k times its 1 - done)."""
    import gymnasium as gym
    from stable_baselines3.common.buffers import NStepReplayBuffer

    rng = np.random.default_rng(seed)
    steps, n_envs, size, gamma = 23, 3, 8, 0.9
    ours = ReplayBuffer(size * n_envs, (1,), np.float32, (), np.int64, gamma, CPU, n_step)
    # SB3's size counts the transitions of all envs together, as deeprl's capacity does.
    theirs = NStepReplayBuffer(size * n_envs, gym.spaces.Box(-1e6, 1e6, (1,)), gym.spaces.Discrete(2), "cpu",
                               n_envs=n_envs, n_steps=n_step, gamma=gamma)
    for t in range(steps):
        terminated = rng.random(n_envs) < 0.15
        truncated = ~terminated & (rng.random(n_envs) < 0.15)
        obs = (t * n_envs + np.arange(n_envs)).astype(np.float32)[:, None]  # each transition's id
        next_obs = obs + 0.5
        rewards = rng.normal(size=n_envs).astype(np.float32)
        actions = np.zeros(n_envs, np.int64)
        ours.add(obs, actions, rewards, next_obs, terminated, truncated)
        theirs.add(obs, next_obs, actions[:, None], rewards, terminated | truncated,
                   [{"TimeLimit.truncated": bool(x)} for x in truncated])

    rows = np.repeat(np.arange(size), n_envs)  # every stored transition: SB3's (row, env)...
    np.random.seed(seed)
    envs = np.random.randint(0, n_envs, size=rows.shape)  # ...with the envs SB3 draws for them
    np.random.seed(seed)
    sample = theirs._get_samples(rows)
    slots = ours.oldest % ours.capacity  # wrapped: our slot of SB3's row r, env e is r * n_envs + e
    assert slots == (theirs.pos * n_envs) % ours.capacity
    last, rewards, discounts = ours._returns(rows * n_envs + envs)
    np.testing.assert_allclose(rewards, sample.rewards.numpy()[:, 0], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(ours.next_obs[last, 0], sample.next_observations.numpy()[:, 0])
    expected = sample.discounts.numpy()[:, 0] * (1.0 - sample.dones.numpy()[:, 0])
    np.testing.assert_allclose(discounts, expected, rtol=1e-6)
