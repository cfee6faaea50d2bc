"""Exact resume: a run stopped at step k and resumed ends exactly as the same run never stopped.

The interrupted runs here are cut the way kill -9 cuts them: only a checkpoint of step k
survives (copied into a fresh run dir, no event file), and the resumed piece runs from it. Its
final parameters must equal the uninterrupted run's bit for bit, and its TensorBoard series the
uninterrupted run's after step k.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import consoles
from conftest import compose_config, train_cli
from deeprl.build import build
from deeprl.core.checkpoint import load
from deeprl.resume import check_total_steps, unfinished
from deeprl.run import RunStopped

# Small, fast variants of each family's CartPole/gridworld settings; k is never a rollout boundary.
FAMILIES = {
    "dqn": (["algo=dqn", "env=cartpole", "total_steps=2400", "algo.learning_starts=400",
             "algo.exploration.fraction=0.5"], 1200),
    "dqn_prioritized_nstep": (["algo=rainbow_lite", "env=cartpole", "total_steps=2400",
                               "algo.learning_starts=400"], 1200),
    "ppo": (["algo=ppo", "env=cartpole", "total_steps=3200"], 1208),
    # The rollout in progress holds the log-probabilities and values its acting passes kept.
    "ppo_shared_torso": (["algo=ppo", "env=cartpole", "algo.shared_torso=true", "total_steps=3200"], 1208),
    # MinAtar in worker processes: its state is saved from the workers.
    "dqn_minatar_async_envs": (["algo=dqn", "env=minatar_breakout", "env.vectorization=async", "num_envs=2",
                                "total_steps=1600", "algo.learning_starts=400", "algo.buffer_size=2000",
                                "algo.exploration.fraction=0.5"], 800),
    # RL-Zoo's Atari A2C: TensorFlow's RMSprop (deeprl's own optimizer class), one shared torso.
    "a2c": (["algo=a2c", "env=cartpole", "algo.optimizer=rmsprop_tf", "algo.shared_torso=true",
             "total_steps=2400"], 1208),
    "actor_critic_online": (["algo=actor_critic", "env=cartpole", "algo.mode=online", "total_steps=1600"], 808),
    "reinforce": (["algo=reinforce", "env=cartpole", "total_steps=3000"], 1500),
    "ddpg_ou": (["algo=ddpg", "env=pendulum", "total_steps=1200", "algo.learning_starts=300",
                 "algo.exploration.noise=ou", "algo.batch_size=32"], 700),
    # The learning rates annealed by env step, so the resumed piece takes the same ones.
    "td3_anneal_lr": (["algo=td3", "env=pendulum", "total_steps=1200", "algo.learning_starts=300",
                       "algo.batch_size=32", "algo.anneal_lr=true"], 701),
    "sac_prioritized_nstep": (["algo=sac", "env=pendulum", "total_steps=1200", "algo.learning_starts=300",
                               "algo.batch_size=32", "algo.prioritized.enabled=true", "algo.n_step=3"], 700),
    # Native simulators: the ALE's emulator state (sticky actions on) under deeprl's Atari wrappers,
    # and MuJoCo's MjData; an episode (a full game, at most 150 steps here) ends after step k.
    "rainbow_lite_breakout": (["algo=rainbow_lite", "env=breakout", "total_steps=400", "algo.learning_starts=80",
                               "algo.buffer_size=1000", "algo.batch_size=8", "env.max_frames=600"], 170),
    "sac_hopper": (["algo=sac", "env=hopper", "total_steps=600", "algo.learning_starts=100", "algo.batch_size=16",
                    "algo.buffer_size=1000", "env.max_episode_steps=50"], 301),
    "ppo_pendulum_normalized": (["algo=ppo", "env=pendulum", "algo.normalize_obs=true", "total_steps=2000"], 1000),
    "q_learning": (["algo=q_learning", "env=frozenlake", "total_steps=3000"], 1500),
    "sarsa": (["algo=sarsa", "env=cliffwalking", "total_steps=3000"], 1500),
    "fitted_q_iteration": (["algo=fitted_q_iteration", "env=gridworld_4x3", "total_steps=1000"], 500),
    "value_iteration": (["algo=value_iteration", "env=gridworld_4x3", "algo.tol=1e-12"], 5),
    "policy_iteration": (["algo=policy_iteration", "env=frozenlake", "algo.evaluation=iterative",
                          "algo.eval_sweeps=3", "algo.tol=1e-6", "algo.figure_every=0"], 3),
}
QUIET = ["log.progress=false", "eval.episodes=2", "log.every=100", "device=cpu", "checkpoint.keep=0"]


def events(run_dir, tag: str) -> list[tuple[int, float]]:
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)] if tag in acc.Tags()["scalars"] else []


def tensors(tree, prefix=""):
    """Every tensor of a nested state dict, by path."""
    if isinstance(tree, torch.Tensor):
        yield prefix, tree
    elif isinstance(tree, dict):
        for key, value in tree.items():
            yield from tensors(value, f"{prefix}.{key}")


def assert_same_agent(a: dict, b: dict) -> None:
    ta, tb = dict(tensors(a)), dict(tensors(b))
    assert ta.keys() == tb.keys()
    for name in ta:
        assert torch.equal(ta[name], tb[name]), f"{name} differs"
    for key in ("Q", "V", "policy"):  # tabular agents keep numpy tables
        if key in a:
            assert (a[key] == b[key]).all(), key


def run(run_dir, overrides):
    return build(compose_config(*overrides), run_dir).execute()


def resume_from(run_dir, checkpoint):
    """What `train resume=` does, in-process, from one checkpoint alone (kill -9 left nothing else)."""
    state = load(checkpoint)
    cfg = OmegaConf.create(state["config"])  # the run's own config travels in its checkpoints
    OmegaConf.set_struct(cfg, True)
    return build(cfg, run_dir, resume_from=state).execute()


@pytest.mark.parametrize("family", list(FAMILIES))
def test_resumed_run_ends_exactly_as_the_uninterrupted_one(tmp_path, family):
    overrides, k = FAMILIES[family]
    overrides = [*overrides, *QUIET, f"checkpoint.every={k}", f"eval.every={k}"]
    whole, cut, plain = tmp_path / "whole", tmp_path / "cut", tmp_path / "plain"
    summary = run(whole, overrides)
    # Checkpointing does not perturb a run: one without checkpoints ends the same.
    run(plain, [*overrides, "checkpoint.every=0", "checkpoint.every_minutes=0"])
    assert_same_agent(load(whole / "checkpoints/final.pt")["agent"], load(plain / "checkpoints/final.pt")["agent"])

    checkpoint = whole / "checkpoints" / f"step_{k}.pt"
    assert checkpoint.is_file(), sorted(p.name for p in (whole / "checkpoints").iterdir())
    resumed = resume_from(cut, checkpoint)
    assert_same_agent(load(whole / "checkpoints/final.pt")["agent"], load(cut / "checkpoints/final.pt")["agent"])
    assert resumed["eval_return_mean"] == summary["eval_return_mean"]
    assert resumed["resumed"] == [{"step": k, "notes": []}]
    # The evaluation history covers the whole run, the piece before the checkpoint included.
    assert [e["step"] for e in resumed["evaluations"]] == [e["step"] for e in summary["evaluations"]]
    # So does the best evaluation; a best.pt written after the cut holds the same agent.
    best = ("best_eval_step", "best_eval_return_mean")
    assert [resumed[key] for key in best] == [summary[key] for key in best]
    if summary["best_eval_step"] > k:
        assert_same_agent(load(whole / "checkpoints/best.pt")["agent"], load(cut / "checkpoints/best.pt")["agent"])
    if family.endswith("iteration") and family != "fitted_q_iteration":
        return  # planners log per sweep, not per episode
    tag = "charts/episodic_return"
    after = [point for point in events(whole, tag) if point[0] > k]
    assert after, "no episode ended after the checkpoint: lengthen the run"
    assert events(cut, tag) == after


def test_a_run_whose_config_names_its_loop_resumes_exactly(tmp_path):
    """Runs saved before the ALGOS table alone picked the loop carry `algo.loop` in their config
    (and their checkpoints): they still resume, and end as the uninterrupted run."""
    overrides, k = FAMILIES["dqn"]
    overrides = [*overrides, *QUIET, f"checkpoint.every={k}", f"eval.every={k}"]
    whole = tmp_path / "whole"
    summary = run(whole, overrides)
    state = load(whole / "checkpoints" / f"step_{k}.pt")
    cfg = OmegaConf.create(state["config"])
    assert "loop" not in cfg.algo
    cfg.algo.loop = "off_policy"
    state["config"] = OmegaConf.to_yaml(cfg)
    torch.save(state, tmp_path / "older.pt")
    resumed = resume_from(tmp_path / "cut", tmp_path / "older.pt")
    assert_same_agent(load(whole / "checkpoints/final.pt")["agent"], load(tmp_path / "cut/checkpoints/final.pt")["agent"])
    assert resumed["eval_return_mean"] == summary["eval_return_mean"]


def test_resume_extends_a_finished_run_and_tensorboard_continues(tmp_path):
    """`train resume=<dir> total_steps=<more>` in a subprocess: the same run dir goes on from
    final.pt; no duplicate or backward points on the x axis; summary.json covers both pieces."""
    first = train_cli("algo=dqn", "env=cartpole", "total_steps=800", "algo.learning_starts=200", *QUIET,
                      "checkpoint.every=400", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    (run_dir,) = (tmp_path / "outputs" / "dqn" / "cartpole").iterdir()
    before = json.loads((run_dir / "summary.json").read_text())
    config = (run_dir / ".hydra" / "config.yaml").read_text()
    second = train_cli(f"resume={run_dir}", "total_steps=1600", cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "resuming at step 800" in second.stdout
    assert (run_dir / ".hydra" / "config.yaml").read_text() == config, "resume rewrote the run's config"
    assert len(list((tmp_path / "outputs" / "dqn" / "cartpole").iterdir())) == 1, "resume made a new run dir"
    summary = json.loads((run_dir / "summary.json").read_text())
    extended = ("total_steps was 800, now 1600: what is scheduled over total_steps (epsilon decay, "
                "learning-rate annealing, prioritized replay's beta) follows 1600 steps from here, as in "
                "a run started with total_steps=1600")
    assert f"deeprl | note: {extended}" in second.stdout
    assert summary["total_steps"] == 1600 and summary["resumed"] == [{"step": 800, "notes": [extended]}]
    assert summary["wall_time_s"] > before["wall_time_s"]
    assert [e["step"] for e in summary["evaluations"]] == [800, 1600]
    sps = [step for step, _ in events(run_dir, "charts/SPS")]
    assert sps == sorted(set(sps)) and sps[-1] == 1600 and 800 in sps
    returns = [step for step, _ in events(run_dir, "charts/episodic_return")]
    assert returns == sorted(returns) and returns[-1] > 800


def test_cfg_job_with_resume_prints_the_config_the_run_goes_on_with(tmp_path):
    """Hydra's --cfg would print a new run's config composed from the defaults (dqn on CartPole here,
    whatever the run was); with resume= it prints the run's own, the command line's overrides
    applied, and changes nothing. Before, `--cfg job` beside resume= was an error about 'job'."""
    first = train_cli("algo=ppo", "env=acrobot", "total_steps=256", "algo.n_steps=32", "eval.episodes=1",
                      "log.progress=false", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    (run_dir,) = (tmp_path / "outputs" / "ppo" / "acrobot").iterdir()
    before = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*")}
    shown = train_cli(f"resume={run_dir}", "--cfg", "job", "total_steps=1024", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    config = OmegaConf.create(shown.stdout)
    saved = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    assert config.algo.name == "ppo" and config.env.id == "Acrobot-v1" and config.algo.n_steps == 32
    assert config.total_steps == 1024 and config.resume is None
    assert OmegaConf.to_container(config.algo) == OmegaConf.to_container(saved.algo)
    package = train_cli(f"resume={run_dir}", "-c", "job", "-p", "algo.n_steps", cwd=tmp_path)
    assert (package.returncode, package.stdout) == (0, "32\n")  # a finished run's config, without a new total
    refused = [train_cli(f"resume={run_dir}", "--cfg", "hydra", cwd=tmp_path),
               train_cli(f"resume={run_dir}", "--cfg", "job", "algo.lr=1", cwd=tmp_path)]
    assert [r.returncode for r in refused] == [2, 2]
    assert refused[0].stderr.startswith("deeprl: error: --cfg: hydra prints Hydra's settings for a new run")
    assert refused[1].stderr.startswith("deeprl: error: algo.lr: cannot be changed when resuming")
    assert {p: p.stat().st_mtime_ns for p in run_dir.rglob("*")} == before
    assert sorted(p.name for p in (tmp_path / "outputs").rglob("*") if p.is_dir() and p.parent.name == "acrobot") == [
        run_dir.name]  # no new run dir


def test_a_checkpoint_of_another_network_layout_is_refused_in_one_line(tmp_path):
    """A checkpoint whose agent networks do not fit this version's (other parameter names or
    shapes): `train resume=` and `evaluate` each stop with one line naming the network, exit 2,
    and leave the run dir as it was."""
    first = train_cli("algo=td3", "env=pendulum", "total_steps=400", "algo.learning_starts=200",
                      "algo.batch_size=32", *QUIET, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    (run_dir,) = (tmp_path / "outputs" / "td3" / "pendulum").iterdir()
    final = run_dir / "checkpoints" / "final.pt"
    state = load(final)
    # The layout an older version wrote: the actor as a torso of nn.Linear layers plus a head.
    state["agent"]["actor"] = {"torso.layers.0.weight": torch.zeros(64, 3), "head.weight": torch.zeros(1, 64)}
    torch.save(state, final)
    files = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*")}
    resumed = train_cli(f"resume={run_dir}", "total_steps=800", cwd=tmp_path)
    evaluated = consoles.run("evaluate", str(run_dir), "--episodes", "1", cwd=tmp_path, timeout=120)
    for result, prefix in ((resumed, "deeprl: error: resume:"), (evaluated, "evaluate: error: checkpoint:")):
        assert result.returncode == 2, result.stderr[-2000:]
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"{prefix} the checkpoint's 'actor' network"), lines
    assert {p: p.stat().st_mtime_ns for p in run_dir.rglob("*")} == files


def test_replay_can_be_left_out_of_checkpoints(tmp_path):
    """checkpoint.buffer=false: smaller files; the resumed run refills the buffer before learning."""
    overrides = ["algo=dqn", "env=cartpole", "total_steps=1600", "algo.learning_starts=200", *QUIET,
                 "checkpoint.every=800"]
    run(tmp_path / "with", overrides)
    run(tmp_path / "without", [*overrides, "checkpoint.buffer=false"])
    big = (tmp_path / "with/checkpoints/step_800.pt").stat().st_size
    small = (tmp_path / "without/checkpoints/step_800.pt").stat().st_size
    assert big - small >= 800 * 2 * 4 * 4  # at least the observations of 800 transitions
    state = load(tmp_path / "without/checkpoints/step_800.pt")
    assert state["loop"]["buffer"] is None
    resumed = resume_from(tmp_path / "resumed", tmp_path / "without/checkpoints/step_800.pt")
    note = resumed["resumed"][0]["notes"][0]
    assert "replay buffer was not saved" in note and "1000" in note


def test_pixel_replay_checkpoints_say_what_they_cost(tmp_path, capsys):
    overrides = ["algo=dqn", "env=breakout", "total_steps=160", "algo.learning_starts=80", "algo.buffer_size=1000",
                 "algo.batch_size=8", "eval.every=0", "env.max_frames=1200", "checkpoint.every=120", *QUIET]
    run(tmp_path / "run", overrides)
    # 120 frames of 84 x 84 (a ring of 1000 slots holds each frame once), under a GiB: in MiB
    assert "checkpoint at step 120: writing the replay buffer (1 MiB; checkpoint.buffer=false skips it)" \
        in capsys.readouterr().out


def test_box2d_resume_restarts_episodes_and_keeps_the_replay(tmp_path, capsys):
    """Box2D worlds cannot be saved (their pickle re-creates a fresh world): a resumed run starts new
    episodes (from a seed that depends on the step) and says so on the console and in
    summary.json; the replay, the agent and every random stream still resume."""
    overrides = ["algo=sac", "env=lunarlander_continuous", "total_steps=300", "algo.learning_starts=100",
                 "algo.batch_size=16", "algo.buffer_size=1000", "eval.every=0", "checkpoint.every=150", *QUIET]
    run(tmp_path / "whole", overrides)
    state = load(tmp_path / "whole/checkpoints/step_150.pt")
    assert state["loop"]["envs"] is None and state["loop"]["buffer"]["counters"]["added"] == 150
    resumed = resume_from(tmp_path / "cut", tmp_path / "whole/checkpoints/step_150.pt")
    (note,) = resumed["resumed"][0]["notes"]
    assert "LunarLander-v3 envs cannot be saved" in note and "episodes in progress at step 150 restarted" in note
    assert note in capsys.readouterr().out
    assert resumed["total_steps"] == 300


def test_a_sweep_job_resumes_on_its_own_run_dir(tmp_path):
    sweep = train_cli("-m", "algo=dqn", "env=cartpole", "seed=1,2", "total_steps=400", "algo.learning_starts=200",
                      *QUIET, cwd=tmp_path)
    assert sweep.returncode == 0, sweep.stderr[-2000:]
    (sweep_dir,) = (tmp_path / "multirun").iterdir()
    jobs = sorted(p for p in sweep_dir.iterdir() if p.is_dir() and (p / ".hydra").is_dir())
    assert len(jobs) == 2
    result = train_cli(f"resume={jobs[0]}", "total_steps=800", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((jobs[0] / "summary.json").read_text())
    assert summary["total_steps"] == 800 and summary["resumed"][0]["step"] == 400
    assert json.loads((jobs[1] / "summary.json").read_text())["total_steps"] == 400
    assert sorted(p.name for p in (tmp_path / "multirun").iterdir()) == [sweep_dir.name]


def test_wall_clock_checkpoints_and_keep(tmp_path):
    """checkpoint.every_minutes writes checkpoints by time alone; checkpoint.keep bounds the files."""
    overrides = ["algo=dqn", "env=cartpole", "total_steps=8000", "algo.learning_starts=400", *QUIET,
                 "eval.every=0", "checkpoint.every_minutes=0.002"]  # every 0.12 s
    run(tmp_path / "all", overrides)
    kept = list((tmp_path / "all" / "checkpoints").glob("step_*.pt"))
    assert len(kept) >= 2
    run(tmp_path / "two", [*overrides, "checkpoint.keep=2"])
    assert len(list((tmp_path / "two" / "checkpoints").glob("step_*.pt"))) <= 2
    assert (tmp_path / "two" / "checkpoints" / "final.pt").is_file()


def file_size_limit(limit: int):
    """A child's file-size limit, as a full disk or a quota would refuse writes: past `limit`
    bytes a write fails with EFBIG (SIGXFSZ ignored, as a shell's `ulimit -f` leaves it)."""
    import resource
    import signal

    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def train_limited(limit: int, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / "train"), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300, preexec_fn=file_size_limit(limit))


