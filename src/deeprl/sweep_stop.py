"""How a sweep stops (`train -m`, then Ctrl-C or SIGTERM): every job running on this machine
writes its checkpoint, a queued job that starts afterwards stops before its run is built, and the
sweep ends with one line saying how to go on.

The sweep's own process relays a stop signal to the processes that run its jobs here
(`stops_relayed`), writes a `STOPPING` note in the sweep dir that a job about to start reads
(`stopped_with`), and waits until no job here holds its dir (`wait_for_jobs`). A joblib worker
survives a signal that reaches it between runs (`worker_started`), and one stopped on its own hands
the stop to the others (`others_stopped`). docs/sweeps.md says what a user sees.
"""

import contextlib
import functools
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from deeprl.core.interrupt import SIGNALS as STOP_SIGNALS
from deeprl.core.interrupt import note_pending, stop_at_once
from deeprl.core.run_dir import LOCK, in_use_by

# loky, the process pool behind Hydra's joblib launcher, runs a resource tracker process. When Ctrl-C
# has stopped a sweep it can report a semaphore of a stopped worker as leaked, then fail to remove
# it because it is already gone: four lines of its internals under the sweep's one line. Seen under
# load, once in many runs. That process takes its warning filters from the environment.
LOKY_TRACKER_QUIET = "ignore::UserWarning:joblib.externals.loky.backend.resource_tracker"


def quiet_loky_tracker(environ=os.environ) -> None:
    """Add LOKY_TRACKER_QUIET to PYTHONWARNINGS (after any the user set), once."""
    filters = [f for f in environ.get("PYTHONWARNINGS", "").split(",") if f]
    if LOKY_TRACKER_QUIET not in filters:
        environ["PYTHONWARNINGS"] = ",".join([*filters, LOKY_TRACKER_QUIET])


class Relayed:
    """The stop signal the sweep's own process took and handed to the processes running its jobs (`stops_relayed`)."""

    signum: int | None = None
    here: bool = False  # this process is the sweep's own (its jobs may run here: the basic launcher)
    handlers: dict = {}  # the relay, by the signals it takes (`relay_again`)


# In a sweep dir once a signal stopped the sweep: a job that has not begun its run does not begin it
# (a Ray task or a submitit job still queued when the signal came). It holds the signal's number,
# and is removed when the next sweep there starts.
STOPPING = ".stopping"


class RayJobStopped(BaseException):
    """A job of a stopped Ray sweep, as its Ray task reports its stop. Raised as SystemExit
    (RunStopped), Ray takes it for a crashed worker and runs the job again, up to three times; as an
    Exception, Hydra takes it for a failed job and prints so. The sweep gets it as a RayTaskError."""


def job_holders(sweep_dir: Path) -> list[tuple[Path, str]]:
    """The job (or seed) dirs of a sweep that a process holds now, with the holder ("pid N on HOST")."""
    held = ((lock.parent, in_use_by(lock.parent)) for lock in Path(sweep_dir).glob(f"*/**/{LOCK}"))
    return [(job_dir, holder) for job_dir, holder in held if holder is not None]  # not the sweep dir's own


def holder_process(holder: str) -> tuple[int, str] | None:
    """(pid, host) from a holder's note "pid N on HOST"; None for "another process" (not written yet)."""
    words = holder.split()
    if len(words) == 4 and words[0] == "pid" and words[1].isdigit() and words[2] == "on":
        return int(words[1]), words[3]
    return None


def local_pid(holder: str) -> int | None:
    """The pid in a holder's note if that process runs on this machine and is not this one, else None."""
    process = holder_process(holder)
    if process is None or process[1] != socket.gethostname() or process[0] == os.getpid():
        return None
    return process[0]


