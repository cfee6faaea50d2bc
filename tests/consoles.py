"""Run deeprl's console scripts (`train`, `evaluate`, `compare`) as processes of their own, fast.

A console script's process spends about 2 s importing torch, Hydra, gymnasium and matplotlib
before it reads its first argument; the suite starts a few hundred of them. `run` forks each from
a server process that has imported them once (multiprocessing's forkserver): the child is a new
process with its own argv, working folder, standard streams, exit code, signals and atexit
handlers, running the same `main` the console script runs, and the suite pays the imports once per
worker. What it does not reproduce is interpreter start-up itself: an `env` that changes what
Python reads at start (PYTHON* variables) starts the installed script with `subprocess`. Other
variables are set in the child before `main` runs, which is when deeprl and the libraries it
imports on the way (MuJoCo reads MUJOCO_GL) read them. Tests that signal a process or limit it
(tests/smoke/test_interrupt.py, the rlimit tests) and `--version` start the installed scripts.
"""

import atexit
import importlib
import multiprocessing
import multiprocessing.forkserver
import os
import subprocess
import sys
import tempfile
import threading
import traceback
from pathlib import Path

from deeprl.build import ALGOS

ENTRY_POINTS = {"train": "deeprl.train", "evaluate": "deeprl.evaluate", "compare": "deeprl.compare"}
# What a run imports on its way; each is imported once, in the server.
# deeprl.build imports the algorithm and loop it runs (ALGOS) once the env's checks passed.
PRELOAD = [*ENTRY_POINTS.values(), "deeprl.build", "deeprl.envs.make", "deeprl.loops.session", "deeprl.run",
           *sorted({path.partition(":")[0] for pair in ALGOS.values() for path in pair}),
           "deeprl.loops.report", "matplotlib.figure", "torch", "gymnasium", __name__]

_context = None
_server_environ: dict[str, str] = {}  # the environment the server started with


def _server():
    global _context, _server_environ
    if _context is None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        _server_environ = dict(os.environ)
        multiprocessing.forkserver.ensure_running()
        _context = context
    return _context


def script(name: str) -> str:
    """The installed console script `name`, next to this Python."""
    return str(Path(sys.executable).parent / name)


def _main(name: str, args: list[str], cwd: str, env: dict, out: str, err: str) -> None:
    """In the forked child: what the console script does, then what the interpreter does at exit."""
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    for fd, path in ((1, out), (2, err)):
        f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(f, fd)
        os.close(f)
    sys.argv = [script(name), *args]
    try:
        code = importlib.import_module(ENTRY_POINTS[name]).main()
    except SystemExit as e:
        code = e.code
    except BaseException:
        traceback.print_exc()
        code = 1
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    threading._shutdown()  # as the interpreter does at exit: join non-daemon threads, then atexit
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


def run(name: str, *args: str, cwd: Path | None = None, timeout: float = 300,
        env: dict | None = None) -> subprocess.CompletedProcess:
    """`subprocess.run([name, *args], capture_output=True, text=True, env=env)`, forked from the
    server unless `env` changes a PYTHON* variable."""
    server = _server()
    environ = dict(os.environ if env is None else env)
    if _starts_differently(environ):
        return subprocess.run([script(name), *args], cwd=cwd, capture_output=True, text=True,
                              timeout=timeout, env=env)
    with tempfile.TemporaryDirectory() as tmp:
        out, err = os.path.join(tmp, "out"), os.path.join(tmp, "err")
        process = server.Process(target=_main, args=(name, list(args), str(cwd or os.getcwd()), environ, out, err))
        process.start()
        process.join(timeout)
        if process.exitcode is None:
            process.kill()
            process.join()
            raise subprocess.TimeoutExpired([name, *args], timeout, _read(out), _read(err))
        return subprocess.CompletedProcess([name, *args], process.exitcode, _read(out), _read(err))


def _starts_differently(environ: dict) -> bool:
    """Whether Python would start differently in `environ` than the server did."""
    keys = {k for k in {*environ, *_server_environ} if k.startswith("PYTHON")}
    return any(environ.get(k) != _server_environ.get(k) for k in keys)


def _read(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()
