"""Checkpoint files: atomic writes, reading one back, finding a run's latest readable one.

A run's checkpoints live in `<run dir>/checkpoints/`: `step_N.pt` (periodic, wall-clock and
signal checkpoints; the newest `checkpoint.keep` are kept) and `final.pt` (the end of the run).
Each holds the whole run (see deeprl.run.Run.state_dict), so any of them can be resumed from.
`best.pt` (`checkpoint.best`) is the run at its best evaluation, less the replay buffer: for
`evaluate` and `init_from`; a resume never picks it (`latest`).
"""

import functools
import json
import os
import re
import tempfile
import zipfile
from pathlib import Path

from deeprl.core.console import say
from deeprl.core.errors import ConfigError

STEP_FILE = re.compile(r"^step_(\d+)\.pt$")
FINAL = "final.pt"
BEST = "best.pt"


def save_atomic(obj, path: str | os.PathLike, write=None) -> Path:
    """Write `obj` (torch.save, or `write(obj, binary file)`) to a temporary file in the same
    directory, then rename over `path`.

    A crash mid-write leaves the previous file intact, never a truncated one.
    """
    if write is None:
        import torch  # here, not at the top: `train`'s bad-input path reads this module without torch

        write = torch.save
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp makes the file private (0600); give it the mode a plain open() would (umask).
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as f:
            write(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@functools.cache
def current_umask() -> int:
    """The process's umask, read once (setting it to read it is not thread-safe, so not per write)."""
    try:
        with open("/proc/self/status") as f:  # Linux: read without changing it
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """A text file (summary.json, a table, a preset) written the same all-or-nothing way."""
    return save_atomic(text.encode(), path, write=lambda data, f: f.write(data))


def write_json_atomic(path: str | os.PathLike, data: dict) -> Path:
    return write_text_atomic(path, json.dumps(data, indent=2))


def load(path: str | os.PathLike, map_location="cpu", mmap: bool = False) -> dict:
    """Read a checkpoint. Checkpoints hold numpy RNG state and plain dicts besides tensors.

    `mmap=True` maps tensor storage from the file instead of reading it (a replay buffer of
    gigabytes is then paged in only as it is copied into place)."""
    import torch

    return torch.load(path, map_location=map_location, weights_only=False, mmap=mmap)


class UnreadableCheckpoint(ValueError):
    """A checkpoint file that cannot be used; the message is one line saying why."""


def read(path: str | os.PathLike, *keys: str) -> dict:
    """A checkpoint's contents, read to the CPU with tensors mapped (not read) from the file.
    Raises UnreadableCheckpoint, with a one-line reason, when the file does not read back (truncated,
    corrupt, not a torch file) or is not a deeprl run checkpoint holding `keys`."""
    if not zipfile.is_zipfile(path):  # torch's own message for this one speaks of mmap
        raise UnreadableCheckpoint("not a torch checkpoint file (truncated, or another kind of file)")
    try:
        state = load(path, mmap=True)
    except Exception as error:  # noqa: BLE001 - torch raises many kinds for a bad file; all mean unreadable
        text = str(error).strip()
        first = text.splitlines()[0].split(". ")[0] if text else type(error).__name__
        raise UnreadableCheckpoint(f"corrupt ({first[:160]})") from error
    missing = [key for key in keys if not (isinstance(state, dict) and key in state)]
    if missing:
        what = "loop state" if "loop" in missing else ", ".join(f"'{key}'" for key in missing)
        raise UnreadableCheckpoint(f"not a deeprl run checkpoint (no {what})")
    return state


def check_agent_state(agent, saved: dict, key: str) -> None:
    """Raise ConfigError(key) when the networks in a checkpoint's agent state do not fit `agent`
    (parameter names or shapes differ: written by a deeprl version with another network layout).
    Checked before anything is loaded or written, so a refused resume leaves the run as it was."""
    import torch

    for name, value in agent.state_dict().items():
        if not (isinstance(value, dict) and value and all(isinstance(v, torch.Tensor) for v in value.values())):
            continue  # not a module's parameters (an optimizer, a counter, a generator)
        if layout_difference(value, saved.get(name)) is not None:
            raise ConfigError(key, f"the checkpoint's '{name}' network does not fit this agent's layout (written "
                                   "by another deeprl version); use that version to resume or evaluate it, "
                                   "or start a new run")


def layout_difference(mine, theirs) -> str | None:
    """How a saved network's parameters (or a table) differ in names or shapes from this agent's;
    None when they fit."""
    def shapes(value):
        if isinstance(value, dict):
            return {k: tuple(getattr(v, "shape", ())) for k, v in value.items()}
        return {"": tuple(getattr(value, "shape", ()))}

    if theirs is None:
        return "is missing"
    here, there = shapes(mine), shapes(theirs)
    for k in [*here, *(k for k in there if k not in here)]:  # in the network's own order
        if here.get(k) != there.get(k):
            what = f"{k} " if k else ""
            if k not in there:
                return f"has no {k}"
            if k not in here:
                return f"has {k}, which this run's has not"
            return f"{what}is {list(there[k])} there and {list(here[k])} here"
    return None


def step_files(folder: Path) -> list[tuple[int, Path]]:
    """(step, path) of the `step_N.pt` files in `folder`, oldest first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := STEP_FILE.match(p.name))]
    return sorted(found)


def resumable(folder: Path) -> list[Path]:
    """The checkpoints in `folder` a resume may go on from: its step_N.pt files and final.pt."""
    return [path for _, path in step_files(folder)] + [folder / FINAL] * (folder / FINAL).is_file()


def last_written(folder: Path) -> Path | None:
    """The resumable checkpoint written last, for a message; None if there is none."""
    return max(resumable(folder), key=lambda path: path.stat().st_mtime, default=None)


def prune(folder: Path, keep: int) -> None:
    """Delete all but the newest `keep` step_N.pt files (keep = 0 keeps all)."""
    if keep > 0:
        for _, path in step_files(folder)[:-keep]:
            path.unlink(missing_ok=True)


def latest(folder: Path) -> tuple[Path, dict] | None:
    """The newest checkpoint in `folder` that reads back, with its contents (tensors mapped, not
    read). Newest = highest step; `final.pt` counts at the step it records. An unreadable file
    (truncated, corrupt, not a run checkpoint) is skipped with a warning and the next is tried."""
    candidates = list(reversed(resumable(folder)))  # final.pt first, then step files newest first
    readable = []
    for path in candidates:
        try:
            state = read(path, "loop", "step")
        except UnreadableCheckpoint as error:  # try the previous one
            say(f"deeprl | warning: skipping unreadable checkpoint {path}: {error}", err=True)
            continue
        readable.append((int(state["step"]), path, state))
        # step files are newest first: once one reads, only final.pt (checked first) could beat it.
        if path.name != FINAL:
            break
    if not readable:
        return None
    _, path, state = max(readable, key=lambda item: (item[0], item[1].name == FINAL))
    return path, state
