"""deeprl vs Stable-Baselines3, side by side on the same workload, reported as ratios.

    .venv/bin/python scripts/benchmark.py                       # every workload
    .venv/bin/python scripts/benchmark.py dqn-cartpole --seeds 1 2 3

Workloads:
  dqn-cartpole  DQN on CartPole-v1. (a) time to solve: training wall time (evaluation excluded)
                until the greedy policy first averages >= 475 over 10 episodes, each library with
                its own tuned settings (deeprl: conf/tuned/dqn_cartpole.yaml; SB3: RL-Zoo's
                CartPole-v1 DQN hyperparameters), evaluated every 2,500 steps.
                (b) the same fixed 50k steps with identical hyperparameters (deeprl's tuned ones,
                8 envs included, without double DQN which SB3 lacks), wall time and steps/s.
  dqn-breakout  DQN on Breakout (Nature CNN) on the CPU: steps/s while learning (6k steps, learning
                starts 1k, train every 4, batch 32), each precision/layout setting, against SB3 on the
                same settings and against the floor (env steps + forward passes + updates alone).
                Uses the first seed only.
  ppo-cartpole  PPO on CartPole-v1, 100k steps, deeprl's tuned preset in both libraries, one torch
                thread each: wall time, in two rollout shapes (8 envs x 32 steps = the preset; 1 env x
                256 steps). Both final policies are evaluated greedily on 10 episodes.
  a2c-lunarlander
                A2C on LunarLander-v3, 200k steps, RL-Zoo's LunarLander A2C settings (8 envs x 5 steps,
                gamma 0.995, lr 8.3e-4 annealed to 0, entropy 1e-5; SB3's A2C defaults for the rest) in
                both libraries, one torch thread each: wall time and both final policies' greedy
                return over 50 episodes, per seed, and their medians.
  dqn-mountaincar
                DQN on MountainCar-v0, 120k steps, deeprl's preset (conf/tuned/dqn_mountaincar.yaml:
                RL-Zoo's settings with the learning rate annealed to 0) in both libraries, uniform random
                actions until learning starts as SB3 acts, one torch thread each: wall time and both
                final policies' greedy return over 50 episodes, per seed, and their medians.
  ddpg-pendulum, td3-pendulum, sac-pendulum
                DDPG / TD3 / SAC on Pendulum-v1, 20k steps, deeprl's tuned preset
                (conf/tuned/<algo>_pendulum.yaml) in both libraries, CPU, one torch thread each:
                training wall time (evaluation excluded), deeprl/SB3 per seed and its median (target
                <= 0.5); both final policies evaluated deterministically on the preset's 50 episodes.
  sac-halfcheetah
                SAC on HalfCheetah-v5, 50k steps, deeprl's preset (256-256, batch 256, lr 3e-4, 5k
                random steps first) in both libraries, the same table; plus deeprl's steps/s while
                learning against the floor of its own update + act calls. Uses the first seed only.
                (scripts/bench_continuous.py holds these four.)
  q-learning-taxi
                Tabular Q-learning on Taxi-v4, deeprl's tuned preset (conf/tuned/q_learning_taxi.yaml,
                100k steps) against the same algorithm and settings as a plain loop in the style of
                Gymnasium's Q-learning tutorials (one env, a numpy table, no logging), and against the
                floor of the env alone (random actions). Steps/s, deeprl/plain time ratio, and both
                greedy policies' mean return over the same 100 seeded episodes.
  deterministic deeprl alone, CPU: steps/s of three short runs (DQN and PPO CartPole, DQN Breakout)
                with deterministic=false and true, interleaved, one run each per seed.
  startup       From the command to a trained agent, for a run too short to learn (300 steps, ~100
                updates): wall time of `train ...` in a fresh process (its final evaluation of one
                episode, checkpoint and TensorBoard files included) against a fresh python running
                SB3's `Algo("MlpPolicy", env).learn(300)` with the same networks, batches and update
                cadence, for DQN and PPO on CartPole and SAC on Pendulum, one run each per seed,
                alternating which goes first.
Needs the `bench` extra (pip install -e '.[bench]'; `make bench` does it).
"""

import argparse
import contextlib
import io
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))  # scripts/ is not a package
from bench_continuous import ddpg_pendulum, sac_halfcheetah, sac_pendulum, td3_pendulum  # noqa: E402

SOLVED = 475.0
EVAL_EVERY = 2_500
EVAL_EPISODES = 10

# SB3's DQN defaults for what RL-Zoo's file leaves out, in the keys `sb3_dqn_model` takes.
SB3_DQN_DEFAULTS = dict(num_envs=1, anneal_lr=False, exploration_initial_eps=1.0, tau=1.0,
                        max_grad_norm=10.0, adam_eps=1e-8, activation="relu")
# RL-Zoo (hyperparams/dqn.yml), CartPole-v1.
ZOO_DQN_CARTPOLE = dict(
    SB3_DQN_DEFAULTS, env_id="CartPole-v1",
    n_timesteps=50_000, learning_rate=2.3e-3, batch_size=64, buffer_size=100_000,
    learning_starts=1_000, gamma=0.99, target_update_interval=10, train_freq=256,
    gradient_steps=128, exploration_fraction=0.16, exploration_final_eps=0.04, net_arch=[256, 256],
)
# deeprl's DQN CartPole preset as both libraries can run it: SB3's DQN has no double DQN, and acts
# uniformly at random until learning starts.
DQN_SAME = ["algo=dqn", "env=cartpole", "algo.double=false", "algo.random_starts=true"]


def machine() -> str:
    import os

    import torch

    from deeprl.core.device import cpu_model

    cpu = cpu_model()
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, torch {torch.__version__}"


# ----------------------------------------------------------------------------- deeprl

def deeprl_run(overrides: list[str]) -> dict:
    return deeprl_executed(overrides)[0]


