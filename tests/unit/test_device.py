from pathlib import Path

import pytest
import torch

from conftest import compose_config
from deeprl.core.device import (
    AUTO_CUDA_MACS,
    auto_device,
    bf16_pays_for_mlp,
    cpu_has_native_bf16,
    keep_freed_memory,
    precision_note,
    resolve_device,
    resolve_precision,
)
from deeprl.core.errors import ConfigError


def test_auto_picks_cuda_only_when_available():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


def test_cpu():
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
@pytest.mark.parametrize("name", ["cuda", "cuda:0"])
def test_cuda_without_gpu_names_the_key_and_fix(name):
    with pytest.raises(ConfigError, match=r"^device: .*device=auto or device=cpu"):
        resolve_device(name)


def test_unknown_device():
    with pytest.raises(ConfigError, match="device"):
        resolve_device("tpu")


# The first lines of /proc/cpuinfo on an AVX2-only CPU and on one with AVX-512 BF16 (flags shortened).
AVX2_CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B12
flags\t\t: fpu sse sse2 ssse3 sse4_1 sse4_2 avx f16c fma avx2 bmi2 adx
"""
BF16_CPUINFO = AVX2_CPUINFO.replace("avx2 bmi2", "avx2 avx512f avx512bw avx512_bf16 amx_tile bmi2")


@pytest.fixture
def cpuinfo(tmp_path):
    def write(text: str) -> Path:
        path = tmp_path / "cpuinfo"
        path.write_text(text)
        return path
    return write


def test_native_bf16_read_from_the_cpu_flags(cpuinfo):
    assert cpu_has_native_bf16(cpuinfo(AVX2_CPUINFO), environ={}) is False
    assert cpu_has_native_bf16(cpuinfo(BF16_CPUINFO), environ={}) is True
    assert cpu_has_native_bf16(cpuinfo(AVX2_CPUINFO.replace("avx2 bmi2", "avx2 amx_bf16 bmi2")), environ={}) is True
    # A flag that merely contains the name does not count.
    assert cpu_has_native_bf16(cpuinfo(AVX2_CPUINFO.replace("avx2 bmi2", "avx2 avx512_bf16x")), environ={}) is False


@pytest.mark.parametrize(("environ", "native"), [
    ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, False),
    ({"ONEDNN_MAX_CPU_ISA": "avx512_core_vnni"}, False),
    ({"DNNL_MAX_CPU_ISA": "AVX512_CORE"}, False),
    ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}, True),
    ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_AMX"}, True),
    ({"ONEDNN_MAX_CPU_ISA": "DEFAULT"}, True),
    ({"ONEDNN_MAX_CPU_ISA": ""}, True),
], ids=lambda value: "-".join(f"{k}={v}" for k, v in value.items()) if isinstance(value, dict) else str(value))
def test_a_onednn_cap_below_bf16_means_emulated_bf16(cpuinfo, environ, native):
    """oneDNN, which multiplies torch's bf16 on a CPU, emulates bf16 when capped below AVX-512 BF16,
    whatever the CPU's flags say; a cap cannot give a CPU without the flags native bf16."""
    assert cpu_has_native_bf16(cpuinfo(BF16_CPUINFO), environ=environ) is native
    assert cpu_has_native_bf16(cpuinfo(AVX2_CPUINFO), environ=environ) is False


def test_no_flags_means_no_native_bf16(cpuinfo, tmp_path):
    assert cpu_has_native_bf16(cpuinfo("processor\t: 0\n")) is False
    assert cpu_has_native_bf16(tmp_path / "missing") is False


def test_this_machine_answers_from_proc_cpuinfo():
    import os
    if not os.path.exists("/proc/cpuinfo"):
        pytest.skip("Linux only")
    with open("/proc/cpuinfo") as f:
        flags = " ".join(line for line in f if line.startswith("flags"))
    cap = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").upper()
    assert cpu_has_native_bf16() == (any(f in flags.split() for f in ("avx512_bf16", "amx_bf16"))
                                     and cap not in {"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX512_CORE",
                                                     "AVX512_CORE_VNNI"})


@pytest.mark.parametrize("native", [False, True])
def test_auto_precision_is_bf16_only_for_large_networks_on_a_cpu_with_native_bf16(native):
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu, large=False, native_bf16=native) == "fp32"
    assert resolve_precision("auto", cpu, large=True, native_bf16=native) == ("bf16" if native else "fp32")
    assert resolve_precision("auto", torch.device("cuda"), large=True, native_bf16=native) == "fp32"
    assert resolve_precision("bf16", cpu, large=False, native_bf16=native) == "bf16"
    assert resolve_precision("fp32", cpu, large=True, native_bf16=native) == "fp32"


def test_wide_hidden_to_hidden_products_make_an_mlp_large():
    assert bf16_pays_for_mlp([256, 256]) and bf16_pays_for_mlp([400, 300]) and bf16_pays_for_mlp([128, 128])
    assert not bf16_pays_for_mlp([64, 64]) and not bf16_pays_for_mlp([256, 64])
    assert not bf16_pays_for_mlp([256]) and not bf16_pays_for_mlp([])  # no hidden-to-hidden product


