"""DDPG, TD3 and SAC: the pieces of their learning rules, each checked against its definition."""

import copy
import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch.distributions import Normal

from deeprl.algos.ddpg import DDPG
from deeprl.algos.sac import SAC
from deeprl.buffers import Batch
from deeprl.core.actions import ActionScale
from deeprl.core.errors import ConfigError
from deeprl.core.params import flat_parameters, polyak_update
from deeprl.envs import EnvSpec
from deeprl.networks.continuous import (
    Critics,
    DeterministicActor,
    SquashedGaussianActor,
    squashed_log_prob,
)

NET = OmegaConf.create({"_target_": "deeprl.networks.MLP", "hidden_sizes": [16, 16], "activation": "relu"})
# Asymmetric bounds on purpose: a map that only scaled (or only shifted) would fail the tests.
SPACE = gym.spaces.Box(low=np.array([-1.0, 0.0], np.float32), high=np.array([3.0, 10.0], np.float32))
SPEC = EnvSpec("Test-v0", (3,), np.dtype(np.float32), SPACE)
CPU = torch.device("cpu")


def ddpg(**overrides) -> DDPG:
    torch.manual_seed(0)
    kwargs = dict(gamma=0.9, tau=0.1, actor_lr=1e-3, critic_lr=1e-3, twin_critics=False, policy_delay=1,
                  target_noise=0.0, target_noise_clip=0.5,
                  exploration=OmegaConf.create({"noise": "gaussian", "std": 0.1, "ou_theta": 0.15, "ou_dt": 0.01}))
    kwargs.update(overrides)
    return DDPG(SPEC, NET, CPU, np.random.default_rng(0), 1000, **kwargs)


def sac(anneal_lr: bool = False, actor_lr: float = 1e-3, critic_lr: float = 1e-3, **entropy) -> SAC:
    torch.manual_seed(0)
    entropy = {"autotune": True, "alpha": 0.5, "target": None, **entropy}
    return SAC(SPEC, NET, CPU, np.random.default_rng(0), 1000, gamma=0.9, tau=0.1, actor_lr=actor_lr,
               critic_lr=critic_lr, entropy=OmegaConf.create(entropy), target_every=1, anneal_lr=anneal_lr)


def batch(n: int = 8, seed: int = 1) -> Batch:
    g = torch.Generator().manual_seed(seed)
    actions = torch.rand(n, 2, generator=g) * torch.tensor([4.0, 10.0]) + torch.tensor([-1.0, 0.0])
    return Batch(torch.randn(n, 3, generator=g), actions, torch.randn(n, generator=g),
                 torch.randn(n, 3, generator=g), torch.full((n,), 0.9))


def snapshot(flat: torch.Tensor) -> torch.Tensor:
    return flat.detach().clone()


# Shared pieces ------------------------------------------------------------------------------


def test_polyak_update_is_the_weighted_average_and_tau_one_copies():
    target, source = [torch.zeros(3), torch.ones(2)], [torch.full((3,), 2.0), torch.full((2,), -1.0)]
    polyak_update(target, source, 0.25)
    torch.testing.assert_close(target[0], torch.full((3,), 0.5))  # 0.25 * 2 + 0.75 * 0
    torch.testing.assert_close(target[1], torch.full((2,), 0.5))  # 0.25 * -1 + 0.75 * 1
    polyak_update(target, source, 1.0)
    assert torch.equal(target[0], source[0]) and torch.equal(target[1], source[1])


def test_action_scale_maps_the_unit_box_onto_asymmetric_bounds_and_back():
    scale = ActionScale(SPACE)
    np.testing.assert_allclose(scale.from_unit(np.array([-1.0, -1.0])), SPACE.low)
    np.testing.assert_allclose(scale.from_unit(np.array([1.0, 1.0])), SPACE.high)
    np.testing.assert_allclose(scale.from_unit(np.array([0.0, 0.0])), [1.0, 5.0])
    a = torch.tensor([[2.0, 7.5]])
    torch.testing.assert_close(scale.from_unit(scale.to_unit(a)), a)
    torch.testing.assert_close(scale.to_unit(a), torch.tensor([[0.5, 0.5]]))


