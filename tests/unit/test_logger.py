"""The logger holds scalars back and writes them to TensorBoard's event file in batches."""

import numpy as np
import torch
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from deeprl.logging import Logger


def on_disk(run_dir, tag: str) -> list[tuple[int, float]]:
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)] if tag in acc.Tags()["scalars"] else []


def test_scalars_keep_their_order_and_the_value_they_had_when_logged(tmp_path):
    logger = Logger(tmp_path, total_steps=10, progress=False)
    tensor, array = torch.tensor(1.5), np.array(2.5)
    logger.scalars({"tensor": tensor, "array": array, "number": 7}, step=1, prefix="x/")
    tensor += 10.0  # updated in place after logging, as a parameter or a running statistic may be
    array += 10.0
    for step in range(2, 6):
        logger.scalars({"number": step * 10}, step=step, prefix="x/")
    logger.close()
    assert on_disk(tmp_path, "x/tensor") == [(1, 1.5)]
    assert on_disk(tmp_path, "x/array") == [(1, 2.5)]
    assert on_disk(tmp_path, "x/number") == [(1, 7.0), (2, 20.0), (3, 30.0), (4, 40.0), (5, 50.0)]


def test_a_full_batch_a_late_batch_and_a_direct_write_each_reach_the_file_before_the_end(tmp_path):
    logger = Logger(tmp_path, total_steps=10_000, progress=False)
    logger.FLUSH_SECONDS = 1e9  # by count only
    for step in range(Logger.FLUSH_SCALARS - 1):
        logger.scalars({"a": step}, step=step)
    assert on_disk(tmp_path, "a") == []  # held back
    logger.scalars({"a": 999}, step=Logger.FLUSH_SCALARS - 1)
    assert len(on_disk(tmp_path, "a")) == Logger.FLUSH_SCALARS  # a full batch is written at once

    logger.scalars({"b": 1.0}, step=1)
    logger.FLUSH_SECONDS = 0.0  # by time: the next scalar finds the last batch old enough
    logger.scalars({"b": 2.0}, step=2)
    assert on_disk(tmp_path, "b") == [(1, 1.0), (2, 2.0)]

    logger.FLUSH_SECONDS = 1e9
    logger.scalars({"c": 3.0}, step=3)
    logger.config(OmegaConf.create({"seed": 1}))  # a direct write sends what is pending first
    assert on_disk(tmp_path, "c") == [(3, 3.0)]
    logger.close()


def test_hparams_keep_booleans_numbers_and_strings_apart(tmp_path):
    """The HParams tab shows `algo.double=true` as true (and filters it as a boolean), not 1.0."""
    from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2

    logger = Logger(tmp_path, total_steps=10, progress=False)
    cfg = OmegaConf.create({"algo": {"double": True, "dueling": False, "lr": 1e-3, "batch_size": 32,
                                     "name": "dqn", "hidden": [64, 64]}})
    logger.hparams(cfg, {"hparams/eval_return_mean": 1.0}, step=10)
    logger.close()
    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    content = acc.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    values = {k: (v.WhichOneof("kind"), getattr(v, v.WhichOneof("kind")))
              for k, v in start.session_start_info.hparams.items()}
    assert values == {"algo.double": ("bool_value", True), "algo.dueling": ("bool_value", False),
                      "algo.lr": ("number_value", 1e-3), "algo.batch_size": ("number_value", 32),
                      "algo.name": ("string_value", "dqn"), "algo.hidden": ("string_value", "[64, 64]")}
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    types = {info.name: info.type for info in experiment.hparam_infos}
    assert types["algo.double"] == types["algo.dueling"] == api_pb2.DATA_TYPE_BOOL
    assert types["algo.lr"] == types["algo.batch_size"] == api_pb2.DATA_TYPE_FLOAT64


def test_a_resumed_logger_waits_only_for_an_event_file_of_this_or_the_next_second(tmp_path, monkeypatch):
    """(tests/smoke/test_resume.py shows why.) A file from a clock far ahead is not waited for, and
    a new run (start step 0) never waits."""
    import time

    from deeprl import logging as deeprl_logging

    slept = []
    monkeypatch.setattr(deeprl_logging.time, "sleep", slept.append)
    (tmp_path / "events.out.tfevents.1000000000.host.1.0").touch()  # long ago
    Logger(tmp_path, total_steps=10, progress=False, start_step=5).close()
    assert slept == []
    ahead = tmp_path / f"events.out.tfevents.{int(time.time()) + 1:010d}.~.0.0"
    ahead.touch()
    Logger(tmp_path, total_steps=10, progress=False).close()
    assert slept == []
    Logger(tmp_path, total_steps=10, progress=False, start_step=5).close()
    assert len(slept) == 1 and 1.0 <= slept[0] <= 2.0
    ahead.rename(tmp_path / f"events.out.tfevents.{int(time.time()) + 3600:010d}.~.0.0")
    Logger(tmp_path, total_steps=10, progress=False, start_step=5).close()
    assert len(slept) == 1
