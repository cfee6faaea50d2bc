"""Sweep jobs' pieces: thread caps per launcher, scores, the search's preset file, varied keys."""

import math
import os
import signal
import subprocess
import sys

import pytest
import yaml
from omegaconf import OmegaConf

from deeprl import sweep, sweep_report, sweep_stop


@pytest.mark.parametrize("n_jobs, cores, cap", [(-1, 2, 1), (-1, 16, 1), (2, 2, 1), (1, 4, 4), (2, 8, 4),
                                                (4, 2, 1), (-2, 8, 1), (-5, 8, 2)])
def test_joblib_jobs_times_threads_fit_in_the_cores(n_jobs, cores, cap):
    launcher = OmegaConf.create({"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher",
                                 "n_jobs": n_jobs})
    assert sweep.threads_cap(launcher, cores) == cap
    parallel = cores + 1 + n_jobs if n_jobs < 0 else n_jobs  # joblib's meaning of negative n_jobs
    assert min(parallel, cores) * cap <= cores or cap == 1


def test_ray_and_submitit_jobs_use_the_cpus_they_are_given():
    ray = OmegaConf.create({"_target_": "hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher",
                            "ray": {"init": {}, "remote": {"num_cpus": 3}}})
    assert sweep.threads_cap(ray, 16) == 3
    slurm = OmegaConf.create({"_target_": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher",
                              "cpus_per_task": 8})
    assert sweep.threads_cap(slurm, 64) == 8
    basic = OmegaConf.create({"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"})
    assert sweep.threads_cap(basic, 8) is None


@pytest.mark.parametrize("threads, cap, after, noted", [(0, 1, 1, True), (4, 2, 2, True), (1, 2, 1, False),
                                                         (2, None, 2, False)])
def test_cap_threads(threads, cap, after, noted):
    cfg = OmegaConf.create({"threads": threads})
    note = sweep.cap_threads(cfg, cap)
    assert cfg.threads == after and (note is not None) == noted


def test_objective_final_and_mean_eval():
    summary = {"eval_return_mean": 30.0, "evaluations": [{"eval_return_mean": 10.0}, {"eval_return_mean": 20.0},
                                                         {"eval_return_mean": 30.0}]}
    assert sweep.objective(summary, "final") == 30.0
    assert sweep.objective(summary, "mean_eval") == 20.0


def test_varied_keys_come_from_the_sweep_and_the_search(tmp_path):
    OmegaConf.save(OmegaConf.create({"hydra": {
        "overrides": {"task": ["algo=dqn", "algo.lr=1e-3,5e-4", "seed=range(1,3)", "total_steps=600"]},
        "sweeper": {"params": {"algo.batch_size": "choice(32, 64)"}}}}), tmp_path / "multirun.yaml")
    keys = sweep.varied_keys(tmp_path, ["algo.lr=1e-3", "seed=1", "total_steps=600"])
    assert keys == ["algo.batch_size", "algo.lr", "algo.name", "env.id", "seed"]
    # Without a multirun.yaml: the job's own override keys.
    assert "total_steps" in sweep.varied_keys(tmp_path / "none", ["total_steps=600"])


def test_best_parameters_become_a_complete_preset(tmp_path):
    config = OmegaConf.create({"hydra": {"runtime": {"choices": {"algo": "dqn", "env": "cartpole"}}},
                               "optimize": {"objective": "mean_eval", "seeds": 2}, "total_steps": 30000})
    path = sweep_report.write_tuned(tmp_path, {"algo.lr": 0.004, "algo.target.every": 500}, 321.5, config)
    text = path.read_text()
    assert text.startswith("# @package _global_\n") and "mean_eval = 321.50" in text
    preset = yaml.safe_load(text)
    current = yaml.safe_load((sweep.TUNED_DIR / "dqn_cartpole.yaml").read_text())
    assert preset["algo"]["lr"] == 0.004 and preset["algo"]["target"]["every"] == 500
    # Everything else is the current preset's, so the file can replace it as it is.
    assert preset["num_envs"] == current["num_envs"] and preset["network"] == current["network"]
    assert preset["algo"]["double"] == current["algo"]["double"]