@pytest.mark.parametrize("make", [ddpg, sac])
def test_actions_stay_within_asymmetric_bounds(make):
    agent = make()
    obs = np.random.default_rng(0).normal(size=(256, 3)).astype(np.float32) * 100  # saturate the tanh
    for eval_mode in (False, True):
        a = agent.act(obs, step=0, eval_mode=eval_mode)
        assert a.shape == (256, 2) and a.dtype == np.float32
        assert (a >= SPACE.low).all() and (a <= SPACE.high).all()
    # Both ends of each dimension are reached: actors saturated either way (through the mean's
    # output units, the first d of both actors' networks) act at the bounds.
    for sign, end in ((1.0, SPACE.high), (-1.0, SPACE.low)):
        with torch.no_grad():
            agent.actor.net.biases[-1][..., :2] = sign * 1e4
        a = agent.act(obs / 100, step=0, eval_mode=True)
        np.testing.assert_allclose(a, np.broadcast_to(end, a.shape), rtol=1e-6)


def test_critics_are_independent_networks_evaluated_together():
    torch.manual_seed(0)
    critics = Critics(5, [8, 8], "relu", n=2)
    obs, actions = torch.randn(4, 3), torch.randn(4, 2)
    q = critics(obs, actions)
    assert q.shape == (2, 4)
    x = torch.cat([obs, actions], 1)
    for i in range(2):
        h = x
        for layer, (w, b) in enumerate(zip(critics.net.weights, critics.net.biases, strict=True)):
            h = h @ w[i] + b[i]
            if layer < 2:
                h = torch.relu(h)
        torch.testing.assert_close(q[i], h.squeeze(-1))


def test_squashed_gaussian_log_prob_matches_a_numerical_change_of_variables():
    """The density of a = tanh(u), u ~ N(m, s²), is dF/da with F(a) = Φ((atanh(a) − m)/s); compare
    its log (central differences of the CDF) with the closed form, near the bounds too."""
    mean, log_std = torch.tensor([[0.3]], dtype=torch.float64), torch.tensor([[math.log(0.8)]], dtype=torch.float64)
    normal = Normal(mean, log_std.exp())
    for a in (-0.99, -0.5, 0.0, 0.4, 0.95, 0.999):
        a = torch.tensor([[a]], dtype=torch.float64)
        h = 1e-6
        density = (normal.cdf(torch.atanh(a + h)) - normal.cdf(torch.atanh(a - h))) / (2 * h)
        closed = squashed_log_prob(mean, log_std, torch.atanh(a))
        torch.testing.assert_close(closed, torch.log(density).squeeze(-1), rtol=1e-5, atol=1e-5)
    # Several dimensions: the log-densities add up.
    u = torch.tensor([[0.2, -1.5, 4.0]], dtype=torch.float64)
    m, ls = torch.tensor([[0.0, 0.5, -0.2]], dtype=torch.float64), torch.tensor([[0.1, -0.3, 0.0]], dtype=torch.float64)
    each = [squashed_log_prob(m[:, i:i + 1], ls[:, i:i + 1], u[:, i:i + 1]) for i in range(3)]
    torch.testing.assert_close(squashed_log_prob(m, ls, u), sum(each))
    # Far in the tail tanh(u) rounds to 1 in float32, and the log-prob must stay finite.
    far = squashed_log_prob(torch.zeros(1, 1), torch.zeros(1, 1), torch.full((1, 1), 30.0))
    assert torch.isfinite(far).all()


