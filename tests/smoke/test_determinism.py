"""Same seed on the CPU -> the same learning curve; checkpoints round-trip."""

import json

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import run_in_process

RUN = ["total_steps=1500", "algo.learning_starts=300", "eval.every=500", "eval.episodes=3",
       "log.every=100", "device=cpu"]


def curve(run_dir, tag):
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_same_seed_same_curve(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    run_in_process(a, *RUN, "seed=7")
    run_in_process(b, *RUN, "seed=7")
    run_in_process(c, *RUN, "seed=8")
    for tag in ("charts/episodic_return", "losses/td_loss", "eval/episodic_return"):
        assert curve(a, tag) == curve(b, tag), tag
    assert curve(a, "charts/episodic_return") != curve(c, "charts/episodic_return")
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    assert sa["eval_return_mean"] == sb["eval_return_mean"]


def test_final_checkpoint_restores_the_trained_agent(tmp_path):
    import numpy as np

    from conftest import compose_config
    from deeprl.build import build
    from deeprl.core.checkpoint import load

    summary = run_in_process(tmp_path / "run", *RUN, "seed=3")
    state = load(tmp_path / "run" / "checkpoints" / "final.pt")
    # The preset's 8 envs step in batches of 8: total_steps=1500 ends at 1504.
    assert state["step"] == summary["steps"] == 1504 and {"agent", "rng"} <= set(state)
    fresh = build(compose_config(*RUN, "seed=4"), tmp_path / "fresh")
    fresh.agent.load_state_dict(state["agent"])
    from deeprl.loops.evaluate import evaluate

    returns, _ = evaluate(fresh.agent, fresh.cfg.env, 3, seed=10_000 + 1_000 * 3)
    assert np.mean(returns) == summary["eval_return_mean"]


# DQN's evaluation acts from its own stream (epsilon 0.5 here); a policy that samples when
# evaluated draws from its training generator.
SAMPLING_EVALUATIONS = pytest.mark.parametrize("algo", [
    ["algo=dqn", "algo.learning_starts=300", "algo.exploration.eval=0.5"],
    ["algo=ppo", "algo.deterministic_eval=false"],
], ids=["dqn", "ppo_sampling"])


@SAMPLING_EVALUATIONS
def test_how_often_a_run_evaluates_changes_neither_training_nor_the_final_score(tmp_path, algo):
    """Each evaluation acts from streams seeded by the evaluation seed and put back after it: the
    training curve, the trained agent and the final evaluation are the same whether or not (and
    however often) a run evaluates, and the final checkpoint replays the run's own evaluation."""
    from conftest import compose_config
    from deeprl.build import build
    from deeprl.core.checkpoint import load
    from deeprl.loops.evaluate import evaluate

    often, never = tmp_path / "often", tmp_path / "never"
    summaries = [run_in_process(often, *RUN[:1], *RUN[2:], *algo, "seed=5", "eval.every=250"),
                 run_in_process(never, *RUN[:1], *RUN[2:], *algo, "seed=5", "eval.every=0")]
    assert len(curve(often, "eval/episodic_return")) == 6 and len(curve(never, "eval/episodic_return")) == 1
    for tag in ("charts/episodic_return", "losses/td_loss" if "algo=dqn" in algo else "losses/policy_loss"):
        assert curve(often, tag) == curve(never, tag), tag
    a, b = (load(run_dir / "checkpoints" / "final.pt")["agent"] for run_dir in (often, never))
    assert equal_trees(a, b)
    assert curve(often, "eval/episodic_return")[-1] == curve(never, "eval/episodic_return")[-1]
    final = [(summary["eval_return_mean"], summary["eval_return_std"]) for summary in summaries]
    assert final[0] == final[1]
    # A fresh agent of another seed, given the final checkpoint, scores the same (as `evaluate`).
    fresh = build(compose_config(*RUN[:1], *RUN[2:], *algo, "seed=6"), tmp_path / "fresh", with_loop=False)
    fresh.envs.close()
    fresh.agent.load_state_dict(a)
    returns, _ = evaluate(fresh.agent, fresh.cfg.env, 3, seed=10_000 + 1_000 * 5)
    assert (returns.mean(), returns.std()) == final[0]


def test_deterministic_true_turns_on_every_switch_and_repeats_the_run(tmp_path):
    import os

    import torch

    from conftest import compose_config
    from deeprl.build import build

    os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    run = build(compose_config(*RUN, "seed=7", "deterministic=true", "log.progress=false"), tmp_path / "a")
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    run.execute()  # every op of a DQN run has a deterministic kernel (an error otherwise)
    run_in_process(tmp_path / "b", *RUN, "seed=7", "deterministic=true")
    for tag in ("charts/episodic_return", "losses/td_loss", "eval/episodic_return"):
        assert curve(tmp_path / "a", tag) == curve(tmp_path / "b", tag), tag


def test_deterministic_false_lets_cudnn_autotune(tmp_path):
    import torch

    from conftest import compose_config
    from deeprl.build import build

    torch.use_deterministic_algorithms(True)
    build(compose_config(*RUN, "deterministic=false"), tmp_path / "a", with_loop=False).envs.close()
    assert not torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.benchmark and not torch.backends.cudnn.deterministic


def test_deterministic_false_leaves_torchs_compiler_unloaded():
    """Off is torch's default: setting it again would import torch's compiler (about 0.8 s of a
    planner's or tabular learner's start-up), so set_deterministic(False) leaves it alone."""
    import subprocess
    import sys

    code = ("import sys, torch; from deeprl.core.seeding import set_deterministic; set_deterministic(False); "
            "print('torch._inductor' in sys.modules, torch.are_deterministic_algorithms_enabled(), "
            "torch.backends.cudnn.benchmark)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["False", "False", "True"], result.stderr[-2000:]


def test_deterministic_true_runs_every_algorithm_family(tmp_path):
    """Policy gradients, continuous control and a convolutional torso have deterministic kernels
    for every op they use (use_deterministic_algorithms raises on one without)."""
    for name, overrides in {
        "ppo": ["algo=ppo", "env=cartpole", "total_steps=512", "eval.episodes=1"],
        "sac": ["algo=sac", "env=pendulum", "total_steps=300", "algo.learning_starts=200", "eval.episodes=1"],
        "cnn": ["algo=dqn", "env=breakout", "total_steps=300", "algo.learning_starts=200", "eval.episodes=1",
                "algo.buffer_size=1000", "env.max_frames=2000"],
    }.items():
        summary = run_in_process(tmp_path / name, *overrides, "deterministic=true", "device=cpu", "eval.every=0")
        assert summary["total_steps"] == int(overrides[2].split("=")[1])


@SAMPLING_EVALUATIONS
def test_recording_videos_changes_nothing_that_follows(tmp_path, algo):
    from deeprl.core.checkpoint import load

    runs = {every: tmp_path / f"video_{every}" for every in (0, 500)}
    summaries = {every: run_in_process(run_dir, *RUN[:1], *RUN[2:], *algo, "seed=2", f"video.every={every}")
                 for every, run_dir in runs.items()}
    assert len(list((runs[500] / "videos").glob("step_*-episode-0.mp4"))) == 3  # steps 500, 1000, 1500
    tags = ["charts/episodic_return", "eval/episodic_return"]
    for tag in tags:
        assert curve(runs[0], tag) == curve(runs[500], tag), tag
    assert summaries[0]["eval_return_mean"] == summaries[500]["eval_return_mean"]
    # Networks, optimisers and every random stream, the one the videos acted from included.
    a, b = (load(run_dir / "checkpoints" / "final.pt")["agent"] for run_dir in runs.values())
    assert equal_trees(a, b)


def equal_trees(a, b) -> bool:
    """Exact equality of two nested states (dicts, lists, tensors, arrays, plain values)."""
    import numpy as np
    import torch

    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(equal_trees(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(equal_trees, a, b))
    return a == b