def test_the_best_preset_of_a_pair_under_a_family_preset_holds_the_searched_keys(tmp_path):
    # double_dqn on breakout has no preset of its own: the family's (dqn_atari) applies under it.
    choices = {"algo": "double_dqn", "env": "breakout", "tuned/family": "dqn_atari", "tuned": "double_dqn_breakout"}
    config = OmegaConf.create({"hydra": {"runtime": {"choices": choices}},
                               "optimize": {"objective": "final", "seeds": 1}, "total_steps": 50000})
    text = sweep_report.write_tuned(tmp_path, {"algo.lr": 2e-4}, 12.0, config).read_text()
    assert "# conf/tuned/family/dqn_atari.yaml with algo.lr from the search." in text
    assert "# Copy to conf/tuned/double_dqn_breakout.yaml to make it the default" in text
    assert yaml.safe_load(text) == {"algo": {"lr": 2e-4}}


def test_the_best_preset_of_an_env_config_of_ones_own_is_written_for_its_folder(tmp_path):
    """An env config of one's own on Hydra's search path (README, "An env of your own"): the preset
    is meant for the same folder, and a preset of one's own there is the one the search built on."""
    mine = tmp_path / "myconf"
    (mine / "env").mkdir(parents=True)
    (mine / "env" / "corridor.yaml").write_text("defaults:\n  - gym\n  - _self_\nid: corridor_env:Corridor-v0\n")
    sources = [{"path": "hydra.conf", "schema": "pkg", "provider": "hydra"},
               {"path": "deeprl.conf", "schema": "pkg", "provider": "main"},
               {"path": str(mine), "schema": "file", "provider": "hydra.searchpath in command-line"}]
    config = OmegaConf.create({"hydra": {"runtime": {
        "choices": {"algo": "dqn", "env": "corridor", "tuned": "dqn_corridor"}, "config_sources": sources}},
        "optimize": {"objective": "final", "seeds": 1}, "total_steps": 3000})
    text = sweep_report.write_tuned(tmp_path, {"algo.lr": 2e-4}, -5.0, config).read_text()
    assert "# the defaults with algo.lr from the search." in text
    assert f"# Copy to {mine}/tuned/dqn_corridor.yaml to make it the default for algo=dqn env=corridor." in text

    (mine / "tuned").mkdir()
    (mine / "tuned" / "dqn_corridor.yaml").write_text("# @package _global_\ntotal_steps: 3000\nalgo:\n  lr: 0.01\n")
    (tmp_path / "again").mkdir()
    text = sweep_report.write_tuned(tmp_path / "again", {"algo.lr": 2e-4}, -5.0, config).read_text()
    assert f"# {mine}/tuned/dqn_corridor.yaml with algo.lr from the search." in text
    assert f"# Copy to {mine}/tuned/dqn_corridor.yaml to make it" in text
    assert yaml.safe_load(text) == {"total_steps": 3000, "algo": {"lr": 2e-4}}


def test_job_dirs_leave_out_seed_runs(tmp_path):
    for rel in ("a/.hydra", "a/seed_1/.hydra", "a/seed_2/.hydra", "b/.hydra"):
        (tmp_path / rel).mkdir(parents=True)
        (tmp_path / rel / "hydra.yaml").write_text("{}")
    assert [d.name for d in sweep_report.job_dirs(tmp_path)] == ["a", "b"]


def test_a_failed_job_is_recorded_and_scored_nan(tmp_path, capsys):
    assert math.isnan(sweep.failed(tmp_path / "job", "algo.lr=-1", "algo.lr: must be > 0\nmore"))
    assert (tmp_path / "job" / sweep.FAILED).read_text() == "algo.lr: must be > 0\n"
    assert "job algo.lr=-1 failed: algo.lr: must be > 0" in capsys.readouterr().err


