"""A run's dir: a new run never writes into a dir that holds a run, a run refused for bad input
removes what it made and nothing else, and a run or sweep still going is never joined by a second
process (the real `train` command, in a subprocess)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import train_cli
from deeprl.core.errors import ConfigError
from deeprl.core.run_dir import Claim, claim_run_dir, discard_run_dir, hold, note_holder, release

SHORT = ["total_steps=600", "algo.learning_starts=100", "eval.episodes=1", "log.progress=false"]


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every file and dir under `folder` with its bytes (None for a dir)."""
    return {str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes() for p in sorted(folder.rglob("*"))}


def one_error_line(result) -> str:
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr + result.stdout
    return lines[0]


def users_files(folder: Path) -> None:
    (folder / "notes.txt").write_text("mine\n")
    (folder / "data").mkdir()
    (folder / "data" / "table.csv").write_text("1,2\n")


def test_bad_input_in_an_existing_dir_removes_only_what_the_run_made(tmp_path):
    """`hydra.run.dir=.` with a typo once removed the whole working dir."""
    users_files(tmp_path)
    before = snapshot(tmp_path)
    line = one_error_line(train_cli("hydra.run.dir=.", "seed=abc", cwd=tmp_path, timeout=120))
    assert line.startswith("deeprl: error: seed: ")
    assert snapshot(tmp_path) == before


def test_a_new_run_is_refused_in_a_dir_that_holds_a_run_and_that_run_is_kept(tmp_path):
    first = train_cli("hydra.run.dir=run", *SHORT, cwd=tmp_path, timeout=180)
    assert first.returncode == 0, first.stderr[-2000:]
    run = tmp_path / "run"
    assert (run / "checkpoints" / "final.pt").is_file()
    before = snapshot(run)
    for args in (["seed=2", *SHORT], ["seed=abc"]):  # a good command and a bad one: both refused, nothing changed
        line = one_error_line(train_cli("hydra.run.dir=run", *args, cwd=tmp_path, timeout=120))
        assert line == (f"deeprl: error: hydra.run.dir: {run} already holds a run; go on with it "
                        f"(train resume={run}) or give this run a new dir (hydra.run.dir=<dir>)")
        assert snapshot(run) == before
    # The advice given works: the run goes on from where it ended.
    resumed = train_cli(f"resume={run}", "total_steps=800", "log.progress=false", cwd=tmp_path, timeout=180)
    assert resumed.returncode == 0, resumed.stderr[-2000:]


def test_a_run_dir_without_a_checkpoint_is_refused_with_advice_that_fits(tmp_path):
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / "train.log").write_text("a run that stopped before its first checkpoint\n")
    # best.pt alone (killed after its first evaluation): a resume does not go on from it
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "best.pt").write_bytes(b"")
    line = one_error_line(train_cli("hydra.run.dir=run", cwd=tmp_path, timeout=120))
    assert line == (f"deeprl: error: hydra.run.dir: {run} already holds a run; it has no checkpoint to go on "
                    "from; give this run a new dir (hydra.run.dir=<dir>) or remove it")


def test_bad_input_removes_the_parents_it_made_but_not_those_that_were_there(tmp_path):
    (tmp_path / "runs").mkdir()
    line = one_error_line(train_cli("hydra.run.dir=runs/a/b", "algo.lr=-1", cwd=tmp_path, timeout=120))
    assert line.startswith("deeprl: error: algo.lr: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"] and not any((tmp_path / "runs").iterdir())


