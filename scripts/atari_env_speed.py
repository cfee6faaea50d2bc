"""Environment steps per second of the two ways to run Atari: deeprl's gymnasium wrappers in a
SyncVectorEnv (what `env=breakout` builds) and ale-py's C++ AtariVectorEnv with its built-in
preprocessing. Random actions, no learning; steps are agent steps (4 frames each), summed over envs.

    .venv/bin/python scripts/atari_env_speed.py [--game Breakout] [--steps 4000] [--envs 1 8]

Figures and the choice made from them: docs/atari.md.
"""

import argparse
import os
import time

import numpy as np
from gymnasium.vector import AutoresetMode
from omegaconf import OmegaConf

from deeprl.envs import make_vec_env
from deeprl.envs.atari import rom_name


def atari_cfg(game: str):
    return OmegaConf.create({
        "kind": "atari", "game": game, "id": f"ALE/{game}-v5", "frame_skip": 4, "noop_max": 30,
        "repeat_action_probability": 0.25, "terminal_on_life_loss": True, "clip_rewards": True,
        "screen_size": 84, "grayscale": True, "frame_stack": 4, "fire_reset": "auto",
        "full_action_space": False, "max_frames": None,
    })


def steps_per_second(envs, steps: int, seed: int = 0) -> float:
    n = envs.num_envs
    envs.reset(seed=seed)
    rng = np.random.default_rng(seed)
    actions = envs.single_action_space.n
    for _ in range(max(1, 100 // n)):  # warm up
        envs.step(rng.integers(0, actions, n))
    calls = max(1, steps // n)
    start = time.perf_counter()
    for _ in range(calls):
        envs.step(rng.integers(0, actions, n))
    return calls * n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--game", default="Breakout")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    args = parser.parse_args()
    from ale_py.vector_env import AtariVectorEnv

    threads = sorted({1, os.cpu_count() or 1})
    print(f"{args.game}, {args.steps} random steps, best of {args.repeats}; cores: {os.cpu_count()}, "
          f"load average: {os.getloadavg()[0]:.1f}")
    print(f"{'implementation':<42} {'envs':>4} {'steps/s':>9} {'frames/s':>9}")
    for n in args.envs:
        rows = [("gymnasium wrappers, SyncVectorEnv", lambda n=n: make_vec_env(atari_cfg(args.game), n, seed=0))]
        for t in threads:
            rows.append((f"ale_py AtariVectorEnv, {t} thread(s)", lambda n=n, t=t: AtariVectorEnv(
                rom_name(args.game), n, num_threads=t, autoreset_mode=AutoresetMode.SAME_STEP,
                repeat_action_probability=0.25, episodic_life=True, reward_clipping=True)))
        for name, make in rows:
            envs = make()
            best = max(steps_per_second(envs, args.steps, seed=r) for r in range(args.repeats))
            envs.close()
            print(f"{name:<42} {n:>4} {best:>9.0f} {4 * best:>9.0f}", flush=True)


if __name__ == "__main__":
    main()