def test_a_continued_study_gets_a_seeded_sampler_of_its_own():
    from types import SimpleNamespace

    import optuna

    from hydra_plugins.deeprl_search import continued_seed, reseed

    tpe = OmegaConf.create({"_target_": "optuna.samplers.TPESampler", "seed": 1, "n_startup_trials": 10})
    impl = SimpleNamespace(sampler="first start's")
    reseed(impl, tpe, 2)
    assert isinstance(impl.sampler, optuna.samplers.TPESampler)
    assert continued_seed(1, 2) == continued_seed(1, 2) not in (1, continued_seed(1, 3), continued_seed(2, 2))
    # Unseeded (already a fresh stream each start) and grid samplers are left as they are.
    for config in (OmegaConf.create({"_target_": "optuna.samplers.TPESampler", "seed": None}),
                   OmegaConf.create({"_target_": "optuna.samplers.GridSampler", "_partial_": True}), None):
        impl = SimpleNamespace(sampler="first start's")
        reseed(impl, config, 2)
        assert impl.sampler == "first start's"


def test_a_job_dir_name_fits_a_file_system_and_stays_one_per_job():
    from deeprl import job_dirname

    short = "algo=ppo,seed=2"
    assert job_dirname(short) == short and job_dirname("") == ""
    assert job_dirname("a" * 255) == "a" * 255 and job_dirname("a" * 256) != "a" * 256  # the most one name takes
    assert job_dirname("env.id=ALE/Pong-v5,seed=1") == "env.id=ALE/Pong-v5,seed=1"  # Hydra's nesting is kept
    floats = ",".join(f"algo.p{i}=0.{'7' * 17}{i}" for i in range(12))
    names = {job_dirname(floats), job_dirname(floats.replace("=0.7", "=0.8", 1)), job_dirname("é" * 300)}
    assert len(names) == 3  # the cut keeps distinct jobs distinct
    assert all(len(part.encode()) <= 255 for name in names for part in name.split("/"))
    assert job_dirname(floats) == job_dirname(floats) and job_dirname(floats).startswith(floats[:150])
    assert set(job_dirname("é" * 300).rpartition("~")[0]) == {"é"}  # no character cut in two
    resolved = OmegaConf.create({"name": floats, "dir": "${deeprl.dirname:${name}}"}).dir
    assert resolved == job_dirname(floats)  # as conf/config.yaml's hydra.sweep.subdir uses it


def test_a_job_dir_name_drops_the_escapes_that_no_separator_needs():
    """Hydra's override_dirname escapes `:` ( ) [ ] { } and spaces; a dir name holds them as they are.
    An escaped `,` `=` or backslash keeps its backslash: `x=a\\,y=1` (one override) and `x=a,y=1`
    (two) stay two names."""
    from deeprl import job_dirname

    assert job_dirname(r"env.id=mymodule\:MyEnv-v0,env=gym,seed=1") == "env.id=mymodule:MyEnv-v0,env=gym,seed=1"
    assert job_dirname(r"algo.note=a\ \(b\)\[c\]\{d\}") == "algo.note=a (b)[c]{d}"
    assert job_dirname(r"x=a\,y=1") == r"x=a\,y=1" != job_dirname("x=a,y=1")
    assert job_dirname(r"x=a\=b") == r"x=a\=b"
    assert job_dirname(r"p=a\\\:b") == r"p=a\\:b"  # an escaped backslash, then an escaped colon


def test_the_best_preset_of_a_generic_env_says_the_id_needs_a_config_of_its_own(tmp_path):
    # conf/tuned/ppo_gym.yaml would apply to every gymnasium id, not only the one searched.
    config = OmegaConf.create({"hydra": {"runtime": {"choices": {"algo": "ppo", "env": "gym"}}},
                               "env": {"id": "Acrobot-v1"}, "optimize": {"objective": "final", "seeds": 1},
                               "total_steps": 1000})
    text = sweep_report.write_tuned(tmp_path, {"algo.lr": 0.001}, -90.0, config).read_text()
    assert "Copy to conf/tuned/ppo_gym.yaml" not in text
    assert "env=gym takes any id: to make it the default for Acrobot-v1, give Acrobot-v1 an env config" in text
    assert yaml.safe_load(text)["algo"]["lr"] == 0.001


