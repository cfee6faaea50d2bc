"""The GPU check: deeprl's Atari speed on one device, measured in one process, one markdown table.

    python3 scripts/gpu_check.py --device cuda --out gpu_check.md   # sized for under 5 min
    .venv/bin/python scripts/gpu_check.py --device cpu --quick      # tiny workloads: a smoke test

scripts/gpu_check.sh runs it on a GPU machine (docs/gpu.md). Workloads, each in this process:

  env alone      Breakout through deeprl's wrappers (one env, random actions): the ceiling of a
                 single-env loop on this machine's CPU.
  CleanRL-style  a single-env DQN loop written here in the shape of CleanRL's dqn_atari.py: Nature
                 CNN in plain torch, obs and next_obs kept as uint8 numpy rows, one update of 32
                 every 4 steps, Adam 1e-4, MSE loss, target copied every 1,000 steps, per-array
                 host-to-device copies, cuDNN deterministic (CleanRL's default). Same env as deeprl.
  deeprl DQN     `algo=dqn env=breakout`, built and run the way tests/conftest.py's run_in_process
                 does, for algo.precision fp32/bf16 x network.channels_last false/true; on
                 CUDA with its graphs; and with 8 envs (env.vectorization=async) at the same
                 replay ratio (an update of 32 every 4 env steps summed over the envs).
  deeprl PPO     `algo=ppo env=breakout` (its preset: 8 envs x 128 steps, one shared Nature CNN).
  replay sample  `buffer.sample(32)` of a frame replay (make_replay, frame_stack=4) delivered on the
                 device: through deeprl.buffers.staging (one pinned copy) and, on CUDA, as five
                 separate pageable copies for comparison.

Steps/s "while learning" leave out the steps before algo.learning_starts: deeprl's from its
charts/SPS at that step and at the end, CleanRL-style's from its own clock. A deeprl row's notes
give the share of that time spent in the vector env's step (EnvClock): a small share means the
learner's side, not the envs, bounds the run. The table is written to
--out after every workload, so a run stopped by a time limit still leaves what it measured.
"""

import argparse
import contextlib
import functools
import gc
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class Sizes:
    env_steps: int  # env alone
    dqn_steps: int  # each DQN run, deeprl and CleanRL-style
    learning_starts: int
    log_every: int  # must divide learning_starts: deeprl's charts/SPS has a point there
    ppo_steps: int
    ppo_extra: list[str] = field(default_factory=list)  # more PPO overrides
    replay_fill: int = 50_000
    replay_batches: int = 3_000
    max_frames: int = 10_000  # caps the final evaluation episode (emulator frames)
    threads: int = 0  # torch threads (0: torch's default, as the Atari presets leave it)

    @property
    def buffer_size(self) -> int:
        return min(100_000, 5 * self.dqn_steps)


FULL = Sizes(env_steps=5_000, dqn_steps=20_000, learning_starts=2_000, log_every=1_000,
             ppo_steps=16_384)
QUICK = Sizes(env_steps=100, dqn_steps=64, learning_starts=32, log_every=16, ppo_steps=128,
              ppo_extra=["algo.n_steps=8"], replay_fill=300, replay_batches=50, max_frames=200,
              threads=1)

EAGER = "algo.cuda_graphs=false"
DQN_SETTINGS = [  # (key, label, overrides), eager; the first is what `auto` picks on the CPU
    ("fp32-nchw", "fp32, NCHW", ["algo.precision=fp32", "network.channels_last=false", EAGER]),
    ("fp32-cl", "fp32, channels_last", ["algo.precision=fp32", "network.channels_last=true", EAGER]),
    ("bf16-nchw", "bf16, NCHW", ["algo.precision=bf16", "network.channels_last=false", EAGER]),
    ("bf16-cl", "bf16, channels_last", ["algo.precision=bf16", "network.channels_last=true", EAGER]),
]
# What `auto` picks on CUDA: fp32, NCHW, and the update and greedy acting replayed as CUDA graphs.
GRAPHS = ("fp32-graphs", "fp32, NCHW, cuda_graphs=true (the CUDA default)",
          ["algo.precision=fp32", "network.channels_last=false", "algo.cuda_graphs=true"])
