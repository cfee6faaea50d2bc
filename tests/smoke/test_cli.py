"""The `train` console script end to end, in a subprocess, with real envs and real event files."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import consoles
from conftest import train_cli

# The CartPole preset steps 8 envs at a time: intervals are multiples of 8 so steps land on them.
QUICK = ["total_steps=600", "algo.learning_starts=200", "algo.exploration.fraction=0.5", "eval.every=200", "eval.episodes=2",
         "log.every=100", "checkpoint.every=200"]

EXPECTED_TAGS = {
    "charts/episodic_return", "charts/episodic_length", "charts/SPS", "charts/epsilon",
    "charts/learning_rate", "losses/td_loss", "losses/q_values", "eval/episodic_return",
    "eval/episodic_length",
}


def load_events(run_dir: Path) -> EventAccumulator:
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("cli")
    result = train_cli("algo=dqn", "env=cartpole", *QUICK, cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = list((cwd / "outputs" / "dqn" / "cartpole").iterdir())
    assert len(runs) == 1
    return result, runs[0]


def test_run_dir_layout(cli_run):
    _, run_dir = cli_run
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert (run_dir / "checkpoints" / "final.pt").is_file()
    assert (run_dir / "checkpoints" / "step_200.pt").is_file()
    assert (run_dir / "checkpoints" / "step_400.pt").is_file()
    assert not list(run_dir.rglob("*.tmp")), "temporary checkpoint files left behind"


def test_summary_json(cli_run):
    _, run_dir = cli_run
    summary = json.loads((run_dir / "summary.json").read_text())
    for key in ("eval_return_mean", "eval_return_std", "total_steps", "wall_time_s", "sps", "algo",
                "env", "seed", "device"):
        assert key in summary, key
    assert summary["algo"] == "dqn" and summary["env"] == "CartPole-v1" and summary["seed"] == 1
    assert summary["total_steps"] == 600 and summary["device"] == "cpu"
    assert summary["eval_return_mean"] >= 8  # CartPole gives at least 8 steps of reward
    assert summary["sps"] > 0 and summary["wall_time_s"] > 0
    # What the result was made with, for a reader comparing it with theirs.
    import torch

    from deeprl import __version__

    assert summary["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert summary["versions"]["deeprl"] == __version__ and summary["versions"]["torch"] == torch.__version__


def test_events_have_the_documented_tags_on_an_env_step_axis(cli_run):
    _, run_dir = cli_run
    acc = load_events(run_dir)
    tags = set(acc.Tags()["scalars"])
    assert EXPECTED_TAGS <= tags, EXPECTED_TAGS - tags
    steps = [e.step for e in acc.Scalars("charts/episodic_return")]
    assert steps == sorted(steps) and 0 < steps[-1] <= 600
    assert [e.step for e in acc.Scalars("eval/episodic_return")] == [200, 400, 600]
    epsilon = [e.value for e in acc.Scalars("charts/epsilon")]
    assert epsilon[0] > epsilon[-1]  # decays
    summary = json.loads((run_dir / "summary.json").read_text())
    assert acc.Scalars("eval/episodic_return")[-1].value == pytest.approx(summary["eval_return_mean"])


def test_config_text_and_hparams_are_logged(cli_run):
    _, run_dir = cli_run
    acc = load_events(run_dir)
    tensor_tags = set(acc.Tags()["tensors"])
    assert "config/text_summary" in tensor_tags
    text = acc.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "CartPole-v1" in text and "total_steps: 600" in text
    plugin = acc.PluginTagToContent("hparams")
    assert "_hparams_/experiment" in plugin and "_hparams_/session_start_info" in plugin
    assert b"algo.lr" in plugin["_hparams_/session_start_info"]
    summary = json.loads((run_dir / "summary.json").read_text())
    for metric, value in (("eval_return_mean", summary["eval_return_mean"]),
                          ("best_eval_return", summary["best_eval_return_mean"]),
                          ("mean_eval_return", sum(e["eval_return_mean"] for e in summary["evaluations"]) / 3)):
        assert [e.value for e in acc.Scalars(f"hparams/{metric}")] == [pytest.approx(value)], metric
    assert summary["best_eval_return_mean"] == max(e["eval_return_mean"] for e in summary["evaluations"])


def test_the_banner_says_that_env_id_replaced_a_named_envs_task(tmp_path):
    # As one would write `--env Acrobot-v1` elsewhere: CartPole's settings and preset still apply.
    result = train_cli("env.id=Acrobot-v1", "total_steps=100", "eval.episodes=1", "log.progress=false", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("deeprl | dqn on Acrobot-v1 | algo=dqn with conf/tuned/dqn_cartpole.yaml; "
                                    "env.id=Acrobot-v1 replaced env=cartpole's task and keeps its settings "
                                    "(env=acrobot is Acrobot-v1's own config) | seed 1 |"), result.stdout


def test_console_banner_and_result_line(cli_run):
    result, run_dir = cli_run
    banner = [line for line in result.stdout.splitlines() if line.startswith("deeprl |")]
    assert str(run_dir) in banner[0] and "device cpu" in banner[0] and "tensorboard --logdir" in banner[0]
    # What the config came from: the algo= choice and the (algo, env) pair's tuned preset.
    assert banner[0].startswith("deeprl | dqn on CartPole-v1 | algo=dqn with conf/tuned/dqn_cartpole.yaml | ")
    assert "eval return" in banner[-1]
    # The same lines, stamped, in Hydra's log of the run (deeprl.core.console).
    log = (run_dir / "train.log").read_text().splitlines()
    assert [line.split("[deeprl][INFO] - ", 1)[1] for line in log] == [b.removeprefix("deeprl | ") for b in banner]


def test_the_banner_names_a_variant_and_says_when_no_preset_applies(tmp_path):
    result = train_cli("algo=rainbow_lite", "env=acrobot", "total_steps=200", "algo.learning_starts=100",
                       "eval.every=0", "eval.episodes=1", "log.progress=false", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not (Path(__file__).parents[2] / "conf" / "tuned" / "rainbow_lite_acrobot.yaml").exists()
    assert result.stdout.startswith("deeprl | dqn on Acrobot-v1 | algo=rainbow_lite, no tuned preset for "
                                    "env=acrobot | seed 1 |")


def evaluate_cli(*args: str) -> subprocess.CompletedProcess:
    return consoles.run("evaluate", *args)


def test_evaluate_with_epsilon_reports_and_records_it(cli_run):
    _, run_dir = cli_run
    default = evaluate_cli(str(run_dir))
    assert default.returncode == 0, default.stderr
    assert default.stdout.splitlines()[1] == f"result: {run_dir / 'evaluation.json'}"
    kept = (run_dir / "evaluation.json").read_bytes()
    result = evaluate_cli(str(run_dir), "--episodes", "3", "--epsilon", "1.0", "--seed", "5")
    assert result.returncode == 0, result.stderr
    line, written = result.stdout.splitlines()
    assert line.startswith("CartPole-v1: return ") and "over 3 episodes (epsilon 1.0) | " in line
    assert line.endswith(str(run_dir / "checkpoints" / "final.pt"))
    # Named by the flags that differ from the defaults: the default evaluation's result is kept.
    path = run_dir / "evaluation-episodes3-seed5-epsilon1.json"
    assert written == f"result: {path}" and (run_dir / "evaluation.json").read_bytes() == kept
    saved = json.loads(path.read_text())
    assert saved["epsilon"] == 1.0 and saved["seed"] == 5 and len(saved["returns"]) == 3
    # A random policy: CartPole's uniform-action episodes last about 22 steps, rarely 100.
    assert max(saved["lengths"]) < 100 and saved["returns"] == saved["lengths"]
    # A flag given at its default value names nothing: the same evaluation, the same file.
    again = evaluate_cli(str(run_dir), "--episodes", "10", "--epsilon", "0", "--seed", str(json.loads(kept)["seed"]))
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[1] == f"result: {run_dir / 'evaluation.json'}"
    assert (run_dir / "evaluation.json").read_bytes() == kept


def test_evaluate_refuses_epsilon_for_an_agent_that_is_not_epsilon_greedy(tmp_path):
    trained = train_cli("algo=reinforce", "env=cartpole", "total_steps=200", "eval.every=0", "eval.episodes=1",
                        "log.progress=false", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-3000:]
    [run_dir] = list((tmp_path / "outputs" / "reinforce" / "cartpole").iterdir())
    before = (run_dir / "evaluation.json").exists()
    result = evaluate_cli(str(run_dir), "--epsilon", "0.1")
    assert result.returncode == 2
    assert result.stderr.strip() == ("evaluate: error: --epsilon: reinforce does not act epsilon-greedily; "
                                     "drop --epsilon")
    assert (run_dir / "evaluation.json").exists() == before

    # How a policy acts in evaluation: by default the run's algo.deterministic_eval (true here).
    played = {}
    for mode in ([], ["--deterministic"], ["--stochastic"]):
        result = evaluate_cli(str(run_dir), *mode)
        assert result.returncode == 0, result.stderr
        # The run's own way of acting is the default: only --stochastic is named.
        saved = json.loads((run_dir / f"evaluation{'-stochastic' * (mode == ['--stochastic'])}.json").read_text())
        played[tuple(mode)] = (saved["deterministic"], saved["returns"])
        assert result.stdout.split(" | ")[0].endswith("(stochastic)" if mode == ["--stochastic"] else "(deterministic)")
    assert played[()] == played[("--deterministic",)] and played[()][0] is True
    assert played[("--stochastic",)][0] is False and played[("--stochastic",)][1] != played[()][1]


def test_evaluate_refuses_a_choice_of_acting_an_agent_does_not_have(cli_run, tmp_path):
    trained = train_cli("algo=value_iteration", "env=gridworld_4x3", "eval.episodes=1", "log.progress=false",
                        cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-3000:]
    [planner] = list((tmp_path / "outputs" / "value_iteration" / "gridworld_4x3").iterdir())
    result = evaluate_cli(str(planner), "--deterministic")
    assert (result.returncode, result.stderr.strip()) == (
        2, "evaluate: error: --deterministic: value_iteration has one way to act in evaluation; drop "
           "--deterministic (it is for ppo, a2c, actor_critic and reinforce)")
    _, run_dir = cli_run
    result = evaluate_cli(str(run_dir), "--stochastic")
    assert (result.returncode, result.stderr.strip()) == (
        2, "evaluate: error: --stochastic: dqn acts epsilon-greedily in evaluation; use --epsilon instead (0 is greedy)")
    result = evaluate_cli(str(run_dir), "--stochastic", "--deterministic")
    assert result.returncode == 2 and "not allowed with argument" in result.stderr


def test_evaluate_refuses_a_bad_path_or_flag_before_torch_is_imported(cli_run, tmp_path):
    """A mistyped path or flag is answered in a fraction of a second, not after torch's import."""
    _, run_dir = cli_run
    code = ("import sys\n"
            "from deeprl.evaluate import main\n"
            "try:\n"
            "    main(sys.argv[1:])\n"
            "except SystemExit as stop:\n"
            "    print('exit', stop.code, 'torch' in sys.modules)\n")
    for argv, error in (([str(tmp_path / "no_such_run")], f"path: {tmp_path / 'no_such_run'}: no such file or "
                                                           "directory; pass a run dir or a .pt file"),
                        ([str(run_dir), "--episodes", "0"], "--episodes: must be >= 1, got 0")):
        result = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120)
        assert result.stdout.split() == ["exit", "2", "False"], result.stdout + result.stderr[-2000:]
        assert result.stderr.strip() == f"evaluate: error: {error}"


