"""Fail at start, with the key to change, when a buffer cannot fit in memory.

numpy allocates lazily (pages are touched as the buffer fills), so without this check a too large
buffer would start fine and be killed by the OOM killer hours later.
"""

from deeprl.core.errors import ConfigError

# Leave this share of the available memory to the rest of the process (torch, envs, the batch).
HEADROOM = 0.1


def available_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (Linux), or None where there is no such file."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def check_fits(nbytes: int, what: str, key: str = "algo.buffer_size", per_item: int | None = None) -> None:
    available = available_bytes()
    if available is None or nbytes <= (1 - HEADROOM) * available:
        return
    hint = ""
    if per_item:
        hint = f" (at most about {int((1 - HEADROOM) * available // per_item):,} fit)"
    raise ConfigError(key, f"{what} needs {nbytes / 2**30:.1f} GiB but only {available / 2**30:.1f} GiB of "
                           f"memory is available; lower {key}{hint} or free memory")


def check_fits_cuda(nbytes: int, what: str, device, key: str = "algo.replay_device") -> None:
    """The part of a buffer placed on a GPU must fit in its free memory (with the same headroom)."""
    import torch

    free, _ = torch.cuda.mem_get_info(device)
    if nbytes > (1 - HEADROOM) * free:
        raise ConfigError(key, f"the observations of {what} need {nbytes / 2**30:.1f} GiB on {device} but only "
                               f"{free / 2**30:.1f} GiB is free there; set {key}=cpu or lower algo.buffer_size")
