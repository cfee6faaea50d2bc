"""Sweeps end to end (`train -m`), each launcher for real: joblib with failing jobs among good ones,
an Optuna search stopped and continued from its SQLite study, submitit's local executor with a
preempted job that requeues and resumes from its checkpoint, and a sweep stopped by Ctrl-C or
SIGTERM under joblib, Ray in-process and submitit, each job checkpointing before the sweep ends."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import train_cli
from deeprl.sweep_stop import holder_process, job_holders

QUICK = ["total_steps=1600", "eval.episodes=2", "log.progress=false"]


def summaries(sweep_dir: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sweep_dir.rglob("summary.json")}


def test_failed_jobs_are_reported_and_the_others_finish_with_capped_threads(tmp_path):
    sweep_dir = tmp_path / "sweep"
    sweep_dir.mkdir()
    (sweep_dir / ".stopping").write_text("15\n")  # as a sweep stopped by a signal leaves it: run again, it goes on
    # A bad value, a learning rate that trips the numerical guard, and a good one; threads=0 asks
    # for torch's default (all cores), which the sweep caps to cores / parallel jobs.
    result = train_cli("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "algo.lr=1e-3,-1,1e12",
                       "seed=1,2", "threads=0", *QUICK, f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "deeprl: error: 4 of 6 jobs failed:" in result.stderr
    failed = {p.parent.name: p.read_text().strip() for p in sweep_dir.rglob("failed.txt")}
    assert len(failed) == 4
    assert sum("algo.lr: must be a number > 0" in reason for reason in failed.values()) == 2
    assert sum(reason.startswith("guard: non-finite") for reason in failed.values()) == 2
    done = summaries(sweep_dir)
    assert sorted(done) == [f"algo.lr=0.001,eval.episodes=2,log.progress=False,seed={s},threads=0,total_steps=1600"
                            for s in (1, 2)]
    assert not (sweep_dir / ".stopping").exists()
    cores = len(os.sched_getaffinity(0))
    for summary in done.values():
        assert summary["threads"] * min(2, cores) <= max(cores, 2)
        assert summary["threads"] == max(1, cores // min(2, cores))
    # TensorBoard's HParams tab gets the keys the sweep varies, not the whole config.
    run_dir = next(sweep_dir.glob("algo.lr=0.001*seed=1*"))
    acc = EventAccumulator(str(run_dir), size_guidance={"tensors": 0})
    acc.Reload()
    info = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    assert b"algo.lr" in info and b"seed" in info and b"algo.gamma" not in info and b"total_steps" not in info
    # Each job's log holds its own lines: the banner and result of a good job, the reason of a failed one.
    for job_dir in sweep_dir.iterdir():
        if job_dir.is_dir():
            log = (job_dir / "train.log").read_text()
            if job_dir.name in done:
                assert (f"[deeprl][INFO] - dqn on CartPole-v1 | algo=dqn with conf/tuned/dqn_cartpole.yaml | "
                        f"seed {done[job_dir.name]['seed']}") in log
                assert "[deeprl][INFO] - eval return" in log and str(job_dir) in log
            else:
                assert "[deeprl][ERROR] - job " in log and failed[job_dir.name] in log
    # The jobs ran side by side, and each console line is whole: one deeprl line per line.
    lines = (result.stdout + result.stderr).splitlines()
    assert all(line.count("deeprl |") + line.count("deeprl:") <= 1 for line in lines), lines
    assert sum(line.startswith("deeprl | dqn on CartPole-v1") for line in lines) == 4  # -1 never starts


def run_search(cwd: Path, n_trials: int) -> subprocess.Popen:
    exe = Path(sys.executable).parent / "train"
    args = ["-m", "algo=dqn", "env=cartpole", "+search=dqn_cartpole", f"hydra.sweeper.n_trials={n_trials}",
            "optimize.seeds=1", "total_steps=8000", "eval.every=4000", "eval.episodes=2",
            "hydra.sweep.dir=search"]
    return subprocess.Popen([str(exe), *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def started_trials(sweep_dir: Path) -> int:
    return sum(1 for d in sweep_dir.glob("*") if d.is_dir() and list(d.glob("events.out.tfevents.*")))


def test_an_optuna_search_stopped_midway_continues_to_n_trials(tmp_path):
    sweep_dir = tmp_path / "search"
    proc = run_search(tmp_path, 3)
    deadline = time.time() + 120
    while started_trials(sweep_dir) < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the search ended before its second trial could be stopped"
    proc.send_signal(signal.SIGINT)  # Ctrl-C during the second trial
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0, err[-2000:]
    storage = f"sqlite:///{sweep_dir / 'optuna.db'}"
    states = [t.state for t in optuna.load_study(study_name="dqn_cartpole", storage=storage).trials]
    assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING]

    proc = run_search(tmp_path, 3)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert "study dqn_cartpole: 1 trial(s) done, 1 interrupted (run again), 2 to go" in out
    # Optuna's own lines reach a pipe plain, without colour codes
    assert "Using an existing study with name 'dqn_cartpole'" in err and "\x1b[" not in out + err
    study = optuna.load_study(study_name="dqn_cartpole", storage=storage)
    assert [t.state for t in study.trials].count(optuna.trial.TrialState.COMPLETE) == 3
    # The continued sweep drew new parameters: its seeded sampler did not replay the first sweep's.
    drawn = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(drawn)) == len(drawn) == 4, drawn
    best = (sweep_dir / "optimization_results.yaml").read_text()
    assert "best_params" in best and "algo.lr" in best
    preset = (sweep_dir / "best_tuned.yaml").read_text()
    assert preset.startswith("# @package _global_") and f"lr: {study.best_params['algo.lr']}" in preset


def as_from_a_terminal() -> None:
    """preexec_fn of a sweep a test stops with Ctrl-C: SIGINT handled, as a terminal's shell starts
    a command. A suite run as a background job (`make test &`) starts with SIGINT ignored, its
    processes inherit that, and a sweep leaves an ignored SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def stop_when_training(proc: subprocess.Popen, sweep_dir: Path, jobs: int, signum: int, group: bool) -> str:
    """Once `jobs` runs of the sweep have begun training (each logs once its signal handlers are in)
    and taken some steps, send `signum` to the sweep's process group (a terminal's Ctrl-C) or to its
    process alone (`kill <pid>`); return its stderr once it has ended."""
    deadline = time.time() + 180
    started = lambda: {p.parent for p in sweep_dir.glob("*/events.out.tfevents.*")}  # noqa: E731
    while len(started()) < jobs and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(2.0)
    assert proc.poll() is None, proc.communicate()[1][-3000:]
    assert summaries(sweep_dir) == {}, "a job ended before the stop: make the jobs longer"
    if group:
        os.killpg(proc.pid, signum)
    else:
        proc.send_signal(signum)
    return proc.communicate(timeout=180)[1]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the job processes in /proc")
