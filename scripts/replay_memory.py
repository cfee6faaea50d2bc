"""Memory of a 1M-transition Atari replay buffer: frame-dedup storage against a naive obs + next_obs store
and (with the bench extra) Stable-Baselines3's ReplayBuffer.

Fills a FrameReplayBuffer with a synthetic stream shaped like the Breakout env's (4 stacked 84x84
uint8 frames, new episodes padded with their first frame, 8 interleaved envs, episodes of random
length) and reports the process's resident memory (VmRSS from /proc/self/status) before and after.
The frames are random, so every page of the store is really written. The naive store cannot be
filled on most machines (56 GB); its size is the formula of ReplayBuffer.nbytes_for, checked by
filling a small naive buffer and measuring RSS per transition.

    .venv/bin/python scripts/replay_memory.py                    # 1M transitions, ~7.4 GB of RAM
    .venv/bin/python scripts/replay_memory.py --capacity 100000  # measure per transition, extrapolate
"""

import argparse
import time

import numpy as np
import torch

from deeprl.buffers import FrameReplayBuffer, ReplayBuffer
from deeprl.buffers.memory import available_bytes
from deeprl.core.errors import ConfigError

SHAPE = (4, 84, 84)


def rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def stream(num_envs: int, mean_episode: int, rng: np.random.Generator):
    """Endless (obs, actions, rewards, next_obs, terminated, truncated) like a FrameStack env's."""
    k = SHAPE[0]

    def first():
        return np.repeat(rng.integers(0, 256, (1, *SHAPE[1:]), dtype=np.uint8), k, axis=0)

    obs = np.stack([first() for _ in range(num_envs)])
    while True:
        frames = rng.integers(0, 256, (num_envs, 1, *SHAPE[1:]), dtype=np.uint8)
        next_obs = np.concatenate([obs[:, 1:], frames], axis=1)
        terminated = rng.random(num_envs) < 1.0 / mean_episode
        yield (obs, rng.integers(0, 4, num_envs), rng.random(num_envs).astype(np.float32), next_obs,
               terminated, np.zeros(num_envs, bool))
        obs = next_obs.copy()
        for e in np.flatnonzero(terminated):
            obs[e] = first()


def fill(buffer, n: int, num_envs: int, mean_episode: int) -> float:
    start = time.perf_counter()
    source = stream(num_envs, mean_episode, np.random.default_rng(0))
    for _ in range(n // num_envs):
        buffer.add(*next(source))
    return time.perf_counter() - start


def sb3_bytes_per_transition(n: int, num_envs: int, mean_episode: int, optimize: bool) -> float | None:
    """RSS per transition of SB3's ReplayBuffer filled with the same stream (None without SB3)."""
    try:
        from gymnasium import spaces
        from stable_baselines3.common.buffers import ReplayBuffer as SB3ReplayBuffer
    except ImportError:
        return None
    base = rss()
    buffer = SB3ReplayBuffer(n // num_envs, spaces.Box(0, 255, SHAPE, np.uint8), spaces.Discrete(4), "cpu",
                             n_envs=num_envs, optimize_memory_usage=optimize,
                             handle_timeout_termination=not optimize)
    source = stream(num_envs, mean_episode, np.random.default_rng(0))
    infos = [{} for _ in range(num_envs)]
    for _ in range(n // num_envs):
        obs, actions, rewards, next_obs, terminated, _ = next(source)
        buffer.add(obs, next_obs, actions, rewards, terminated, infos)
    per = (rss() - base) / (buffer.buffer_size * num_envs)
    del buffer
    return per


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--capacity", type=int, default=1_000_000)
    parser.add_argument("--envs", type=int, default=8)
    parser.add_argument("--mean-episode", type=int, default=100,
                        help="mean learning-episode length (a Breakout life); each episode costs one extra frame")
    parser.add_argument("--naive-sample", type=int, default=20_000, help="transitions of the naive buffer to fill")
    args = parser.parse_args()
    cpu, gb = torch.device("cpu"), 1e9
    million = 1_000_000

    print(f"available memory: {available_bytes() / gb:.1f} GB")
    base = rss()
    buffer = FrameReplayBuffer(args.capacity, SHAPE, np.uint8, (), np.int64, 0.99, cpu, frame_stack=4)
    lazy = rss() - base
    seconds = fill(buffer, args.capacity + args.capacity // 10, args.envs, args.mean_episode)  # wraps around
    used = rss() - base
    per = used / len(buffer)
    print(f"FrameReplayBuffer: {len(buffer):,} transitions stored (capacity {args.capacity:,}), "
          f"{buffer.frames_written:,} frames written, filled in {seconds:.0f} s")
    print(f"  RSS: +{lazy / gb:.2f} GB after construction (numpy allocates lazily), +{used / gb:.2f} GB filled")
    print(f"  {per:,.0f} bytes per transition (one 84x84 frame is {84 * 84:,}); formula for a full buffer: "
          f"{buffer._nbytes((), np.int64) / gb:.2f} GB")
    print(f"  1M transitions: {per * million / gb:.2f} GB measured"
          f"{'' if args.capacity == million else ' (extrapolated)'}")

    del buffer
    base = rss()
    naive = ReplayBuffer(args.naive_sample, SHAPE, np.uint8, (), np.int64, 0.99, cpu)
    fill(naive, args.naive_sample, args.envs, args.mean_episode)
    naive_per = (rss() - base) / len(naive)
    formula = ReplayBuffer.nbytes_for(million, SHAPE, np.uint8, (), np.int64)
    print(f"naive obs + next_obs ReplayBuffer: {naive_per:,.0f} bytes per transition measured on "
          f"{len(naive):,}; 1M transitions: {naive_per * million / gb:.1f} GB (formula {formula / gb:.1f} GB)")
    del naive

    for optimize in (False, True):
        per_sb3 = sb3_bytes_per_transition(args.naive_sample, args.envs, args.mean_episode, optimize)
        if per_sb3 is not None:
            print(f"Stable-Baselines3 ReplayBuffer (optimize_memory_usage={optimize}): {per_sb3:,.0f} bytes per "
                  f"transition measured on {args.naive_sample:,}; 1M transitions: {per_sb3 * million / gb:.1f} GB")

    try:
        ReplayBuffer(million, SHAPE, np.uint8, (), np.int64, 0.99, cpu)
        print("a naive 1M buffer was allowed (this machine has the memory for it)")
    except ConfigError as e:
        print(f"a naive 1M buffer fails at start: {e}")


if __name__ == "__main__":
    main()