def test_squashed_gaussian_samples_are_reparameterised():
    torch.manual_seed(0)
    actor = SquashedGaussianActor(NET, (3,), 2)
    a, log_prob = actor.sample(torch.randn(5, 3), torch.Generator().manual_seed(0))
    assert a.shape == (5, 2) and log_prob.shape == (5,) and (a.abs() < 1).all()
    (a.sum() + log_prob.sum()).backward()
    out_w, out_b = actor.net.weights[-1], actor.net.biases[-1]
    # Both the mean's units (the first d outputs) and the log-std's get a gradient.
    assert out_w.grad[..., :2].abs().sum() > 0 and out_w.grad[..., 2:].abs().sum() > 0
    assert out_b.grad[..., :2].abs().sum() > 0 and out_b.grad[..., 2:].abs().sum() > 0


# DDPG and TD3 -------------------------------------------------------------------------------


def expected_critic_loss(agent, b: Batch, next_actions: torch.Tensor) -> torch.Tensor:
    """Σ_i mean (Q_i(s, a) − y)², y = r + discount · min_j Q'_j(s', a'), computed by hand."""
    with torch.no_grad():
        unit = (b.actions - agent.scale.bias) / agent.scale.scale
        q_next = agent.critic_target(b.next_obs, next_actions)
        y = b.rewards + b.discounts * q_next.min(0).values
        q = agent.critic(b.obs, unit)
    return ((q - y) ** 2).mean(1)


def test_ddpg_critic_target_is_r_plus_discount_times_target_q_of_target_actor():
    agent = ddpg()
    with torch.no_grad():
        agent.critic_target_flat.add_(0.3)  # target networks that differ from the online ones
        agent.actor_target_flat.mul_(-1.0)
    b = batch()
    with torch.no_grad():
        expected = expected_critic_loss(agent, b, agent.actor_target(b.next_obs))
    metrics, priorities = agent.update(b, step=1)
    torch.testing.assert_close(metrics["qf1_loss"], expected[0])
    assert "qf2_loss" not in metrics and priorities is None  # uniform replay needs no priorities


@pytest.mark.parametrize("make", [lambda: ddpg(twin_critics=True), sac])
def test_prioritized_batches_weight_the_loss_and_get_priorities_back(make):
    """With importance weights w the critic loss is mean(w · δ²) per critic, and the new priority of
    each sample is its |δ| averaged over the critics."""
    agent = make()
    b = batch(8)
    weights = torch.tensor([1.0, 0.5, 0.0, 2.0, 1.0, 1.0, 0.25, 1.0])
    replay = torch.Generator().manual_seed(0)
    replay.set_state(agent.generator.get_state())
    with torch.no_grad():
        if isinstance(agent, SAC):
            a, logp = agent.actor.sample(b.next_obs, replay)
            soft = agent.critic_target(b.next_obs, a).min(0).values - agent.log_alpha.exp() * logp
        else:
            soft = agent.critic_target(b.next_obs, agent.actor_target(b.next_obs)).min(0).values
        y = b.rewards + b.discounts * soft
        td = y - agent.critic(b.obs, agent.unit_actions(b.actions))
    metrics, priorities = agent.update(b._replace(weights=weights, indices=np.arange(8)), step=1)
    torch.testing.assert_close(torch.stack([metrics["qf1_loss"], metrics["qf2_loss"]]), (weights * td ** 2).mean(1))
    torch.testing.assert_close(priorities, td.abs().mean(0))


