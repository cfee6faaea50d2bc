import time
from pathlib import Path

import numpy as np

from deeprl.core.checkpoint import save_atomic
from deeprl.core.seeding import rng_state
from deeprl.logging import Logger
from deeprl.loops.evaluate import evaluate, record_video


class Session:
    """Run bookkeeping shared by every loop: episode stats, SPS, periodic eval and checkpoints.

    Loops call `episodes()` with finished episodes, `metrics()` with the agent's update output and
    `tick()` once per environment step; everything else (what is due when) is decided here.
    """

    def __init__(self, *, logger: Logger, run_dir: Path, env_cfg, seed: int, rng: np.random.Generator,
                 total_steps: int, eval_every: int, eval_episodes: int, checkpoint_every: int,
                 log_every: int, video_every: int = 0):
        self.logger = logger
        self.run_dir = Path(run_dir)
        self.env_cfg = env_cfg
        self.eval_seed = 10_000 + 1_000 * seed  # far from the training seeds
        self.rng = rng
        self.total_steps = total_steps
        self.eval_every = eval_every
        self.eval_episodes = eval_episodes
        self.checkpoint_every = checkpoint_every
        self.log_every = max(1, log_every)
        self.video_every = video_every
        self.start = time.perf_counter()
        self.eval_time = 0.0  # excluded from SPS
        self._last = {"log": 0, "eval": 0, "checkpoint": 0, "video": 0}
        self._recent: list[float] = []
        self.last_eval: tuple[np.ndarray, np.ndarray] | None = None
        self.history: list[dict] = []  # (step, eval mean) for every evaluation

    def episodes(self, step: int, finished: list[tuple[float, int]]) -> None:
        for ret, length in finished:
            self.logger.scalars({"charts/episodic_return": ret, "charts/episodic_length": length}, step)
            self._recent = (self._recent + [ret])[-20:]

    def _due(self, what: str, every: int, step: int) -> bool:
        if every > 0 and step // every > self._last[what] // every:
            self._last[what] = step
            return True
        return False

    def metrics(self, step: int, metrics: dict, prefix: str = "losses/") -> None:
        """Log the agent's metrics when a logging interval has passed (avoids a sync per update)."""
        if self._due("log", self.log_every, step):
            self.logger.scalars(metrics, step, prefix)

    def tick(self, step: int, agent, extra_charts=None) -> None:
        """`extra_charts(step)`: a callable returning more charts, called only when they are logged."""
        if step // self.log_every > (step - 1) // self.log_every or step >= self.total_steps:
            charts = {"charts/SPS": self.sps(step)}
            if extra_charts:
                charts.update(extra_charts(step))
            self.logger.scalars(charts, step)
            recent = {"return": float(np.mean(self._recent))} if self._recent else {}
            self.logger.progress(step, **recent)
        if self._due("eval", self.eval_every, step) and step < self.total_steps:
            self.evaluate(step, agent)
        if self._due("checkpoint", self.checkpoint_every, step) and step < self.total_steps:
            self.checkpoint(step, agent, f"step_{step}.pt")
        if self._due("video", self.video_every, step):
            self.video(step, agent)

    def video(self, step: int, agent) -> list:
        """One greedy episode recorded to <run dir>/videos/step_<N>-episode-0.mp4 (time excluded from SPS)."""
        t0 = time.perf_counter()
        videos = record_video(agent, self.env_cfg, 1, self.eval_seed, self.run_dir / "videos", f"step_{step}")
        self.eval_time += time.perf_counter() - t0
        return videos

    def sps(self, step: int) -> float:
        return step / max(self.train_time(), 1e-9)

    def train_time(self) -> float:
        return time.perf_counter() - self.start - self.eval_time

    def evaluate(self, step: int, agent) -> tuple[np.ndarray, np.ndarray]:
        t0 = time.perf_counter()
        returns, lengths = evaluate(agent, self.env_cfg, self.eval_episodes, self.eval_seed)
        self.eval_time += time.perf_counter() - t0
        self.logger.scalars({"eval/episodic_return": returns.mean(),
                             "eval/episodic_length": lengths.mean()}, step)
        self.last_eval = (returns, lengths)
        self.history.append({"step": step, "train_time_s": self.train_time(),
                             "eval_return_mean": float(returns.mean())})
        return returns, lengths

    def checkpoint(self, step: int, agent, name: str) -> Path:
        state = {"agent": agent.state_dict(), "step": step, "rng": rng_state(self.rng)}
        return save_atomic(state, self.run_dir / "checkpoints" / name)
