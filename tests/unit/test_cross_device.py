"""Checkpoints load across devices: a GPU run's checkpoint on a CPU machine and the reverse.

No GPU is needed to test it: a CUDA generator's state is 16 bytes (Philox seed and offset), a CPU
generator's 5056 (Mersenne Twister); a checkpoint whose generator states have the other layout is
what a run on the other device leaves.
"""

import json
from pathlib import Path

import numpy as np
import torch

import consoles
from conftest import run_in_process
from deeprl.core.checkpoint import load, save_atomic
from deeprl.core.seeding import restore_generator

# What torch.cuda's default generator returns from get_state(): seed and offset, 8 bytes each.
CUDA_LIKE_STATE = torch.tensor(list(range(16)), dtype=torch.uint8)


def test_same_device_state_restores_the_stream_exactly():
    a = torch.Generator().manual_seed(3)
    saved = a.get_state()
    expected = torch.randn(5, generator=a)
    b = torch.Generator().manual_seed(99)
    assert restore_generator(b, saved)
    assert torch.equal(torch.randn(5, generator=b), expected)


def test_other_device_state_reseeds_reproducibly():
    first, second = torch.Generator(), torch.Generator()
    assert not restore_generator(first, CUDA_LIKE_STATE)
    assert not restore_generator(second, CUDA_LIKE_STATE.clone())
    assert torch.equal(torch.randn(5, generator=first), torch.randn(5, generator=second))
    other = torch.Generator()
    restore_generator(other, torch.tensor(list(range(1, 17)), dtype=torch.uint8))
    assert not torch.equal(torch.randn(5, generator=other), torch.randn(5, generator=first))


def cuda_like(checkpoint: Path) -> None:
    """Rewrite a checkpoint as a GPU run would have left it: generator states of CUDA layout."""
    state = load(checkpoint)
    state["agent"]["generator"] = CUDA_LIKE_STATE.clone()
    state["rng"]["cuda"] = [CUDA_LIKE_STATE.clone()]
    save_atomic(state, checkpoint)


def test_a_gpu_checkpoint_evaluates_and_resumes_on_a_cpu(tmp_path):
    """evaluate and `train resume=` take a checkpoint whose generators were CUDA ones (ppo: the
    policy's sampling stream; sac: its update stream)."""
    for algo in ("ppo", "sac"):
        run_dir = tmp_path / algo
        extra = ["algo.learning_starts=100", "algo.batch_size=16"] if algo == "sac" else ["algo.n_steps=64"]
        run_in_process(run_dir, f"algo={algo}", "env=pendulum", "total_steps=256", "eval.episodes=2",
                       "eval.every=0", "device=cpu", *extra)
        # Hydra writes .hydra/config.yaml for a CLI run; evaluate reads the run's config from there.
        (run_dir / ".hydra").mkdir(exist_ok=True)
        (run_dir / ".hydra" / "config.yaml").write_text(load(run_dir / "checkpoints" / "final.pt")["config"])
        cuda_like(run_dir / "checkpoints" / "final.pt")
        result = consoles.run("evaluate", str(run_dir), "--episodes", "2")
        assert result.returncode == 0, result.stderr
        assert np.isfinite(json.loads((run_dir / "evaluation-episodes2.json").read_text())["return_mean"])
        # how it acted: ppo's policy its most likely action; sac has one way (no "(epsilon None)")
        assert f"over 2 episodes{' (deterministic)' if algo == 'ppo' else ''} | " in result.stdout
        result = consoles.run("train", f"resume={run_dir}", "total_steps=320", "log.progress=false", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert json.loads((run_dir / "summary.json").read_text())["total_steps"] == 320
