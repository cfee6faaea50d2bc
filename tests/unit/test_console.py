"""deeprl's console lines: whole lines in one write (parallel sweep jobs share the console), the
same line in the run's log through the `deeprl` logger, and above a live progress bar."""

import io
import logging
import logging.handlers
import sys

import pytest

from deeprl.core.console import say, shell
from deeprl.logging import Logger


class Writes(io.StringIO):
    """A stream that records each write call."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def write(self, s):
        self.calls.append(s)
        return super().write(s)


@pytest.mark.parametrize("above_bar", [False, True])
@pytest.mark.parametrize("err", [False, True])
def test_a_line_and_its_newline_go_out_in_one_write(monkeypatch, err, above_bar):
    out, other = Writes(), Writes()
    monkeypatch.setattr(sys, "stderr" if err else "stdout", out)
    monkeypatch.setattr(sys, "stdout" if err else "stderr", other)
    say("deeprl | a line", err=err, above_bar=above_bar)
    assert [c for c in out.calls if c] == ["deeprl | a line\n"]
    assert other.getvalue() == ""


@pytest.fixture
def deeprl_log():
    """What the `deeprl` logger passes to its handlers (Hydra's job logging adds the file handler)."""
    log, handler = logging.getLogger("deeprl"), logging.handlers.BufferingHandler(capacity=100)
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    yield handler.buffer
    log.removeHandler(handler)
    log.setLevel(level)


def test_the_line_is_logged_at_its_level_without_the_console_prefix(deeprl_log, capsys):
    say("deeprl | dqn on CartPole-v1 | seed 1")
    say("deeprl | warning: skipping unreadable checkpoint x", err=True)
    say("deeprl: error: algo.lr: must be a number > 0", err=True)
    say("\ndeeprl | stopped by SIGINT at step 8", err=True)
    say("deeprl: error: resume: a refused command", err=True, log_it=False)
    assert capsys.readouterr().err.endswith("deeprl: error: resume: a refused command\n")
    got = [(r.name, r.levelname, r.getMessage()) for r in deeprl_log]
    assert got == [("deeprl", "INFO", "dqn on CartPole-v1 | seed 1"),
                   ("deeprl", "WARNING", "warning: skipping unreadable checkpoint x"),
                   ("deeprl", "ERROR", "algo.lr: must be a number > 0"),
                   ("deeprl", "WARNING", "stopped by SIGINT at step 8")]


def test_outside_hydra_the_line_is_only_printed(capsys):
    """No handler of the root logger (Hydra's console, in a sweep's main process) copies it."""
    root = logging.getLogger()
    handler = logging.handlers.BufferingHandler(capacity=100)
    root.addHandler(handler)
    try:
        say("deeprl: error: x: y", err=True)
    finally:
        root.removeHandler(handler)
    assert handler.buffer == [] and capsys.readouterr().err == "deeprl: error: x: y\n"


def test_a_line_above_a_live_bar_leaves_the_bar_whole(tmp_path, monkeypatch):
    err, out = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setattr(sys, "stdout", out)
    logger = Logger(tmp_path, total_steps=10, desc="#3")
    try:
        logger.progress(5)
        logger.write("deeprl | note: between updates")
        logger.progress(10)
    finally:
        logger.close()
    assert out.getvalue() == "deeprl | note: between updates\n"
    assert "#3: 100%" in err.getvalue()  # the bar names its job


def test_paths_in_advised_commands_are_quoted_only_where_a_shell_needs_it():
    assert shell("/runs/algo=dqn,seed=1") == "/runs/algo=dqn,seed=1"  # a sweep job's dir, as typed
    assert shell("/runs/my run") == "'/runs/my run'"
    assert shell("/runs/network.hidden_sizes=[64,64]") == "'/runs/network.hidden_sizes=[64,64]'"  # zsh globs []