def test_td3_target_takes_the_min_of_twin_critics():
    agent = ddpg(twin_critics=True)
    with torch.no_grad():
        # Q'_2 = −Q'_1: which twin is smaller then depends on the sign of Q'_1, input by input.
        for w, b in zip(agent.critic_target.net.weights, agent.critic_target.net.biases, strict=True):
            w[1].copy_(w[0])
            b[1].copy_(b[0])
    b = batch(32)
    with torch.no_grad():
        # Centre Q'_1 on this batch so that its sign varies, then make Q'_2 its negative.
        q1 = agent.critic_target(b.next_obs, agent.actor_target(b.next_obs))[0]
        agent.critic_target.net.biases[-1][0].sub_(q1.median())
        agent.critic_target.net.weights[-1][1].copy_(-agent.critic_target.net.weights[-1][0])
        agent.critic_target.net.biases[-1][1].copy_(-agent.critic_target.net.biases[-1][0])
    with torch.no_grad():
        next_actions = agent.actor_target(b.next_obs)
        q_next = agent.critic_target(b.next_obs, next_actions)
        assert (q_next[0] < q_next[1]).any() and (q_next[0] > q_next[1]).any()
        expected = expected_critic_loss(agent, b, next_actions)
    metrics, _ = agent.update(b, step=1)
    torch.testing.assert_close(torch.stack([metrics["qf1_loss"], metrics["qf2_loss"]]), expected)


def test_td3_target_policy_smoothing_adds_clipped_noise():
    agent = ddpg(twin_critics=True, target_noise=5.0, target_noise_clip=0.3)
    b = batch(64)
    # The same draws the update will make, from a copy of the agent's generator.
    replay = torch.Generator().manual_seed(0)
    replay.set_state(agent.generator.get_state())
    with torch.no_grad():
        mu = agent.actor_target(b.next_obs)
        noise = (torch.randn(mu.shape, generator=replay) * 5.0).clamp(-0.3, 0.3)
        assert (noise.abs() == 0.3).float().mean() > 0.9  # σ = 5 ≫ c: nearly every draw is clipped
        expected = expected_critic_loss(agent, b, (mu + noise).clamp(-1.0, 1.0))
        unsmoothed = expected_critic_loss(agent, b, mu)
    metrics, _ = agent.update(b, step=1)
    torch.testing.assert_close(metrics["qf1_loss"], expected[0])
    assert not torch.isclose(metrics["qf1_loss"], unsmoothed[0])


def test_td3_delays_actor_and_target_updates():
    agent = ddpg(twin_critics=True, policy_delay=2, target_noise=0.2)
    actor, critic_target, actor_target = (snapshot(agent.actor_flat), snapshot(agent.critic_target_flat),
                                          snapshot(agent.actor_target_flat))
    critic = snapshot(agent.critic_flat)
    metrics, _ = agent.update(batch(seed=1), step=1)
    assert not torch.equal(agent.critic_flat, critic)  # the critics learn at every update
    assert torch.equal(agent.actor_flat, actor) and "actor_loss" not in metrics
    assert torch.equal(agent.critic_target_flat, critic_target) and torch.equal(agent.actor_target_flat, actor_target)
    critic = snapshot(agent.critic_flat)
    metrics, _ = agent.update(batch(seed=2), step=2)
    assert not torch.equal(agent.actor_flat, actor) and "actor_loss" in metrics
    # The targets move by τ towards the networks as they are after this update.
    torch.testing.assert_close(agent.critic_target_flat, 0.9 * critic_target + 0.1 * agent.critic_flat)
    torch.testing.assert_close(agent.actor_target_flat, 0.9 * actor_target + 0.1 * agent.actor_flat)
    assert not torch.equal(critic, agent.critic_flat)
    # The last actor loss is still reported by the next (critic-only) update.
    assert "actor_loss" in agent.update(batch(seed=3), step=3)[0]


def test_ddpg_actor_step_ascends_q_and_leaves_the_critic_alone():
    agent = ddpg()
    b = batch(64)
    with torch.no_grad():
        before = agent.critic(b.obs, agent.actor(b.obs))[0].mean()
    critic = copy.deepcopy(agent.critic)
    # Only the actor's step, on the critic as it is: Q(s, μ(s)) goes up, the critic is untouched.
    mu, cache = agent.actor.evaluate(b.obs)
    _, grad = agent.q_action_gradient(b.obs, mu, first=1)
    agent.actor.backward(cache, grad)
    agent.actor_optimizer.step()
    with torch.no_grad():
        after = agent.critic(b.obs, agent.actor(b.obs))[0].mean()
    assert after > before
    assert all(torch.equal(p, q) for p, q in zip(critic.parameters(), agent.critic.parameters(), strict=True))


