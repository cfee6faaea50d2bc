"""Sweeps (`train -m`): one job of a sweep (what the sweep reports at its end: deeprl.sweep_report).

A job of a sweep differs from a single run in three ways:
- It never ends the sweep. A bad hyperparameter, a crash or the numerical guard fails this job
  only: one line naming its overrides, the reason in `<job dir>/failed.txt`, NaN as its score
  (an Optuna search records the trial as failed), and the other jobs go on. At the end,
  `sweep_report.SweepReport` lists the failed jobs and the sweep exits non-zero. Ctrl-C still
  stops the sweep (deeprl.sweep_stop).
- It picks up where it left off. A job dir that already holds a checkpoint (a cluster job that was
  preempted and requeued, or a sweep started again into the same `hydra.sweep.dir`) resumes from
  it; a finished one returns its score without training again.
- It returns a score for a search: `optimize.objective` over `optimize.seeds` seeds.

Torch threads are capped so that the jobs a launcher runs side by side do not share out more
threads than the machine has cores (`threads_cap`).
"""

import json
import math
import shutil
import signal
import threading
import traceback
from pathlib import Path

import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf, open_dict

from deeprl import GENERIC_ENVS, usable_cores
from deeprl.conf import CONF_DIR, base_env, env_configs, named_env_config
from deeprl.core.checkpoint import latest, write_json_atomic
from deeprl.core.console import say
from deeprl.core.errors import ConfigError
from deeprl.core.interrupt import SIGNALS as STOP_SIGNALS
from deeprl.core.interrupt import Pending, note_pending
from deeprl.core.run_dir import hold, release
from deeprl.sweep_stop import (
    RayJobStopped,
    Relayed,
    in_ray_task,
    others_stopped,
    stopped_with,
)

TUNED_DIR = CONF_DIR / "tuned"
FAILED = "failed.txt"
TRIAL = "trial.json"
GUARD_EXIT = 3  # RunStopped's code when the numerical guard stops a run
# Scores -------------------------------------------------------------------------------------


def objective(summary: dict, kind: str) -> float:
    """A finished run's score: its final evaluation, or the mean of all its evaluations."""
    if kind == "mean_eval" and summary.get("evaluations"):
        values = [e["eval_return_mean"] for e in summary["evaluations"]]
        return float(sum(values) / len(values))
    return float(summary["eval_return_mean"])


# Threads ------------------------------------------------------------------------------------


