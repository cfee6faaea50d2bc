import os

import torch

from deeprl.core.errors import ConfigError
from deeprl.rules import DeviceName


def resolve_device(name: str) -> torch.device:
    """Turn the `device` setting (auto, cpu, cuda, cuda:N) into a torch.device, or explain why not."""
    DeviceName().check("device", name)  # the spelling (a resumed run's device is not validated before)
    name = str(name).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError(
                "device", f"'{name}' requested but CUDA is not available here; use device=auto or device=cpu"
            )
        index = name.partition(":")[2]
        if index:
            if int(index) >= torch.cuda.device_count():
                raise ConfigError(
                    "device",
                    f"'{name}' but only {torch.cuda.device_count()} GPU(s) are visible; use cuda:0..",
                )
    return torch.device(name)


# `device: auto` sends an MLP to CUDA from this many multiply-adds per forward pass over one
# update batch. Below it a GPU step is bound by kernel launches and host syncs, not arithmetic:
# a CartPole DQN update (1M) or a Pendulum SAC update (64-64 nets, batch 256: 1.1M) costs a few
# hundred microseconds of CPU arithmetic against ~130 launches and a sync per step on a GPU.
# 256-256 MuJoCo networks at batch 256 (18M) spend 8.8 ms per SAC update on one CPU thread.
AUTO_CUDA_MACS = 8_000_000


def auto_device(convolutional: bool, update_macs: int, cuda_available: bool | None = None) -> tuple[torch.device, str]:
    """What `device: auto` means for a run, and why (for the start banner): CUDA when there is one
    and the network is convolutional or an MLP of at least AUTO_CUDA_MACS multiply-adds per
    update batch; the CPU otherwise (no GPU, no network, or a small MLP)."""
    if cuda_available is None:
        cuda_available = torch.cuda.is_available()
    if not cuda_available:
        return torch.device("cpu"), "auto: no CUDA here"
    if convolutional:
        return torch.device("cuda"), "auto: a convolutional torso"
    if update_macs >= AUTO_CUDA_MACS:
        return torch.device("cuda"), f"auto: {update_macs / 1e6:.0f}M multiply-adds per update batch"
    what = f"a small network, {update_macs / 1e6:.1f}M multiply-adds per update batch" if update_macs else "no network"
    return torch.device("cpu"), f"auto: {what}; the CPU is faster than a GPU's launch overhead here"


# The file cpu_has_native_bf16 reads unless given another (tests write a cpuinfo for each answer).
CPUINFO = "/proc/cpuinfo"
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


# oneDNN instruction-set caps below AVX-512 BF16. torch's bf16 products on a CPU run in oneDNN, which
# honours ONEDNN_MAX_CPU_ISA (or its older name DNNL_MAX_CPU_ISA): capped to one of these it
# emulates bf16 whatever the CPU has. Measured on an AVX-512 BF16 + AMX CPU, one thread, a 256x256
# bf16 matmul: 41 us uncapped, 850 us capped to AVX512_CORE_VNNI, 13.7 ms capped to AVX2 (fp32: 176 us).
ONEDNN_CAPS_WITHOUT_BF16 = frozenset({"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX512_CORE", "AVX512_CORE_VNNI"})
# The variables cpu_has_native_bf16 reads unless given others (tests give their own: oneDNN reads
# the real one once, at its first product, and keeps the cap for the rest of the process).
ENVIRON = os.environ


def cpu_has_native_bf16(cpuinfo: str | os.PathLike | None = None, environ=None) -> bool:
    """Whether this CPU multiplies bf16 in hardware (AVX-512 BF16 or AMX), where bf16 autocast pays.

    Reads the CPU flags from `cpuinfo` (default: Linux's /proc/cpuinfo); anywhere else (or without
    those flags) bf16 is emulated and slower. So it is where `environ` (default: ENVIRON, this
    process's variables) caps oneDNN below bf16 (ONEDNN_CAPS_WITHOUT_BF16).
    """
    if not NATIVE_BF16_FLAGS & set(_cpuinfo_fields(cpuinfo).get("flags", "").split()):
        return False
    environ = ENVIRON if environ is None else environ
    cap = environ.get("ONEDNN_MAX_CPU_ISA") or environ.get("DNNL_MAX_CPU_ISA") or ""
    return cap.strip().upper() not in ONEDNN_CAPS_WITHOUT_BF16


def resolve_precision(precision: str, device: torch.device, large: bool, native_bf16: bool | None = None) -> str:
    """`precision: auto` is bf16 on a CPU with native bf16 for networks whose products are `large`
    enough to pay for the casts, else fp32. Large: a convolutional torso (measured: a Nature-CNN
    update 1.4x faster than fp32 with channels_last) or an MLP with wide hidden-to-hidden layers
    (`bf16_pays_for_mlp`). Small MLPs gain little from bf16, and on a GPU the single-env DQN step
    is bound by launch overhead, not arithmetic. `native_bf16` defaults to what
    cpu_has_native_bf16() reads."""
    if precision != "auto":
        return precision
    if device.type != "cpu" or not large:
        return "fp32"
    return "bf16" if (cpu_has_native_bf16() if native_bf16 is None else native_bf16) else "fp32"


# The narrowest hidden layer, on either side of a hidden-to-hidden product, at which bf16 pays.
BF16_MIN_HIDDEN = 128