@pytest.mark.parametrize("noise", ["gaussian", "ou"])
def test_exploration_noise_has_the_configured_scale(noise):
    agent = ddpg(exploration=OmegaConf.create({"noise": noise, "std": 0.2, "ou_theta": 0.15, "ou_dt": 0.01}))
    draws = np.concatenate([agent.noise(4) for _ in range(5000)])
    if noise == "gaussian":
        assert draws.std() == pytest.approx(0.2, rel=0.05) and abs(draws.mean()) < 0.01
    else:
        # OU is correlated in time: consecutive draws are close, and its stationary std is
        # σ √(dt / (2θ dt − θ² dt²)).
        steps = np.diff(draws.reshape(5000, 4, 2), axis=0)
        assert np.abs(steps).mean() < 0.5 * np.abs(draws).mean()
        assert agent.ou_state.shape == (4, 2)


# SAC ----------------------------------------------------------------------------------------


def test_sac_soft_target_subtracts_alpha_times_log_prob():
    agent = sac(autotune=False, alpha=0.5)
    b = batch(16)
    replay = torch.Generator().manual_seed(0)
    replay.set_state(agent.generator.get_state())
    with torch.no_grad():
        next_a, next_logp = agent.actor.sample(b.next_obs, replay)
        y = b.rewards + b.discounts * (agent.critic_target(b.next_obs, next_a).min(0).values - 0.5 * next_logp)
        q = agent.critic(b.obs, agent.unit_actions(b.actions))
        expected = ((q - y) ** 2).mean(1)
    metrics, _ = agent.update(b, step=1)
    torch.testing.assert_close(torch.stack([metrics["qf1_loss"], metrics["qf2_loss"]]), expected)
    assert metrics["alpha"] == pytest.approx(0.5) and "alpha_loss" not in metrics
    assert agent.log_alpha.item() == pytest.approx(math.log(0.5))  # fixed temperature


@pytest.mark.parametrize(("target", "direction"), [(10.0, 1), (-100.0, -1)])
def test_sac_temperature_moves_toward_the_target_entropy(target, direction):
    """Entropy below the target (a high target) raises α; above it (a very low target) lowers it.
    Adam's first step moves log α by the learning rate."""
    agent = sac(target=target)
    before = agent.log_alpha.item()
    metrics, _ = agent.update(batch(), step=1)
    assert (agent.log_alpha.item() - before) == pytest.approx(direction * 1e-3, rel=1e-3)
    assert agent.target_entropy == target and "alpha_loss" in metrics


def test_sac_default_target_entropy_is_minus_action_dimensions():
    assert sac().target_entropy == -2.0


def test_sac_update_moves_targets_by_polyak_averaging():
    agent = sac()
    target = snapshot(agent.critic_target_flat)
    agent.update(batch(), step=1)
    torch.testing.assert_close(agent.critic_target_flat, 0.9 * target + 0.1 * agent.critic_flat)


@pytest.mark.parametrize("make", [ddpg, sac])
def test_state_dict_round_trip_continues_identically(make):
    a = make()
    a.update(batch(seed=1), step=1)
    b = make()
    b.load_state_dict(copy.deepcopy(a.state_dict()))
    for seed in (2, 3):
        ma, pa = a.update(batch(seed=seed), step=seed)
        mb, pb = b.update(batch(seed=seed), step=seed)
        assert pa is None and pb is None and all(torch.equal(ma[k], mb[k]) for k in ma)
    assert torch.equal(a.actor_flat, b.actor_flat) and torch.equal(a.critic_target_flat, b.critic_target_flat)


def optimizers(agent) -> dict:
    return {name: getattr(agent, name) for name in agent.STATE if name.endswith("optimizer")}


