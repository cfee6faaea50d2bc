"""The `evaluate` command: load a checkpoint (or a run dir's final one), play N episodes, report.

    evaluate outputs/dqn/breakout/2026-11-21_12-00-00                  # final.pt, 10 episodes
    evaluate outputs/.../checkpoints/step_500000.pt --episodes 30 --epsilon 0.05 --video
    evaluate outputs/ppo/breakout/2026-11-21_12-00-00 --deterministic  # argmax, not sampled, actions

Results go to the run dir, named by the checkpoint and by each flag that changes the result from the
default one: evaluation.json for final.pt with the defaults, evaluation-step_500000.json for another
checkpoint, evaluation-step_500000-episodes30-epsilon0.05.json with flags. Evaluating with other
flags or another checkpoint never overwrites a result; the same evaluation again writes the same one.
With --video, mp4s go to videos/evaluate-<name>-episode-<i>.mp4 (named the same way, less --episodes,
which the videos do not depend on).
"""

import argparse
import functools
import sys
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from deeprl import version_line
from deeprl.core.checkpoint import write_json_atomic
from deeprl.core.console import say
from deeprl.core.errors import ConfigError, WriteFailed, refused_writes
from deeprl.core.interrupt import stop_if_asked, stop_signals_noted, stopped_by
from deeprl.runs import locate, plural, run_config

VIDEO_REFUSED = ("--video", "run without --video")  # the key and the fix when frames cannot be drawn
EPISODES = 10  # --episodes by default; a result of another count names it


def run(args: argparse.Namespace) -> tuple[dict, Path]:
    run_dir, checkpoint, unfinished = locate(Path(args.path))
    cfg = run_config(run_dir)
    run_epsilon = OmegaConf.select(cfg, "algo.exploration.eval")
    run_mode = {True: "deterministic", False: "stochastic", None: None}[OmegaConf.select(cfg, "algo.deterministic_eval")]
    if args.epsilon is not None:
        if run_epsilon is None:
            raise ConfigError("--epsilon", f"{cfg.algo.name} does not act epsilon-greedily; drop --epsilon")
        if not 0.0 <= args.epsilon <= 1.0:
            raise ConfigError("--epsilon", f"must be a number in [0, 1], got {args.epsilon}; e.g. --epsilon 0.05")
        cfg.algo.exploration.eval = args.epsilon
    if args.mode is not None:
        if run_mode is None:
            if run_epsilon is not None:
                raise ConfigError(f"--{args.mode}", f"{cfg.algo.name} acts epsilon-greedily in evaluation; "
                                                    "use --epsilon instead (0 is greedy)")
            raise ConfigError(f"--{args.mode}", f"{cfg.algo.name} has one way to act in evaluation; drop "
                                                f"--{args.mode} (it is for ppo, a2c, actor_critic and reinforce)")
        cfg.algo.deterministic_eval = args.mode == "deterministic"
    if args.episodes < 1:
        raise ConfigError("--episodes", f"must be >= 1, got {args.episodes}")
    if args.seed is not None and args.seed < 0:
        raise ConfigError("--seed", f"must be >= 0, got {args.seed}; e.g. --seed 0")
    if args.video_episodes is not None:
        if not args.video:
            raise ConfigError("--video-episodes", "records videos only with --video; add --video")
        if args.video_episodes < 1:
            raise ConfigError("--video-episodes", f"must be >= 1, got {args.video_episodes}")
    if unfinished:  # once the flags are known good: a refused command says one line
        say(f"evaluate: note: {args.path} has no final.pt (the run has not finished); evaluating its newest "
            f"checkpoint, {checkpoint.name}", err=True)
    # torch and the envs only now: a mistyped path or flag is answered without their seconds of import.
    from deeprl.loops.evaluate import evaluate, record_video
    from deeprl.trained import agent_from

    agent = agent_from(cfg, run_dir, checkpoint)
    if args.video:  # before the evaluation episodes: a machine that cannot draw frames is told first
        from deeprl.envs.render import render_env

        render_env(cfg.env, *VIDEO_REFUSED).close()
    default_seed = 20_000 + int(cfg.seed)
    seed = args.seed if args.seed is not None else default_seed
    from deeprl.logging import evaluation_bar, show_evaluation

    with evaluation_bar(args.episodes) as bar:
        returns, lengths = evaluate(agent, cfg.env, args.episodes, seed,
                                    progress=functools.partial(show_evaluation, bar))
    result = {"checkpoint": str(checkpoint), "env": cfg.env.id, "episodes": args.episodes, "seed": seed,
              "epsilon": OmegaConf.select(cfg, "algo.exploration.eval"),
              "deterministic": OmegaConf.select(cfg, "algo.deterministic_eval"),
              "return_mean": float(returns.mean()), "return_std": float(returns.std()),
              "returns": returns.tolist(), "lengths": lengths.tolist()}
    # For the file names: each flag that changes what is measured, where it differs from its default
    # (the run's own, for how the agent acts). --episodes is added for the result only.
    acting = [flag for flag, changed in ((f"seed{seed}", seed != default_seed),
                                         (f"epsilon{args.epsilon:g}" if args.epsilon is not None else "",
                                          args.epsilon not in (None, run_epsilon)),
                                         (args.mode, args.mode is not None and args.mode != run_mode))
              if changed]
    if args.video:
        videos = record_video(agent, cfg.env, args.video_episodes or 1, seed, run_dir / "videos",
                              "-".join(["evaluate", checkpoint.stem, *acting]), *VIDEO_REFUSED)
        result["videos"] = [str(v) for v in videos]
    path = run_dir / result_name(checkpoint, [f"episodes{args.episodes}"] * (args.episodes != EPISODES) + acting)
    stop_if_asked()
    with refused_writes(lambda reason: WriteFailed("evaluation", path, reason, "make room and run it again")):
        write_json_atomic(path, result)
    return result, path


