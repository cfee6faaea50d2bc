"""A single run's dir: claimed before Hydra writes into it, and cleaned up after a run that
never started, removing what the run made and nothing else (a user's `hydra.run.dir=.` or an
earlier run's dir keeps everything it held). While a run trains, its process holds the dir
(`hold`), so that a resume of it started meanwhile is refused instead of training into it too."""

import errno
import fcntl
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

from deeprl.core.checkpoint import resumable
from deeprl.core.console import shell
from deeprl.core.errors import ConfigError

# What a run writes into its dir; a dir holding any of these holds a run.
RUN_ENTRIES = (".hydra", "checkpoints", "summary.json", "train.log")
LOCK = ".lock"  # the file a training process holds an exclusive flock on (it names the holder)


def holds_a_run(names) -> bool:
    return any(name in RUN_ENTRIES or name.startswith("events.out.tfevents.") for name in names)


@dataclass(frozen=True)
class Claim:
    """A run's (or a sweep's) dir as this process found it, before Hydra wrote anything."""

    run_dir: Path  # resolved
    made: Path | None  # the topmost dir created for it (the dir or a parent); None: it was there
    before: frozenset[str]  # the names in the dir before the run


def as_found(path: Path) -> Claim:
    """`path` as it is now: the names in it, or, if it is not there, what creating it would make."""
    path = path.resolve()  # as Hydra takes it: a "~" in hydra.run.dir is a dir named "~"
    if path.exists():
        return Claim(path, None, frozenset(e.name for e in path.iterdir()) if path.is_dir() else frozenset())
    made = path
    while not made.parent.exists():
        made = made.parent
    return Claim(path, made, frozenset())


def claim_run_dir(run_dir: Path) -> Claim:
    """Take `run_dir` for a new run, creating it (and its parents) if it is not there. Raises a
    ConfigError, changing nothing, for a dir that already holds a run: Hydra would overwrite that
    run's .hydra/ and the two runs' logs and checkpoints would mix."""
    claim = as_found(run_dir)
    run_dir = claim.run_dir
    if claim.made is None:
        if not run_dir.is_dir():
            raise ConfigError("hydra.run.dir", f"{run_dir} is a file, not a dir; give a dir (hydra.run.dir=<dir>)")
        if holds_a_run(claim.before):
            if resumable(run_dir / "checkpoints"):
                fix = f"go on with it (train resume={shell(run_dir)}) or give this run a new dir (hydra.run.dir=<dir>)"
            else:
                fix = "it has no checkpoint to go on from; give this run a new dir (hydra.run.dir=<dir>) or remove it"
            raise ConfigError("hydra.run.dir", f"{run_dir} already holds a run; {fix}")
        return claim
    try:
        run_dir.mkdir(parents=True)
    except FileExistsError:
        raise ConfigError("hydra.run.dir", f"{run_dir} was created by another run starting at the same "
                                           "time; give each run its own dir (hydra.run.dir=<dir>)") from None
    except OSError as error:
        raise ConfigError("hydra.run.dir", f"{run_dir} cannot be created ({error.strerror}); give a dir "
                                           "that can be (hydra.run.dir=<dir>)") from None
    return claim


def discard_run_dir(run_dir: Path, claim: Claim | None) -> None:
    """Remove what a run that never started made: the dir and the parents created for it (while
    empty: another run may have put its dir beside it), or, in a dir that was there before (e.g.
    hydra.run.dir=.), only the entries the run added. A dir this process did not claim (`claim`:
    its claim, if any) is left as it is."""
    run_dir = run_dir.resolve()
    if claim is None or claim.run_dir != run_dir:
        return
    if claim.made is None:
        for entry in run_dir.iterdir():
            if entry.name not in claim.before:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
        return
    shutil.rmtree(run_dir, ignore_errors=True)
    path = run_dir
    while path != claim.made:
        path = path.parent
        try:
            path.rmdir()
        except OSError:
            break


_held: dict[Path, int] = {}  # run dir -> the descriptor of its lock file, for the dirs this process holds


def hold(run_dir: Path, key: str, what: str = "a run still training there", *, note: bool = True) -> None:
    """Hold `run_dir` for this process until `release` (or its exit, however it ends: the kernel
    drops the lock with the process, so no stale lock is ever left). Raises a ConfigError, changing
    nothing, when another process holds it (`what`: a run still training there).

    The lock is a flock on `<run dir>/.lock`, left in place (removing it would let two processes
    lock two different files); Linux's NFS client maps it to a lock all the cluster's nodes see.
    On a file system that cannot lock, the dir is not held and the run goes on as before.
    With `note`, the file names this process at once (`note_holder`); a resume, which may still be
    refused after it holds the dir, names itself only once its run starts, so a refused one leaves
    the run's files exactly as they were."""
    run_dir = run_dir.resolve()
    if run_dir in _held:
        return
    try:  # without `note` nothing is written, not even a new lock file: `note_holder` makes it then
        fd = os.open(run_dir / LOCK, os.O_RDWR | (os.O_CREAT if note else 0), 0o666)
    except OSError:
        return  # a dir this process cannot write to (the run itself will say so), or no lock file yet
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        holder = _holder(fd) if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN) else None
        os.close(fd)
        if holder is None:
            return  # no locks on this file system
        raise ConfigError(key, f"{run_dir} is in use by {what} ({holder}); wait for it to end, or stop it "
                               "(Ctrl-C, or kill -INT <pid>: it checkpoints), then run this again") from None
    _held[run_dir] = fd
    if note:
        note_holder(run_dir)


def note_holder(run_dir: Path, key: str = "resume") -> None:
    """Write into the lock file of a dir this process holds which process it is (for the message of
    a process refused by the lock); a dir that had no lock file (a run older than the lock) is held
    now, which raises a ConfigError naming `key` if another process took it meanwhile."""
    if run_dir.resolve() not in _held:
        hold(run_dir, key)
    fd = _held.get(run_dir.resolve())
    if fd is not None:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)


def _holder(fd: int) -> str:
    """Who holds a lock, from its file: "pid N on HOST", or "another process" while the holder has
    not yet written itself there (the note is then the previous holder's, whose process has ended)."""
    text = os.pread(fd, 200, 0).decode(errors="replace").strip()
    parts = text.split()
    if len(parts) == 4 and parts[0] == "pid" and parts[1].isdigit() and parts[2] == "on":
        if parts[3] != socket.gethostname():
            return text
        try:
            os.kill(int(parts[1]), 0)
            return text
        except ProcessLookupError:
            pass
        except PermissionError:  # alive, another user's
            return text
    return "another process"


def in_use_by(run_dir: Path) -> str | None:
    """Who holds `run_dir` ("pid N on HOST", see `hold`), or None when no process does (or the file
    system has no locks). Looks with a shared lock taken and dropped at once."""
    try:
        fd = os.open(Path(run_dir) / LOCK, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as error:
        return _holder(fd) if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN) else None
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def release(run_dir: Path) -> None:
    """Let go of a run dir `hold` took (nothing if this process does not hold it)."""
    fd = _held.pop(run_dir.resolve(), None)
    if fd is not None:
        os.close(fd)  # closing the last descriptor of the lock drops it


def _forget_in_child() -> None:
    """A forked child (an async env worker) gets copies of the lock descriptors: closed there, so
    that the lock ends with the process that took it and not with the last of its workers."""
    for fd in _held.values():
        os.close(fd)
    _held.clear()


os.register_at_fork(after_in_child=_forget_in_child)
