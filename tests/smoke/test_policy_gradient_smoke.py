"""Each policy-gradient algorithm runs a few hundred steps on CartPole (discrete) and Pendulum
(continuous) in-process, and writes the TensorBoard tags it promises."""

import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import CONF_DIR, compose_config, run_in_process
from deeprl.build import build
from deeprl.core.checkpoint import load
from deeprl.core.errors import ConfigError

COMMON = {"charts/episodic_return", "charts/episodic_length", "charts/SPS", "charts/learning_rate",
          "losses/policy_loss", "losses/entropy", "eval/episodic_return"}
CRITIC = {"losses/value_loss", "losses/explained_variance"}
TAGS = {
    "reinforce": COMMON | CRITIC,
    "actor_critic": COMMON | CRITIC,
    "a2c": COMMON | CRITIC,
    "ppo": COMMON | CRITIC | {"losses/approx_kl", "losses/clipfrac"},
}
# Small, fast settings (the presets are tuned for learning, not for a smoke test).
QUICK = {
    "reinforce": ["algo.batch_steps=200"],
    "actor_critic": ["algo.n_steps=50", "algo.target_updates=2", "algo.critic_steps=2"],
    "a2c": ["algo.n_steps=5"],
    "ppo": ["algo.n_steps=64", "algo.n_epochs=2", "algo.num_minibatches=2"],
}


def scalars(run_dir: Path) -> EventAccumulator:
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return acc


@pytest.mark.parametrize("env", ["cartpole", "pendulum"])
@pytest.mark.parametrize("algo", sorted(TAGS))
def test_runs_and_logs_its_tags(tmp_path, algo, env):
    summary = run_in_process(tmp_path, f"algo={algo}", f"env={env}", "total_steps=600", "num_envs=2",
                             "eval.every=300", "eval.episodes=2", "log.every=100", *QUICK[algo])
    assert summary["total_steps"] == 600 and summary["eval_episodes"] == 2
    acc = scalars(tmp_path)
    tags = set(acc.Tags()["scalars"])
    assert TAGS[algo] <= tags, TAGS[algo] - tags
    steps = [e.step for e in acc.Scalars("charts/episodic_return")]
    assert steps == sorted(steps) and steps[-1] <= 600
    state = load(tmp_path / "checkpoints" / "final.pt")["agent"]
    assert {"net", "optimizer", "generator"} <= set(state)


@pytest.mark.parametrize("overrides", [
    ["algo=actor_critic", "algo.mode=online", "num_envs=4"],
    ["algo=actor_critic", "algo.shared_torso=true", "algo.n_steps=32"],
    ["algo=ppo", "algo.shared_torso=true", "algo.clip_vloss=true", "algo.target_kl=0.001", "algo.ent_coef=0.01"],
    ["algo=a2c", "algo.optimizer=adam", "algo.gae_lambda=0.95", "algo.norm_adv=true"],
    ["algo=reinforce", "algo.baseline=none", "algo.reward_to_go=false", "algo.normalize_returns=false"],
    ["algo=reinforce", "algo.baseline=mean", "num_envs=3"],
])
def test_variants_run_on_cartpole(tmp_path, overrides):
    summary = run_in_process(tmp_path, *overrides, "env=cartpole", "total_steps=300", "eval.every=0",
                             "eval.episodes=2")
    assert summary["total_steps"] == 300


@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_continuous_variants_run_on_pendulum(tmp_path, algo):
    summary = run_in_process(tmp_path, f"algo={algo}", "env=pendulum", "algo.action_bounds=tanh",
                             "algo.normalize_obs=true", "algo.deterministic_eval=false", "total_steps=400",
                             "eval.every=0", "eval.episodes=2", *QUICK[algo])
    assert summary["total_steps"] == 400
    stats = load(tmp_path / "checkpoints" / "final.pt")["agent"]["net"]
    assert stats["obs_norm.count"] > 300  # the normaliser saw the training observations


def test_online_actor_critic_updates_after_every_step(tmp_path, monkeypatch):
    from deeprl.algos.actor_critic import ActorCritic

    sizes = []
    update = ActorCritic.update
    monkeypatch.setattr(ActorCritic, "update", lambda self, batch, step: sizes.append(batch.rewards.shape)
                        or update(self, batch, step))
    # The preset's n_steps (250) is for batch mode; online mode learns from each vector step.
    run_in_process(tmp_path, "algo=actor_critic", "env=cartpole", "algo.mode=online", "num_envs=3",
                   "total_steps=60", "eval.every=0", "eval.episodes=1")
    assert sizes == [(1, 3)] * 20