def result_name(checkpoint: Path, flags: list[str]) -> str:
    """evaluation.json for a run's final checkpoint evaluated with the defaults; otherwise the
    checkpoint (unless final.pt) and the flags that differ from the defaults, joined by "-"."""
    return "-".join(["evaluation", *[checkpoint.stem] * (checkpoint.name != "final.pt"), *flags]) + ".json"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=version_line("evaluate"))
    parser.add_argument("path", help="a run dir (uses checkpoints/final.pt, or the newest step_N.pt of a run that has not "
                             "finished) or a checkpoint file")
    parser.add_argument("--episodes", type=int, default=EPISODES,
                        help=f"episodes to play, in parallel (default: {EPISODES})")
    parser.add_argument("--epsilon", type=float, default=None,
                        help="exploration during evaluation (default: the run's, 0.05 for Atari, else 0)")
    acting = parser.add_mutually_exclusive_group()
    acting.add_argument("--stochastic", dest="mode", action="store_const", const="stochastic",
                        help="a policy-gradient run's policy samples its actions (default: the run's "
                             "algo.deterministic_eval)")
    acting.add_argument("--deterministic", dest="mode", action="store_const", const="deterministic",
                        help="a policy-gradient run's policy takes its most likely action (argmax / mean)")
    parser.add_argument("--seed", type=int, default=None,
                        help="episode i is reset with seed + i (default: 20000 + the run's seed; the run's "
                             "own evaluations use 10000 + 1000 x its seed)")
    parser.add_argument("--video", action="store_true", help="also record mp4s of full episodes")
    parser.add_argument("--video-episodes", type=int, default=None,
                        help="episodes to record with --video, one after another (default: 1)")
    args = parser.parse_args(argv)
    try:
        with stop_signals_noted():
            result, path = run(args)
    except ConfigError as error:
        print(f"evaluate: error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: what it writes is staged and moved in at the end
        sys.exit(stopped_by("evaluate"))
    returns = np.asarray(result["returns"])
    # How it acted: epsilon for the agents that act epsilon-greedily (the DQN family, tabular, FQI),
    # deterministic or stochastic for the policy-gradient algorithms.
    acting = "" if result["epsilon"] is None else f" (epsilon {result['epsilon']})"
    if result["deterministic"] is not None:
        acting = " (deterministic)" if result["deterministic"] else " (stochastic)"
    print(f"{result['env']}: return {returns.mean():.2f} ± {returns.std():.2f} over {plural(len(returns), 'episode')}"
          f"{acting} | {result['checkpoint']}")
    print(f"result: {path}")
    for video in result.get("videos", []):
        print(f"video: {video}")


if __name__ == "__main__":
    main()