@contextlib.contextmanager
def stops_relayed(current_sweep_dir: Callable[[], Path | None]):
    """Ctrl-C or SIGTERM, taken by the sweep's own process, is handed to the processes that run its
    jobs on this machine: its multiprocessing children (loky's workers) and every process holding
    one of its job dirs (a Ray task, a submitit job). Their runs checkpoint and stop as on a signal
    of their own, a job still queued does not start (`STOPPING`), and the sweep waits for them and
    ends with its one line (`wait_for_jobs`).

    Before, a signal sent to the sweep's process alone (`kill <pid>`, a process manager) ended it at
    once and left its joblib workers or submitit jobs training on, unseen, to the end of their jobs.
    A terminal's Ctrl-C, which reaches every process of the group, raised KeyboardInterrupt in the
    sweep at once: joblib then killed its workers (SIGKILL) while they were still writing their
    checkpoints, and one of two jobs lost everything since its last one; Ray's workers, in process
    groups of their own, never saw it and ended with the sweep without a checkpoint. Sent to the
    whole group, a worker gets the signal twice: a sweep job's run takes the second as the same
    request (`deeprl.run.SAME_REQUEST_S`). With no job running on this machine (the basic launcher
    runs its jobs in this process, whose runs take the signal themselves; SLURM's run elsewhere) the
    sweep stops at once, as before. A second signal stops the sweep's process at once. A signal that
    is ignored (a script's background job) stays ignored. A library that puts its own handler in
    meanwhile (`ray.init`: SIGTERM) is undone by `relay_again` (hydra_plugins.deeprl_ray).
    `current_sweep_dir()` gives the sweep's dir when a signal comes (None before Hydra has made it)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def relay(signum, frame):
        if Relayed.signum is not None:
            stop_at_once(signum)
            return
        stop_jobs(signum, current_sweep_dir())  # here, where a second signal comes back in and stops at once
        # For SIGTERM too (Relayed.signum tells them apart): Ray's wait for its jobs takes only a
        # KeyboardInterrupt from a handler; a SystemExit there ended the sweep with exit 1 and no word.
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, relay) for sig in STOP_SIGNALS if signal.getsignal(sig) is not signal.SIG_IGN}
    Relayed.here, Relayed.handlers = True, dict.fromkeys(previous, relay)
    try:
        yield
    finally:
        Relayed.handlers = {}
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def spare_submitit_controllers(launcher_target: str) -> None:
    """With submitit's local executor, start each job's controller process with SIGINT blocked.

    submitit starts one controller per job, in the sweep's process group, and the controller starts
    the job. A terminal's Ctrl-C reached every controller too: each printed a KeyboardInterrupt
    traceback under the sweep's last line and killed its job (SIGINT again, then SIGKILL a second
    later), which could cut a large checkpoint short. A controller that inherits a blocked SIGINT
    never sees it; its job inherits the block as well and lifts it as it starts (`deeprl.sweep.job`,
    as for Ray's workers, which block it themselves), so the job still takes the Ctrl-C and the
    sweep's relay. submitit's `start_controller` is wrapped for the sweep's process; were it gone
    from a later submitit, nothing is wrapped and Ctrl-C behaves as before (docs/sweeps.md)."""
    if not launcher_target.endswith("submitit_launcher.LocalLauncher"):
        return
    try:
        from submitit.local import local
    except ImportError:
        return
    start = getattr(local, "start_controller", None)
    if start is None or getattr(start, "sigint_blocked", False):
        return

    @functools.wraps(start)
    def start_controller(*args, **kwargs):
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            return start(*args, **kwargs)
        finally:  # a Ctrl-C that came meanwhile is delivered here, to the sweep's relay
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    start_controller.sigint_blocked = True
    local.start_controller = start_controller


def relay_again() -> None:
    """Put the relay back in place of handlers a library installed meanwhile (`ray.init`)."""
    for sig, handler in Relayed.handlers.items():
        signal.signal(sig, handler)


def stop_jobs(signum: int, sweep_dir: Path | None) -> None:
    """Hand `signum` to the processes running the sweep's jobs on this machine and wait for them
    (`stops_relayed`)."""
    Relayed.signum = signum
    pids = {worker.pid for worker in multiprocessing.active_children()}
    # Ray reports each stopped job's RayJobStopped that Hydra's launcher never collects (it stops
    # at the first) as an unhandled error, with its traceback.
    os.environ["RAY_IGNORE_UNHANDLED_ERRORS"] = "1"
    pids = signal_jobs(sweep_dir, signum, pids)
    if pids and sweep_dir is not None:
        wait_for_jobs(sweep_dir)
    elif sweep_dir is not None:  # nothing here to wait for: a cluster's jobs still to start are not stopped
        with contextlib.suppress(OSError):
            (sweep_dir / STOPPING).unlink(missing_ok=True)


def note_stopping(sweep_dir: Path, signum: int) -> None:
    """The sweep's `STOPPING` note: a job that starts, or holds its dir, from now on stops at once."""
    with contextlib.suppress(OSError):  # a full disk: the running jobs are still stopped
        (sweep_dir / STOPPING).write_text(f"{signum}\n")


def signal_jobs(sweep_dir: Path | None, signum: int, pids: set[int]) -> set[int]:
    """Write the sweep's `STOPPING` note, then hand `signum` to `pids` and to every other process on
    this machine holding one of its job dirs; returns the processes signalled."""
    if sweep_dir is not None and sweep_dir.is_dir():
        note_stopping(sweep_dir, signum)  # first: a job holding its dir after the look below sees it
        pids = pids | {pid for _, holder in job_holders(sweep_dir) if (pid := local_pid(holder)) is not None}
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)
    return pids


