import functools
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from deeprl.logging import Logger
from deeprl.loops.evaluate import EvaluationCut, evaluate, record_video

GUARDS = ("stop", "warn", "off")
# Diagnostics that are undefined on some batches and then NaN, which says nothing of divergence:
# explained variance when a rollout's returns do not vary (algos/policy.py). The guard skips them;
# the losses computed from the same values still catch a network gone non-finite.
UNDEFINED_AT_TIMES = frozenset({"explained_variance"})


class NonFiniteError(RuntimeError):
    """Training produced a non-finite loss or parameter and `guard=stop` ended the run."""

    def __init__(self, step: int, metric: str):
        self.step, self.metric = step, metric
        super().__init__(f"non-finite {metric} at step {step}")


class Session:
    """Run bookkeeping shared by every loop: episode stats, SPS, periodic eval and checkpoints,
    the stop request of a signal, and the guard against non-finite numbers.

    Loops call `episodes()` with finished episodes, `metrics()` with the agent's update output and
    `tick()` once per environment step, and return from `run` when `stopping` is set; everything
    else (what is due when) is decided here. `save(step, name)` (set by the run) writes a
    checkpoint of the whole run, and `save_best(step)` (set by the run when `checkpoint.best` is
    on) writes checkpoints/best.pt after an evaluation that beats every earlier one. The session's
    own state (what is due next, the evaluation history and the best of it, the training time so
    far, what a stop left owed) is part of every checkpoint.

    A stop signal cuts an evaluation or video short at its next step (an Atari evaluation can take
    minutes). One that was due mid-run is then owed: the checkpoint written at the stop says so,
    and the resumed run plays it first (`settle`), at the same step, from the same agent (the
    checkpoint is of the step it came due at) and from its own seed, as the uninterrupted run did.
    """

    def __init__(self, *, logger: Logger, run_dir: Path, env_cfg, seed: int, rng: np.random.Generator,
                 total_steps: int, eval_every: int, eval_episodes: int, checkpoint_every: int,
                 log_every: int, video_every: int = 0, checkpoint_minutes: float = 0.0,
                 guard: str = "stop"):
        self.logger = logger
        self.run_dir = Path(run_dir)
        self.env_cfg = env_cfg
        self.eval_seed = 10_000 + 1_000 * seed  # far from the training seeds
        self.rng = rng
        self.total_steps = total_steps
        self.eval_every = eval_every
        self.eval_episodes = eval_episodes
        self.checkpoint_every = checkpoint_every
        self.checkpoint_seconds = 60.0 * checkpoint_minutes
        self.log_every = max(1, log_every)
        self.video_every = video_every
        self.guard = guard
        self.save: Callable[[int, str], Path] | None = None
        self.save_best: Callable[[int], Path] | None = None
        self.stop_signal: int | None = None  # set by a signal handler: finish the step, then stop
        self.start = time.perf_counter()
        self.last_save = self.start
        self.eval_time = 0.0  # excluded from SPS
        self.time_before = 0.0  # training time of the run's earlier pieces (resume)
        self._last = {"log": 0, "eval": 0, "checkpoint": 0, "video": 0}
        self._recent: list[float] = []
        self.last_eval: tuple[np.ndarray, np.ndarray] | None = None
        self.history: list[dict] = []  # (step, eval mean) for every evaluation
        self.best: dict | None = None  # the history entry of the best evaluation so far
        self.resumed: list[dict] = []  # one entry per resume: step, whether episodes restarted
        self.warned: set[str] = set()
        # What a stop cut short, to play at the resume: {"eval": step, "video": [step, name]}.
        self.owed: dict = {}
        # The loop's summary fields once its run() has returned at the end (then only the final
        # evaluation and checkpoint are left: a run stopped during them resumes to those alone).
        self.ended: dict | None = None

    @property
    def stopping(self) -> bool:
        return self.stop_signal is not None

    def episodes(self, step: int, finished: list[tuple[float, int]]) -> None:
        for ret, length in finished:
            self.logger.scalars({"charts/episodic_return": ret, "charts/episodic_length": length}, step)
            self._recent = (self._recent + [ret])[-20:]

    def _due(self, what: str, every: int, step: int) -> bool:
        """Whether `step` crossed a multiple of `every` since `what` last came due. While `every` is
        0 (off) nothing is owed: a cadence turned on at resume starts at the next multiple rather
        than catching up at once on the marks passed while it was off."""
        if every <= 0:
            self._last[what] = step
            return False
        if step // every > self._last[what] // every:
            self._last[what] = step
            return True
        return False

    def metrics(self, step: int, metrics: dict, prefix: str = "losses/") -> None:
        """Check the agent's update output against the guard, and log it when a logging interval
        has passed (logging every update would cost a sync each)."""
        log = self._due("log", self.log_every, step)
        # On a GPU the check is a sync: there it runs when the metrics are logged (a sync anyway).
        if log or not any(isinstance(v, torch.Tensor) and v.device.type != "cpu" for v in metrics.values()):
            self.check_finite(step, metrics, prefix)
        if log:
            self.logger.scalars(metrics, step, prefix)

    def logs_at(self, step: int) -> bool:
        """Whether `metrics` at `step` would log them (asked without changing anything)."""
        return step // self.log_every > self._last["log"] // self.log_every

    def check_finite(self, step: int, metrics: dict, prefix: str = "losses/") -> None:
        """`guard=stop` raises NonFiniteError at the first non-finite value, `warn` prints one line
        per metric, `off` skips the check. Cheap when all is well: one sum, one read."""
        judged = {name: value for name, value in metrics.items() if name not in UNDEFINED_AT_TIMES}
        if self.guard == "off" or not judged:
            return
        values = list(judged.values())
        if all(isinstance(v, torch.Tensor) and v.dim() == 0 for v in values):
            total = torch.stack(values).sum()  # scalars, the common case: two kernels, one read
        else:
            total = 0.0
            for value in values:
                total = total + (value.detach().sum() if isinstance(value, torch.Tensor) else value)
        if math.isfinite(float(total)):  # a sum of finite values may still overflow: then look closer
            return
        for name, value in judged.items():
            finite = bool(torch.isfinite(value).all()) if isinstance(value, torch.Tensor) else math.isfinite(value)
            if not finite:
                self.non_finite(step, f"{prefix}{name}")

    def non_finite(self, step: int, metric: str) -> None:
        if self.guard == "stop":
            raise NonFiniteError(step, metric)
        if self.guard == "warn" and metric not in self.warned:
            self.warned.add(metric)
            self.logger.write(f"deeprl | warning: non-finite {metric} at step {step} (guard=warn: training goes on)")

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
        if self._due("video", self.video_every, step):
            self.video(step, agent)
        if step < self.total_steps and (self._due("checkpoint", self.checkpoint_every, step) or self._clock_due()):
            # A stop pending writes this step's checkpoint as it stops: not twice (an Atari replay
            # is gigabytes, and a cluster's grace before SIGKILL short).
            if not self.stopping:
                self.checkpoint(step)

    def reached(self, step: int) -> None:
        """The end of the run: the final evaluation and checkpoint stand for this step's."""
        self._last.update(eval=step, checkpoint=step)

    def tick_sweep(self, count: int) -> None:
        """For loops that count sweeps or dataset steps rather than training steps (planners, FQI's
        collection): only the checkpoint cadence applies."""
        if (self._due("checkpoint", self.checkpoint_every, count) or self._clock_due()) and not self.stopping:
            self.checkpoint(count)

    def _clock_due(self) -> bool:
        return self.checkpoint_seconds > 0 and time.perf_counter() - self.last_save >= self.checkpoint_seconds

    def checkpoint(self, step: int, name: str | None = None) -> Path | None:
        """Write the whole run to checkpoints/<name> (default step_<step>.pt) through `save`."""
        if self.save is None:
            return None
        path = self.save(step, name or f"step_{step}.pt")
        self.last_save = time.perf_counter()
        return path

    def video(self, step: int, agent, name: str | None = None) -> list:
        """One greedy episode recorded to <run dir>/videos/<name>-episode-0.mp4, by default
        step_<N>-episode-0.mp4 (time excluded from SPS). [] when a stop signal came first or cut it
        short: then it is owed."""
        name = name or f"step_{step}"
        videos = self._cut_short(lambda: record_video(agent, self.env_cfg, 1, self.eval_seed, self.run_dir / "videos",
                                                      name, stopped=lambda: self.stopping))
        if videos is None:
            self.owed["video"] = [step, name]
            return []
        return videos

    def final_video(self, step: int, agent) -> None:
        """For the loops that learn from sweeps or iterations rather than env steps (planners, FQI),
        where `video.every` steps never come round: the final greedy policy, as videos/final-episode-0.mp4."""
        if self.video_every > 0:
            self.video(step, agent, name="final")

    def _cut_short(self, play: Callable):
        """`play()`'s result, or None if a stop signal came before it or during it; the time it
        took is excluded from SPS."""
        if self.stopping:
            return None
        t0 = time.perf_counter()
        try:
            return play()
        except EvaluationCut:
            return None
        finally:
            self.eval_time += time.perf_counter() - t0

    def settle(self, agent) -> None:
        """At a resume: play what the stop cut short (`owed`), in the order the run plays them."""
        owed, self.owed = self.owed, {}
        if "eval" in owed:
            self.evaluate(owed["eval"], agent)
        if "video" in owed:
            step, name = owed["video"]
            self.video(step, agent, name)

    def sps(self, step: int) -> float:
        return step / max(self.train_time(), 1e-9)

    def train_time(self) -> float:
        """Seconds spent training (evaluation and videos excluded), over every piece of the run."""
        return self.time_before + time.perf_counter() - self.start - self.eval_time

    def evaluate(self, step: int, agent, final: bool = False) -> tuple[np.ndarray, np.ndarray] | None:
        """None when a stop signal came first or cut it short: it is then owed, unless `final`
        (the run's final evaluation, which a resumed run plays in any case)."""
        shown = functools.partial(self.logger.evaluating, episodes=self.eval_episodes)
        try:
            result = self._cut_short(lambda: evaluate(agent, self.env_cfg, self.eval_episodes, self.eval_seed,
                                                      stopped=lambda: self.stopping, progress=shown))
        finally:
            self.logger.evaluated()
        if result is None:
            if not final:
                self.owed["eval"] = step
            return None
        returns, lengths = result
        self.logger.scalars({"eval/episodic_return": returns.mean(),
                             "eval/episodic_length": lengths.mean()}, step)
        self.last_eval = (returns, lengths)
        self.history.append({"step": step, "train_time_s": self.train_time(),
                             "eval_return_mean": float(returns.mean())})
        self._keep_best(step)
        return returns, lengths

    def _keep_best(self, step: int) -> None:
        """After an evaluation: if its mean return beats every earlier one (the first always does;
        a tie keeps the earlier), note it and write checkpoints/best.pt of the run at this step."""
        latest = self.history[-1]
        if self.best is not None and not latest["eval_return_mean"] > self.best["eval_return_mean"]:
            return
        self.best = dict(latest)
        if self.save_best is not None:
            self.save_best(step)

    # Checkpoints ---------------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {"last": dict(self._last), "recent": list(self._recent), "history": list(self.history),
                "train_time": self.train_time(), "resumed": list(self.resumed),
                "last_eval": self.last_eval, "owed": dict(self.owed), "ended": self.ended, "best": self.best}

    def load_state_dict(self, state: dict) -> None:
        self._last = dict(state["last"])
        self._recent = list(state["recent"])
        self.history = list(state["history"])
        self.resumed = list(state["resumed"])
        self.last_eval = state["last_eval"]
        self.owed = dict(state.get("owed", {}))  # absent from checkpoints older than it
        self.ended = state.get("ended")
        # Absent from checkpoints older than it: the best of the evaluations they hold.
        self.best = state["best"] if "best" in state else max(
            self.history, key=lambda e: e["eval_return_mean"], default=None)
        self.time_before = float(state["train_time"])
        self.start = self.last_save = time.perf_counter()
        self.eval_time = 0.0