def copy_run(run_dir: Path, to: Path) -> Path:
    shutil.copytree(run_dir, to)
    (to / "evaluation.json").unlink(missing_ok=True)
    return to


def test_evaluate_refuses_an_unreadable_checkpoint_in_one_line_and_writes_nothing(cli_run, tmp_path):
    _, run_dir = cli_run
    run = copy_run(run_dir, tmp_path / "run")
    final = run / "checkpoints" / "final.pt"
    final.write_bytes(final.read_bytes()[:1000])  # a copy cut short
    (run / "checkpoints" / "notes.pt").write_text("not a checkpoint\n")
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    for path, reason in ((run, "not a torch checkpoint file (truncated, or another kind of file)"),
                         (run / "checkpoints" / "notes.pt", "not a torch checkpoint file (truncated, or another "
                                                           "kind of file)")):
        result = evaluate_cli(str(path))
        assert result.returncode == 2, result.stderr[-3000:]
        shown = path / "checkpoints" / "final.pt" if path.is_dir() else path
        assert result.stderr.strip() == (f"evaluate: error: checkpoint: cannot read {shown}: {reason}; pass a "
                                         "checkpoint written by `train` (a run dir's checkpoints/*.pt)")
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before


def test_evaluate_on_a_run_that_has_not_finished_uses_its_newest_checkpoint(cli_run, tmp_path):
    _, run_dir = cli_run
    run = copy_run(run_dir, tmp_path / "stopped")
    (run / "checkpoints" / "final.pt").unlink()  # as a run stopped by a signal or its time limit leaves it
    refused = evaluate_cli(str(run), "--episodes", "0")  # one line: no note about what it would have evaluated
    assert (refused.returncode, refused.stderr.strip()) == (2, "evaluate: error: --episodes: must be >= 1, got 0")
    result = evaluate_cli(str(run), "--episodes", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.strip() == (f"evaluate: note: {run} has no final.pt (the run has not finished); "
                                     "evaluating its newest checkpoint, step_400.pt")
    line, written = result.stdout.splitlines()
    assert line.endswith(str(run / "checkpoints" / "step_400.pt"))
    assert written == f"result: {run / 'evaluation-step_400-episodes2.json'}"
    saved = json.loads((run / "evaluation-step_400-episodes2.json").read_text())
    assert saved["checkpoint"] == str(run / "checkpoints" / "step_400.pt") and len(saved["returns"]) == 2
    assert not (run / "evaluation.json").exists()


def test_evaluate_on_a_run_still_training_before_its_first_checkpoint_says_so(cli_run, tmp_path):
    import socket

    from deeprl.core.run_dir import hold, release

    _, run_dir = cli_run
    run = copy_run(run_dir, tmp_path / "starting")
    shutil.rmtree(run / "checkpoints")  # as a run looks before its first checkpoint
    (run / "checkpoints").mkdir()
    hold(run, "hydra.run.dir")  # this process plays the run still training there
    try:
        result = evaluate_cli(str(run))
    finally:
        release(run)
    assert (result.returncode, result.stderr.strip()) == (
        2, f"evaluate: error: checkpoint: {run} has no checkpoint yet: its run is still training (pid {os.getpid()} "
           f"on {socket.gethostname()}) and writes one every 200 steps or every 10 minutes; evaluate it then")
    result = evaluate_cli(str(run))  # once it has ended (here: stopped before any checkpoint)
    assert (result.returncode, result.stderr.strip()) == (
        2, f"evaluate: error: checkpoint: {run} has no checkpoint: its run ended before writing one (or they were "
           "removed); pass another run")
    # An evaluation came before any checkpoint to resume from: its best.pt can be evaluated meanwhile.
    shutil.copy(run_dir / "checkpoints" / "best.pt", run / "checkpoints" / "best.pt")
    hold(run, "hydra.run.dir")
    try:
        result = evaluate_cli(str(run))
    finally:
        release(run)
    best = run / "checkpoints" / "best.pt"
    assert (result.returncode, result.stderr.strip()) == (
        2, f"evaluate: error: checkpoint: {run} has no checkpoint yet: its run is still training (pid {os.getpid()} "
           f"on {socket.gethostname()}) and writes one every 200 steps or every 10 minutes; evaluate it then, or its "
           f"best evaluation so far now: evaluate {best}")
    result = evaluate_cli(str(run))
    assert (result.returncode, result.stderr.strip()) == (
        2, f"evaluate: error: checkpoint: {run} has no final or step checkpoint: its run ended before writing one (or "
           f"they were removed); its best evaluation is kept: evaluate {best}")
    assert evaluate_cli(str(best), "--episodes", "1").returncode == 0  # the advice works


def test_a_path_that_is_not_a_run_dir_is_answered_with_the_run_dir_to_pass(cli_run, tmp_path):
    _, run_dir = cli_run
    older = copy_run(run_dir, tmp_path / "runs" / "a")
    # a space and a list override's brackets (a sweep job's dir): quoted, so the advice can be pasted
    newer = copy_run(run_dir, tmp_path / "runs" / "b c" / "network.hidden_sizes=[8,8]")
    os.utime(older / "checkpoints", (1e9, 1e9))
    os.utime(newer / "checkpoints", (2e9, 2e9))  # the newest: named as the example
    before = sorted(tmp_path.rglob("*"))
    runs, checkpoints, final = tmp_path / "runs", older / "checkpoints", older / "checkpoints" / "final.pt"
    expected = {runs: f"{runs} is not a run dir but holds 2 runs; pass one of them, e.g. the newest: {{}} '{newer}'",
                checkpoints: f"{checkpoints} is a run's checkpoints folder; pass its run dir: {{}} {older}"}
    for path, message in expected.items():
        result = evaluate_cli(str(path))
        assert (result.returncode, result.stderr.strip()) == (2, "evaluate: error: path: " + message.format("evaluate"))
    expected[final] = f"{final} is a checkpoint file; pass its run dir: {{}} {older}"
    for path, message in expected.items():
        result = train_cli(f"resume={path}", cwd=tmp_path)
        assert (result.returncode, result.stderr.strip()) == (2, "deeprl: error: resume: "
                                                                 + message.format("train resume=").replace("= ", "="))
    advice = evaluate_cli(str(runs)).stderr.strip().rpartition(": evaluate ")[2]
    pasted = subprocess.run(["bash", "-c", f"{Path(sys.executable).parent / 'evaluate'} {advice} --episodes 1"],
                            capture_output=True, text=True, timeout=300)
    assert pasted.returncode == 0, pasted.stderr
    assert pasted.stdout.splitlines()[0].endswith(str(newer / "checkpoints" / "final.pt"))
    (newer / "evaluation-episodes1.json").unlink()
    result = evaluate_cli(str(tmp_path / "nope"))
    assert (result.returncode, result.stderr.strip()) == (2, f"evaluate: error: path: {tmp_path / 'nope'}: no such file "
                                                             "or directory; pass a run dir or a .pt file")
    result = evaluate_cli(str(older), "--epsilon", "2")  # the option's own name, not the config key it sets
    assert (result.returncode, result.stderr.strip()) == (2, "evaluate: error: --epsilon: must be a number in [0, 1], "
                                                             "got 2.0; e.g. --epsilon 0.05")
    assert sorted(tmp_path.rglob("*")) == before


def test_cfg_job_prints_composed_config(tmp_path):
    result = train_cli("--cfg", "job", "env=acrobot", cwd=tmp_path)
    assert result.returncode == 0
    assert "id: Acrobot-v1" in result.stdout
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize("prog, args", [("train", ["--version"]), ("evaluate", ["--version"]),
                                         ("compare", ["--version"]),
                                         # after an override, where Hydra's own flag would answer
                                         ("train", ["algo=ppo", "--version"]), ("evaluate", ["x", "--version"])])
def test_version_names_deeprl_and_the_libraries_results_depend_on(tmp_path, prog, args):
    from importlib import metadata

    from deeprl import __version__

    result = subprocess.run([str(Path(sys.executable).parent / prog), *args], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{prog} (deeprl) {__version__} | Python "), result.stdout
    for name in ("torch", "gymnasium", "ale-py", "hydra-core"):
        assert f"{name} {metadata.version(name)}" in result.stdout
    assert result.stdout.count("\n") == 1 and not list(tmp_path.iterdir())  # one line; no run dir made


def test_help_starts_with_commands_that_compose(tmp_path):
    """`train --help` opens with example commands, then Hydra's groups and config; each example
    (its first value where it sweeps) composes and validates."""
    from conftest import compose_config
    from deeprl.validate import validate

    result = train_cli("--help", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("train: train a deep RL agent (deeprl).")
    assert "== Configuration groups ==" in result.stdout and "\nalgo: a2c, actor_critic," in result.stdout
    assert result.stdout.rstrip().endswith("More: README.md, docs/.")
    header = result.stdout.split("== Configuration groups ==")[0]
    examples = [line.split("  ")[1].split() for line in header.splitlines() if line.startswith("  train ")]
    assert len(examples) >= 5, result.stdout[:2000]
    for example in examples:
        if any("<" in arg for arg in example):  # a placeholder (resume=<run dir>)
            continue
        overrides = [arg.split(",")[0] for arg in example[1:] if arg != "-m"]
        validate(compose_config(*overrides))
    assert not (tmp_path / "outputs").exists()


def test_multirun_writes_one_dir_per_override(tmp_path):
    result = train_cli("-m", "seed=1,2", "total_steps=300", "algo.learning_starts=100",
                       "eval.every=0", "eval.episodes=1", "log.progress=false", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    [sweep] = list((tmp_path / "multirun").iterdir())
    dirs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    # <override_dirname>: every command-line override, sorted, comma-joined.
    assert dirs == [f"algo.learning_starts=100,eval.episodes=1,eval.every=0,log.progress=False,"
                    f"seed={s},total_steps=300" for s in (1, 2)]
    for name, seed in zip(dirs, (1, 2), strict=True):
        assert json.loads((sweep / name / "summary.json").read_text())["seed"] == seed
    assert result.stdout.count("| algo=dqn with conf/tuned/dqn_cartpole.yaml | ") == 2  # each job's banner
    # The end: what a launcher that runs jobs elsewhere (submitit, Ray) would otherwise leave unsaid.
    where = sweep.relative_to(tmp_path)  # as Hydra names it: relative to where train ran
    assert result.stdout.endswith(f"deeprl | sweep done: 2 jobs in {where}; compare them: compare {where}\n")


@pytest.mark.parametrize("algo, total, learns", [
    ("dqn", 200, False), ("dqn", 201, True),  # 8 envs: 201 ends at 208, past learning_starts=200
    ("sac", 200, False),
])
def test_a_run_too_short_to_learn_says_so(tmp_path, algo, total, learns):
    env = "cartpole" if algo == "dqn" else "pendulum"
    result = train_cli(f"algo={algo}", f"env={env}", f"total_steps={total}", "algo.learning_starts=200",
                       "eval.episodes=1", "log.progress=false", "log.every=8", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    (run_dir,) = (tmp_path / "outputs" / algo / env).iterdir()
    updated = any(tag.startswith("losses/") for tag in load_events(run_dir).Tags()["scalars"])
    note = (f"deeprl | note: total_steps={total} ends before learning starts (algo.learning_starts=200): "
            "the agent is never updated and scores as untrained; raise total_steps or lower algo.learning_starts")
    assert updated == learns
    assert (note in result.stdout) == (not learns)
    assert (note.removeprefix("deeprl | ") in (run_dir / "train.log").read_text()) == (not learns)


def test_the_banner_names_a_family_preset(tmp_path):
    # Double DQN on a MinAtar game has no file of its own: the DQN family's MinAtar preset applies.
    result = train_cli("algo=double_dqn", "env=minatar_freeway", "total_steps=64", "algo.learning_starts=32",
                       "algo.buffer_size=500", "eval.every=0", "eval.episodes=1", "log.progress=false", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("deeprl | dqn on MinAtar/Freeway-v0 | algo=double_dqn with "
                                    "conf/tuned/family/dqn_minatar.yaml | seed 1 |"), result.stdout[:300]
