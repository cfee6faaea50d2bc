"""The `train` command: compose the config with Hydra, build, run, summarise; or resume a run."""

import shlex
import signal
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from deeprl import resume, sweep, sweep_report, sweep_stop
from deeprl.core import hydra_errors
from deeprl.core.console import say, shell
from deeprl.core.errors import ConfigError
from deeprl.core.interrupt import stop_at_once
from deeprl.core.run_dir import LOCK, Claim, claim_run_dir, discard_run_dir, hold, note_holder
from deeprl.validate import validate


class RunDirGuard(Callback):
    """Registered in conf/config.yaml as a Hydra callback: before Hydra creates or writes anything
    for a new single run (a resume is checked in deeprl.resume, a sweep's jobs in deeprl.sweep),
    claims its run dir (`claim_run_dir`) and keeps the claim, so that a run that never starts
    removes what it made and nothing else (`discard_run_dir`); and holds it (`hold`) while it trains."""

    claim: Claim | None = None  # this process's run dir, once claimed

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        RunDirGuard.claim = None
        if config.get("resume") is not None:
            return
        try:
            RunDirGuard.claim = claim_run_dir(Path(str(config.hydra.run.dir)))
            hold(RunDirGuard.claim.run_dir, "hydra.run.dir")  # until this process ends: see resume
        except ConfigError as error:
            discard_run_dir(Path(str(config.hydra.run.dir)), RunDirGuard.claim)
            fail(error)


def discard_unstarted_sweep() -> None:
    """Hydra writes a sweep dir's multirun.yaml before it composes the jobs' configs: when one of
    them does not compose, no job has run and the sweep added nothing else. Remove what it made."""
    sweep_dir, found = sweep_report.SweepReport.sweep_dir, sweep_report.SweepReport.found
    if sweep_dir is not None and found is not None and sweep_dir.is_dir() \
            and {p.name for p in sweep_dir.iterdir()} - found.before <= {"multirun.yaml", LOCK}:
        discard_run_dir(sweep_dir, found)


def fail(error: Exception, log_it: bool = False) -> None:
    """One line and exit 2; logged to the run's train.log only for a run that started (`log_it`)."""
    say(f"deeprl: error: {error}", err=True, log_it=log_it)
    sys.exit(2)


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def task(cfg: DictConfig) -> float:
    hydra_errors.config_composed(run=True)  # what fails from here on, Hydra reports its own way
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    if HydraConfig.get().mode == RunMode.MULTIRUN:
        return sweep.job(cfg, run_dir)  # never ends the sweep; returns the score a search optimises
    resuming = cfg.get("resume") is not None
    try:
        if not resuming:
            validate(cfg)  # before torch and the envs are imported: a bad key is refused in about a second
        from deeprl.build import build

        if resuming:
            cfg, state, _ = resume.resumed_config(cfg, list(HydraConfig.get().overrides.task))
            run = build(cfg, run_dir, resume_from=state)
        else:
            run = build(cfg, run_dir)
            # A resumed run's config comes from its checkpoint, not from this command's choices.
            run.composed_from = sweep.composed_from()
        # The run's own handlers go in as it starts executing (a signal in the microseconds between is
        # noted and not acted on: a second one reaches the run's handlers, which checkpoint and stop).
        StartUp.stop_if_asked(run_dir, resuming, run.envs)
        if resuming:
            note_holder(run_dir)  # held since deeprl.resume checked the request; it names itself now it runs
    except (ConfigError, AttributeError, KeyError, TypeError) as caught:
        # Besides a ConfigError: a key the run needs that `~key` removed. Anything else is a bug: raised.
        overrides = HydraConfig.get().overrides.task
        error = caught if isinstance(caught, ConfigError) else hydra_errors.removed_key(caught, overrides)
        if error is None:
            raise
        if not resuming:  # a resumed run dir holds a run: never remove it
            discard_run_dir(run_dir, RunDirGuard.claim)
        fail(error)
    try:
        summary = run.execute()
    except ConfigError as error:  # found only once running (e.g. a policy that never terminates)
        if not resuming and not list((run_dir / "checkpoints").glob("*.pt")):
            discard_run_dir(run_dir, RunDirGuard.claim)
        fail(error, log_it=True)
    except Exception:  # a bug, deeprl's or an env's of one's own: its traceback, then where the run stands
        crashed(run, run_dir)
    # Returned for sweepers that optimise an objective (e.g. Hydra's Optuna sweeper).
    return summary["eval_return_mean"]


def crashed(run, run_dir: Path) -> None:
    """After an error the run did not expect (an env of one's own that raises in `step`, say): its
    traceback, as Hydra would print it, in train.log too, then the step it failed at, its newest
    checkpoint and the command that goes on from there once the cause is fixed; exit 1."""
    import traceback

    from deeprl.core.checkpoint import step_files
    from deeprl.core.console import log

    text = traceback.format_exc()
    sys.stderr.write(text)
    log.error(text.rstrip("\n"))
    files = step_files(run_dir / "checkpoints")
    where = f"failed at step {run.loop.step}" if run.loop is not None else "failed"
    then = (f"its newest checkpoint is {files[-1][1]}; once the cause is fixed, go on from there with: train "
            f"resume={shell(run_dir.resolve())}" if files else "it wrote no checkpoint before")
    say(f"deeprl | the run {where} (the error above); {then}", err=True)
    sys.exit(1)


