"""Frames for videos, drawn offscreen: no window and no display needed, on a laptop or a cluster node.

Two renderers need telling so, and neither finds out by itself on a machine without a display:
- pygame (classic control, Box2D, toy text) opens SDL's video driver even for `rgb_array`; on a
  headless machine SDL prints "error: XDG_RUNTIME_DIR is invalid..." to stderr, through the
  progress bar. SDL's `dummy` driver draws the same frames without a window. SDL also takes
  SIGTERM when it is left to its default, and a process then ignores it: told not to.
- MuJoCo picks an OpenGL backend from `MUJOCO_GL`; unset, gymnasium tries GLFW first, which needs an
  X display and fails later with "an OpenGL platform library has not been loaded". Without a
  display, EGL (libegl1; a GPU's driver or Mesa's software one) renders offscreen. It is chosen only
  where libEGL is installed: the variable passes to the processes this one starts (async envs), and
  there `import mujoco` itself fails on a backend whose library is missing.

A choice the user made (the variable already set) is kept. `render_env` makes the env and draws one
frame at once, so that a machine that cannot render is told at the start, in one line, with the fix.
"""

import contextlib
import ctypes.util
import gc
import os
import sys

import numpy as np

from deeprl.core.errors import ConfigError

# The shared library each of MuJoCo's offscreen backends loads, as ctypes.util.find_library names it.
OFFSCREEN_LIBRARIES = {"egl": "EGL", "osmesa": "OSMesa"}
MUJOCO_HINT = ("MuJoCo draws offscreen with MUJOCO_GL=egl (libegl1; the default here without a display) "
               "or MUJOCO_GL=osmesa (libosmesa6)")


def offscreen() -> None:
    """Point pygame and MuJoCo at offscreen backends, unless the user chose theirs."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    # SDL otherwise takes SIGINT and SIGTERM where they are left to their default action, for a
    # quit event no one reads here: a command or a sweep's worker would then ignore SIGTERM.
    os.environ.setdefault("SDL_NO_SIGNAL_HANDLERS", "1")
    display = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    if sys.platform.startswith("linux") and not display and ctypes.util.find_library(OFFSCREEN_LIBRARIES["egl"]):
        os.environ.setdefault("MUJOCO_GL", "egl")


def render_env(env_cfg, key: str, fix: str):
    """A single evaluation env that renders `rgb_array` frames, with one frame drawn to prove it.

    Raises ConfigError(`key`, ... `fix`) when the env cannot render here; the env is closed then."""
    from deeprl.envs.make import _thunk
    from deeprl.envs.state import native_kind

    offscreen()
    env = _thunk(env_cfg, training=False, render_mode="rgb_array")()
    failure = None
    with _quiet_half_built_viewer():
        try:
            if env.render_mode != "rgb_array":
                failure = f"{env_cfg.id} cannot render frames (rgb_array); {fix}"
            else:
                env.reset(seed=0)
                frame = env.render()
                if not (isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.dtype == np.uint8):
                    failure = f"{env_cfg.id} rendered no RGB frame (got {type(frame).__name__}); {fix}"
        except Exception as error:  # the renderers' own errors: OpenGL, SDL, a missing library
            lines = str(error).strip().splitlines() or [""]
            hint = f" {MUJOCO_HINT}: install one, or" if native_kind(env.unwrapped) == "mujoco" else ""
            failure = f"{env_cfg.id} cannot render a frame here ({type(error).__name__}: {lines[0]});{hint} {fix}"
        if failure is not None:
            env.close()
    if failure is not None:
        raise ConfigError(key, failure)
    return env


@contextlib.contextmanager
def _quiet_half_built_viewer():
    """gymnasium's MuJoCo viewer whose OpenGL context failed to open raises again from its __del__
    (an "Exception ignored in ... OffScreenViewer.__del__" traceback) once the error lets go of it:
    that one is dropped; anything else goes to Python's hook."""
    hook = sys.unraisablehook

    def filtered(unraisable):
        if not getattr(unraisable.object, "__module__", "").startswith("gymnasium.envs.mujoco"):
            hook(unraisable)

    sys.unraisablehook = filtered
    try:
        yield
        gc.collect()
    finally:
        sys.unraisablehook = hook
