import torch

from deeprl.core.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """Turn the `device` setting (auto, cpu, cuda, cuda:N) into a torch.device, or explain why not."""
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
            if not index.isdigit():
                raise ConfigError("device", f"'{name}' is not a device; use cuda:N with N a GPU index")
            if int(index) >= torch.cuda.device_count():
                raise ConfigError(
                    "device",
                    f"'{name}' but only {torch.cuda.device_count()} GPU(s) are visible; use cuda:0..",
                )
        return torch.device(name)
    raise ConfigError("device", f"unknown device '{name}'; use auto, cpu, cuda or cuda:N")
