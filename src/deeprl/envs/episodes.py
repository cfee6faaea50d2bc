import numpy as np


class EpisodeTracker:
    """Running return and length per vector env; reports the episodes that just finished."""

    def __init__(self, num_envs: int):
        self.returns = np.zeros(num_envs, dtype=np.float64)
        self.lengths = np.zeros(num_envs, dtype=np.int64)

    def step(self, rewards: np.ndarray, dones: np.ndarray) -> list[tuple[float, int]]:
        self.returns += rewards
        self.lengths += 1
        finished = [(float(self.returns[i]), int(self.lengths[i])) for i in np.flatnonzero(dones)]
        self.returns[dones] = 0.0
        self.lengths[dones] = 0
        return finished
