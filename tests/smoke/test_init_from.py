"""`init_from=<run dir or checkpoint>`: a new run starts from what another run's agent learned.

What is carried is the agent's `LEARNED` entries (networks and their targets, a Q table); the rest
of the agent (optimizer state, counters, random streams) is exactly a fresh run's, so the new run's
own config (a learning rate, a schedule) applies. A run that cannot start from the given one is
refused in one line before anything is written.
"""

import json
import shutil

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from conftest import compose_config, run_in_process, train_cli
from deeprl.build import build
from deeprl.core.checkpoint import load
from deeprl.core.errors import ConfigError

SOURCES = {
    "dqn": ["algo=dqn", "env=cartpole", "total_steps=1200", "algo.learning_starts=400"],
    # The observation normaliser's running statistics travel with the network.
    "ppo_normalized": ["algo=ppo", "env=cartpole", "algo.normalize_obs=true", "total_steps=1024",
                       "algo.n_steps=128"],
    "sac": ["algo=sac", "env=pendulum", "total_steps=400", "algo.learning_starts=200", "algo.batch_size=32"],
    "td3": ["algo=td3", "env=pendulum", "total_steps=400", "algo.learning_starts=200", "algo.batch_size=32"],
    "q_learning": ["algo=q_learning", "env=frozenlake", "total_steps=2000"],
}
QUIET = ["eval.every=0", "eval.episodes=2", "device=cpu"]
SHAPES = "whose networks have the same shapes (the same env, network.* and algo settings such as algo.dueling)"


def same(a, b) -> bool:
    """Equal, through nested dicts and lists of tensors, arrays and plain values."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and np.array_equal(a, b)
    return a == b


@pytest.mark.parametrize("family", list(SOURCES))
def test_a_new_run_carries_what_the_agent_learned_and_nothing_else(tmp_path, family):
    overrides = [*SOURCES[family], *QUIET]
    run_in_process(tmp_path / "source", *overrides)
    source = load(tmp_path / "source" / "checkpoints" / "final.pt")["agent"]
    runs = [build(compose_config(*overrides, "seed=2", *extra), tmp_path / name)
            for name, extra in (("fresh", []), ("new", [f"init_from={tmp_path / 'source'}"]))]
    for run in runs:
        run.envs.close()
    fresh, started = (run.agent for run in runs)
    learned, state, before = started.LEARNED, started.state_dict(), fresh.state_dict()
    for key in learned:
        assert same(state[key], source[key]), f"{key} was not carried"
        assert not same(before[key], source[key]), f"{key}: the fresh agent already had it (the check proves nothing)"
    for key in state.keys() - set(learned):  # optimizer, counters, generators: as a fresh run's
        assert same(state[key], before[key]), f"{key} was carried, or the loading changed it"


def test_the_new_run_scores_as_the_agent_it_starts_from_and_uses_its_own_hyperparameters(tmp_path):
    """Shorter than learning_starts, the new run never updates: its final evaluation (the same eval
    seeds) is the source's, and its optimizer is its own, at its own learning rate."""
    overrides = [*SOURCES["dqn"], *QUIET, "eval.episodes=5"]
    source = run_in_process(tmp_path / "source", *overrides)
    summary = run_in_process(tmp_path / "new", "algo=dqn", "env=cartpole", "total_steps=200", "algo.learning_starts=400",
                             "algo.lr=0.0123", *QUIET, "eval.episodes=5", f"init_from={tmp_path / 'source'}")
    assert summary["eval_return_mean"] == source["eval_return_mean"]
    final = load(tmp_path / "new" / "checkpoints" / "final.pt")
    assert same(final["agent"]["q"], load(tmp_path / "source" / "checkpoints" / "final.pt")["agent"]["q"])
    optimizer = final["agent"]["optimizer"]
    assert optimizer["state"] == {} and [g["lr"] for g in optimizer["param_groups"]] == [0.0123]
    # A resumed run keeps its own agent: init_from is not applied again (the source is gone).
    (tmp_path / "source" / "checkpoints" / "final.pt").unlink()
    state = load(tmp_path / "new" / "checkpoints" / "final.pt")
    cfg = OmegaConf.create(state["config"])  # the run's own config, init_from included
    cfg.total_steps = 400
    resumed = build(cfg, tmp_path / "new", resume_from=state).execute()
    assert resumed["steps"] == 400 and resumed["resumed"][0]["step"] == 200


