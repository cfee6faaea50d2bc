"""The console progress bar: frequent on a terminal, sparse into a file or pipe (a cluster job's
log keeps every update), and the same bar either way."""

import io
import os
import sys

from deeprl.logging import Logger, progress_interval


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_updates_twice_a_second_and_a_file_once_a_minute(tmp_path):
    assert progress_interval(Terminal()) == 0.5
    assert progress_interval(io.StringIO()) == 60.0
    with open(tmp_path / "job.log", "w") as log:
        assert progress_interval(log) == 60.0
    assert progress_interval(object()) == 60.0  # a stream that cannot say


def test_a_pseudo_terminal_is_a_terminal():
    main, other = os.openpty()
    try:
        with os.fdopen(other, "w") as tty:
            assert progress_interval(tty) == 0.5
    finally:
        os.close(main)


def test_the_logger_uses_the_interval_of_stderr(tmp_path, monkeypatch):
    for stream, interval in ((Terminal(), 0.5), (io.StringIO(), 60.0)):
        monkeypatch.setattr(sys, "stderr", stream)
        logger = Logger(tmp_path / f"run{interval}", total_steps=100)
        try:
            assert logger.bar.mininterval == interval
            logger.progress(100)
        finally:
            logger.close()
        assert "100/100" in stream.getvalue()  # the final state is written either way


def test_a_run_that_ends_past_its_total_still_ends_at_a_full_bar(tmp_path, monkeypatch):
    # 8 vector envs and total_steps=1500 end at 1504: tqdm would drop the total and the percentage.
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    logger = Logger(tmp_path / "run", total_steps=1500)
    try:
        logger.progress(752)
        logger.progress(1504)
        assert logger.bar.total == 1504
    finally:
        logger.close()
    assert "100%" in stream.getvalue() and "1504/1504" in stream.getvalue()


def test_an_evaluation_shows_its_steps_and_episodes_on_the_bar_and_then_gives_it_back(tmp_path, monkeypatch):
    """An Atari evaluation can play for minutes after the bar reached 100% (108k frames a game
    when the policy never fires): the bar says what it plays, at its own pace, and afterwards
    shows what it showed before. The evaluation's result does not depend on being watched."""
    import numpy as np

    from conftest import compose_config
    from deeprl.build import build
    from deeprl.loops.evaluate import evaluate

    stream = Terminal()
    monkeypatch.setattr(sys, "stderr", stream)
    cfg = compose_config("algo=dqn", "env=cartpole", "total_steps=300", "eval.every=0", "eval.episodes=3")
    run = build(cfg, tmp_path / "run")
    logger = Logger(tmp_path / "shown", total_steps=300)
    try:
        logger.progress(300, **{"return": 21.5})
        logger.bar.mininterval = 0  # every step drawn, however fast the machine
        seen = []

        def progress(steps, finished):
            seen.append((steps, finished))
            logger.evaluating(steps, finished, episodes=3)

        watched = evaluate(run.agent, cfg.env, 3, seed=7, progress=progress)
        logger.evaluated()
        logger.bar.refresh()
    finally:
        logger.close()
        run.envs.close()
    unwatched = evaluate(run.agent, cfg.env, 3, seed=7)
    assert all(np.array_equal(a, b) for a, b in zip(watched, unwatched, strict=True))
    steps, finished = zip(*seen, strict=True)
    assert list(steps) == list(range(1, len(seen) + 1)) and steps[-1] == watched[1].max()
    assert list(finished) == sorted(finished) and finished[-1] == 3 and finished[0] < 3
    shown = stream.getvalue()
    assert "evaluating: 1 step, 0 of 3 episodes done" in shown
    assert f"evaluating: {steps[-1]} steps, 3 of 3 episodes done" in shown
    assert shown.rstrip().endswith("return=21.5]")  # the bar as before the evaluation


def test_a_runs_evaluations_show_on_its_bar(tmp_path, monkeypatch):
    from conftest import compose_config
    from deeprl.build import build

    stream = Terminal()
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.setattr("deeprl.logging.progress_interval", lambda _: 0.0)  # draw every update
    cfg = compose_config("algo=dqn", "env=cartpole", "total_steps=600", "eval.every=300", "eval.episodes=2")
    build(cfg, tmp_path / "run").execute()
    shown = stream.getvalue()
    assert "evaluating: 1 step, 0 of 2 episodes done" in shown  # at step 300 and at the end
    assert shown.count("evaluating: 1 step,") == 2


def test_the_evaluate_commands_bar_is_drawn_on_a_terminal_only():
    from deeprl.logging import evaluation_bar, show_evaluation

    terminal, pipe = Terminal(), io.StringIO()
    for stream in (terminal, pipe):
        with evaluation_bar(3, stream) as bar:
            for steps, finished in ((1, 0), (2, 0), (40, 2), (55, 3)):
                bar.mininterval = 0  # every call drawn
                show_evaluation(bar, steps, finished)
    assert pipe.getvalue() == ""  # a file or pipe gets the result lines alone
    shown = terminal.getvalue()
    for seen in ("0/3", "1 step]", "2 steps]", "2/3", "40 steps]", "3/3", "55 steps]"):
        assert seen in shown, (seen, shown)
