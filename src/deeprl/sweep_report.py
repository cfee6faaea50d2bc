"""What a sweep (`train -m`) reports at its end: the jobs that failed during it (and a non-zero
exit), where to compare the jobs that a launcher ran elsewhere, and after an Optuna search the best
parameters as a conf/tuned-style preset. One job of a sweep is deeprl.sweep.
"""

import sys
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from deeprl import GENERIC_ENVS
from deeprl.core.checkpoint import write_text_atomic
from deeprl.core.console import ERROR_PREFIX, plural, say, shell
from deeprl.core.errors import ConfigError
from deeprl.core.hydra_errors import config_composed
from deeprl.core.run_dir import Claim, as_found, hold, release
from deeprl.sweep import FAILED, applied_presets, config_file
from deeprl.sweep_stop import STOPPING, spare_submitit_controllers


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
