"""Reading runs: find run dirs, load their scalars from TensorBoard event files, their
summary.json and .hydra/ files. Shared by `compare` and anything else that reads finished runs.

A run dir is any directory holding event files (`events.out.tfevents.*`) directly; a job dir with a
`failed.txt` is a failed sweep job (deeprl.sweep), skipped with everything under it.
"""

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from deeprl.core.checkpoint import BEST, latest
from deeprl.core.console import plural, shell
from deeprl.core.errors import ConfigError
from deeprl.core.run_dir import in_use_by

TAG = "eval/episodic_return"
EVENTS = "events.out.tfevents."


@dataclass
class Run:
    path: Path
    steps: np.ndarray  # environment steps at which the tag was logged, increasing
    values: np.ndarray
    final: float  # the run's final score
    total_steps: float
    wall_time_s: float  # nan when the run has no summary.json
    seed: int | None
    overrides: list[str] | None  # .hydra/overrides.yaml, None without one
    config: DictConfig | None  # .hydra/config.yaml
    summary: dict | None


# ---------------------------------------------------------------------------------------------
# Finding and reading runs


def discover(paths: list[Path],
             skip: Path | None = None) -> tuple[list[Path], list[tuple[Path, str]]]:
    """(run dirs, [(failed job dir, its reason)]) under `paths`, recursively, sorted.

    A run dir holds event files directly; a dir with a failed.txt is a failed job, skipped
    whether or not it has events, with everything under it. Hidden dirs (.hydra) and `skip`
    (compare's own output) are not searched.
    """
    runs, failed = set(), {}
    for path in paths:
        if not path.exists():
            raise ConfigError(str(path), "no such file or directory; pass run dirs or sweep dirs")
        if not path.is_dir():
            raise ConfigError(str(path), "not a directory; pass run dirs or sweep dirs")
        for root, dirs, files in os.walk(path):
            root_path = Path(root)
            dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                             and (skip is None or (root_path / d).resolve() != skip))
            if "failed.txt" in files:
                lines = (root_path / "failed.txt").read_text(errors="replace").strip().splitlines()
                failed[root_path] = lines[0] if lines else "failed"
                dirs[:] = []  # its seed_<n>/ runs too: the job as a whole failed
            elif any(f.startswith(EVENTS) for f in files):
                runs.add(root_path)
    return sorted(runs), sorted(failed.items())


def runs_below(path: Path) -> list[Path]:
    """Run dirs with checkpoints strictly below `path` (a sweep's jobs, a search job's seed_<n>/),
    sorted; not searched below a run dir."""
    found = []
    for root, dirs, _ in os.walk(path):
        root_path = Path(root)
        if root_path != path and (root_path / "checkpoints").is_dir():
            found.append(root_path)
            dirs[:] = []
        else:
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "checkpoints")
    return sorted(found)


def pointer(path: Path, command: str) -> str | None:
    """What to pass instead of `path`, which is not a run dir: the run dirs below it, or the run dir
    of a checkpoint file; None when there is neither. `command` is written right before the path
    it advises ("evaluate ", "train resume=")."""
    if path.is_file() and path.suffix == ".pt" and path.parent.name == "checkpoints":
        return f"{path} is a checkpoint file; pass its run dir: {command}{shell(path.parent.parent)}"
    if path.is_dir() and path.name == "checkpoints":
        return f"{path} is a run's checkpoints folder; pass its run dir: {command}{shell(path.parent)}"
    below = runs_below(path) if path.is_dir() else []
    if not below:
        return None
    if len(below) == 1:
        return f"{path} is not a run dir but holds one; pass it: {command}{shell(below[0])}"
    newest = max(below, key=lambda run: (run / "checkpoints").stat().st_mtime)
    return (f"{path} is not a run dir but holds {plural(len(below), 'run')}; "
            f"pass one of them, e.g. the newest: {command}{shell(newest)}")


def locate(path: Path, command: str = "evaluate ", then: str = "evaluate it then") -> tuple[Path, Path, bool]:
    """(run dir, checkpoint file, whether it is the newest checkpoint of a run that has not finished)
    from either of them: a run dir gives its final.pt, or else its newest checkpoint. `command` is
    written before the path the errors advise instead (a sweep dir: one of its runs); `then` ends
    the advice for a run still training before its first checkpoint."""
    if not path.exists():
        raise ConfigError("path", f"{path}: no such file or directory; pass a run dir or a .pt file")
    if path.is_dir():
        checkpoint = path / "checkpoints" / "final.pt"
        run_dir = path
        if not checkpoint.is_file() and (found := latest(path / "checkpoints")):
            # a run that stopped early (signal, time limit) or is still going: its newest checkpoint
            return run_dir, found[0], True
    else:
        checkpoint = path
        run_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    config = run_dir / ".hydra" / "config.yaml"
    if not checkpoint.is_file():
        if path.is_dir() and (instead := pointer(path, command)):
            raise ConfigError("path", instead)
        if not (path.is_dir() and config.is_file()):
            raise ConfigError("checkpoint", f"no checkpoint at {checkpoint}; pass a run dir or a .pt file")
        best = path / "checkpoints" / BEST  # written at an evaluation, before any checkpoint to resume from
        best = f"{command}{shell(best)}" if best.is_file() else None
        if holder := in_use_by(path):
            saved = OmegaConf.load(config).checkpoint
            when = " or ".join([f"every {saved.every} steps"] * (saved.every > 0)
                               + [f"every {saved.every_minutes} minutes"] * (saved.every_minutes > 0)) or "at its end"
            now = f", or its best evaluation so far now: {best}" if best else ""
            raise ConfigError("checkpoint", f"{path} has no checkpoint yet: its run is still training ({holder}) and "
                                            f"writes one {when}; {then}{now}")
        if best:
            raise ConfigError("checkpoint", f"{path} has no final or step checkpoint: its run ended before writing "
                                            f"one (or they were removed); its best evaluation is kept: {best}")
        raise ConfigError("checkpoint", f"{path} has no checkpoint: its run ended before writing one (or they "
                                        "were removed); pass another run")
    return run_dir, checkpoint, False