@pytest.mark.parametrize("make", [ddpg, sac])
@pytest.mark.parametrize("anneal", [True, False])
def test_anneal_lr_moves_every_optimizers_rate_linearly_to_zero(make, anneal):
    """algo.anneal_lr: at env step t of T = 1000 each optimizer takes its own configured rate times
    1 − t/T (0 from T on), SAC's temperature included; without it, the configured rate throughout.
    The rate is the one the Adam step uses: at 0 the parameters stay put."""
    agent = make(anneal_lr=anneal, actor_lr=2e-3, critic_lr=1e-3)
    base = {"critic_optimizer": 1e-3, "actor_optimizer": 2e-3, "alpha_optimizer": 1e-3}
    assert set(optimizers(agent)) == {"critic_optimizer", "actor_optimizer"} | ({"alpha_optimizer"} if make is sac else set())
    for step, fraction in ((0, 1.0), (250, 0.75), (900, 0.1), (1000, 0.0), (1500, 0.0)):
        before = snapshot(agent.actor_flat), snapshot(agent.critic_flat)
        agent.update(batch(seed=step + 1), step=step)
        rates = {name: opt.param_groups[0]["lr"] for name, opt in optimizers(agent).items()}
        assert rates == pytest.approx({name: base[name] * (fraction if anneal else 1.0) for name in rates})
        assert agent.charts(step)["charts/learning_rate"] == pytest.approx(1e-3 * (fraction if anneal else 1.0))
        moved = not torch.equal(before[0], agent.actor_flat), not torch.equal(before[1], agent.critic_flat)
        assert moved == ((fraction > 0 or not anneal),) * 2


@pytest.mark.parametrize("make", [ddpg, sac])
def test_a_checkpoint_saved_before_anneal_lr_loads_and_goes_on(make):
    """Optimizer states saved before algo.anneal_lr existed carry no base rate: their rate, which
    never moved, becomes it, and the agent charts and learns as the one that saved it."""
    a = make()
    a.update(batch(seed=1), step=1)
    state = copy.deepcopy(a.state_dict())
    for name in optimizers(a):
        for group in state[name]["param_groups"]:
            del group["base_lr"]
    b = make()
    b.load_state_dict(state)
    assert b.charts(2) == a.charts(2)
    ma, _ = a.update(batch(seed=2), step=2)
    mb, _ = b.update(batch(seed=2), step=2)
    assert all(torch.equal(ma[k], mb[k]) for k in ma) and torch.equal(a.actor_flat, b.actor_flat)


def test_discrete_actions_are_refused():
    spec = EnvSpec("CartPole-v1", (4,), np.dtype(np.float32), gym.spaces.Discrete(2))
    with pytest.raises(ConfigError, match="continuous"):
        SAC(spec, NET, CPU, np.random.default_rng(0), 10, gamma=0.9, tau=0.1, actor_lr=1e-3, critic_lr=1e-3,
            entropy=OmegaConf.create({"autotune": True, "alpha": 1.0, "target": None}), target_every=1)


def test_flat_parameters_keep_the_critics_views():
    """The critics' weights are views into one flat tensor, so Adam's one step moves them all."""
    critics = Critics(4, [8], "relu", n=2)
    flat = flat_parameters(critics.parameters())
    with torch.no_grad():
        flat.add_(1.0)
    assert critics.net.weights[0].data_ptr() >= flat.data_ptr()
    assert torch.equal(torch.cat([p.detach().reshape(-1) for p in critics.parameters()]), flat.detach())


# The critics' gradients, written out, against autograd ----------------------------------------


def critics_and_inputs(activation: str, n: int, hidden, seed: int = 0):
    torch.manual_seed(seed)
    critics = Critics(3 + 2, hidden, activation, n)
    flat_parameters(critics.parameters())  # as the agents hold them: .grad views into one tensor
    g = torch.Generator().manual_seed(seed + 1)
    # Inputs spread wide enough that relu, elu, gelu and silu all see both of their regimes.
    return critics, 2 * torch.randn(64, 3, generator=g), torch.rand(64, 2, generator=g) * 2 - 1


