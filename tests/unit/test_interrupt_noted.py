"""Ctrl-C within evaluate and compare (deeprl.core.interrupt): one that lands in a __del__, where
Python prints it and drops it, still stops the command at its next check."""

import subprocess
import sys

from conftest import as_in_a_terminal

SCRIPT = """
import os, signal, sys
from deeprl.core.interrupt import stop_signals_noted, stop_if_asked

class Clip:  # as moviepy's clips, closed by __del__ after each video
    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # the handler runs here, inside __del__
            pass

def work():
    for step in range(100):
        stop_if_asked()
        if step == 10:
            Clip()
    print("ran to the end")

# As Python starts in a terminal (a parent may hand SIGINT down ignored, as pytest-xdist's workers do).
signal.signal(signal.SIGINT, signal.SIG_IGN if sys.argv[1] == "ignored" else signal.default_int_handler)
if sys.argv[1] in ("noted", "ignored"):
    with stop_signals_noted():
        work()
else:
    work()
"""


def run(mode: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=60)


def test_an_interrupt_dropped_in_a_del_stops_at_the_next_check_without_a_printed_traceback():
    plain = run("plain")  # Python's own handler: printed, dropped, and the work goes on to its end
    assert plain.returncode == 0 and "ran to the end" in plain.stdout and "Exception ignored" in plain.stderr
    noted = run("noted")
    assert noted.returncode != 0 and "ran to the end" not in noted.stdout
    assert "Exception ignored" not in noted.stderr and noted.stderr.rstrip().endswith("KeyboardInterrupt")


def test_outside_a_del_the_interrupt_is_raised_where_it_lands():
    script = ("import os, signal\nfrom deeprl.core.interrupt import stop_signals_noted\nwith stop_signals_noted():\n"
              "    try:\n        os.kill(os.getpid(), signal.SIGINT)\n        for _ in range(10**6): pass\n"
              "    except KeyboardInterrupt:\n        print('raised at once')\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                            preexec_fn=as_in_a_terminal)
    assert result.stdout.strip() == "raised at once", result.stderr


def test_an_ignored_interrupt_stays_ignored():
    """A shell script's background job starts with SIGINT ignored; Python leaves it so, and so do we."""
    ignored = run("ignored")
    assert ignored.returncode == 0 and "ran to the end" in ignored.stdout and ignored.stderr == ""


def test_a_sweep_jobs_run_takes_the_same_signal_again_at_once_as_the_same_request():
    """A sweep hands its workers the signal the terminal or the cluster may also have sent them:
    within SAME_REQUEST_S the second is the first again, not the one that stops at once (which,
    taken here, would end this process)."""
    import os
    import signal
    import time
    from types import SimpleNamespace

    from deeprl.run import SAME_REQUEST_S, stop_on_signals

    session = SimpleNamespace(stop_signal=None)
    with stop_on_signals(session, SAME_REQUEST_S):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)  # the handler runs
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)
    assert session.stop_signal == signal.SIGTERM
