"""How `compare` groups runs into experiments: by their Hydra overrides without `seed=` and those
that only watch or keep a run, or by the config keys given with `--by`; and the short labels that
tell the groups apart."""

import functools
import re

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

from deeprl.core.errors import ConfigError
from deeprl.rules import as_override
from deeprl.runs import Run

# Overrides that do not make a different experiment: how a run was watched and kept (console and
# TensorBoard cadence, videos, checkpoints) and how many CPU threads it used. Runs that differ only
# in these are seeds of one group. (Videos leave every random stream as it was; checkpoints and
# logging draw from none.)
NEUTRAL = ("log", "video", "checkpoint", "threads")


def left_out_of_groups(override: str) -> bool:
    """Whether an override is left out of a run's group: `seed`, Hydra's own, or one of NEUTRAL."""
    key = override.split("=", 1)[0].lstrip("+~")
    return key == "seed" or key.startswith(("hydra.", "hydra/")) or key == "hydra" or key.split(".")[0] in NEUTRAL


def run_name(run: Run) -> str:
    """A run's name without overrides: algo and env (summary.json or config), else its dir."""
    if run.summary and "algo" in run.summary and "env" in run.summary:
        return f"{run.summary['algo']} {run.summary['env']}"
    if run.config is not None:
        algo = OmegaConf.select(run.config, "algo.name", default=None)
        env = OmegaConf.select(run.config, "env.id", default=None)
        if algo is not None and env is not None:
            return f"{algo} {env}"
    return run.path.name


@functools.cache
def override_parser():
    return OverridesParser.create()


def canonical(override: str) -> str:
    """An override with a plain value written one way, as Hydra reads it: `algo.lr=1e-3` and
    `algo.lr=0.001` are one setting, and so are `algo.double=true` and the `algo.double=True` that
    Hydra's sweeper records. Other overrides (strings, lists, deletions) stay as given."""
    try:
        parsed = override_parser().parse_override(override)
    except HydraException:  # Hydra wrote these overrides; one it cannot read back is kept as it is
        return override
    if parsed.is_delete() or parsed.is_sweep_override():
        return override
    value = parsed.value()
    if value is not None and not isinstance(value, (bool, int, float)):
        return override
    return f"{parsed.get_key_element()}={as_override(value)}"


def group_key(run: Run, by: list[str] | None = None) -> tuple[str, ...]:
    """What identifies the run's group: sorted "key=value" items."""
    if by:
        if run.config is None:
            raise ConfigError("--by", f"{run.path} has no .hydra/config.yaml to read "
                                      f"{', '.join(by)} from; drop --by to group by overrides")
        items = []
        for key in by:
            value = OmegaConf.select(run.config, key, default=KeyError,
                                     throw_on_resolution_failure=False)
            if value is KeyError:
                parent = key.rpartition(".")[0]
                node = OmegaConf.select(run.config, parent, default=None) if parent else run.config
                known = f"; keys under '{parent or 'the top'}': {', '.join(map(str, node))}" \
                    if isinstance(node, DictConfig) else ""
                raise ConfigError("--by", f"key '{key}' is not in the config of {run.path}{known}")
            items.append(f"{key}={as_override(value)}")
        return tuple(items)
    # Hydra lets a key be given twice and the last one wins: so does the group.
    last = {o.split("=", 1)[0]: canonical(o) for o in run.overrides or [] if not left_out_of_groups(o)}
    items = sorted(last.values())
    return tuple(items) if items else (run_name(run),)


def group_runs(runs: list[Run], by: list[str] | None = None) -> dict[tuple[str, ...], list[Run]]:
    groups: dict[tuple[str, ...], list[Run]] = {}
    for run in runs:
        groups.setdefault(group_key(run, by), []).append(run)
    return groups


def shared(keys: list[tuple[str, ...]]) -> list[str]:
    """The items every group has (left out of the labels), in the first group's order."""
    return [item for item in keys[0] if all(item in key for key in keys[1:])] if keys else []


def labels(keys: list[tuple[str, ...]], single: str = "") -> list[str]:
    """Short labels: the items that tell the groups apart. A lone group has nothing to tell it
    apart and is called `single` (its algo and env) when that is given."""
    if len(keys) == 1:
        return [single or ", ".join(keys[0])]
    common = set(shared(keys))
    return [", ".join(item for item in key if item not in common) or "(base)" for key in keys]


def sanitize(label: str) -> str:
    """A directory name for a label: "algo.lr=0.001, env=ant" -> "algo.lr=0.001,env=ant"."""
    name = re.sub(r"[^A-Za-z0-9._=,+-]+", "_", label.replace(", ", ",")).strip("._")
    return name or "group"
