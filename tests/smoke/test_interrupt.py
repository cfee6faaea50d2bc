"""Runs that survive: Ctrl-C, SIGTERM and kill -9 in a subprocess, then `train resume=`; a
truncated checkpoint; bad resume requests; the guard against non-finite numbers."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import compose_config, train_cli
from deeprl.build import build
from deeprl.core.checkpoint import step_files
from deeprl.logging import Logger
from deeprl.run import extended_note

TRAIN = str(Path(sys.executable).parent / "train")
# The CartPole DQN preset (8 envs), long enough that a signal always lands mid-run.
LONG = ["algo=dqn", "env=cartpole", "total_steps=2000000", "log.progress=false", "eval.every=0"]


def steps(run_dir: Path, tag: str) -> list[int]:
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return [e.step for e in acc.Scalars(tag)]


def start(cwd: Path, *args: str, group: bool = False) -> tuple[subprocess.Popen, Path]:
    """A training subprocess, once it has started stepping; and its run dir. `group`: in a process
    group of its own, as a terminal's Ctrl-C reaches it (and any env workers)."""
    proc = subprocess.Popen([TRAIN, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=group)
    banner = proc.stdout.readline()
    match = re.search(r"run dir (\S+)", banner)
    assert match, banner + proc.stderr.read()
    run_dir = Path(match.group(1))
    deadline = time.monotonic() + 60
    while not list(run_dir.glob("events.out.tfevents.*")) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(2.0)  # some thousands of steps
    return proc, run_dir


# Steps the resumed piece trains: CartPole's episodes end by step 500, so with 8 envs every env ends
# one within 4000 steps, however well the agent balances by the stop (800 was too few once the stop
# came late enough on a loaded machine: no episode ended after it).
MORE = 4000


def finish_resumed(cwd: Path, run_dir: Path, stopped_at: int, more: int = MORE) -> dict:
    result = train_cli(f"resume={run_dir}", f"total_steps={stopped_at + more}", cwd=cwd)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["total_steps"] == stopped_at + more
    # One x axis across both pieces: no duplicate, no backward point.
    sps = steps(run_dir, "charts/SPS")
    assert sps == sorted(set(sps)) and sps[-1] == stopped_at + more
    returns = steps(run_dir, "charts/episodic_return")
    assert returns == sorted(returns) and returns[-1] > stopped_at
    return summary


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_signal_checkpoints_prints_the_resume_command_and_resume_continues(tmp_path, sig, code):
    proc, run_dir = start(tmp_path, *LONG)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-2000:]
    match = re.search(r"stopped by \w+ at step (\d+); checkpoint (\S+)", err)
    assert match, err
    stopped_at = int(match.group(1))
    assert Path(match.group(2)) == run_dir / "checkpoints" / f"step_{stopped_at}.pt"
    assert Path(match.group(2)).is_file()
    assert f"resume with: train resume={run_dir}" in err
    assert "Traceback" not in err
    assert not (run_dir / "summary.json").exists()
    summary = finish_resumed(tmp_path, run_dir, stopped_at)
    # The only note: the total it was stopped short of (2M steps) became the resume's.
    assert summary["resumed"] == [{"step": stopped_at, "notes": extended_note(2_000_000, stopped_at + MORE)}]
    # The run's log keeps both pieces: the stop, then the resumed piece to its result.
    log = (run_dir / "train.log").read_text()
    order = [f"stopped by {signal.Signals(sig).name} at step {stopped_at}", f"resume with: train resume={run_dir}",
             f"resuming at step {stopped_at}", "eval return"]
    assert all(part in log for part in order), log
    assert [log.index(part) for part in order] == sorted(log.index(part) for part in order), log


def test_kill_9_loses_at_most_one_checkpoint_interval(tmp_path):
    proc, run_dir = start(tmp_path, *LONG, "checkpoint.every=2000", "log.every=1000")
    folder = run_dir / "checkpoints"
    deadline = time.monotonic() + 60
    while not any(step >= 4000 for step, _ in step_files(folder)) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    saved = [step for step, _ in step_files(folder)]
    assert saved and saved[-1] >= 4000
    assert len(saved) <= 2, "checkpoint.keep=2 keeps two step files"
    summary = finish_resumed(tmp_path, run_dir, saved[-1])
    assert summary["resumed"][0]["step"] == saved[-1]
    # The killed piece's curves reach its checkpoint: what it logged up to there was on disk first
    # (the logger holds scalars back in batches and writes them out before every checkpoint).
    sps = steps(run_dir, "charts/SPS")
    assert [s for s in sps if s <= saved[-1]] == list(range(1000, saved[-1] + 1, 1000))