def deeprl_executed(overrides: list[str]):
    """The summary of a deeprl run in a temporary dir, and the Run itself (its agent, its config)."""
    from hydra import compose, initialize_config_module

    from deeprl.build import build

    with initialize_config_module("deeprl.conf", version_base="1.3"):
        cfg = compose("config", overrides=[*overrides, "log.progress=false"])
    with tempfile.TemporaryDirectory() as run_dir, contextlib.redirect_stdout(io.StringIO()):
        run = build(cfg, Path(run_dir))
        return run.execute(), run


def first_solved(history: list[dict]) -> tuple[float | None, int | None]:
    for point in history:
        if point["eval_return_mean"] >= SOLVED:
            return point["train_time_s"], point["step"]
    return None, None


# ----------------------------------------------------------------------------- Stable-Baselines3

def dqn_preset(overrides: list[str]) -> dict:
    """deeprl's DQN settings (`overrides` composed, e.g. DQN_SAME) as the keys `sb3_dqn_model` takes.
    Asserts what SB3's DQN cannot reproduce."""
    from hydra import compose, initialize_config_module

    with initialize_config_module("deeprl.conf", version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    a, net, n_envs = cfg.algo, cfg.network, int(cfg.num_envs)
    assert not a.double and not a.dueling and a.n_step == 1 and not a.prioritized.enabled
    assert a.replay and a.target.enabled and a.loss == "huber" and a.max_grad_norm is not None
    assert a.random_starts, "SB3's DQN acts uniformly at random until learning_starts"
    # SB3 counts train_freq and the target interval in vector steps (n_envs env steps each).
    assert a.train_freq % n_envs == 0 or n_envs % a.train_freq == 0, "train_freq vs num_envs"
    assert a.target.every % n_envs == 0, "SB3 syncs the target every target.every // num_envs vector steps"
    return dict(env_id=str(cfg.env.id), num_envs=n_envs, learning_rate=float(a.lr), anneal_lr=bool(a.anneal_lr),
                batch_size=int(a.batch_size), buffer_size=int(a.buffer_size),
                learning_starts=int(a.learning_starts), gamma=float(a.gamma),
                target_update_interval=int(a.target.every), tau=float(a.target.tau),
                train_freq=int(a.train_freq), gradient_steps=int(a.gradient_steps),
                exploration_initial_eps=float(a.exploration.start),
                exploration_fraction=float(a.exploration.fraction),
                exploration_final_eps=float(a.exploration.end), max_grad_norm=float(a.max_grad_norm),
                adam_eps=float(a.adam_eps), net_arch=list(net.hidden_sizes), activation=str(net.activation))


def sb3_dqn_model(seed: int, hp: dict):
    """SB3's DQN on `hp["env_id"]` with `hp` (the keys of `dqn_preset`), on the CPU with one torch thread."""
    import torch
    from stable_baselines3 import DQN
    from stable_baselines3.common.env_util import make_vec_env

    torch.set_num_threads(1)  # the same as deeprl's CartPole preset, for a like-for-like CPU budget
    lr = hp["learning_rate"]
    schedule = (lambda progress_remaining: lr * progress_remaining) if hp["anneal_lr"] else lr
    # SB3 counts train_freq in vector steps and runs gradient_steps per round; deeprl counts both
    # in environment steps summed over envs. The same schedule in SB3's units:
    n_envs = hp["num_envs"]
    train_freq = max(1, hp["train_freq"] // n_envs)
    gradient_steps = hp["gradient_steps"] * train_freq * n_envs // hp["train_freq"]
    env = make_vec_env(hp["env_id"], n_envs=n_envs, seed=seed) if n_envs > 1 else hp["env_id"]
    activation = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}[hp["activation"]]
    return DQN("MlpPolicy", env, learning_rate=schedule, batch_size=hp["batch_size"],
               buffer_size=hp["buffer_size"], learning_starts=hp["learning_starts"], gamma=hp["gamma"],
               target_update_interval=hp["target_update_interval"], tau=hp["tau"], train_freq=train_freq,
               gradient_steps=gradient_steps, exploration_initial_eps=hp["exploration_initial_eps"],
               exploration_fraction=hp["exploration_fraction"],
               exploration_final_eps=hp["exploration_final_eps"], max_grad_norm=hp["max_grad_norm"],
               policy_kwargs={"net_arch": hp["net_arch"], "activation_fn": activation,
                              "optimizer_kwargs": {"eps": hp["adam_eps"]}},
               seed=seed, device="cpu", verbose=0)


def sb3_dqn(seed: int, total_steps: int, hp: dict, eval_every: int) -> dict:
    """SB3 DQN with a callback that evaluates each time the step count passes a multiple of
    `eval_every` (0: never), its time excluded."""
    import gymnasium as gym
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.evaluation import evaluate_policy

    class TimedEval(BaseCallback):
        def __init__(self):
            super().__init__()
            self.eval_env = gym.make(hp["env_id"])
            self.eval_time = 0.0
            self.history = []

        def _on_training_start(self):
            self.start = time.perf_counter()

        def _on_step(self):
            # With n envs the count moves n at a time and need not land on a multiple.
            if eval_every and self.num_timesteps // eval_every > len(self.history):
                t0 = time.perf_counter()
                mean, _ = evaluate_policy(self.model, self.eval_env, n_eval_episodes=EVAL_EPISODES,
                                          deterministic=True, warn=False)
                self.eval_time += time.perf_counter() - t0
                self.history.append({"step": self.num_timesteps, "eval_return_mean": float(mean),
                                     "train_time_s": time.perf_counter() - self.start - self.eval_time})
            return True

    model = sb3_dqn_model(seed, hp)
    callback = TimedEval()
    t0 = time.perf_counter()
    model.learn(total_timesteps=total_steps, callback=callback)
    wall = time.perf_counter() - t0 - callback.eval_time
    mean, _ = evaluate_policy(model, callback.eval_env, n_eval_episodes=EVAL_EPISODES, deterministic=True,
                              warn=False)
    return {"wall_time_s": wall, "sps": total_steps / wall, "eval_return_mean": float(mean),
            "evaluations": callback.history}


# ----------------------------------------------------------------------------- workloads

def dqn_fixed(seed: int, steps: int) -> list[str]:
    """deeprl's overrides for part (b) of dqn-cartpole: DQN_SAME for `steps`, no evaluation until the end."""
    return [*DQN_SAME, f"seed={seed}", f"total_steps={steps}", "eval.every=0", f"eval.episodes={EVAL_EPISODES}"]


def dqn_cartpole(seeds: list[int]) -> list[str]:
    lines = ["## DQN on CartPole-v1", ""]

    # (a) time to solve, each with its own tuned settings.
    rows, ours, theirs = [], [], []
    for seed in seeds:
        d = deeprl_run(["algo=dqn", "env=cartpole", f"seed={seed}", f"eval.every={EVAL_EVERY}",
                        f"eval.episodes={EVAL_EPISODES}"])
        s = sb3_dqn(seed, ZOO_DQN_CARTPOLE["n_timesteps"], ZOO_DQN_CARTPOLE, EVAL_EVERY)
        (dt, dstep), (st, sstep) = first_solved(d["evaluations"]), first_solved(s["evaluations"])
        rows.append(f"| {seed} | {_fmt(dt)} ({dstep} steps) | {_fmt(st)} ({sstep} steps) | "
                    f"{d['eval_return_mean']:.0f} | {s['eval_return_mean']:.0f} |")
        ours.append(dt if dt is not None else float("inf"))
        theirs.append(st if st is not None else float("inf"))
        print(rows[-1], flush=True)
    ratio = statistics.median(ours) / statistics.median(theirs)
    lines += [f"Time to solve (training wall time until eval mean >= {SOLVED:.0f} over "
              f"{EVAL_EPISODES} episodes, evaluated every {EVAL_EVERY} steps; evaluation time excluded):",
              "", "| seed | deeprl s (steps) | SB3 s (steps) | deeprl final eval | SB3 final eval |",
              "| --- | --- | --- | --- | --- |", *rows, "",
              f"Median time to solve: deeprl {statistics.median(ours):.1f} s, "
              f"SB3 {statistics.median(theirs):.1f} s, ratio deeprl/SB3 = **{ratio:.2f}**", ""]

    # (b) fixed 50k steps, identical hyperparameters.
    steps = 50_000
    same = dqn_preset(DQN_SAME)  # SB3 learns for `steps` too: the same schedules
    rows, ours, theirs = [], [], []
    for seed in seeds:
        d = deeprl_run(dqn_fixed(seed, steps))
        s = sb3_dqn(seed, steps, same, eval_every=0)
        rows.append(f"| {seed} | {d['wall_time_s']:.1f} ({d['sps']:.0f}/s) | "
                    f"{s['wall_time_s']:.1f} ({s['sps']:.0f}/s) | {d['eval_return_mean']:.0f} | "
                    f"{s['eval_return_mean']:.0f} |")
        ours.append(d["wall_time_s"])
        theirs.append(s["wall_time_s"])
        print(rows[-1], flush=True)
    ratio = statistics.median(ours) / statistics.median(theirs)
    lines += [f"Fixed {steps} steps, identical hyperparameters (deeprl's preset, {same['num_envs']} envs, "
              "double DQN off, uniform random actions until learning starts as SB3 acts):",
              "", "| seed | deeprl s (steps/s) | SB3 s (steps/s) | deeprl final eval | SB3 final eval |",
              "| --- | --- | --- | --- | --- |", *rows, "",
              f"Median wall time: deeprl {statistics.median(ours):.1f} s, SB3 "
              f"{statistics.median(theirs):.1f} s, ratio deeprl/SB3 = **{ratio:.2f}**", ""]
    return lines


def dqn_breakout(seeds: list[int]) -> list[str]:
    """DQN on Breakout, Nature CNN, CPU: steps/s while learning, deeprl vs SB3 on identical settings."""
    import torch

    from deeprl.core.device import keep_freed_memory

    steps, starts, freq, batch = 6_000, 1_000, 4, 32
    threads = torch.get_num_threads()
    common = ["algo=dqn", "env=breakout", f"total_steps={steps}", f"algo.learning_starts={starts}",
              f"algo.train_freq={freq}", f"algo.batch_size={batch}", "algo.buffer_size=10000", "eval.every=0",
              "eval.episodes=1", "env.repeat_action_probability=0.0", f"threads={threads}", "device=cpu"]
    seed = seeds[0]
    # SB3 first: deeprl tunes the process's allocator (keep_freed_memory), and that stays in effect.
    sb3 = sb3_dqn_breakout(seed, steps, starts, freq, batch, threads)
    print(f"SB3 {sb3:.0f} steps/s", flush=True)
    rows = []
    for name, extra in [("fp32", ["algo.precision=fp32", "network.channels_last=false"]),
                        ("fp32 + channels_last", ["algo.precision=fp32", "network.channels_last=true"]),
                        ("bf16 + channels_last", ["algo.precision=bf16", "network.channels_last=true"])]:
        d = deeprl_run([*common, f"seed={seed}", *extra])
        warm, floor, parts = breakout_floor([*common, *extra], steps)
        rows.append(f"| {name} | {d['sps']:.0f} | {floor:.0f} | **{d['sps'] / floor:.2f}** | {warm:.0f} ({parts}) | "
                    f"{d['sps'] / warm:.2f} | **{d['sps'] / sb3:.2f}** |")
        print(rows[-1], flush=True)
    keep_freed_memory()
    sb3_kept = sb3_dqn_breakout(seed, steps, starts, freq, batch, threads)
    return ["## DQN on Breakout (Nature CNN, CPU)", "",
            f"{steps} steps, learning starts {starts}, train every {freq}, batch {batch}, buffer 10k, "
            f"{threads} torch threads, NoFrameskip-v4 protocol (no sticky actions), seed {seed}.", "",
            f"SB3 (its NatureCNN `CnnPolicy`, SB3's Atari wrappers): **{sb3:.0f} steps/s**; "
            f"{sb3_kept:.0f} steps/s when run after deeprl has set the allocator to keep freed memory "
            f"(deeprl / that = {d['sps'] / sb3_kept:.2f} for the last row).", "",
            "| deeprl setting | deeprl steps/s | floor steps/s | deeprl / floor | isolated floor steps/s "
            "(env, act, update ms) | deeprl / isolated | deeprl / SB3 |",
            "| --- | --- | --- | --- | --- | --- | --- |", *rows, "",
            "isolated floor: the steps/s of a loop that did nothing but the env steps, the greedy forward "
            "passes (the run's epsilon schedule) and the updates (batches sampled beforehand from a real "
            "buffer), each timed back to back in the same process and settings. floor: the same work "
            "interleaved as any DQN loop must run it (env step, forward pass, an update every "
            f"{freq} steps), without replay, logging or schedules; the env step evicts the network from "
            "the caches, so the forward pass and update after it cost more than back to back.", ""]


def breakout_floor(overrides: list[str], steps: int) -> tuple[float, float, str]:
    """Steps/s of a loop that costs nothing beyond env steps, acting forward passes and updates:
    each timed back to back in isolation, and the three interleaved as a loop must run them."""
    import torch
    from hydra import compose, initialize_config_module

    from deeprl.build import build
    from deeprl.core.device import keep_freed_memory
    from deeprl.envs import make_vec_env

    with initialize_config_module("deeprl.conf", version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    with tempfile.TemporaryDirectory() as run_dir:
        run = build(cfg, Path(run_dir))
    torch.set_num_threads(int(cfg.threads))  # as Run.execute does
    keep_freed_memory()
    agent, envs, algo = run.agent, run.envs, cfg.algo
    buffer = run.loop.buffer  # the run's own replay, as build made it
    rng = np.random.default_rng(0)
    obs, _ = envs.reset(seed=0)
    n_env = 1500
    t0 = time.perf_counter()
    for _ in range(n_env):
        actions = rng.integers(0, envs.single_action_space.n, size=1)
        next_obs, rewards, terminated, truncated, infos = envs.step(actions)
        buffer.add(obs, actions, rewards, next_obs, terminated, truncated)  # final obs aside: timing only
        obs = next_obs
    env_step = (time.perf_counter() - t0) / n_env  # includes buffer.add, a small share
    envs.close()

    obs_t = torch.from_numpy(obs)
    with torch.inference_mode():
        for _ in range(20):
            agent.q(obs_t).argmax(dim=1)
        t0 = time.perf_counter()
        for _ in range(200):
            agent.q(obs_t).argmax(dim=1)
        act = (time.perf_counter() - t0) / 200
    batches = [buffer.sample(algo.batch_size, rng) for _ in range(40)]
    for b in batches[:5]:
        agent.update(b, 1)
    t0 = time.perf_counter()
    for b in batches:
        agent.update(b, 1)
    update = (time.perf_counter() - t0) / len(batches)
    greedy_steps = sum(1 - agent.epsilon(t) for t in range(steps))  # the run's epsilon schedule
    n_updates = (steps - algo.learning_starts) // algo.train_freq
    total = steps * env_step + greedy_steps * act + n_updates * update

    # The same work in the order a DQN loop must do it: the env step evicts the network from the
    # caches and the idle torch threads go to sleep, so a forward pass right after one costs more
    # than back to back (measured 1.4 vs 0.7 ms). Nothing else: no replay, logging or schedules.
    envs = make_vec_env(cfg.env, 1, 0)
    obs, _ = envs.reset(seed=0)
    n_loop = 2000
    t0 = time.perf_counter()
    for t in range(n_loop):
        obs, *_ = envs.step(_greedy(agent, obs))
        if t % algo.train_freq == 0:
            agent.update(batches[t % len(batches)], 1)
    per_step_loop = (time.perf_counter() - t0) / n_loop  # all greedy, one update per train_freq steps
    envs.close()
    # How much the interleaving inflates the isolated costs, applied to the run's mix of random
    # and greedy steps and its number of updates.
    inflation = per_step_loop * algo.train_freq / (algo.train_freq * (env_step + act) + update)
    costs = f"{env_step * 1e3:.2f}, {act * 1e3:.2f}, {update * 1e3:.1f}"
    return steps / total, steps / (total * inflation), costs


def _greedy(agent, obs):
    import torch

    with torch.inference_mode():
        return agent.q(torch.from_numpy(obs)).argmax(dim=1).numpy()


def sb3_dqn_breakout(seed: int, steps: int, starts: int, freq: int, batch: int, threads: int) -> float:
    import ale_py
    import gymnasium as gym
    import torch
    from stable_baselines3 import DQN
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.vec_env import VecFrameStack

    gym.register_envs(ale_py)
    torch.set_num_threads(threads)
    env = VecFrameStack(make_atari_env("BreakoutNoFrameskip-v4", n_envs=1, seed=seed), n_stack=4)
    model = DQN("CnnPolicy", env, buffer_size=10_000, learning_starts=starts, train_freq=freq,
                batch_size=batch, optimize_memory_usage=False, seed=seed, device="cpu", verbose=0)
    t0 = time.perf_counter()
    model.learn(total_timesteps=steps)
    return steps / (time.perf_counter() - t0)


# ----------------------------------------------------------------------------- PPO

PPO_VARIANTS = {
    "8env": ("8 envs × 32 steps (the preset)", []),
    "1env": ("1 env × 256 steps", ["num_envs=1", "algo.n_steps=256"]),
}


def ppo_preset(overrides: list[str]) -> dict:
    """deeprl's tuned PPO CartPole settings (plus `overrides`), as plain values for both libraries."""
    from hydra import compose, initialize_config_module

    with initialize_config_module("deeprl.conf", version_base="1.3"):
        cfg = compose("config", overrides=["algo=ppo", "env=cartpole", *overrides])
    a, net = cfg.algo, cfg.network
    # What SB3's PPO does too (or cannot do otherwise): keep the comparison like for like.
    assert not a.shared_torso and a.ortho_init and not a.clip_vloss and a.norm_adv and a.target_kl is None
    assert a.reward_scale == 1.0 and not a.normalize_obs and a.deterministic_eval
    return dict(num_envs=int(cfg.num_envs), n_steps=int(a.n_steps), n_epochs=int(a.n_epochs),
                batch_size=int(a.n_steps * cfg.num_envs // a.num_minibatches), gamma=float(a.gamma),
                gae_lambda=float(a.gae_lambda), lr=float(a.lr), anneal_lr=bool(a.anneal_lr),
                clip=float(a.clip_coef), ent_coef=float(a.ent_coef), vf_coef=float(a.vf_coef),
                max_grad_norm=float(a.max_grad_norm), adam_eps=float(a.adam_eps),
                hidden=list(net.hidden_sizes), activation=str(net.activation))


def ppo_fixed(seed: int, steps: int, overrides: list[str]) -> list[str]:
    """deeprl's overrides for a ppo-cartpole run: the preset, then `overrides`, for `steps`."""
    return ["algo=ppo", "env=cartpole", *overrides, f"seed={seed}", f"total_steps={steps}",
            "eval.every=0", f"eval.episodes={EVAL_EPISODES}", "threads=1"]


def deeprl_ppo(seed: int, steps: int, overrides: list[str]) -> dict:
    summary = deeprl_run(ppo_fixed(seed, steps, overrides))
    return {"wall_time_s": summary["wall_time_s"], "sps": summary["sps"],
            "eval_return_mean": summary["eval_return_mean"]}


def sb3_ppo_model(seed: int, hp: dict):
    """SB3's PPO on CartPole-v1 with `hp` (the keys of `ppo_preset`), on the CPU with one torch thread."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    torch.set_num_threads(1)  # as deeprl's preset (threads: 1): a like-for-like CPU budget
    lr = hp["lr"]
    schedule = (lambda progress_remaining: lr * progress_remaining) if hp["anneal_lr"] else lr
    activation = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}[hp["activation"]]
    envs = make_vec_env("CartPole-v1", n_envs=hp["num_envs"], seed=seed)
    return PPO("MlpPolicy", envs, learning_rate=schedule, n_steps=hp["n_steps"], batch_size=hp["batch_size"],
               n_epochs=hp["n_epochs"], gamma=hp["gamma"], gae_lambda=hp["gae_lambda"], clip_range=hp["clip"],
               ent_coef=hp["ent_coef"], vf_coef=hp["vf_coef"], max_grad_norm=hp["max_grad_norm"],
               normalize_advantage=True,
               policy_kwargs={"net_arch": {"pi": hp["hidden"], "vf": hp["hidden"]},
                              "activation_fn": activation, "ortho_init": True,
                              "optimizer_kwargs": {"eps": hp["adam_eps"]}},
               seed=seed, device="cpu", verbose=0)


def sb3_ppo(seed: int, steps: int, hp: dict) -> dict:
    return sb3_final(sb3_ppo_model(seed, hp), steps, "CartPole-v1", EVAL_EPISODES)


def sb3_final(model, steps: int, env_id: str, episodes: int) -> dict:
    """Train `model` for `steps`, then its greedy return over `episodes` on a fresh env."""
    import gymnasium as gym
    from stable_baselines3.common.evaluation import evaluate_policy

    t0 = time.perf_counter()
    model.learn(total_timesteps=steps)
    wall = time.perf_counter() - t0
    mean, _ = evaluate_policy(model, gym.make(env_id), n_eval_episodes=episodes, deterministic=True, warn=False)
    model.get_env().close()
    return {"wall_time_s": wall, "sps": steps / wall, "eval_return_mean": float(mean)}


def final_returns_side_by_side(name: str, seeds: list[int], steps: int, episodes: int, overrides: list[str],
                               sb3_model, env_id: str) -> tuple[list[str], list[tuple[dict, dict]], dict]:
    """Per seed, deeprl's run on `overrides` and SB3's `sb3_model(seed)`, each trained for `steps` and
    its greedy policy scored over `episodes`: the table rows, the (deeprl, SB3) results, and the
    medians {"wall_time_s" | "eval_return_mean": [deeprl, SB3]}."""
    rows, results = [], []
    for seed in seeds:
        run = [*overrides, f"seed={seed}", f"total_steps={steps}", "eval.every=0", f"eval.episodes={episodes}",
               "threads=1"]
        # Alternate the order so drift in machine load does not favour one library.
        if not seed % 2:
            s = sb3_final(sb3_model(seed), steps, env_id, episodes)
        d = deeprl_run(run)
        if seed % 2:
            s = sb3_final(sb3_model(seed), steps, env_id, episodes)
        results.append((d, s))
        rows.append(f"| {seed} | {d['wall_time_s']:.1f} | {s['wall_time_s']:.1f} | "
                    f"{d['wall_time_s'] / s['wall_time_s']:.2f} | {d['eval_return_mean']:.1f} | "
                    f"{s['eval_return_mean']:.1f} |")
        print(f"{name} {rows[-1]}", flush=True)
    med = {k: [statistics.median(r[i][k] for r in results) for i in (0, 1)]
           for k in ("wall_time_s", "eval_return_mean")}
    return rows, results, med


def ppo_cartpole(seeds: list[int], steps: int = 100_000) -> list[str]:
    """PPO on CartPole-v1, fixed step budget, identical hyperparameters, in two rollout shapes."""
    variants = list(PPO_VARIANTS)
    hp = ppo_preset([])
    lines = [f"## PPO on CartPole-v1 ({steps // 1000}k steps, identical hyperparameters)", "",
             "deeprl's preset `conf/tuned/ppo_cartpole.yaml` in both libraries "
             f"({hp['n_epochs']} epochs of one {hp['n_steps'] * hp['num_envs']}-sample minibatch per rollout, "
             f"γ {hp['gamma']}, λ {hp['gae_lambda']}, lr {hp['lr']:g}{' annealed' if hp['anneal_lr'] else ''}, "
             f"clip {hp['clip']}, separate {'-'.join(map(str, hp['hidden']))} {hp['activation']} actor and "
             "critic), one torch thread each; training wall time, evaluation excluded; final greedy "
             f"evaluation over {EVAL_EPISODES} episodes.", ""]
    results, ratios = {}, {}
    for variant in variants:
        title, overrides = PPO_VARIANTS[variant]
        hp = ppo_preset(overrides)
        rows, results[variant] = [], []
        for seed in seeds:
            # Alternate the order so drift in machine load does not favour one library.
            if seed % 2:
                d, s = deeprl_ppo(seed, steps, overrides), sb3_ppo(seed, steps, hp)
            else:
                s, d = sb3_ppo(seed, steps, hp), deeprl_ppo(seed, steps, overrides)
            ratio = d["wall_time_s"] / s["wall_time_s"]
            results[variant].append({"seed": seed, "deeprl": d, "sb3": s, "ratio": ratio})
            rows.append(f"| {seed} | {d['wall_time_s']:.1f} ({d['sps']:.0f}/s) | {s['wall_time_s']:.1f} "
                        f"({s['sps']:.0f}/s) | {ratio:.2f} | {d['eval_return_mean']:.0f} | "
                        f"{s['eval_return_mean']:.0f} |")
            print(f"{variant} {rows[-1]}", flush=True)
        ours = statistics.median(r["deeprl"]["wall_time_s"] for r in results[variant])
        theirs = statistics.median(r["sb3"]["wall_time_s"] for r in results[variant])
        ratios[variant] = ours / theirs
        lines += [f"### {title}", "",
                  "| seed | deeprl s (steps/s) | SB3 s (steps/s) | deeprl/SB3 | deeprl final eval | SB3 final eval |",
                  "| --- | --- | --- | --- | --- | --- |", *rows, "",
                  f"Median wall time: deeprl {ours:.1f} s, SB3 {theirs:.1f} s, ratio deeprl/SB3 = "
                  f"**{ours / theirs:.2f}**", ""]
    return lines


# RL-Zoo (hyperparams/a2c.yml), LunarLander-v2; what it leaves out is SB3's A2C defaults, which are
# deeprl's too (separate 64-64 tanh actor and critic, RMSprop, n-step returns, vf 0.5, clip 0.5).
A2C_LUNARLANDER = ["algo=a2c", "env=lunarlander", "num_envs=8", "algo.n_steps=5", "algo.gamma=0.995",
                   "algo.lr=8.3e-4", "algo.anneal_lr=true", "algo.ent_coef=1e-5",
                   "network.hidden_sizes=[64,64]", "network.activation=tanh"]
A2C_EVAL_EPISODES = 50


def a2c_preset(overrides: list[str]) -> dict:
    """deeprl's A2C settings (`overrides` composed) as plain values for both libraries. Asserts what
    SB3's A2C does too, so the comparison stays like for like."""
    from hydra import compose, initialize_config_module

    with initialize_config_module("deeprl.conf", version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    a, net = cfg.algo, cfg.network
    assert a.optimizer == "rmsprop" and a.rms_alpha == 0.99 and not a.norm_adv and not a.shared_torso
    assert a.ortho_init and a.reward_scale == 1.0 and not a.normalize_obs and a.deterministic_eval
    return dict(env_id=str(cfg.env.id), num_envs=int(cfg.num_envs), n_steps=int(a.n_steps),
                gamma=float(a.gamma), gae_lambda=float(a.gae_lambda), lr=float(a.lr),
                anneal_lr=bool(a.anneal_lr), ent_coef=float(a.ent_coef), vf_coef=float(a.vf_coef),
                max_grad_norm=float(a.max_grad_norm), optim_eps=float(a.optim_eps),
                hidden=list(net.hidden_sizes), activation=str(net.activation))


def sb3_a2c_model(seed: int, hp: dict):
    """SB3's A2C with `hp` (the keys of `a2c_preset`), on the CPU with one torch thread."""
    import torch
    from stable_baselines3 import A2C
    from stable_baselines3.common.env_util import make_vec_env

    torch.set_num_threads(1)
    lr = hp["lr"]
    schedule = (lambda progress_remaining: lr * progress_remaining) if hp["anneal_lr"] else lr
    activation = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}[hp["activation"]]
    envs = make_vec_env(hp["env_id"], n_envs=hp["num_envs"], seed=seed)
    # use_rms_prop gives RMSprop(alpha=0.99, eps=rms_prop_eps), as deeprl's optimizer=rmsprop.
    return A2C("MlpPolicy", envs, learning_rate=schedule, n_steps=hp["n_steps"], gamma=hp["gamma"],
               gae_lambda=hp["gae_lambda"], ent_coef=hp["ent_coef"], vf_coef=hp["vf_coef"],
               max_grad_norm=hp["max_grad_norm"], use_rms_prop=True, rms_prop_eps=hp["optim_eps"],
               normalize_advantage=False,
               policy_kwargs={"net_arch": {"pi": hp["hidden"], "vf": hp["hidden"]},
                              "activation_fn": activation, "ortho_init": True},
               seed=seed, device="cpu", verbose=0)


def a2c_lunarlander(seeds: list[int], steps: int = 200_000) -> list[str]:
    """A2C on LunarLander-v3 with RL-Zoo's settings in both libraries: wall time and final return."""
    hp = a2c_preset(A2C_LUNARLANDER)
    rows, _, med = final_returns_side_by_side("a2c-lunarlander", seeds, steps, A2C_EVAL_EPISODES, A2C_LUNARLANDER,
                                              lambda seed: sb3_a2c_model(seed, hp), hp["env_id"])
    return [f"## A2C on LunarLander-v3 ({steps // 1000}k steps, RL-Zoo's settings in both libraries)", "",
            f"{hp['num_envs']} envs x {hp['n_steps']} steps per update, γ {hp['gamma']}, lr {hp['lr']:g} "
            f"annealed to 0, entropy {hp['ent_coef']:g}, separate {'-'.join(map(str, hp['hidden']))} "
            f"{hp['activation']} actor and critic, RMSprop; one torch thread each; training wall time, "
            f"evaluation excluded; final greedy return over {A2C_EVAL_EPISODES} episodes.", "",
            "| seed | deeprl s | SB3 s | deeprl/SB3 | deeprl final return | SB3 final return |",
            "| --- | --- | --- | --- | --- | --- |", *rows, "",
            f"Medians: wall time deeprl {med['wall_time_s'][0]:.1f} s, SB3 {med['wall_time_s'][1]:.1f} s "
            f"(ratio **{med['wall_time_s'][0] / med['wall_time_s'][1]:.2f}**); final return deeprl "
            f"{med['eval_return_mean'][0]:.1f}, SB3 {med['eval_return_mean'][1]:.1f}", ""]


# deeprl's MountainCar preset (RL-Zoo's settings with the learning rate annealed), acting uniformly
# at random until learning starts as SB3's DQN does (the preset's epsilon is 0.96 by then anyway).
DQN_MOUNTAINCAR = ["algo=dqn", "env=mountaincar", "algo.random_starts=true"]
MOUNTAINCAR_SOLVED = -110.0


def dqn_mountaincar(seeds: list[int], steps: int = 120_000, episodes: int = 50) -> list[str]:
    """DQN on MountainCar-v0 with deeprl's preset in both libraries: wall time and final return."""
    hp = dqn_preset(DQN_MOUNTAINCAR)
    rows, results, med = final_returns_side_by_side("dqn-mountaincar", seeds, steps, episodes, DQN_MOUNTAINCAR,
                                                    lambda seed: sb3_dqn_model(seed, hp), hp["env_id"])
    reached = [sum(r[i]["eval_return_mean"] >= MOUNTAINCAR_SOLVED for r in results) for i in (0, 1)]
    return [f"## DQN on MountainCar-v0 ({steps // 1000}k steps, deeprl's preset in both libraries)", "",
            f"{hp['gradient_steps']} updates of {hp['batch_size']} every {hp['train_freq']} steps, target every "
            f"{hp['target_update_interval']} steps, γ {hp['gamma']}, lr {hp['learning_rate']:g}"
            f"{' annealed to 0' if hp['anneal_lr'] else ''}, ε to {hp['exploration_final_eps']} over the first "
            f"{hp['exploration_fraction']:.0%}, {'-'.join(map(str, hp['net_arch']))} {hp['activation']}; one env "
            f"and one torch thread each; training wall time, evaluation excluded; final greedy return over "
            f"{episodes} episodes.", "",
            "| seed | deeprl s | SB3 s | deeprl/SB3 | deeprl final return | SB3 final return |",
            "| --- | --- | --- | --- | --- | --- |", *rows, "",
            f"Medians: wall time deeprl {med['wall_time_s'][0]:.1f} s, SB3 {med['wall_time_s'][1]:.1f} s "
            f"(ratio **{med['wall_time_s'][0] / med['wall_time_s'][1]:.2f}**); final return deeprl "
            f"{med['eval_return_mean'][0]:.1f}, SB3 {med['eval_return_mean'][1]:.1f}; at or above "
            f"{MOUNTAINCAR_SOLVED:.0f}: deeprl {reached[0]} of {len(results)}, SB3 {reached[1]} of {len(results)}", ""]


TAXI_PRESET = ["algo=q_learning", "env=taxi"]


def taxi_greedy_return(Q: np.ndarray, episodes: int = 100) -> float:
    """Mean return of the greedy policy (first action on ties) over seeded Taxi episodes."""
    import gymnasium as gym

    env, total = gym.make("Taxi-v4"), 0.0
    for episode in range(episodes):
        obs, _ = env.reset(seed=50_000 + episode)
        done = False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(int(np.argmax(Q[obs])))
            total += reward
            done = terminated or truncated
    return total / episodes


def plain_q_learning(seed: int, steps: int, alpha: float, gamma: float, eps_start: float, eps_end: float,
                     fraction: float) -> tuple[float, np.ndarray]:
    """The loop of Gymnasium's Q-learning tutorials: one env, a numpy table, argmax, nothing logged."""
    import gymnasium as gym

    env = gym.make("Taxi-v4")
    Q = np.zeros((env.observation_space.n, env.action_space.n))
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    start = time.perf_counter()
    for step in range(steps):
        eps = eps_start + min(step / (fraction * steps), 1.0) * (eps_end - eps_start)
        action = int(rng.integers(env.action_space.n)) if rng.random() < eps else int(np.argmax(Q[obs]))
        next_obs, reward, terminated, truncated, _ = env.step(action)
        target = reward + (0.0 if terminated else gamma * Q[next_obs].max())
        Q[obs, action] += alpha * (target - Q[obs, action])
        obs = env.reset()[0] if terminated or truncated else next_obs
    return time.perf_counter() - start, Q


def taxi_env_floor(seed: int, steps: int) -> float:
    """Seconds for `steps` steps of the env alone, random actions, resets included."""
    import gymnasium as gym

    env, rng = gym.make("Taxi-v4"), np.random.default_rng(seed)
    env.reset(seed=seed)
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(int(rng.integers(6)))
        if terminated or truncated:
            env.reset()
    return time.perf_counter() - start


def q_learning_taxi(seeds: list[int]) -> list[str]:
    rows, ratios = [], []
    for seed in seeds:
        ours, run = deeprl_executed([*TAXI_PRESET, f"seed={seed}"])
        steps, algo = int(run.cfg.total_steps), run.cfg.algo
        theirs, plain_Q = plain_q_learning(seed, steps, algo.alpha, algo.gamma, algo.exploration.start,
                                           algo.exploration.end, algo.exploration.fraction)
        floor = taxi_env_floor(seed, steps)
        ratios.append(ours["wall_time_s"] / theirs)
        rows.append(f"| {seed} | {ours['sps']:.0f} | {steps / theirs:.0f} | {steps / floor:.0f} | {ratios[-1]:.2f} | "
                    f"{taxi_greedy_return(run.agent.Q):.2f} | {taxi_greedy_return(plain_Q):.2f} |")
        print(f"q-learning-taxi {rows[-1]}", flush=True)
    return ["### Tabular Q-learning on Taxi-v4 (tuned preset, 100k steps)", "",
            "| seed | deeprl steps/s | plain loop steps/s | env alone steps/s | deeprl/plain time | "
            "deeprl greedy return | plain greedy return |", "| --- | --- | --- | --- | --- | --- | --- |", *rows, "",
            f"Median deeprl/plain time ratio: **{statistics.median(ratios):.2f}**", ""]


def _fmt(t):
    return "not solved" if t is None else f"{t:.1f}"


DETERMINISTIC_RUNS = {
    "DQN CartPole, tuned preset, 20k steps": ["algo=dqn", "env=cartpole", "total_steps=20000"],
    "PPO CartPole, tuned preset, 40k steps": ["algo=ppo", "env=cartpole", "total_steps=40000"],
    "DQN Breakout, 3k steps (learning from 1k)": ["algo=dqn", "env=breakout", "total_steps=3000",
                                                  "algo.learning_starts=1000", "algo.buffer_size=5000",
                                                  "env.max_frames=4000", "threads=1"],
}


def deterministic(seeds: list[int]) -> list[str]:
    """deeprl alone: steps/s with deterministic=false and true, once per seed, in turn (the
    order alternates from seed to seed, so a drift of the machine does not favour one)."""
    sps: dict[tuple[str, str], list[float]] = {}
    for i, seed in enumerate(seeds):
        for flag in (("false", "true") if i % 2 == 0 else ("true", "false")):  # either order
            for name, overrides in DETERMINISTIC_RUNS.items():
                summary = deeprl_run([*overrides, f"deterministic={flag}", f"seed={seed}", "device=cpu",
                                      "eval.every=0", "eval.episodes=1"])
                sps.setdefault((name, flag), []).append(summary["sps"])
    lines = ["### deterministic=false vs true (deeprl, CPU, steps/s per seed)", "",
             "| workload | deterministic=false | deterministic=true |", "| --- | --- | --- |"]
    for name in DETERMINISTIC_RUNS:
        cells = [", ".join(f"{v:.0f}" for v in sps[(name, flag)]) for flag in ("false", "true")]
        lines.append(f"| {name} | {cells[0]} | {cells[1]} |")
    return [*lines, ""]


# (deeprl overrides, SB3's class and keyword arguments): one env, 300 steps, the same networks,
# batches and update cadence (deeprl's presets; learning from step 100, PPO rollouts of 64 steps).
STARTUP_RUNS = {
    "DQN CartPole": (["algo=dqn", "env=cartpole", "num_envs=1", "algo.learning_starts=100"], "DQN",
                     "'CartPole-v1', learning_starts=100, batch_size=64, train_freq=4, "
                     "policy_kwargs=dict(net_arch=[128, 128])"),
    "PPO CartPole": (["algo=ppo", "env=cartpole", "num_envs=1", "algo.n_steps=64"], "PPO",
                     "'CartPole-v1', n_steps=64, batch_size=64, n_epochs=10"),
    "SAC Pendulum": (["algo=sac", "env=pendulum", "algo.learning_starts=100"], "SAC",
                     "'Pendulum-v1', learning_starts=100, batch_size=256, policy_kwargs=dict(net_arch=[64, 64])"),
}


def wall(command: list[str], cwd: str) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def startup(seeds: list[int]) -> list[str]:
    """deeprl's `train` and SB3 in fresh processes, the same 300 steps (see the module's docstring)."""
    train = str(Path(sys.executable).parent / "train")
    times: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as cwd:
        for i, seed in enumerate(seeds):
            for name, (overrides, algo, args) in STARTUP_RUNS.items():
                ours = [train, *overrides, "total_steps=300", "eval.every=0", "eval.episodes=1", "log.progress=false",
                        f"seed={seed}", "device=cpu", f"hydra.run.dir=run_{name.replace(' ', '_')}_{seed}"]
                theirs = [sys.executable, "-c", f"import torch; torch.set_num_threads(1)\n"
                          f"from stable_baselines3 import {algo}\n"
                          f"{algo}('MlpPolicy', {args}, seed={seed}, device='cpu').learn(300)"]
                for lib, command in (("deeprl", ours), ("sb3", theirs))[:: 1 if i % 2 == 0 else -1]:
                    times.setdefault((name, lib), []).append(wall(command, cwd))
    lines = ["### From the command to a trained agent, 300 steps (fresh processes, wall s per seed)", "",
             "| run | deeprl `train` | SB3 | deeprl/SB3 (median) |", "| --- | --- | --- | --- |"]
    for name in STARTUP_RUNS:
        ours, theirs = times[(name, "deeprl")], times[(name, "sb3")]
        ratio = statistics.median(ours) / statistics.median(theirs)
        lines.append(f"| {name} | {', '.join(f'{t:.2f}' for t in ours)} | {', '.join(f'{t:.2f}' for t in theirs)} "
                     f"| {ratio:.2f} |")
    return [*lines, ""]


WORKLOADS = {"dqn-cartpole": dqn_cartpole, "dqn-breakout": dqn_breakout, "ppo-cartpole": ppo_cartpole,
             "a2c-lunarlander": a2c_lunarlander, "dqn-mountaincar": dqn_mountaincar,
             "ddpg-pendulum": ddpg_pendulum, "td3-pendulum": td3_pendulum, "sac-pendulum": sac_pendulum,
             "sac-halfcheetah": sac_halfcheetah, "q-learning-taxi": q_learning_taxi, "deterministic": deterministic,
             "startup": startup}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workloads", nargs="*", help=f"any of {', '.join(WORKLOADS)} (default: all)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--out", type=Path, help="also write the markdown report here")
    args = parser.parse_args(argv)
    unknown = [name for name in args.workloads if name not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workload {unknown[0]!r}; choose from {', '.join(WORKLOADS)}")
    try:
        import stable_baselines3  # noqa: F401
    except ImportError:
        sys.exit("benchmark: stable-baselines3 is missing; install the bench extra: pip install -e '.[bench]'")
    lines = [f"Machine: {machine()}", f"Command: python scripts/benchmark.py {' '.join(sys.argv[1:])}", ""]
    for name in args.workloads or list(WORKLOADS):
        lines += WORKLOADS[name](args.seeds)
    report = "\n".join(lines)
    print(report)
    if args.out:
        args.out.write_text(report + "\n")


if __name__ == "__main__":
    main()
