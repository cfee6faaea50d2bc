"""DQN, PPO, A2C, actor-critic and REINFORCE on MinAtar through the whole run (events, summary,
checkpoints, exact resume). The learning claim is in tests/learning/test_minatar_learning.py."""

from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import run_in_process
from deeprl.build import build
from deeprl.core.checkpoint import load

QUIET = ["log.progress=false", "device=cpu", "checkpoint.keep=0"]
DQN = ["algo=dqn", "env=minatar_breakout", "total_steps=3000", "algo.learning_starts=500",
       "algo.exploration.fraction=0.5", "eval.every=1500", "eval.episodes=3", "log.every=250",
       "checkpoint.every=1500", *QUIET]


def scalars(run_dir, tag: str) -> list[tuple[int, float]]:
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)] if tag in acc.Tags()["scalars"] else []


def test_dqn_runs_logs_full_games_and_resumes_exactly(tmp_path):
    """The preset's DQN (shortened) completes and logs whole games; a run resumed from its middle
    checkpoint ends bit for bit as the uninterrupted one: MinAtar's envs are saved, not restarted."""
    summary = run_in_process(tmp_path / "whole", *DQN)
    assert summary["total_steps"] == 3000 and summary["eval_episodes"] == 3
    returns = scalars(tmp_path / "whole", "charts/episodic_return")
    lengths = scalars(tmp_path / "whole", "charts/episodic_length")
    # Breakout ends at the first missed ball: at random, a game of about 11 steps and a score of 0.5.
    assert len(returns) > 50 and all(float(r).is_integer() and r >= 0 for _, r in returns)
    assert all(length >= 3 for _, length in lengths)
    assert [step for step, _ in scalars(tmp_path / "whole", "eval/episodic_return")] == [1500, 3000]
    assert scalars(tmp_path / "whole", "losses/td_loss")

    state = load(tmp_path / "whole/checkpoints/step_1500.pt")
    assert state["loop"]["envs"] is not None  # the games in progress are part of the checkpoint
    cfg = OmegaConf.create(state["config"])
    OmegaConf.set_struct(cfg, True)
    resumed = build(cfg, tmp_path / "cut", resume_from=state).execute()
    assert resumed["resumed"] == [{"step": 1500, "notes": []}]
    assert resumed["eval_return_mean"] == summary["eval_return_mean"]
    whole = load(tmp_path / "whole/checkpoints/final.pt")["agent"]["q"]
    cut = load(tmp_path / "cut/checkpoints/final.pt")["agent"]["q"]
    assert all((whole[name] == cut[name]).all() for name in whole)
    after = [point for point in returns if point[0] > 1500]
    assert after and scalars(tmp_path / "cut", "charts/episodic_return") == after


def test_ppo_runs_two_rollouts(tmp_path):
    # The preset's 8 envs x 128 steps: 2048 steps are two rollouts and two rounds of updates.
    summary = run_in_process(tmp_path, "algo=ppo", "env=minatar_breakout", "total_steps=2048", "eval.every=0",
                             "eval.episodes=3", "log.every=256", *QUIET)
    assert summary["total_steps"] == 2048
    assert len(scalars(tmp_path, "losses/policy_loss")) >= 1
    assert len(scalars(tmp_path, "charts/episodic_return")) > 50
    assert len(scalars(tmp_path, "eval/episodic_return")) == 1


def test_actor_critic_trains_with_its_minatar_preset(tmp_path):
    """tuned/family/actor_critic_minatar.yaml: 16 envs x 5 steps per update, one critic step on each
    batch (not the group's 10 x 10 refits), actor and critic on torsos of their own, an entropy bonus."""
    summary = run_in_process(tmp_path, "algo=actor_critic", "env=minatar_asterix", "total_steps=800",
                             "eval.every=0", "eval.episodes=2", "log.every=80", *QUIET)
    assert summary["total_steps"] == 800
    assert len(scalars(tmp_path, "losses/entropy")) == 10  # 800 steps = 10 updates of 16 x 5
    state = load(tmp_path / "checkpoints" / "final.pt")
    algo = OmegaConf.create(state["config"]).algo
    assert (algo.target_updates, algo.critic_steps, algo.ent_coef) == (1, 1, 0.01)
    names = list(state["agent"]["net"])
    assert any(k.startswith("actor_torso.") for k in names) and any(k.startswith("critic_torso.") for k in names)


def test_reinforce_trains_with_its_minatar_preset(tmp_path):
    """tuned/family/reinforce_minatar.yaml: whole games from 16 envs in batches of at least 2000 steps,
    a learned baseline on a torso of its own, an entropy bonus, Adam at 1e-3 (not the group's 5e-3)."""
    summary = run_in_process(tmp_path, "algo=reinforce", "env=minatar_breakout", "total_steps=4800",
                             "eval.every=0", "eval.episodes=2", "log.every=1", *QUIET)
    assert summary["total_steps"] == 4800
    updates = [step for step, _ in scalars(tmp_path, "losses/entropy")]
    assert updates[0] >= 2000 and updates[1] - updates[0] >= 2000  # batches of >= 2000 steps
    state = load(tmp_path / "checkpoints" / "final.pt")
    config = OmegaConf.create(state["config"])
    assert (config.num_envs, config.algo.lr, config.algo.ent_coef) == (16, 1e-3, 0.01)
    names = list(state["agent"]["net"])
    assert any(k.startswith("actor_torso.") for k in names) and any(k.startswith("critic_torso.") for k in names)


def test_a2c_trains_with_its_minatar_preset_on_a_game_without_a_config_of_its_own(tmp_path):
    """tuned/family/a2c_minatar.yaml on `env=minatar env.game=...`: 16 envs x 5 steps per update,
    one MinAtar torso shared by actor and critic, an entropy bonus."""
    summary = run_in_process(tmp_path, "algo=a2c", "env=minatar", "env.game=SpaceInvaders", "total_steps=800",
                             "eval.every=0", "eval.episodes=2", "log.every=80", *QUIET)
    assert summary["total_steps"] == 800
    assert len(scalars(tmp_path, "losses/entropy")) == 10  # 800 steps = 10 updates of 16 x 5
    state = load(tmp_path / "checkpoints" / "final.pt")
    assert OmegaConf.create(state["config"]).algo.ent_coef == 0.01
    names = list(state["agent"]["net"])
    assert any(k.startswith("actor_torso.") for k in names) and not any("critic_torso" in k for k in names)
