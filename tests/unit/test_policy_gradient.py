"""Pieces of the policy-gradient family: distributions, the PPO objective, rollout storage with
truncation and termination, observation normalisation, flat parameters, action bounds."""

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from deeprl.algos.ppo import PPO, clipped_surrogate
from deeprl.buffers.rollout import Rollout, select_episodes
from deeprl.core.params import flat_parameters
from deeprl.envs import EnvSpec
from deeprl.networks.policy import (
    CategoricalHead,
    GaussianHead,
    RunningNorm,
    build_actor_critic,
    categorical_entropy,
    categorical_log_prob,
    gaussian_entropy,
    gaussian_log_prob,
)

NET = OmegaConf.create({"_target_": "deeprl.networks.MLP", "hidden_sizes": [16], "activation": "tanh"})


# Distributions -------------------------------------------------------------------------------


def test_gaussian_log_prob_and_entropy_match_torch_distributions():
    gen = torch.Generator().manual_seed(0)
    mean = torch.randn(5, 3, generator=gen)
    log_std = torch.randn(3, generator=gen) * 0.5
    x = torch.randn(5, 3, generator=gen)
    normal = torch.distributions.Normal(mean, log_std.exp())
    torch.testing.assert_close(gaussian_log_prob(mean, log_std, x), normal.log_prob(x).sum(-1))
    torch.testing.assert_close(gaussian_entropy(log_std), normal.entropy()[0].sum())


def test_gaussian_log_prob_by_hand():
    # One dimension, σ = e^0.5: log N(1; 0, σ²) = -½ (1/σ)² - log σ - ½ log 2π.
    value = gaussian_log_prob(torch.zeros(1, 1), torch.tensor([0.5]), torch.ones(1, 1))
    expected = -0.5 * math.exp(-1.0) - 0.5 - 0.5 * math.log(2 * math.pi)
    assert value.item() == pytest.approx(expected)
    assert gaussian_entropy(torch.zeros(2)).item() == pytest.approx(1.0 + math.log(2 * math.pi))


def test_categorical_log_prob_and_entropy_match_torch_distributions():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(6, 4, generator=gen)
    actions = torch.randint(0, 4, (6,), generator=gen)
    dist = torch.distributions.Categorical(logits=logits)
    torch.testing.assert_close(categorical_log_prob(logits, actions), dist.log_prob(actions))
    torch.testing.assert_close(categorical_entropy(logits), dist.entropy())


def test_categorical_sampling_follows_the_probabilities():
    head = CategoricalHead(1, 3)
    logits = torch.log(torch.tensor([[0.2, 0.5, 0.3]])).expand(40_000, 3)
    samples = head.sample(logits, torch.Generator().manual_seed(0))
    freq = torch.bincount(samples, minlength=3).float() / len(samples)
    torch.testing.assert_close(freq, torch.tensor([0.2, 0.5, 0.3]), atol=0.01, rtol=0)
    assert head.mode(logits[:1]).item() == 1


def test_gaussian_head_samples_with_its_state_independent_std():
    head = GaussianHead(4, 2, init_log_std=math.log(0.5))
    mean = torch.tensor([[1.0, -1.0]]).expand(20_000, 2)
    samples = head.sample(mean, torch.Generator().manual_seed(0))
    torch.testing.assert_close(samples.mean(0), torch.tensor([1.0, -1.0]), atol=0.02, rtol=0)
    torch.testing.assert_close(samples.std(0), torch.tensor([0.5, 0.5]), atol=0.02, rtol=0)
    # The std does not depend on the features: one parameter per action dimension.
    assert [name for name, _ in head.named_parameters()] == ["log_std", "out.weight", "out.bias"]


# PPO objective ---------------------------------------------------------------------------------


