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
