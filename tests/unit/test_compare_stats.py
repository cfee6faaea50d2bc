"""`compare`'s parts: IQM, bootstrap CIs, probability of improvement and alignment (deeprl.stats),
groups and labels (deeprl.groups), the plot and the env notes (deeprl.compare)."""

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
from omegaconf import OmegaConf
from rliable import library, metrics

from deeprl.compare import draw, env_notes
from deeprl.core.errors import ConfigError
from deeprl.groups import group_key, group_runs, labels, sanitize, shared
from deeprl.runs import Run, discover, load_run
from deeprl.stats import align, bootstrap_ci, curve_band, iqm, probability_of_improvement, smooth


def make_run(steps=(0, 1), values=None, seed=1, overrides=None, summary=None, config=None,
             name="run") -> Run:
    steps = np.asarray(steps, dtype=np.int64)
    values = np.arange(len(steps), dtype=float) if values is None else np.asarray(values, float)
    return Run(path=Path("/runs") / name, steps=steps, values=values, final=float(values[-1]),
               total_steps=float(steps[-1]), wall_time_s=np.nan, seed=seed, overrides=overrides,
               config=None if config is None else OmegaConf.create(config), summary=summary)


# --- statistics ---------------------------------------------------------------------------------


def test_iqm_of_one_to_eight_is_the_mean_of_the_middle_four():
    assert iqm(range(1, 9)) == pytest.approx(4.5)  # mean of 3, 4, 5, 6


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13])
def test_iqm_is_rliables_25_percent_trimmed_mean(n):
    x = np.random.default_rng(n).normal(size=n) * 10
    assert iqm(x) == pytest.approx(scipy.stats.trim_mean(x.ravel(), 0.25))
    assert iqm(x) == pytest.approx(metrics.aggregate_iqm(x.reshape(-1, 1)))


@pytest.mark.parametrize("metric", ["mean", "iqm"])
def test_bootstrap_ci_brackets_the_estimate_and_is_reproducible(metric):
    scores = np.random.default_rng(0).normal(100, 20, size=10)
    point = np.mean(scores) if metric == "mean" else iqm(scores)
    state = np.random.get_state()
    low, high = bootstrap_ci(scores, metric, reps=2000)
    assert low < point < high
    assert bootstrap_ci(scores, metric, reps=2000) == (low, high)  # seeded
    after = np.random.get_state()
    # numpy's global generator (which rliable draws from) is left as it was
    assert all(np.array_equal(a, b) for a, b in zip(state, after, strict=True))


def test_bootstrap_ci_is_rliables_stratified_bootstrap():
    scores = np.array([3.0, 7.0, 1.0, 9.0, 4.0, 6.0])
    np.random.seed(0)
    _, intervals = library.get_interval_estimates(
        {"x": scores.reshape(-1, 1)}, lambda s: np.array([metrics.aggregate_iqm(s)]), reps=1000)
    expected = tuple(intervals["x"][:, 0])
    assert bootstrap_ci(scores, "iqm", reps=1000, seed=0) == pytest.approx(expected)


def test_bootstrap_ci_of_the_mean_has_the_normal_width_for_many_seeds():
    scores = np.random.default_rng(1).normal(0, 1, size=200)
    low, high = bootstrap_ci(scores, "mean", reps=4000)
    half_width = 1.96 * scores.std(ddof=1) / np.sqrt(len(scores))
    assert (high - low) / 2 == pytest.approx(half_width, rel=0.1)


def test_bootstrap_ci_of_equal_scores_is_a_point():
    assert bootstrap_ci([5.0, 5.0, 5.0], "mean", reps=500) == (5.0, 5.0)


def test_probability_of_improvement():
    p, low, high = probability_of_improvement([10, 11, 12], [1, 2, 3], reps=500)
    assert (p, low, high) == (1.0, 1.0, 1.0)
    assert probability_of_improvement([1, 2, 3], [10, 11, 12], reps=500)[0] == 0.0
    assert probability_of_improvement([4, 5, 6], [4, 5, 6], reps=500)[0] == 0.5
    # Pairs (x > y) count 1, ties 1/2: (2,2) 0.5, (2,1) 1, (3,2) 1, (3,1) 1 -> 3.5 / 4.
    p, low, high = probability_of_improvement([2, 3], [2, 1], reps=500)
    assert p == pytest.approx(0.875)
    assert low <= p <= high


# --- grouping and labels ------------------------------------------------------------------------


