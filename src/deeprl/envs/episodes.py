import numpy as np


class EpisodeTracker:
    """Running return and length per vector env; reports the episodes that just finished.

    Plain envs: an episode ends at every done and its return is the sum of the rewards the loop saw.
    Envs whose metadata says `full_game_stats` (Atari) may end learning episodes at a lost life and
    clip rewards; they report each finished game in info["episode"] (gymnasium's
    RecordEpisodeStatistics, placed below those wrappers), and that full-game score is reported.
    With same-step autoreset a game's last step info arrives under infos["final_info"].
    """

    def __init__(self, num_envs: int, full_games: bool = False):
        self.full_games = full_games
        self.returns = np.zeros(num_envs, dtype=np.float64)
        self.lengths = np.zeros(num_envs, dtype=np.int64)

    @classmethod
    def for_envs(cls, envs) -> "EpisodeTracker":
        return cls(envs.num_envs, full_games=bool(envs.metadata.get("full_game_stats", False)))

    def step(self, rewards: np.ndarray, dones: np.ndarray, infos: dict | None = None) -> list[tuple[float, int]]:
        return [(ret, length) for _, ret, length in self.step_envs(rewards, dones, infos)]

    def step_envs(self, rewards: np.ndarray, dones: np.ndarray,
                  infos: dict | None = None) -> list[tuple[int, float, int]]:
        """Like `step`, with the index of the env each finished episode ran in."""
        if self.full_games:
            if infos is None:
                raise ValueError("EpisodeTracker(full_games=True).step needs the step's infos")
            return finished_games(infos)
        self.returns += rewards
        self.lengths += 1
        if not dones.any():
            return []
        finished = [(int(i), float(self.returns[i]), int(self.lengths[i])) for i in np.flatnonzero(dones)]
        self.returns[dones] = 0.0
        self.lengths[dones] = 0
        return finished

    def step_one(self, reward: float, done: bool) -> list[tuple[float, int]]:
        """`step` for a vector env of one plain env, on scalars."""
        self.returns[0] += reward
        self.lengths[0] += 1
        if not done:
            return []
        finished = [(float(self.returns[0]), int(self.lengths[0]))]
        self.returns[0], self.lengths[0] = 0.0, 0
        return finished

    def state_dict(self) -> dict:
        return {"returns": self.returns.copy(), "lengths": self.lengths.copy()}

    def load_state_dict(self, state: dict) -> None:
        self.returns[:] = state["returns"]
        self.lengths[:] = state["lengths"]


def finished_games(infos: dict) -> list[tuple[int, float, int]]:
    """(env index, return, length) of the info["episode"] entries of one vector step.

    Looks in the final step's info (same-step autoreset) and in the top-level infos, where a
    wrapper's reset can pass on a game that ended inside it.
    """
    finished = []
    for source in (infos.get("final_info") or {}, infos):
        episode = source.get("episode")
        if episode is None:
            continue
        for i in np.flatnonzero(source["_episode"]):
            finished.append((int(i), float(episode["r"][i]), int(episode["l"][i])))
    return finished
