"""deeprl's Optuna sweeper (`hydra.sweeper._target_`; Hydra only takes sweepers from the
`hydra_plugins` package): Hydra's Optuna sweeper, made to continue an interrupted study to its `n_trials` in all.

The plugin's own sweeper runs `n_trials` more trials each time it starts, even on a study it
loads from storage. This one counts the trials the stored study already finished (complete or
failed) and runs only the rest; trials left running by an interrupted sweep are marked failed and
run again with fresh parameters. Run one sweep per study at a time (a second sweeper would count
the first one's running trials as interrupted).

A seeded sampler starts its random stream afresh at each start, so a continued study would draw
its first trials' parameters again (TPE's random start-up trials, a random or CMA-ES sampler's
draws) and spend its budget repeating them. A continued study's sampler is seeded from the seed and
the number of trials the study holds instead: new parameters, and the same ones each time the same
study is continued from the same point.

Before anything is made, each searched key (`hydra.sweeper.params` and the search dimensions on the
command line) is checked against the composed config: a key it lacks would fail every trial in
turn, so it is one line naming the key instead (`check_searched_keys`).
"""

import logging
import sys
from pathlib import Path
from typing import Any

try:
    from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import (
        OptunaSweeper as HydraOptunaSweeper,
    )
except ImportError:  # without the `sweep` extra there is no search, and no warning at each start
    HydraOptunaSweeper = object


