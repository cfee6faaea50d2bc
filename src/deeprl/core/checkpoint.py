import os
import tempfile
from pathlib import Path

import torch


def save_atomic(obj, path: str | os.PathLike) -> Path:
    """torch.save to a temporary file in the same directory, then rename over `path`.

    A crash mid-write leaves the previous checkpoint intact, never a truncated one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load(path: str | os.PathLike, map_location="cpu") -> dict:
    # Checkpoints hold numpy RNG state and plain dicts besides tensors.
    return torch.load(path, map_location=map_location, weights_only=False)
