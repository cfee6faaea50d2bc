"""A run's dir: a new run never writes into a dir that holds a run, and a run refused for bad input
removes what it made and nothing else (the real `train` command, in a subprocess)."""

from pathlib import Path

import pytest

from conftest import train_cli
from deeprl.core.errors import ConfigError
from deeprl.core.run_dir import Claim, claim_run_dir, discard_run_dir

SHORT = ["total_steps=600", "algo.learning_starts=100", "eval.episodes=1", "log.progress=false"]


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every file and dir under `folder` with its bytes (None for a dir)."""
    return {str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes() for p in sorted(folder.rglob("*"))}


def one_error_line(result) -> str:
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr + result.stdout
    return lines[0]


def users_files(folder: Path) -> None:
    (folder / "notes.txt").write_text("mine\n")
    (folder / "data").mkdir()
    (folder / "data" / "table.csv").write_text("1,2\n")


def test_bad_input_in_an_existing_dir_removes_only_what_the_run_made(tmp_path):
    """`hydra.run.dir=.` with a typo once removed the whole working dir."""
    users_files(tmp_path)
    before = snapshot(tmp_path)
    line = one_error_line(train_cli("hydra.run.dir=.", "seed=abc", cwd=tmp_path, timeout=120))
    assert line.startswith("deeprl: error: seed: ")
    assert snapshot(tmp_path) == before


def test_a_new_run_is_refused_in_a_dir_that_holds_a_run_and_that_run_is_kept(tmp_path):
    first = train_cli("hydra.run.dir=run", *SHORT, cwd=tmp_path, timeout=180)
    assert first.returncode == 0, first.stderr[-2000:]
    run = tmp_path / "run"
    assert (run / "checkpoints" / "final.pt").is_file()
    before = snapshot(run)
    for args in (["seed=2", *SHORT], ["seed=abc"]):  # a good command and a bad one: both refused, nothing changed
        line = one_error_line(train_cli("hydra.run.dir=run", *args, cwd=tmp_path, timeout=120))
        assert line == (f"deeprl: error: hydra.run.dir: {run} already holds a run; go on with it "
                        f"(train resume={run}) or give this run a new dir (hydra.run.dir=<dir>)")
        assert snapshot(run) == before
    # The advice given works: the run goes on from where it ended.
    resumed = train_cli(f"resume={run}", "total_steps=800", "log.progress=false", cwd=tmp_path, timeout=180)
    assert resumed.returncode == 0, resumed.stderr[-2000:]


def test_a_run_dir_without_a_checkpoint_is_refused_with_advice_that_fits(tmp_path):
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / "train.log").write_text("a run that stopped before its first checkpoint\n")
    line = one_error_line(train_cli("hydra.run.dir=run", cwd=tmp_path, timeout=120))
    assert line == (f"deeprl: error: hydra.run.dir: {run} already holds a run; it has no checkpoint to go on "
                    "from; give this run a new dir (hydra.run.dir=<dir>) or remove it")


def test_bad_input_removes_the_parents_it_made_but_not_those_that_were_there(tmp_path):
    (tmp_path / "runs").mkdir()
    line = one_error_line(train_cli("hydra.run.dir=runs/a/b", "algo.lr=-1", cwd=tmp_path, timeout=120))
    assert line.startswith("deeprl: error: algo.lr: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"] and not any((tmp_path / "runs").iterdir())


def test_a_sweep_that_does_not_compose_leaves_a_dir_that_was_there_as_it_was(tmp_path):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    users_files(sweep)
    before = snapshot(sweep)
    line = one_error_line(train_cli("-m", "algo=dqn,nosuchalgo", "hydra.sweep.dir=sweep", cwd=tmp_path, timeout=120))
    assert line.startswith("deeprl: error: algo: there is no algo config named 'nosuchalgo'")
    assert snapshot(sweep) == before


@pytest.mark.parametrize("where", ["file", "unwritable"])
def test_a_run_dir_that_cannot_be_made_is_one_line(tmp_path, where):
    (tmp_path / "file").write_text("")
    target = "file" if where == "file" else "file/run"  # a dir cannot be made under a file
    line = one_error_line(train_cli(f"hydra.run.dir={target}", cwd=tmp_path, timeout=120))
    assert line.startswith(f"deeprl: error: hydra.run.dir: {tmp_path / target} ")


# The pieces, without a subprocess.


def test_claim_creates_the_dir_and_notes_the_topmost_dir_it_made(tmp_path):
    claim = claim_run_dir(tmp_path / "a" / "b" / "c")
    assert claim == Claim((tmp_path / "a" / "b" / "c").resolve(), (tmp_path / "a").resolve(), frozenset())
    assert (tmp_path / "a" / "b" / "c").is_dir()
    (tmp_path / "a" / "other").mkdir()  # another run's dir beside it: the shared parent stays
    (claim.run_dir / ".hydra").mkdir()
    discard_run_dir(tmp_path / "a" / "b" / "c", claim)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["other"]


def test_discard_leaves_a_dir_it_did_not_claim(tmp_path):
    (tmp_path / "run" / ".hydra").mkdir(parents=True)
    discard_run_dir(tmp_path / "run", None)
    discard_run_dir(tmp_path / "run", Claim((tmp_path / "elsewhere").resolve(), None, frozenset()))
    assert (tmp_path / "run" / ".hydra").is_dir()


@pytest.mark.parametrize("entry", [".hydra/", "checkpoints/", "summary.json", "train.log", "events.out.tfevents.1.host"])
def test_each_trace_of_a_run_makes_a_dir_hold_one(tmp_path, entry):
    if entry.endswith("/"):
        (tmp_path / entry).mkdir()
    else:
        (tmp_path / entry).write_text("")
    with pytest.raises(ConfigError, match="already holds a run"):
        claim_run_dir(tmp_path)