def test_clipped_surrogate_on_a_fixed_batch():
    ratio = torch.tensor([0.5, 0.9, 1.1, 1.5, 0.5, 1.5])
    adv = torch.tensor([1.0, 1.0, 1.0, 1.0, -1.0, -1.0])
    # min(ρA, clip(ρ, 0.8, 1.2)A) per sample:
    #   A > 0: 0.5 (unclipped is lower), 0.9, 1.1, 1.2 (clipped);  A < 0: -0.8 (clipped), -1.5.
    expected = -torch.tensor([0.5, 0.9, 1.1, 1.2, -0.8, -1.5]).mean()
    torch.testing.assert_close(clipped_surrogate(ratio, adv, 0.2), expected)


def test_clipped_surrogate_has_no_gradient_beyond_the_clip_in_the_improving_direction():
    ratio = torch.tensor([1.5, 0.5, 1.0], requires_grad=True)
    adv = torch.tensor([1.0, -1.0, 2.0])
    clipped_surrogate(ratio, adv, 0.2).backward()
    # Pushing ρ further up with A > 0 (or down with A < 0) past the clip earns nothing.
    torch.testing.assert_close(ratio.grad, torch.tensor([0.0, 0.0, -2.0 / 3]))


# Rollout storage -------------------------------------------------------------------------------


def fake_values(obs: torch.Tensor) -> torch.Tensor:
    return obs[:, 0] * 10.0  # V(s) = 10 × first feature, easy to check


def zero_log_probs(obs, actions):
    return torch.zeros(len(obs))


def test_rollout_finish_bootstraps_truncations_with_the_final_observation():
    rollout = Rollout(3)
    obs = [torch.tensor([[0.0], [1.0]]), torch.tensor([[2.0], [3.0]]), torch.tensor([[4.0], [5.0]])]
    acts = torch.zeros(2, dtype=torch.long)
    f, t = np.array([False, False]), np.array([True, False])
    rollout.add(obs[0], acts, np.array([1.0, 1.0]), f, f, {})
    # Step 1: env 0 is truncated (final obs 9), env 1 terminates (final obs 7).
    rollout.add(obs[1], acts, np.array([1.0, 1.0]), np.array([False, True]), t,
                {"final_obs": np.array([[9.0], [7.0]])})
    rollout.add(obs[2], acts, np.array([1.0, 1.0]), f, f, {})
    last = torch.tensor([[6.0], [8.0]])
    batch = rollout.finish(last, zero_log_probs, fake_values)

    np.testing.assert_allclose(batch.values, [[0, 10], [20, 30], [40, 50]])
    np.testing.assert_allclose(batch.next_values, [[20, 30], [90, 0], [60, 80]])
    np.testing.assert_array_equal(batch.dones, [[0, 0], [1, 1], [0, 0]])
    np.testing.assert_array_equal(batch.terminated, [[0, 0], [0, 1], [0, 0]])
    np.testing.assert_allclose(batch.next_obs[..., 0].numpy(), [[2, 3], [9, 7], [6, 8]])
    assert len(rollout) == 0  # consumed


def test_rollout_without_a_critic_has_zero_values_and_grows_past_capacity():
    rollout = Rollout(1)
    for i in range(5):
        rollout.add(torch.full((1, 2), float(i)), torch.zeros(1, dtype=torch.long), np.ones(1),
                    np.zeros(1, bool), np.zeros(1, bool), {})
    batch = rollout.finish(torch.zeros(1, 2), zero_log_probs, lambda obs: None)
    assert batch.obs.shape == (5, 1, 2) and batch.size == 5
    assert not batch.values.any() and not batch.next_values.any()


def test_rollout_finish_without_estimates_leaves_them_out_and_the_rest_alike():
    """For an agent that recomputes them (READS_COLLECTION_ESTIMATES false): log-probabilities and
    values are None (nothing reads a stand-in), the rest is what `finish` gives with them."""
    batches = []
    for fns in ((zero_log_probs, fake_values), (None, None)):
        rollout = Rollout(3)
        for i in range(3):
            ended = np.array([i == 1, False])
            rollout.add(torch.full((2, 2), float(i)), torch.zeros(2, dtype=torch.long), np.ones(2), ended,
                        np.zeros(2, bool), {"final_obs": [np.full(2, 9.0, np.float32), None]})
        batches.append(rollout.finish(torch.full((2, 2), 3.0), *fns))
        assert len(rollout) == 0
    full, bare = batches
    assert bare.log_probs is None and bare.values is None and bare.next_values is None
    for name in ("obs", "actions", "next_obs"):
        assert torch.equal(getattr(full, name), getattr(bare, name)), name
    for name in ("rewards", "terminated", "dones"):
        assert np.array_equal(getattr(full, name), getattr(bare, name)), name
    assert torch.equal(bare.next_obs[1, 0], torch.full((2,), 9.0))  # the episode's final observation


