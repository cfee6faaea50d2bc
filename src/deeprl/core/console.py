"""deeprl's console lines: each one whole, and kept in the run's log file too.

`say` writes a line and its newline in one `write` call and flushes it, so the lines of parallel
sweep jobs (joblib, Ray), which share the terminal or the job log, never break into each other.
Through the `deeprl` logger the line also goes to the run dir's `train.log`: conf/hydra/job_logging/
deeprl.yaml gives that logger Hydra's file handler only (the console already has the line). Outside
a Hydra run the logger has no handler and the line is only printed.
"""

import logging
import shlex
import sys
import threading

from tqdm import tqdm

ERROR_PREFIX = "deeprl: error: "
log = logging.getLogger("deeprl")
log.addHandler(logging.NullHandler())  # outside Hydra: no "last resort" copy of errors on stderr,
log.propagate = False  # and none through the handlers Hydra gives the root logger (its console)

# tqdm's default lock holds a multiprocessing semaphore, made by the first bar, for bars that share
# a terminal across processes. deeprl's bars never do (each run, each sweep job in its own process,
# has one bar), and a sweep job stopped by Ctrl-C left the semaphore for Python's resource tracker to
# warn about ("There appear to be 2 leaked semaphore objects"). A thread lock does the same work here.
tqdm.set_lock(threading.RLock())


def shell(path) -> str:
    """A path as it is typed into a command the console advises: quoted where a shell would split
    or glob it (a space; the brackets of a sweep job's list override, which zsh globs)."""
    return shlex.quote(str(path))


def say(line: str, *, err: bool = False, above_bar: bool = False, log_it: bool = True) -> None:
    """One console line (on stderr with `err`), also logged unless `log_it` is false (a command
    refused before its run started leaves the run's log as it was); `above_bar` prints it above
    the progress bar rather than through it."""
    stream = sys.stderr if err else sys.stdout
    if above_bar:
        tqdm.write(line + "\n", file=stream, end="")
    else:
        stream.write(line + "\n")
    stream.flush()
    if not log_it:
        return
    text = line.strip("\n")  # the log's own prefix names deeprl and the level: the console's goes
    if text.startswith(ERROR_PREFIX):
        log.error(text.removeprefix(ERROR_PREFIX))
    else:
        log.log(logging.WARNING if err else logging.INFO, text.removeprefix("deeprl | "))


def plural(n: int, word: str) -> str:
    """`1 sweep`, `2 sweeps`."""
    return f"{n} {word}" + ("" if n == 1 else "s")
