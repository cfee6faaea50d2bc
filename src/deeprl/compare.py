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
See docs/compare.md.
"""

import argparse
import csv
import functools
import io
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import scipy.stats
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

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
from deeprl.runs import TAG, Run, plural, read_runs
from deeprl.validate import as_override

CONFIDENCE = 0.95
SEED = 0  # of every bootstrap, so the same runs always give the same intervals
CURVE_REPS = 1000  # bootstrap resamples per step of a curve (the final-score CIs use --reps)


# ---------------------------------------------------------------------------------------------
# Grouping and labels


# Overrides that do not make a different experiment: how a run was watched and kept (console and
# TensorBoard cadence, videos, checkpoints) and how many CPU threads it used. Runs that differ only
# in these are seeds of one group. (Videos leave every random stream as it was; checkpoints and
# logging draw from none.)
NEUTRAL = ("log", "video", "checkpoint", "threads")


def left_out_of_groups(override: str) -> bool:
    """Whether an override is left out of a run's group: `seed`, Hydra's own, or one of NEUTRAL."""
    key = override.split("=", 1)[0].lstrip("+~")
    return key == "seed" or key.startswith(("hydra.", "hydra/")) or key == "hydra" or key.split(".")[0] in NEUTRAL


def run_name(run: Run) -> str:
    """A run's name without overrides: algo and env (summary.json or config), else its dir."""
    if run.summary and "algo" in run.summary and "env" in run.summary:
        return f"{run.summary['algo']} {run.summary['env']}"
    if run.config is not None:
        algo = OmegaConf.select(run.config, "algo.name", default=None)
        env = OmegaConf.select(run.config, "env.id", default=None)
        if algo is not None and env is not None:
            return f"{algo} {env}"
    return run.path.name


@functools.cache
def override_parser():
    return OverridesParser.create()


def canonical(override: str) -> str:
    """An override with a plain value written one way, as Hydra reads it: `algo.lr=1e-3` and
    `algo.lr=0.001` are one setting, and so are `algo.double=true` and the `algo.double=True` that
    Hydra's sweeper records. Other overrides (strings, lists, deletions) stay as given."""
    try:
        parsed = override_parser().parse_override(override)
    except HydraException:  # Hydra wrote these overrides; one it cannot read back is kept as it is
        return override
    if parsed.is_delete() or parsed.is_sweep_override():
        return override
    value = parsed.value()
    if value is not None and not isinstance(value, (bool, int, float)):
        return override
    return f"{parsed.get_key_element()}={as_override(value)}"


def group_key(run: Run, by: list[str] | None = None) -> tuple[str, ...]:
    """What identifies the run's group: sorted "key=value" items."""
    if by:
        if run.config is None:
            raise ConfigError("--by", f"{run.path} has no .hydra/config.yaml to read "
                                      f"{', '.join(by)} from; drop --by to group by overrides")
        items = []
        for key in by:
            value = OmegaConf.select(run.config, key, default=KeyError,
                                     throw_on_resolution_failure=False)
            if value is KeyError:
                parent = key.rpartition(".")[0]
                node = OmegaConf.select(run.config, parent, default=None) if parent else run.config
                known = f"; keys under '{parent or 'the top'}': {', '.join(map(str, node))}" \
                    if isinstance(node, DictConfig) else ""
                raise ConfigError("--by", f"key '{key}' is not in the config of {run.path}{known}")
            items.append(f"{key}={as_override(value)}")
        return tuple(items)
    # Hydra lets a key be given twice and the last one wins: so does the group.
    last = {o.split("=", 1)[0]: canonical(o) for o in run.overrides or [] if not left_out_of_groups(o)}
    items = sorted(last.values())
    return tuple(items) if items else (run_name(run),)


def group_runs(runs: list[Run], by: list[str] | None = None) -> dict[tuple[str, ...], list[Run]]:
    groups: dict[tuple[str, ...], list[Run]] = {}
    for run in runs:
        groups.setdefault(group_key(run, by), []).append(run)
    return groups


def shared(keys: list[tuple[str, ...]]) -> list[str]:
    """The items every group has (left out of the labels), in the first group's order."""
    return [item for item in keys[0] if all(item in key for key in keys[1:])] if keys else []


def labels(keys: list[tuple[str, ...]], single: str = "") -> list[str]:
    """Short labels: the items that tell the groups apart. A lone group has nothing to tell it
    apart and is called `single` (its algo and env) when that is given."""
    if len(keys) == 1:
        return [single or ", ".join(keys[0])]
    common = set(shared(keys))
    return [", ".join(item for item in key if item not in common) or "(base)" for key in keys]


def sanitize(label: str) -> str:
    """A directory name for a label: "algo.lr=0.001, env=ant" -> "algo.lr=0.001,env=ant"."""
    name = re.sub(r"[^A-Za-z0-9._=,+-]+", "_", label.replace(", ", ",")).strip("._")
    return name or "group"


# ---------------------------------------------------------------------------------------------
# Statistics (Agarwal et al. 2021, "Deep RL at the Edge of the Statistical Precipice"; rliable)


