"""PPO on CartPole-v1, deeprl vs Stable-Baselines3, identical hyperparameters, fixed step budget.

    .venv/bin/python scripts/bench_ppo.py                  # both variants, seeds 1 2 3, 100k steps
    .venv/bin/python scripts/bench_ppo.py --variants 1env --seeds 1 --steps 50000

Both libraries train with deeprl's CartPole preset (conf/tuned/ppo_cartpole.yaml: RL-Zoo's CartPole
PPO settings with 10 epochs: one 256-sample minibatch per rollout, γ 0.98, λ 0.8, lr 1e-3 annealed
linearly, clip 0.2, separate 64-64 ReLU actor and critic, orthogonal init, advantage normalisation,
max grad norm 0.5) on one torch thread, in two rollout shapes:

  8env   the preset as it is: 8 envs × 32 steps per rollout
  1env   1 env × 256 steps per rollout (Stable-Baselines3's default env count)

Timed: training only (deeprl: the run's train time, evaluation excluded; SB3: `learn`). Both final
policies are then evaluated greedily on 10 episodes. The two shapes weigh the two halves of the
work differently: with 8 envs the per-step work is dominated by stepping the envs and the update by
PyTorch's kernels, which both libraries share; with one env per-step framework overhead dominates.

`run(args)` returns {"results": {variant: [per seed dict]}, "ratios": {variant: median ratio},
"lines": [markdown]} for scripts/benchmark.py. Needs the `bench` extra (pip install -e '.[bench]').
"""

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

EVAL_EPISODES = 10
VARIANTS = {
    "8env": ("8 envs × 32 steps (the preset)", []),
    "1env": ("1 env × 256 steps", ["num_envs=1", "algo.n_steps=256"]),
}


def preset(overrides: list[str]) -> dict:
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


def deeprl_ppo(seed: int, steps: int, overrides: list[str]) -> dict:
    from hydra import compose, initialize_config_module

    from deeprl.build import build

    overrides = ["algo=ppo", "env=cartpole", *overrides, f"seed={seed}", f"total_steps={steps}",
                 "eval.every=0", f"eval.episodes={EVAL_EPISODES}", "threads=1", "log.progress=false"]
    with initialize_config_module("deeprl.conf", version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    with tempfile.TemporaryDirectory() as run_dir, contextlib.redirect_stdout(io.StringIO()):
        summary = build(cfg, Path(run_dir)).execute()
    return {"wall_time_s": summary["wall_time_s"], "sps": summary["sps"],
            "eval_return_mean": summary["eval_return_mean"]}


def sb3_ppo(seed: int, steps: int, hp: dict) -> dict:
    import gymnasium as gym
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    torch.set_num_threads(1)  # as deeprl's preset (threads: 1): a like-for-like CPU budget
    lr = hp["lr"]
    schedule = (lambda progress_remaining: lr * progress_remaining) if hp["anneal_lr"] else lr
    activation = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}[hp["activation"]]
    envs = make_vec_env("CartPole-v1", n_envs=hp["num_envs"], seed=seed)
    model = PPO("MlpPolicy", envs, learning_rate=schedule, n_steps=hp["n_steps"], batch_size=hp["batch_size"],
                n_epochs=hp["n_epochs"], gamma=hp["gamma"], gae_lambda=hp["gae_lambda"], clip_range=hp["clip"],
                ent_coef=hp["ent_coef"], vf_coef=hp["vf_coef"], max_grad_norm=hp["max_grad_norm"],
                normalize_advantage=True,
                policy_kwargs={"net_arch": {"pi": hp["hidden"], "vf": hp["hidden"]},
                               "activation_fn": activation, "ortho_init": True,
                               "optimizer_kwargs": {"eps": hp["adam_eps"]}},
                seed=seed, device="cpu", verbose=0)
    t0 = time.perf_counter()
    model.learn(total_timesteps=steps)
    wall = time.perf_counter() - t0
    eval_env = gym.make("CartPole-v1")
    mean, _ = evaluate_policy(model, eval_env, n_eval_episodes=EVAL_EPISODES, deterministic=True, warn=False)
    envs.close()
    return {"wall_time_s": wall, "sps": steps / wall, "eval_return_mean": float(mean)}


def run(args) -> dict:
    seeds = list(getattr(args, "seeds", None) or [1, 2, 3])
    steps = int(getattr(args, "steps", None) or 100_000)
    variants = list(getattr(args, "variants", None) or VARIANTS)
    hp = preset([])
    lines = [f"## PPO on CartPole-v1 ({steps // 1000}k steps, identical hyperparameters)", "",
             "deeprl's preset `conf/tuned/ppo_cartpole.yaml` in both libraries "
             f"({hp['n_epochs']} epochs of one {hp['n_steps'] * hp['num_envs']}-sample minibatch per rollout, "
             f"γ {hp['gamma']}, λ {hp['gae_lambda']}, lr {hp['lr']:g}{' annealed' if hp['anneal_lr'] else ''}, "
             f"clip {hp['clip']}, separate {'-'.join(map(str, hp['hidden']))} {hp['activation']} actor and "
             "critic), one torch thread each; training wall time, evaluation excluded; final greedy "
             f"evaluation over {EVAL_EPISODES} episodes.", ""]
    results, ratios = {}, {}
    for variant in variants:
        title, overrides = VARIANTS[variant]
        hp = preset(overrides)
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
    return {"results": results, "ratios": ratios, "lines": lines}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--out", type=Path, help="also write the markdown report here")
    args = parser.parse_args(argv)
    try:
        import stable_baselines3  # noqa: F401
    except ImportError:
        sys.exit("bench_ppo: stable-baselines3 is missing; install the bench extra: pip install -e '.[bench]'")
    report = "\n".join(run(args)["lines"])
    print(report)
    if args.out:
        args.out.write_text(report + "\n")


if __name__ == "__main__":
    main()
