"""A built run: start or resume it, stop it cleanly on a signal, save all of it, summarise it.

One checkpoint holds the whole run (`Run.state_dict`): the agent, the loop (step, observations,
episode tracker, replay or rollout buffer, the envs where they can be saved), the session's
bookkeeping, every random stream, and the config the run was going by. Resuming from it
continues as if the run had never stopped.
"""

import contextlib
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from deeprl import versions
from deeprl.core.checkpoint import (
    BEST,
    last_written,
    prune,
    save_atomic,
    step_files,
    write_json_atomic,
)
from deeprl.core.console import plural, say, shell
from deeprl.core.device import keep_freed_memory
from deeprl.core.errors import ConfigError, WriteFailed, refused_writes, write_failure
from deeprl.core.interrupt import Pending, stop_at_once
from deeprl.core.seeding import rng_state, set_rng_state
from deeprl.logging import Logger
from deeprl.loops.session import NonFiniteError, Session

FORMAT = 1
SIGNAL_NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}
# A job scheduler's "save and go" signals (submitit: USR2 before a time limit or on preemption).
# Handled only when the scheduler has hooked them: the run writes its checkpoint first, then hands
# the signal to the scheduler's handler, which requeues the job; the requeued job resumes.
HANDOFF_SIGNALS = {signal.SIGUSR1: "SIGUSR1", signal.SIGUSR2: "SIGUSR2"}
# In a sweep's job, the same signal again this soon is the same request, not the second that stops
# at once: the sweep hands its workers the signal a terminal or a cluster may also have sent them
# (sweep_stop.stops_relayed).
SAME_REQUEST_S = 1.0


class RunStopped(SystemExit):
    """The run stopped early (a signal, or the numerical guard); `code` is the process exit code."""