def iqm(scores) -> float:
    """Interquartile mean: the mean of the middle 50% of the scores (25% trimmed from each end)."""
    from rliable import metrics

    return float(metrics.aggregate_iqm(np.asarray(scores, dtype=np.float64).reshape(-1, 1)))


def aggregate(scores, metric: str) -> float:
    return iqm(scores) if metric == "iqm" else float(np.mean(scores))


def with_numpy_seed(fn, seed: int):
    """Run fn with numpy's global generator seeded, then restore it.

    rliable's stratified bootstrap draws its indices from np.random (its random_state argument
    does not reach them), so this is the only way to make its intervals reproducible.
    """
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        return fn()
    finally:
        np.random.set_state(state)


def bootstrap_ci(scores, metric: str = "mean", reps: int = 10_000,
                 seed: int = SEED) -> tuple[float, float]:
    """95% stratified (percentile) bootstrap CI over runs of the mean or IQM of one task."""
    from rliable import library, metrics

    x = np.asarray(scores, dtype=np.float64).reshape(-1, 1)  # (runs, tasks=1), rliable's layout
    func = metrics.aggregate_iqm if metric == "iqm" else metrics.aggregate_mean

    def estimate():
        _, intervals = library.get_interval_estimates(
            {"x": x}, lambda s: np.array([func(s)]), reps=reps, confidence_interval_size=CONFIDENCE)
        return intervals["x"]

    interval = with_numpy_seed(estimate, seed)
    return float(interval[0, 0]), float(interval[1, 0])


def probability_of_improvement(x, y, reps: int = 2_000,
                               seed: int = SEED) -> tuple[float, float, float]:
    """P(X > Y): the chance a run of X scores above a run of Y (Mann-Whitney U / (n_x n_y)), with
    its 95% stratified bootstrap CI (runs of X and of Y resampled independently)."""
    from rliable import library, metrics

    x = np.asarray(x, dtype=np.float64).reshape(-1, 1)
    y = np.asarray(y, dtype=np.float64).reshape(-1, 1)

    def estimate():
        points, intervals = library.get_interval_estimates(
            {"xy": [x, y]}, lambda a, b: np.array([metrics.probability_of_improvement(a, b)]),
            reps=reps, confidence_interval_size=CONFIDENCE)
        return points["xy"], intervals["xy"]

    point, interval = with_numpy_seed(estimate, seed)
    return float(np.ravel(point)[0]), float(interval[0, 0]), float(interval[1, 0])


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
# Curves


def align(runs: list[Run]) -> tuple[np.ndarray, np.ndarray, str | None]:
    """(steps, values of shape (runs, steps), what was truncated or None) for one group.

    The grid is the logged steps of the run with the fewest points, within the range every run
    covers (latest first step to earliest last step); each run is linearly interpolated onto it.
    Runs that log at the same steps (eval/ tags) are therefore taken exactly as logged.
    """
    start = max(int(r.steps[0]) for r in runs)
    end = min(int(r.steps[-1]) for r in runs)
    inside = [r.steps[(r.steps >= start) & (r.steps <= end)] for r in runs]
    grid = min(inside, key=len)
    values = np.stack([np.interp(grid, r.steps, r.values) for r in runs]) if len(grid) else \
        np.empty((len(runs), 0))
    ends = sorted({int(r.steps[-1]) for r in runs})
    note = None
    if len(ends) > 1:
        shortest = ", ".join(f"seed {r.seed}" if r.seed is not None else r.path.name for r in runs
                             if int(r.steps[-1]) == end)
        note = (f"runs end at steps {ends[0]}..{ends[-1]}; curves truncated to step {end}, "
                f"where the shortest ({shortest}) ends")
    return grid, values, note


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average over `window` points along the last axis (shorter at the start)."""
    if window <= 1 or values.shape[-1] == 0:
        return values
    cumsum = np.cumsum(values, axis=-1)
    out = cumsum.copy()
    out[..., window:] = cumsum[..., window:] - cumsum[..., :-window]
    counts = np.minimum(np.arange(1, values.shape[-1] + 1), window)
    return out / counts


def curve_band(values: np.ndarray, metric: str, reps: int = CURVE_REPS,
               seed: int = SEED) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(center, lower, upper) at each step: the mean or IQM over runs and its 95% percentile
    bootstrap CI, resampling runs (the same resampling as rliable's, vectorised over steps)."""
    def agg(x, axis):
        return scipy.stats.trim_mean(x, 0.25, axis=axis) if metric == "iqm" else x.mean(axis=axis)

    center = agg(values, 0)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, values.shape[0], size=(reps, values.shape[0]))
    alpha = (1 - CONFIDENCE) / 2 * 100
    lower, upper = np.empty_like(center), np.empty_like(center)
    chunk = max(1, 4_000_000 // (reps * values.shape[0]))  # keep the resampled block small
    for i in range(0, values.shape[1], chunk):
        resampled = agg(values[:, i:i + chunk][idx], 1)  # (reps, steps in chunk)
        lower[i:i + chunk], upper[i:i + chunk] = np.percentile(resampled, [alpha, 100 - alpha],
                                                               axis=0)
    return center, lower, upper


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