def test_group_key_drops_seed_and_hydra_overrides_and_ignores_order():
    a = make_run(overrides=["algo=dqn", "algo.lr=0.001", "seed=1", "hydra.verbose=true"])
    b = make_run(overrides=["algo.lr=0.001", "seed=2", "algo=dqn", "hydra/launcher=joblib"])
    assert group_key(a) == group_key(b) == ("algo.lr=0.001", "algo=dqn")


def test_group_key_drops_what_only_watches_or_keeps_a_run():
    plain = make_run(overrides=["algo.lr=0.001", "seed=1"])
    watched = make_run(overrides=["algo.lr=0.001", "seed=2", "video.every=1000", "log.every=50", "log.progress=false",
                                  "checkpoint.every=500", "+checkpoint.keep=5", "threads=4"])
    assert group_key(plain) == group_key(watched) == ("algo.lr=0.001",)
    # A key that only starts like a neutral one is a setting of its own.
    assert group_key(make_run(overrides=["algo.log_std_init=0.0"])) == ("algo.log_std_init=0.0",)
    assert group_key(make_run(overrides=["eval.every=100"])) == ("eval.every=100",)


def test_group_key_takes_the_last_of_a_key_given_twice_as_hydra_does():
    twice = make_run(overrides=["algo.lr=0.1", "total_steps=500", "algo.lr=0.001"])
    once = make_run(overrides=["total_steps=500", "algo.lr=0.001"])
    assert group_key(twice) == group_key(once) == ("algo.lr=0.001", "total_steps=500")


def test_group_key_reads_a_plain_value_as_hydra_does():
    """Hydra's sweeper records `algo.double=true,false` as algo.double=True / False, and a float as
    Python prints it: a run started by hand with the same settings joins the sweep's group."""
    swept = make_run(overrides=["algo.double=True", "algo.lr=0.001", "algo.max_grad_norm=null", "total_steps=500"])
    by_hand = make_run(overrides=["total_steps=500", "algo.lr=1e-3", "algo.double=true", "algo.max_grad_norm=NULL"])
    assert group_key(swept) == group_key(by_hand) == (
        "algo.double=true", "algo.lr=0.001", "algo.max_grad_norm=null", "total_steps=500")
    assert group_key(make_run(overrides=["+env.kwargs.continuous=True"])) == ("+env.kwargs.continuous=true",)
    # Strings, lists, groups, deletions and what Hydra cannot read stay as given.
    kept = ["algo=dqn", "env.id=CartPole-v1", "network.hidden_sizes=[64,64]", "~tuned", "x=[1,"]
    assert group_key(make_run(overrides=kept)) == tuple(sorted(kept))


def test_runs_without_overrides_are_named_by_algo_and_env():
    summary = {"algo": "dqn", "env": "CartPole-v1"}
    assert group_key(make_run(summary=summary)) == ("dqn CartPole-v1",)
    assert group_key(make_run(overrides=["seed=3"], summary=summary)) == ("dqn CartPole-v1",)
    config = {"algo": {"name": "ppo"}, "env": {"id": "Pendulum-v1"}}
    assert group_key(make_run(config=config)) == ("ppo Pendulum-v1",)
    assert group_key(make_run(name="2026-11-21_12-00-00")) == ("2026-11-21_12-00-00",)


def test_runs_on_several_envs_get_a_note_and_runs_on_one_env_none():
    def on(env_id, **env):
        return make_run(config={"env": {"id": env_id, **env}})

    assert env_notes([on("CartPole-v1"), on("CartPole-v1"), make_run()]) == []
    atari = on("ALE/${.game}-v5", game="Pong")  # an interpolated id, as the Atari configs write it
    assert env_notes([on("CartPole-v1"), atari, on("CartPole-v1")]) == [
        "the runs are on 2 envs (ALE/Pong-v5, CartPole-v1), whose scores are on different scales; "
        "compare the runs of one env at a time"]


def test_group_runs_collects_seeds():
    runs = [make_run(seed=s, overrides=[f"algo.lr={lr}", f"seed={s}"]) for lr in (1e-3, 5e-4)
            for s in (1, 2, 3)]
    groups = group_runs(runs)
    assert list(groups) == [("algo.lr=0.001",), ("algo.lr=0.0005",)]
    assert [[r.seed for r in g] for g in groups.values()] == [[1, 2, 3], [1, 2, 3]]


def test_group_by_config_keys():
    config = {"seed": 1, "algo": {"lr": 0.001, "gamma": 0.99}, "env": {"id": "CartPole-v1"}}
    run = make_run(config=config, overrides=["algo.lr=1e-3", "algo.gamma=0.99"])
    assert group_key(run, ["algo.lr", "env.id"]) == ("algo.lr=0.001", "env.id=CartPole-v1")
    with pytest.raises(ConfigError, match="'algo.nope'.*keys under 'algo': lr, gamma"):
        group_key(run, ["algo.nope"])
    with pytest.raises(ConfigError, match="no .hydra/config.yaml"):
        group_key(make_run(), ["algo.lr"])