@pytest.mark.parametrize(("sig", "group"), [("SIGINT", True), ("SIGTERM", False)],
                         ids=["ctrl-c-to-the-group", "sigterm-to-the-sweep-alone"])
def test_a_stopped_ray_sweep_checkpoints_its_running_jobs_and_starts_no_queued_one(tmp_path, sig, group):
    """Ray's workers run in process groups of their own and block SIGINT: a terminal's Ctrl-C never
    reached them, and they ended with the sweep, each job's training lost. A SIGTERM to the sweep
    met ray.init's own handlers, which ended it at once, Ray and the jobs with it. The sweep now
    hands the signal to each process holding one of its job dirs and waits for their checkpoints;
    the job Ray still had queued (3 jobs on 2 CPUs) does not start. (Run again, a sweep's jobs go on
    from their checkpoints whatever the launcher, as the submitit requeue test below shows, and the
    note that kept queued jobs from starting is gone: the failed-jobs test above.)"""
    signum = signal.Signals[sig]
    sweep_dir = tmp_path / "sweep"
    args = ["-m", "hydra/launcher=ray_local", "hydra.launcher.ray.init.num_cpus=2", "seed=1,2,3",
            "total_steps=30000", "checkpoint.every=0", "checkpoint.every_minutes=0", "eval.every=0",
            "eval.episodes=2", "log.progress=false", f"hydra.sweep.dir={sweep_dir}"]
    exe = str(Path(sys.executable).parent / "train")
    proc = subprocess.Popen([exe, *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=as_from_a_terminal)
    err = stop_when_training(proc, sweep_dir, 2, signum, group=group)
    assert proc.returncode == 128 + signum, err[-3000:]
    # Ray forwards its workers' lines a moment later: the sweep's line is not always the last.
    assert (f"deeprl | sweep stopped by {sig}; to go on, run the same command with hydra.sweep.dir={sweep_dir} "
            "(finished jobs are kept, the others resume from their checkpoints)") in err.splitlines(), err[-3000:]
    assert "Traceback" not in err and "Unhandled error" not in err and "SIGTERM received" not in err, err[-3000:]
    stopped = list(sweep_dir.glob("*/checkpoints/step_*.pt"))
    assert len(stopped) == 2 and summaries(sweep_dir) == {}, err[-3000:]
    assert not list(sweep_dir.glob("*seed=3*/events.out.tfevents.*")), "the queued job began training"


def submitit_tasks(sweep_dir: Path) -> list[int]:
    """Pids of the submitit job processes of this sweep."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"submitit.core._submit" in cmd and str(sweep_dir).encode() in cmd:
            pids.append(int(proc.name))
    return pids


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the job processes in /proc")
def test_submitit_jobs_preempted_midway_requeue_and_resume_from_their_checkpoints(tmp_path):
    sweep_dir = tmp_path / "sweep"
    exe = Path(sys.executable).parent / "train"
    proc = subprocess.Popen([str(exe), "-m", "hydra/launcher=submitit_local", "seed=1,2", "total_steps=20000",
                             "eval.every=0", "eval.episodes=2", "log.progress=false",
                             f"hydra.sweep.dir={sweep_dir}"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while (len(list(sweep_dir.glob("*/events.out.tfevents.*"))) < 2 and proc.poll() is None
           and time.time() < deadline):
        time.sleep(0.05)
    time.sleep(1.0)  # let both jobs take some steps, so the stop lands midway and not at step 0
    pids = submitit_tasks(sweep_dir)
    assert len(pids) == 2 and proc.poll() is None
    for pid in pids:
        os.kill(pid, signal.SIGUSR2)  # what SLURM (through submitit) sends before preemption or a time limit
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    done = summaries(sweep_dir)
    assert sorted(s["seed"] for s in done.values()) == [1, 2]
    for summary in done.values():
        assert summary["total_steps"] == 20000
        assert len(summary["resumed"]) == 1 and 0 < summary["resumed"][0]["step"] < 20000
    logs = "".join(p.read_text() for p in sweep_dir.glob(".submitit/*/*_log.err"))
    assert logs.count("stopped by SIGUSR2") == 2


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the job processes in /proc")
@pytest.mark.parametrize(("sig", "group"), [("SIGTERM", False), ("SIGINT", True)],
                         ids=["sigterm-to-the-sweep-alone", "ctrl-c-to-the-group"])
def test_a_stopped_submitit_sweep_stops_its_jobs_with_their_checkpoints(tmp_path, sig, group):
    """`kill <pid>` of a submitit_local sweep: its jobs are not multiprocessing children, and they
    trained on to their ends, unseen, after the sweep had said they would resume from their
    checkpoints. The sweep hands the signal to the processes holding its job dirs and waits.
    A terminal's Ctrl-C also reached submitit's controller processes (one per job), which printed a
    KeyboardInterrupt traceback each after the sweep's last line and killed their jobs a second
    later; they now start with SIGINT blocked, and only the jobs take it."""
    signum = signal.Signals[sig]
    sweep_dir = tmp_path / "sweep"
    exe = str(Path(sys.executable).parent / "train")
    proc = subprocess.Popen([exe, "-m", "hydra/launcher=submitit_local", "seed=1,2", "total_steps=200000",
                             "checkpoint.every=0", "checkpoint.every_minutes=0", "eval.every=0", "eval.episodes=1",
                             "log.progress=false", f"hydra.sweep.dir={sweep_dir}"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=as_from_a_terminal)
    err = stop_when_training(proc, sweep_dir, 2, signum, group=group)
    assert proc.returncode == 128 + signum, err[-3000:]
    assert err.strip().splitlines()[-1].startswith(f"deeprl | sweep stopped by {sig}; to go on, run the same command")
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-3000:]
    logs = "".join(p.read_text() for p in sweep_dir.glob(".submitit/*/*_log.err"))
    stops = re.findall(rf"deeprl \| stopped by {sig} at step \d+; checkpoint (\S+)", logs)
    assert len(stops) == 2 and all(Path(path).is_file() for path in stops), logs[-3000:]
    assert "Traceback" not in logs, logs[-3000:]
    assert submitit_tasks(sweep_dir) == [], "a job outlived the sweep"
    assert summaries(sweep_dir) == {}, "a job trained on to its end"


def children(pid: int) -> list[int]:
    """The processes `pid` started (Linux: /proc), e.g. a sweep's joblib workers."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads the process table from /proc")
@pytest.mark.parametrize(("sig", "to", "n_jobs"), [("SIGTERM", "sweep", 2), ("SIGINT", "group", 4),
                                                  ("SIGTERM", "worker", 2)],
                         ids=["sigterm-to-the-sweep-alone", "ctrl-c-with-idle-workers", "sigterm-to-one-worker"])
def test_a_stopped_sweep_waits_for_every_jobs_checkpoint_and_leaves_no_worker(tmp_path, sig, to, n_jobs):
    """`kill <pid>` of a joblib sweep (its process alone): the sweep hands the SIGTERM to its workers.
    A terminal's Ctrl-C with more workers than jobs: the two workers with no job take it without
    ending. `kill <pid>` of one worker: its job stops the other one too, as the sweep cannot go on
    without it. Each way each job writes its stop checkpoint before joblib ends the workers, and the
    sweep ends with its one line. Before, `kill <pid>` ended the sweep alone and its workers trained
    on unseen; a Ctrl-C made joblib kill the workers at once (one of two jobs lost its checkpoint),
    and a worker with no job ended on it, which broke joblib's pool the same way; a worker's own
    SIGTERM left its job waiting 10 minutes for the other, which joblib then killed unsaved."""
    signum = signal.Signals[sig]
    sweep_dir = tmp_path / "sweep"
    args = ["-m", "hydra/launcher=joblib", f"hydra.launcher.n_jobs={n_jobs}", "seed=1,2", "total_steps=200000",
            "checkpoint.every=0", "checkpoint.every_minutes=0", "eval.every=0", "eval.episodes=1",
            "log.progress=false", f"hydra.sweep.dir={sweep_dir}"]
    exe = str(Path(sys.executable).parent / "train")
    proc = subprocess.Popen([exe, *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=as_from_a_terminal)
    deadline = time.time() + 120
    # Both runs have their handlers in once they log (they go in first) and have taken a few steps.
    started = lambda: {p.parent for p in sweep_dir.glob("*/events.out.tfevents.*")}  # noqa: E731
    while len(started()) < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(2.0)
    assert proc.poll() is None, proc.communicate()[1][-3000:]
    workers = children(proc.pid)
    assert len(workers) >= n_jobs, workers
    if to == "group":
        os.killpg(proc.pid, signum)  # as a terminal's Ctrl-C reaches the whole process group
    elif to == "worker":
        holders = sorted(holder_process(holder)[0] for _, holder in job_holders(sweep_dir))
        assert len(holders) == 2 and set(holders) <= set(workers), (holders, workers)
        os.kill(holders[0], signum)
    else:
        proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err[-3000:]
    assert [line for line in err.splitlines() if line.strip() and not line.startswith("deeprl")] == [], err[-3000:]
    stops = re.findall(rf"deeprl \| stopped by {sig} at step \d+; checkpoint (\S+)", err)
    assert len(stops) == 2 and all(Path(path).is_file() for path in stops), err[-3000:]
    assert err.strip().splitlines()[-1].startswith(f"deeprl | sweep stopped by {sig}; to go on, run the same command")
    deadline = time.time() + 30
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers), "workers outlived the sweep"
    assert summaries(sweep_dir) == {}, "a job trained on to its end"


def test_a_search_goes_on_past_failed_trials_and_lists_them_at_the_end(tmp_path):
    """A trial that fails (a bad value, the numerical guard) is told to Optuna as failed and the
    search goes on: before, its NaN reached Optuna as a value, which Optuna refuses, and the first
    failed trial ended the search with a traceback."""
    sweep_dir = tmp_path / "search"
    result = train_cli("-m", "+search=dqn_cartpole", "hydra.sweeper.n_trials=4", "algo.gamma=choice(0.99,1.5)",
                       "optimize.seeds=1", "total_steps=1000", "eval.every=0", "eval.episodes=2", "log.progress=false",
                       f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path, timeout=300)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "float-castable" not in result.stderr + result.stdout
    study = optuna.load_study(study_name="dqn_cartpole", storage=f"sqlite:///{sweep_dir / 'optuna.db'}")
    states = {t.number: (t.params["algo.gamma"], t.state) for t in study.trials}
    assert len(states) == 4, states
    failed = [n for n, (gamma, state) in states.items() if state == optuna.trial.TrialState.FAIL]
    assert [n for n, (gamma, _) in states.items() if gamma == 1.5] == failed
    assert 0 < len(failed) < 4, f"the seeded draws should mix both values: {states}"
    assert f"deeprl: error: {len(failed)} of 4 jobs failed:" in result.stderr
    assert result.stderr.count("failed: algo.gamma:") == len(failed)
    assert (sweep_dir / "best_tuned.yaml").is_file() and study.best_params["algo.gamma"] == 0.99

    # Every trial failed: the same list at the end, no traceback, and a line saying there is no best;
    # the same command again (its trials all done) says so too, and does not exit 0.
    no_best = ("deeprl: error: study dqn_cartpole: none of its 2 trials completed, so it has no best parameters; "
               "fix what failed them (failed.txt in each job dir), then search again in a new hydra.sweep.dir or "
               "with more hydra.sweeper.n_trials")
    for again in (False, True):
        result = train_cli("-m", "+search=dqn_cartpole", "hydra.sweeper.n_trials=2", "algo.gamma=1.5", "optimize.seeds=1",
                           "total_steps=1000", "eval.every=0", "log.progress=false",
                           f"hydra.sweep.dir={tmp_path / 'all'}", cwd=tmp_path, timeout=300)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
        assert result.stderr.strip().splitlines()[-1] == no_best
        assert ("deeprl: error: 2 of 2 jobs failed:" in result.stderr) != again
