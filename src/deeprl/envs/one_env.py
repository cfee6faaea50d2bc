"""A vector env of one env that steps without the general case's per-step overhead.

Most runs step a single env (tabular learners, DQN on classic control: the default run). For them
gymnasium's SyncVectorEnv spends about as long around each step as a toy-text env spends inside
it: it iterates the batched actions through the action space, stacks one observation into the
batch with `np.stack`, deep-copies the batch, and builds the info dict key by key even when it is
empty. `OneEnvVector` is a SyncVectorEnv (same construction, reset, seeding, spaces, `envs`
list, close, render) whose same-step-autoreset `step` does the same work directly, and returns
the same arrays, dtypes and infos, bit for bit (tests/unit/test_vector_envs.py checks it against
SyncVectorEnv on every kind of env deeprl makes).
"""

import gymnasium as gym
from gymnasium.vector import AutoresetMode


class OneEnvVector(gym.vector.SyncVectorEnv):
    def __init__(self, env_fn, **kwargs):
        super().__init__([env_fn], **kwargs)
        # The fast step writes the observation into the batch array in place, which is what
        # gymnasium's concatenate does for array spaces; any other space takes the general step.
        self._fast = (self.autoreset_mode == AutoresetMode.SAME_STEP
                      and isinstance(self.single_observation_space, (gym.spaces.Box, gym.spaces.Discrete)))

    def step(self, actions):
        if not self._fast:
            return super().step(actions)
        env = self.envs[0]
        obs, reward, terminated, truncated, info = env.step(actions[0])
        infos = {}
        if terminated or truncated:
            infos = self._add_info(infos, {"final_obs": obs, "final_info": info}, 0)
            obs, info = env.reset()
        if info:
            infos = self._add_info(infos, info, 0)
        self._env_obs[0] = obs
        self._observations[0] = obs
        self._rewards[0], self._terminations[0], self._truncations[0] = reward, terminated, truncated
        self._autoreset_envs[0] = terminated or truncated
        return (self._observations.copy() if self.copy else self._observations, self._rewards.copy(),
                self._terminations.copy(), self._truncations.copy(), infos)