def test_group_by_config_keys_writes_values_as_overrides_are_written():
    """A --by label can be pasted back into `train`: YAML's true / false / null, not Python's."""
    config = {"algo": {"anneal_lr": True, "double": False, "max_grad_norm": None},
              "network": {"hidden_sizes": [256, 256]}}
    keys = ["algo.anneal_lr", "algo.double", "algo.max_grad_norm", "network.hidden_sizes"]
    assert group_key(make_run(config=config), keys) == (
        "algo.anneal_lr=true", "algo.double=false", "algo.max_grad_norm=null", "network.hidden_sizes=[256, 256]")


def test_labels_keep_only_what_tells_groups_apart():
    keys = [("algo.lr=0.001", "algo=dqn", "env=cartpole"),
            ("algo.lr=0.0005", "algo=dqn", "env=cartpole")]
    assert labels(keys) == ["algo.lr=0.001", "algo.lr=0.0005"]
    assert shared(keys) == ["algo=dqn", "env=cartpole"]
    assert labels([("algo=dqn", "env=cartpole")], "dqn CartPole-v1") == ["dqn CartPole-v1"]
    assert labels([("algo=dqn", "env=cartpole")]) == ["algo=dqn, env=cartpole"]
    assert labels([("algo=dqn",), ("algo=dqn", "algo.double=true")]) == ["(base)",
                                                                          "algo.double=true"]
    keys = [("a=1", "b=2"), ("a=2", "b=2"), ("a=1", "b=3")]
    assert labels(keys) == ["a=1, b=2", "a=2, b=2", "a=1, b=3"]


def test_sanitize_makes_directory_names():
    assert sanitize("algo.lr=0.001, env.id=CartPole-v1") == "algo.lr=0.001,env.id=CartPole-v1"
    assert sanitize("dqn CartPole-v1") == "dqn_CartPole-v1"
    assert sanitize("(base)") == "base"
    assert sanitize("a/b") == "a_b"


# --- curves -------------------------------------------------------------------------------------


def test_align_runs_that_log_at_the_same_steps_is_exact():
    runs = [make_run([200, 400, 600], [1, 2, 3]), make_run([200, 400, 600], [3, 4, 5], seed=2)]
    steps, values, note = align(runs)
    assert steps.tolist() == [200, 400, 600]
    assert values.tolist() == [[1, 2, 3], [3, 4, 5]]
    assert note is None


def test_align_truncates_to_the_shortest_run_and_says_so():
    runs = [make_run([200, 400, 600], [1, 2, 3], seed=1), make_run([200, 400], [5, 6], seed=2),
            make_run([200, 400, 600, 800], [7, 8, 9, 10], seed=3)]
    steps, values, note = align(runs)
    assert steps.tolist() == [200, 400]
    assert values.tolist() == [[1, 2], [5, 6], [7, 8]]
    assert note == ("runs end at steps 400..800; curves truncated to step 400, where the shortest "
                    "(seed 2) ends")


def test_align_interpolates_onto_the_coarsest_runs_steps():
    dense = make_run([0, 10, 20, 30, 40], [0, 1, 2, 3, 4])
    coarse = make_run([5, 25, 40], [50, 70, 90], seed=2)
    steps, values, note = align([dense, coarse])
    assert steps.tolist() == [5, 25, 40]  # the coarse run's steps; the dense run's step 0 is cut
    assert values.tolist() == [[0.5, 2.5, 4.0], [50.0, 70.0, 90.0]]
    assert note is None  # both end at 40


def test_smooth_is_a_trailing_moving_average():
    x = np.array([[0.0, 2.0, 4.0, 6.0, 8.0]])
    assert smooth(x, 1) is x
    assert smooth(x, 2).tolist() == [[0.0, 1.0, 3.0, 5.0, 7.0]]
    assert smooth(x, 3).tolist() == [[0.0, 1.0, 2.0, 4.0, 6.0]]


@pytest.mark.parametrize("metric", ["mean", "iqm"])
def test_curve_band_brackets_the_aggregate_at_each_step(metric):
    values = np.random.default_rng(0).normal(size=(6, 40)).cumsum(axis=1)
    center, lower, upper = curve_band(values, metric, reps=500)
    expected = values.mean(0) if metric == "mean" else scipy.stats.trim_mean(values, 0.25, axis=0)
    assert center == pytest.approx(expected)
    assert np.all(lower <= center + 1e-12) and np.all(center <= upper + 1e-12)
    assert np.all(upper - lower > 0)
    constant = np.full((3, 5), 2.0)
    assert [b.tolist() for b in curve_band(constant, metric, reps=100)] == [[2.0] * 5] * 3


