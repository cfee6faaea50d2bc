"""The `compare` command: aggregate runs over seeds, compare groups, plot and export the curves.

    compare multirun/2026-11-21_12-00-00                       # a sweep: groups = its overrides
    compare outputs/dqn/cartpole outputs/ppo/cartpole --metric iqm
    compare multirun/lr_sweep --by algo.lr --tag charts/episodic_return --smooth 5 --out lr_cmp

Every directory under the given paths that holds TensorBoard event files is a run. Runs are grouped
by their Hydra overrides without `seed=` and those that only watch or keep a run (`log.*`, `video.*`,
`checkpoint.*`, `threads`), or by the config keys given with --by; each group's
final scores are summarised over seeds (mean, std, IQM, 95% stratified bootstrap CI; Agarwal et
al. 2021, via rliable) and its learning curve is aggregated step by step. Writes compare.md,
compare.csv, compare.png and tb/<group>/ (view with `tensorboard --logdir <out>/tb`) into --out.
Grouping lives in deeprl.groups, the statistics and curves in deeprl.stats. See docs/compare.md.
"""

import argparse
import csv
import io
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from deeprl import version_line
from deeprl.core.checkpoint import save_atomic, write_text_atomic
from deeprl.core.console import shell
from deeprl.core.errors import (
    ConfigError,
    quiet_event_writer_failures,
    refused_writes,
    write_failure,
)
from deeprl.core.interrupt import stop_if_asked, stop_signals_noted, stopped_by
from deeprl.groups import group_runs, labels, run_name, sanitize, shared
from deeprl.runs import TAG, Run, plural, read_runs
from deeprl.stats import (
    SEED,
    aggregate,
    align,
    bootstrap_ci,
    curve_band,
    iqm,
    probability_of_improvement,
    smooth,
)

# ---------------------------------------------------------------------------------------------
# Scores of a group


def summarize(label: str, runs: list[Run], metric: str, reps: int) -> dict:
    """One row of the table: final-score statistics of a group over its seeds."""
    scores = np.array([r.final for r in runs])
    # Resampling one score only ever draws it again: no interval, rather than a zero-width one.
    low, high = bootstrap_ci(scores, metric, reps) if len(runs) > 1 else (np.nan, np.nan)
    return {"group": label, "n_seeds": len(runs),
            "seeds": " ".join(str(r.seed) for r in runs if r.seed is not None),
            "mean": float(scores.mean()),
            "std": float(scores.std(ddof=1)) if len(runs) > 1 else np.nan,
            "iqm": iqm(scores), f"{metric}_ci95_low": low, f"{metric}_ci95_high": high,
            "steps": float(np.mean([r.total_steps for r in runs])),
            "wall_time_s": float(np.nanmean([r.wall_time_s for r in runs]))
            if any(np.isfinite(r.wall_time_s) for r in runs) else np.nan}


# ---------------------------------------------------------------------------------------------
# Output


def fmt(x: float) -> str:
    if not np.isfinite(x):
        return "–"
    return f"{x:.1f}" if abs(x) >= 100 else f"{x:.2f}" if abs(x) >= 1 else f"{x:.3g}"


