"""Every DQN variant runs on real ALE Breakout (Nature CNN) on the CPU, end to end."""

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import run_in_process

SHORT = ["env=breakout", "total_steps=240", "algo.learning_starts=80", "algo.buffer_size=1000",
         "algo.batch_size=8", "eval.every=0", "eval.episodes=1", "env.max_frames=1200", "log.every=40",
         "device=cpu"]


@pytest.mark.parametrize("variant", [
    ["algo=dqn"],
    ["algo=double_dqn"],
    ["algo=dueling_dqn"],
    ["algo=prioritized_dqn"],
    ["algo=rainbow_lite"],
    ["algo=dqn", "algo.replay=false", "algo.target.enabled=false"],
    ["algo=dqn", "algo.precision=bf16", "network.channels_last=true"],
    ["algo=dqn", "algo.precision=fp32", "network.channels_last=false"],
], ids=lambda v: " ".join(v))
def test_dqn_variant_trains_on_breakout(tmp_path, variant):
    summary = run_in_process(tmp_path, *variant, *SHORT)
    assert summary["total_steps"] == 240 and summary["env"] == "ALE/Breakout-v5"
    assert summary["eval_return_mean"] >= 0
    acc = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0})
    acc.Reload()
    losses = [e.value for e in acc.Scalars("losses/td_loss")]
    assert losses and all(v == v for v in losses)  # updates ran and produced finite losses


def test_auto_precision_and_layout_resolve_for_the_device(tmp_path):
    from conftest import compose_config
    from deeprl.build import build
    from deeprl.core.device import cpu_has_native_bf16

    run = build(compose_config("algo=dqn", *SHORT), tmp_path)
    try:
        assert run.cfg.algo.precision == "auto"  # the default, resolved by the agent
        assert run.agent.precision == ("bf16" if cpu_has_native_bf16() else "fp32")
        assert run.cfg.network.channels_last is True  # resolved in the config that gets logged
        assert run.agent.q.torso.convs[0].weight.is_contiguous(memory_format=torch.channels_last)
    finally:
        run.envs.close()
