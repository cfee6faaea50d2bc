"""Speed of the Atari env, random actions, no learning; an agent step is 4 emulator frames.

Two tables:

- `step`: milliseconds per agent step of one env, deeprl's wrapper stack against the bare emulator
  (4 x `ale.act` and one grayscale screen, the least any frame-skipping env does), and the ratio.
  Rows are timed in turn, round after round, so a change of load hits all of them; the ratio is
  the median over rounds of the ratio within a round.
- `vector`: steps per second (summed over envs) of deeprl's gymnasium wrappers in a SyncVectorEnv
  and in an AsyncVectorEnv (`env.vectorization=async`: a worker process per env) against ale-py's
  C++ AtariVectorEnv with its built-in preprocessing; best of the repeats.

    .venv/bin/python scripts/atari_env_speed.py [--game Breakout] [--steps 3000] [--repeats 7]
        [--tables step vector] [--envs 1 8]

To time another checkout's stack with this script: PYTHONPATH=<checkout>/src .venv/bin/python ...
Figures and the choices made from them: docs/atari.md.
"""

import argparse
import os
import statistics
import time

import numpy as np
from gymnasium.vector import AutoresetMode
from omegaconf import OmegaConf

from deeprl.envs import make_vec_env
from deeprl.envs.atari import AtariFrames, atari_thunk, check_atari_cfg, rom_name


def atari_cfg(game: str):
    return OmegaConf.create({
        "kind": "atari", "game": game, "id": f"ALE/{game}-v5", "frame_skip": 4, "noop_max": 30,
        "repeat_action_probability": 0.25, "terminal_on_life_loss": True, "clip_rewards": True,
        "screen_size": 84, "grayscale": True, "frame_stack": 4, "fire_reset": "auto",
        "full_action_space": False, "max_frames": None,
    })


def machine() -> str:
    from deeprl.core.device import cpu_model

    model = cpu_model()
    try:
        import torch

        model += f", torch CPU capability {torch.backends.cpu.get_cpu_capability()}"
    except ImportError:
        pass
    return f"{model}; {os.cpu_count()} cores"


# ---- one env, milliseconds per agent step ------------------------------------------------------

def bare_ale(game: str, seed: int):
    """A step function: the emulator alone, 4 frames and one grayscale screen into a buffer."""
    from ale_py import ALEInterface, roms

    ale = ALEInterface()
    ale.setInt("random_seed", seed)
    ale.setFloat("repeat_action_probability", 0.25)
    ale.setInt("max_num_frames_per_episode", 108_000)
    ale.loadROM(roms.get_rom_path(rom_name(game)))
    actions = ale.getMinimalActionSet()
    screen = np.zeros(ale.getScreenDims(), dtype=np.uint8)

    def step(action: int) -> None:
        a = actions[action]
        for _ in range(4):
            ale.act(a)
        ale.getScreenGrayscale(screen)
        if ale.game_over():
            ale.reset_game()

    return step, len(actions), ale


def gym_env_step(env, seed: int):
    """A step function for a gymnasium env that resets it when an episode ends."""
    env.reset(seed=seed)

    def step(action: int) -> None:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()

    return step, int(env.action_space.n), env.unwrapped.ale


def step_rows(game: str, seed: int):
    import gymnasium as gym

    cfg = atari_cfg(game)
    check_atari_cfg(cfg)  # registers the ALE envs and quietens its banner
    return {
        "ALE: 4 x act + getScreenGrayscale": lambda: bare_ale(game, seed),
        "gym.make(frameskip=4, grayscale), no wrappers": lambda: gym_env_step(
            gym.make(cfg.id, frameskip=4, obs_type="grayscale", repeat_action_probability=0.25), seed),
        "gym.make(frameskip=1) + AtariFrames": lambda: gym_env_step(AtariFrames(
            gym.make(cfg.id, frameskip=1, repeat_action_probability=0.25)), seed),
        "deeprl stack (training wrappers)": lambda: gym_env_step(atari_thunk(cfg, training=True)(), seed),
    }