def threads_cap(launcher: DictConfig, machine_cores: int) -> int | None:
    """Torch threads one job may use so that the jobs running at once fit in the cores: cores
    divided by joblib's parallel jobs, or the CPUs a Ray task or a submitit job is given.
    None when the launcher runs one job at a time (basic) or is unknown."""
    target = str(launcher.get("_target_", ""))
    if "joblib" in target:
        n_jobs = int(launcher.get("n_jobs", -1))
        # joblib: -1 is one job per core, -2 all cores but one, ...
        parallel = max(1, machine_cores + 1 + n_jobs) if n_jobs < 0 else max(1, n_jobs)
        parallel = min(parallel, machine_cores)
        return max(1, machine_cores // parallel)
    if "ray" in target.lower():
        cpus = OmegaConf.select(launcher, "ray.remote.num_cpus")
        return max(1, int(cpus)) if cpus else 1
    if "submitit" in target:
        cpus = launcher.get("cpus_per_task")
        return max(1, int(cpus)) if cpus else None
    return None


def cap_threads(cfg: DictConfig, cap: int | None) -> str | None:
    """Lower `threads` to the cap (0 means torch's default: all cores); a note when it changed."""
    if cap is None or 0 < int(cfg.threads) <= cap:
        return None
    before = "torch's default" if int(cfg.threads) == 0 else str(cfg.threads)
    with open_dict(cfg):
        cfg.threads = cap
    return f"threads {before} -> {cap} so that the parallel jobs fit in {usable_cores()} cores"


# One job ------------------------------------------------------------------------------------


def composed_from() -> str:
    """What the running Hydra job's config was composed from, for the start banner: the `algo=`
    choice (a variant such as rainbow_lite runs algo.name dqn) and the tuned preset that applied,
    or that the pair has none and runs on the config groups' defaults."""
    hydra_cfg = HydraConfig.get()
    choices = hydra_cfg.runtime.choices
    presets = applied_presets(hydra_cfg.runtime)
    if presets:
        recipe = f"algo={choices.get('algo')} with {' and '.join(presets)}"
    else:
        recipe = f"algo={choices.get('algo')}, no tuned preset for env={choices.get('env')}"
    return recipe + replaced_task(str(choices.get("env")), list(hydra_cfg.overrides.task))


def applied_presets(runtime) -> list[str]:
    """The tuned presets a composition took, in the order they apply, by label: the one its
    algo and env families share (conf/tuned/family/), then the pair's own (conf/tuned/). `runtime`
    is the job's hydra.runtime: its choices, and its config sources, searched in Hydra's order, so
    that a preset of one's own beside an env config of one's own (`hydra.searchpath=[file://myconf]`,
    myconf/tuned/<algo>_<env>.yaml) is named too."""
    choices = runtime.get("choices") or {}
    pair = choices.get("tuned") or f"{choices.get('algo')}_{choices.get('env')}"
    found = []
    for group, name in (("tuned/family", choices.get("tuned/family")), ("tuned", pair)):
        if name:
            found += [preset[1] for preset in [config_file(runtime.get("config_sources"), group, name)] if preset]
    return found


def config_file(sources, group: str, name: str) -> tuple[Path, str] | None:
    """The file Hydra took `group/name` from, as (path, label), trying `sources` (hydra.runtime's
    config_sources) in order: deeprl's own conf/ (label conf/<group>/<name>.yaml), a folder on the
    search path (its path), a package on it (pkg://...). Without sources: deeprl's own conf/."""
    relative = f"{group}/{name}.yaml"
    for source in sources if sources is not None else [{"schema": "pkg", "path": "deeprl.conf"}]:
        schema, where = source.get("schema"), str(source.get("path"))
        if schema == "pkg" and where == "deeprl.conf":
            path, label = CONF_DIR / relative, f"conf/{relative}"
        elif schema == "file":
            path = Path(where) / relative
            label = str(path)
        elif schema == "pkg" and where != "hydra.conf":
            import importlib.resources

            try:
                path = Path(str(importlib.resources.files(where) / relative))
            except (ImportError, TypeError):  # a package that is gone since composition
                continue
            label = f"pkg://{where}/{relative}"
        else:
            continue
        if path.is_file():
            return path, label
    return None


def replaced_task(env: str, overrides: list[str]) -> str:
    """For the banner, when the command line gave a named env config another task (`env.id=Acrobot-v1`
    on env=cartpole, as one would write `--env Acrobot-v1` elsewhere): that config's settings and
    preset still apply, and the run dir says cartpole. Names the task's own config when it has one."""
    if env in GENERIC_ENVS:
        return ""
    for override in overrides:
        key, _, value = override.lstrip("+~").partition("=")
        if key not in ("env.id", "env.game"):
            continue
        field = key.split(".")[1]
        base = base_env(env_configs().get(env, {}))  # a game is MinAtar's or the ALE's, as the config's own
        own = named_env_config(field, value, base)
        # The generic config that takes it: env=gym an id (not of an ALE or MinAtar config), their own a game.
        generic = base if field == "game" else None if base else "gym"
        instead = (f"env={own} is {value}'s own config" if own
                   else f"env={generic} {key}={value} runs it with env={generic}'s settings" if generic else "")
        return f"; {key}={value} replaced env={env}'s task and keeps its settings" + (f" ({instead})" if instead else "")
    return ""


def job(cfg: DictConfig, job_dir: Path) -> float:
    """Run one job of a sweep (see the module docstring) and return its score (NaN if it failed)."""
    from deeprl.run import RunStopped  # here: Hydra loads this module for every run

    hydra_cfg = HydraConfig.get()
    overrides = " ".join(hydra_cfg.overrides.task)
    note = cap_threads(cfg, threads_cap(hydra_cfg.launcher, usable_cores()))
    if note:
        say(f"deeprl | {note}")
    keys = varied_keys(Path(hydra_cfg.sweep.dir), list(hydra_cfg.overrides.task))
    label = f"#{hydra_cfg.job.num}"  # on the progress bar: Hydra's number for the job in its launch list
    (job_dir / FAILED).unlink(missing_ok=True)  # from an earlier attempt at this job
    sweep_dir = Path(hydra_cfg.sweep.dir)
    previous, mask = {}, None
    if not Relayed.here and threading.current_thread() is threading.main_thread():
        # A Ray task or a submitit job: a stop that the sweep relays before this job's run has its
        # handlers in is noted, and the run stops at its first step, as in a joblib worker. Ray's
        # workers block SIGINT, and a submitit job inherits the block from its controller
        # (sweep_stop.spare_submitit_controllers): it is let through while the job runs.
        previous = {sig: signal.signal(sig, note_pending) for sig in STOP_SIGNALS
                    if signal.getsignal(sig) is not signal.SIG_IGN}
        mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, previous)
    try:
        seeds = int(cfg.optimize.seeds)
        if seeds == 1:
            scores = [run_or_resume(cfg, job_dir, keys, label, sweep_dir)]
        else:
            scores = []
            for i in range(seeds):
                seed_cfg = cfg.copy()
                with open_dict(seed_cfg):
                    seed_cfg.seed = int(cfg.seed) + i
                scores.append(run_or_resume(seed_cfg, seed_dir(job_dir, int(seed_cfg.seed)), keys,
                                            f"{label} seed {seed_cfg.seed}", sweep_dir))
        score = float(sum(scores) / len(scores))
    except RunStopped as stop:
        if stop.code != GUARD_EXIT:  # a signal: the user stops the whole sweep
            others_stopped(sweep_dir, stop.code - 128)
            if in_ray_task() and stopped_with(sweep_dir) is not None:  # the sweep stops
                raise RayJobStopped(f"stopped by {signal.Signals(stop.code - 128).name}") from None
            raise  # a Ray worker stopped on its own (kill <its pid>): Ray runs the job again, and it resumes
        return failed(job_dir, overrides, getattr(stop, "reason", "the numerical guard stopped it"))
    except ConfigError as error:
        return failed(job_dir, overrides, str(error))
    except Exception as error:  # a crash in this job must not take the sweep down
        traceback.print_exc()
        return failed(job_dir, overrides, f"{type(error).__name__}: {error}")
    finally:
        if mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    write_json_atomic(job_dir / TRIAL, {"score": score, "objective": str(cfg.optimize.objective),
                                 "seeds": len(scores), "scores": scores, "overrides": overrides})
    return score