def run_config(run_dir: Path) -> DictConfig:
    """The config a run dir's run was made with (.hydra/config.yaml), or ConfigError(run_dir)."""
    config = run_dir / ".hydra" / "config.yaml"
    if not config.is_file():
        raise ConfigError("run_dir", f"{run_dir} has no .hydra/config.yaml; pass a run dir made by `train`")
    return OmegaConf.load(config)


def hydra_dir(run_dir: Path) -> Path | None:
    """The run's .hydra/: in the run dir, or in its parent for per-seed subdirs of one job."""
    for d in (run_dir, run_dir.parent):
        if (d / ".hydra").is_dir():
            return d / ".hydra"
    return None


def read_scalars(run_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{tag: (steps, values)} of every scalar in the run dir's event files (last value per step)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    scalars = {}
    for tag in acc.Tags()["scalars"]:
        by_step = {e.step: e.value for e in acc.Scalars(tag)}  # a resumed run may repeat a step
        steps = np.array(sorted(by_step), dtype=np.int64)
        scalars[tag] = steps, np.array([by_step[s] for s in steps], dtype=np.float64)
    return scalars


def load_run(run_dir: Path, tag: str, scalars: dict | None = None) -> Run | None:
    """The run's curve of `tag` and what summary.json and .hydra/ say; None if it lacks the tag."""
    scalars = read_scalars(run_dir) if scalars is None else scalars
    if tag not in scalars or len(scalars[tag][0]) == 0:
        return None
    steps, values = scalars[tag]
    summary_file = run_dir / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    overrides = config = None
    hydra = hydra_dir(run_dir)
    if hydra is not None and (hydra / "overrides.yaml").is_file():
        overrides = [str(o) for o in OmegaConf.load(hydra / "overrides.yaml")]
    if hydra is not None and (hydra / "config.yaml").is_file():
        config = OmegaConf.load(hydra / "config.yaml")
    # summary.json's eval_return_mean is the final evaluation: the final score of the eval tag.
    final = summary.get("eval_return_mean") if tag == TAG else None
    seed = summary.get("seed")
    if seed is None and config is not None:
        seed = OmegaConf.select(config, "seed", default=None)
    if seed is None:
        seed = next((o.split("=", 1)[1] for o in overrides or [] if o.startswith("seed=")), None)
    return Run(path=run_dir, steps=steps, values=values,
               final=float(values[-1] if final is None else final),
               # the steps taken (a run written before summaries had them: its total_steps)
               total_steps=float(summary.get("steps", summary.get("total_steps", steps[-1]))),
               wall_time_s=float(summary.get("wall_time_s", np.nan)),
               seed=int(seed) if str(seed).lstrip("-").isdigit() else None,
               overrides=overrides, config=config, summary=summary or None)


def read_runs(paths: list[Path], tag: str, skip: Path | None = None) -> tuple[list[Run], list[str]]:
    """(runs that logged `tag`, notes on what was skipped); a ConfigError when none is left."""
    run_dirs, failed = discover(paths, skip)
    notes = []
    if failed:  # one line for them all; each job's reason is in its failed.txt
        reasons = "; ".join(dict.fromkeys(reason for _, reason in failed))
        notes.append(f"skipped {plural(len(failed), 'failed job')} ({reasons}): "
                     + ", ".join(str(d) for d, _ in failed))
    where = ", ".join(map(str, paths))
    if not run_dirs:
        failed_part = f" but {plural(len(failed), 'failed job')}" if failed else ""
        raise ConfigError(where, f"no TensorBoard event files under it{failed_part}; pass run dirs "
                                 "or sweep dirs written by `train` (outputs/... or multirun/...)")
    runs, lacking, available = [], [], set()
    for run_dir in run_dirs:
        scalars = read_scalars(run_dir)
        run = load_run(run_dir, tag, scalars)
        if run is None:
            lacking.append(str(run_dir))
            available.update(scalars)
        else:
            runs.append(run)
    if not runs:
        tags = ", ".join(sorted(available)) or "none"
        raise ConfigError("--tag", f"no run under {where} logged '{tag}' (tags there: {tags})")
    # A run stopped before its first evaluation (or during it) has checkpoints and no summary yet.
    unfinished = [d for d in lacking if not (Path(d) / "summary.json").is_file()
                  and any((Path(d) / "checkpoints").glob("step_*.pt"))]
    lacking = [d for d in lacking if d not in unfinished]
    if unfinished:
        notes.append(f"skipped {plural(len(unfinished), 'unfinished run')} without '{tag}' yet (train resume=<run "
                     f"dir> goes on with it): {', '.join(unfinished)}")
    if lacking:
        notes.append(f"skipped {plural(len(lacking), 'run')} without '{tag}': {', '.join(lacking)}")
    return runs, notes