def bf16_pays_for_mlp(hidden_sizes) -> bool:
    """Whether an MLP has a hidden-to-hidden product wide enough for bf16 to pay on a CPU that
    multiplies bf16 natively. Measured on an AVX-512 BF16 CPU (one thread, batch 256, twin layers,
    casts included): bf16 takes 0.31 of fp32's time at 256 units, 0.43 at 128, 0.78 at 64."""
    sizes = [int(h) for h in hidden_sizes]
    return any(min(a, b) >= BF16_MIN_HIDDEN for a, b in zip(sizes[:-1], sizes[1:], strict=True))


def _cpuinfo_fields(cpuinfo) -> dict[str, str]:
    """The first processor's `key: value` lines of /proc/cpuinfo (or of the file given); {} elsewhere."""
    fields: dict[str, str] = {}
    try:
        with open(CPUINFO if cpuinfo is None else cpuinfo) as f:
            for line in f:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def onednn_available() -> bool:
    """Whether this torch build has oneDNN's fp32 matmul on dense CPU tensors (x86 builds do)."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def onednn_pays(cpuinfo: str | os.PathLike | None = None) -> bool:
    """Whether oneDNN multiplies wide fp32 layers faster than torch's own CPU matmul (MKL's sgemm)
    here: on AMD CPUs with AVX-512, where MKL does not use AVX-512. Measured on an AMD EPYC
    (family 26, AVX-512 with BF16), one thread, twin 256x256 layers at batch 256: forward 403 µs
    against 790, weight gradient 466 against 800, input gradient 383 against 762; at 64 units
    oneDNN's per-call cost makes it slower (74 µs against 51). On Intel CPUs MKL uses AVX-512 itself."""
    fields = _cpuinfo_fields(cpuinfo)
    return fields.get("vendor_id") == "AuthenticAMD" and "avx512f" in fields.get("flags", "").split()


CPU_GEMMS = ("auto", "torch", "onednn")


def resolve_cpu_gemm(cpu_gemm: str, device: torch.device, precision: str, large: bool,
                     pays: bool | None = None) -> str:
    """`cpu_gemm: auto` is onednn for an fp32 CPU run whose MLP has wide hidden-to-hidden layers
    (`large`, the rule bf16 uses) on a CPU where oneDNN pays (`onednn_pays`, the default of `pays`),
    else torch. `onednn` asked for where it cannot apply is refused in one line."""
    if cpu_gemm not in CPU_GEMMS:
        raise ConfigError("algo.cpu_gemm", f"unknown '{cpu_gemm}'; use one of {', '.join(CPU_GEMMS)}")
    if cpu_gemm == "onednn":
        if device.type != "cpu":
            raise ConfigError("algo.cpu_gemm", f"onednn multiplies on the CPU, but this run trains on {device}; "
                                               "set algo.cpu_gemm=auto or torch")
        if precision != "fp32":
            raise ConfigError("algo.cpu_gemm", f"onednn is for fp32 products, but algo.precision resolved to "
                                               f"{precision}; set algo.precision=fp32 or algo.cpu_gemm=auto")
        if not onednn_available():
            raise ConfigError("algo.cpu_gemm", "this torch build has no oneDNN; set algo.cpu_gemm=auto or torch")
    if cpu_gemm != "auto":
        return cpu_gemm
    if device.type != "cpu" or precision != "fp32" or not large or not onednn_available():
        return "torch"
    return "onednn" if (onednn_pays() if pays is None else pays) else "torch"


def precision_note(precision: str, device: torch.device, native_bf16: bool | None = None) -> str | None:
    """The line to print when the resolved precision will run slower than fp32, else None.

    bf16 on a CPU without native bf16 is emulated by converting to and from fp32 (measured on
    an AVX2-only CPU: DQN on CartPole at 542 steps/s under bf16 against 1634 in fp32).
    """
    if precision != "bf16" or device.type != "cpu":
        return None
    if cpu_has_native_bf16() if native_bf16 is None else native_bf16:
        return None
    return ("deeprl | note: algo.precision=bf16 where bf16 is not native (a CPU without AVX-512 BF16/AMX, or "
            "oneDNN capped below them by ONEDNN_MAX_CPU_ISA): emulated, slower than fp32")


# glibc mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory(mmap_threshold: int = 32 << 20, trim_threshold: int = 1 << 30) -> bool:
    """Ask glibc to keep freed blocks for reuse instead of returning them to the kernel.

    A CPU training step frees and reallocates the same few-megabyte tensors (activations,
    gradients, batches) every time. By default glibc serves blocks that large with fresh mmap
    pages and unmaps them on free, so every step pays page faults and page zeroing: measured on a
    2-core VM, a Nature-CNN DQN step on Breakout spent a quarter of its time in the kernel, and
    training ran 1.5x faster with this set. Blocks up to `mmap_threshold` (32 MiB, glibc's
    maximum) then come from the heap, and up to `trim_threshold` bytes of free heap are kept.
    The same effect as PyTorch's CPU tuning advice (jemalloc/tcmalloc, or MALLOC_* variables),
    without preloading anything. Returns False where it does not apply (not glibc).
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(_M_TRIM_THRESHOLD, trim_threshold))


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo), for benchmark reports."""
    try:
        with open(CPUINFO) as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")),
                        "unknown CPU")
    except OSError:
        return "unknown CPU"
