"""`train resume=<run dir>`: continue a run from its latest readable checkpoint.

The run keeps its own config (the one saved in the checkpoint, which is the run's `.hydra/`
config plus any overrides of earlier resumes). Only keys that do not change what is learned may
be overridden: `total_steps` (to extend a run, finished or not), `device`, `threads`, `log.*`,
`video.*` (a video leaves every random stream as it was: deeprl.loops.evaluate.random_streams_kept)
and `checkpoint.*` (writing a checkpoint changes nothing that follows it: tests/smoke/test_resume.py;
e.g. `checkpoint.buffer=false checkpoint.keep=1` to go on with less disk).

Everything that can be checked is checked before Hydra starts (`hydra_args`), so a bad resume
writes nothing: Hydra is then pointed at the existing run dir (`hydra.run.dir`) and told not to
rewrite its `.hydra/` folder.
"""

from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import OverrideParseException
from omegaconf import DictConfig, OmegaConf, open_dict

from deeprl.core.checkpoint import latest
from deeprl.core.errors import ConfigError
from deeprl.core.hydra_errors import from_hydra
from deeprl.core.run_dir import hold
from deeprl.runs import pointer

ALLOWED = ("total_steps", "device", "threads", "log", "video", "checkpoint")
ALLOWED_TEXT = "total_steps, device, threads, log.*, video.* and checkpoint.*"


def _is_resume(arg: str) -> bool:
    return arg.startswith(("resume=", "+resume=", "++resume="))


def _as_written(value: str) -> str:
    """A path given on the command line, taken as written (a sweep job's dir holds `=` and `,`,
    which Hydra's grammar would otherwise read as an override or a sweep), less the quotes of one
    already quoted for Hydra."""
    value = value.strip()
    if len(value) > 1 and value[0] == value[-1] and value[0] in "'\"":
        value = value[1:-1]
    return value


def _resume_value(args: list[str]) -> str | None:
    """The raw value of `resume=`: a run dir, taken as written."""
    values = [a.partition("=")[2] for a in args if _is_resume(a)]
    return _as_written(values[-1]) if values else None


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _key_allowed(key: str) -> bool:
    return key == "resume" or key.split(".")[0] in ALLOWED


def _hydra_flags(args: list[str]):
    """The command line as Hydra's own argument parser reads it: its flags (`--cfg job`, `-p algo`)
    and, in `.overrides`, the overrides, each flag's value left out."""
    from hydra._internal.utils import get_args_parser

    parsed, rest = get_args_parser().parse_known_args(args)
    parsed.overrides += [a for a in rest if not a.startswith("-")]  # those after a flag (`--cfg job x=1`)
    return parsed


def _overrides(args: list[str]) -> list:
    """The command line's overrides other than resume= and hydra's own, parsed by Hydra."""
    try:
        parsed = OverridesParser.create().parse_overrides(
            [a for a in _hydra_flags(args).overrides if not _is_resume(a)])
    except OverrideParseException as error:
        raise from_hydra(error) from None
    return [o for o in parsed if not o.key_or_group.startswith("hydra")]


def find_checkpoint(run_dir: Path) -> tuple[Path, dict]:
    """The run dir's latest readable checkpoint, or a ConfigError saying why there is none."""
    if (run_dir / "multirun.yaml").is_file():
        raise ConfigError("resume", f"{run_dir} is a sweep dir; resume each job on its own: "
                                    f"train resume={run_dir}/<job dir>")
    if not (run_dir / "checkpoints").is_dir() and (instead := pointer(run_dir, "train resume=")):
        raise ConfigError("resume", instead)
    if not run_dir.is_dir():
        raise ConfigError("resume", f"{run_dir} is not a directory; pass the run dir of a `train` run")
    if not (run_dir / ".hydra" / "config.yaml").is_file():
        raise ConfigError("resume", f"{run_dir} has no .hydra/config.yaml; pass the run dir of a `train` run")
    # Held until this process ends: a run still training there (writing and pruning checkpoints)
    # refuses the resume. The holder's note is written when the run starts (deeprl.train), after
    # the checks that may still refuse it.
    hold(run_dir, "resume", note=False)
    found = latest(run_dir / "checkpoints")
    if found is None:
        raise ConfigError("resume", f"{run_dir} has no readable checkpoint to resume from (checkpoints/ "
                                    "is empty or unreadable); start a new run instead")
    return found


def requested(args: list[str]) -> bool:
    """Whether the command line asks to resume a run."""
    value = _resume_value(args)
    return value is not None and value.lower() not in ("", "null", "none")


def _allowed_overrides(args: list[str]) -> list:
    """The command line's overrides, each of a key a resume may change; else a ConfigError."""
    if any(a in ("-m", "--multirun") for a in args):
        raise ConfigError("resume", "resumes one run at a time; drop -m/--multirun and resume each job's run dir")
    overrides = _overrides(args)
    for override in overrides:
        if not _key_allowed(override.key_or_group):
            raise ConfigError(override.key_or_group, f"cannot be changed when resuming (the run keeps its own "
                                                     f"config); only {ALLOWED_TEXT} can; drop it")
    return overrides


