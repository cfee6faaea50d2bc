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
