"""The `compare` console script end to end on a real 2 x 2 sweep (two learning rates, two seeds)."""

import csv
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import consoles
from conftest import as_in_a_terminal, train_cli

TAG = "eval/episodic_return"


def compare_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return consoles.run("compare", *args, cwd=cwd, timeout=120)


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("compare")
    sweep = train_cli("-m", "hydra/launcher=joblib", "algo=dqn", "env=cartpole",
                      "algo.lr=1e-3,5e-4", "seed=1,2", "total_steps=600",
                      "algo.learning_starts=200", "eval.every=200", "eval.episodes=2",
                      "log.progress=false",
                      f"hydra.sweep.dir={tmp / 'sweep'}", cwd=tmp)
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    result = compare_cli(str(tmp / "sweep"), "--out", str(tmp / "cmp"), cwd=tmp)
    assert result.returncode == 0, result.stderr[-3000:]
    return result, tmp / "cmp"


def test_table_groups_by_learning_rate(compared):
    result, out = compared
    assert "| algo.lr=0.001 | 2 |" in result.stdout and "| algo.lr=0.0005 | 2 |" in result.stdout
    assert "P(algo.lr=" in result.stdout  # two groups: probability of improvement
    assert (out / "compare.md").read_text().startswith(f"# compare: {TAG}")
    with open(out / "compare.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["group"] for r in rows) == ["algo.lr=0.0005", "algo.lr=0.001"]
    assert [int(r["n_seeds"]) for r in rows] == [2, 2]
    assert all(r["seeds"] == "1 2" and float(r["steps"]) == 600 for r in rows)
    for r in rows:
        assert float(r["mean_ci95_low"]) <= float(r["mean"]) <= float(r["mean_ci95_high"])
    assert not list(out.rglob("*.tmp")), "temporary files left behind"


def test_plot_is_a_png(compared):
    _, out = compared
    with Image.open(out / "compare.png") as image:
        assert image.format == "PNG"
        assert image.size[0] > 0 and image.size[1] > 0


def test_aggregate_curves_read_back_from_tensorboard(compared):
    _, out = compared
    runs = sorted(p.name for p in (out / "tb").iterdir())
    assert runs == ["algo.lr=0.0005", "algo.lr=0.001"]
    for run in runs:
        acc = EventAccumulator(str(out / "tb" / run), size_guidance={"scalars": 0})
        acc.Reload()
        series = {kind: acc.Scalars(f"{TAG}/{kind}") for kind in ("mean", "lower", "upper")}
        assert [e.step for e in series["mean"]] == [200, 400, 600]
        for mean, lower, upper in zip(*series.values(), strict=True):
            assert lower.value <= mean.value <= upper.value


def test_empty_dir_is_an_error_and_writes_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    result = compare_cli(str(tmp_path / "empty"), "--out", str(tmp_path / "cmp"), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("compare: error:")
    assert len(result.stderr.strip().splitlines()) == 1
    assert str(tmp_path / "empty") in result.stderr
    assert not (tmp_path / "cmp").exists()


def write_run(run_dir: Path, points: dict[str, list], overrides: list[str]) -> None:
    """A run dir with event files holding `points` ({tag: [(step, value)]}) and its overrides."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(run_dir))
    for tag, series in points.items():
        for step, value in series:
            writer.add_scalar(tag, value, step)
    writer.close()
    (run_dir / ".hydra").mkdir()
    (run_dir / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))


def test_notes_on_failed_jobs_missing_tags_and_truncated_curves(tmp_path, capsys):
    from deeprl.compare import main

    sweep = tmp_path / "sweep"
    curve = [(100 * i, float(i)) for i in range(1, 6)]
    write_run(sweep / "a1", {TAG: curve}, ["algo=ppo", "seed=1"])
    write_run(sweep / "a2", {TAG: curve[:3]}, ["algo=ppo", "seed=2"])  # stopped early
    write_run(sweep / "b1", {TAG: [(s, v / 2) for s, v in curve]}, ["algo=a2c", "seed=1"])
    write_run(sweep / "c1", {"charts/episodic_return": curve}, ["algo=dqn", "seed=1"])
    write_run(sweep / "c2", {"charts/episodic_return": curve}, ["algo=dqn", "seed=2"])  # stopped before an eval
    (sweep / "c2" / "checkpoints").mkdir()
    (sweep / "c2" / "checkpoints" / "step_500.pt").write_bytes(b"")
    (sweep / "d1").mkdir()
    (sweep / "d1" / "failed.txt").write_text("algo.lr: must be a number > 0, got -1\n")
    out = tmp_path / "cmp"
    main([str(sweep), "--out", str(out), "--metric", "iqm", "--smooth", "2", "--reps", "500"])
    stdout = capsys.readouterr().out
    notes = [line for line in stdout.splitlines() if line.startswith("compare: ")]
    assert len(notes) == 5, stdout
    assert notes[0].startswith("compare: skipped 1 failed job (algo.lr: must be a number > 0")
    assert notes[1] == (f"compare: skipped 1 unfinished run without '{TAG}' yet (train resume=<run dir> goes on "
                        f"with it): {sweep / 'c2'}")
    assert notes[2] == f"compare: skipped 1 run without '{TAG}': {sweep / 'c1'}"
    assert notes[3] == ("compare: algo=ppo: runs end at steps 300..500; curves truncated to step "
                        "300, where the shortest (seed 2) ends")
    assert notes[4] == ("compare: 1 group of one run (algo=a2c): no std or confidence interval; "
                        "run more seeds for one (e.g. seed=1,2,3)")
    assert "95% CI of IQM" in stdout and "P(algo=ppo > algo=a2c)" in stdout
    with open(out / "compare.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["group"], r["n_seeds"]) for r in rows] == [("algo=ppo", "2"), ("algo=a2c", "1")]
    assert float(rows[0]["iqm_ci95_low"]) <= float(rows[0]["iqm_ci95_high"])
    assert rows[1]["iqm_ci95_low"] == rows[1]["iqm_ci95_high"] == "nan"  # one run: no interval
    assert "| algo=a2c | 1 | " in stdout and "| [–, –] |" in stdout
    acc = EventAccumulator(str(out / "tb" / "algo=ppo"), size_guidance={"scalars": 0})
    acc.Reload()
    assert [e.step for e in acc.Scalars(f"{TAG}/iqm")] == [100, 200, 300]
    assert [e.value for e in acc.Scalars(f"{TAG}/iqm")] == [1.0, 1.5, 2.5]  # smoothed over 2 points

    with pytest.raises(SystemExit) as exit_info:
        main([str(sweep), "--out", str(tmp_path / "cmp2"), "--tag", "losses/nope"])
    assert exit_info.value.code == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith("compare: error: --tag: no run under")
    assert "charts/episodic_return" in stderr  # the tags that are there
    assert not (tmp_path / "cmp2").exists()


def test_an_out_dir_that_cannot_be_written_is_one_line_and_no_partial_file(compared, tmp_path):
    """A full disk or a quota, made real with a 4 KB file-size limit: the table and csv fit, the plot
    does not."""
    import resource
    import signal

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    _, out = compared
    result = subprocess.run([str(Path(sys.executable).parent / "compare"), str(out.parent / "sweep"), "--out",
                             str(tmp_path / "cmp")], capture_output=True, text=True, timeout=120, preexec_fn=limit)
    assert (result.returncode, result.stderr.strip()) == (
        2, f"compare: error: --out: cannot write to {tmp_path / 'cmp'}: File too large; make room, or pass another --out")
    assert not (tmp_path / "cmp").exists()  # all or nothing: no table without its plot


def test_an_out_dir_under_a_file_is_one_line(compared, tmp_path, capsys):
    from deeprl.compare import main

    _, out = compared
    (tmp_path / "afile").write_text("kept\n")
    with pytest.raises(SystemExit) as exit_info:
        main([str(out.parent / "sweep"), "--out", str(tmp_path / "afile" / "cmp")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == (
        f"compare: error: --out: {tmp_path / 'afile' / 'cmp'} cannot be created (Not a directory); pass another --out")
    assert (tmp_path / "afile").read_text() == "kept\n"


# compare, with a Ctrl-C sent to itself while it draws the plot (after the table and csv are
# staged), inside a __del__ (where Python would drop it) when asked.
CTRL_C_IN_PLOT = """
import os, signal, sys
import deeprl.compare as compare

class Closed:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):
            pass

def plot(*args, **kwargs):
    if sys.argv[1] == "in_del":
        Closed()
    else:
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):
            pass

compare.plot = plot
compare.main(sys.argv[2:])
"""


@pytest.mark.parametrize("where", ["plain", "in_del"])
def test_ctrl_c_stops_compare_in_one_line_and_leaves_the_out_dir_as_it_was(compared, tmp_path, where):
    result, out = compared
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    stopped = subprocess.run([sys.executable, "-c", CTRL_C_IN_PLOT, where, str(out.parent / "sweep"), "--out",
                              str(out)], capture_output=True, text=True, timeout=120, preexec_fn=as_in_a_terminal)
    assert (stopped.returncode, stopped.stderr.strip()) == (130, "compare: stopped by SIGINT; nothing half-written "
                                                                 "is left")
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    fresh = subprocess.run([sys.executable, "-c", CTRL_C_IN_PLOT, where, str(out.parent / "sweep"), "--out",
                            str(tmp_path / "new")], capture_output=True, text=True, timeout=120,
                           preexec_fn=as_in_a_terminal)
    assert fresh.returncode == 130 and not (tmp_path / "new").exists()