def quoted_init_from(args: list[str]) -> list[str]:
    """`init_from=<path>` of a single run, made absolute (the run's config then says where its agent
    came from wherever it is read) and taken as written, as `resume=` is: a sweep job's dir holds
    `=` and `,`, which Hydra's grammar would read as an override or a sweep. In a sweep (-m) a
    comma still sweeps over paths, so there it is left to Hydra."""
    if any(a in ("-m", "--multirun") for a in args):
        return args
    out = []
    for arg in args:
        key, _, value = arg.partition("=")
        if key.lstrip("+") == "init_from" and value.strip() and value.strip().lower() not in ("null", "none"):
            arg = f"{key}={_quote(str(Path(_as_written(value)).expanduser().absolute()))}"
        out.append(arg)
    return out


def hydra_args(args: list[str]) -> list[str]:
    """Check a resume request given on the command line and return the arguments for Hydra:
    unchanged without `resume=`, else pointed at the run dir. Raises ConfigError."""
    if not requested(args):
        return args
    value = _resume_value(args)
    overrides = _allowed_overrides(args)
    run_dir = Path(value).expanduser()
    path, state = find_checkpoint(run_dir)
    config = OmegaConf.create(state["config"])
    total = next((o.value() for o in overrides if o.key_or_group == "total_steps"), config.total_steps)
    check_can_go_on(path, state, str(config.algo.name), total)
    where = _quote(str(run_dir.resolve()))
    return [*(a for a in args if not _is_resume(a)), f"resume={where}", f"hydra.run.dir={where}",
            "hydra.output_subdir=null"]


def shown_config(args: list[str]) -> str | None:
    """`train resume=<dir> --cfg job` (or `all`, `-p <package>`): the config the run goes on with,
    its own with the command line's overrides, as YAML; None without --cfg. Hydra's `--cfg` would
    print a new run's config composed from the defaults, not the run's. Raises ConfigError."""
    flags = _hydra_flags(args)
    if flags.cfg is None:
        return None
    if flags.cfg == "hydra":
        raise ConfigError("--cfg", "hydra prints Hydra's settings for a new run; a resumed run keeps its own "
                                   "(<run dir>/.hydra/hydra.yaml): use --cfg job")
    overrides = _allowed_overrides(args)  # the total is not checked: the config of a finished run is shown
    _, state = find_checkpoint(Path(_resume_value(args)).expanduser())
    config = _going_on_with(state, {override.key_or_group: override.value() for override in overrides})
    if flags.package:
        shown = OmegaConf.select(config, flags.package)
        if shown is None:
            raise ConfigError("--package", f"the run's config has no '{flags.package}'; e.g. --package algo")
        return OmegaConf.to_yaml(shown) if isinstance(shown, DictConfig) else f"{shown}\n"
    return OmegaConf.to_yaml(config)


def unfinished(path: Path, state: dict) -> int | None:
    """The run's own total_steps when `path` (holding `state`) is not its final checkpoint, else None."""
    return None if path.name == "final.pt" else int(OmegaConf.create(state["config"]).total_steps)


def check_can_go_on(path: Path, state: dict, algo: str, total) -> None:
    """Whether the run whose checkpoint is `path` (holding `state`) can go on to `total` steps:
    a finished planner cannot, and any other must go past its checkpoint's step."""
    check_not_a_finished_planner(path, algo)
    check_total_steps(total, int(state["step"]), unfinished(path, state))


def check_not_a_finished_planner(path: Path, algo: str) -> None:
    """A planner's run ends when it converges or after algo.max_sweeps sweeps, neither of which a
    resume may change, and total_steps does not count its sweeps: once finished, nothing extends it."""
    if path.name != "final.pt":
        return
    from deeprl.checks import NEEDS  # gymnasium, not torch; read only for a finished run

    if algo in NEEDS and NEEDS[algo].model:
        raise ConfigError("resume", f"{path.parent.parent} is a finished {algo} run: a planner ends when it "
                                    "converges or after algo.max_sweeps sweeps, and a resume changes neither; "
                                    "start a new run to plan again (e.g. with a higher algo.max_sweeps)")


def check_total_steps(total, step: int, unfinished_total: int | None = None) -> None:
    """A resume must go past the checkpoint's step, except that a run stopped at its end (during
    its final evaluation: no final.pt yet) resumes to finish with its own total (`unfinished_total`)."""
    if total == unfinished_total and not isinstance(total, bool):
        return
    if not isinstance(total, int) or isinstance(total, bool) or total <= step:
        raise ConfigError("total_steps", f"the run is already at step {step}; to go on, resume with "
                                         f"total_steps=<more than {step}>")


def _going_on_with(state: dict, updates: dict) -> DictConfig:
    """The checkpoint's config with `updates` ({key: value}, the allowed overrides) applied."""
    config = OmegaConf.create(state["config"])
    with open_dict(config):
        for key, value in updates.items():
            OmegaConf.update(config, key, value, merge=False)
        config.resume = None  # the checkpoint's config describes the run, not how it was started
    return config


def resumed_config(cfg: DictConfig, task_overrides: list[str]) -> tuple[DictConfig, dict, Path]:
    """(the config to go on with, the checkpoint's contents, its path) for `cfg.resume`: the
    checkpoint's config with the allowed command-line overrides applied (values as composed)."""
    run_dir = Path(cfg.resume).expanduser()
    path, state = find_checkpoint(run_dir)
    keys = [override.key_or_group for override in _overrides(task_overrides)]
    config = _going_on_with(state, {key: OmegaConf.select(cfg, key) for key in keys})
    OmegaConf.set_struct(config, True)
    check_can_go_on(path, state, str(config.algo.name), config.total_steps)
    return config, state, path
