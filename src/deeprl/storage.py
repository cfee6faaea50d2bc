"""What a run will store, and whether it fits: every replay (off-policy, image or vector
observations), rollout (on-policy, episodic), fitted-Q dataset and dense known model, against the
available memory. numpy allocates lazily, so a buffer that does not fit would otherwise start fine
and be killed hours later. Run by deeprl.checks.check_spec once the env's spaces are known.
"""

import math

import numpy as np
from omegaconf import DictConfig

from deeprl.core.errors import ConfigError
from deeprl.envs import EnvSpec


def check_memory(cfg: DictConfig, spec: EnvSpec, *, tabular: bool) -> None:
    """The storage the run will fill must fit in available memory: every replay (off-policy,
    image or vector observations), rollout (on-policy, episodic), fitted-Q dataset and dense
    known model. ConfigError names the key that sets the size."""
    # Imported here: deeprl.buffers imports torch, which a refused pairing does not wait for.
    from deeprl.buffers.memory import check_fits

    for nbytes, what, key, per_item in storage(cfg, spec, tabular=tabular):
        check_fits(nbytes, what, key=key, per_item=per_item)


def storage(cfg: DictConfig, spec: EnvSpec, *, tabular: bool) -> list[tuple[int, str, str, int]]:
    """(bytes, what, key that sets the size, bytes per unit of that key) of what the run stores
    (`tabular`: an algorithm on a state index, which holds the env's known model, if it has one)."""
    algo, num_envs = cfg.algo, int(cfg.num_envs)
    name = algo.get("name")
    obs = _nbytes(spec.obs_shape, spec.obs_dtype)
    action = _nbytes(spec.action_shape, spec.action_space.dtype or np.int64)
    out = []
    if "buffer_size" in algo:  # off-policy
        out.append(_replay(cfg, spec, action))
    elif "n_steps" in algo:  # on-policy
        steps = 1 if algo.get("mode") == "online" else int(algo.n_steps)
        # obs (and its copy and the next observations when the rollout is finished), the sampled
        # actions twice, rewards, values and log-probabilities twice (kept per step, then finished),
        # next values, two flags.
        per_step = num_envs * (3 * obs + 2 * action + 6 * 4 + 2)
        out.append((steps * per_step, f"a rollout of {steps:,} steps × {num_envs} envs", "algo.n_steps", per_step))
    elif "batch_steps" in algo:  # episodic
        rows = max(int(algo.batch_steps) // num_envs, 1) * 2
        per_step = 3 * obs + 2 * action + 6 * 4 + 2
        out.append((rows * num_envs * per_step, f"a batch of {int(algo.batch_steps):,} steps", "algo.batch_steps",
                    per_step))
    if name == "fitted_q_iteration":
        steps = int(cfg.total_steps)
        # Per transition: s, s', a (twice), r, terminated; stored per step and once concatenated,
        # plus numpy's per-array overhead for the per-step arrays.
        per_step = 2 * (2 * obs + 2 * action + 8 + 1) + math.ceil(6 * 112 / num_envs)
        out.append((steps * per_step, f"a dataset of {steps:,} transitions", "total_steps", per_step))
    if spec.n_states and tabular:
        s, a = spec.n_states, spec.n_actions
        # P[s, a, s'] and same-sized temporaries, in float64.
        out.append((3 * s * a * s * 8, f"the known model of a {s}-state world", "env", 0))
    return out


def _replay(cfg: DictConfig, spec: EnvSpec, action: int) -> tuple[int, str, str, int]:
    from deeprl.buffers import FrameReplayBuffer, ReplayBuffer, frame_stack_of, storage_dtype

    algo, num_envs = cfg.algo, int(cfg.num_envs)
    replay = bool(algo.get("replay", True))
    n_step = int(algo.get("n_step", 1))
    # Without replay the buffer only holds the newest batch (and any n-step window behind it).
    capacity = int(algo.buffer_size) if replay else int(algo.batch_size) + (n_step - 1) * num_envs
    key = "algo.buffer_size" if replay else "algo.batch_size"
    action_dtype = spec.action_space.dtype or np.int64
    k = frame_stack_of(cfg.env, spec.obs_shape, spec.obs_dtype)
    if k:
        frame_shape = (spec.obs_shape[0] // k, *spec.obs_shape[1:])
        frame_capacity = FrameReplayBuffer.default_frame_capacity(capacity)
        if frame_capacity >= 2**31:  # frame pointers are int32
            raise ConfigError(key, f"a frame replay holds at most {(2**31 - 1025) * 32 // 33:,} transitions, got "
                                   f"{capacity:,}; lower {key}")
        nbytes = FrameReplayBuffer.nbytes_for(capacity, frame_capacity, k, frame_shape, spec.obs_dtype,
                                              spec.action_shape, action_dtype)
    else:
        nbytes = ReplayBuffer.nbytes_for(capacity, spec.obs_shape, storage_dtype(spec.obs_dtype), spec.action_shape,
                                         action_dtype)
    prioritized = algo.get("prioritized")
    if replay and prioritized is not None and prioritized.get("enabled"):
        nbytes += 2 * 8 * (1 << max(0, (capacity - 1).bit_length()))  # the sum tree
    return (nbytes, f"a replay buffer of {capacity:,} transitions of shape {tuple(spec.obs_shape)}", key,
            max(nbytes // max(capacity, 1), 1))


def _nbytes(shape, dtype) -> int:
    return int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
