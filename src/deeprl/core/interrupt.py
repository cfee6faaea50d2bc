"""Ctrl-C and SIGTERM for the commands that stop on them at once (`evaluate`, `compare`).

Python raises KeyboardInterrupt wherever the main thread happens to be, and where that is a
`__del__` (moviepy's Clip.__del__, run as each video is encoded) Python prints "Exception ignored"
and goes on: `evaluate --video` then played on to its last episode and exited 0. Within
`stop_signals_noted()` the signal is noted, and raised as KeyboardInterrupt unless a `__del__`
runs (then it would be printed and dropped); the loops call `stop_if_asked()` at each step and
before they move what they wrote into place, so a noted one stops the command there.

SIGTERM (`kill`, `timeout`, a cluster's cancellation) is taken the same way. Left to its default
it would end the command without removing what it had staged; and once pygame had started SDL
(a classic-control video), SDL took SIGTERM for a quit event no one reads, and `evaluate --video`
played on to its last episode (deeprl.envs.render also asks SDL to leave signals alone).
"""

import contextlib
import os
import signal
import sys
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Asked:
    signum: int | None = None  # noted within stop_signals_noted()
    last: int | None = None  # the one noted there, once it is left (for stopped_by)


def _handler(signum, frame) -> None:
    _Asked.signum = signum
    while frame is not None:
        if frame.f_code.co_name == "__del__":  # raised here it would be printed and dropped
            return
        frame = frame.f_back
    raise KeyboardInterrupt


@contextlib.contextmanager
def stop_signals_noted():
    """SIGINT and SIGTERM raise KeyboardInterrupt, and are noted for `stop_if_asked` and
    `stopped_by`. Nothing changes off the main thread (signals cannot be handled there), and a
    signal that is ignored stays ignored (a shell script's background job starts with SIGINT
    ignored: Python itself leaves it so)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _handler) for sig in SIGNALS if signal.getsignal(sig) is not signal.SIG_IGN}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _Asked.last, _Asked.signum = _Asked.signum, None


def stop_if_asked() -> None:
    """Raise KeyboardInterrupt if a stop signal came within `stop_signals_noted()`, even if it
    was swallowed."""
    if _Asked.signum is not None:
        raise KeyboardInterrupt


def stopped_by(command: str) -> int:
    """After a KeyboardInterrupt: print the command's one line for the signal that stopped it
    (SIGINT if none was noted: a Ctrl-C outside `stop_signals_noted`), forget it, and return the
    exit code, 128 + the signal's number."""
    signum = _Asked.last or signal.SIGINT
    _Asked.last = None
    print(f"\n{command}: stopped by {signal.Signals(signum).name}; nothing half-written is left", file=sys.stderr)
    return 128 + int(signum)


def stop_at_once(signum: int) -> None:
    """A second stop signal: end this process now, as the signal's default action would."""
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


class Pending:
    """A stop signal that reached a sweep's worker process while no run there had its handlers in
    (between jobs, or while a job's run was being built): the next run stops at its first step."""

    signum: int | None = None


def note_pending(signum, frame) -> None:
    """The handler of a sweep's worker process outside its runs (deeprl.sweep_stop.worker_started)."""
    if Pending.signum is None:
        Pending.signum = signum