# --- finding and reading runs -------------------------------------------------------------------


def test_a_group_evaluated_at_one_step_gets_an_error_bar_and_longer_curves_a_band():
    """A run that evaluates only at its end has one point: a band over one step would be drawn
    with no width, so its CI would not show at all."""
    from matplotlib.collections import LineCollection, PolyCollection
    from matplotlib.colors import to_rgba
    from matplotlib.container import ErrorbarContainer
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    draw(ax, {"a2c": ([10000, 20000], [-88.0, -80.6], [-91.7, -81.5], [-84.3, -79.7], 2),
              "ppo": ([20000], [-92.8], [-96.0], [-89.6], 2)}, "eval/episodic_return", "mean", 1)
    [bar] = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    [segment] = bar.lines[2][0].get_segments()
    np.testing.assert_allclose(segment, [[20000, -96.0], [20000, -89.6]])
    assert tuple(bar.lines[2][0].get_color()[0]) == to_rgba(ax.lines[1].get_color())  # the group's own colour
    [band] = [c for c in ax.collections if isinstance(c, PolyCollection) and not isinstance(c, LineCollection)]
    vertices = band.get_paths()[0].vertices
    assert vertices[:, 0].min() == 10000 and vertices[:, 0].max() == 20000
    assert vertices[:, 1].min() == pytest.approx(-91.7) and vertices[:, 1].max() == pytest.approx(-79.7)


def test_discover_finds_runs_recursively_and_skips_failed_jobs(tmp_path):
    for name in ("sweep/a", "sweep/b", "sweep/c/seed_1"):
        (tmp_path / name).mkdir(parents=True)
        (tmp_path / name / "events.out.tfevents.1.host.1.0").write_bytes(b"")
    (tmp_path / "sweep/d/seed_1").mkdir(parents=True)  # a job that failed at its second seed
    (tmp_path / "sweep/d/seed_1/events.out.tfevents.1.host.1.0").write_bytes(b"")
    (tmp_path / "sweep/d/failed.txt").write_text("ConfigError: algo.lr: must be > 0\n")
    (tmp_path / "sweep/cmp/tb/x").mkdir(parents=True)
    (tmp_path / "sweep/cmp/tb/x/events.out.tfevents.2.host.1.0").write_bytes(b"")
    runs, failed = discover([tmp_path / "sweep"], skip=(tmp_path / "sweep/cmp").resolve())
    found = [r.relative_to(tmp_path).as_posix() for r in runs]
    assert found == ["sweep/a", "sweep/b", "sweep/c/seed_1"]
    assert failed == [(tmp_path / "sweep/d", "ConfigError: algo.lr: must be > 0")]
    with pytest.raises(ConfigError, match="no such file"):
        discover([tmp_path / "missing"])


def test_load_run_reads_events_summary_and_overrides(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    run_dir = tmp_path / "run"
    writer = SummaryWriter(str(run_dir))
    for step, value in [(100, 1.0), (200, 3.0), (300, 2.0)]:
        writer.add_scalar("eval/episodic_return", value, step)
        writer.add_scalar("charts/episodic_return", value * 10, step)
    writer.close()
    (run_dir / ".hydra").mkdir()
    (run_dir / ".hydra/overrides.yaml").write_text("- algo.lr=0.001\n- seed=4\n")
    (run_dir / "summary.json").write_text(json.dumps(
        {"eval_return_mean": 2.5, "total_steps": 300, "wall_time_s": 12.0, "seed": 4}))
    run = load_run(run_dir, "eval/episodic_return")
    assert run.steps.tolist() == [100, 200, 300] and run.values.tolist() == [1.0, 3.0, 2.0]
    assert run.final == 2.5  # summary.json's final evaluation
    assert (run.seed, run.total_steps, run.wall_time_s) == (4, 300, 12.0)
    assert group_key(run) == ("algo.lr=0.001",)
    assert load_run(run_dir, "charts/episodic_return").final == 20.0  # other tags: the last value
    assert load_run(run_dir, "losses/td_loss") is None
    # A run that ended past its total (vector envs step in batches) reports the steps it took.
    (run_dir / "summary.json").write_text(json.dumps(
        {"eval_return_mean": 2.5, "total_steps": 300, "steps": 304, "wall_time_s": 12.0, "seed": 4}))
    assert load_run(run_dir, "eval/episodic_return").total_steps == 304
