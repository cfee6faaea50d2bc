import pytest
import torch

from deeprl.core.device import (
    cpu_has_native_bf16,
    keep_freed_memory,
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


def test_auto_precision_is_bf16_only_for_convolutions_on_a_cpu_with_native_bf16():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu, convolutional=False) == "fp32"
    assert resolve_precision("auto", cpu, convolutional=True) == ("bf16" if cpu_has_native_bf16() else "fp32")
    assert resolve_precision("auto", torch.device("cuda"), convolutional=True) == "fp32"
    assert resolve_precision("bf16", cpu, convolutional=False) == "bf16"
    assert resolve_precision("fp32", cpu, convolutional=True) == "fp32"


def test_keep_freed_memory_takes_effect_on_glibc():
    import platform
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt is glibc's")
    assert keep_freed_memory() is True
