"""Sweeps (`train -m`): one job of a sweep, and what the sweep reports at its end.

A job of a sweep differs from a single run in three ways:
- It never ends the sweep. A bad hyperparameter, a crash or the numerical guard fails this job
  only: one line naming its overrides, the reason in `<job dir>/failed.txt`, NaN as its score
  (an Optuna search records the trial as failed), and the other jobs go on. At the end,
  `SweepReport` lists the failed jobs and the sweep exits non-zero. Ctrl-C still stops the sweep
  (deeprl.sweep_stop).
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
import sys
import threading
import traceback
from pathlib import Path

import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict

from deeprl import GENERIC_ENVS, usable_cores
from deeprl.conf import CONF_DIR, base_env, env_configs, named_env_config
from deeprl.core.checkpoint import latest, write_json_atomic, write_text_atomic
from deeprl.core.console import ERROR_PREFIX, plural, say, shell
from deeprl.core.errors import ConfigError
from deeprl.core.hydra_errors import config_composed
from deeprl.core.interrupt import SIGNALS as STOP_SIGNALS
from deeprl.core.interrupt import Pending, note_pending
from deeprl.core.run_dir import Claim, as_found, hold, release
from deeprl.sweep_stop import (
    STOPPING,
    RayJobStopped,
    Relayed,
    in_ray_task,
    others_stopped,
    spare_submitit_controllers,
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
    from deeprl.run import RunStopped  # here: Hydra imports this module (SweepReport) for every run

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


# The end of a sweep -------------------------------------------------------------------------


class SweepReport(Callback):
    """Registered in conf/config.yaml as a Hydra callback. At the end of a sweep, lists the jobs
    that failed during it and exits non-zero if any did; after an Optuna search, prints the best
    parameters and writes them as `best_tuned.yaml`, ready to copy to conf/tuned/<algo>_<env>.yaml."""

    sweep_dir: Path | None = None  # this process's sweep, once Hydra has composed its config
    found: Claim | None = None  # the sweep dir as it was before the sweep (to clean up after one that never ran)
    no_result: str | None = None  # a search whose study has no complete trial: why there is no best (the sweeper says)

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        SweepReport.sweep_dir = Path(config.hydra.sweep.dir)
        # What an earlier sweep into this dir left: its jobs and failures are not this sweep's.
        self.before = written(SweepReport.sweep_dir)
        SweepReport.found = as_found(SweepReport.sweep_dir)
        SweepReport.no_result = None
        try:  # held until the sweep ends: the same sweep started again meanwhile is refused
            SweepReport.sweep_dir.mkdir(parents=True, exist_ok=True)
            hold(SweepReport.sweep_dir, "hydra.sweep.dir", "a sweep still running there")
            (SweepReport.sweep_dir / STOPPING).unlink(missing_ok=True)  # left by a stopped sweep
        except OSError as error:
            refuse(ConfigError("hydra.sweep.dir", f"{SweepReport.sweep_dir} cannot be created ({error.strerror}); "
                                                  "give a dir that can be"))
        except ConfigError as error:
            refuse(error)
        config_composed(run=False)
        spare_submitit_controllers(str(OmegaConf.select(config, "hydra.launcher._target_", default="")))

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        release(sweep_dir)
        results = sweep_dir / "optimization_results.yaml"
        if results.is_file():
            best = OmegaConf.load(results)
            tuned = write_tuned(sweep_dir, dict(best.best_params), float(best.best_value), config)
            print(f"deeprl | best value {float(best.best_value):.2f} with {dict(best.best_params)}; "
                  f"as a preset: {tuned}", flush=True)
        now = written(sweep_dir)
        new = {path for path, stamp in now.items() if getattr(self, "before", {}).get(path) != stamp}
        failures = [(path.parent, path.read_text().strip()) for path in sorted(new) if path.name == FAILED]
        jobs = [d for d in job_dirs(sweep_dir) if d / ".hydra" / "hydra.yaml" in new]
        if jobs and not failures and not results.is_file():
            # A launcher that runs jobs elsewhere (submitit, Ray) leaves their result lines in their
            # own logs: say here that the sweep is done and how to read it.
            print(f"deeprl | sweep done: {plural(len(jobs), 'job')} in {sweep_dir}; compare them: "
                  f"compare {shell(sweep_dir)}", flush=True)
        if failures:
            print(f"deeprl: error: {len(failures)} of {max(len(jobs), len(failures))} jobs failed:",
                  file=sys.stderr)
            for path, reason in failures:
                print(f"  {path.name}: {reason}", file=sys.stderr)
        if SweepReport.no_result:
            print(SweepReport.no_result, file=sys.stderr)
        if failures or SweepReport.no_result:
            sys.exit(1)


def refuse(error: ConfigError) -> None:
    """A sweep that cannot start: one line, exit 2."""
    say(f"{ERROR_PREFIX}{error}", err=True, log_it=False)
    sys.exit(2)


def written(sweep_dir: Path) -> dict[Path, tuple[int, int]]:
    """The failure notes and job configs in a sweep dir, each with what tells one write of it from
    the next (inode, modification time in ns): a job that runs again deletes its note and Hydra
    writes its config anew. Compared with a copy taken at the start, rather than file times with
    the clock, a sweep started right after another into the same dir, or whose jobs ran on machines
    whose clocks differ, counts only its own jobs."""
    found = {}
    for path in [*sweep_dir.rglob(FAILED), *sweep_dir.rglob(".hydra/hydra.yaml")]:
        try:
            stat = path.stat()
        except OSError:  # gone meanwhile
            continue
        found[path] = (stat.st_ino, stat.st_mtime_ns)
    return found


def job_dirs(sweep_dir: Path) -> list[Path]:
    """The sweep's job dirs: dirs with a `.hydra/hydra.yaml`, not counting a job's seed runs."""
    dirs = sorted(p.parent.parent for p in sweep_dir.rglob(".hydra/hydra.yaml"))
    return [d for d in dirs if not any(parent in dirs for parent in d.parents)]


def write_tuned(sweep_dir: Path, params: dict, value: float, config: DictConfig) -> Path:
    """The best parameters as a `# @package _global_` preset: the (algo, env) pair's current tuned
    preset with the best values put in, so that it can replace that preset as it is (a family's
    preset, conf/tuned/family/, still applies under it)."""
    algo = OmegaConf.select(config, "hydra.runtime.choices.algo") or "algo"
    env = OmegaConf.select(config, "hydra.runtime.choices.env") or "env"
    sources = OmegaConf.select(config, "hydra.runtime.config_sources")
    current = config_file(sources, "tuned", f"{algo}_{env}")
    tree = OmegaConf.load(current[0]) if current else OmegaConf.create({})
    for key, val in params.items():
        OmegaConf.update(tree, key, val, merge=False, force_add=True)
    objective_kind = OmegaConf.select(config, "optimize.objective")
    seeds = OmegaConf.select(config, "optimize.seeds")
    presets = applied_presets(OmegaConf.select(config, "hydra.runtime") or {})
    base = f"{' and '.join(presets)} with" if presets else "the defaults with"
    if current and not current[1].startswith("pkg://"):
        target = current[1]
    else:  # beside the env's config: conf/ for deeprl's own envs, the folder of an env config of one's own
        env_file = config_file(sources, "env", env)
        folder = Path(env_file[1]).parent.parent if env_file and not env_file[1].startswith("pkg://") else "conf"
        target = f"{folder}/tuned/{algo}_{env}.yaml"
    use = f"# Copy to {target} to make it the default for algo={algo} env={env}.\n"
    key = GENERIC_ENVS.get(env)
    if key is not None:  # a preset for env=gym would apply to every id: the searched one needs a config of its own
        searched = OmegaConf.select(config, f"env.{key}")
        use = (f"# env={env} takes any {key}: to make it the default for {searched}, give {searched} an env config "
               f"of its own (conf/env/<name>.yaml) and copy this to conf/tuned/{algo}_<name>.yaml.\n")
    header = (f"# @package _global_\n# Best of the Optuna search in {sweep_dir}: {objective_kind} = {value:.2f} "
              f"(mean over {seeds} seed(s), total_steps={OmegaConf.select(config, 'total_steps')}).\n# {base} {', '.join(sorted(params))} from the search.\n"
              + use)
    return write_text_atomic(sweep_dir / "best_tuned.yaml", header + OmegaConf.to_yaml(tree))


def _load_list(path: Path) -> list[str]:
    return list(yaml.safe_load(path.read_text()) or []) if path.is_file() else []