def markdown_table(rows: list[dict], metric: str) -> str:
    name = "IQM" if metric == "iqm" else "mean"
    lines = [f"| group | seeds | mean | std | IQM | 95% CI of {name} | steps | wall time (s) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        ci = f"[{fmt(r[f'{metric}_ci95_low'])}, {fmt(r[f'{metric}_ci95_high'])}]"
        wall = f"{r['wall_time_s']:.1f}" if np.isfinite(r["wall_time_s"]) else "–"
        lines.append(f"| {r['group']} | {r['n_seeds']} | {fmt(r['mean'])} | {fmt(r['std'])} | "
                     f"{fmt(r['iqm'])} | {ci} | {r['steps']:.0f} | {wall} |")
    return "\n".join(lines)


def csv_text(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def plot(curves: dict[str, tuple], path: Path, tag: str, metric: str, window: int) -> None:
    """One line per group (its mean or IQM over seeds) and its 95% bootstrap CI (see `draw`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(8, 5), dpi=120)
    draw(fig.add_subplot(), curves, tag, metric, window)
    fig.tight_layout()
    save_atomic(fig, path, write=lambda figure, f: figure.savefig(f, format="png"))
    plt.close(fig)


def draw(ax, curves: dict[str, tuple], tag: str, metric: str, window: int) -> None:
    """`plot`'s chart on `ax`. A group evaluated at one step only (a run that evaluates only at its
    end) has no band to shade: its CI is an error bar there."""
    from matplotlib.ticker import EngFormatter

    for label, (steps, center, lower, upper, n) in curves.items():
        marker = "o" if len(steps) <= 20 else None
        (line,) = ax.plot(steps, center, label=f"{label} (n={n})", marker=marker, markersize=3)
        if len(steps) == 1:
            ax.errorbar(steps, center, yerr=[np.subtract(center, lower), np.subtract(upper, center)],
                        color=line.get_color(), capsize=4, linewidth=1, fmt="none")
        else:
            ax.fill_between(steps, lower, upper, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel("environment steps")
    ax.set_ylabel(tag)
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    name = "IQM" if metric == "iqm" else "mean"
    smoothed = f", moving average over {window} points" if window > 1 else ""
    ax.set_title(f"{tag}: {name} over seeds with its 95% bootstrap CI{smoothed}", fontsize=10)
    ax.grid(alpha=0.3)
    if len(curves) > 6:  # many groups: the legend goes below the axes instead of over the curves
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2,
                  frameon=False)
    else:
        ax.legend(fontsize=8, loc="best")


def write_tb(curves: dict[str, tuple], tb_dir: Path, tag: str, metric: str) -> dict[str, Path]:
    """Each group's aggregate curve as a TensorBoard run tb_dir/<label>/ with the scalars
    <tag>/<metric>, <tag>/lower and <tag>/upper; replaces tb_dir as a whole."""
    from torch.utils.tensorboard import SummaryWriter

    tmp = tb_dir.with_name(f".{tb_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    dirs, used = {}, set()
    quiet_event_writer_failures()
    try:
        for label, (steps, center, lower, upper, _) in curves.items():
            name, i = sanitize(label), 2
            while name in used:
                name, i = f"{sanitize(label)}-{i}", i + 1
            used.add(name)
            writer = SummaryWriter(log_dir=str(tmp / name))
            for step, c, lo, hi in zip(steps, center, lower, upper, strict=True):
                writer.add_scalar(f"{tag}/{metric}", c, int(step))
                writer.add_scalar(f"{tag}/lower", lo, int(step))
                writer.add_scalar(f"{tag}/upper", hi, int(step))
            writer.close()
            dirs[label] = tb_dir / name
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # the tb/ of an earlier compare stays as it was
        raise
    old = tb_dir.with_name(f".{tb_dir.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if tb_dir.exists():
        os.replace(tb_dir, old)
    os.replace(tmp, tb_dir)
    shutil.rmtree(old, ignore_errors=True)
    return dirs


# ---------------------------------------------------------------------------------------------
# The command


def group_curves(named: list[tuple[str, list[Run]]], metric: str,
                 window: int) -> tuple[dict, list[str]]:
    """({label: (steps, center, lower, upper, n runs)}, notes on truncated or missing curves)."""
    curves, notes = {}, []
    for label, group in named:
        steps, values, note = align(group)
        if note:
            notes.append(f"{label}: {note}")
        if len(steps) == 0:
            notes.append(f"{label}: its runs share no steps; no curve drawn")
            continue
        center, lower, upper = curve_band(smooth(values, window), metric)
        curves[label] = (steps, center, lower, upper, len(group))
    return curves, notes


def report(rows: list[dict], named: list[tuple[str, list[Run]]], common: list[str],
           args: argparse.Namespace) -> str:
    """The markdown printed and written to compare.md (without its notes and figure)."""
    name = "IQM" if args.metric == "iqm" else "mean"
    source = ("summary.json eval_return_mean (the final evaluation; the last logged value for a "
              "run without one)" if args.tag == TAG else f"the last logged value of {args.tag}")
    n_runs = sum(len(group) for _, group in named)
    lines = [f"# compare: {args.tag}", "",
             f"{plural(n_runs, 'run')} in {plural(len(rows), 'group')}, best {name} first. "
             f"Final score per run: {source}. 95% CI: stratified bootstrap of the {name} over "
             f"seeds ({args.reps} resamples, seed {SEED}; Agarwal et al. 2021, rliable).", ""]
    if common:
        lines += [f"Shared by all runs: {', '.join(common)}.", ""]
    lines.append(markdown_table(rows, args.metric))
    if len(named) == 2:
        (first, x), (second, y) = named
        p, low, high = probability_of_improvement([r.final for r in x], [r.final for r in y],
                                                  min(args.reps, 2_000))
        lines += ["", f"P({first} > {second}) = {p:.2f}, 95% CI [{low:.2f}, {high:.2f}] "
                      "(probability of improvement over final scores)"]
    return "\n".join(lines) + "\n"


def single_seed_note(rows: list[dict]) -> list[str]:
    """A note naming the groups of one run: their score has no spread and no confidence interval."""
    single = [r["group"] for r in rows if r["n_seeds"] == 1]
    if not single:
        return []
    named = ", ".join(single[:3]) + (f" and {len(single) - 3} more" if len(single) > 3 else "")
    return [f"{plural(len(single), 'group')} of one run ({named}): no std or confidence interval; "
            "run more seeds for one (e.g. seed=1,2,3)"]


def env_notes(runs: list[Run]) -> list[str]:
    """A note when the runs are on several envs: their returns are on different scales, so a
    ranking, a mean or a CI across them says little."""
    envs = sorted({str(OmegaConf.select(r.config, "env.id", default="?")) for r in runs if r.config is not None})
    if len(envs) < 2:
        return []
    return [f"the runs are on {len(envs)} envs ({', '.join(envs)}), whose scores are on different scales; "
            "compare the runs of one env at a time"]


def compare(args: argparse.Namespace) -> list[str]:
    """Read and compute everything, then write and print (so a failure writes nothing).

    Returns the notes (skipped runs, truncated curves), which are also printed and in compare.md."""
    out = Path(args.out).resolve()
    by = [k.strip() for k in args.by.split(",") if k.strip()] if args.by else None
    if args.smooth < 1:
        raise ConfigError("--smooth", f"must be >= 1 (points to average over), got {args.smooth}")
    if args.reps < 100:
        raise ConfigError("--reps", f"must be >= 100 bootstrap resamples, got {args.reps}")
    if out.exists() and not out.is_dir():
        raise ConfigError("--out", f"{out} exists and is not a directory")
    runs, notes = read_runs([Path(p) for p in args.paths], args.tag, skip=out)
    groups = group_runs(runs, by)
    named = sorted(zip(labels(list(groups), run_name(runs[0])), groups.values(), strict=True),
                   key=lambda item: -aggregate([r.final for r in item[1]], args.metric))
    rows = [summarize(label, group, args.metric, args.reps) for label, group in named]
    curves, curve_notes = group_curves(named, args.metric, args.smooth)
    notes += curve_notes + single_seed_note(rows) + env_notes(runs)
    body = report(rows, named, shared(list(groups)), args)

    extra = ["![learning curves](compare.png)"] if curves else []
    if notes:
        extra += ["Notes:\n\n" + "\n".join(f"- {n}" for n in notes)]
    written = ["compare.md", "compare.csv"] + (["compare.png", "tb"] if curves else [])
    # Written beside --out's files and moved in once all are: a write the disk refuses leaves --out
    # as an earlier compare left it, never a table without its plot.
    made = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        if write_failure(error) is not None:
            raise  # a full disk, no permission: said by main's refused_writes
        raise ConfigError("--out", f"{out} cannot be created ({error.strerror}); pass another --out") from None
    staging = Path(tempfile.mkdtemp(dir=out, prefix=".compare-"))
    try:
        write_text_atomic(staging / "compare.md", "\n\n".join([body.rstrip("\n"), *extra]) + "\n")
        write_text_atomic(staging / "compare.csv", csv_text(rows))
        if curves:
            plot(curves, staging / "compare.png", args.tag, args.metric, args.smooth)
            write_tb(curves, staging / "tb", args.tag, args.metric)
        stop_if_asked()
        for name in written:
            if name == "tb" and (out / name).exists():
                os.replace(out / name, staging / "tb.old")  # removed with the staging dir
            os.replace(staging / name, out / name)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if made:
            shutil.rmtree(out, ignore_errors=True)
        raise
    shutil.rmtree(staging, ignore_errors=True)

    print(body, end="")
    if notes:
        print("\n" + "\n".join(f"compare: {n}" for n in notes))
    print(f"\nwrote {', '.join(name + '/' if name == 'tb' else name for name in written)} to {out}"
          + (f" | view: tensorboard --logdir {shell(out / 'tb')}" if curves else ""))
    return notes


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=version_line("compare"))
    parser.add_argument("paths", nargs="+", help="run dirs or any dirs above them (sweep dirs)")
    parser.add_argument("--by", default=None,
                        help="group by these comma-separated config keys (e.g. algo.lr,env.id), "
                             "read from each run's .hydra/config.yaml, instead of by the overrides")
    parser.add_argument("--tag", default=TAG, help=f"the scalar to compare (default {TAG})")
    parser.add_argument("--out", default="compare", help="output dir (default ./compare)")
    parser.add_argument("--smooth", type=int, default=1,
                        help="moving average over this many logged points of each run's curve")
    parser.add_argument("--metric", choices=("mean", "iqm"), default="mean",
                        help="aggregate over seeds for the ranking, the CI and the curves")
    parser.add_argument("--reps", type=int, default=10_000, help="bootstrap resamples of the CIs")
    args = parser.parse_args(argv)
    try:
        with refused_writes(lambda reason: ConfigError("--out", f"cannot write to {args.out}: {reason}; make room, "
                                                                "or pass another --out")):
            with stop_signals_noted():
                compare(args)
    except ConfigError as error:
        print(f"compare: error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: what it writes is staged and moved in at the end
        sys.exit(stopped_by("compare"))


if __name__ == "__main__":
    main()