@pytest.mark.parametrize("env, overrides, expected", [
    ("cartpole", ["env.id=Acrobot-v1"], "; env.id=Acrobot-v1 replaced env=cartpole's task and keeps its settings "
                                        "(env=acrobot is Acrobot-v1's own config)"),
    ("breakout", ["seed=2", "env.game=Pong"], "; env.game=Pong replaced env=breakout's task and keeps its settings "
                                              "(env=pong is Pong's own config)"),
    # A game is found among the configs of its own kind: MinAtar's Freeway, not the ALE's.
    ("minatar_breakout", ["env.game=Freeway"], "; env.game=Freeway replaced env=minatar_breakout's task and keeps "
                                               "its settings (env=minatar_freeway is Freeway's own config)"),
    ("breakout", ["env.game=MsPacman"], "; env.game=MsPacman replaced env=breakout's task and keeps its settings "
                                        "(env=atari env.game=MsPacman runs it with env=atari's settings)"),
    ("pendulum", ["+env.id=Foo-v0"], "; env.id=Foo-v0 replaced env=pendulum's task and keeps its settings "
                                     "(env=gym env.id=Foo-v0 runs it with env=gym's settings)"),
    # An ALE id is not env=gym's (it refuses them): no advice but what the run keeps.
    ("breakout", ["env.id=ALE/Pong-v5"], "; env.id=ALE/Pong-v5 replaced env=breakout's task and keeps its settings"),
    ("gym", ["env.id=Acrobot-v1"], ""),  # the generic configs are made for it
    ("minatar", ["env.game=Freeway"], ""),
    ("cartpole", ["algo.lr=0.001"], ""),
])
def test_the_banner_says_when_the_command_line_replaced_a_named_envs_task(env, overrides, expected):
    assert sweep.replaced_task(env, overrides) == expected


def test_loky_trackers_leak_report_is_kept_out_of_a_sweeps_output():
    """A Ctrl-C'd joblib sweep could end with loky's resource tracker reporting a stopped worker's
    semaphore as leaked (four lines of warnings). Its process reads the filter a sweep adds to
    PYTHONWARNINGS: here a real tracker is left a semaphore it cannot find, with and without it."""
    environ = {"PYTHONWARNINGS": "default::DeprecationWarning"}
    sweep_stop.quiet_loky_tracker(environ)
    sweep_stop.quiet_loky_tracker(environ)  # once
    assert environ["PYTHONWARNINGS"] == f"default::DeprecationWarning,{sweep_stop.LOKY_TRACKER_QUIET}"
    code = ("from joblib.externals.loky.backend import resource_tracker\n"
            "resource_tracker.ensure_running()\n"
            "resource_tracker.register('/deeprl-test-semlock', 'semlock')\n")
    outputs = {}
    for quiet in (False, True):
        env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
        if quiet:
            sweep_stop.quiet_loky_tracker(env)
        # The tracker outlives this process and shares its stderr: the pipe closes when both have.
        result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        outputs[quiet] = result.stderr
    assert "leaked semlock" in outputs[False], outputs[False]
    assert outputs[True] == ""


HOLDER = """
import sys, time
from pathlib import Path
from deeprl.core.run_dir import hold
hold(Path(sys.argv[1]), "hydra.sweep.dir")
print("held", flush=True)
time.sleep(1.5)
Path(sys.argv[2]).write_text(repr(time.time()))  # then the process ends, and the lock with it
"""


