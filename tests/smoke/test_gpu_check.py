"""scripts/gpu_check.py, the GPU check (docs/gpu.md), end to end on the CPU with tiny workloads."""

import importlib.util
import os
import re
import subprocess
import sys
import time
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu_check.py"
RATE = re.compile(r"^([\d,]+) (steps|batches)/s$")
# (workload, setting or its start) in the order of the table.
ROWS = [
    ("Breakout env alone", "deeprl wrappers, 1 env, random actions"),
    ("deeprl DQN", "fp32, NCHW"),
    ("deeprl DQN", "fp32, channels_last"),
    ("deeprl DQN", "bf16, NCHW"),
    ("deeprl DQN", "bf16, channels_last"),
    ("deeprl DQN", "fp32, NCHW, replay_device=cpu"),
    ("deeprl DQN", "fp32, NCHW, 8 envs, env.vectorization=async"),
    ("CleanRL-style DQN loop", "fp32, NCHW, plain torch"),
    ("deeprl PPO", "8 envs × 8 steps"),
    ("deeprl PPO", "8 envs × 8 steps, env.vectorization=async"),
    ("replay sample(32), frame stack 4", "packed into one buffer"),
    ("replay sample(32), frame stack 4", "plain arrays"),
    ("replay sample(32), frame stack 4", "frames in a torch tensor"),
]


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def table_rows(table: str) -> list[list[str]]:
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    assert lines[0].startswith("| workload | setting | rate | steps/s while learning |")
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[1:]
            if not line.startswith("| ---")]


def rate(cell: str) -> float:
    match = RATE.match(cell)
    assert match, cell
    return float(match.group(1).replace(",", ""))


def test_quick_cpu_run_measures_every_row(tmp_path):
    out = tmp_path / "gpu_check.md"
    command = [sys.executable, str(SCRIPT), "--device", "cpu", "--quick", "--out", str(out)]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    table = result.stdout
    assert out.read_text() == table  # the same table on stdout and in --out
    assert table.startswith("Machine: GPU none (CPU run); torch ")
    rows = table_rows(table)
    assert [(r[0], r[1][:len(s)]) for r, (_, s) in zip(rows, ROWS, strict=True)] == ROWS
    for workload, setting, rate_cell, learning, ratio, peak, busy, notes in rows:
        assert rate(rate_cell) > 0, (workload, setting)
        assert "failed" not in notes and "skipped" not in notes, notes
        assert peak == busy == "—"  # no GPU
        if workload in ("deeprl DQN", "CleanRL-style DQN loop", "deeprl PPO"):
            assert float(learning.replace(",", "")) > 0, (workload, setting)
        if workload == "deeprl DQN":
            assert float(ratio.rstrip("×")) > 0
            precision, layout = setting.split(", ")[:2]
            assert (f"ran on cpu, precision {precision}, channels_last "
                    f"{'true' if layout == 'channels_last' else 'false'}") in notes
    assert "deeprl (fp32, NCHW) / CleanRL-style: **" in table
    for r in rows:  # every deeprl run says how much of its time went to stepping the envs
        if r[0] in ("deeprl DQN", "deeprl PPO"):
            share = re.search(r"; env\.step (\d+)% of the time", r[7])
            assert share and 0 <= int(share.group(1)) <= 100, r[7]
    # 8 async envs: what the run resolved, and its ratio under the table
    vector = next(r for r in rows if "8 envs" in r[1])
    assert "ran on cpu, precision fp32, channels_last false, 8 envs (async)" in vector[7]
    assert f"With 8 envs at the same replay ratio ({vector[1]}): **{vector[4].rstrip('×')}×**." in table
    assert "The ceiling of any single-env loop, the env alone: " in table


def test_past_the_deadline_every_row_says_skipped_and_the_table_still_comes(tmp_path, capsys):
    gpu_check = load_script()
    out = tmp_path / "partial.md"
    with warnings.catch_warnings():
        args = ["--device", "cpu", "--quick", "--deadline", "1e-9", "--out", str(out)]
        assert gpu_check.main(args) == 0
    rows = table_rows(capsys.readouterr().out)
    assert len(rows) == len(ROWS)
    assert all(r[2] == "—" and r[7].startswith("skipped: past --deadline") for r in rows)
    assert out.read_text().startswith("Machine: ")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks what a machine without CUDA says")
def test_cuda_without_a_gpu_says_so_and_exits_2(capsys):
    with warnings.catch_warnings():
        assert load_script().main(["--device", "cuda"]) == 2
    assert "torch sees no CUDA device" in capsys.readouterr().err


