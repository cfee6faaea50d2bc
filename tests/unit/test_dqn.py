import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from deeprl.algos.dqn import DQN
from deeprl.buffers import Batch
from deeprl.core.errors import ConfigError
from deeprl.envs import make_vec_env, spec_of

ENV = OmegaConf.create({"kind": "gym", "id": "CartPole-v1", "kwargs": {}, "max_episode_steps": None})
NET = OmegaConf.create({"_target_": "deeprl.networks.MLP", "hidden_sizes": [16], "activation": "relu"})


def make_agent(**overrides):
    torch.manual_seed(0)  # the networks' initialisation, so every test sees the same agent
    envs = make_vec_env(ENV, 1, 0)
    kwargs = dict(gamma=0.9, lr=1e-3, anneal_lr=False, adam_eps=1e-8, loss="mse", max_grad_norm=None, double=False, dueling=False,
                  exploration=OmegaConf.create({"start": 1.0, "end": 0.1, "fraction": 0.5, "eval": 0.0}),
                  target=OmegaConf.create({"enabled": True, "every": 100, "tau": 1.0}))
    kwargs.update(overrides)
    return DQN(spec_of(envs, ENV.id), NET, torch.device("cpu"), np.random.default_rng(0), 1000, **kwargs)


def test_epsilon_decays_linearly_over_fraction_of_training():
    agent = make_agent()
    assert agent.epsilon(0) == 1.0
    assert agent.epsilon(250) == pytest.approx(0.55)
    assert agent.epsilon(500) == pytest.approx(0.1)
    assert agent.epsilon(900) == pytest.approx(0.1)


def test_greedy_action_is_argmax_q():
    agent = make_agent()
    obs = np.random.default_rng(1).normal(size=(64, 4)).astype(np.float32)
    with torch.no_grad():
        expected = agent.q(torch.from_numpy(obs)).argmax(1).numpy()
    np.testing.assert_array_equal(agent.act(obs, step=0, eval_mode=True), expected)


def test_fully_random_at_epsilon_one():
    agent = make_agent()
    obs = np.zeros((2000, 4), np.float32)
    actions = agent.act(obs, step=0)
    assert set(actions) == {0, 1} and abs(actions.mean() - 0.5) < 0.05


def test_td_target_bootstraps_from_target_network_unless_terminated():
    """One MSE step's gradient equals the one computed from the hand-written target."""
    agent = make_agent()
    rng = np.random.default_rng(3)
    obs = torch.from_numpy(rng.normal(size=(4, 4)).astype(np.float32))
    next_obs = torch.from_numpy(rng.normal(size=(4, 4)).astype(np.float32))
    actions = torch.tensor([0, 1, 1, 0])
    rewards = torch.tensor([1.0, 0.5, -1.0, 2.0])
    # rows 0-1: ordinary (or time-limit truncated) transitions bootstrap; rows 2-3 terminated.
    discounts = torch.tensor([0.9, 0.9, 0.0, 0.0])
    # Make the target network differ from the online one, so using the wrong one shows.
    with torch.no_grad():
        for p in agent.q_target.parameters():
            p.add_(0.5)
        expected_target = rewards + discounts * agent.q_target(next_obs).max(1).values
        q_before = agent.q(obs).gather(1, actions[:, None]).squeeze(1)
    expected_loss = torch.mean((q_before - expected_target) ** 2)
    metrics, _ = agent.update(Batch(obs, actions, rewards, next_obs, discounts), step=1)
    assert metrics["td_loss"].item() == pytest.approx(expected_loss.item(), rel=1e-6)
    assert metrics["q_values"].item() == pytest.approx(q_before.mean().item(), rel=1e-6)


def test_target_network_is_hard_copied_every_n_steps():
    agent = make_agent()
    batch = Batch(torch.zeros(2, 4), torch.tensor([0, 1]), torch.ones(2), torch.zeros(2, 4), torch.full((2,), 0.9))
    agent.update(batch, step=50)
    online = agent.q.head.out.weight
    assert not torch.equal(online, agent.q_target.head.out.weight)  # not yet synced
    agent.update(batch, step=100)
    assert torch.equal(agent.q.head.out.weight, agent.q_target.head.out.weight)