def test_a_stopped_joblib_job_waits_until_the_other_jobs_have_let_go_of_their_dirs(tmp_path):
    """joblib kills every worker once the first job comes back stopped: a stopped job waits, in a
    worker process, until the other jobs (stopping at the same moment) no longer hold their run
    dirs, i.e. their checkpoints are written. In the sweep's own process (the basic launcher runs
    jobs there) it does not wait."""
    import multiprocessing
    import time

    sweep_dir, released = tmp_path / "sweep", tmp_path / "released"
    (sweep_dir / "seed=2").mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(sweep_dir / "seed=2"), str(released)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    start = time.time()
    sweep_stop.others_stopped(sweep_dir, signal.SIGTERM)  # the sweep's own process: at once
    assert time.time() - start < 1.0 and not released.exists()

    sweep_stop.note_stopping(sweep_dir, signal.SIGTERM)  # the sweep was stopped: its relay wrote the note
    returned = multiprocessing.get_context("fork").Queue()

    def worker():
        sweep_stop.others_stopped(sweep_dir, signal.SIGTERM)
        returned.put(time.time())

    process = multiprocessing.get_context("fork").Process(target=worker)
    process.start()
    at = returned.get(timeout=60)
    process.join(timeout=60)
    holder.wait(timeout=60)
    assert at >= float(released.read_text())


def _pid_and_pending():
    import time

    from deeprl.core.interrupt import Pending

    time.sleep(0.2)  # long enough that both workers take a task
    return os.getpid(), Pending.signum


def test_a_joblib_worker_with_no_job_notes_a_stop_signal_instead_of_ending():
    """A worker that ended would break joblib's pool, and joblib would kill the others at once,
    jobs still writing their checkpoints among them. A sweep's workers note the signal instead, and
    the next job there stops at once (`sweep.job`)."""
    import signal
    import time

    from joblib import Parallel, delayed, register_parallel_backend
    from joblib._parallel_backends import LokyBackend

    sweep_stop.stop_safe_workers()
    try:
        with Parallel(n_jobs=2, backend="loky") as parallel:
            pids = sorted({pid for pid, _ in parallel(delayed(_pid_and_pending)() for _ in range(4))})
            assert len(pids) == 2
            os.kill(pids[0], signal.SIGINT)
            time.sleep(0.5)
            os.kill(pids[0], 0)  # still there (ProcessLookupError otherwise)
            after = dict(parallel(delayed(_pid_and_pending)() for _ in range(6)))  # the pool still works
            assert after and set(after) <= set(pids)
            assert all(pending == (signal.SIGINT if pid == pids[0] else None) for pid, pending in after.items())
    finally:
        register_parallel_backend("loky", LokyBackend)


def test_a_stopped_sweep_keeps_its_queued_jobs_from_starting(tmp_path):
    """Once a signal stopped a sweep (its `.stopping` note), a job that takes its dir afterwards (a
    Ray task or submitit job still queued) stops before its run is built, with the signal's code."""
    import signal

    from deeprl.run import RunStopped

    sweep_dir = tmp_path / "sweep"
    sweep_dir.mkdir()
    assert sweep_stop.stopped_with(sweep_dir) is None
    (sweep_dir / sweep_stop.STOPPING).write_text(f"{int(signal.SIGINT)}\n")
    assert sweep_stop.stopped_with(sweep_dir) == signal.SIGINT
    job_dir = sweep_dir / "seed=3"
    with pytest.raises(RunStopped) as stop:
        sweep.run_or_resume(None, job_dir, [], "#2", sweep_dir)  # stops before it reads the config
    assert stop.value.code == 130
    assert sorted(p.name for p in job_dir.iterdir()) == [".lock"]  # no run was begun
    assert sweep_stop.job_holders(sweep_dir) == []  # and the dir was let go