class OptunaSweeper(HydraOptunaSweeper):
    def setup(self, *, hydra_context: Any, task_function: Any, config: Any) -> None:
        self.sampler_config = config.hydra.sweeper.get("sampler")
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> Any:
        import optuna  # here, not at import: Hydra imports every plugin module at each start

        plain_logs_off_a_terminal(optuna)
        impl = self.sweeper
        check_searched_keys(impl, arguments)
        mark_failed_jobs(impl.launcher)
        study = None
        storage = str(impl.storage or "")
        if storage.startswith("sqlite:///"):  # the sweep dir does not exist yet
            Path(storage[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        if impl.storage is not None and impl.study_name is not None:
            study = optuna.create_study(study_name=impl.study_name, storage=impl.storage,
                                        directions=impl._get_directions(), load_if_exists=True)
            trials = study.get_trials(deepcopy=False)
            finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL,
                        optuna.trial.TrialState.PRUNED)
            done = sum(t.state in finished for t in trials)
            stale = [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
            for trial in stale:  # this study's earlier sweep was stopped while they ran
                study._storage.set_trial_state(trial._trial_id, optuna.trial.TrialState.FAIL)
            impl.n_trials = max(0, int(impl.n_trials) - done)
            if trials:
                reseed(impl, self.sampler_config, len(trials))
            print(f"deeprl | study {impl.study_name}: {done} trial(s) done"
                  + (f", {len(stale)} interrupted (run again)" if stale else "")
                  + f", {impl.n_trials} to go", flush=True)
        try:
            return super().sweep(arguments)
        except ValueError as error:
            # Optuna's best_trial when every trial failed (SQLite: "Record does not exist."): the
            # sweep's end lists the failed jobs and exits 1. Any other ValueError is raised.
            trials = study.get_trials() if study is not None else []
            if str(error) not in NO_BEST_TRIAL or {t.state for t in trials} != {optuna.trial.TrialState.FAIL}:
                raise
            from deeprl.sweep_report import SweepReport

            SweepReport.no_result = (
                f"deeprl: error: study {impl.study_name}: none of its {len(trials)} trials completed, so it has no "
                "best parameters; fix what failed them (failed.txt in each job dir), then search again in a new "
                "hydra.sweep.dir or with more hydra.sweeper.n_trials")
            return None


# What Optuna's best_trial raises on a study without a complete trial (SQLite storage; in memory).
NO_BEST_TRIAL = ("Record does not exist.", "No trials are completed yet.")


# What a failed job hands the search in place of its NaN (deeprl.sweep.failed). Hydra's Optuna loop
# tells Optuna a returned value as the trial's value; Optuna 2.10 refuses NaN, and the loop's retry
# (FAIL, with the same value) raised: the first failed trial ended the search with a traceback.
# float() refuses this instead, so the loop tells the trial FAIL without a value and goes on.
FAILED_JOB = "deeprl: job failed (its line above says why)"


class FailedJob:
    def __str__(self) -> str:
        return FAILED_JOB

    __repr__ = __str__


def mark_failed_jobs(launcher: Any) -> None:
    """Make the launcher return FailedJob for the jobs that failed, and keep out of the log the
    two lines Hydra's loop writes about each (a value "not float-castable", a failure rate): the
    job has said why in one line, and the sweep lists its failed jobs as it ends."""
    import math

    from hydra.core.utils import JobStatus

    launch = launcher.launch

    def launch_marking_failures(job_overrides, initial_job_idx):
        returns = launch(job_overrides, initial_job_idx)
        for ret in returns:
            value = ret._return_value if ret.status == JobStatus.COMPLETED else None
            if isinstance(value, float) and math.isnan(value):
                ret.return_value = FailedJob()
        return returns

    launcher.launch = launch_marking_failures
    hydra_log = logging.getLogger("hydra_plugins.hydra_optuna_sweeper._impl")
    if not any(isinstance(f, _QuietOnFailedJobs) for f in hydra_log.filters):
        hydra_log.addFilter(_QuietOnFailedJobs())


class _QuietOnFailedJobs(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return FAILED_JOB not in record.getMessage()


def check_searched_keys(impl: Any, arguments: list[str]) -> None:
    """Each key the search sets must be one the job's config has, and every mandatory value the
    search does not set must be given, checked before the study or the sweep dir is made: else
    every trial fails on it in turn (Hydra's "no such key", deeprl's "has no default"), as when a
    search written for one algo is used with another, or `env=gym` comes without `env.id`."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import DictConfig

    from deeprl.core.errors import ConfigError, nearest
    from deeprl.core.hydra_errors import LIST_KEYS
    from deeprl.validate import require_set

    given = OverridesParser.create().parse_overrides(list(arguments))
    swept = [o.input_line.partition("=")[0] for o in given if o.is_sweep_override()]  # `algo.lr=interval(..)`
    keys = [key for key in [*map(str, impl.params or {}), *swept] if not key.startswith(("+", "~", "hydra."))
            and "/" not in key]
    loader = impl.hydra_context.config_loader
    cfg = loader.load_sweep_config(impl.config, [o.input_line for o in given if not o.is_sweep_override()])
    require_set(cfg, given=frozenset(keys))
    choices = cfg.hydra.runtime.choices
    for key in keys:
        node, parts = cfg, key.split(".")
        for depth in range(len(parts)):  # down to the first part the config lacks
            leaf = parts[depth]
            if not isinstance(node, DictConfig):  # a list or a value below: not checked further
                break
            if leaf not in node.keys():
                break
            node = node._get_node(leaf)
        else:
            continue  # every part found
        if not isinstance(node, DictConfig):
            continue
        parent, key = ".".join(parts[:depth]), ".".join(parts[:depth + 1])
        near = nearest(leaf, node.keys())
        if near is not None:
            raise ConfigError(key, f"no such key to search; did you mean {parent + '.' if parent else ''}{near}?")
        group = key.split(".")[0]
        owner = f"{group}={choices[group]}" if choices.get(group) else "the config"
        search = choices.get("search")
        chosen = next((o.input_line for o in given if o.key_or_group == group), None)
        if search and chosen:  # the search picks its own algo and env; the command line chose another
            others = ", ".join(sorted(loader.get_group_options("search")))
            raise ConfigError(key, f"{owner} has no such key to search; +search={search} picks its own {group}: "
                                   f"drop {chosen}, or choose a search written for {owner} (the searches: {others})")
        raise ConfigError(key, f"{owner} has no such key to search; {LIST_KEYS} (write +{key} in "
                               "hydra.sweeper.params to add a key deeprl passes on)")


def continued_seed(seed: int, trials: int) -> int:
    """The sampler seed of a study continued with `trials` trials in it (`trials` > 0)."""
    import numpy as np

    return int(np.random.SeedSequence([int(seed), trials]).generate_state(1)[0])


def reseed(impl: Any, sampler_config: Any, trials: int) -> None:
    """Give a continued study's seeded sampler a stream of its own (see the module's notes)."""
    seed = sampler_config.get("seed") if sampler_config is not None else None
    if seed is None:  # unseeded (a fresh stream each start) or a grid (no randomness)
        return
    from hydra.utils import instantiate

    impl.sampler = instantiate(sampler_config, seed=continued_seed(seed, trials))


def plain_logs_off_a_terminal(optuna) -> None:
    """Optuna 2 colours its log lines whatever the stream, so a search's log file, a cluster job's
    output or a pipe gets escape codes ("\\x1b[32m[I ...]"). Off a terminal its lines are written
    plain, in its own format; on one they keep their colour."""
    if sys.stderr.isatty() or getattr(plain_logs_off_a_terminal, "done", False):
        return
    optuna.logging.disable_default_handler()
    handler = logging.StreamHandler()  # stderr, as optuna's own
    handler.setFormatter(logging.Formatter("[%(levelname)1.1s %(asctime)s] %(message)s"))
    logging.getLogger("optuna").addHandler(handler)
    plain_logs_off_a_terminal.done = True
