"""MuJoCo's warnings, routed through the console's one-line writer.

Left alone, MuJoCo prints each warning on the console, through the progress bar, and appends it to
MUJOCO_LOG.TXT in whatever directory the command ran from. gymnasium's own v5 models (HalfCheetah,
Ant, ...) set a compiler attribute that recent MuJoCo releases deprecate (3.17 here), so every env
made, each evaluation's included, printed the same two lines about a file the user cannot change.
That warning is dropped; any other (e.g. "Nan, Inf or huge value in QACC ... The simulation is
unstable") is printed once per process, prefixed with "deeprl | MuJoCo:", and logged to the run's
train.log like any console line.

This is also where a process first imports MuJoCo, which loads the OpenGL backend `MUJOCO_GL`
names at import: a value it does not know, or one whose library is missing, is reported in one
line naming the variable and the values that work, not as MuJoCo's traceback. PyOpenGL, which
MuJoCo imports for EGL and OSMesa, logs at INFO that its optional C accelerator is absent; Hydra
prints INFO, so that line is kept off the console.
"""

import ctypes.util
import logging
import os

from deeprl.core.console import say
from deeprl.core.errors import ConfigError

# Warnings about gymnasium's bundled model files: nothing a run can change.
DROPPED = ("compiler attribute 'settotalmass' is deprecated",)

_seen: set[str] = set()
_routed = False


def route() -> None:
    """Install the handler (once per process; env workers call it too)."""
    global _routed
    if not _routed:
        mujoco = _import_mujoco()

        mujoco.set_mju_user_warning(_warn)
        _routed = True


def _warn(message: str) -> None:
    message = message.strip()
    if message.startswith(DROPPED) or message in _seen:
        return
    _seen.add(message)
    say(f"deeprl | MuJoCo: {message}", err=True, above_bar=True)


def _import_mujoco():
    logging.getLogger("OpenGL").setLevel(logging.WARNING)
    try:
        import mujoco
    except Exception as error:  # RuntimeError for an unknown value; OpenGL's errors for a missing library
        backend = os.environ.get("MUJOCO_GL")
        if backend is None:
            raise
        from deeprl.envs.render import OFFSCREEN_LIBRARIES

        library = OFFSCREEN_LIBRARIES.get(backend.lower())
        if library is not None and ctypes.util.find_library(library) is None:
            cause = f"lib{library} is not installed"
        else:
            cause = f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0]}"
        raise ConfigError(
            "MUJOCO_GL",
            f"MuJoCo cannot load the OpenGL backend MUJOCO_GL={backend} ({cause}); "
            "set MUJOCO_GL=egl (libegl1) or MUJOCO_GL=osmesa (libosmesa6) with its library installed, "
            "or unset it",
        ) from None
    return mujoco