def test_job_dir_holders_are_told_apart_by_machine(tmp_path, capsys):
    """The sweep signals only the job processes on its own machine; those elsewhere (a cluster's
    nodes) are named in its last line instead."""
    import socket

    from deeprl import train

    assert sweep_stop.holder_process("pid 12 on node-7") == (12, "node-7")
    assert sweep_stop.holder_process("another process") is None
    assert sweep_stop.local_pid(f"pid 12 on {socket.gethostname()}") == 12
    assert sweep_stop.local_pid(f"pid {os.getpid()} on {socket.gethostname()}") is None  # never itself
    assert sweep_stop.local_pid("pid 12 on node-7") is None

    sweep_dir, released = tmp_path / "sweep", tmp_path / "released"
    for job in ("seed=1", "seed=2"):
        (sweep_dir / job).mkdir(parents=True)
    holders = [subprocess.Popen([sys.executable, "-c", HOLDER, str(sweep_dir / job), str(released)],
                                stdout=subprocess.PIPE, text=True) for job in ("seed=1", "seed=2")]
    for holder in holders:
        assert holder.stdout.readline().strip() == "held"
    (sweep_dir / "seed=2" / ".lock").write_text("pid 4242 on node-7\n")  # as a job on another node writes it
    found = dict(sweep_stop.job_holders(sweep_dir))
    assert found == {sweep_dir / "seed=1": f"pid {holders[0].pid} on {socket.gethostname()}",
                     sweep_dir / "seed=2": "pid 4242 on node-7"}
    assert sweep_stop.elsewhere(sweep_dir) == ["node-7"]
    sweep_report.SweepReport.sweep_dir = sweep_dir
    try:
        with pytest.raises(SystemExit) as stop:
            train._sweep_stopped(143)
    finally:
        sweep_report.SweepReport.sweep_dir = None
    assert stop.value.code == 143
    assert capsys.readouterr().err.strip().endswith(
        "; its jobs on other machines (node-7) get no signal from here: stop each there with SIGINT or SIGTERM "
        "(scancel sends SIGTERM) and it checkpoints")
    sweep_stop.wait_for_jobs(sweep_dir)  # until the local job lets go; the other node's is not waited for
    assert not any(sweep_stop.local_pid(holder) for _, holder in sweep_stop.job_holders(sweep_dir))
    for holder in holders:
        holder.wait(timeout=60)


def test_the_end_of_sweep_report_counts_only_the_jobs_of_this_sweep(tmp_path, capsys):
    """A sweep started again into the same dir within a second of the last (or whose jobs ran on
    machines with other clocks) lists only its own failures: what changed since it started, not
    what a file's time says."""
    sweep_dir = tmp_path / "sweep"

    def job(name: str, failure: str | None) -> None:
        job_dir = sweep_dir / name
        (job_dir / ".hydra").mkdir(parents=True, exist_ok=True)
        (job_dir / ".hydra" / "hydra.yaml").write_text(f"job: {name}\n")
        (job_dir / sweep.FAILED).unlink(missing_ok=True)  # as a job does at its start
        if failure:
            (job_dir / sweep.FAILED).write_text(failure + "\n")

    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep_dir)}}})
    job("0", "algo.gamma: must be in [0, 1]")  # the sweep before, a moment ago
    job("1", "algo.gamma: must be in [0, 1]")
    report = sweep_report.SweepReport()
    report.on_multirun_start(config)
    report.on_multirun_end(config)  # no job ran: nothing to list, nothing failed
    assert "failed" not in capsys.readouterr().err

    report.on_multirun_start(config)
    job("1", None)  # ran again and completed
    job("2", "non-finite loss")
    with pytest.raises(SystemExit) as failed:
        report.on_multirun_end(config)
    assert failed.value.code == 1
    assert capsys.readouterr().err.splitlines() == ["deeprl: error: 1 of 2 jobs failed:", "  2: non-finite loss"]


def test_submitits_controllers_start_with_sigint_blocked_and_the_sweep_keeps_its_mask(monkeypatch):
    from submitit.local import local

    def start_controller(**kwargs):  # stands in for submitit's, which starts the controller process
        return signal.pthread_sigmask(signal.SIG_BLOCK, [])  # the mask a process started here inherits

    monkeypatch.setattr(local, "start_controller", start_controller)
    sweep_stop.spare_submitit_controllers("hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher")
    assert local.start_controller is start_controller  # other launchers: left alone
    before = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    target = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher"
    sweep_stop.spare_submitit_controllers(target)
    wrapped = local.start_controller
    sweep_stop.spare_submitit_controllers(target)  # a second sweep in the process: wrapped once
    assert local.start_controller is wrapped is not start_controller
    assert signal.SIGINT in wrapped(folder="f")
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == before