def run_or_resume(cfg: DictConfig, run_dir: Path, hparam_keys: list[str], label: str = "",
                  sweep_dir: Path | None = None) -> float:
    """Train `cfg` in `run_dir`, going on from its checkpoint if it has one; return its score.
    `label` names the job on its progress bar. Raises RunStopped, before anything is made, when a
    stop signal is pending in this process or the sweep (`sweep_dir`) is stopping."""
    from deeprl.run import RunStopped

    run_dir.mkdir(parents=True, exist_ok=True)
    hold(run_dir, "hydra.sweep.dir")  # the same sweep started twice: one of them trains each run
    try:
        # Looked at once the dir is held: a sweep stopped before then signals no process for it.
        signum = Pending.signum or stopped_with(sweep_dir)
        if signum is not None:
            raise RunStopped(128 + int(signum))
        return _run_or_resume(cfg, run_dir, hparam_keys, label)
    finally:
        release(run_dir)


def _run_or_resume(cfg: DictConfig, run_dir: Path, hparam_keys: list[str], label: str) -> float:
    from deeprl.build import build

    kind = str(cfg.optimize.objective)
    summary_file = run_dir / "summary.json"
    found = latest(run_dir / "checkpoints")
    if summary_file.is_file() and found is not None and found[0].name == "final.pt":
        say(f"deeprl | already finished: {run_dir}")
        return objective(json.loads(summary_file.read_text()), kind)
    if found is not None:
        path, state = found
        say(f"deeprl | going on from {path}")
        saved = OmegaConf.create(state["config"])
        with open_dict(saved):
            saved.threads = cfg.threads
        run = build(saved, run_dir, resume_from=state)
    else:
        run = build(cfg, run_dir)
    # A job that goes on from its checkpoint was composed from the same overrides: the same choices.
    run.hparam_keys, run.label, run.composed_from, run.sweep_job = hparam_keys, label, composed_from(), True
    return objective(run.execute(), kind)


def seed_dir(job_dir: Path, seed: int) -> Path:
    """`<job dir>/seed_<n>/`, a run dir of its own, with the job's `.hydra/` files for its seed so
    that `compare` and TensorBoard see an ordinary run."""
    run_dir = job_dir / f"seed_{seed}"
    src, dst = job_dir / ".hydra", run_dir / ".hydra"
    if src.is_dir() and not dst.is_dir():
        dst.mkdir(parents=True)
        for name in ("config.yaml", "hydra.yaml"):
            if (src / name).is_file():
                shutil.copy2(src / name, dst / name)
        if (dst / "config.yaml").is_file():
            config = OmegaConf.load(dst / "config.yaml")
            config.seed = seed
            OmegaConf.save(config, dst / "config.yaml")
        overrides = [o for o in _load_list(src / "overrides.yaml") if not o.startswith("seed=")]
        (dst / "overrides.yaml").write_text(yaml.safe_dump([*overrides, f"seed={seed}"]))
    return run_dir


def failed(job_dir: Path, overrides: str, reason: str) -> float:
    line = reason.strip().splitlines()[0] if reason.strip() else "failed"
    job_dir.mkdir(parents=True, exist_ok=True)
    (job_dir / FAILED).write_text(line + "\n")
    say(f"deeprl: error: job {overrides or '(no overrides)'} failed: {line}", err=True)
    return math.nan


def varied_keys(sweep_dir: Path, job_overrides: list[str]) -> list[str]:
    """The keys a sweep varies (for TensorBoard's HParams tab): those given as a sweep on the
    command line (`a=1,2`, `range(...)`, `interval(...)`) and a search's parameters, read from
    the sweep's multirun.yaml; this job's own override keys when that is not there."""
    parser = OverridesParser.create()
    keys: list[str] = []
    multirun = sweep_dir / "multirun.yaml"
    if multirun.is_file():
        saved = OmegaConf.load(multirun)
        task = list(OmegaConf.select(saved, "hydra.overrides.task") or [])
        keys = [o.key_or_group for o in parser.parse_overrides(task) if o.is_sweep_override()]
        params = OmegaConf.select(saved, "hydra.sweeper.params")
        if params:
            keys += [str(k) for k in params]
    else:
        keys = [o.key_or_group for o in parser.parse_overrides(job_overrides)]
    keys = [k.lstrip("+~") for k in keys if not k.lstrip("+~").startswith("hydra")]
    return sorted(set(keys) | {"algo.name", "env.id", "seed"})


def _load_list(path: Path) -> list[str]:
    return list(yaml.safe_load(path.read_text()) or []) if path.is_file() else []
