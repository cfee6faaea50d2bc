"""Statistics over runs of seeds: the interquartile mean, stratified bootstrap confidence intervals
and the probability of improvement (Agarwal et al. 2021, "Deep RL at the Edge of the Statistical
Precipice", through rliable), and the learning curves `compare` draws: runs aligned onto one grid
of steps, smoothed, with a bootstrap band.

Every bootstrap draws from a fixed seed, so the same runs always give the same intervals.
"""

import numpy as np
import scipy.stats

from deeprl.runs import Run

CONFIDENCE = 0.95
SEED = 0  # of every bootstrap, so the same runs always give the same intervals
CURVE_REPS = 1000  # bootstrap resamples per step of a curve (the final-score CIs use --reps)


# ---------------------------------------------------------------------------------------------
# Final scores


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
