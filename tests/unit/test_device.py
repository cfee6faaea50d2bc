import pytest
import torch

from deeprl.core.device import resolve_device
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
