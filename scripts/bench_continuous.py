"""DDPG, TD3 and SAC: deeprl vs Stable-Baselines3 with identical hyperparameters, as ratios.

The workloads of scripts/benchmark.py for the continuous-action agents (ddpg-pendulum,
td3-pendulum, sac-pendulum, sac-halfcheetah); each takes the seeds and returns markdown lines.
Every hyperparameter SB3 gets is read from deeprl's composed config (its tuned preset plus any
`overrides`), so a quick check can shrink a workload in both libraries at once:

    .venv/bin/python -c "import sys; sys.path.insert(0, 'scripts'); from bench_continuous import sac_pendulum; \
print('\\n'.join(sac_pendulum([1], steps=600, overrides=['algo.learning_starts=100', 'eval.episodes=2'])))"

This module imports nothing from benchmark.py (which imports it).
"""

import contextlib
import io
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

# Run settings for deeprl that are not hyperparameters: the CPU with one torch thread (as SB3 gets),
# no evaluation or checkpoint during training (SB3 does neither inside `learn`).
RUN = ["device=cpu", "threads=1", "eval.every=0", "checkpoint.every_minutes=0", "log.progress=false"]
TARGET = 0.5  # deeprl's wall time / SB3's, at most


def deeprl_config(algo: str, env: str, seed: int, steps: int, overrides=()):
    """deeprl's config for `algo` on `env`: its tuned preset, then `overrides`."""
    from hydra import compose, initialize_config_module

    with initialize_config_module("deeprl.conf", version_base="1.3"):
        return compose("config", overrides=[f"algo={algo}", f"env={env}", f"seed={seed}",
                                            f"total_steps={steps}", *RUN, *overrides])


def deeprl_train(cfg) -> dict:
    from deeprl.build import build

    with tempfile.TemporaryDirectory() as run_dir, contextlib.redirect_stdout(io.StringIO()):
        summary = build(cfg, Path(run_dir)).execute()
    return {"wall_time_s": summary["wall_time_s"], "sps": summary["sps"],
            "eval_return_mean": summary["eval_return_mean"]}


def resolved_products(cfg) -> str:
    """What deeprl's `algo.precision` and `algo.cpu_gemm` come to on this CPU for the config's
    networks, in words: "bf16", "fp32 (torch's matmul)" or "fp32 (oneDNN's matmul)"."""
    import torch

    from deeprl.core.device import bf16_pays_for_mlp, resolve_cpu_gemm, resolve_precision

    cpu, wide = torch.device("cpu"), bf16_pays_for_mlp(cfg.network.hidden_sizes)
    precision = resolve_precision(str(cfg.algo.precision), cpu, large=wide)
    if precision != "fp32":
        return precision
    gemm = resolve_cpu_gemm(str(cfg.algo.cpu_gemm), cpu, precision, large=wide)
    return f"fp32 ({'oneDNN' if gemm == 'onednn' else 'torch'}'s matmul)"


