"""Planners and tabular learners through `train`: run dir files, events, console output, errors."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import compose_config, run_in_process, train_cli
from deeprl.build import build
from deeprl.core.checkpoint import load
from deeprl.core.errors import ConfigError
from deeprl.loops.planning import recorded
from deeprl.validate import validate

QUICK_EVAL = ["eval.episodes=3", "log.progress=false"]


def load_events(run_dir: Path) -> EventAccumulator:
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def read_values(run_dir: Path, name: str = "values.csv") -> list[dict]:
    with open(run_dir / name) as f:
        return list(csv.DictReader(f))


def read_sweeps(run_dir: Path) -> tuple[list[str], dict[int, dict]]:
    """values_by_sweep.csv as (header, {sweep: {(row, col) or state: value}})."""
    with open(run_dir / "values_by_sweep.csv") as f:
        rows = list(csv.reader(f))
    header, by_sweep = rows[0], {}
    for row in rows[1:]:
        where = (int(row[1]), int(row[2])) if header[1] == "row" else int(row[1])
        by_sweep.setdefault(int(row[0]), {})[where] = float(row[-1])
    return header, by_sweep


@pytest.fixture(scope="module")
def value_iteration_cli(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("vi")
    result = train_cli("algo=value_iteration", "env=gridworld_4x3", *QUICK_EVAL, cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = list((cwd / "outputs" / "value_iteration" / "gridworld_4x3").iterdir())
    assert len(runs) == 1
    return result, runs[0]


def test_value_iteration_cli_writes_summary_values_and_policy(value_iteration_cli):
    result, run_dir = value_iteration_cli
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["algo"] == "value_iteration" and summary["env"] == "GridWorld-4x3"
    assert summary["converged"] and 10 < summary["sweeps"] < 100
    assert summary["start_value"] == pytest.approx(0.705, abs=5e-4)  # tuned preset: gamma = 1
    assert summary["eval_episodes"] == 3 and -1.5 < summary["eval_return_mean"] <= 1.0
    assert (run_dir / "checkpoints" / "final.pt").is_file()

    rows = read_values(run_dir)
    assert len(rows) == 11 and rows[0].keys() >= {"state", "row", "col", "cell", "value", "action", "q_N"}
    start = next(row for row in rows if row["cell"] == "S")
    assert float(start["value"]) == pytest.approx(0.705, abs=5e-4) and start["action"] == "N"
    assert (run_dir / "policy.txt").read_text(encoding="utf-8") == "→ → → +\n↑ # ↑ -\n↑ ← ← ←\n"
    # The console shows the value grid.
    assert "0.812    0.868    0.918        +" in result.stdout
    assert "↑ ← ← ←" in result.stdout
    n = summary["sweeps"]
    assert f"value_iteration: converged after {n} sweeps, last max |dV| = " in result.stdout
    assert f" | {n} sweeps in " in result.stdout


def test_a_finished_planner_is_not_resumed_and_its_run_dir_is_left_as_it_was(value_iteration_cli):
    """A planner ends when it converges or after algo.max_sweeps, neither of which a resume may
    change, and total_steps does not count its sweeps: a resume is refused, whatever total_steps."""
    _, run_dir = value_iteration_cli
    before = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in run_dir.rglob("*")}
    for extra in ([], ["total_steps=10000000"]):
        result = train_cli(f"resume={run_dir}", *extra, cwd=run_dir.parent)
        assert result.returncode == 2, result.stderr[-3000:]
        assert result.stderr == (f"deeprl: error: resume: {run_dir} is a finished value_iteration run: a planner "
                                 "ends when it converges or after algo.max_sweeps sweeps, and a resume changes "
                                 "neither; start a new run to plan again (e.g. with a higher algo.max_sweeps)\n")
    assert {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in run_dir.rglob("*")} == before


def test_one_sweep_is_said_in_the_singular(tmp_path):
    # Taxi's starting policy (shortest paths to a terminal) is already optimal: one improvement.
    result = train_cli("algo=policy_iteration", "env=taxi", "eval.episodes=1", "log.progress=false", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "policy_iteration: converged after 1 sweep, last max |dV| = " in result.stdout
    assert " | 1 sweep in " in result.stdout


def test_value_iteration_cli_writes_the_values_after_every_sweep(value_iteration_cli):
    _, run_dir = value_iteration_cli
    summary = json.loads((run_dir / "summary.json").read_text())
    header, by_sweep = read_sweeps(run_dir)
    assert header == ["sweep", "row", "col", "value"]
    assert list(by_sweep) == list(range(summary["sweeps"] + 1))  # sweep 0 = V_0, then every sweep
    assert all(len(values) == 11 for values in by_sweep.values())  # the 11 open cells, not the wall
    assert (1, 1) not in by_sweep[0] and set(by_sweep[0].values()) == {0.0}  # V_0 = 0 by default
    final = {(int(r["row"]), int(r["col"])): float(r["value"]) for r in read_values(run_dir)}
    assert by_sweep[summary["sweeps"]] == pytest.approx(final, abs=1e-5)


def test_value_iteration_cli_logs_convergence_and_value_images(value_iteration_cli):
    _, run_dir = value_iteration_cli
    acc = load_events(run_dir)
    deltas = acc.Scalars("planning/max_delta")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [e.step for e in deltas] == list(range(1, summary["sweeps"] + 1))
    assert deltas[-1].value < 1e-8 <= deltas[-2].value
    # The final evaluation and checkpoint stand at the last sweep, on the planning curves' x axis,
    # not at total_steps (50000 by default), which planners ignore.
    n = summary["sweeps"]
    assert [e.step for e in acc.Scalars("eval/episodic_return")] == [n]
    assert summary["steps"] == n and [e["step"] for e in summary["evaluations"]] == [n]
    assert load(run_dir / "checkpoints" / "final.pt")["step"] == n
    images = acc.Images("planning/values")
    # Every 5 sweeps (the 4x3 preset) and once at the end.
    assert [e.step for e in images] == [*range(5, summary["sweeps"], 5), summary["sweeps"]]
    assert images[-1].width > 100 and images[-1].height > 100


@pytest.mark.parametrize(("overrides", "message"), [
    (['env.layout=["S.x+"]'], "env.layout: unknown cell 'x' at row 0, column 2"),
    (['env.layout=["S..+", ".#."]'], "env.layout: rows must all have the same length"),
    (['env.layout=["...+"]'], "env.layout: has no start cell; mark one with 'S'"),
    (["env.slip=1.5"], "env.slip: is the probability of the intended move and must be a number in [0, 1]"),
])
def test_bad_gridworlds_fail_before_the_run_with_one_line(tmp_path, overrides, message):
    result = train_cli("algo=value_iteration", "env=gridworld", *overrides, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"deeprl: error: {result.stderr.split('error: ', 1)[1].strip()}"]
    assert message in result.stderr
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize(("override", "key"), [
    ("algo.tol=0", "algo.tol"),
    ("algo.max_sweeps=0", "algo.max_sweeps"),
    ("algo.gamma=1.5", "algo.gamma"),
    ("env.terminal=exit", "env.terminal"),
    ("env.step_reward=cheap", "env.step_reward"),
])
def test_planner_config_values_are_validated(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(compose_config("algo=value_iteration", "env=gridworld_4x3", override))


@pytest.mark.parametrize(("algo", "override", "key"), [
    ("q_learning", "algo.alpha=1.5", "algo.alpha"),
    ("q_learning", "algo.alpha=0", "algo.alpha"),
    ("q_learning", "algo.exploration.temperature=0", "algo.exploration.temperature"),
    ("sarsa", "algo.exploration.kind=softmax", "algo.exploration.kind"),
    ("q_learning", "algo.alpha_decay=sometimes", "algo.alpha_decay"),
    ("policy_iteration", "algo.evaluation=guess", "algo.evaluation"),
    ("fitted_q_iteration", "algo.regressor=forest", "algo.regressor"),
    ("fitted_q_iteration", "algo.behaviour_epsilon=2", "algo.behaviour_epsilon"),
])
def test_learner_config_values_are_validated(algo, override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(compose_config(f"algo={algo}", "env=maze", override))


@pytest.mark.parametrize(("algo", "env", "overrides"), [
    ("policy_iteration", "gridworld_4x3", ["algo.evaluation=iterative", "algo.eval_sweeps=5"]),
    ("value_iteration", "maze", ["algo.gamma=1.0", "env.slip=0.9"]),
    ("value_iteration", "frozenlake8x8", []),
    ("policy_iteration", "cliffwalking", ["algo.gamma=1.0"]),
    ("value_iteration", "taxi", []),
])
def test_planners_run_on_every_world(tmp_path, algo, env, overrides):
    summary = run_in_process(tmp_path, f"algo={algo}", f"env={env}", *QUICK_EVAL, *overrides)
    assert summary["converged"]
    rows = read_values(tmp_path)
    n_states = {"gridworld_4x3": 11, "maze": 43, "frozenlake8x8": 64, "cliffwalking": 48, "taxi": 500}[env]
    assert len(rows) == n_states and all(np.isfinite(float(row["value"])) for row in rows)
    # values_by_sweep.csv for every world: the cells of a grid (cliff cells have no state), or
    # every state without one; every sweep for small worlds, a thinned record for Taxi's 500 states.
    header, by_sweep = read_sweeps(tmp_path)
    grid_header = ["sweep", "row", "col", "value"]
    assert header == (["sweep", "state", "value"] if env == "taxi" else grid_header)
    cells = {"cliffwalking": 38}.get(env, n_states)
    assert all(len(values) == cells for values in by_sweep.values())
    every = env != "taxi"  # 500 states x 10001 sweeps is past the record's 1M values
    kept = {k for k in range(summary["sweeps"] + 1) if recorded(k, every)}
    assert list(by_sweep) == sorted(kept | {summary["sweeps"]})
    assert (tmp_path / "policy.txt").read_text(encoding="utf-8").strip()
    if env == "cliffwalking":
        assert summary["start_value"] == pytest.approx(-13.0) and summary["eval_return_mean"] == -13.0
    if env == "taxi":  # no grid: one line per state
        assert len((tmp_path / "policy.txt").read_text().splitlines()) == 500
        assert summary["eval_return_mean"] > 0


@pytest.mark.parametrize(("algo", "env", "overrides"), [
    ("q_learning", "gridworld_4x3", []),
    ("sarsa", "maze", ["algo.exploration.kind=boltzmann", "algo.alpha_decay=visits"]),
    ("q_learning", "frozenlake", ["algo.alpha_decay=linear", "num_envs=2"]),
    ("fitted_q_iteration", "gridworld_4x3", []),
    ("fitted_q_iteration", "maze", ["algo.regressor=mlp", "algo.iterations=3", "algo.fit_steps=20",
                                    "algo.behaviour=expert"]),
])
def test_learners_run_and_leave_the_same_reports(tmp_path, algo, env, overrides):
    summary = run_in_process(tmp_path, f"algo={algo}", f"env={env}", "total_steps=1500", "eval.every=1000",
                             "log.every=200", "algo.figure_every=1000", *QUICK_EVAL, *overrides)
    assert summary["algo"] == algo and np.isfinite(summary["eval_return_mean"])
    assert (tmp_path / "values.csv").is_file() and (tmp_path / "policy.txt").is_file()
    acc = load_events(tmp_path)
    scalars = set(acc.Tags()["scalars"])
    assert {"charts/episodic_return", "eval/episodic_return"} <= scalars
    assert acc.Images("planning/values")
    if algo == "fitted_q_iteration":
        assert {"planning/max_delta", "losses/fit_loss"} <= scalars
        assert summary["dataset_size"] == 1500 and summary["rewarded_transitions"] > 0
    else:
        assert {"losses/td_error", "charts/learning_rate"} <= scalars
        assert [e.step for e in acc.Scalars("eval/episodic_return")][:1] == [1000]


def test_fitted_q_iteration_says_when_its_data_holds_no_reward(tmp_path, capsys):
    """FrozenLake 8x8 pays only at the goal, 14 moves from the start: 10 steps of data cannot reach
    it, every target is 0 and the run 'converges' at once; a warning must say what that means."""
    summary = run_in_process(tmp_path, "algo=fitted_q_iteration", "env=frozenlake8x8", "total_steps=10",
                             *QUICK_EVAL)
    assert summary["converged"] and summary["iterations"] == 1 and summary["rewarded_transitions"] == 0
    assert ("deeprl | warning: no transition in the data has a reward, so Q is 0 and the greedy policy "
            "arbitrary; collect more (total_steps) or use algo.behaviour=expert") in capsys.readouterr().out


def test_planners_need_a_state_index_and_networks_a_vector(tmp_path):
    with pytest.raises(ConfigError, match="env: value_iteration is tabular"):
        build(compose_config("algo=value_iteration", "env=cartpole"), tmp_path)
    with pytest.raises(ConfigError, match="env.one_hot: dqn feeds observations to a network, .* set env.one_hot=true"):
        build(compose_config("algo=dqn", "env=gridworld_4x3"), tmp_path)


def test_dqn_runs_on_a_one_hot_gridworld(tmp_path):
    summary = run_in_process(tmp_path, "algo=dqn", "env=maze", "env.one_hot=true", "total_steps=300",
                             "algo.learning_starts=100", "eval.every=0", *QUICK_EVAL)
    assert summary["total_steps"] == 300 and summary["eval_return_mean"] >= -200


# The course's value-iteration example (env/cost_maze.yaml): costs, minimised, gamma = 0.9, V_0 = C.
COST_MAZE_V0 = {(0, 0): 0.0, (0, 1): 0.0, (0, 2): 0.0, (0, 3): -1.0,
                (1, 0): 0.0, (1, 2): 0.0, (1, 3): 1.0,
                (2, 0): 0.0, (2, 1): 0.0, (2, 2): 0.0, (2, 3): 0.0}


@pytest.fixture(scope="module")
def cost_maze_cli(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("cost_maze")
    result = train_cli("algo=value_iteration", "env=cost_maze", *QUICK_EVAL, cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = (cwd / "outputs" / "value_iteration" / "cost_maze").iterdir()
    return result, run_dir


def test_cost_maze_cli_writes_values_by_sweep_in_costs(cost_maze_cli):
    result, run_dir = cost_maze_cli
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["converged"] and summary["sweeps"] < 1000
    header, by_sweep = read_sweeps(run_dir)
    assert header == ["sweep", "row", "col", "value"]
    assert list(by_sweep) == list(range(summary["sweeps"] + 1))
    assert by_sweep[0] == COST_MAZE_V0  # sweep 0: V_0 = each cell's own cost; no wall row
    assert by_sweep[1][(0, 2)] == pytest.approx(-0.9) and by_sweep[1][(0, 3)] == pytest.approx(-1.9)
    last = by_sweep[summary["sweeps"]]
    assert last[(0, 3)] == pytest.approx(-10.0, abs=1e-6)
    assert last[(1, 3)] == pytest.approx(10.0, abs=1e-6)
    # values.csv and the console are in costs too: V is the cost-to-go, the policy minimises it.
    values = {(int(r["row"]), int(r["col"])): r for r in read_values(run_dir)}
    assert float(values[(2, 0)]["value"]) == pytest.approx(-5.9049, abs=1e-6)
    assert values[(0, 2)]["action"] == "E"
    assert values[(0, 3)]["action"] == ""  # G: every action stays
    assert summary["start_cost"] == pytest.approx(-5.9049, abs=1e-6) == -summary["start_value"]
    assert "V (cost-to-go; the policy minimises it):" in result.stdout
    assert "  -7.290   -8.100   -9.000  -10.000" in result.stdout
    assert "  -6.561        #   -8.100   10.000" in result.stdout
    policy = (run_dir / "policy.txt").read_text(encoding="utf-8")
    assert policy == "→ → → G\n↑ # ↑ R\n↑ → ↑ ←\n"


def test_cost_maze_values_by_sweep_survive_a_resume(tmp_path):
    overrides = ["algo=value_iteration", "env=cost_maze", *QUICK_EVAL, "checkpoint.every=5",
                 "checkpoint.keep=0", "eval.every=0"]
    build(compose_config(*overrides), tmp_path / "whole").execute()
    # Resume from sweep 5 as `train resume=` does: the record of sweeps 0-5 is in the checkpoint.
    state = load(tmp_path / "whole" / "checkpoints" / "step_5.pt")
    cfg = OmegaConf.create(state["config"])
    OmegaConf.set_struct(cfg, True)
    build(cfg, tmp_path / "cut", resume_from=state).execute()
    whole = (tmp_path / "whole" / "values_by_sweep.csv").read_text()
    assert (tmp_path / "cut" / "values_by_sweep.csv").read_text() == whole


@pytest.mark.learning
def test_q_learning_finds_the_policy_that_minimises_the_cost_maze_cost(tmp_path):
    """Exact claim (the greedy policy takes a cost-minimising action in every state, ties allowed),
    so it must hold on each of seeds 1, 2, 3, with the preset tuned/q_learning_cost_maze.yaml."""
    from deeprl.envs.gridworld import GridWorld, gridworld_kwargs

    model = GridWorld(**gridworld_kwargs(compose_config("env=cost_maze").env)).model
    planner = build(compose_config("algo=value_iteration", "env=cost_maze", "algo.tol=1e-12",
                                   *QUICK_EVAL), tmp_path / "vi")
    planner.execute()
    cost_q = model.sign * planner.agent.Q  # the cost of each action: C(s) + gamma V*(s')
    optimal = cost_q <= cost_q.min(axis=1, keepdims=True) + 1e-6
    for seed in (1, 2, 3):
        run = build(compose_config("algo=q_learning", "env=cost_maze", f"seed={seed}",
                                   "eval.every=0", *QUICK_EVAL), tmp_path / f"q{seed}")
        run.execute()
        # The learner maximises -cost: its greedy action minimises the cost.
        greedy = run.agent.Q.argmax(axis=1)
        wrong = [int(s) for s in range(model.n_states) if not optimal[s, greedy[s]]]
        assert not wrong, f"seed {seed}: states {wrong} do not minimise the cost: {cost_q[wrong]}"


@pytest.mark.parametrize("rule", ["q_learning", "sarsa"])
def test_the_one_env_loop_learns_and_logs_exactly_as_the_batch_loop(tmp_path, rule):
    """A run of one env steps through the loop's scalar form; the batch form, run on the same one
    env, must give the same table, the same episodes and the same logged scalars, exactly. Slippery
    FrozenLake cut at 7 steps ends episodes both ways: terminated and truncated."""
    overrides = [f"algo={rule}", "env=frozenlake", "env.max_episode_steps=7", "total_steps=4000", "log.every=100",
                 "eval.every=0", "eval.episodes=2", "algo.figure_every=0", "log.progress=false"]
    runs = {}
    for form in ("one", "batch"):
        run = build(compose_config(*overrides), tmp_path / form)
        if form == "batch":
            run.loop._run_one = run.loop._run_batch
        run.execute()
        runs[form] = run
    one, batch = runs["one"], runs["batch"]
    assert np.array_equal(one.agent.Q, batch.agent.Q) and np.array_equal(one.agent.visits, batch.agent.visits)
    assert np.abs(one.agent.Q).max() > 0  # it reached the goal at least once
    assert one.session._recent == batch.session._recent
    events = {form: load_events(tmp_path / form) for form in runs}
    for tag in ("losses/td_error", "losses/q_values", "charts/episodic_return", "charts/episodic_length"):
        logged = {form: [(e.step, e.value) for e in acc.Scalars(tag)] for form, acc in events.items()}
        assert logged["one"] == logged["batch"] and len(logged["one"]) >= 40, tag
    lengths = [e.value for e in events["one"].Scalars("charts/episodic_length")]
    assert 7 in lengths and min(lengths) < 7  # truncated episodes and ended ones