def test_select_episodes_lays_whole_episodes_end_to_end():
    rollout = Rollout(4)
    dones = [np.array([False, False]), np.array([True, False]), np.array([False, True]), np.array([False, False])]
    for t in range(4):
        rollout.add(torch.tensor([[float(t)], [10.0 + t]]), torch.zeros(2, dtype=torch.long),
                    np.array([t, 10 + t], dtype=float), dones[t], np.zeros(2, bool),
                    {"final_obs": np.array([[0.0], [0.0]])})
    batch = rollout.finish(torch.zeros(2, 1), zero_log_probs, lambda obs: None)
    keep = np.array([[1, 1], [1, 1], [0, 1], [0, 0]], dtype=bool)
    episodes = select_episodes(batch, keep)
    np.testing.assert_allclose(episodes.rewards[:, 0], [0, 1, 10, 11, 12])
    np.testing.assert_array_equal(episodes.dones[:, 0], [0, 1, 0, 0, 1])
    assert episodes.obs.shape == (5, 1, 1)


# Observation normalisation, flat parameters, action bounds ----------------------------------------


def test_running_norm_matches_the_moments_of_everything_seen():
    norm = RunningNorm((3,))
    rng = np.random.default_rng(0)
    chunks = [rng.normal(loc=5.0, scale=2.0, size=(n, 3)) for n in (10, 1, 37)]
    for chunk in chunks:
        norm.update(torch.as_tensor(chunk, dtype=torch.float32))
    data = np.concatenate(chunks)
    np.testing.assert_allclose(norm.mean.numpy(), data.mean(0), rtol=1e-5)
    np.testing.assert_allclose(norm.var.numpy(), data.var(0), rtol=1e-4)
    z = norm(torch.as_tensor(data, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-4)
    assert norm(torch.full((1, 3), 1e6)).max().item() == 10.0  # clipped


def test_flat_parameters_keep_module_views_and_gradients_in_one_tensor():
    net = build_actor_critic(NET, (4,), gym.spaces.Box(-1, 1, (2,)))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    flat = flat_parameters(net.parameters())
    assert flat.numel() == sum(p.numel() for p in net.parameters())
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v, before[k])
    params, values = net(torch.randn(8, 4))
    (params.sum() + values.sum() + net.head.log_std.sum()).backward()
    assert flat.grad.abs().sum() > 0
    assert all(p.grad.data_ptr() >= flat.grad.data_ptr() for p in net.parameters())
    with torch.no_grad():
        flat.add_(1.0)  # an optimizer step on the flat tensor moves the module's parameters
    torch.testing.assert_close(net.head.log_std.detach(), before["head.log_std"] + 1.0)


def make_ppo(action_space, **overrides):
    spec = EnvSpec(id="Test-v0", obs_shape=(3,), obs_dtype=np.dtype(np.float32), action_space=action_space)
    kwargs = dict(gamma=0.99, gae_lambda=0.95, reward_scale=1.0, lr=1e-3, anneal_lr=True, adam_eps=1e-5,
                  n_epochs=2, num_minibatches=2, clip_coef=0.2, clip_vloss=True, norm_adv=True, ent_coef=0.01,
                  vf_coef=0.5, max_grad_norm=0.5, target_kl=None, shared_torso=False, ortho_init=True,
                  init_log_std=0.0, action_bounds="clip", normalize_obs=False, deterministic_eval=True)
    kwargs.update(overrides)
    return PPO(spec, NET, torch.device("cpu"), np.random.default_rng(0), 1000, **kwargs)


