import zipfile

import pytest
import torch

from deeprl.core.checkpoint import UnreadableCheckpoint, load, read, save_atomic


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


def test_read_says_in_one_line_why_a_file_is_not_a_usable_checkpoint(tmp_path):
    good = save_atomic({"agent": {"q": {}}, "step": 3, "loop": {}}, tmp_path / "good.pt")
    assert read(good, "agent", "loop")["step"] == 3
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:200])
    text = tmp_path / "train.log"
    text.write_text("[2026-12-05 04:00:30][deeprl][INFO] - step 100\n")
    # a zip whose pickle is cut short: the archive opens, the object does not
    broken = tmp_path / "broken.pt"
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(broken, "w") as out:
        for name in source.namelist():
            data = source.read(name)
            out.writestr(name, data[:10] if name.endswith("data.pkl") else data)
    other = save_atomic({"weights": torch.zeros(2)}, tmp_path / "other.pt")  # a torch file, not a run's
    reasons = {}
    for path, keys in ((truncated, ()), (text, ()), (broken, ()), (other, ("agent",)), (good, ("agent", "rng"))):
        with pytest.raises(UnreadableCheckpoint) as caught:
            read(path, *keys)
        reasons[path.name] = str(caught.value)
    assert reasons == {"truncated.pt": "not a torch checkpoint file (truncated, or another kind of file)",
                       "train.log": "not a torch checkpoint file (truncated, or another kind of file)",
                       "broken.pt": "corrupt (pickle data was truncated)",
                       "other.pt": "not a deeprl run checkpoint (no 'agent')",
                       "good.pt": "not a deeprl run checkpoint (no 'rng')"}


def test_a_failed_write_is_told_from_other_errors_by_the_reason_the_os_gives():
    import errno
    import os

    from deeprl.core.errors import write_failure

    assert write_failure(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))) == "No space left on device"
    try:  # torch.save's zip writer: a RuntimeError raised while handling the OSError
        try:
            raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc] unexpected pos") from None
    except RuntimeError as error:
        assert error.__cause__ is None and write_failure(error) == os.strerror(errno.EDQUOT)
    # an encoder's message that quotes the OS (ffmpeg through moviepy)
    assert write_failure(OSError("MoviePy error: ... Error writing trailer: File too large")) == "File too large"
    assert write_failure(FileNotFoundError(errno.ENOENT, "No such file or directory")) is None
    assert write_failure(ValueError("not a write")) is None
