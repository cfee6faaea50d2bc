"""The benchmark's Stable-Baselines3 runs do the work deeprl's do (scripts/benchmark.py,
scripts/bench_continuous.py). Its "identical hyperparameters" claims rest on translating deeprl's
config into SB3's arguments, whose units differ (vector steps against env steps, progress against
steps); a slip there makes a ratio compare unlike work. So both libraries run the same short
workload for real, and what they did is read back from each: the number of optimizer steps of every
network, the schedules at every step, the env steps of the target syncs, the networks' shapes.

Then the updates themselves: for DQN, A2C, PPO, DDPG, TD3 and SAC, deeprl starts from SB3's initial
weights and learns from the very batches or rollouts SB3 learns from (and SAC from its noise);
after each update both hold the same weights, to float rounding. SB3 serves as the reference
implementation of each algorithm."""

import itertools
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from conftest import compose_config
from deeprl.buffers.replay import Batch
from deeprl.buffers.rollout import RolloutBatch
from deeprl.build import build
from deeprl.networks import MLP

sys.path.insert(0, str(Path(__file__).parents[2] / "scripts"))
import bench_continuous  # noqa: E402
import benchmark  # noqa: E402


def adam_steps(optimizer: torch.optim.Optimizer) -> int:
    """How many steps an optimizer has taken (every parameter's Adam step count, which must agree)."""
    counts = {int(state["step"]) for state in optimizer.state.values()}
    assert len(counts) == 1, counts
    return counts.pop()


def shapes(module: nn.Module) -> list[tuple]:
    return sorted(tuple(p.shape) for p in module.parameters())