class StartUp:
    """Ctrl-C or SIGTERM while a single run starts up (imports, envs, networks), before the run's own
    handlers would checkpoint. The signal is noted, not raised: a KeyboardInterrupt raised at any
    point of start-up can be swallowed (torch's C start-up, importing numpy, drops one and goes
    on, so the run would train on), so the run checks for it once built, before it writes anything."""

    signum: int | None = None

    @staticmethod
    def handler(signum, frame) -> None:
        if StartUp.signum is not None:  # the second one: at once
            stop_at_once(signum)
            return
        StartUp.signum = signum
        say(f"\ndeeprl | {signal.Signals(signum).name}: stopping once started up (send it again to stop at once)",
            err=True, log_it=False)

    @staticmethod
    def stop_if_asked(run_dir: Path, resuming: bool, envs=None) -> None:
        """One line and exit 128 + the signal if one came; a new run's dir removed as a refused run's."""
        if StartUp.signum is None:
            return
        if envs is not None:
            envs.close()
        if resuming:
            what = "the run dir is as it was"
        else:
            discard_run_dir(run_dir, RunDirGuard.claim)
            what = "nothing was kept"
        say(f"deeprl | stopped by {signal.Signals(StartUp.signum).name} before the run started; {what}",
            err=True, log_it=False)
        sys.exit(128 + int(StartUp.signum))


def check_search_is_a_sweep(args: list[str]) -> None:
    """`+search=<name>` picks a sweeper, which only a multirun uses: without -m Hydra would train
    once with the search's budget and search nothing."""
    if any(a in ("-m", "--multirun", "--cfg", "-c", "--help", "-h", "--info", "-i") for a in args):
        return
    if any(a.lstrip("+~").startswith("search=") for a in args):
        raise ConfigError("search", f"a search runs its trials as a sweep; add -m: train -m {shlex.join(args)}")


def main() -> None:
    """Console entry point: a resume request is checked before Hydra creates or touches anything."""
    if "--version" in sys.argv[1:]:  # Hydra's own flag (anywhere on the line) names only Hydra's version
        from deeprl import version_line

        print(version_line("train"))
        return
    if any(a in ("-m", "--multirun") for a in sys.argv[1:]):  # a sweep: its launcher stops its jobs
        sweep_stop.quiet_loky_tracker()
        sweep_stop.stop_safe_workers()
        try:
            with sweep_stop.stops_relayed(lambda: sweep_report.SweepReport.sweep_dir):
                return _main()
        except (KeyboardInterrupt, SystemExit) as stop:  # a job's run stopped by a signal: RunStopped
            code = 128 + int(sweep_stop.Relayed.signum or signal.SIGINT) if isinstance(stop, KeyboardInterrupt) else stop.code
            if code not in (128 + int(signal.SIGINT), 128 + int(signal.SIGTERM)):
                raise
            _sweep_stopped(code)
        except Exception:  # after a relayed signal: a worker that ended broke joblib's pool
            if sweep_stop.Relayed.signum is None:
                raise
            _sweep_stopped(128 + int(sweep_stop.Relayed.signum))
    for signum in (signal.SIGINT, signal.SIGTERM):  # until the run installs its own (deeprl.run)
        signal.signal(signum, StartUp.handler)
    _main()


def _sweep_stopped(code: int) -> None:
    """The sweep's one line when a signal stopped it, and its exit."""
    where = sweep_report.SweepReport.sweep_dir
    again = f"the same command with hydra.sweep.dir={shell(where.resolve())}" if where else "the same command"
    hosts = sweep_stop.elsewhere(where) if where is not None and where.is_dir() else []
    away = (f"; its jobs on other machines ({', '.join(hosts)}) get no signal from here: stop each there with "
            "SIGINT or SIGTERM (scancel sends SIGTERM) and it checkpoints" if hosts else "")
    say(f"\ndeeprl | sweep stopped by {signal.Signals(code - 128).name}; to go on, run {again} (finished "
        f"jobs are kept, the others resume from their checkpoints){away}", err=True, log_it=False)
    sys.exit(code)


def _main() -> None:
    try:
        check_search_is_a_sweep(sys.argv[1:])
        if resume.requested(sys.argv[1:]) and (shown := resume.shown_config(sys.argv[1:])) is not None:
            print(shown, end="")
            return
        sys.argv[1:] = resume.hydra_args(resume.quoted_init_from(sys.argv[1:]))
    except ConfigError as error:
        fail(error)
    ours = hydra_errors.begin_composing()  # Hydra raises what it cannot compose: worded here as one line
    try:
        task()
    except Exception as error:
        if not ours or not hydra_errors.is_input_error(error):
            raise
        discard_unstarted_sweep()
        fail(hydra_errors.from_hydra(error))
    finally:
        hydra_errors.config_composed(run=True)


if __name__ == "__main__":
    # `python -m deeprl.train` runs this file as `__main__`, while Hydra makes the callbacks of
    # conf/config.yaml from `deeprl.train`, a second copy. Run that copy's main: its task sees the
    # run dir its RunDirGuard claimed, and removes it on a refusal.
    from deeprl.train import main as module_main

    module_main()