def sb3_hparams(cfg) -> dict:
    """deeprl's config as keyword arguments of SB3's DDPG / TD3 / SAC (`noise_std` aside: the
    action noise needs the env). Asserts what SB3 cannot reproduce."""
    import torch

    a, net = cfg.algo, cfg.network
    assert a.actor_lr == a.critic_lr, "SB3 has one learning rate for actor, critics (and SAC's α)"
    assert cfg.num_envs == 1 and a.replay and a.random_starts and a.n_step == 1 and not a.prioritized.enabled
    hp = dict(learning_rate=float(a.actor_lr), gamma=float(a.gamma), tau=float(a.tau),
              batch_size=int(a.batch_size), buffer_size=int(a.buffer_size),
              learning_starts=int(a.learning_starts), train_freq=int(a.train_freq),
              gradient_steps=int(a.gradient_steps),
              policy_kwargs=dict(net_arch=[int(s) for s in net.hidden_sizes],
                                 activation_fn={"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh}[net.activation]))
    if a.name == "sac":
        # SB3 counts target_update_interval in gradient steps of one train() call (0 % n == 0 with
        # gradient_steps=1): only an interval of 1 means the same in both.
        assert a.target_every == 1, "SB3's target_update_interval > 1 differs from deeprl's target_every"
        e = a.entropy
        return dict(hp, ent_coef=f"auto_{float(e.alpha)}" if e.autotune else float(e.alpha),
                    target_entropy="auto" if e.target is None else float(e.target),
                    target_update_interval=int(a.target_every))
    # SB3 adds its action noise in the [-1, 1]-scaled action space, where deeprl's std is expressed.
    assert a.exploration.noise == "gaussian", "only Gaussian exploration noise is mapped"
    hp["noise_std"] = float(a.exploration.std)
    if a.name == "ddpg":  # SB3's DDPG is TD3 with these fixed
        assert not a.twin_critics and a.policy_delay == 1 and a.target_noise == 0
        return hp
    assert a.twin_critics
    return dict(hp, policy_delay=int(a.policy_delay), target_policy_noise=float(a.target_noise),
                target_noise_clip=float(a.target_noise_clip))


def sb3_model(cfg, hp: dict):
    """SB3's DDPG / TD3 / SAC on the config's env with `hp` (from `sb3_hparams`), CPU, one torch thread."""
    import gymnasium as gym
    import stable_baselines3 as sb3
    import torch
    from stable_baselines3.common.noise import NormalActionNoise

    torch.set_num_threads(1)
    hp = dict(hp)
    env = gym.make(cfg.env.id)
    std = hp.pop("noise_std", None)
    if std is not None:
        dim = env.action_space.shape[0]
        hp["action_noise"] = NormalActionNoise(mean=np.zeros(dim), sigma=std * np.ones(dim))
    algo = {"ddpg": sb3.DDPG, "td3": sb3.TD3, "sac": sb3.SAC}[cfg.algo.name]
    return algo("MlpPolicy", env, seed=int(cfg.seed), device="cpu", verbose=0, **hp)


def sb3_train(cfg, hp: dict) -> dict:
    import gymnasium as gym
    from stable_baselines3.common.evaluation import evaluate_policy

    model, steps = sb3_model(cfg, hp), int(cfg.total_steps)
    t0 = time.perf_counter()
    model.learn(total_timesteps=steps)
    wall = time.perf_counter() - t0
    mean, _ = evaluate_policy(model, gym.make(cfg.env.id), n_eval_episodes=int(cfg.eval.episodes),
                              deterministic=True, warn=False)
    model.get_env().close()
    return {"wall_time_s": wall, "sps": steps / wall, "eval_return_mean": float(mean)}


def compare(algo: str, env: str, seeds: list[int], steps: int, overrides) -> tuple[list[str], list[dict]]:
    """Both libraries on each seed, the same hyperparameters; a markdown table and the results."""
    from deeprl.core.device import keep_freed_memory

    # deeprl sets the process's allocator to keep freed memory on its first run, and that stays in
    # effect: set it up front so every run of either library goes with the same allocator.
    keep_freed_memory()
    cfg = deeprl_config(algo, env, seeds[0], steps, overrides)
    a, hp = cfg.algo, sb3_hparams(cfg)
    if algo == "sac":
        e = a.entropy
        explore = (f"α {'learned from ' if e.autotune else ''}{e.alpha:g}"
                   f"{f' toward entropy {e.target}' if e.target is not None else ' toward −|A|'}")
    else:
        explore = f"Gaussian action noise σ {a.exploration.std:g}"
        if algo == "td3":
            explore += (f", policy delay {a.policy_delay}, target noise {a.target_noise:g} "
                        f"clipped at {a.target_noise_clip:g}")
    preset = f"conf/tuned/{algo}_{env}.yaml" + (f" + {' '.join(overrides)}" if overrides else "")
    products = resolved_products(cfg)
    lines = [f"## {algo.upper()} on {cfg.env.id} ({steps / 1000:g}k steps, identical hyperparameters)", "",
             f"deeprl's preset `{preset}` in both libraries (γ {a.gamma:g}, τ {a.tau:g}, lr {a.actor_lr:g}, "
             f"batch {a.batch_size}, buffer {a.buffer_size}, {a.learning_starts} uniformly random steps first, "
             f"one update per step, {'-'.join(map(str, hp['policy_kwargs']['net_arch']))} "
             f"{cfg.network.activation} actor and critics, {explore}), CPU, one torch thread each; deeprl's "
             f"hidden-to-hidden products in {products} (`algo.precision={a.precision}`, "
             f"`algo.cpu_gemm={a.cpu_gemm}`), SB3 in fp32; "
             "training wall time, evaluation excluded; final deterministic evaluation over "
             f"{cfg.eval.episodes} episodes.", ""]
    rows, results = [], []
    for seed in seeds:
        cfg = deeprl_config(algo, env, seed, steps, overrides)
        # Alternate the order so drift in machine load does not favour one library.
        if seed % 2:
            d, s = deeprl_train(cfg), sb3_train(cfg, hp)
        else:
            s, d = sb3_train(cfg, hp), deeprl_train(cfg)
        ratio = d["wall_time_s"] / s["wall_time_s"]
        results.append({"seed": seed, "deeprl": d, "sb3": s, "ratio": ratio, "cfg": cfg})
        rows.append(f"| {seed} | {d['wall_time_s']:.1f} ({d['sps']:.0f}/s) | {s['wall_time_s']:.1f} "
                    f"({s['sps']:.0f}/s) | {ratio:.2f} | {d['eval_return_mean']:.0f} | {s['eval_return_mean']:.0f} |")
        print(f"{algo}-{env} {rows[-1]}", flush=True)
    median = statistics.median(r["ratio"] for r in results)
    lines += ["| seed | deeprl s (steps/s) | SB3 s (steps/s) | deeprl/SB3 | deeprl final eval | SB3 final eval |",
              "| --- | --- | --- | --- | --- | --- |", *rows, "",
              f"Median wall-time ratio deeprl/SB3 over the seeds: **{median:.2f}** (target ≤ {TARGET})", ""]
    return lines, results


def ddpg_pendulum(seeds: list[int], steps: int = 20_000, overrides=()) -> list[str]:
    return compare("ddpg", "pendulum", seeds, steps, overrides)[0]


def td3_pendulum(seeds: list[int], steps: int = 20_000, overrides=()) -> list[str]:
    return compare("td3", "pendulum", seeds, steps, overrides)[0]


def sac_pendulum(seeds: list[int], steps: int = 20_000, overrides=()) -> list[str]:
    return compare("sac", "pendulum", seeds, steps, overrides)[0]


def sac_halfcheetah(seeds: list[int], steps: int = 50_000, overrides=(), k: int = 500) -> list[str]:
    """SAC on HalfCheetah-v5 against SB3 (the first seed only: one SB3 run takes ~10 minutes), and
    deeprl's steps/s while learning against the floor of its own update and act calls."""
    lines, results = compare("sac", "halfcheetah", seeds[:1], steps, overrides)
    r = results[0]
    cfg, wall = r["cfg"], r["deeprl"]["wall_time_s"]
    f = continuous_floor(cfg, k)
    starts = int(cfg.algo.learning_starts)
    # The run's learning phase: its wall time less the random first steps at their measured cost.
    learning = (steps - starts) / (wall - starts * f["random_step"])
    floor = 1 / (f["update"] + f["act"])
    with_env = 1 / (f["update"] + f["act"] + f["env_step"])
    lines += ["Floor: deeprl's own `agent.update` (on a freshly sampled batch of "
              f"{cfg.algo.batch_size}) and `agent.act` (one observation, exploring), each timed over {k} calls "
              "back to back in the same process and settings, from a buffer of "
              f"{f['filled']} random transitions; a step while learning needs one of each. deeprl's "
              "steps/s while learning: its wall time less the random first steps at their measured cost "
              f"({f['random_step'] * 1e3:.3f} ms each: env step + buffer add).", "",
              "| deeprl steps/s while learning | update ms | act ms | env step ms | floor steps/s "
              "(update + act) | deeprl / floor | floor with env step | deeprl / that |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |",
              f"| {learning:.0f} | {f['update'] * 1e3:.2f} | {f['act'] * 1e3:.3f} | {f['env_step'] * 1e3:.3f} | "
              f"{floor:.0f} | **{learning / floor:.2f}** | {with_env:.0f} | {learning / with_env:.2f} |", ""]
    return lines


def continuous_floor(cfg, k: int, fill: int = 10_000) -> dict:
    """Seconds per call of the work a learning step cannot avoid, measured on deeprl's own agent
    and replay as `build` makes them: update, act, env step; and a random first step (env + add)."""
    import torch

    from deeprl.build import build

    with tempfile.TemporaryDirectory() as run_dir:
        run = build(cfg, Path(run_dir))
    torch.set_num_threads(int(cfg.threads))  # as Run.execute does
    agent, envs, buffer = run.agent, run.envs, run.loop.buffer
    space, rng = envs.single_action_space, np.random.default_rng(0)
    fill = max(fill, int(cfg.algo.batch_size))

    def random_actions():
        return rng.uniform(space.low, space.high, size=(1, *space.shape)).astype(space.dtype)

    obs, _ = envs.reset(seed=0)
    t0 = time.perf_counter()
    for _ in range(fill):
        actions = random_actions()
        next_obs, rewards, terminated, truncated, _ = envs.step(actions)
        buffer.add(obs, actions, rewards, next_obs, terminated, truncated)  # final obs aside: timing only
        obs = next_obs
    random_step = (time.perf_counter() - t0) / fill
    actions = [random_actions() for _ in range(k)]
    t0 = time.perf_counter()
    for action in actions:
        obs, *_ = envs.step(action)
    env_step = (time.perf_counter() - t0) / k
    envs.close()

    step, batch_size = int(cfg.algo.learning_starts) + 1, int(cfg.algo.batch_size)
    for _ in range(10):  # warm-up: allocator, optimizer state
        agent.update(buffer.sample(batch_size, rng), step)
        agent.act(obs, step)
    t0 = time.perf_counter()
    for _ in range(k):
        agent.update(buffer.sample(batch_size, rng), step)
    update = (time.perf_counter() - t0) / k
    t0 = time.perf_counter()
    for _ in range(k):
        agent.act(obs, step)
    act = (time.perf_counter() - t0) / k
    return {"update": update, "act": act, "env_step": env_step, "random_step": random_step, "filled": fill}
