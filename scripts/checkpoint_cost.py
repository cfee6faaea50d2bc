"""What a resumable checkpoint of a pixel (Atari) run costs: bytes, write and read time, and the
peak memory of writing it, for a frame replay filled with N Breakout-shaped transitions.

    .venv/bin/python scripts/checkpoint_cost.py --transitions 100000

The replay is filled with synthetic 84x84 frames (the cost depends on the bytes, not the pixels).
Writing goes through deeprl's own path (Run.save's save_atomic of buffer.state_dict(): tensors that
share the numpy arrays' memory), reading through `load(mmap=True)` + `load_state_dict`, as resume
does. Peak memory (ru_maxrss) is reported before and after the write: a write that copied the
buffer first would add its whole size.
"""

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from deeprl.buffers import make_replay
from deeprl.core.checkpoint import load, save_atomic


def rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB on Linux


def filled_replay(n: int):
    buffer = make_replay(n, (4, 84, 84), np.uint8, (), np.int64, 0.99, torch.device("cpu"), frame_stack=4)
    rng = np.random.default_rng(0)
    stack = rng.integers(0, 255, (1, 4, 84, 84), dtype=np.uint8)
    for _ in range(n):
        nxt = np.concatenate([stack[:, 1:], rng.integers(0, 255, (1, 1, 84, 84), dtype=np.uint8)], axis=1)
        buffer.add(stack, np.array([1]), np.array([0.0], np.float32), nxt, np.array([False]), np.array([False]))
        stack = nxt
    return buffer


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transitions", type=int, default=100_000)
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: a temp dir)")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    buffer = filled_replay(args.transitions)
    fill_s = time.perf_counter() - t0
    rss_before = rss_gib()
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        path = Path(folder) / "step.pt"
        t0 = time.perf_counter()
        save_atomic({"loop": {"buffer": buffer.state_dict()}}, path)
        write_s = time.perf_counter() - t0
        rss_after = rss_gib()
        size = path.stat().st_size
        fresh = make_replay(args.transitions, (4, 84, 84), np.uint8, (), np.int64, 0.99, torch.device("cpu"),
                            frame_stack=4)
        t0 = time.perf_counter()
        fresh.load_state_dict(load(path, mmap=True)["loop"]["buffer"])
        read_s = time.perf_counter() - t0
    assert len(fresh) == len(buffer)
    print(f"{args.transitions} Breakout transitions (frame replay, filled in {fill_s:.0f} s): "
          f"checkpoint {size / 2**30:.2f} GiB (buffer.saved_nbytes {buffer.saved_nbytes / 2**30:.2f} GiB), "
          f"write {write_s:.1f} s ({size / 2**20 / write_s:.0f} MiB/s, fsync included), "
          f"read back {read_s:.1f} s; peak RSS {rss_before:.2f} GiB before the write, {rss_after:.2f} GiB after",
          file=sys.stdout)


if __name__ == "__main__":
    main()