def test_a_checkpoint_that_cannot_be_written_stops_the_run_in_one_line_keeping_the_last_one(tmp_path):
    """A full disk or a quota, made real with a file-size limit: one line naming the last checkpoint
    kept, no half-written file, and the resume it advises works."""
    args = ["algo=dqn", "env=cartpole", "total_steps=3000", "checkpoint.every=1000", "algo.learning_starts=200",
            "log.progress=false", "eval.episodes=2", "checkpoint.keep=0"]
    sizes = train_cli(*args, "hydra.run.dir=sizes", cwd=tmp_path)
    assert sizes.returncode == 0, sizes.stderr[-3000:]
    first, second = ((tmp_path / "sizes/checkpoints" / f"step_{k}.pt").stat().st_size for k in (1000, 2000))
    assert second > first  # the replay buffer grows

    run_dir = tmp_path / "run"  # the first checkpoint fits under the limit, the second does not
    limited = train_limited((first + second) // 2, *args, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert limited.returncode == 2, limited.stderr[-3000:]
    assert limited.stderr.strip().splitlines()[-1] == (
        f"deeprl: error: checkpoint: cannot write {run_dir}/checkpoints/step_2000.pt at step 2000: File too large; "
        f"training stopped and the last checkpoint is {run_dir}/checkpoints/step_1000.pt; make room, then: "
        f"train resume={run_dir} (add checkpoint.buffer=false for checkpoints without the replay buffer)")
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step_1000.pt"]  # no .tmp left
    assert "cannot write" in (run_dir / "train.log").read_text()

    # checkpoint.* may change at a resume: writing a checkpoint changes nothing that follows it.
    resumed = train_cli(f"resume={run_dir}", "checkpoint.buffer=false", "checkpoint.keep=1", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["best.pt", "final.pt", "step_2000.pt"]
    assert load(run_dir / "checkpoints/final.pt")["loop"]["buffer"] is None
    # ... and the run ends as the one that never stopped.
    assert_same_agent(load(run_dir / "checkpoints/final.pt")["agent"],
                      load(tmp_path / "sizes/checkpoints/final.pt")["agent"])


def test_an_event_file_that_cannot_be_written_stops_the_run_in_one_line(tmp_path):
    """TensorBoard's writer thread meets the refused write: no thread traceback, one line, and a new
    run with nothing to resume from leaves nothing behind."""
    run_dir = tmp_path / "run"
    limited = train_limited(12_000, "algo=dqn", "env=cartpole", "total_steps=20000", "checkpoint.every=0",
                            "checkpoint.every_minutes=0", "log.progress=false", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert limited.returncode == 2, limited.stderr[-3000:]
    assert "Traceback" not in limited.stderr
    [line] = [line for line in limited.stderr.splitlines() if line.startswith("deeprl: error:")]
    assert re.fullmatch(f"deeprl: error: run dir: cannot write {re.escape(str(run_dir))} at step [0-9]+: File too large; "
                        "training stopped and no checkpoint was written before it; make room and run it again", line)
    assert not run_dir.exists()


def test_a_resumed_pieces_event_file_is_read_after_an_earlier_one_from_the_same_second(tmp_path):
    """TensorBoard reads event files in name order, and within one second the names compare by
    host, pid and a per-process counter, as text: a run resumed in the process and second that
    started it had its new file read first once the counter went from 9 to 10, and TensorBoard
    dropped the earlier piece's points (found by a random test order). Here the earlier file is
    named one second ahead on a host that sorts last, so only the resume's wait puts it first."""
    overrides = ["algo=dqn", "env=cartpole", "total_steps=1000", "algo.learning_starts=200", *QUIET, "eval.every=0"]
    run(tmp_path, overrides)
    [first] = tmp_path.glob("events.out.tfevents.*")
    ahead = first.with_name(f"events.out.tfevents.{int(time.time()) + 1:010d}.~.0.0")
    first.rename(ahead)
    before = events(tmp_path, "charts/episodic_return")
    cfg = OmegaConf.create(load(tmp_path / "checkpoints/final.pt")["config"])
    cfg.total_steps = 2000
    build(cfg, tmp_path, resume_from=load(tmp_path / "checkpoints/final.pt")).execute()
    assert sorted(p.name for p in tmp_path.glob("events.out.tfevents.*"))[0] == ahead.name
    after = events(tmp_path, "charts/episodic_return")
    assert after[:len(before)] == before and after[len(before)][0] > before[-1][0] and after[-1][0] > 1000


def test_a_run_that_ends_past_total_steps_resumes_from_where_it_ended(tmp_path):
    """8 envs step in batches of 8: total_steps=1500 ends at 1504. The final evaluation and
    checkpoint stand at 1504, so extending the run purges none of the first piece's points."""
    overrides = ["algo=dqn", "env=cartpole", "num_envs=8", "total_steps=1500", "algo.learning_starts=200",
                 *QUIET, "eval.every=0"]
    summary = run(tmp_path, overrides)
    assert summary["total_steps"] == 1500 and summary["steps"] == 1504
    assert [e["step"] for e in summary["evaluations"]] == [1504]
    final = load(tmp_path / "checkpoints/final.pt")
    assert final["step"] == 1504
    tags = ("charts/episodic_return", "charts/SPS", "losses/td_loss", "eval/episodic_return")
    first = {tag: events(tmp_path, tag) for tag in tags}
    assert max(step for points in first.values() for step, _ in points) == 1504
    cfg = OmegaConf.create(final["config"])
    cfg.total_steps = 3000
    resumed = build(cfg, tmp_path, resume_from=final).execute()
    assert resumed["resumed"][0]["step"] == 1504 and resumed["steps"] == 3000
    for tag, points in first.items():
        assert events(tmp_path, tag)[:len(points)] == points, tag


def stop_during_evaluation(run, at_step: int, after: int = 3) -> dict:
    """Send this process a real SIGTERM from inside the run's evaluation at `at_step`, once it has
    acted `after` times; count how often the evaluation acts after it."""
    act, seen = run.agent.act, {"sent": False, "acted_after": 0}

    def spy(obs, step, eval_mode=False):
        if eval_mode and run.loop.step == at_step:
            if seen["sent"]:
                seen["acted_after"] += 1
            else:
                seen["acted"] = seen.get("acted", 0) + 1
                if seen["acted"] == after:
                    seen["sent"] = True
                    os.kill(os.getpid(), signal.SIGTERM)
        return act(obs, step, eval_mode=eval_mode)

    run.agent.act = spy
    return seen


@pytest.mark.parametrize("when", ["mid-run", "final"])
def test_a_stop_during_an_evaluation_cuts_it_short_and_the_resume_plays_it_exactly(tmp_path, when):
    """A SIGTERM (or Ctrl-C) while the run evaluates stops it at the next evaluation step, not at
    the end of an evaluation that can take minutes (Atari). The checkpoint it writes owes the
    evaluation; the resumed run plays it first, at the same step, and ends as the uninterrupted run:
    same agent, same evaluations at the same steps with the same returns, same eval curve."""
    overrides, k = FAMILIES["dqn"]
    overrides = [*overrides, *QUIET, "eval.episodes=3", f"checkpoint.every={k}", f"eval.every={k}"]
    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    summary = run(whole, overrides)
    at = k if when == "mid-run" else summary["steps"]
    interrupted = build(compose_config(*overrides), stopped)
    seen = stop_during_evaluation(interrupted, at)
    save, saved = interrupted.save, []
    interrupted.save = lambda step, name: saved.append(step) or save(step, name)
    with pytest.raises(RunStopped) as stop:
        interrupted.execute()
    assert stop.value.code == 128 + signal.SIGTERM
    assert seen["sent"] and seen["acted_after"] == 0, seen
    # k is a checkpoint step too: the one the stop writes stands for it (a replay can be gigabytes).
    assert saved == [k] if when == "mid-run" else saved == [k, at]
    state = load(stopped / "checkpoints" / f"step_{at}.pt")
    assert not (stopped / "checkpoints" / "final.pt").exists() and not (stopped / "summary.json").exists()
    if when == "mid-run":
        assert state["session"]["owed"] == {"eval": k}
        assert state["session"]["ended"] is None
    else:  # the final evaluation is played by any resumed run; the loop's work is done
        assert state["session"]["owed"] == {} and state["session"]["ended"] == {}
    assert [e["step"] for e in state["session"]["history"]] == [e["step"] for e in summary["evaluations"]
                                                                if e["step"] < at]
    # What `train resume=` with the run's own total accepts: going on to the end (mid-run), or
    # only finishing (final: the checkpoint is at total_steps, yet not final.pt).
    check_total_steps(int(OmegaConf.create(state["config"]).total_steps), state["step"],
                      unfinished(stopped / "checkpoints" / f"step_{at}.pt", state))

    resumed = build(OmegaConf.create(state["config"]), stopped, resume_from=state).execute()
    assert_same_agent(load(whole / "checkpoints/final.pt")["agent"], load(stopped / "checkpoints/final.pt")["agent"])
    assert resumed["eval_return_mean"] == summary["eval_return_mean"]
    assert [(e["step"], e["eval_return_mean"]) for e in resumed["evaluations"]] == \
        [(e["step"], e["eval_return_mean"]) for e in summary["evaluations"]]
    assert events(stopped, "eval/episodic_return") == events(whole, "eval/episodic_return")


def test_a_stop_during_a_planners_final_video_owes_it_and_the_resume_only_finishes(tmp_path, capsys):
    """Planners record their final policy after their last sweep. A stop while it plays leaves no
    video; the resumed run records it, evaluates and writes final.pt, and does not sweep or report
    again (its values, policy and figure were written before the stop)."""
    overrides = ["algo=value_iteration", "env=gridworld_4x3", "video.every=1", *QUIET]
    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    summary = run(whole, overrides)
    interrupted = build(compose_config(*overrides), stopped)
    seen = stop_during_evaluation(interrupted, summary["sweeps"], after=2)
    with pytest.raises(RunStopped):
        interrupted.execute()
    assert seen["sent"] and seen["acted_after"] == 0, seen
    assert not (stopped / "videos").exists() or not any((stopped / "videos").iterdir())
    state = load(stopped / "checkpoints" / f"step_{summary['sweeps']}.pt")
    assert state["session"]["owed"] == {"video": [summary["sweeps"], "final"]}
    values = (stopped / "values.csv").read_text()
    assert values == (whole / "values.csv").read_text()
    assert "V:" in capsys.readouterr().out  # the report, before the video

    resumed = build(OmegaConf.create(state["config"]), stopped, resume_from=state).execute()
    assert "V:" not in capsys.readouterr().out, "the resumed run reported its values again"
    assert sorted(p.name for p in (stopped / "videos").iterdir()) == ["final-episode-0.mp4"]
    assert (stopped / "videos/final-episode-0.mp4").stat().st_size > 0
    assert {key: resumed[key] for key in ("sweeps", "converged", "start_value", "eval_return_mean")} == \
        {key: summary[key] for key in ("sweeps", "converged", "start_value", "eval_return_mean")}
    assert_same_agent(load(whole / "checkpoints/final.pt")["agent"], load(stopped / "checkpoints/final.pt")["agent"])


def test_a_checkpoint_from_before_stops_could_owe_an_evaluation_still_resumes_exactly(tmp_path):
    """Checkpoints written before a stop could cut an evaluation short have no `owed` or `ended`
    in their session state: nothing is owed, and the loop goes on. Nor do those written before
    best.pt have a `best`: it is the best of the evaluations they hold."""
    overrides, k = FAMILIES["dqn"]
    overrides = [*overrides, *QUIET, f"checkpoint.every={k}", f"eval.every={k}"]
    whole = tmp_path / "whole"
    summary = run(whole, overrides)
    state = load(whole / "checkpoints" / f"step_{k}.pt")
    del state["session"]["owed"], state["session"]["ended"], state["session"]["best"]
    resumed = build(OmegaConf.create(state["config"]), tmp_path / "older", resume_from=state).execute()
    assert_same_agent(load(whole / "checkpoints/final.pt")["agent"], load(tmp_path / "older/checkpoints/final.pt")["agent"])
    assert resumed["evaluations"][-1]["eval_return_mean"] == summary["eval_return_mean"]
    assert resumed["best_eval_step"] == summary["best_eval_step"]