@pytest.mark.parametrize("mode", ["online", "batch"])
def test_actor_critic_learns_the_same_without_the_rollouts_estimates(tmp_path, monkeypatch, mode):
    """ActorCritic recomputes V and log π in its update, so `Rollout.finish` skips its passes for
    them (READS_COLLECTION_ESTIMATES). The passes have no side effect: with them made again, the
    run learns the same weights, bit for bit."""
    from deeprl.algos.actor_critic import ActorCritic

    overrides = ["algo=actor_critic", "env=cartpole", f"algo.mode={mode}", "num_envs=3", "algo.n_steps=16",
                 "total_steps=480", "eval.every=0", "eval.episodes=1", "checkpoint.every=0"]
    learned = {}
    for reads in (False, True):
        monkeypatch.setattr(ActorCritic, "READS_COLLECTION_ESTIMATES", reads)
        run = build(compose_config(*overrides, "log.progress=false"), tmp_path / str(reads))
        run.execute()
        learned[reads] = run.agent.net.state_dict()
    assert learned[False].keys() == learned[True].keys()
    for key, value in learned[False].items():
        assert torch.equal(value, learned[True][key]), key


def test_reinforce_learns_from_whole_episodes_only(tmp_path):
    # One env: a batch is whole episodes of at least batch_steps, so updates come after episode ends.
    run_in_process(tmp_path, "algo=reinforce", "env=cartpole", "total_steps=500", "algo.batch_steps=100",
                   "eval.every=0", "eval.episodes=2", "log.every=1")
    acc = scalars(tmp_path)
    ends = {e.step for e in acc.Scalars("charts/episodic_return")}
    updates = [e.step for e in acc.Scalars("losses/policy_loss")]
    # The last update comes when the step budget runs out, with the episodes finished by then.
    assert len(updates) > 2 and set(updates[:-1]) <= ends and updates[-1] == 500


@pytest.mark.parametrize("overrides, key", [
    (["algo=actor_critic", "algo.mode=offline"], "algo.mode"),
    (["algo=ppo", "algo.gae_lambda=1.5"], "algo.gae_lambda"),
    (["algo=ppo", "algo.clip_coef=0"], "algo.clip_coef"),
    (["algo=ppo", "algo.num_minibatches=64", "algo.n_steps=8", "num_envs=2"], "algo.num_minibatches"),
    (["algo=ppo", "algo.target_kl=-1"], "algo.target_kl"),
    (["algo=ppo", "algo.ent_coef=-0.1"], "algo.ent_coef"),
    (["algo=ppo", "algo.action_bounds=squash"], "algo.action_bounds"),
    (["algo=a2c", "algo.optimizer=sgd"], "algo.optimizer"),
    (["algo=reinforce", "algo.baseline=learned"], "algo.baseline"),
    (["algo=reinforce", "algo.batch_steps=0"], "algo.batch_steps"),
])
def test_bad_values_name_the_key(tmp_path, overrides, key):
    with pytest.raises(ConfigError) as error:
        build(compose_config(*overrides), tmp_path)
    assert str(error.value).startswith(f"{key}:")
    assert "\n" not in str(error.value)


@pytest.mark.skipif(not (CONF_DIR / "env" / "breakout.yaml").is_file(), reason="no Atari env config")
def test_ppo_runs_on_breakout_with_the_nature_cnn(tmp_path):
    summary = run_in_process(tmp_path, "algo=ppo", "env=breakout", "env.max_frames=400", "total_steps=256",
                             "num_envs=2", "algo.n_steps=64", "algo.n_epochs=1", "algo.shared_torso=true",
                             "algo.deterministic_eval=false", "eval.every=0", "eval.episodes=1", "log.every=64",
                             "device=cpu")
    assert summary["total_steps"] == 256
    acc = scalars(tmp_path)
    assert "losses/approx_kl" in acc.Tags()["scalars"]
    state = load(tmp_path / "checkpoints" / "final.pt")["agent"]["net"]
    assert any(k.startswith("actor_torso.convs") for k in state) and "critic_torso" not in str(list(state))
    assert isinstance(state["value_head.out.weight"], torch.Tensor)


@pytest.mark.skipif(not (CONF_DIR / "env" / "atari.yaml").is_file(), reason="no Atari env config")
def test_a2c_trains_with_its_atari_preset_on_a_game_without_a_config_of_its_own(tmp_path):
    """tuned/family/a2c_atari.yaml: 16 envs x 5 steps, one shared Nature CNN."""
    summary = run_in_process(tmp_path, "algo=a2c", "env=atari", "env.game=Pong", "env.max_frames=400",
                             "total_steps=320", "eval.every=0", "eval.episodes=1", "log.every=80", "device=cpu")
    assert summary["total_steps"] == 320
    assert len(scalars(tmp_path).Scalars("losses/entropy")) == 4  # 320 steps = 4 updates of 16 x 5
    state = load(tmp_path / "checkpoints" / "final.pt")["agent"]
    assert any(k.startswith("actor_torso.convs") for k in state["net"]) and "critic_torso" not in str(list(state["net"]))