@dataclass
class Run:
    cfg: DictConfig
    run_dir: Path
    device: torch.device
    rng: np.random.Generator
    envs: object
    spec: object
    agent: object
    loop: object
    session: Session
    saved_config: str  # the config as composed (autos unresolved), YAML, for resume
    resume_from: dict | None = None  # a checkpoint's contents to continue from
    notes: list[str] = field(default_factory=list)
    device_why: str = ""  # how `device: auto` decided, for the start banner
    hparam_keys: list[str] | None = None  # a sweep's varied keys for the HParams tab (None: all)
    label: str = ""  # the progress bar's name for the run (a sweep job: its number, as Hydra lists it)
    sweep_job: bool = False  # a job of a sweep, which may hand it a signal it got too (SAME_REQUEST_S)
    composed_from: str = ""  # for the start banner: the algo= choice and tuned preset (set by train, sweep)
    handoff: dict = field(default_factory=dict)  # signal -> the scheduler's handler to call after saving
    started_from: str = ""  # init_from: what the new run's agent starts from, for its console and log
    built_notes: list[str] = field(default_factory=list)  # what build changed, for the console and log

    # Whole-run state -----------------------------------------------------------------------

    def state_dict(self, step: int) -> dict:
        return {"format": FORMAT, "step": step, "config": self.saved_config,
                "agent": self.agent.state_dict(), "loop": self.loop.state_dict(),
                "session": self.session.state_dict(), "rng": rng_state(self.rng)}

    def load_state_dict(self, state: dict) -> None:
        self.agent.load_state_dict(state["agent"])
        self.loop.load_state_dict(state["loop"])
        self.session.load_state_dict(state["session"])
        # Last: building the loop and agent above drew from the streams.
        set_rng_state(self.rng, state["rng"])

    def save(self, step: int, name: str) -> Path:
        """Checkpoint the whole run to checkpoints/<name>; keeps the newest `checkpoint.keep` step files."""
        state = self._checked_state(step)
        buffer = getattr(self.loop, "buffer", None)
        with_buffer = buffer is not None and state["loop"].get("buffer") is not None
        if with_buffer:
            size = buffer.saved_nbytes
            if size >= 256 << 20 or self.spec.obs_dtype == np.uint8:
                amount = f"{size / 2**30:.2f} GiB" if size >= 1 << 30 else f"{size / 2**20:.0f} MiB"
                self.session.logger.write(f"deeprl | checkpoint at step {step}: writing the replay buffer "
                                          f"({amount}; checkpoint.buffer=false skips it)")
        # What the run logged up to this step is on disk before the checkpoint: a run killed later
        # and resumed from it has no gap in its curves.
        self.session.logger.flush()
        lighter = "add checkpoint.buffer=false for checkpoints without the replay buffer" if with_buffer else ""
        path = self._write(state, name, step, hint=lighter)
        prune(self.run_dir / "checkpoints", int(self.cfg.checkpoint.keep))
        return path

    def save_best(self, step: int) -> Path:
        """checkpoints/best.pt: the whole run at its best evaluation so far, less the replay buffer
        (a best.pt of an Atari run stays the size of its networks). `evaluate`, `init_from` and
        `deeprl.load` read it as any checkpoint; `train resume=` goes on from the latest one, never
        from best.pt."""
        saves_buffer = self.loop.save_buffer
        self.loop.save_buffer = False
        try:
            state = self._checked_state(step)
        finally:
            self.loop.save_buffer = saves_buffer
        return self._write(state, BEST, step, hint="add checkpoint.best=false to keep no best.pt")

    def _checked_state(self, step: int) -> dict:
        """The run's state at `step`, after the guard has seen its parameters: never overwrite a good
        checkpoint with a broken one (guard=stop ends the run here, the last good one kept)."""
        state = self.state_dict(step)
        bad = non_finite_tensor(state["agent"])
        if bad is not None:
            self.session.non_finite(step, f"parameter {bad}")
        return state

    def _write(self, state: dict, name: str, step: int, hint: str) -> Path:
        """checkpoints/<name>, atomically; a write the OS refuses stops the run in one line."""
        path = self.run_dir / "checkpoints" / name
        with refused_writes(lambda reason: self._cannot_write(path, step, reason, hint=hint)):
            return save_atomic(state, path)

    def _cannot_write(self, path: Path, step: int, reason: str, key: str = "checkpoint", hint: str = "") -> ConfigError:
        """One line for a checkpoint or summary the run cannot write: what stopped, what is kept, what
        to do. Nothing half-written is left (save_atomic) and no older checkpoint was pruned."""
        kept = last_written(self.run_dir / "checkpoints")
        then = (f"the last checkpoint is {kept}; make room, then: train resume={shell(self.run_dir.resolve())}"
                if kept is not None else "no checkpoint was written before it; make room and run it again")
        return ConfigError(key, f"cannot write {path} at step {step}: {reason}; training stopped and {then}"
                                + (f" ({hint})" if hint else ""))

    # Running -------------------------------------------------------------------------------

    def execute(self) -> dict:
        """Train (or go on training) to total_steps, evaluate, write final.pt and summary.json.
        A file the run cannot write (a full disk, a quota) stops it with one ConfigError line."""
        try:
            return self._execute()
        except WriteFailed as error:  # a video: what stopped, what is kept, what to do
            raise self._cannot_write(error.path, self.loop.step, error.reason, key=error.key,
                                     hint="add video.every=0 to record no more videos") from None
        except ConfigError:
            raise
        except Exception as error:  # e.g. TensorBoard's event file
            if (reason := write_failure(error)) is None:
                raise
            where = Path(getattr(error, "filename", None) or self.run_dir)
            raise self._cannot_write(where, self.loop.step, reason, key="run dir") from None

    def _execute(self) -> dict:
        cfg, run_dir, session = self.cfg, self.run_dir, self.session
        if cfg.threads > 0:
            torch.set_num_threads(int(cfg.threads))
        keep_freed_memory()
        start_step = int(self.resume_from["step"]) if self.resume_from else 0
        verb = f"resuming at step {start_step}" if self.resume_from else "run dir"
        device = f"{self.device} ({self.device_why})" if self.device_why else str(self.device)
        recipe = f" | {self.composed_from}" if self.composed_from else ""
        say(f"deeprl | {cfg.algo.name} on {cfg.env.id}{recipe} | seed {cfg.seed} | device {device} | "
            f"{verb} {run_dir} | view: tensorboard --logdir {shell(run_dir)}")
        logger = None
        try:
            # The handlers go in before anything is written: a scheduler's USR1/USR2 that arrives
            # once the run dir has files must find the run ready to checkpoint, not requeue it
            # from scratch through the scheduler's own handler.
            with stop_on_signals(session, SAME_REQUEST_S if self.sweep_job else 0.0) as self.handoff:
                session.logger = logger = Logger(run_dir, int(cfg.total_steps), progress=bool(cfg.log.progress),
                                                 start_step=start_step, desc=self.label or None)
                session.save = self.save
                if cfg.checkpoint.get("best", False):
                    session.save_best = self.save_best
                for note in self.built_notes:
                    logger.write(f"deeprl | note: {note}")
                if self.resume_from:
                    saved_total = int(OmegaConf.create(self.resume_from["config"]).total_steps)
                    self.load_state_dict(self.resume_from)
                    self.resume_from = None  # the mapped checkpoint is no longer needed
                    self.notes = list(self.loop.notes) + extended_note(saved_total, int(cfg.total_steps))
                    session.resumed.append({"step": start_step, "notes": self.notes})
                    for note in self.notes:
                        logger.write(f"deeprl | note: {note}")
                    if saved_total != int(cfg.total_steps):
                        session.ended = None  # extended: the loop goes on
                    session.settle(self.agent)  # what the stop cut short
                else:
                    logger.config(cfg)
                    if self.started_from:
                        logger.write(f"deeprl | note: {self.started_from}")
                    self.loop.start()
                try:
                    # A loop may return extra summary fields (e.g. a planner's sweeps and convergence).
                    # One stopped during the final evaluation or video has run already: not again
                    # (a planner's or tabular loop's report at its end).
                    extra = self.loop.run() if session.ended is None else session.ended
                    if session.stopping:
                        self._stop_on_signal()
                    summary = self._finish(extra)
                except NonFiniteError as error:
                    self._stop_non_finite(error)
        finally:
            stopping = sys.exc_info()[1]
            try:
                if logger is not None:
                    logger.close()
            except Exception as error:
                # The event file could not be flushed either: the run's stop says what it could not write, once.
                if stopping is None or write_failure(error) is None:
                    raise
            finally:
                self.envs.close()
        if summary["best_eval_return_mean"] > summary["eval_return_mean"] and cfg.checkpoint.get("best", False):
            # The run scored higher before its end than at it (a DQN that collapses late).
            say(f"deeprl | best evaluation: {summary['best_eval_return_mean']:.1f} at step {summary['best_eval_step']} "
                f"-> {run_dir / 'checkpoints' / BEST} (evaluate it again with --episodes 100 before quoting it)")
        work = (f"{plural(summary['sweeps'], 'sweep')} in {summary['wall_time_s']:.1f} s" if "sweeps" in summary else
                f"{summary['steps']} steps in {summary['wall_time_s']:.1f} s ({summary['sps']:.0f} steps/s)")
        say(f"deeprl | eval return {summary['eval_return_mean']:.1f} ± {summary['eval_return_std']:.1f} "
            f"over {plural(summary['eval_episodes'], 'episode')} | {work} | {run_dir}")
        return summary

    def _finish(self, extra: dict | None) -> dict:
        cfg, session = self.cfg, self.session
        train_time = session.train_time()
        # The final evaluation and checkpoint stand at the step the loop ended at, so a resume
        # purges nothing it will not log again. Planners count sweeps, not steps.
        steps = getattr(self.loop, "end_step", int(cfg.total_steps))
        if session.ended is None:
            session.ended = dict(extra or {})
            if getattr(self.loop, "VIDEO_AT_END", False):
                session.final_video(self.loop.step, self.agent)  # cut short by a stop: owed
        session.reached(steps)  # a run resumed to go further counts its intervals from here
        evaluated = session.evaluate(steps, self.agent, final=True)
        if evaluated is None:  # a stop signal came: the resumed run evaluates, from this checkpoint
            self._stop_on_signal()
        returns, _ = evaluated
        session.checkpoint(steps, "final.pt")
        summary = {
            "algo": cfg.algo.name, "env": cfg.env.id, "seed": int(cfg.seed), "device": str(self.device),
            "total_steps": int(cfg.total_steps), "steps": steps, "wall_time_s": round(train_time, 3),
            "sps": round(steps / max(train_time, 1e-9), 1),
            "eval_return_mean": float(returns.mean()), "eval_return_std": float(returns.std()),
            "eval_episodes": len(returns), "evaluations": session.history, "resumed": session.resumed,
            # The best evaluation (checkpoints/best.pt with checkpoint.best): chosen as the highest
            # of noisy means, so it reads high; `evaluate <run dir>/checkpoints/best.pt --episodes 100`.
            "best_eval_step": session.best["step"], "best_eval_return_mean": session.best["eval_return_mean"],
            "threads": torch.get_num_threads(),
            **(extra or {}),
            # What the piece that finished the run ran on: float rounding differs between CPUs
            # (AVX2, AVX-512, AMX) and library versions, and a chaotic learner follows it.
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "versions": versions(),
        }
        with refused_writes(lambda reason: self._cannot_write(self.run_dir / "summary.json", steps, reason,
                                                              key="summary")):
            write_json_atomic(self.run_dir / "summary.json", summary)
        evals = [e["eval_return_mean"] for e in session.history] or [summary["eval_return_mean"]]
        session.logger.hparams(cfg, {"hparams/eval_return_mean": summary["eval_return_mean"],
                                     "hparams/mean_eval_return": float(np.mean(evals)),
                                     "hparams/best_eval_return": summary["best_eval_return_mean"]},
                               steps, keys=self.hparam_keys)
        return summary

    def _stop_on_signal(self) -> None:
        session = self.session
        step = self.loop.step
        path = session.checkpoint(step)
        session.logger.close()
        signum = session.stop_signal
        name = SIGNAL_NAMES.get(signum) or HANDOFF_SIGNALS.get(signum, f"signal {signum}")
        say(f"\ndeeprl | stopped by {name} at step {step}; checkpoint {path}\n"
            f"deeprl | resume with: train resume={shell(self.run_dir.resolve())}", err=True)
        scheduler = self.handoff.get(signum)
        if scheduler is not None:
            scheduler(signum, None)  # e.g. submitit: requeue this job (it exits the process)
        raise RunStopped(128 + int(signum))

    def _stop_non_finite(self, error: NonFiniteError) -> None:
        self.session.logger.close()
        files = step_files(self.run_dir / "checkpoints")
        kept = f"the last good checkpoint is {files[-1][1]}" if files else "no checkpoint was written before it"
        reason = f"guard: non-finite {error.metric} at step {error.step}"
        say(f"deeprl: error: {reason}; training stopped and {kept}; lower the learning rate (or set "
            "guard=warn to go on)", err=True)
        stopped = RunStopped(3)
        stopped.reason = reason
        raise stopped