def test_polyak_target_update_moves_by_tau():
    agent = make_agent(target=OmegaConf.create({"enabled": True, "every": 1, "tau": 0.25}))
    before = agent.q_target.head.out.weight.clone()
    batch = Batch(torch.zeros(2, 4), torch.tensor([0, 1]), torch.ones(2), torch.zeros(2, 4), torch.full((2,), 0.9))
    agent.update(batch, step=1)
    expected = before + 0.25 * (agent.q.head.out.weight - before)
    assert torch.allclose(agent.q_target.head.out.weight, expected, atol=1e-7)


def test_state_dict_round_trip_restores_networks_and_optimizer():
    agent, other = make_agent(), make_agent(lr=5e-2)
    batch = Batch(torch.ones(2, 4), torch.tensor([0, 1]), torch.ones(2), torch.zeros(2, 4), torch.full((2,), 0.9))
    agent.update(batch, step=150)
    other.load_state_dict(agent.state_dict())
    assert torch.equal(other.q.head.out.weight, agent.q.head.out.weight)
    assert other.optimizer.param_groups[0]["lr"] == 1e-3 and other.target_syncs == 1


def test_dqn_rejects_continuous_actions():
    envs = make_vec_env(OmegaConf.merge(ENV, {"id": "Pendulum-v1"}), 1, 0)
    with pytest.raises(ConfigError, match="discrete"):
        DQN(spec_of(envs, "Pendulum-v1"), NET, torch.device("cpu"), np.random.default_rng(0), 10,
            gamma=0.9, lr=1e-3, anneal_lr=False, adam_eps=1e-8, loss="mse", max_grad_norm=None, double=False, dueling=False,
            exploration=OmegaConf.create({"start": 1, "end": 0, "fraction": 0.5, "eval": 0}),
            target=OmegaConf.create({"enabled": True, "every": 1, "tau": 1.0}))


def test_double_dqn_target_uses_online_argmax_and_target_evaluation():
    agent = make_agent(double=True)
    next_obs = torch.from_numpy(np.random.default_rng(5).normal(size=(6, 4)).astype(np.float32))
    with torch.no_grad():
        for p in agent.q_target.parameters():
            p.mul_(-1.0)  # make the two networks disagree about the best action
        online_best = agent.q(next_obs).argmax(1)
        target_q = agent.q_target(next_obs)
        assert not torch.equal(online_best, target_q.argmax(1))
        expected = 1.0 + 0.9 * target_q.gather(1, online_best[:, None]).squeeze(1)
        q_before = agent.q(torch.zeros(6, 4))[:, 0]
    batch = Batch(torch.zeros(6, 4), torch.zeros(6, dtype=torch.long), torch.ones(6), next_obs,
                  torch.full((6,), 0.9))
    _, priorities = agent.update(batch, step=1)
    torch.testing.assert_close(priorities, (expected - q_before).abs())


def test_dueling_head_is_value_plus_centred_advantage():
    agent = make_agent(dueling=True)
    head = agent.q.head
    features = torch.randn(5, head.value.in_features)
    q = head(features)
    value, advantage = head.value(features), head.advantage(features)
    torch.testing.assert_close(q, value + advantage - advantage.mean(1, keepdim=True))
    # V is recoverable: the mean of Q over actions equals V.
    torch.testing.assert_close(q.mean(1, keepdim=True), value)


def test_without_target_network_the_online_network_bootstraps():
    agent = make_agent(target=OmegaConf.create({"enabled": False, "every": 1, "tau": 1.0}))
    assert agent.q_target is agent.q
    next_obs = torch.randn(3, 4)
    with torch.no_grad():
        expected = 0.9 * agent.q(next_obs).max(1).values - agent.q(torch.zeros(3, 4))[:, 1]
    batch = Batch(torch.zeros(3, 4), torch.ones(3, dtype=torch.long), torch.zeros(3), next_obs,
                  torch.full((3,), 0.9))
    torch.testing.assert_close(agent.update(batch, step=1)[1], expected.abs())


def test_importance_weights_scale_the_loss():
    """With prioritized replay each sample's squared error is weighted before the mean."""
    agent = make_agent()  # loss="mse"
    batch = Batch(torch.randn(4, 4), torch.tensor([0, 1, 0, 1]), torch.randn(4), torch.randn(4, 4),
                  torch.full((4,), 0.9))
    weights = torch.tensor([1.0, 0.5, 0.0, 2.0])
    metrics, td_errors = agent.update(batch._replace(weights=weights), step=1)
    torch.testing.assert_close(metrics["td_loss"], (weights * td_errors ** 2).mean())