@pytest.mark.parametrize("bounds", ["clip", "tanh"])
def test_continuous_actions_reach_the_env_inside_the_bounds(bounds):
    agent = make_ppo(gym.spaces.Box(np.array([-2.0, 0.0], np.float32), np.array([2.0, 1.0], np.float32)),
                     init_log_std=2.0, action_bounds=bounds)
    actions = agent.act(np.random.default_rng(0).normal(size=(500, 3)).astype(np.float32), step=0)
    assert actions.shape == (500, 2) and actions.dtype == np.float32
    assert (actions[:, 0] >= -2).all() and (actions[:, 0] <= 2).all()
    assert (actions[:, 1] >= 0).all() and (actions[:, 1] <= 1).all()
    if bounds == "tanh":
        raw = torch.tensor([[0.0, 0.0]])
        np.testing.assert_allclose(agent.to_env(raw), [[0.0, 0.5]])  # tanh(0) = the middle


def test_ppo_update_returns_the_diagnostics_and_moves_the_policy():
    agent = make_ppo(gym.spaces.Discrete(2))
    rollout = Rollout(16)
    rng = np.random.default_rng(0)
    for _ in range(16):
        obs = torch.as_tensor(rng.normal(size=(4, 3)), dtype=torch.float32)
        _, actions, log_probs, values = agent.explore(obs)
        rollout.add(obs, actions, rng.normal(size=4), rng.random(4) < 0.05, np.zeros(4, bool),
                    {"final_obs": rng.normal(size=(4, 3)).astype(np.float32)}, log_probs=log_probs, values=values)
    batch = rollout.finish(torch.zeros(4, 3), agent.log_prob, agent.value)
    before = [p.clone() for p in agent.net.parameters()]
    metrics = agent.update(batch, step=100)
    assert set(metrics) == {"policy_loss", "value_loss", "entropy", "approx_kl", "clipfrac", "explained_variance"}
    assert all(torch.isfinite(v) for v in metrics.values())
    assert metrics["approx_kl"] >= 0 and 0 <= metrics["clipfrac"] <= 1
    assert any(not torch.equal(a, b) for a, b in zip(before, agent.net.parameters(), strict=True))
    assert agent.learning_rate(100) == pytest.approx(1e-3 * 0.9)  # annealed linearly


class Counting:
    """An agent's function that records how many observations each call evaluates."""

    def __init__(self, fn):
        self.fn, self.rows = fn, []

    def __call__(self, obs, *args):
        self.rows.append(len(obs))
        return self.fn(obs, *args)


@pytest.mark.parametrize("space", [gym.spaces.Discrete(3), gym.spaces.Box(-1.0, 1.0, (2,))], ids=["discrete", "box"])
@pytest.mark.parametrize("shared", [True, False], ids=["shared", "own-torso"])
def test_a_rollout_keeps_what_acting_computed_and_finish_computes_the_rest(space, shared):
    """With a shared torso the acting pass gives the log-probabilities and V(s_t): they equal what
    batched passes over the finished rollout give, and `finish` evaluates V only on what acting did
    not see (the last observation and each episode's final one). Otherwise `finish` computes both."""
    agent = make_ppo(space, shared_torso=shared)
    kept, computed = Rollout(6), Rollout(6)
    rng = np.random.default_rng(2)
    for t in range(6):
        obs = torch.as_tensor(rng.normal(size=(4, 3)), dtype=torch.float32)
        _, actions, log_probs, values = agent.explore(obs)
        assert (values is not None) == shared and (log_probs is not None) == shared
        dones = np.array([t == 2, t == 4, False, False])
        step = (obs, actions, rng.normal(size=4), dones, np.zeros(4, bool),
                {"final_obs": rng.normal(size=(4, 3)).astype(np.float32)})
        kept.add(*step, log_probs=log_probs, values=values)
        computed.add(*step)
    log_prob, value = Counting(agent.log_prob), Counting(agent.value)
    a = kept.finish(torch.zeros(4, 3), log_prob, value)
    b = computed.finish(torch.zeros(4, 3), agent.log_prob, agent.value)
    assert log_prob.rows == ([] if shared else [6 * 4])
    assert value.rows == [4 + 2 if shared else 6 * 4 + 4 + 2]
    for x, y in zip(a, b, strict=True):
        if isinstance(x, torch.Tensor):
            torch.testing.assert_close(x, y)
        else:
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def test_ppo_entropy_diagnostic_comes_from_the_update_forward_pass():
    """The entropy chart is measured in the last epoch's minibatch forward passes (no extra pass
    over the rollout): with one epoch of one minibatch it is the entropy of the policy that
    collected the data, over the whole rollout."""
    agent = make_ppo(gym.spaces.Discrete(2), n_epochs=1, num_minibatches=1)
    rollout = Rollout(8)
    rng = np.random.default_rng(1)
    for _ in range(8):
        obs = torch.as_tensor(rng.normal(size=(4, 3)), dtype=torch.float32)
        _, actions, log_probs, values = agent.explore(obs)
        rollout.add(obs, actions, rng.normal(size=4), np.zeros(4, bool), np.zeros(4, bool), {}, log_probs=log_probs,
                    values=values)
    batch = rollout.finish(torch.zeros(4, 3), agent.log_prob, agent.value)
    with torch.no_grad():
        expected = agent.head.entropy(agent.net.policy(batch.obs.reshape(-1, 3))).mean()
    torch.testing.assert_close(agent.update(batch, step=1)["entropy"], expected)