def extended_note(saved_total: int, total: int) -> list[str]:
    """The note for a run resumed with another total_steps: what is scheduled over total_steps
    follows the new total from the step it goes on at (as SB3's learn(reset_num_timesteps=False)
    does), so epsilon or the learning rate can step back up at the resume."""
    if total == saved_total:
        return []
    return [f"total_steps was {saved_total}, now {total}: what is scheduled over total_steps (epsilon "
            f"decay, learning-rate annealing, prioritized replay's beta) follows {total} steps from here, "
            f"as in a run started with total_steps={total}"]


@contextlib.contextmanager
def stop_on_signals(session: Session, same_request_s: float = 0.0):
    """SIGINT (Ctrl-C) and SIGTERM ask the run to stop after the current step (an evaluation or
    video under way stops at its next step: the resumed run plays it); a second one stops at once.
    So do USR1/USR2 when a job scheduler has hooked them; the context's value maps those to the
    scheduler's handlers, for the run to call once its checkpoint is written. Handlers are only
    installed from the main thread, and restored afterwards. The same signal again within
    `same_request_s` of the first is the same request (a sweep's job); one a sweep's worker took
    before the run had its handlers (`Pending`) is taken at once."""
    if threading.current_thread() is not threading.main_thread():
        yield {}
        return

    first_at = [0.0]

    def handler(signum, frame):
        if session.stop_signal is not None:
            if signum == session.stop_signal and time.monotonic() - first_at[0] < same_request_s:
                return
            stop_at_once(signum)
            return
        session.stop_signal, first_at[0] = signum, time.monotonic()
        name = SIGNAL_NAMES.get(signum) or HANDOFF_SIGNALS.get(signum, signum)
        # Not logged from a signal handler (it could interrupt a write to the same log file); the
        # run logs its stop once the checkpoint is written.
        say(f"\ndeeprl | {name}: finishing this step and writing a checkpoint "
            "(send it again to stop at once)", err=True, log_it=False)

    hooked = [sig for sig in HANDOFF_SIGNALS if callable(signal.getsignal(sig))]
    previous = {sig: signal.signal(sig, handler) for sig in [*SIGNAL_NAMES, *hooked]}
    if Pending.signum is not None:  # a sweep's worker took it before this run had its handlers
        handler(Pending.signum, None)
    try:
        yield {sig: previous[sig] for sig in hooked}
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def non_finite_tensor(tree, prefix: str = "") -> str | None:
    """The path of the first floating-point tensor in a nested state dict with a NaN or inf."""
    if isinstance(tree, torch.Tensor):
        if tree.is_floating_point() and not bool(torch.isfinite(tree).all()):
            return prefix or "tensor"
        return None
    if isinstance(tree, np.ndarray):
        if np.issubdtype(tree.dtype, np.floating) and not np.isfinite(tree).all():
            return prefix or "array"
        return None
    if isinstance(tree, dict):
        for key, value in tree.items():
            found = non_finite_tensor(value, f"{prefix}.{key}" if prefix else str(key))
            if found:
                return found
    return None