def test_every_checkpoint_finds_the_curves_up_to_its_step_on_disk(tmp_path, monkeypatch):
    """The logger holds scalars back; a checkpoint writes them out first, or a run killed after it
    and resumed would have a hole in its curves up to the checkpoint."""
    monkeypatch.setattr(Logger, "FLUSH_SCALARS", 10**9)  # no batch comes due by itself
    monkeypatch.setattr(Logger, "FLUSH_SECONDS", 1e9)
    cfg = compose_config("algo=q_learning", "env=gridworld_4x3", "total_steps=3000", "checkpoint.every=1000",
                         "log.every=250", "log.progress=false", "eval.every=0")
    run = build(cfg, tmp_path)
    on_disk, save = {}, run.save

    def save_and_look(step: int, name: str) -> Path:
        path = save(step, name)
        on_disk[name] = steps(tmp_path, "charts/SPS")
        return path

    run.save = save_and_look
    run.execute()
    assert on_disk["step_1000.pt"] == [250, 500, 750, 1000]
    assert on_disk["step_2000.pt"] == list(range(250, 2001, 250))


def test_a_truncated_latest_checkpoint_is_skipped_with_a_warning(tmp_path):
    result = train_cli("algo=dqn", "env=cartpole", "total_steps=1200", "algo.learning_starts=200",
                       "checkpoint.every=400", "checkpoint.keep=0", "log.progress=false", "eval.every=0", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    (run_dir,) = (tmp_path / "outputs" / "dqn" / "cartpole").iterdir()
    final = run_dir / "checkpoints" / "final.pt"
    final.write_bytes(final.read_bytes()[: final.stat().st_size // 2])  # a write cut short by a crash
    resumed = train_cli(f"resume={run_dir}", "total_steps=1600", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"skipping unreadable checkpoint {final}" in resumed.stderr
    assert "resuming at step 800" in resumed.stdout


def _bad_resume_cases(root: Path) -> list[tuple[list[str], str, Path]]:
    """(arguments, key named in the error, a run dir that must be left as it was)."""
    finished = train_cli("algo=q_learning", "env=gridworld_4x3", "total_steps=300", "log.progress=false", cwd=root)
    assert finished.returncode == 0, finished.stderr[-2000:]
    (run,) = (root / "outputs" / "q_learning" / "gridworld_4x3").iterdir()
    sweep = train_cli("-m", "algo=value_iteration", "env=gridworld_4x3", "seed=1,2", "log.progress=false", cwd=root)
    assert sweep.returncode == 0, sweep.stderr[-2000:]
    (sweep_dir,) = (root / "multirun").iterdir()
    planner = next(p for p in sweep_dir.iterdir() if (p / "checkpoints" / "final.pt").is_file())
    empty = root / "empty_run"
    (empty / ".hydra").mkdir(parents=True)
    (empty / ".hydra" / "config.yaml").write_text((run / ".hydra" / "config.yaml").read_text())
    (empty / "checkpoints").mkdir()
    (empty / "checkpoints" / "step_100.pt").write_bytes(b"not a checkpoint")
    return [
        ([f"resume={run}", "algo.gamma=0.5"], "algo.gamma", run),
        ([f"resume={run}", "env=cartpole"], "env", run),
        ([f"resume={run}"], "total_steps", run),
        ([f"resume={run}", "total_steps=10"], "total_steps", run),
        # A planner ends when it converges: total_steps does not extend it.
        ([f"resume={planner}", "total_steps=100000"], "resume", planner),
        (["-m", f"resume={run}"], "resume", run),
        ([f"resume={sweep_dir}"], "resume", sweep_dir),
        ([f"resume={empty}"], "resume", empty),
        ([f"resume={root / 'no_such_dir'}"], "resume", root),
    ]


def test_bad_resume_requests_fail_with_one_line_and_touch_nothing(tmp_path):
    def snapshot(folder: Path) -> dict:
        return {p: p.stat().st_mtime_ns for p in folder.rglob("*")}

    for args, key, folder in _bad_resume_cases(tmp_path):
        before = snapshot(folder)
        result = train_cli(*args, cwd=tmp_path)
        lines = [line for line in result.stderr.strip().splitlines() if line.strip() and "warning" not in line]
        assert result.returncode == 2, (args, result.stderr)
        assert len(lines) == 1 and lines[0].startswith(f"deeprl: error: {key}"), (args, result.stderr)
        assert "Traceback" not in result.stderr + result.stdout
        assert snapshot(folder) == before, f"{args} changed {folder}"
    assert not (tmp_path / "no_such_dir").exists()


def test_guard_stops_on_a_non_finite_loss_and_keeps_the_last_good_checkpoint(tmp_path):
    result = train_cli("algo=dqn", "env=cartpole", "total_steps=20000", "algo.lr=1e12", "checkpoint.every=1000",
                       "log.progress=false", "eval.every=0", cwd=tmp_path)
    assert result.returncode == 3, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    match = re.match(r"deeprl: error: guard: non-finite losses/(\w+) at step (\d+); .* checkpoint is (\S+);", lines[0])
    assert match, lines[0]
    step, kept = int(match.group(2)), Path(match.group(3))
    assert kept.is_file() and int(kept.stem.split("_")[1]) < step
    (run_dir,) = (tmp_path / "outputs" / "dqn" / "cartpole").iterdir()
    assert not (run_dir / "checkpoints" / "final.pt").exists() and not (run_dir / "summary.json").exists()


def test_guard_warn_goes_on(tmp_path):
    result = train_cli("algo=dqn", "env=cartpole", "total_steps=3000", "algo.lr=1e12", "guard=warn",
                       "log.progress=false", "eval.every=0", "eval.episodes=2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    warnings = [line for line in result.stdout.splitlines() if "non-finite" in line]
    assert warnings and all("guard=warn" in line for line in warnings)
    assert len(warnings) == len(set(line.split(" at step")[0] for line in warnings)), "one line per metric"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX signals")
def test_signal_handlers_are_restored_after_a_run(tmp_path):
    from conftest import run_in_process

    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    run_in_process(tmp_path, "algo=value_iteration", "env=gridworld_4x3")
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_a_second_ctrl_c_stops_at_once(tmp_path):
    # 200000 updates in one step, from step 100 on: nearly all the time is spent inside one step,
    # where the first Ctrl-C can only ask for a stop at its end; the second must not wait for it.
    proc, run_dir = start(tmp_path, *LONG, "algo.learning_starts=100", "algo.gradient_steps=200000")
    proc.send_signal(signal.SIGINT)
    first = ""
    while "send it again to stop at once" not in first:  # the first one has been taken in
        line = proc.stderr.readline()
        assert line, "the run ended before acknowledging the first Ctrl-C"
        first += line
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGINT, first + err[-2000:]
    assert "stopped by" not in err, "the second Ctrl-C waited for the checkpoint"


def test_a_stop_during_the_final_evaluation_stops_there_and_the_resume_finishes(tmp_path):
    """SIGTERM while the run plays its final evaluation (2000 Pendulum episodes of 200 steps, side by
    side): the run stops at the evaluation's next step with a checkpoint at its last step, not
    final.pt (before, the evaluation played to its end and the run exited 0 as if nothing came).
    `train resume=` with no new total then only finishes it: the evaluation, final.pt, the summary."""
    proc, run_dir = start(tmp_path, "algo=ddpg", "env=pendulum", "total_steps=1000", "algo.learning_starts=900",
                          "checkpoint.every=990", "eval.every=0", "eval.episodes=2000", "log.progress=false")
    until(lambda: (run_dir / "checkpoints" / "step_990.pt").is_file(), proc)
    time.sleep(0.5)  # ten steps on: the final evaluation is under way (its envs take ~0.5 s to make)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err[-2000:]
    assert "stopped by SIGTERM at step 1000" in err, err[-2000:]
    assert not (run_dir / "summary.json").exists() and not (run_dir / "checkpoints" / "final.pt").exists()
    resumed = train_cli(f"resume={run_dir}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 1000 and summary["eval_episodes"] == 2000
    assert [e["step"] for e in summary["evaluations"]] == [1000]
    assert steps(run_dir, "eval/episodic_return") == [1000]


def test_ctrl_c_reaching_async_env_workers_still_checkpoints_and_resumes(tmp_path):
    """With env.vectorization=async the terminal's Ctrl-C reaches every worker process too: they
    leave it to the run, which finishes its step, saves the envs' states from them and exits."""
    proc, run_dir = start(tmp_path, "algo=dqn", "env=minatar_breakout", "env.vectorization=async", "num_envs=2",
                          "total_steps=2000000", "algo.learning_starts=500", "log.progress=false", "eval.every=0",
                          "eval.episodes=2", group=True)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "Error" not in err, err[-2000:]
    stopped_at = int(re.search(r"stopped by SIGINT at step (\d+)", err).group(1))
    # MinAtar Breakout's games end within a few hundred steps while the agent is still exploring:
    # 1000 steps (500 per env) see some end after the stop, at a quarter of CartPole's cost.
    summary = finish_resumed(tmp_path, run_dir, stopped_at, more=1000)
    # MinAtar's states came back exactly: no note of restarted episodes, only the new total's.
    assert summary["resumed"] == [{"step": stopped_at, "notes": extended_note(2_000_000, stopped_at + 1000)}]


def until(found, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not found():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-2000:]
        time.sleep(0.002)


def lock_taken(run_dir: Path) -> bool:
    import fcntl

    with open(run_dir / ".lock", "rb") as file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(file, fcntl.LOCK_UN)
        return False


# Both signals take the same handler: SIGTERM lands at two moments between SIGINT's four.
@pytest.mark.parametrize(("sig", "code", "delays"), [(signal.SIGINT, 130, (0.0, 0.2, 0.4, 0.8)),
                                                     (signal.SIGTERM, 143, (0.1, 0.6))], ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_a_run_starts_up_is_one_line_and_keeps_nothing_half_made(tmp_path, sig, code, delays):
    """Ctrl-C (or SIGTERM) in the second or two a run spends importing torch and building its envs,
    before its own handlers would checkpoint, printed a KeyboardInterrupt traceback (SIGTERM: no
    word) and left a run dir with a config and no checkpoint; and a Ctrl-C landing while torch's C
    start-up imported numpy was dropped there, so the run trained on. Each signal lands once Hydra
    has written the run's `.hydra/` (a new run) or the resume holds the run dir, before torch is
    imported and the envs are built; the delays spread it over the whole start-up."""
    run_dir = tmp_path / "run"
    noted = f"deeprl | {sig.name}: stopping once started up (send it again to stop at once)"
    for delay in delays:
        new = subprocess.Popen([TRAIN, "hydra.run.dir=run", *LONG], cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        until(lambda: (run_dir / ".hydra" / "config.yaml").is_file(), new)
        time.sleep(delay)
        new.send_signal(sig)
        out, err = new.communicate(timeout=60)
        assert new.returncode == code, (delay, err[-2000:])
        assert err.split() == f"{noted} deeprl | stopped by {sig.name} before the run started; nothing was " \
                              "kept".split(), (delay, err[-2000:])
        assert "deeprl |" not in out  # stopped before the banner
        assert not run_dir.exists()

    finished = train_cli("hydra.run.dir=run", *LONG[:2], "total_steps=400", "log.progress=false", cwd=tmp_path)
    assert finished.returncode == 0, finished.stderr[-2000:]
    before = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in run_dir.rglob("*")}
    resumed = subprocess.Popen([TRAIN, f"resume={run_dir}", "total_steps=800", "log.progress=false"], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    until(lambda: lock_taken(run_dir), resumed)
    resumed.send_signal(sig)
    out, err = resumed.communicate(timeout=60)
    assert resumed.returncode == code, err[-2000:]
    assert err.split() == f"{noted} deeprl | stopped by {sig.name} before the run started; the run dir is as it " \
                          "was".split()
    assert {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in run_dir.rglob("*")} == before