@pytest.mark.parametrize("activation", ["relu", "tanh", "elu", "gelu", "silu"])
@pytest.mark.parametrize(("n", "hidden"), [(2, [16, 16]), (1, [16, 16]), (2, [8]), (2, [])])
@pytest.mark.parametrize("weighted", [False, True])
def test_critic_backward_is_the_autograd_gradient_of_the_td_loss(activation, n, hidden, weighted):
    critics, obs, actions = critics_and_inputs(activation, n, hidden)
    y = torch.randn(64)
    w = torch.rand(64) if weighted else torch.ones(64)
    # autograd on the forward pass
    loss = (w * (critics(obs, actions) - y) ** 2).mean(1).sum()
    expected = torch.autograd.grad(loss, list(critics.parameters()))
    # by hand: dL/dQ = 2 w (Q − y) / batch, back through the layers
    q, cache = critics.evaluate(obs, actions)
    torch.testing.assert_close(q, critics(obs, actions).detach())
    for p in critics.parameters():
        p.grad.fill_(float("nan"))  # every gradient must be written, not added to what was there
    critics.backward(cache, 2 * w * (q - y) / 64)
    for p, e in zip(critics.parameters(), expected, strict=True):
        torch.testing.assert_close(p.grad, e, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("activation", ["relu", "tanh", "elu", "gelu", "silu"])
@pytest.mark.parametrize(("first", "hidden", "tied"),
                         [(None, [16, 16], False), (1, [16, 16], False), (None, [], False), (None, [16, 16], True)])
def test_action_gradient_is_the_autograd_gradient_of_minus_mean_min_q(activation, first, hidden, tied):
    """∇ₐ of −mean_b min_i Q_i(s_b, a_b) over all critics (SAC's actor) or Q₁ alone (TD3's);
    twins that tie everywhere share the gradient, as autograd's amin does."""
    critics, obs, actions = critics_and_inputs(activation, 2, hidden, seed=3)
    if tied:
        with torch.no_grad():
            for p in critics.parameters():
                p[1].copy_(p[0])
    a = actions.clone().requires_grad_()
    q = critics(obs, a)[:first]
    (expected,) = torch.autograd.grad(-q.amin(dim=0).mean(), a)
    agent = sac()
    agent.critic = critics
    values, grad = agent.q_action_gradient(obs, actions, first)
    torch.testing.assert_close(values, q.amin(dim=0).detach())
    torch.testing.assert_close(grad, expected, rtol=1e-5, atol=1e-7)
    assert all(p.grad is None or not p.grad.isnan().any() for p in critics.parameters())


def test_backward_refuses_a_cache_of_some_critics_only():
    critics, obs, actions = critics_and_inputs("relu", 2, [8])
    _, cache = critics.evaluate(obs, actions, first=1)
    with pytest.raises(ValueError, match="all networks"):
        critics.backward(cache, torch.ones(1, 64))


def actor_gradient_of(module: torch.nn.Module, loss: torch.Tensor) -> torch.Tensor:
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, list(module.parameters()))])


def actor_gradient(agent, loss: torch.Tensor) -> torch.Tensor:
    return actor_gradient_of(agent.actor, loss)


@pytest.mark.parametrize("twins", [True, False])
def test_ddpg_actor_gradient_is_that_of_minus_mean_q1_of_mu(twins):
    """The deterministic policy gradient (∇ₐQ₁ at a = μ(s), back through the actor by hand) equals
    autograd's gradient of −mean Q₁(s, μ(s)) in the actor's weights."""
    agent = ddpg(twin_critics=twins)
    b = batch(64)
    expected = actor_gradient(agent, -agent.critic(b.obs, agent.actor(b.obs))[0].mean())
    mu, cache = agent.actor.evaluate(b.obs)
    torch.testing.assert_close(mu, agent.actor(b.obs).detach())
    q, grad = agent.q_action_gradient(b.obs, mu, first=1)
    agent.actor_flat.grad.fill_(float("nan"))
    agent.actor.backward(cache, grad)
    torch.testing.assert_close(agent.actor_flat.grad, expected)
    assert q.shape == (64,)


