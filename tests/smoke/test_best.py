"""checkpoints/best.pt (`checkpoint.best`): the run at its best evaluation, which `evaluate`,
`init_from` and `deeprl.load` read as any checkpoint and a resume never picks."""

import json
import os

import numpy as np
import pytest
from omegaconf import OmegaConf

import deeprl
from conftest import compose_config
from deeprl.build import build
from deeprl.core.checkpoint import latest, load
from deeprl.evaluate import main as evaluate_main

QUIET = ["log.progress=false", "device=cpu", "eval.episodes=3", "log.every=500"]
DQN = ["algo=dqn", "env=cartpole", "total_steps=6000", "eval.every=1000", "algo.learning_starts=500",
       "algo.exploration.fraction=0.3", *QUIET]


def run(run_dir, *overrides):
    """A run in this process, with the .hydra/config.yaml that `train` leaves (evaluate reads it)."""
    cfg = compose_config(*overrides)
    (run_dir / ".hydra").mkdir(parents=True)
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
    return build(cfg, run_dir).execute()


def first_best(history: list[dict]) -> dict:
    """The evaluation with the highest mean, the earliest among equals."""
    return max(history, key=lambda e: e["eval_return_mean"])


def test_best_pt_is_the_run_at_its_best_evaluation_and_replays_its_score(tmp_path, capsys):
    summary = run(tmp_path, *DQN)
    best = first_best(summary["evaluations"])
    assert len(summary["evaluations"]) == 6
    assert (summary["best_eval_step"], summary["best_eval_return_mean"]) == (best["step"], best["eval_return_mean"])
    state = load(tmp_path / "checkpoints/best.pt")
    assert state["step"] == best["step"]
    assert state["session"]["history"][-1] == best and state["session"]["best"] == best
    # No replay buffer in best.pt; the run's own checkpoints keep it (checkpoint.buffer: true).
    assert state["loop"]["buffer"] is None and load(tmp_path / "checkpoints/final.pt")["loop"]["buffer"] is not None
    # The agent in best.pt plays the evaluation it was kept for, episode for episode: the run's
    # evaluations reset episode i with seed 10000 + 1000 * seed + i.
    returns, _ = deeprl.load(tmp_path / "checkpoints/best.pt").evaluate(episodes=3, seed=11_000)
    assert float(np.mean(returns)) == best["eval_return_mean"]
    printed = capsys.readouterr().out
    line = (f"deeprl | best evaluation: {best['eval_return_mean']:.1f} at step {best['step']} -> "
            f"{tmp_path / 'checkpoints' / 'best.pt'}")
    assert (line in printed) == (best["eval_return_mean"] > summary["eval_return_mean"]), printed


def test_equal_evaluations_keep_the_earliest_and_a_final_one_as_good_says_nothing(tmp_path, capsys):
    # Learning starts after the run ends: the agent never changes, so every evaluation scores the same.
    summary = run(tmp_path, "algo=dqn", "env=cartpole", "total_steps=3000", "eval.every=1000",
                  "algo.learning_starts=5000", *QUIET)
    scores = {e["eval_return_mean"] for e in summary["evaluations"]}
    assert len(summary["evaluations"]) == 3 and len(scores) == 1
    assert summary["best_eval_step"] == 1000 and load(tmp_path / "checkpoints/best.pt")["step"] == 1000
    assert "best evaluation:" not in capsys.readouterr().out  # the final agent scores as well: nothing to point at


def test_evaluate_and_init_from_take_best_pt_and_a_resume_never_does(tmp_path, capsys):
    first = tmp_path / "first"
    run(first, *DQN)
    folder = first / "checkpoints"
    os.utime(folder / "best.pt")  # newer than final.pt: a resume still goes on from final.pt
    assert latest(folder)[0] == folder / "final.pt"
    evaluate_main([str(folder / "best.pt"), "--episodes", "2"])
    result = json.loads((first / "evaluation-best-episodes2.json").read_text())
    assert len(result["returns"]) == 2
    assert "evaluation.json" not in os.listdir(first)  # final.pt's result name is left for final.pt
    started = run(tmp_path / "second", *DQN, f"init_from={folder / 'best.pt'}", "total_steps=1000")
    assert started["steps"] == 1000


def test_checkpoint_best_false_writes_no_best_pt(tmp_path, capsys):
    summary = run(tmp_path, *DQN, "checkpoint.best=false")
    assert not (tmp_path / "checkpoints/best.pt").exists()
    assert summary["best_eval_step"] == first_best(summary["evaluations"])["step"]
    assert "best evaluation:" not in capsys.readouterr().out


@pytest.mark.parametrize("algo", ["ppo", "q_learning", "value_iteration"])
def test_every_kind_of_loop_keeps_its_best(tmp_path, algo):
    env = {"ppo": "cartpole", "q_learning": "frozenlake", "value_iteration": "gridworld_4x3"}[algo]
    steps = [] if algo == "value_iteration" else ["total_steps=3000", "eval.every=1000"]
    summary = run(tmp_path, f"algo={algo}", f"env={env}", *steps, *QUIET)
    best = first_best(summary["evaluations"])
    assert load(tmp_path / "checkpoints/best.pt")["step"] == summary["best_eval_step"] == best["step"]