def test_bf16_precision_keeps_fp32_weights_and_loss():
    agent = make_agent(precision="bf16")
    batch = Batch(torch.randn(8, 4), torch.randint(0, 2, (8,)), torch.randn(8), torch.randn(8, 4),
                  torch.full((8,), 0.9))
    metrics, _ = agent.update(batch, step=1)
    assert metrics["td_loss"].dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in agent.q.parameters())
    assert agent.act(np.zeros((2, 4), np.float32), step=10_000, eval_mode=True).shape == (2,)


def test_unknown_precision_is_a_config_error():
    with pytest.raises(ConfigError, match="algo.precision"):
        make_agent(precision="fp8")


def test_bf16_hard_target_lives_in_bf16_and_syncs_from_the_fp32_network():
    agent = make_agent(precision="bf16")
    assert all(p.dtype == torch.bfloat16 for p in agent.q_target.torso.parameters())
    assert all(p.dtype == torch.float32 for p in agent.q_target.head.parameters())  # fp32 head
    batch = Batch(torch.randn(8, 4), torch.randint(0, 2, (8,)), torch.randn(8), torch.randn(8, 4),
                  torch.full((8,), 0.9))
    agent.update(batch, step=150)  # crosses target.every = 100: a hard copy
    for p_target, p in zip(agent.q_target.parameters(), agent.q.parameters(), strict=True):
        torch.testing.assert_close(p_target, p.to(p_target.dtype))
    # Polyak averaging keeps the fp32 target.
    soft = make_agent(precision="bf16", target=OmegaConf.create({"enabled": True, "every": 1, "tau": 0.01}))
    assert all(p.dtype == torch.float32 for p in soft.q_target.parameters())


def test_mlp_q_network_trains_through_one_flat_parameter():
    agent = make_agent(max_grad_norm=0.5)
    assert agent.flat is not None and agent.optimizer.param_groups[0]["params"] == [agent.flat]
    assert agent.flat.numel() == sum(p.numel() for p in agent.q.parameters())
    before = [p.detach().clone() for p in agent.q.parameters()]
    batch = Batch(torch.randn(8, 4), torch.randint(0, 2, (8,)), torch.randn(8) * 100, torch.randn(8, 4),
                  torch.full((8,), 0.9))
    agent.update(batch, step=1)
    assert all(not torch.equal(b, p) for b, p in zip(before, agent.q.parameters(), strict=True))
    # The flat gradient is the modules' gradients, clipped as clip_grad_norm_ would.
    assert torch.linalg.vector_norm(agent.flat.grad) <= 0.5 + 1e-5
    torch.testing.assert_close(torch.cat([p.grad.reshape(-1) for p in agent.q.parameters()]), agent.flat.grad)


def test_flat_backward_clips_like_clip_grad_norm():
    from torch import nn

    from deeprl.core.params import flat_backward, flat_parameters

    torch.manual_seed(0)
    a, b = nn.Linear(4, 3), nn.Linear(4, 3)
    b.load_state_dict(a.state_dict())
    x = torch.randn(16, 4) * 10
    flat = flat_parameters(a.parameters())
    flat_backward(flat, a(x).pow(2).sum(), max_grad_norm=1.0)
    b(x).pow(2).sum().backward()
    nn.utils.clip_grad_norm_(b.parameters(), 1.0)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa.grad, pb.grad)


def test_cuda_graphs_auto_records_only_a_convolutional_fp32_uncompiled_update_on_a_gpu():
    from deeprl.algos.dqn import resolve_cuda_graphs

    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert resolve_cuda_graphs("auto", cuda, "fp32", compile=False, convolutional=True)  # measured: 1.6x
    for device, precision, compile, convolutional in [(cpu, "fp32", False, True), (cuda, "bf16", False, True),
                                                      (cuda, "fp32", True, True), (cuda, "fp32", False, False)]:
        assert not resolve_cuda_graphs("auto", device, precision, compile, convolutional)
    assert not resolve_cuda_graphs(False, cuda, "fp32", compile=False, convolutional=True)
    assert resolve_cuda_graphs(True, cuda, "fp32", compile=False, convolutional=False)
    for device, precision, compile in [(cpu, "fp32", False), (cuda, "bf16", False), (cuda, "fp32", True)]:
        with pytest.raises(ConfigError, match="algo.cuda_graphs"):
            resolve_cuda_graphs(True, device, precision, compile, convolutional=True)


