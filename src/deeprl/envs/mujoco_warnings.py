"""MuJoCo's warnings, routed through the console's one-line writer.

Left alone, MuJoCo prints each warning on the console, through the progress bar, and appends it to
MUJOCO_LOG.TXT in whatever directory the command ran from. gymnasium's own v5 models (HalfCheetah,
Ant, ...) set a compiler attribute that recent MuJoCo releases deprecate (3.17 here), so every env
made, each evaluation's included, printed the same two lines about a file the user cannot change.
That warning is dropped; any other (e.g. "Nan, Inf or huge value in QACC ... The simulation is
unstable") is printed once per process, prefixed with "deeprl | MuJoCo:", and logged to the run's
train.log like any console line.
"""

from deeprl.core.console import say

# Warnings about gymnasium's bundled model files: nothing a run can change.
DROPPED = ("compiler attribute 'settotalmass' is deprecated",)

_seen: set[str] = set()
_routed = False


def route() -> None:
    """Install the handler (once per process; env workers call it too)."""
    global _routed
    if not _routed:
        import mujoco

        mujoco.set_mju_user_warning(_warn)
        _routed = True


def _warn(message: str) -> None:
    message = message.strip()
    if message.startswith(DROPPED) or message in _seen:
        return
    _seen.add(message)
    say(f"deeprl | MuJoCo: {message}", err=True, above_bar=True)
