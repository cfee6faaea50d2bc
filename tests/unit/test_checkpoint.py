import pytest
import torch

from deeprl.core.checkpoint import load, save_atomic


def test_save_then_load_round_trip(tmp_path):
    path = save_atomic({"w": torch.arange(3), "step": 5}, tmp_path / "ckpt" / "a.pt")
    state = load(path)
    assert state["step"] == 5 and torch.equal(state["w"], torch.arange(3))
    assert [p.name for p in path.parent.iterdir()] == ["a.pt"]


def test_failed_write_keeps_previous_checkpoint_and_leaves_no_temp_file(tmp_path):
    path = save_atomic({"step": 1}, tmp_path / "a.pt")

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        save_atomic({"step": 2, "bad": Unpicklable()}, path)
    assert load(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]


def test_written_files_get_the_usual_permissions_not_private_ones(tmp_path):
    """An atomic write goes through a private temporary file; the result is readable as any file
    the user writes (the umask decides), e.g. a summary or a plot to share."""
    import os

    from deeprl.core.checkpoint import current_umask, write_text_atomic

    path = write_text_atomic(tmp_path / "summary.json", "{}")
    assert path.stat().st_mode & 0o777 == 0o666 & ~current_umask()
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert path.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777
    assert os.access(path, os.R_OK)
