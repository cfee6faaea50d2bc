"""`algo.replay_device`: the replay's observations (frame ring or obs rows) kept as a tensor on a
device and gathered there. The store runs as a CPU tensor here, the same code as on a GPU but for
the device; the CUDA store itself runs in the tests marked `cuda` (scripts/gpu_check.sh)."""

import numpy as np
import pytest
import torch

from conftest import compose_config
from deeprl.buffers import FrameReplayBuffer, PrioritizedReplay, ReplayBuffer, make_replay
from deeprl.buffers.make import AUTO_GPU_SHARE, replay_obs_device
from deeprl.core.errors import ConfigError

CPU, CUDA = torch.device("cpu"), torch.device("cuda")
FIELDS = ("obs", "actions", "rewards", "next_obs", "discounts", "weights")


def buffer_on(obs_device, prioritized: bool, frame_stack: int, n_step: int, device=CPU):
    shape = (frame_stack, 12, 12) if frame_stack else (3, 5)
    dtype = np.uint8 if frame_stack else np.float32
    args = (300, shape, dtype, (), np.int64, 0.99, device, n_step, obs_device)
    buffer = FrameReplayBuffer(*args, frame_stack=frame_stack) if frame_stack else ReplayBuffer(*args)
    return PrioritizedReplay(buffer) if prioritized else buffer


def fill(buffers, frame_stack: int, steps: int = 500, seed: int = 1):
    """The same stream into every buffer: 2 envs, frames shifting by one per step (with new
    episodes, which store whole stacks), terminations and truncations; wraps the ring."""
    rng = np.random.default_rng(seed)
    inner = buffers[0].buffer if isinstance(buffers[0], PrioritizedReplay) else buffers[0]
    shape, dtype = inner.obs_shape, inner.obs_dtype
    obs = rng.integers(0, 255, (2, *shape)).astype(dtype)
    for _ in range(steps):
        next_obs = rng.integers(0, 255, (2, *shape)).astype(dtype)
        if frame_stack:
            next_obs[:, :-1] = obs[:, 1:]
        terminated, truncated = rng.random(2) < 0.03, rng.random(2) < 0.01
        step = (obs, rng.integers(0, 6, 2), rng.standard_normal(2).astype(np.float32), next_obs, terminated,
                truncated)
        for buffer in buffers:
            buffer.add(*step)
        done = (terminated | truncated).reshape(2, *[1] * len(shape))
        obs = np.where(done, rng.integers(0, 255, (2, *shape)).astype(dtype), next_obs)  # a new episode


def assert_same_batches(a, b, prioritized: bool):
    kwargs = {"beta": 0.4} if prioritized else {}
    for seed in range(4):
        x, y = a.sample(32, np.random.default_rng(seed), **kwargs), b.sample(32, np.random.default_rng(seed), **kwargs)
        for name in FIELDS:
            u, v = getattr(x, name), getattr(y, name)
            assert (u is None) == (v is None), name
            if u is not None:
                assert u.dtype == v.dtype and u.shape == v.shape and torch.equal(u.cpu(), v.cpu()), name
    latest = a.buffer.latest(8) if prioritized else a.latest(8)
    other = b.buffer.latest(8) if prioritized else b.latest(8)
    assert torch.equal(latest.obs.cpu(), other.obs.cpu()) and torch.equal(latest.next_obs.cpu(), other.next_obs.cpu())


@pytest.mark.parametrize("prioritized", [False, True])
@pytest.mark.parametrize(("frame_stack", "n_step"), [(0, 1), (0, 3), (4, 1), (4, 3)])
def test_a_device_store_gives_the_same_batches_as_host_memory(prioritized, frame_stack, n_step):
    host, device = (buffer_on(d, prioritized, frame_stack, n_step) for d in (None, CPU))
    fill([host, device], frame_stack)
    inner = device.buffer if prioritized else device
    store = inner.frames if frame_stack else inner.obs
    assert isinstance(store, torch.Tensor) and store.device == CPU
    assert inner.obs_nbytes == store.nbytes * (1 if frame_stack else 2)
    assert_same_batches(host, device, prioritized)


@pytest.mark.parametrize(("frame_stack", "n_step"), [(0, 3), (4, 1)])
def test_checkpoints_move_between_host_and_device_stores(frame_stack, n_step):
    """A run saved with the observations on a GPU resumes on a machine without one, and back."""
    host, device = (buffer_on(d, False, frame_stack, n_step) for d in (None, CPU))
    fill([host, device], frame_stack)
    host_copy, device_copy = (buffer_on(d, False, frame_stack, n_step) for d in (None, CPU))
    device_copy.load_state_dict(host.state_dict())
    host_copy.load_state_dict(device.state_dict())
    assert host.saved_nbytes == device.saved_nbytes
    assert_same_batches(host, device_copy, False)
    assert_same_batches(host, host_copy, False)


def test_auto_keeps_the_replay_in_host_memory_on_a_cpu_run():
    assert replay_obs_device("auto", CPU, 10**9) == (None, "")
    assert replay_obs_device("cpu", CUDA, 10**9) == (None, "")


def test_auto_puts_the_observations_on_the_gpu_when_they_fit_in_half_its_free_memory():
    free = 40 * 2**30
    fits = int(AUTO_GPU_SHARE * free)
    device, note = replay_obs_device("auto", CUDA, fits, free_bytes=free)
    assert device == CUDA and "on cuda" in note and "40 GiB free" in note
    device, note = replay_obs_device("auto", CUDA, fits + 1, free_bytes=free)
    assert device is None and "host memory" in note
    assert replay_obs_device("cuda", CUDA, 10**12)[0] == CUDA  # asked for: the buffer checks the fit


def test_cuda_replay_on_a_cpu_run_names_the_key():
    with pytest.raises(ConfigError) as error:
        make_replay(100, (4,), np.float32, (), np.int64, 0.99, CPU, replay_device="cuda")
    assert error.value.key == "algo.replay_device" and "trains on cpu" in str(error.value)


def test_every_replay_algorithm_has_the_key():
    for algo in ("dqn", "rainbow_lite", "ddpg", "td3", "sac"):
        assert compose_config(f"algo={algo}").algo.replay_device == "auto"


@pytest.mark.cuda
@pytest.mark.parametrize(("frame_stack", "n_step"), [(0, 1), (4, 3)])
def test_on_a_gpu_the_store_lives_there_and_batches_match(frame_stack, n_step):
    host = buffer_on(None, True, frame_stack, n_step, device=CUDA)
    gpu = buffer_on(CUDA, True, frame_stack, n_step, device=CUDA)
    fill([host, gpu], frame_stack)
    store = gpu.buffer.frames if frame_stack else gpu.buffer.obs
    assert store.is_cuda
    assert_same_batches(host, gpu, True)
    batch = gpu.sample(32, np.random.default_rng(0), beta=0.4)
    assert batch.obs.is_cuda and batch.next_obs.is_cuda and batch.actions.is_cuda
