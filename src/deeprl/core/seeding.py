import hashlib
import os
import random

import numpy as np
import torch


def set_deterministic(on: bool) -> None:
    """The run-level `deterministic` key. True: only deterministic kernels
    (`torch.use_deterministic_algorithms`, an error naming the op if one has none), cuDNN's
    deterministic convolutions without autotuning, and the cuBLAS workspace setting CUDA needs for
    repeatable matmuls. False: cuDNN autotunes convolutions for the fixed Atari shapes (faster on
    a GPU, not bit-repeatable there). On the CPU a run repeats bit for bit either way.

    Off is torch's default, and setting it imports torch's compiler (about 0.8 s of every run's
    start-up), so it is only set where it changes something: on, or back off after an earlier run
    in the same process turned it on."""
    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read at each cuBLAS call
    if on or torch.are_deterministic_algorithms_enabled():
        torch.use_deterministic_algorithms(on)
    torch.backends.cudnn.deterministic = on
    torch.backends.cudnn.benchmark = not on


def rng_state(rng: np.random.Generator) -> dict:
    """Everything needed to resume the random streams exactly."""
    state = {
        "numpy": rng.bit_generator.state,
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(rng: np.random.Generator, state: dict) -> None:
    rng.bit_generator.state = state["numpy"]
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def restore_generator(generator: torch.Generator, state: torch.Tensor) -> bool:
    """Put a saved `generator.get_state()` back, whichever device the checkpoint was written on.

    States are CPU byte tensors on every device, but their layout is the device's: a CPU
    generator's (Mersenne Twister, 5056 bytes) and a CUDA one's (Philox seed and offset, 16 bytes)
    do not fit each other. A state from the other kind re-seeds this generator from the saved
    bytes instead, so a GPU-trained checkpoint loads on a CPU machine (and the reverse) and the
    stream is still reproducible; returns False then (the caller may say the stream changed).
    """
    state = state.detach().to("cpu", torch.uint8)
    if state.numel() == generator.get_state().numel():
        generator.set_state(state)
        return True
    generator.manual_seed(int.from_bytes(hashlib.sha256(state.numpy().tobytes()).digest()[:8], "little"))
    return False
