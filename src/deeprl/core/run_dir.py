"""A single run's dir: claimed before Hydra writes into it, and cleaned up after a run that
never started, removing what the run made and nothing else (a user's `hydra.run.dir=.` or an
earlier run's dir keeps everything it held)."""

import shutil
from dataclasses import dataclass
from pathlib import Path

from deeprl.core.errors import ConfigError

# What a run writes into its dir; a dir holding any of these holds a run.
RUN_ENTRIES = (".hydra", "checkpoints", "summary.json", "train.log")


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
    path = path.expanduser().resolve()
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
            if any((run_dir / "checkpoints").glob("*.pt")):
                fix = f"go on with it (train resume={run_dir}) or give this run a new dir (hydra.run.dir=<dir>)"
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