def numel(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def activations(module: nn.Module) -> set[str]:
    """The activations a network applies: SB3's modules, or the names deeprl's MLPs apply by."""
    return ({type(m).__name__.lower() for m in module.modules() if isinstance(m, (nn.ReLU, nn.Tanh))}
            | {m.activation for m in module.modules() if isinstance(m, MLP)})


def run_deeprl(overrides: list[str], run_dir: Path):
    run = build(compose_config(*overrides, "log.progress=false"), run_dir)
    run.execute()
    return run


# dqn-cartpole's identical-settings part (8 envs) and dqn-mountaincar (one env, 8 updates every 16
# steps), each with enough steps for six target syncs.
DQN_WORKLOADS = {"cartpole": (benchmark.dqn_fixed(1, 3_000), 3_000, 8),
                 "mountaincar": ([*benchmark.DQN_MOUNTAINCAR, "seed=1", "total_steps=4000", "eval.every=0",
                                  "eval.episodes=1"], 4_000, 1)}


@pytest.mark.parametrize("workload", list(DQN_WORKLOADS))
def test_sb3_dqn_takes_deeprls_gradient_steps_syncs_and_schedules(tmp_path, monkeypatch, workload):
    import stable_baselines3.dqn.dqn as sb3_dqn

    overrides, steps, envs = DQN_WORKLOADS[workload]
    deeprl_syncs, sb3_syncs = [], []
    run = build(compose_config(*overrides, "log.progress=false"), tmp_path)
    agent, loop = run.agent, run.loop
    sync = agent._sync_target
    monkeypatch.setattr(agent, "_sync_target",
                        lambda: (deeprl_syncs.append(agent.target_syncs * agent.target_every), sync())[1])
    run.execute()

    hp = benchmark.dqn_preset(overrides)
    model = benchmark.sb3_dqn_model(1, hp)
    polyak = sb3_dqn.polyak_update

    def counted(params, target_params, tau):
        if target_params is not model.batch_norm_stats_target:  # the copy of the Q-network's weights
            sb3_syncs.append(model.num_timesteps)
        polyak(params, target_params, tau)

    monkeypatch.setattr(sb3_dqn, "polyak_update", counted)
    model.learn(total_timesteps=steps)

    n_envs, starts = hp["num_envs"], loop.configured_learning_starts
    assert model.n_envs == run.envs.num_envs == n_envs == envs
    assert model.get_env().envs[0].spec.id == hp["env_id"] == run.cfg.env.id
    # One round of updates at each multiple of train_freq env steps past learning_starts (1008, 1024,
    # ... for 16 and 1000), gradient_steps each.
    updates = (steps // loop.train_freq - starts // loop.train_freq) * loop.gradient_steps
    assert adam_steps(model.policy.optimizer) == adam_steps(agent.optimizer) == updates
    assert model.batch_size == loop.batch_size and model.gamma == agent.gamma
    assert model.replay_buffer.buffer_size * n_envs == hp["buffer_size"] == loop.buffer.capacity
    # Both act uniformly at random until learning starts; then epsilon-greedy on one schedule, and
    # the learning rate anneals on one schedule.
    assert loop.random_starts and model.learning_starts == starts
    for t in range(0, steps + 1, n_envs):
        assert model.exploration_schedule(1 - t / steps) == pytest.approx(agent.epsilon(t)), t
        assert model.lr_schedule(1 - t / steps) == pytest.approx(agent.learning_rate(t)), t
    # The target syncs once per target.every env steps, on the same boundaries (each sync is recorded
    # as the multiple of target.every it is for). SB3 copies at the boundary's env step, also while
    # nothing has learned yet (a no-op); deeprl at its first update at or past the boundary, and it
    # makes one copy at its very first update (CartPole's falls in the 1000 boundary; MountainCar's,
    # at step 1008 with train_freq 16, in the 600 one).
    first_update = (starts // loop.train_freq + 1) * loop.train_freq
    assert deeprl_syncs[0] == first_update // agent.target_every * agent.target_every and len(deeprl_syncs) > 5
    assert [s for s in sb3_syncs if s > starts] == deeprl_syncs[1:]
    assert model.tau == agent.tau and model.max_grad_norm == agent.max_grad_norm
    # The same network and optimizer settings.
    assert shapes(model.q_net) == shapes(agent.q)
    assert activations(model.q_net) == activations(agent.q) == {"relu"}
    assert model.policy.optimizer.param_groups[0]["eps"] == agent.optimizer.param_groups[0]["eps"]


def test_sb3_dqn_evaluates_each_time_the_step_count_passes_a_multiple():
    # With 8 envs the count moves 8 at a time and never lands on 1,250 or 2,500: every crossing counts.
    hp = dict(benchmark.dqn_preset(benchmark.DQN_SAME), learning_starts=500)
    result = benchmark.sb3_dqn(1, 2_600, hp, eval_every=1_250)
    assert [point["step"] for point in result["evaluations"]] == [1_256, 2_504]
    times = [point["train_time_s"] for point in result["evaluations"]]
    assert 0 < times[0] < times[1] <= result["wall_time_s"]
    assert result["sps"] == pytest.approx(2_600 / result["wall_time_s"])


def test_sb3_ppo_takes_deeprls_gradient_steps_on_its_rollouts_and_schedules(tmp_path):
    for variant, (_, overrides) in benchmark.PPO_VARIANTS.items():
        hp = benchmark.ppo_preset(overrides)
        rollout = hp["num_envs"] * hp["n_steps"]
        steps = 3 * rollout
        run = run_deeprl(benchmark.ppo_fixed(1, steps, overrides), tmp_path / variant)
        agent = run.agent
        model = benchmark.sb3_ppo_model(1, hp)
        model.learn(total_timesteps=steps)
        assert model.n_envs * model.n_steps == run.envs.num_envs * run.loop.n_steps == rollout, variant
        # n_epochs passes over each rollout in minibatches of the same size.
        updates = 3 * agent.n_epochs * agent.num_minibatches
        assert adam_steps(model.policy.optimizer) == adam_steps(agent.optimizer) == updates, variant
        assert model.batch_size == rollout // agent.num_minibatches
        for t in range(rollout, steps + 1, rollout):  # the learning rate each update starts from
            assert model.lr_schedule(1 - t / steps) == pytest.approx(agent.learning_rate(t)), (variant, t)
        assert (model.gamma, model.gae_lambda, model.clip_range(1.0)) == (agent.gamma, agent.gae_lambda,
                                                                          agent.clip_coef)
        assert (model.ent_coef, model.vf_coef, model.max_grad_norm) == (agent.ent_coef, agent.vf_coef,
                                                                         agent.max_grad_norm)
        assert model.policy.optimizer.param_groups[0]["eps"] == agent.optimizer.param_groups[0]["eps"]
        # Separate actor and critic of the same shapes and activation.
        assert shapes(model.policy) == shapes(agent.net)
        assert activations(model.policy) == activations(agent.net) == {"relu"}


@pytest.mark.parametrize("algo", ["ddpg", "td3", "sac"])
def test_sb3_off_policy_continuous_takes_deeprls_gradient_steps(tmp_path, algo):
    steps, starts = 600, 200
    cfg = bench_continuous.deeprl_config(algo, "pendulum", 1, steps, [f"algo.learning_starts={starts}",
                                                                      "eval.episodes=1"])
    run = build(cfg, tmp_path)
    run.execute()
    agent, loop = run.agent, run.loop
    model = bench_continuous.sb3_model(cfg, bench_continuous.sb3_hparams(cfg))
    model.learn(total_timesteps=steps)

    critic_updates = (steps - starts) // loop.train_freq * loop.gradient_steps
    assert adam_steps(model.critic.optimizer) == adam_steps(agent.critic_optimizer) == critic_updates
    # TD3's actor moves once per policy_delay critic updates; DDPG's and SAC's every time.
    actor_updates = critic_updates // (agent.policy_delay if algo != "sac" else 1)
    assert adam_steps(model.actor.optimizer) == adam_steps(agent.actor_optimizer) == actor_updates
    if algo == "sac":
        assert adam_steps(model.ent_coef_optimizer) == adam_steps(agent.alpha_optimizer) == critic_updates
    assert (model.batch_size, model.gamma, model.tau) == (loop.batch_size, agent.gamma, agent.tau)
    # deeprl stacks its critics into batched weights (one matmul for all), so only the sizes compare.
    assert numel(model.critic) == numel(agent.critic) and numel(model.actor) == numel(agent.actor)


def sb3_weights_copied(policy, net) -> list[tuple[nn.Module, nn.Module]]:
    """Copy an SB3 MlpPolicy's weights (separate actor and critic) into deeprl's ActorCriticNet;
    the pairs of matching layers, deeprl's first."""
    pairs = [(net.actor_torso.layers[0], policy.mlp_extractor.policy_net[0]),
             (net.actor_torso.layers[1], policy.mlp_extractor.policy_net[2]),
             (net.critic_torso.layers[0], policy.mlp_extractor.value_net[0]),
             (net.critic_torso.layers[1], policy.mlp_extractor.value_net[2]),
             (net.head.out, policy.action_net), (net.value_head.out, policy.value_net)]
    assert shapes(policy) == shapes(net) and activations(policy) == activations(net)
    with torch.no_grad():
        for ours, theirs in pairs:
            ours.weight.copy_(theirs.weight)
            ours.bias.copy_(theirs.bias)
    return pairs


def sb3_rollouts(model, steps: int):
    """Start `model` learning for `steps` and yield after each rollout it collects, with the
    rollout as deeprl's RolloutBatch and the step count, before SB3's update (`model.train()`)."""
    from stable_baselines3.common.callbacks import CallbackList
    from stable_baselines3.common.utils import obs_as_tensor

    callback = CallbackList([])
    model._setup_learn(steps, callback)
    callback.init_callback(model)
    buffer = model.rollout_buffer
    while True:
        model.collect_rollouts(model.env, callback, buffer, n_rollout_steps=model.n_steps)
        model._update_current_progress_remaining(model.num_timesteps, steps)  # as SB3's learn() does
        with torch.no_grad():
            last = model.policy.predict_values(obs_as_tensor(model._last_obs, "cpu")).numpy().reshape(-1)
        # Every episode end here is a termination (the time limits, 500 and 1,000 steps, are far):
        # V(s') is 0 there, else the next step's V(s), and after the last step V of the obs reached.
        dones = np.concatenate([buffer.episode_starts[1:], model._last_episode_starts[None]]).astype(bool)
        obs = torch.as_tensor(buffer.observations)
        batch = RolloutBatch(obs=obs, actions=torch.as_tensor(buffer.actions[..., 0]).long(),
                             log_probs=torch.as_tensor(buffer.log_probs), next_obs=obs, values=buffer.values,
                             next_values=np.where(dones, 0.0, np.concatenate([buffer.values[1:], last[None]])),
                             rewards=buffer.rewards, terminated=dones, dones=dones)
        yield batch, model.num_timesteps


def update_both(agent, batch, step, model, pairs) -> dict:
    """Update both on the rollout SB3 collected: the advantages and returns deeprl computes are
    SB3's, and after both updates the clipped gradients (of the last minibatch) and the weights agree
    to float rounding. deeprl's metrics."""
    advantages, returns = agent.gae_targets(batch)
    buffer = model.rollout_buffer  # [T, N] until SB3's update flattens it
    torch.testing.assert_close(advantages, torch.as_tensor(buffer.advantages).reshape(-1), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(returns, torch.as_tensor(buffer.returns).reshape(-1), rtol=1e-5, atol=1e-5)
    metrics = agent.update(batch, step)
    model.train()
    for ours, theirs in pairs:
        for a, b in ((ours.weight, theirs.weight), (ours.bias, theirs.bias)):
            torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=1e-4 * b.grad.abs().max())
            torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    return metrics


def test_a2c_update_equals_sb3s_from_the_same_weights_and_rollout(tmp_path):
    """Not only the same settings: the same update. deeprl's A2C starts from SB3's initial weights
    and learns from the rollouts SB3 collects; after each of three updates the advantages, the
    losses, the clipped gradients and the weights agree (float rounding aside) with SB3's own. The
    schedules agree at every update of the benchmark's run."""
    steps = 200_000
    hp = benchmark.a2c_preset(benchmark.A2C_LUNARLANDER)
    model = benchmark.sb3_a2c_model(1, hp)
    agent = build(compose_config(*benchmark.A2C_LUNARLANDER, f"total_steps={steps}", "device=cpu",
                                 "log.progress=false"), tmp_path, with_loop=False).agent
    pairs = sb3_weights_copied(model.policy, agent.net)
    assert activations(agent.net) == {"tanh"}
    (ours,), theirs = agent.optimizer.param_groups, model.policy.optimizer.param_groups[0]
    assert type(agent.optimizer) is type(model.policy.optimizer) is torch.optim.RMSprop
    assert all(ours[k] == theirs[k] for k in ("alpha", "eps", "momentum", "centered", "weight_decay"))
    for batch, step in itertools.islice(sb3_rollouts(model, steps), 3):
        assert model.lr_schedule(model._current_progress_remaining) == pytest.approx(agent.learning_rate(step))
        metrics = update_both(agent, batch, step, model, pairs)
        logged = model.logger.name_to_value
        assert float(metrics["policy_loss"]) == pytest.approx(logged["train/policy_loss"], rel=1e-5)
        assert float(metrics["value_loss"]) == pytest.approx(logged["train/value_loss"], rel=1e-5)
        assert float(metrics["entropy"]) == pytest.approx(-logged["train/entropy_loss"], rel=1e-5)
    # Over the whole run: the learning rate each update uses.
    rollout = hp["num_envs"] * hp["n_steps"]
    for t in range(rollout, steps + 1, rollout * 97):
        assert model.lr_schedule(1 - t / steps) == pytest.approx(agent.learning_rate(t)), t


def test_ppo_update_equals_sb3s_from_the_same_weights_and_rollout(tmp_path):
    """The same for PPO's preset (10 epochs of one minibatch, the whole rollout, so SB3's shuffle
    only reorders a sum): after each of three updates of 10 Adam steps, with episodes ending
    within the rollouts, deeprl's advantages, gradients and weights are SB3's. A learning rate 10x
    the preset's moves the policy far enough within an update for the clip to bind."""
    steps, overrides = 100_000, ["algo.lr=0.01"]
    hp = benchmark.ppo_preset(overrides)
    model = benchmark.sb3_ppo_model(1, hp)
    agent = build(compose_config(*benchmark.ppo_fixed(1, steps, overrides), "device=cpu", "log.progress=false"),
                  tmp_path, with_loop=False).agent
    assert agent.num_minibatches == 1 and model.batch_size == hp["num_envs"] * hp["n_steps"]
    pairs = sb3_weights_copied(model.policy, agent.net)
    ended, clipped = 0, []
    for batch, step in itertools.islice(sb3_rollouts(model, steps), 3):
        ended += int(batch.dones.sum())
        metrics = update_both(agent, batch, step, model, pairs)
        clipped.append(float(metrics["clipfrac"]))  # of the last epoch
    assert ended > 10  # CartPole's first episodes are short: terminations are covered
    assert max(clipped) > 0.05, clipped


def test_dqn_update_equals_sb3s_on_the_same_weights_and_batches(tmp_path):
    """deeprl's DQN takes the gradient steps SB3's does: from SB3's initial weights, on the batches
    SB3 samples from its own replay (filled by its random-start steps, episode ends and all), 20
    updates give the same TD losses and weights (float rounding aside). The gradient norm is
    clipped at 0.5 rather than the preset's 10, which these early gradients never reach. Target
    syncs are left out: their timing is checked above."""
    steps, updates = 50_000, 20
    overrides = [*benchmark.dqn_fixed(1, steps), "algo.max_grad_norm=0.5"]
    hp = benchmark.dqn_preset(overrides)
    model = benchmark.sb3_dqn_model(1, hp)
    model.learn(total_timesteps=hp["learning_starts"])  # random actions into SB3's replay, no update yet
    agent = build(compose_config(*overrides, "device=cpu", "log.progress=false"), tmp_path, with_loop=False).agent
    with torch.no_grad():
        for ours, theirs in ((agent.q, model.q_net), (agent.q_target, model.q_net_target)):
            for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
                assert a.shape == b.shape
                a.copy_(b)
    agent.target_syncs = steps  # no sync within this test
    sample = model.replay_buffer.sample
    ended, clipped = 0, 0
    for i in range(updates):
        step = hp["learning_starts"] + i * 4
        model._current_progress_remaining = 1 - step / steps
        data = sb3_update(model, sample)
        ended += int(data.dones.sum())
        batch = Batch(obs=data.observations, actions=data.actions.reshape(-1), rewards=data.rewards.reshape(-1),
                      next_obs=data.next_observations, discounts=hp["gamma"] * (1 - data.dones.reshape(-1)))
        metrics, _ = agent.update(batch, step)
        assert float(metrics["td_loss"]) == pytest.approx(model.logger.name_to_value["train/loss"], rel=1e-5), i
        clipped += bool(torch.linalg.vector_norm(agent.flat.grad) == pytest.approx(0.5, rel=1e-4))
        for a, b in zip(agent.q.parameters(), model.q_net.parameters(), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    assert ended > 0  # terminations (discount 0) are among the batches
    assert clipped > updates // 4, clipped


def sb3_update(model, sample):
    """One SB3 gradient step on a batch `sample` (its replay's own) draws; that batch, for deeprl."""
    data = sample(model.batch_size)
    model.replay_buffer.sample = lambda *_, **__: data  # SB3's train() samples once per step
    model.train(gradient_steps=1, batch_size=model.batch_size)
    return data


def sb3_linears(module: nn.Module) -> list[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


def stacked_layout(linears: list[nn.Linear]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """SB3's nn.Linear layers as deeprl's StackedMLP holds one network's: (weightᵀ, bias) per layer
    (views, which follow SB3's updates)."""
    return [(linear.weight.T, linear.bias) for linear in linears]


def sac_actor_layout(actor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """SB3's SAC actor in deeprl's layout: one MLP whose last layer gives the mean and the log-std,
    where SB3 has two heads (a copy: call it again after an update)."""
    mu, log_std = actor.mu, actor.log_std
    return [*stacked_layout(sb3_linears(actor.latent_pi)),
            (torch.cat([mu.weight.T, log_std.weight.T], dim=1), torch.cat([mu.bias, log_std.bias]))]


def copy_into_stacked(stacked, nets: list[list[tuple[torch.Tensor, torch.Tensor]]]) -> None:
    """SB3's layers (one `stacked_layout` per network) into deeprl's StackedMLP: layer l of network
    i is weights[l][i] = weightᵀ, biases[l][i] = bias."""
    with torch.no_grad():
        for i, layers in enumerate(nets):
            for weight, bias, (theirs, their_bias) in zip(stacked.weights, stacked.biases, layers, strict=True):
                weight[i].copy_(theirs)
                bias[i, 0].copy_(their_bias)


def continuous_from_sb3(tmp_path, algo: str, starts: int, overrides=()):
    """SB3's `algo` on Pendulum after `starts` random steps into its replay (no update yet), and
    deeprl's agent with the same settings and SB3's critics and their targets: (cfg, SB3's model,
    deeprl's agent, SB3's critics and targets in deeprl's layout, which follow SB3's updates)."""
    cfg = bench_continuous.deeprl_config(algo, "pendulum", 1, 2_000, [f"algo.learning_starts={starts}", *overrides])
    model = bench_continuous.sb3_model(cfg, bench_continuous.sb3_hparams(cfg))
    model.learn(total_timesteps=starts)
    agent = build(cfg, tmp_path, with_loop=False).agent
    critics = [[stacked_layout(sb3_linears(q)) for q in model.critic.q_networks],
               [stacked_layout(sb3_linears(q)) for q in model.critic_target.q_networks]]
    for stacked, layers in zip([agent.critic.net, agent.critic_target.net], critics, strict=True):
        copy_into_stacked(stacked, layers)
    return cfg, model, agent, critics


def deeprl_batch(data, model, gamma: float) -> Batch:
    """An SB3 replay batch as deeprl's. SB3 stores actions scaled to [-1, 1]; deeprl stores the
    env's (Pendulum: [-2, 2])."""
    return Batch(obs=data.observations, actions=data.actions * torch.as_tensor(model.action_space.high),
                 rewards=data.rewards.reshape(-1), next_obs=data.next_observations,
                 discounts=gamma * (1 - data.dones.reshape(-1)))


def close(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def alike(a: torch.Tensor, b: torch.Tensor) -> None:
    """99% of the elements within 1e-5, all within 1e-3 (see the SAC test)."""
    apart = (a.detach() - b.detach()).abs()
    assert float((apart > 1e-5).float().mean()) < 0.01 and float(apart.max()) < 1e-3, (
        f"{int((apart > 1e-5).sum())} of {apart.numel()} elements more than 1e-5 apart, the most {float(apart.max()):.2e}")


def stacked_close(stacked, nets: list[list[tuple[torch.Tensor, torch.Tensor]]], equal=close) -> None:
    for i, layers in enumerate(nets):
        for weight, bias, (theirs, their_bias) in zip(stacked.weights, stacked.biases, layers, strict=True):
            equal(weight[i], theirs)
            equal(bias[i, 0], their_bias)


@pytest.mark.parametrize("algo", ["ddpg", "td3"])
def test_ddpg_and_td3_updates_equal_sb3s_on_the_same_weights_and_batches(tmp_path, algo):
    """deeprl writes its continuous-control gradients out by hand (checked against autograd in
    tests/unit/test_continuous.py); here the whole update is checked against SB3's. From SB3's
    initial actor, critics and targets, on the batches SB3 samples from its replay, 10 updates
    leave every network (targets included, after TD3's delayed actor steps and Polyak averaging)
    equal to SB3's to float rounding. TD3's target policy noise is off in both: it is random."""
    starts, updates = 300, 10
    cfg, model, agent, critics = continuous_from_sb3(tmp_path, algo, starts,
                                                     ["algo.target_noise=0"] if algo == "td3" else [])
    actors = [[stacked_layout(sb3_linears(model.actor))], [stacked_layout(sb3_linears(model.actor_target))]]
    for stacked, layers in zip([agent.actor.net, agent.actor_target.net], actors, strict=True):
        copy_into_stacked(stacked, layers)
    ours = [agent.critic.net, agent.critic_target.net, agent.actor.net, agent.actor_target.net]
    sample = model.replay_buffer.sample
    for i in range(updates):
        agent.update(deeprl_batch(sb3_update(model, sample), model, cfg.algo.gamma), starts + i)
        for stacked, layers in zip(ours, [*critics, *actors], strict=True):
            stacked_close(stacked, layers)
    assert model._n_updates == agent.updates == updates


def test_sac_update_equals_sb3s_on_the_same_weights_batches_and_noise(tmp_path, monkeypatch):
    """SAC draws its actions inside the update, so the noise is matched too: each of SB3's draws
    (ε for a ~ π(·|s), then for a' ~ π(·|s')) is recorded and handed to deeprl's actor for the same
    observations. From SB3's initial weights and temperature, 10 updates leave the critics, their
    targets, the actor and α equal to SB3's to float rounding.

    Two conventions differ. SB3's critic loss is ½ Σᵢ MSEᵢ (the SAC paper's), deeprl's Σᵢ MSEᵢ
    (CleanRL's, and TD3's in both libraries). Adam's step does not depend on the loss's scale except
    through its ε (1e-8), which still moves gradient elements near 1e-8 apart, so here SB3's MSE is
    doubled to deeprl's. And SB3 adds 1e-6 inside the tanh correction's log where deeprl's is exact:
    far below the tolerance while actions stay clear of ±1, as they do early on.

    "Equal" allows for one more thing: Adam's first steps are nearly the sign of the gradient, so an
    element whose gradient is float noise (near 0) can step either way in either library. So 99% of
    each tensor's elements must agree to 1e-5, and every element to 1e-3 (one step of lr 1e-3).
    Measured: 0.5% of one actor layer's elements were 4.5e-5 apart at the 10th update; everything
    else within 3e-6."""
    starts, updates = 300, 10
    cfg, model, agent, critics = continuous_from_sb3(tmp_path, "sac", starts)
    copy_into_stacked(agent.actor.net, [sac_actor_layout(model.actor)])
    with torch.no_grad():
        agent.log_alpha.copy_(model.log_ent_coef)
    import stable_baselines3.sac.sac as sb3_sac

    mse = sb3_sac.F.mse_loss  # SB3's SAC takes it for the critic loss alone
    monkeypatch.setattr(sb3_sac, "F", SimpleNamespace(mse_loss=lambda *a, **k: 2 * mse(*a, **k)))

    import torch.distributions.normal as normal

    draws = []
    standard_normal = normal._standard_normal
    monkeypatch.setattr(normal, "_standard_normal", lambda *a, **k: draws.append(standard_normal(*a, **k)) or draws[-1])
    rsample = agent.actor.rsample

    def rsample_with_sb3s_noise(obs, generator=None):
        noise = draws[0] if obs is batch.obs else draws[1]
        with monkeypatch.context() as m:
            m.setattr(torch, "randn", lambda *_, **__: noise.clone())
            return rsample(obs, generator)

    monkeypatch.setattr(agent.actor, "rsample", rsample_with_sb3s_noise)
    sample = model.replay_buffer.sample
    for i in range(updates):
        draws.clear()
        batch = deeprl_batch(sb3_update(model, sample), model, cfg.algo.gamma)
        assert len(draws) == 2  # a ~ π(·|s), then a' ~ π(·|s')
        metrics, _ = agent.update(batch, starts + i)
        logged = model.logger.name_to_value
        # The losses, whose scale Adam's steps hide: each is the same function of the same values.
        assert float(metrics["qf1_loss"] + metrics["qf2_loss"]) == pytest.approx(logged["train/critic_loss"], rel=1e-5)
        # These two read log π, whose mean SB3's 1e-6 shifts (by up to 1e-6 / (1 - a²) a sample),
        # and both pass near 0 (α log π against Q; α's loss is -log α, 0 at α = 1, times log π's gap
        # to the target entropy): absolute tolerances. Measured: 4.4e-6 and 1.4e-8 at most.
        assert float(metrics["actor_loss"]) == pytest.approx(logged["train/actor_loss"], rel=1e-4, abs=1e-4)
        assert float(metrics["alpha_loss"]) == pytest.approx(logged["train/ent_coef_loss"], rel=1e-4, abs=1e-6)
        for stacked, layers in zip([agent.critic.net, agent.critic_target.net], critics, strict=True):
            stacked_close(stacked, layers, alike)
        # The actor's weights, and its last layer's biases. Its hidden biases are left out: 64 each,
        # so one element of float-noise gradient (seen: 2e-5 apart) is over the 1% allowed.
        layout = sac_actor_layout(model.actor)
        for layer, (theirs, _) in enumerate(layout):
            alike(agent.actor.net.weights[layer][0], theirs)
        alike(agent.actor.net.biases[-1][0, 0], layout[-1][1])
        torch.testing.assert_close(agent.log_alpha.detach(), model.log_ent_coef.detach(), rtol=0, atol=1e-6)
    assert agent.updates == model._n_updates == updates