@pytest.mark.skipif(not (CONF_DIR / "env" / "atari.yaml").is_file(), reason="no Atari env config")
def test_actor_critic_trains_with_its_atari_preset(tmp_path):
    """tuned/family/actor_critic_atari.yaml: 16 envs x 5 steps per update, one critic step on each
    batch (not the group's 10 x 10 refits), actor and critic on Nature CNNs of their own."""
    summary = run_in_process(tmp_path, "algo=actor_critic", "env=breakout", "env.max_frames=400", "total_steps=320",
                             "eval.every=0", "eval.episodes=1", "log.every=80", "device=cpu", "threads=1")
    assert summary["total_steps"] == 320
    assert len(scalars(tmp_path).Scalars("losses/entropy")) == 4  # 320 steps = 4 updates of 16 x 5
    state = load(tmp_path / "checkpoints" / "final.pt")
    algo = OmegaConf.create(state["config"]).algo
    assert (algo.target_updates, algo.critic_steps, algo.ent_coef, algo.actor_lr) == (1, 1, 0.01, 7e-4)
    names = list(state["agent"]["net"])
    assert any(k.startswith("actor_torso.convs") for k in names) and any(k.startswith("critic_torso.convs") for k in names)


@pytest.mark.skipif(not (CONF_DIR / "env" / "atari.yaml").is_file(), reason="no Atari env config")
def test_reinforce_trains_with_its_atari_preset(tmp_path):
    """tuned/family/reinforce_atari.yaml: whole learning episodes from 16 envs, a learned baseline on a
    Nature CNN of its own, an entropy bonus, Adam at 1e-3 (not the group's 5e-3). The batch is cut
    to 160 steps here (the preset's 2000 take half a minute on a CPU core)."""
    summary = run_in_process(tmp_path, "algo=reinforce", "env=breakout", "env.max_frames=200", "algo.batch_steps=160",
                             "total_steps=960", "eval.every=0", "eval.episodes=1", "log.every=1", "device=cpu", "threads=1")
    assert summary["total_steps"] == 960
    # at least one update, on a batch of at least 160 steps of whole episodes
    updates = [e.step for e in scalars(tmp_path).Scalars("losses/entropy")]
    assert updates and updates[0] >= 160
    state = load(tmp_path / "checkpoints" / "final.pt")
    config = OmegaConf.create(state["config"])
    assert (config.num_envs, config.algo.lr, config.algo.value_lr, config.algo.ent_coef) == (16, 1e-3, 1e-3, 0.01)
    names = list(state["agent"]["net"])
    assert any(k.startswith("actor_torso.convs") for k in names) and any(k.startswith("critic_torso.convs") for k in names)


# Each stopped at its first such update, told to lower the learning rate: a sparse-reward
# rollout whose returns were all zero (A2C on MinAtar Breakout, seed 2, step 40: one env, the a2c
# group's settings, not tuned/family/a2c_minatar.yaml's), and batches of one transition (A2C with
# n_steps=1 and one env; online actor-critic with one env, its textbook form).
@pytest.mark.parametrize("overrides", [
    ["algo=a2c", "env=minatar_breakout", "num_envs=1", "algo.ent_coef=0.0", "algo.vf_coef=0.5",
     "algo.shared_torso=false", "seed=2", "total_steps=400"],
    ["algo=a2c", "env=cartpole", "num_envs=1", "algo.n_steps=1", "total_steps=200"],
    ["algo=actor_critic", "env=cartpole", "algo.mode=online", "num_envs=1", "total_steps=200"],
])
def test_an_undefined_explained_variance_is_logged_as_nan_and_training_goes_on(tmp_path, overrides):
    summary = run_in_process(tmp_path, *overrides, "eval.every=0", "eval.episodes=2", "log.every=1")
    assert summary["total_steps"] == int(overrides[-1].split("=")[1])
    acc = scalars(tmp_path)
    explained = [e.value for e in acc.Scalars("losses/explained_variance")]
    assert any(math.isnan(v) for v in explained)
    for tag in ("losses/policy_loss", "losses/value_loss"):  # what the guard still judges
        assert all(math.isfinite(e.value) for e in acc.Scalars(tag)), tag


def test_the_guard_still_stops_a_policy_gradient_run_whose_loss_diverges(tmp_path, caplog):
    from deeprl.run import RunStopped

    with pytest.raises(RunStopped) as stopped:
        run_in_process(tmp_path, "algo=a2c", "env=cartpole", "num_envs=1", "algo.n_steps=1", "algo.lr=1e30",
                       "total_steps=300", "eval.every=0")
    assert stopped.value.code == 3
    assert "guard: non-finite losses/value_loss at step" in caplog.text