def wait_for_jobs(sweep_dir: Path) -> None:
    """Wait until no process on this machine holds one of the sweep's job dirs: each job stopped
    by a relayed signal has written its checkpoint. `STOPPING` stays until the next sweep there
    starts: Ray can still hand a queued job to a worker until this process has ended."""
    deadline = time.monotonic() + OTHERS_STOP_WITHIN_S
    while time.monotonic() < deadline and any(local_pid(holder) for _, holder in job_holders(sweep_dir)):
        time.sleep(0.1)


def elsewhere(sweep_dir: Path) -> list[str]:
    """The hosts of the processes on other machines that hold the sweep's job dirs (a cluster's jobs)."""
    hosts = {process[1] for _, holder in job_holders(sweep_dir) if (process := holder_process(holder)) is not None}
    return sorted(hosts - {socket.gethostname()})


def worker_started() -> None:
    """loky's initializer for a sweep's worker processes. A stop signal that reaches a worker with no
    run going (it has no job, or its job's run is still being built) is noted (`Pending`), not the
    end of the worker: joblib takes a worker that ended for a broken pool and kills the others at
    once, jobs still writing their checkpoints among them. The next run there stops at its first step."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, note_pending)


def stop_safe_workers() -> None:
    """Make joblib's `loky` backend (the default of Hydra's joblib launcher) start its workers with
    `worker_started`. Hydra passes the launcher's settings to joblib, not an initializer; joblib's
    own registry of backends is how one is given."""
    from joblib import register_parallel_backend
    from joblib._parallel_backends import LokyBackend

    class StopSafeLoky(LokyBackend):
        def configure(self, *args, **kwargs):
            kwargs.setdefault("initializer", worker_started)
            return super().configure(*args, **kwargs)

    register_parallel_backend("loky", StopSafeLoky)


# The longest a stopped job waits for the others to write their checkpoints (`others_stopped`).
OTHERS_STOP_WITHIN_S = 600.0


def others_stopped(sweep_dir: Path, signum: int) -> None:
    """In a joblib worker, after this job stopped on a signal: wait until no other job of the sweep
    holds its run dir, i.e. every job stopped at the same moment has written its checkpoint. joblib
    kills every worker (SIGKILL) once the first job comes back stopped; an Atari replay takes a
    while to write. Not in other launchers: their jobs are other processes' or other machines'.

    A signal that reached this worker alone (`kill <its pid>`; the sweep wrote no `STOPPING`) stops
    the sweep too, as the sweep could not go on without this job: the note is written and the other
    jobs here are handed the signal, as `stop_jobs` does for a signal to the sweep, so each writes
    its checkpoint now. Before, this job waited the whole `OTHERS_STOP_WITHIN_S` for jobs that
    trained on, and joblib then killed them without one."""
    if multiprocessing.parent_process() is None:
        return
    if stopped_with(sweep_dir) is None:
        signal_jobs(sweep_dir, signum, set())
    wait_for_jobs(sweep_dir)


def stopped_with(sweep_dir: Path | None) -> int | None:
    """The signal that stopped the sweep in `sweep_dir` (its `STOPPING` note), or None."""
    if sweep_dir is None:
        return None
    try:
        return int((sweep_dir / STOPPING).read_text())
    except FileNotFoundError:  # the sweep goes on
        return None
    except (OSError, ValueError):  # there, but being written: read as SIGTERM
        return int(signal.SIGTERM)


def in_ray_task() -> bool:
    """Whether this process runs a Ray task now (a job of a Ray sweep)."""
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized() and ray.get_runtime_context().get_task_id() is not None