def test_agent_checkpoint_round_trip_restores_acting():
    a = make_ppo(gym.spaces.Box(-1.0, 1.0, (2,)), normalize_obs=True)
    a.net.obs_norm.update(torch.randn(50, 3) * 3 + 1)
    obs = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    b = make_ppo(gym.spaces.Box(-1.0, 1.0, (2,)), normalize_obs=True)
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a.act(obs, 0, eval_mode=True), b.act(obs, 0, eval_mode=True))
    np.testing.assert_array_equal(a.act(obs, 0), b.act(obs, 0))  # the sampling stream too


def test_initial_weights_do_not_depend_on_the_thread_count():
    threads = torch.get_num_threads()
    weights = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            torch.manual_seed(0)
            net = build_actor_critic(OmegaConf.create({**NET, "hidden_sizes": [64, 64]}), (4,),
                                     gym.spaces.Discrete(2))
            weights.append(net.state_dict())
            assert torch.get_num_threads() == n  # restored after the single-threaded init
    finally:
        torch.set_num_threads(threads)
    for key in weights[0]:
        torch.testing.assert_close(weights[0][key], weights[1][key], rtol=0, atol=0)


def test_orthogonal_init_fills_channels_last_convolutions():
    from deeprl.networks import NatureCNN
    from deeprl.networks.policy import orthogonal_init

    net = NatureCNN((4, 84, 84), channels_last=True)
    orthogonal_init(net, 2.0 ** 0.5)
    w = net.convs[0].weight
    assert w.is_contiguous(memory_format=torch.channels_last)
    rows = w.reshape(w.shape[0], -1)  # 32 x 256: orthogonal rows with norm sqrt(2)
    torch.testing.assert_close(rows @ rows.T, 2.0 * torch.eye(32), atol=1e-4, rtol=1e-4)


def test_explained_variance_is_nan_where_the_returns_do_not_vary(recwarn):
    from deeprl.algos.policy import explained_variance

    returns = torch.tensor([1.0, 2.0, 4.0, 7.0])
    values = torch.tensor([1.5, 2.0, 3.0, 6.0])
    expected = 1 - np.var((returns - values).numpy()) / np.var(returns.numpy())
    assert math.isclose(float(explained_variance(values, returns)), expected, rel_tol=1e-6)
    assert float(explained_variance(returns, returns)) == 1.0
    # Undefined: a sparse-reward rollout's returns all zero, or a batch of one (online actor-critic
    # with one env). NaN, as SB3 and CleanRL log it, and no degrees-of-freedom warning.
    assert math.isnan(float(explained_variance(values, torch.zeros(4))))
    assert math.isnan(float(explained_variance(values[:1], returns[:1])))
    assert not [w for w in recwarn if "degrees of freedom" in str(w.message)]