def ms_per_step(step, n_actions: int, ale, steps: int, seed: int) -> tuple[float, float]:
    """Milliseconds per agent step, and emulator frames per agent step (resets included)."""
    actions = np.random.default_rng(seed).integers(0, n_actions, steps + 100).tolist()
    for a in actions[:100]:  # warm up
        step(a)
    frames, start = ale.getFrameNumber(), time.perf_counter()
    for a in actions[100:]:
        step(a)
    return (time.perf_counter() - start) / steps * 1e3, (ale.getFrameNumber() - frames) / steps


def step_table(game: str, steps: int, repeats: int) -> None:
    rows = step_rows(game, seed=0)
    envs = {name: make() for name, make in rows.items()}
    times, frames = {name: [] for name in rows}, {name: [] for name in rows}
    for r in range(repeats):
        for name, (step, n_actions, ale) in envs.items():
            ms, f = ms_per_step(step, n_actions, ale, steps, seed=r)
            times[name].append(ms)
            frames[name].append(f)
    base = next(iter(rows))
    print(f"\nOne env, {steps} random agent steps x {repeats} rounds: ms per agent step, emulator "
          f"frames per agent step,\nand the ratio to the first row per agent step and per frame "
          f"(medians over rounds of the ratio within a round)")
    print(f"{'':<46} {'median':>6} {'min':>6} {'max':>6} {'frames':>6} {'ratio':>6} {'/frame':>6}")
    for name, t in times.items():
        ratio = statistics.median(a / b for a, b in zip(t, times[base], strict=True))
        per_frame = statistics.median(a / fa / (b / fb) for a, fa, b, fb in
                                      zip(t, frames[name], times[base], frames[base], strict=True))
        print(f"{name:<46} {statistics.median(t):>6.3f} {min(t):>6.3f} {max(t):>6.3f} "
              f"{statistics.median(frames[name]):>6.2f} {ratio:>6.2f} {per_frame:>6.2f}", flush=True)


# ---- many envs, steps per second ---------------------------------------------------------------

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


def vector_table(game: str, steps: int, repeats: int, env_counts: list[int]) -> None:
    from ale_py.vector_env import AtariVectorEnv

    threads = sorted({1, os.cpu_count() or 1})
    print(f"\nVector envs, {steps} random steps, best of {repeats}")
    print(f"{'implementation':<42} {'envs':>4} {'steps/s':>9} {'frames/s':>9}")
    for n in env_counts:
        rows = [("gymnasium wrappers, SyncVectorEnv", lambda n=n: make_vec_env(atari_cfg(game), n, seed=0)),
                ("gymnasium wrappers, AsyncVectorEnv", lambda n=n: make_vec_env(
                    OmegaConf.merge(atari_cfg(game), {"vectorization": "async"}), n, seed=0))]
        for t in threads:
            rows.append((f"ale_py AtariVectorEnv, {t} thread(s)", lambda n=n, t=t: AtariVectorEnv(
                rom_name(game), n, num_threads=t, autoreset_mode=AutoresetMode.SAME_STEP,
                repeat_action_probability=0.25, episodic_life=True, reward_clipping=True)))
        for name, make in rows:
            envs = make()
            best = max(steps_per_second(envs, steps, seed=r) for r in range(repeats))
            envs.close()
            print(f"{name:<42} {n:>4} {best:>9.0f} {4 * best:>9.0f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--game", default="Breakout")
    parser.add_argument("--steps", type=int, default=3000, help="agent steps per timed run")
    parser.add_argument("--repeats", type=int, default=7, help="rounds (step table) or runs (vector table)")
    parser.add_argument("--tables", nargs="+", choices=["step", "vector"], default=["step", "vector"])
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 8], help="env counts of the vector table")
    args = parser.parse_args()
    print(f"{args.game}; {machine()}; load average {os.getloadavg()[0]:.1f}", flush=True)
    if "step" in args.tables:
        step_table(args.game, args.steps, args.repeats)
    if "vector" in args.tables:
        vector_table(args.game, args.steps, args.repeats, args.envs)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
