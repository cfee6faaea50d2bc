"""Same seed on the CPU -> the same learning curve; checkpoints round-trip."""

import json

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
    assert state["step"] == 1500 and {"agent", "rng"} <= set(state)
    fresh = build(compose_config(*RUN, "seed=4"), tmp_path / "fresh")
    fresh.agent.load_state_dict(state["agent"])
    from deeprl.loops.evaluate import evaluate

    returns, _ = evaluate(fresh.agent, fresh.cfg.env, 3, seed=10_000 + 1_000 * 3)
    assert np.mean(returns) == summary["eval_return_mean"]


def test_evaluating_does_not_change_training(tmp_path):
    """Evaluation acts from its own random stream: the training curve is the same whether or not
    (and however often) a run evaluates."""
    often, never = tmp_path / "often", tmp_path / "never"
    run_in_process(often, *RUN, "seed=5", "eval.every=250")
    run_in_process(never, *RUN, "seed=5", "eval.every=0")
    for tag in ("charts/episodic_return", "losses/td_loss"):
        assert curve(often, tag) == curve(never, tag), tag