@pytest.mark.parametrize("activation", ["relu", "tanh", "elu", "gelu", "silu"])
@pytest.mark.parametrize("hidden", [[16, 16], []])
def test_deterministic_actor_backward_is_the_autograd_gradient(activation, hidden):
    torch.manual_seed(0)
    net = OmegaConf.create({"hidden_sizes": hidden, "activation": activation})
    actor = DeterministicActor(net, (3,), 2)
    flat = flat_parameters(actor.parameters())
    obs, dmu = 2 * torch.randn(32, 3), torch.randn(32, 2)
    expected = actor_gradient_of(actor, (actor(obs) * dmu).sum())
    mu, cache = actor.evaluate(obs)
    actor.backward(cache, dmu)
    torch.testing.assert_close(flat.grad, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("activation", ["relu", "tanh", "silu"])
@pytest.mark.parametrize("clamped", [False, True])
def test_sac_actor_gradient_is_that_of_its_loss(activation, clamped):
    """mean(α log π(a|s) − min_i Q_i(s, a)) for reparameterised a: `rsample` draws what `sample`
    draws, and `backward` gives autograd's gradient of that loss in the actor's weights (with
    log-stds pushed past both clamp bounds too, where they get none)."""
    torch.manual_seed(0)
    agent = sac(autotune=False, alpha=0.3)
    agent.actor = SquashedGaussianActor(OmegaConf.create({"hidden_sizes": [16, 16], "activation": activation}),
                                        (3,), 2)
    flat = flat_parameters(agent.actor.parameters())
    b = batch(64)
    if clamped:
        with torch.no_grad():  # log-std units: one far above 2, one far below −20 on some inputs
            agent.actor.net.weights[-1][0, :, 2:].mul_(200.0)
            agent.actor.net.biases[-1][0, 0, 2:] = torch.tensor([2.0, -20.0])
    draw = agent.generator.get_state()
    a, log_prob = agent.actor.sample(b.obs, agent.generator)
    expected = actor_gradient(agent, (0.3 * log_prob - agent.critic(b.obs, a).amin(dim=0)).mean())
    if clamped:
        raw = agent.actor.net(b.obs)[0, :, 2:]
        assert (raw > 2).any() and (raw < -20).any() and ((raw > -20) & (raw < 2)).any()
    agent.generator.set_state(draw)
    a2, log_prob2, cache = agent.actor.rsample(b.obs, agent.generator)
    torch.testing.assert_close(a2, a.detach())
    torch.testing.assert_close(log_prob2, log_prob.detach())
    _, grad = agent.q_action_gradient(b.obs, a2)
    flat.grad.fill_(float("nan"))
    agent.actor.backward(cache, grad, torch.tensor([0.3 / 64]))
    torch.testing.assert_close(flat.grad, expected, rtol=1e-4, atol=1e-6)


def test_actor_sample_log_prob_is_the_squashed_gaussian_density():
    """The actor writes log π from its noise draw (fewer operations); it must equal the density
    of the change of variables at the sampled pre-squash action (itself checked numerically above)."""
    torch.manual_seed(0)
    actor = SquashedGaussianActor(NET, (3,), 2)
    obs = torch.randn(64, 3)
    a, log_prob = actor.sample(obs, torch.Generator().manual_seed(5))
    with torch.no_grad():
        mean, log_std = actor(obs)
        u = mean + torch.randn(mean.shape, generator=torch.Generator().manual_seed(5)) * log_std.exp()
    torch.testing.assert_close(a, torch.tanh(u))
    torch.testing.assert_close(log_prob.detach(), squashed_log_prob(mean, log_std, u), rtol=1e-5, atol=1e-4)