def test_auto_precision_follows_this_cpu():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu, large=True) == ("bf16" if cpu_has_native_bf16() else "fp32")


def test_precision_note_only_for_emulated_bf16():
    cpu = torch.device("cpu")
    note = precision_note("bf16", cpu, native_bf16=False)
    assert note is not None and "\n" not in note
    assert "algo.precision=bf16" in note and "emulated, slower than fp32" in note
    assert precision_note("bf16", cpu, native_bf16=True) is None
    assert precision_note("fp32", cpu, native_bf16=False) is None
    assert precision_note("bf16", torch.device("cuda"), native_bf16=False) is None


@pytest.mark.parametrize(("text", "cap", "noted"), [(AVX2_CPUINFO, "", True), (BF16_CPUINFO, "", False),
                                                    (BF16_CPUINFO, "AVX2", True)],
                         ids=["avx2", "avx512_bf16", "avx512_bf16-onednn_capped_to_avx2"])
def test_building_dqn_with_bf16_prints_the_note_once_where_bf16_is_emulated(cpuinfo, monkeypatch, capsys,
                                                                            tmp_path, text, cap, noted):
    from deeprl.build import build
    from deeprl.core import device

    monkeypatch.setattr(device, "CPUINFO", str(cpuinfo(text)))
    monkeypatch.setattr(device, "ENVIRON", {"ONEDNN_MAX_CPU_ISA": cap})  # not the process's: oneDNN keeps the first
    run = build(compose_config("algo=dqn", "env=cartpole", "device=cpu", "algo.precision=bf16"), tmp_path / "run")
    run.envs.close()
    notes = [line for line in capsys.readouterr().out.splitlines() if "note:" in line]
    assert run.agent.precision == "bf16"
    assert len(notes) == (1 if noted else 0), notes
    if noted:
        assert notes[0].startswith("deeprl | note: algo.precision=bf16") and "emulated" in notes[0]


def test_building_dqn_in_fp32_prints_no_note(cpuinfo, monkeypatch, capsys, tmp_path):
    from deeprl.build import build
    from deeprl.core import device

    monkeypatch.setattr(device, "CPUINFO", str(cpuinfo(AVX2_CPUINFO)))
    run = build(compose_config("algo=dqn", "env=cartpole", "device=cpu", "algo.precision=fp32"), tmp_path / "run")
    run.envs.close()
    assert "note:" not in capsys.readouterr().out


def test_keep_freed_memory_takes_effect_on_glibc():
    import platform
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt is glibc's")
    assert keep_freed_memory() is True


# `device: auto`, both branches on any machine: the decision takes whether CUDA is there.
@pytest.mark.parametrize(("convolutional", "macs", "cuda", "expected"), [
    (True, 0, True, "cuda"),             # Atari's Nature CNN
    (False, 18_000_000, True, "cuda"),   # 256-256 MuJoCo networks at batch 256
    (False, 1_100_000, True, "cpu"),     # CartPole / Pendulum MLPs
    (False, 0, True, "cpu"),             # no network (tabular, planning)
    (True, 0, False, "cpu"),             # no GPU
    (False, 18_000_000, False, "cpu"),
])
def test_auto_device_by_network(convolutional, macs, cuda, expected):
    device, why = auto_device(convolutional, macs, cuda_available=cuda)
    assert device.type == expected and why.startswith("auto: ")


@pytest.mark.parametrize(("overrides", "convolutional", "low", "high"), [
    (["algo=dqn", "env=breakout"], True, 0, 0),
    (["algo=dqn", "env=cartpole"], False, 500_000, 2_000_000),           # tuned 128-128, batch 64
    (["algo=sac", "env=pendulum"], False, 500_000, 2_000_000),            # tuned 64-64, batch 256
    (["algo=sac", "env=halfcheetah"], False, AUTO_CUDA_MACS, 10**9),      # 256-256, batch 256
    (["algo=ppo", "env=cartpole"], False, 1, AUTO_CUDA_MACS),
    (["algo=q_learning", "env=frozenlake"], False, 0, 0),
])
def test_network_cost_of_real_configs(overrides, convolutional, low, high):
    from deeprl.build import network_cost
    from deeprl.envs import make_vec_env, spec_of

    cfg = compose_config(*overrides)
    envs = make_vec_env(cfg.env, 1, 0)
    try:
        conv, macs = network_cost(cfg, spec_of(envs, cfg.env.id))
    finally:
        envs.close()
    assert conv == convolutional and low <= macs <= high


def test_auto_resolves_to_the_cpu_for_a_small_mlp_and_says_why(tmp_path):
    from deeprl.build import build

    run = build(compose_config("algo=dqn", "env=cartpole", "device=auto"), tmp_path)
    run.envs.close()
    assert run.device.type == "cpu"  # on a GPU host too: CartPole's MLP stays on the CPU
    assert run.device_why.startswith("auto: ")
