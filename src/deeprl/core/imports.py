"""Code of one's own that a config names: an env's module (`env.id=<module>:<id>`) or a network
torso's class (`network._target_=<module>.<Class>`). Imported as Python would import it from the
folder `train` was started in (a console script's import path does not hold that folder), with a
one-line error naming the key when it cannot be."""

import importlib
import importlib.util
import os
import sys
import traceback

from deeprl.core.errors import ConfigError


def import_user_module(module: str, key: str, value: str, syntax: str) -> None:
    """Import `module`, which `key=value` names; failing, a one-line ConfigError: the module is not
    found (and how to make it found: `syntax` is how the key names it), or its own code raised (the
    error and where)."""
    if module in sys.modules:
        return

    def find():
        try:
            return importlib.util.find_spec(module)
        except (ImportError, ValueError):  # a parent package that is missing, or an empty name
            return None

    origin, here = find(), launch_dir()
    if origin is None and here not in sys.path and "" not in sys.path:
        sys.path.append(here)  # last, so that nothing installed is shadowed by a file of the same name
        origin = find()
    if origin is None:
        raise ConfigError(key, f"no module named '{module}' to import for {key}={value}; run from the folder that "
                               f"holds {module.replace('.', '/')}.py, or add that folder to PYTHONPATH ({key}={syntax})")
    try:
        importlib.import_module(module)
    except Exception as e:  # the module's own code: a bug, or a library it needs that is missing
        where = where_raised(e, origin.origin)
        detail = e.msg if isinstance(e, SyntaxError) else (str(e).strip().splitlines() or [""])[0]
        raise ConfigError(key, f"importing {module} for {key}={value} failed: {type(e).__name__}: {detail} "
                               f"({where}); fix the module, or run `python -c 'import {module}'` to see the "
                               "traceback") from None


def launch_dir() -> str:
    """The folder `train` was started in: the working folder, or Hydra's record of it when the job
    runs in its own dir (hydra.job.chdir=true)."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return str(HydraConfig.get().runtime.cwd)
    return os.getcwd()


def where_raised(error: BaseException, origin: str | None) -> str:
    """file:line of where to look in the user's code: a syntax error's own place, else the innermost
    frame in the module's folder that `error` went through (else the innermost frame)."""
    if isinstance(error, SyntaxError) and error.filename:
        return f"{error.filename}:{error.lineno}"
    frames = traceback.extract_tb(error.__traceback__)
    folder = os.path.dirname(origin) if origin else None
    frame = ([f for f in frames if os.path.dirname(f.filename) == folder] or frames)[-1]
    return f"{frame.filename}:{frame.lineno}"