def test_the_console_says_what_the_run_starts_from(tmp_path):
    trained = train_cli("algo=dqn", "env=cartpole", "total_steps=304", "algo.learning_starts=100", *QUIET,
                        "checkpoint.every=152", "log.progress=false", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-3000:]
    [source] = list((tmp_path / "outputs" / "dqn" / "cartpole").iterdir())
    result = train_cli("algo=double_dqn", "env=cartpole", f"init_from={source}", "total_steps=300",
                       "algo.learning_starts=400", *QUIET, "log.progress=false", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[1] == (f"deeprl | note: the agent starts from what dqn learned on CartPole-v1 in "
                        f"{source / 'checkpoints' / 'final.pt'} (step 304): q, q_target; the rest (optimizer, "
                        "schedules, buffer) starts afresh as configured")
    assert lines[2].endswith("the agent is never updated and scores as it started (init_from); raise total_steps "
                             "or lower algo.learning_starts")
    [new] = list((tmp_path / "outputs" / "double_dqn" / "cartpole").iterdir())
    assert lines[1].removeprefix("deeprl | ") in (new / "train.log").read_text()
    assert json.loads((new / "summary.json").read_text())["steps"] == 304
    # A sweep job's dir, with its `=` and `,`, is taken as written (Hydra would read an override),
    # and a relative path is kept absolute in the new run's config.
    job = tmp_path / "multirun" / "algo=dqn,seed=1"
    shutil.copytree(source, job)
    result = train_cli("init_from=multirun/algo=dqn,seed=1", "total_steps=8", *QUIET, "log.progress=false",
                       "hydra.run.dir=from_job", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f" in {job / 'checkpoints' / 'final.pt'} (step 304): " in result.stdout.splitlines()[1]
    assert OmegaConf.load(tmp_path / "from_job" / ".hydra" / "config.yaml").init_from == str(job)
    # A run that has not finished (no final.pt): its newest checkpoint, and the note says so.
    (job / "checkpoints" / "final.pt").unlink()
    result = train_cli(f"init_from={job}", "total_steps=8", *QUIET, "log.progress=false", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (f" in {job / 'checkpoints' / 'step_152.pt'} (step 152, the newest checkpoint of a run that has not "
            "finished): ") in result.stdout.splitlines()[1]


def test_a_run_that_cannot_start_from_the_given_one_is_refused_in_one_line_and_leaves_nothing(tmp_path):
    source = tmp_path / "outputs" / "dqn" / "cartpole" / "source"
    run_in_process(source, "algo=dqn", "env=cartpole", "total_steps=200", *QUIET)
    final = source / "checkpoints" / "final.pt"
    cases = [
        (["algo=dueling_dqn"], f"{final} (dqn on CartPole-v1) does not fit this run: its 'q' has no head.value.weight; "
                               f"start from a run {SHAPES}"),
        (["algo=ppo"], f"{final} holds a dqn agent and this run trains ppo; start from a run of ppo"),
        (["env=acrobot"], f"{final} (dqn on CartPole-v1) does not fit this run: its 'q' torso.layers.0.weight is "
                          f"[128, 4] there and [128, 6] here; start from a run {SHAPES}"),
        (["algo=value_iteration", "env=gridworld_4x3"], "value_iteration does not start from another run's agent (it "
                                                        "is for the DQN family, the policy-gradient algorithms, DDPG, "
                                                        "TD3, SAC, q_learning and sarsa); drop init_from"),
        ([], f"{tmp_path / 'outputs'} is not a run dir but holds one; pass it: init_from={source}", tmp_path / "outputs"),
    ]
    for extra, message, *path in cases:
        cfg = compose_config(f"init_from={path[0] if path else source}", *extra, "log.progress=false")
        with pytest.raises(ConfigError) as refused:
            build(cfg, tmp_path / "refused")
        assert str(refused.value) == f"init_from: {message}", extra
    # From the command line: one line, exit status 2, and the refused run's dir is removed.
    for args, message in [([f"init_from={source}", "network.hidden_sizes=[32]"],
                           f"{final} (dqn on CartPole-v1) does not fit this run: its 'q' torso.layers.0.weight is "
                           f"[128, 4] there and [32, 4] here; start from a run {SHAPES}"),
                          ([f"init_from={tmp_path / 'nope'}"],
                           f"{tmp_path / 'nope'}: no such file or directory; pass a run dir or a .pt file")]:
        result = train_cli(*args, "log.progress=false", cwd=tmp_path)
        assert (result.returncode, result.stderr.strip()) == (2, f"deeprl: error: init_from: {message}")
    assert list((tmp_path / "outputs").glob("*/*/*")) == [source]


@pytest.mark.cuda
def test_a_run_on_one_device_starts_from_a_run_on_the_other(tmp_path):
    """A GPU run's agent into a CPU run and the reverse: the tensors are read to the CPU and
    copied onto the new agent's device."""
    overrides = [*SOURCES["sac"], "eval.every=0", "eval.episodes=2"]
    for source_device, new_device in (("cuda", "cpu"), ("cpu", "cuda")):
        source = tmp_path / f"from_{source_device}"
        run_in_process(source, *overrides, f"device={source_device}")
        saved = load(source / "checkpoints" / "final.pt")["agent"]  # to the CPU
        run = build(compose_config(*overrides, f"device={new_device}", f"init_from={source}"), tmp_path / "new")
        run.envs.close()
        state = run.agent.state_dict()
        for key in run.agent.LEARNED:
            assert all(t.device.type == new_device for t in state[key].values())
            assert same({k: t.cpu() for k, t in state[key].items()}, saved[key])
