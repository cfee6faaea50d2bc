"""Ctrl-C for the commands that stop on it at once (`evaluate`, `compare`).

Python raises KeyboardInterrupt wherever the main thread happens to be, and where that is a
`__del__` (moviepy's Clip.__del__, run as each video is encoded) Python prints "Exception ignored"
and goes on: `evaluate --video` then played on to its last episode and exited 0. Within
`ctrl_c_noted()` the interrupt is noted, and raised as before unless a `__del__` runs (then it would
be printed and dropped); the loops call `stop_if_asked()` at each step and before they move what
they wrote into place, so a noted one stops the command there.
"""

import contextlib
import signal
import threading


class _Asked:
    yes = False


def _handler(signum, frame) -> None:
    _Asked.yes = True
    while frame is not None:
        if frame.f_code.co_name == "__del__":  # raised here it would be printed and dropped
            return
        frame = frame.f_back
    raise KeyboardInterrupt


@contextlib.contextmanager
def ctrl_c_noted():
    """SIGINT raises KeyboardInterrupt, and is noted for `stop_if_asked`. Nothing changes off the
    main thread (signals cannot be handled there) or where SIGINT is ignored (a shell script's
    background job: Python itself leaves it ignored)."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        yield
        return
    previous = signal.signal(signal.SIGINT, _handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _Asked.yes = False


def stop_if_asked() -> None:
    """Raise KeyboardInterrupt if Ctrl-C came within `ctrl_c_noted()`, even if it was swallowed."""
    if _Asked.yes:
        raise KeyboardInterrupt