def test_only_runs_the_rows_it_names_and_refuses_a_row_it_does_not_know(tmp_path, capsys):
    gpu_check = load_script()
    out = tmp_path / "check" / "gpu_check.md"
    with warnings.catch_warnings():
        # fp32-graphs (CUDA only) is accepted, so the command prepared for a GPU runs here too
        args = ["--device", "cpu", "--quick", "--only", "env,fp32-graphs,replay-0", "--profile", "env,fp32-graphs",
                "--out", str(out)]
        assert gpu_check.main(args) == 0
    captured = capsys.readouterr()
    rows = table_rows(captured.out)
    assert "fp32-graphs: CUDA graphs exist on CUDA only; not run on cpu" in captured.err
    assert not (out.parent / "profile_fp32-graphs.txt").exists()
    # --profile: the env row ran under cProfile, and its report names the env loop's own function
    profile = (out.parent / "profile_env.txt").read_text()
    assert "the 30 functions with the most tottime time" in profile and "env_alone" in profile
    assert "under cProfile (profile_env.txt)" in rows[0][7]
    ran = [r for r in rows if r[7] != "not run (--only)"]
    # replay-0 measures the three replay paths together
    assert [r[0] for r in ran] == ["Breakout env alone"] + ["replay sample(32), frame stack 4"] * 3
    assert all(rate(r[2]) > 0 for r in ran)
    assert len(rows) - len(ran) == len(ROWS) - 4 and all(r[2] == "—" for r in rows if r not in ran)
    # the listing of rows in the error names the CUDA-only row too, since it is accepted here
    with pytest.raises(SystemExit, match=r"--only names no row \['fp32-graph'\]; rows: .*"
                                         r", fp32-graphs \(CUDA only\)"):
        gpu_check.main(["--device", "cpu", "--quick", "--only", "env,fp32-graph"])  # a typo
    with pytest.raises(SystemExit, match=r"--profile names no row \['dqn'\]"):
        gpu_check.main(["--device", "cpu", "--quick", "--profile", "dqn"])


def test_the_shell_wrapper_dry_run_passes_its_arguments_to_the_check(tmp_path):
    """scripts/gpu_check.sh --cpu-dry-run: the `cuda` tests (skipped without a GPU), then
    gpu_check.py with what follows `--`; --no-tests leaves the tests out; anything else before
    `--` is refused with its usage."""
    script = SCRIPT.with_name("gpu_check.sh")
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(tmp_path / "out")}
    result = subprocess.run(["bash", str(script), "--cpu-dry-run", "--", "--only", "env"], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # the cuda tests ran (skipped without a GPU, run with one) and left pytest's summary line
    assert re.search(r"\d+ (passed|skipped)", (tmp_path / "out" / "pytest_cuda.log").read_text())
    rows = table_rows((tmp_path / "out" / "gpu_check.md").read_text())
    assert rate(rows[0][2]) > 0 and rows[0][0] == "Breakout env alone"
    assert all(r[7] == "not run (--only)" for r in rows[1:])
    # --no-tests: straight to the check, which writes a new table over the last one
    (tmp_path / "out" / "pytest_cuda.log").unlink()
    again = subprocess.run(["bash", str(script), "--cpu-dry-run", "--no-tests", "--", "--only", "cleanrl"], env=env,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "--no-tests: the cuda tests are not run" in again.stdout
    assert not (tmp_path / "out" / "pytest_cuda.log").exists()
    ran = [r[0] for r in table_rows((tmp_path / "out" / "gpu_check.md").read_text()) if r[7] != "not run (--only)"]
    assert ran == ["CleanRL-style DQN loop"]
    for bad in (["--bogus"], ["--cpu-dry-run", "--only", "env"]):
        refused = subprocess.run(["bash", str(script), *bad], env=env, capture_output=True, text=True, timeout=60)
        assert refused.returncode == 2
        assert refused.stderr == ("usage: bash scripts/gpu_check.sh [--cpu-dry-run] [--no-tests] "
                                  "[-- gpu_check.py arguments]\n")


def test_env_clock_counts_the_vector_env_steps_from_its_start_step_on():
    gpu_check = load_script()
    envs = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1")] * 2)
    envs.reset(seed=0)
    slow = envs.step

    def step(actions):  # a known 20 ms per step
        time.sleep(0.02)
        return slow(actions)

    envs.step = step

    class Loop:  # what EnvClock reads of a loop: its envs and its step count
        pass

    loop = Loop()
    loop.envs, loop.step = envs, 0
    clock = gpu_check.EnvClock(loop, start=4)
    t0 = time.perf_counter()
    for _ in range(5):  # steps 0, 2: not counted; 4, 6, 8: counted
        out = loop.envs.step(np.zeros(2, dtype=np.int64))
        loop.step += 2
    elapsed = time.perf_counter() - t0
    assert len(out) == 5 and out[0].shape == (2, 4)  # the env's own results pass through
    # three sleeps counted, and not the two before `start`
    assert 0.06 <= clock.seconds <= elapsed - 0.04
    envs.close()