# Several envs per DQN step at the same replay ratio: `algo.train_freq` counts env steps summed
# over the envs, so an update of 32 every 4 env steps is two updates per vector step of 8, and one
# batched forward pass acts for all 8 (as the CartPole preset runs). cuda_graphs stays `auto`.
VECTOR = ("dqn-8-async", "fp32, NCHW, 8 envs, env.vectorization=async",
          ["algo.precision=fp32", "network.channels_last=false", "num_envs=8", "env.vectorization=async"])


@dataclass
class Row:
    workload: str
    setting: str
    rate: float | None = None  # per second, in `unit`
    unit: str = "steps/s"
    learning: float | None = None  # steps/s after learning_starts
    peak_mib: float | None = None
    busy: float | None = None  # mean GPU utilisation, %
    notes: str = ""


def log(line: str) -> None:
    print(f"gpu_check | {line}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- measuring aids

class GpuBusy:
    """Mean GPU utilisation over a block (nvidia-smi's utilization.gpu: the share of time a kernel
    was running), sampled every 200 ms; None without nvidia-smi or where it reports none (MIG)."""

    QUERY = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"]

    def __init__(self, device: torch.device):
        self.samples: list[float] = []
        self.proc = None
        select = self.select(device) if device.type == "cuda" else None
        if select is None:
            return
        try:
            self.proc = subprocess.Popen([*self.QUERY, *select, "-lms", "200"], text=True,
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        except OSError:
            return
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    @staticmethod
    @functools.cache
    def select(device: torch.device) -> tuple[str, ...] | None:
        """nvidia-smi's arguments that pick this GPU alone (by its UUID; or none needed where
        nvidia-smi sees one GPU), or None where it reports no number for it."""
        if shutil.which("nvidia-smi") is None:
            return None
        uuid = getattr(torch.cuda.get_device_properties(device), "uuid", None)
        for select in ([("-i", f"GPU-{uuid}")] if uuid is not None else []) + [()]:
            try:
                probe = subprocess.run([*GpuBusy.QUERY, *select], capture_output=True, text=True,
                                       timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                return None
            lines = probe.stdout.split()
            if probe.returncode == 0 and len(lines) == 1 and lines[0].isdigit():
                return select
        return None

    def _read(self) -> None:
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                self.samples.append(float(line.strip()))

    def stop(self) -> float | None:
        if self.proc is None:
            return None
        self.proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        self.thread.join(timeout=5)
        return float(np.mean(self.samples)) if self.samples else None


@contextlib.contextmanager
def measured(row: Row, device: torch.device):
    """Peak allocated GPU memory and mean GPU utilisation over the block, into `row`."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    busy = GpuBusy(device)
    try:
        yield
    finally:
        row.busy = busy.stop()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            row.peak_mib = torch.cuda.max_memory_allocated(device) / 2**20


def compose(*overrides: str):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    with initialize_config_module("deeprl.conf", version_base="1.3"):
        return hydra_compose("config", overrides=[*overrides, "log.progress=false"])


# ----------------------------------------------------------------------------- workloads

def env_alone(env_cfg, steps: int) -> float:
    """Steps/s of Breakout through deeprl's wrappers with random actions, one env."""
    from deeprl.envs import make_vec_env

    envs = make_vec_env(env_cfg, 1, seed=1)
    try:
        rng = np.random.default_rng(1)
        envs.reset(seed=1)
        t0 = time.perf_counter()
        for _ in range(steps):
            envs.step(rng.integers(0, envs.single_action_space.n, size=1))
        return steps / (time.perf_counter() - t0)
    finally:
        envs.close()


class EnvClock:
    """The wall time a loop spends in its vector env's `step` from loop step `start` on: the env
    stepping in this process (sync), or waiting for the workers (async). The rest of a run's
    training time is the learner's (acting, storing, updating, logging)."""

    def __init__(self, loop, start: int = 0):
        self.seconds = 0.0
        step = loop.envs.step

        def timed(actions):
            if loop.step < start:
                return step(actions)
            t0 = time.perf_counter()
            try:
                return step(actions)
            finally:
                self.seconds += time.perf_counter() - t0

        loop.envs.step = timed  # the loops call envs.step on this object


def deeprl_run(overrides: list[str], learning_starts: int | None) -> tuple[dict, float | None, str]:
    """One deeprl run built as tests/conftest.py's run_in_process builds it: (summary, steps/s
    after learning_starts from the run's own charts/SPS, what the run resolved and the share of
    the time, while learning, that went to stepping the envs)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from deeprl.build import build

    cfg = compose(*overrides)
    with tempfile.TemporaryDirectory() as run_dir, contextlib.redirect_stdout(sys.stderr):
        run = build(cfg, Path(run_dir))
        resolved = f"ran on {run.device}"
        if hasattr(run.agent, "precision"):
            resolved += f", precision {run.agent.precision}"
        if "channels_last" in cfg.network:
            resolved += f", channels_last {str(cfg.network.channels_last).lower()}"
        if getattr(run.agent, "cuda_graphs", False):
            resolved += ", CUDA graphs"
        if run.envs.num_envs > 1:
            resolved += f", {run.envs.num_envs} envs ({cfg.env.get('vectorization', 'sync')})"
        clock = EnvClock(run.loop, learning_starts or 0)
        summary = run.execute()
        del run
        learning = None
        seconds = summary["wall_time_s"]  # training time, evaluation excluded
        if learning_starts:
            acc = EventAccumulator(run_dir, size_guidance={"scalars": 0})
            acc.Reload()
            sps = {e.step: e.value for e in acc.Scalars("charts/SPS")}
            steps = summary["total_steps"]
            if learning_starts in sps:
                seconds = steps / summary["sps"] - learning_starts / sps[learning_starts]
                learning = (steps - learning_starts) / seconds
            else:
                seconds = None
        if seconds:
            resolved += f"; env.step {clock.seconds / seconds:.0%} of the time"
    return summary, learning, resolved


class QNetwork(nn.Module):
    """The Nature DQN network (Mnih et al. 2015) as CleanRL writes it: uint8 in, scaled by 1/255."""

    def __init__(self, n_actions: int):
        super().__init__()
        self.network = nn.Sequential(
            nn.Conv2d(4, 32, 8, stride=4), nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(3136, 512), nn.ReLU(),
            nn.Linear(512, n_actions),
        )

    def forward(self, x):
        return self.network(x / 255.0)


def linear_schedule(start: float, end: float, duration: int, t: int) -> float:
    return max(end, start + (end - start) * t / duration)


def cleanrl_style_dqn(env_cfg, device: torch.device, total_steps: int, learning_starts: int,
                      seed: int = 1) -> tuple[float, float]:
    """A single-env DQN loop in the shape of CleanRL's dqn_atari.py: (steps/s over the run,
    steps/s after learning_starts). Hyperparameters as deeprl's dqn_atari preset."""
    from deeprl.envs import make_vec_env

    gamma, batch_size, train_frequency, target_every = 0.99, 32, 4, 1000
    start_e, end_e, exploration_fraction = 1.0, 0.01, 0.10
    saved = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    # CleanRL's default (--torch-deterministic): cuDNN's deterministic convolutions, no autotuning.
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    envs = make_vec_env(env_cfg, 1, seed)
    try:
        n_actions = int(envs.single_action_space.n)
        obs_shape = envs.single_observation_space.shape

        q_network = QNetwork(n_actions).to(device)
        optimizer = torch.optim.Adam(q_network.parameters(), lr=1e-4)
        target_network = QNetwork(n_actions).to(device)
        target_network.load_state_dict(q_network.state_dict())

        # Replay: one obs and one next_obs row per transition, uint8 (SB3's ReplayBuffer layout).
        capacity = total_steps
        rb_obs = np.zeros((capacity, *obs_shape), dtype=np.uint8)
        rb_next_obs = np.zeros((capacity, *obs_shape), dtype=np.uint8)
        rb_actions = np.zeros((capacity, 1), dtype=np.int64)
        rb_rewards = np.zeros((capacity, 1), dtype=np.float32)
        rb_dones = np.zeros((capacity, 1), dtype=np.float32)
        rb_pos = rb_size = 0
        losses = []

        obs, _ = envs.reset(seed=seed)
        start_time = learning_time = time.perf_counter()
        for global_step in range(total_steps):
            # ALGO LOGIC: put action logic here
            duration = int(exploration_fraction * total_steps)
            epsilon = linear_schedule(start_e, end_e, duration, global_step)
            if rng.random() < epsilon:
                actions = np.array([rng.integers(n_actions)])
            else:
                q_values = q_network(torch.Tensor(obs).to(device))
                actions = torch.argmax(q_values, dim=1).cpu().numpy()

            next_obs, rewards, terminations, truncations, infos = envs.step(actions)

            # Same-step autoreset: a finished episode's last observation is in infos["final_obs"].
            real_next_obs = next_obs.copy()
            for idx, done in enumerate(terminations | truncations):
                if done:
                    real_next_obs[idx] = infos["final_obs"][idx]
            rb_obs[rb_pos], rb_next_obs[rb_pos] = obs[0], real_next_obs[0]
            rb_actions[rb_pos], rb_rewards[rb_pos] = actions[0], rewards[0]
            rb_dones[rb_pos] = terminations[0]
            rb_pos, rb_size = (rb_pos + 1) % capacity, min(rb_size + 1, capacity)
            obs = next_obs

            # ALGO LOGIC: training.
            if global_step == learning_starts:
                learning_time = time.perf_counter()
            if global_step > learning_starts:
                if global_step % train_frequency == 0:
                    idx = rng.integers(0, rb_size, size=batch_size)
                    b_obs = torch.tensor(rb_obs[idx], device=device)
                    b_actions = torch.tensor(rb_actions[idx], device=device)
                    b_next_obs = torch.tensor(rb_next_obs[idx], device=device)
                    b_dones = torch.tensor(rb_dones[idx], device=device)
                    b_rewards = torch.tensor(rb_rewards[idx], device=device)
                    with torch.no_grad():
                        target_max, _ = target_network(b_next_obs).max(dim=1)
                        not_done = 1 - b_dones.flatten()
                        td_target = b_rewards.flatten() + gamma * target_max * not_done
                    old_val = q_network(b_obs).gather(1, b_actions).squeeze()
                    loss = F.mse_loss(td_target, old_val)
                    if global_step % 100 == 0:  # CleanRL writes the loss to TensorBoard: a sync
                        losses.append(loss.item())
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()

                if global_step % target_every == 0:
                    for target_param, q_param in zip(target_network.parameters(),
                                                     q_network.parameters(), strict=True):
                        target_param.data.copy_(q_param.data)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        end = time.perf_counter()
    finally:
        envs.close()
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved
    if losses and not np.isfinite(losses).all():
        raise RuntimeError("CleanRL-style loop: non-finite loss")
    return total_steps / (end - start_time), (total_steps - learning_starts) / (end - learning_time)


# How replay_rates delivers a batch, in the order of its rates.
REPLAY_PATHS = {"cuda": ["packed, one pinned copy (deeprl.buffers.staging)",
                         "five pageable copies, one per array",
                         "frames on the GPU, gathered there (replay_device)"],
                "cpu": ["packed into one buffer (the CUDA path; no copy on the CPU)",
                        "plain arrays (the CPU default)",
                        "frames in a torch tensor, gathered by torch"]}


def replay_rates(device: torch.device, fill: int, batches: int) -> list[float]:
    """Batches/s of a frame replay's sample(32) delivered on the device, along REPLAY_PATHS."""
    from deeprl.buffers import FrameReplayBuffer, make_replay
    from deeprl.buffers.staging import BatchStaging

    buffer = make_replay(fill, (4, 84, 84), np.uint8, (), np.int64, 0.99, device, frame_stack=4)
    # The same transitions with the frame ring on the device (algo.replay_device=cuda on a GPU).
    on_device = FrameReplayBuffer(fill, (4, 84, 84), np.uint8, (), np.int64, 0.99, device, obs_device=device,
                                  frame_stack=4)
    rng = np.random.default_rng(0)
    pool = rng.integers(0, 256, (257, 84, 84), dtype=np.uint8)  # frames to draw from

    def new_stack():
        return pool[rng.integers(0, len(pool), 4)][None]

    obs, reward, no = new_stack(), np.ones(1, np.float32), np.zeros(1, bool)
    for t in range(fill):  # episodes of 500 steps; each stack shifts by one new frame
        next_obs = np.concatenate([obs[:, 1:], pool[rng.integers(0, len(pool))][None, None]], 1)
        ends = np.array([t % 500 == 499])
        for replay in (buffer, on_device):
            replay.add(obs, np.array([t % 4]), reward, next_obs, ends, no)
        obs = new_stack() if ends[0] else next_obs

    def timed(deliver) -> float:
        for _ in range(20):
            deliver()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        for _ in range(batches):
            deliver()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return batches / (time.perf_counter() - t0)

    staging = BatchStaging(device)

    def packed():
        buffer.staging = staging
        return buffer.sample(32, rng)

    def plain():
        buffer.staging = None  # the tensors come back on the host
        batch = buffer.sample(32, rng)
        # On CUDA: each array sent on its own, from pageable memory (the way SB3 and CleanRL do).
        return [t.to(device) for t in batch[:5]] if device.type == "cuda" else batch

    # Each path twice, alternating, best of two: the first timed loop of a process runs colder.
    def device_store():
        return on_device.sample(32, rng)

    paths = [packed, plain, device_store]
    first = [timed(deliver) for deliver in paths]
    return [max(rate, timed(deliver)) for deliver, rate in zip(paths, first, strict=True)]


def warm_up(device: torch.device) -> None:
    """CUDA context, cuBLAS and cuDNN handles: created here, not inside the first timed workload."""
    if device.type != "cuda":
        return
    net = QNetwork(4).to(device)
    x = torch.randint(0, 255, (32, 4, 84, 84), device=device, dtype=torch.uint8)
    net(x).sum().backward()
    torch.cuda.synchronize(device)


# ----------------------------------------------------------------------------- the table

def machine(device: torch.device) -> str:
    import importlib.metadata as md

    from deeprl import usable_cores
    from deeprl.core.device import cpu_model

    cpu, usable = cpu_model(), usable_cores()
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        gpu = f"{props.name} ({props.total_memory / 2**30:.0f} GiB, sm_{props.major}{props.minor})"
        cuda = f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}"
    else:
        gpu, cuda = "none (CPU run)", f"CUDA {torch.version.cuda or 'none'}"
    versions = []
    for name in ("gymnasium", "ale-py", "hydra-core", "numpy"):
        with contextlib.suppress(md.PackageNotFoundError):
            versions.append(f"{name} {md.version(name)}")
    return (f"Machine: GPU {gpu}; torch {torch.__version__}, {cuda}; {cpu}, {os.cpu_count()} CPUs "
            f"({usable} usable); Python {platform.python_version()}; {', '.join(versions)}. "
            f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.")


def fmt(x: float | None, unit: str = "", digits: int = 0) -> str:
    return "—" if x is None else f"{x:,.{digits}f}{unit}"


def render(header: str, rows: list[Row], sizes: Sizes, device: torch.device, elapsed: float) -> str:
    base = next((r for r in rows if r.workload.startswith("CleanRL-style") and r.learning), None)
    lines = [header, "",
             "| workload | setting | rate | steps/s while learning | ÷ CleanRL-style | "
             "peak GPU memory | GPU busy | notes |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        ratio = None
        if base is not None and r.learning and r.workload == "deeprl DQN":
            ratio = r.learning / base.learning
        rate = "—" if r.rate is None else f"{r.rate:,.0f} {r.unit}"
        lines.append(f"| {r.workload} | {r.setting} | {rate} | {fmt(r.learning)} | "
                     f"{fmt(ratio, '×', 2)} | {fmt(r.peak_mib, ' MiB')} | {fmt(r.busy, ' %')} | "
                     f"{r.notes} |")
    # deeprl's default: on CUDA the graphs row when it was measured, else eager fp32 NCHW.
    default = next((r for r in rows if r.workload == "deeprl DQN" and r.setting == GRAPHS[1] and r.learning),
                   next((r for r in rows if r.workload == "deeprl DQN"), None))
    if base is not None and default is not None and default.learning:
        what = "fp32, NCHW, CUDA graphs" if default.setting == GRAPHS[1] else "fp32, NCHW"
        lines += ["", f"DQN Breakout while learning, deeprl ({what}) / CleanRL-style: "
                      f"**{default.learning / base.learning:.2f}×** (target ≥ 3× on a GPU)."]
    vector = next((r for r in rows if r.setting == VECTOR[1] and r.learning), None)
    if base is not None and vector is not None:
        lines.append(f"With 8 envs at the same replay ratio ({VECTOR[1]}): "
                     f"**{vector.learning / base.learning:.2f}×**.")
    alone = next((r for r in rows if r.workload == "Breakout env alone" and r.rate), None)
    if base is not None and alone is not None:
        lines.append(f"The ceiling of any single-env loop, the env alone: {alone.rate / base.learning:.2f}× "
                     "the CleanRL-style loop.")
    quick = " --quick" if sizes == QUICK else ""
    lines += ["", f"DQN: {sizes.dqn_steps:,} steps each, learning from step "
                  f"{sizes.learning_starts:,}, batch 32 every 4 steps, buffer "
                  f"{sizes.buffer_size:,}; PPO: {sizes.ppo_steps:,} steps; `scripts/gpu_check.py "
                  f"--device {device.type}{quick}`, {elapsed:.0f} s in all. Peak GPU memory: "
                  "torch.cuda.max_memory_allocated over the workload (the CUDA context not "
                  "included); GPU busy: mean of nvidia-smi's utilization.gpu every 200 ms."]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def profiled(on: bool, out: Path | None, key: str, row: Row):
    """With `on`, run the block under cProfile and write profile_<key>.txt beside `out` (or in the
    working directory): where this process's time went, by own time and by cumulative time. Time
    spent waiting for the GPU shows in the call that synchronises (`.cpu()`, `.item()`); worker
    processes (env.vectorization=async) are not profiled, the wait for them shows in the vector
    env's step. The profiler slows the Python side, so the row's rates then read low."""
    if not on:
        yield
        return
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        yield
    finally:
        profiler.disable()
        path = (out.parent if out else Path.cwd()) / f"profile_{key}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text)
        for order in ("tottime", "cumulative"):
            text.write(f"# {row.workload}, {row.setting}: the 30 functions with the most {order} time\n")
            stats.sort_stats(order).print_stats(30)
        path.write_text(text.getvalue())
        row.notes = "; ".join(n for n in (row.notes, f"under cProfile ({path.name}): rates read low") if n)


def measure(args, sizes: Sizes, device: torch.device, t_start: float, header: str) -> list[Row]:
    """Run every workload in turn, rewriting --out after each; returns the rows."""
    common = [f"device={device.type}", "seed=1", "eval.every=0", "eval.episodes=1",
              "checkpoint.every=0", "checkpoint.every_minutes=0", "checkpoint.buffer=false",
              f"log.every={sizes.log_every}", f"env.max_frames={sizes.max_frames}"]
    if sizes.threads:
        common.append(f"threads={sizes.threads}")
    dqn = ["algo=dqn", "env=breakout", f"total_steps={sizes.dqn_steps}",
           f"algo.learning_starts={sizes.learning_starts}", f"algo.buffer_size={sizes.buffer_size}",
           *common]
    env_cfg = compose("env=breakout", f"env.max_frames={sizes.max_frames}").env
    ppo = "preset: 8 envs × 128 steps" if sizes == FULL else "8 envs × 8 steps"
    replay = "replay sample(32), frame stack 4"
    rows: dict[str, Row] = {
        "env": Row("Breakout env alone", "deeprl wrappers, 1 env, random actions",
                   notes=f"{sizes.env_steps:,} steps"),
        **{key: Row("deeprl DQN", label) for key, label, _ in DQN_SETTINGS},
        "fp32-host-replay": Row("deeprl DQN", "fp32, NCHW, replay_device=cpu"),
        **({GRAPHS[0]: Row("deeprl DQN", GRAPHS[1])} if device.type == "cuda" else {}),
        VECTOR[0]: Row("deeprl DQN", VECTOR[1]),
        "cleanrl": Row("CleanRL-style DQN loop", "fp32, NCHW, plain torch",
                       notes="written in gpu_check.py; cuDNN deterministic as CleanRL's default"),
        "ppo": Row("deeprl PPO", ppo),
        "ppo-async": Row("deeprl PPO", f"{ppo}, env.vectorization=async"),
        **{f"replay-{i}": Row(replay, how, unit="batches/s")
           for i, how in enumerate(REPLAY_PATHS[device.type])},
    }

    # The graphs row is a known name everywhere, so the exact command prepared for the GPU also
    # runs in a dry run on a CPU (where that row is left out, saying so).
    known = rows.keys() | {GRAPHS[0]}
    listed = [k for k in rows if k not in ("replay-1", "replay-2")]
    if GRAPHS[0] not in rows:
        listed.append(f"{GRAPHS[0]} (CUDA only)")
    for flag, keys in (("--only", args.only), ("--profile", args.profile)):
        if keys - known:
            raise SystemExit(f"gpu_check: {flag} names no row {sorted(keys - known)}; "
                             f"rows: {', '.join(listed)}")
    if GRAPHS[0] not in rows and GRAPHS[0] in args.only | args.profile:
        log(f"{GRAPHS[0]}: CUDA graphs exist on CUDA only; not run on {device.type}")

    def write_out() -> None:
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(render(header, list(rows.values()), sizes, device,
                                       time.perf_counter() - t_start))

    def run(key: str, work) -> None:
        row = rows[key]
        what = f"{row.workload}, {row.setting}".rstrip(", ")
        if args.only and key not in args.only:
            row.notes = "not run (--only)"
            return
        if args.deadline and time.perf_counter() - t_start > args.deadline:
            row.notes = f"skipped: past --deadline {args.deadline:.0f} s"
            log(f"{what}: {row.notes}")
            write_out()
            return
        log(f"{what} ...")
        t0 = time.perf_counter()
        try:
            with measured(row, device), profiled(key in args.profile, args.out, key, row):
                work(row)
        except (Exception, SystemExit) as error:  # one failing workload must not lose the others
            # deeprl's guard stops a run with a SystemExit that gives its reason; any other
            # SystemExit (a signal: timeout's SIGTERM) ends the check, --out holding what it has.
            if isinstance(error, SystemExit) and not getattr(error, "reason", None):
                raise
            first = (getattr(error, "reason", None) or str(error)).splitlines() or [""]
            row.notes = f"failed: {type(error).__name__}: {first[0][:160]}"
            log(f"{what}: {row.notes}")
        log(f"{what}: {fmt(row.rate)} {row.unit}, while learning {fmt(row.learning)} "
            f"({time.perf_counter() - t0:.0f} s)")
        write_out()

    def do_env(row):
        row.rate = env_alone(env_cfg, sizes.env_steps)

    def do_cleanrl(row):
        row.rate, row.learning = cleanrl_style_dqn(env_cfg, device, sizes.dqn_steps,
                                                   sizes.learning_starts)

    def do_dqn(overrides):
        def work(row):
            summary, row.learning, resolved = deeprl_run([*dqn, *overrides], sizes.learning_starts)
            row.rate = summary["sps"]
            row.notes = f"{resolved}; torch threads {torch.get_num_threads()}"
        return work

    def do_ppo(*overrides):
        def work(row):
            summary, _, resolved = deeprl_run(["algo=ppo", "env=breakout",
                                               f"total_steps={sizes.ppo_steps}", *sizes.ppo_extra,
                                               *common, *overrides], None)
            row.rate = row.learning = summary["sps"]
            row.notes = f"{resolved}; learns from the first rollout"
        return work

    def do_replay(row):
        rates = replay_rates(device, sizes.replay_fill, sizes.replay_batches)
        for i, rate in enumerate(rates):
            rows[f"replay-{i}"].rate = rate
            rows[f"replay-{i}"].notes = (f"{sizes.replay_fill:,} transitions stored, "
                                         f"{sizes.replay_batches:,} batches timed")

    # Most informative first, so a time limit costs the least. The CleanRL-style loop runs before
    # any deeprl run: deeprl tunes the process's allocator (keep_freed_memory) and that stays.
    run("env", do_env)
    run("cleanrl", do_cleanrl)
    run("fp32-nchw", do_dqn(DQN_SETTINGS[0][2]))
    if GRAPHS[0] in rows:  # CUDA graphs exist on CUDA only
        run(GRAPHS[0], do_dqn(GRAPHS[2]))
    run(VECTOR[0], do_dqn(VECTOR[2]))
    run("ppo", do_ppo())
    run("ppo-async", do_ppo("env.vectorization=async"))  # a worker process per env
    run("replay-0", do_replay)
    first = rows["replay-0"]
    for other in (rows["replay-1"], rows["replay-2"]):  # measured together
        other.busy, other.peak_mib = first.busy, first.peak_mib
        if other.rate is None:  # skipped or failed
            other.notes = first.notes
    for key, _, overrides in DQN_SETTINGS[1:]:
        run(key, do_dqn(overrides))
    run("fp32-host-replay", do_dqn([*DQN_SETTINGS[0][2], "algo.replay_device=cpu"]))
    return list(rows.values())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--quick", action="store_true", help="tiny workloads (a CPU smoke test)")
    parser.add_argument("--out", type=Path, help="also write the table here (after every workload)")
    parser.add_argument("--deadline", type=float, default=0.0,
                        help="seconds: start no workload after this (0: no limit); its row says so")
    parser.add_argument("--only", type=lambda text: set(text.split(",")), default=set(),
                        help="run only these rows, e.g. env,fp32-nchw,fp32-graphs (a second, short "
                             "look at some rows; the others say 'not run')")
    parser.add_argument("--profile", type=lambda text: set(text.split(",")), default=set(),
                        help="run these rows under cProfile and write profile_<row>.txt beside "
                             "--out, e.g. fp32-graphs,ppo-async (where the host's time goes)")
    args = parser.parse_args(argv)
    # src/hydra_plugins/deeprl_search needs the optuna sweeper, which a GPU machine given only the
    # wheels of scripts/gpu_wheels.sh lacks; Hydra warns at every compose. No sweep runs here.
    warnings.filterwarnings("ignore", message=r"\s*Error importing 'hydra_plugins\.deeprl_search'")
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: --device cuda but torch sees no CUDA device "
              f"(torch {torch.__version__}, built for CUDA {torch.version.cuda})", file=sys.stderr)
        return 2
    device = torch.device(args.device)
    sizes = QUICK if args.quick else FULL
    t_start = time.perf_counter()
    if sizes.threads:
        torch.set_num_threads(sizes.threads)
    header = machine(device)
    warm_up(device)
    rows = measure(args, sizes, device, t_start, header)
    table = render(header, rows, sizes, device, time.perf_counter() - t_start)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table)
    print(table, end="", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
