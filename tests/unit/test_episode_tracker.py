"""Full-game (all lives, unclipped) returns, while learning sees life-loss dones and clipped rewards."""

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from deeprl.envs.atari import EpisodicLife
from deeprl.envs.episodes import EpisodeTracker


def test_plain_envs_sum_the_rewards_they_see():
    tracker = EpisodeTracker(2)
    assert tracker.step(np.array([1.0, 2.0]), np.array([False, False])) == []
    assert tracker.step(np.array([1.0, 2.0]), np.array([False, True])) == [(4.0, 2)]
    assert tracker.step(np.array([1.0, 1.0]), np.array([True, True])) == [(3.0, 3), (1.0, 1)]


class _Ale:
    def __init__(self):
        self._lives = 0

    def lives(self):
        return self._lives


class LivesGame(gym.Env):
    """A fake ALE game: 3 lives, a life is lost every 4th step, reward 5 per step."""

    observation_space = gym.spaces.Box(0, 255, (1,), np.uint8)
    action_space = gym.spaces.Discrete(2)

    def __init__(self):
        self.ale = _Ale()
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.ale._lives, self.t = 3, 0
        return np.zeros(1, np.uint8), {}

    def step(self, action):
        self.t += 1
        if self.t % 4 == 0:
            self.ale._lives -= 1
        return np.full(1, self.t, np.uint8), 5.0, self.ale._lives == 0, False, {}


def make_game(training):
    def thunk():
        env = gym.wrappers.RecordEpisodeStatistics(LivesGame())
        if training:
            env = gym.wrappers.ClipReward(EpisodicLife(env), -1.0, 1.0)
        env.metadata = {**env.metadata, "full_game_stats": True}
        return env
    return thunk


def test_full_game_returns_across_lives_with_same_step_autoreset():
    envs = gym.vector.SyncVectorEnv([make_game(True)] * 2, autoreset_mode=AutoresetMode.SAME_STEP)
    tracker = EpisodeTracker.for_envs(envs)
    assert tracker.full_games
    envs.reset(seed=0)
    reported, life_dones, learned = [], 0, 0.0
    for _ in range(30):
        _, rewards, terminated, truncated, infos = envs.step(np.zeros(2, np.int64))
        learned += rewards.sum()
        life_dones += int((terminated | truncated).sum())
        reported += tracker.step(rewards, terminated | truncated, infos)
    # A game is 12 steps of the game (3 lives x 4 steps), reported once with the unclipped score
    # 12 x 5. After a lost life EpisodicLife's reset takes one no-op step itself, so the agent acts
    # 4 + 3 + 3 = 10 steps per game: 3 games and 9 learning episodes per env in 30 steps.
    assert reported == [(60.0, 12)] * 6
    assert life_dones == 2 * 9
    assert learned == 2 * 30  # learning saw clipped rewards: 1 per step


def test_evaluation_envs_end_only_at_game_over():
    envs = gym.vector.SyncVectorEnv([make_game(False)], autoreset_mode=AutoresetMode.SAME_STEP)
    tracker = EpisodeTracker.for_envs(envs)
    envs.reset(seed=0)
    done_at = []
    for t in range(24):
        _, rewards, terminated, truncated, infos = envs.step(np.zeros(1, np.int64))
        assert rewards[0] == 5.0  # unclipped
        if (terminated | truncated)[0]:
            done_at.append(t)
            assert tracker.step_envs(rewards, terminated | truncated, infos) == [(0, 60.0, 12)]
    assert done_at == [11, 23]