def test_cuda_graphs_default_is_auto_and_a_cpu_atari_run_stays_eager(capsys):
    from conftest import compose_config
    from deeprl.build import build

    cfg = compose_config("algo=dqn", "env=breakout", "device=cpu")
    assert cfg.algo.cuda_graphs == "auto"
    agent = build(cfg, "unused", with_loop=False).agent
    assert not agent.cuda_graphs and agent.graphed_learn is None
    assert "CUDA graphs" not in capsys.readouterr().out


@pytest.mark.cuda
def test_on_a_gpu_a_breakout_dqn_records_cuda_graphs_by_default(capsys):
    from conftest import compose_config
    from deeprl.build import build

    agent = build(compose_config("algo=dqn", "env=breakout", "device=cuda"), "unused", with_loop=False).agent
    assert agent.precision == "fp32" and agent.cuda_graphs and agent.graphed_learn is not None
    assert "replayed as CUDA graphs (algo.cuda_graphs auto" in capsys.readouterr().out


@pytest.mark.cuda
@pytest.mark.parametrize("prioritized", [False, True])
def test_on_a_gpu_cuda_graphs_learn_and_act_as_the_eager_agent(prioritized):
    """algo.cuda_graphs: the recorded update and greedy act give the eager agent's numbers (same
    kernels, replayed), through warm-up, recording and many replays with a changing learning rate
    and target syncs; and a loaded optimizer state is recorded again.

    Bit for bit only with deterministic kernels (`deterministic=true`): on an H200, cuDNN's
    autotuned convolution gradients are not deterministic, so two eager agents with the same
    weights and batches drift apart in the last bits after their first update (measured:
    docs/benchmarks.md, "Atari on a GPU")."""
    from deeprl.core.seeding import set_deterministic

    try:
        _graphs_match_eager(prioritized)
    finally:
        set_deterministic(False)  # build() set it process-wide; the tests after this one expect the default


def _graphs_match_eager(prioritized):
    from conftest import compose_config
    from deeprl.buffers import make_replay
    from deeprl.build import build

    overrides = ["algo=dqn", "env=breakout", "device=cuda", "algo.precision=fp32", "algo.target.every=8",
                 "network.channels_last=false", "algo.anneal_lr=true", "total_steps=64", "deterministic=true"]
    # Both with the graphs' optimizer (capturable fused Adam, a tensor learning rate); one runs eagerly.
    eager, graphed = (build(compose_config(*overrides, "algo.cuda_graphs=true"), "unused", with_loop=False).agent
                      for _ in range(2))
    eager.graphed_learn, eager.cuda_graphs = None, False
    graphed.q.load_state_dict(eager.q.state_dict())
    graphed.q_target.load_state_dict(eager.q_target.state_dict())
    rng = np.random.default_rng(0)
    replay = make_replay(200, (4, 84, 84), np.uint8, (), np.int64, 0.99, torch.device("cuda"), frame_stack=4,
                         prioritized=prioritized)
    obs = rng.integers(0, 255, (1, 4, 84, 84), dtype=np.uint8)
    for _ in range(120):
        next_obs = np.concatenate([obs[:, 1:], rng.integers(0, 255, (1, 1, 84, 84), dtype=np.uint8)], 1)
        replay.add(obs, rng.integers(0, 4, 1), rng.standard_normal(1).astype(np.float32), next_obs,
                   rng.random(1) < 0.05, np.zeros(1, bool))
        obs = next_obs
    for step in range(1, 41):
        kwargs = {"beta": 0.5} if prioritized else {}
        batch = replay.sample(32, np.random.default_rng(step), **kwargs)
        (m1, td1), (m2, td2) = eager.update(batch, step), graphed.update(batch, step)
        assert torch.equal(m1["td_loss"], m2["td_loss"]) and torch.equal(td1, td2), step
        probe = rng.integers(0, 255, (4, 4, 84, 84), dtype=np.uint8)
        assert np.array_equal(eager.act(probe, 10**6, eval_mode=True), graphed.act(probe, 10**6, eval_mode=True))
    assert graphed.graphed_learn.recorded and graphed.graphed_greedy[(4, 4, 84, 84)].recorded
    for a, b in zip(eager.q.parameters(), graphed.q.parameters(), strict=True):
        assert torch.equal(a, b)
    graphed.load_state_dict(eager.state_dict())
    assert not graphed.graphed_learn.recorded
