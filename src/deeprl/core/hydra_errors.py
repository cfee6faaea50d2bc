"""Hydra's composition errors (a mistyped key, an unknown config name, an override it cannot
parse) as one ConfigError naming the key, with the nearest valid name when there is one.

Hydra prints these over several lines and exits 1; `train` words them the way it words every other
bad input (`deeprl: error: <key>: <what is wrong>; <the fix>`, exit 2). With HYDRA_FULL_ERROR set,
Hydra raises the error instead (it reads the variable when the error happens): `train` sets it from
the start (`begin_composing`) until the config has composed (`config_composed`), so an error in the
run itself is reported as Hydra always does. A user's own HYDRA_FULL_ERROR is left alone: their
traceback, as Hydra documents."""

import os
import re

from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig
from omegaconf.errors import ConfigAttributeError, ConfigKeyError

from deeprl.core.errors import ConfigError, nearest

LIST_KEYS = "`train --cfg job` prints every key"
GRAMMAR = "https://hydra.cc/docs/advanced/override_grammar/basic/"
NO_SUCH_KEY = (ConfigAttributeError, ConfigKeyError)  # OmegaConf's two, neither a subclass of the other
FULL_ERROR = "HYDRA_FULL_ERROR"
_state = {"composing": False, "set_full_error": False}


def begin_composing() -> bool:
    """Before Hydra starts: ask it to raise what it cannot compose. False when the user set
    HYDRA_FULL_ERROR themselves (then Hydra's traceback is what they asked for)."""
    if FULL_ERROR in os.environ:
        return False
    os.environ[FULL_ERROR] = "1"
    _state.update(composing=True, set_full_error=True)
    return True


def config_composed(run: bool) -> None:
    """The command line has composed. `run`: a run or a sweep's job starts, and what fails from here
    on is the run's own. A sweep starting (run=False) has its jobs' configs still to compose: Hydra
    keeps raising those (each a HydraException), the rest is the sweep's own."""
    _state["composing"] = False
    if run and _state["set_full_error"]:
        os.environ.pop(FULL_ERROR, None)
        _state["set_full_error"] = False


def is_input_error(error: Exception) -> bool:
    """Whether `error`, raised out of Hydra while `train` asked it to raise, is the command line's
    (a ConfigError out of Hydra is a sweeper's check of the command line: hydra_plugins)."""
    return _state["composing"] or isinstance(error, (HydraException, ConfigError))


def _one_line(text: str) -> str:
    return " ".join(line.strip() for line in str(text).strip().splitlines() if line.strip())


def _missing_config(error: MissingConfigException) -> ConfigError | None:
    if not error.options or not error.missing_cfg_file or "/" not in error.missing_cfg_file:
        return None
    group, _, name = error.missing_cfg_file.rpartition("/")
    options = sorted(error.options)
    near = nearest(name, options)
    fix = f"did you mean {group}={near}? The choices: " if near else "choose one of: "
    return ConfigError(group, f"there is no {group} config named '{name}'; {fix}{', '.join(options)}")


def _unknown_key(error: Exception) -> ConfigError | None:
    cause = error.__cause__
    if not isinstance(cause, NO_SUCH_KEY) or not getattr(cause, "full_key", None):
        return None
    path = str(cause.full_key)
    parent, _, key = path.rpartition(".")
    node = cause.parent_node
    near = nearest(key, node.keys()) if isinstance(node, DictConfig) else None
    if near is not None:
        return ConfigError(path, f"no such key; did you mean {f'{parent}.' if parent else ''}{near}?")
    append = re.search(r"use (\+\S+)", str(error))
    add = f" (to add a key deeprl passes on, such as an env.kwargs entry, write {append.group(1)})" if append else ""
    return ConfigError(path, f"no such key; {LIST_KEYS}{add}")


def from_hydra(error: Exception) -> ConfigError:
    """One line for an error Hydra raised while composing the config from the command line."""
    if isinstance(error, ConfigError):
        return error
    if isinstance(error, MissingConfigException):
        found = _missing_config(error)
        if found is not None:
            return found
    if isinstance(error, OverrideParseException) and error.override:
        key = re.split(r"[=\s]", error.override.lstrip("~+"), maxsplit=1)[0] or "overrides"
        reason = str(error.message).strip().splitlines()[0]
        return ConfigError(key, f"cannot read the override {error.override}: {reason}; see {GRAMMAR}")
    found = _unknown_key(error)
    if found is not None:
        return found
    return ConfigError("overrides" if isinstance(error, HydraException) else "command line", _one_line(error))


def removed_key(error: Exception, overrides) -> ConfigError | None:
    """The key a run needs and `~key` on the command line removed, when `error` is the run
    missing it (a config lookup, or an algorithm built without a required argument); else None."""
    removed = [o[1:].partition("=")[0] for o in overrides if o.startswith("~")]
    if isinstance(error, NO_SUCH_KEY):
        names = [str(error.full_key)] if error.full_key else []
    elif isinstance(error, KeyError):
        names = [str(error.args[0])] if error.args else []
    elif isinstance(error, TypeError) and "required" in str(error):  # f() missing 1 required ... 'lr'
        names = re.findall(r"'(\w+)'", str(error).partition("required")[2])
    else:
        names = []
    for key in removed:
        if any(name == key or key.endswith(f".{name}") or name.startswith(f"{key}.") for name in names):
            return ConfigError(key, f"the run needs it and ~{key} removed it; drop ~{key}")
    return None
