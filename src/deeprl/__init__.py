"""deeprl: config-driven deep reinforcement learning experiments."""

import os

from omegaconf import OmegaConf

__version__ = "0.1.0"


def usable_cores() -> int:
    """The cores this process may run on (fewer than the machine's in a container or a job)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# `${deeprl.cores:}` in configs (the Ray launcher preset sizes Ray with it).
OmegaConf.register_new_resolver("deeprl.cores", usable_cores, replace=True)