def test_python_dash_m_deeprl_train_refuses_as_train_does_and_leaves_no_run_dir(tmp_path):
    """`python -m deeprl.train` (docs/gpu.md) is the `train` command: a refused pairing is one line
    and keeps nothing. It once kept its run dir, as Hydra's run-dir guard was another copy of the
    module than the `__main__` whose task discards the dir."""
    users_files(tmp_path)
    before = snapshot(tmp_path)
    result = subprocess.run([sys.executable, "-m", "deeprl.train", "algo=sac", "env=cartpole"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert one_error_line(result).startswith("deeprl: error: algo: sac needs a continuous action space but "
                                             "CartPole-v1 has Discrete actions")
    assert snapshot(tmp_path) == before


def test_a_sweep_that_does_not_compose_leaves_a_dir_that_was_there_as_it_was(tmp_path):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    users_files(sweep)
    before = snapshot(sweep)
    line = one_error_line(train_cli("-m", "algo=dqn,nosuchalgo", "hydra.sweep.dir=sweep", cwd=tmp_path, timeout=120))
    assert line.startswith("deeprl: error: algo: there is no algo config named 'nosuchalgo'")
    assert snapshot(sweep) == before


@pytest.mark.parametrize("where", ["file", "unwritable"])
def test_a_run_dir_that_cannot_be_made_is_one_line(tmp_path, where):
    (tmp_path / "file").write_text("")
    target = "file" if where == "file" else "file/run"  # a dir cannot be made under a file
    line = one_error_line(train_cli(f"hydra.run.dir={target}", cwd=tmp_path, timeout=120))
    assert line.startswith(f"deeprl: error: hydra.run.dir: {tmp_path / target} ")


# The pieces, without a subprocess.


def test_claim_creates_the_dir_and_notes_the_topmost_dir_it_made(tmp_path):
    claim = claim_run_dir(tmp_path / "a" / "b" / "c")
    assert claim == Claim((tmp_path / "a" / "b" / "c").resolve(), (tmp_path / "a").resolve(), frozenset())
    assert (tmp_path / "a" / "b" / "c").is_dir()
    (tmp_path / "a" / "other").mkdir()  # another run's dir beside it: the shared parent stays
    (claim.run_dir / ".hydra").mkdir()
    discard_run_dir(tmp_path / "a" / "b" / "c", claim)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["other"]


def test_discard_leaves_a_dir_it_did_not_claim(tmp_path):
    (tmp_path / "run" / ".hydra").mkdir(parents=True)
    discard_run_dir(tmp_path / "run", None)
    discard_run_dir(tmp_path / "run", Claim((tmp_path / "elsewhere").resolve(), None, frozenset()))
    assert (tmp_path / "run" / ".hydra").is_dir()


@pytest.mark.parametrize("entry", [".hydra/", "checkpoints/", "summary.json", "train.log", "events.out.tfevents.1.host"])
def test_each_trace_of_a_run_makes_a_dir_hold_one(tmp_path, entry):
    if entry.endswith("/"):
        (tmp_path / entry).mkdir()
    else:
        (tmp_path / entry).write_text("")
    with pytest.raises(ConfigError, match="already holds a run"):
        claim_run_dir(tmp_path)


# A run dir held while it trains --------------------------------------------------------------

LONG = ["total_steps=10000000", "checkpoint.every=1000", "eval.every=0", "eval.episodes=1", "log.progress=false"]


def start_train(*args: str, cwd: Path) -> subprocess.Popen:
    exe = Path(sys.executable).parent / "train"
    return subprocess.Popen([str(exe), *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(found, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not found():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def test_a_run_still_training_refuses_a_resume_of_it_until_it_stops(tmp_path):
    """Before, `train resume=<dir>` of a run still training (in another terminal, or a job not yet
    ended) trained into the same dir too: two event files, two processes writing checkpoints."""
    run = tmp_path / "run"
    live = start_train("hydra.run.dir=run", *LONG, cwd=tmp_path)
    try:
        wait_for(lambda: any((run / "checkpoints").glob("step_*.pt")), live)
        refused = train_cli(f"resume={run}", "log.progress=false", cwd=tmp_path, timeout=120)
        assert one_error_line(refused) == (
            f"deeprl: error: resume: {run} is in use by a run still training there (pid {live.pid} on "
            f"{socket.gethostname()}); wait for it to end, or stop it (Ctrl-C, or kill -INT <pid>: it "
            "checkpoints), then run this again")
        assert len(list(run.glob("events.out.tfevents.*"))) == 1  # the refused resume wrote nothing
    finally:
        live.send_signal(signal.SIGINT)  # the run checkpoints and ends
        live.communicate(timeout=120)
    assert live.returncode != 0
    step = max(int(p.stem.split("_")[1]) for p in (run / "checkpoints").glob("step_*.pt"))
    resumed = train_cli(f"resume={run}", f"total_steps={step + 1000}", "log.progress=false", cwd=tmp_path,
                        timeout=180)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["total_steps"] == step + 1000 and [r["step"] for r in summary["resumed"]] == [step]


def test_a_sweep_started_again_while_it_runs_is_refused_and_the_first_reports_no_failure(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", "seed=1,2", "total_steps=12000", "checkpoint.every=1000", "eval.every=0", "eval.episodes=1",
            "log.progress=false", f"hydra.sweep.dir={sweep}"]
    first = start_train(*args, cwd=tmp_path)
    wait_for(lambda: any(sweep.glob("*/checkpoints/step_*.pt")), first)
    before = (sweep / "multirun.yaml").read_bytes()
    again = train_cli(*args, cwd=tmp_path, timeout=120)
    assert one_error_line(again) == (
        f"deeprl: error: hydra.sweep.dir: {sweep} is in use by a sweep still running there (pid {first.pid} on "
        f"{socket.gethostname()}); wait for it to end, or stop it (Ctrl-C, or kill -INT <pid>: it checkpoints), "
        "then run this again")
    assert (sweep / "multirun.yaml").read_bytes() == before
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-3000:]
    assert "failed" not in err
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert len(jobs) == 2 and all(len(list(job.glob("events.out.tfevents.*"))) == 1 for job in jobs)
    # Once it has ended, the same command goes on as before: each job is already finished.
    rerun = train_cli(*args, cwd=tmp_path, timeout=120)
    assert rerun.returncode == 0 and rerun.stdout.count("deeprl | already finished: ") == 2, rerun.stderr[-2000:]


def test_hold_is_one_process_at_a_time_and_ends_with_that_process_not_its_forked_workers(tmp_path):
    try_hold = ("import sys; from pathlib import Path; from deeprl.core.run_dir import hold\n"
                "from deeprl.core.errors import ConfigError\n"
                "try:\n    hold(Path(sys.argv[1]), 'resume')\nexcept ConfigError as e:\n    print(e)\n"
                "else:\n    print('held')\n")

    def other_process() -> str:
        return subprocess.run([sys.executable, "-c", try_hold, str(tmp_path)], capture_output=True, text=True,
                              timeout=60, check=True).stdout.strip()

    hold(tmp_path, "resume")
    hold(tmp_path, "resume")  # again in the same process: already held, no error
    assert other_process().startswith(f"resume: {tmp_path.resolve()} is in use by a run still training there "
                                      f"(pid {os.getpid()} on ")
    child = os.fork()  # as an async env worker is started
    if child == 0:
        time.sleep(30)
        os._exit(0)
    try:
        release(tmp_path)
        assert other_process() == "held"  # the worker, still alive, does not keep the dir held
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)


def test_a_resume_holds_without_writing_until_its_run_starts(tmp_path):
    """A resume may still be refused after it takes the lock (e.g. a checkpoint of another network
    layout), and a refused resume leaves the run's files as they were: it writes its note, and a
    lock file for a run that had none, only when its run starts. Meanwhile a process refused by the
    lock reads the previous holder's note, which names a process that has ended: not named."""
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                           check=True)
    hold(tmp_path, "resume", note=False)
    try:
        assert not (tmp_path / ".lock").exists()  # a run older than the lock: none made yet
        note_holder(tmp_path)
        assert (tmp_path / ".lock").read_text() == f"pid {os.getpid()} on {socket.gethostname()}\n"
    finally:
        release(tmp_path)
    (tmp_path / ".lock").write_text(f"pid {ended.stdout.strip()} on {socket.gethostname()}\n")
    waiting = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path\n"
                                "from deeprl.core.run_dir import hold\n"
                                "hold(Path(sys.argv[1]), 'resume', note=False); print('held', flush=True)\n"
                                "time.sleep(60)", str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert waiting.stdout.readline().strip() == "held"
        with pytest.raises(ConfigError, match=r"is in use by a run still training there \(another process\);"):
            hold(tmp_path, "resume")
    finally:
        waiting.kill()
        waiting.wait()


def test_the_claim_is_the_dir_hydra_writes_even_with_a_tilde(tmp_path, monkeypatch):
    """Hydra takes hydra.run.dir='~/x' literally (a dir named "~" in the working dir); the claim
    and the lock once went to the home dir instead, leaving Hydra's dir unclaimed."""
    monkeypatch.chdir(tmp_path)
    claim = claim_run_dir(Path("~/x"))
    assert claim.run_dir == tmp_path / "~" / "x" and claim.made == tmp_path / "~"
    assert (tmp_path / "~" / "x").is_dir()
