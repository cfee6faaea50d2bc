from typing import Protocol

import numpy as np
import torch

from deeprl.envs import EnvSpec


class Agent(Protocol):
    """What every loop needs from an algorithm.

    `LEARNED`: the entries of `state_dict()` that hold what the agent learned (its networks, their
    targets, a Q table), which `init_from=` carries into a new run; not its optimizer state, random
    streams or counters. An agent without it (planners, fitted Q-iteration) cannot be started from
    another run."""

    LEARNED: tuple[str, ...]

    def act(self, obs: np.ndarray, step: int, eval_mode: bool = False) -> np.ndarray: ...

    def update(self, batch, step: int) -> dict[str, torch.Tensor]: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


def require_continuous(algo: str, spec: EnvSpec) -> None:
    from deeprl.core.errors import ConfigError

    if spec.discrete or spec.action_space.shape is None:
        raise ConfigError("algo", f"{algo} needs a continuous (Box) action space but {spec.id} has "
                                  f"{type(spec.action_space).__name__} actions; pick an env with continuous "
                                  "actions (e.g. env=pendulum)")


def require_discrete(algo: str, spec: EnvSpec) -> None:
    from deeprl.core.errors import ConfigError

    if not spec.discrete:
        raise ConfigError(
            "algo",
            f"{algo} needs a discrete action space but {spec.id} has {type(spec.action_space).__name__} "
            "actions; pick an env with discrete actions (e.g. env=cartpole)",
        )
