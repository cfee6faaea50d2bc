"""`algo.precision=bf16` for DDPG, TD3 and SAC: the hidden-to-hidden products of learning run in
bf16. The written-out gradients must be those of the same rounded network (checked against
autograd through the same casts), stay close to fp32's, and reach every network the agents learn
with, while acting stays fp32.

The shapes are small: on a CPU without native bf16 these products are emulated, far slower.
"""

import gymnasium as gym
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from conftest import continuous_agent, learned_networks
from deeprl.buffers import Batch
from deeprl.core.params import flat_parameters
from deeprl.envs import EnvSpec
from deeprl.networks.continuous import StackedMLP
from deeprl.networks.mlp import ACTIVATIONS

BF16 = torch.bfloat16
CPU = torch.device("cpu")


def rounded_forward(net: StackedMLP, x: torch.Tensor, activation: str) -> torch.Tensor:
    """Autograd's version of `evaluate` under `low=bf16`: the hidden-to-hidden products on
    bf16-rounded inputs and weights, everything else in fp32."""
    act = ACTIVATIONS[activation]
    weights, biases = list(net.weights), list(net.biases)
    x = x.expand(weights[0].shape[0], *x.shape)
    for layer, (w, b) in enumerate(zip(weights[:-1], biases[:-1], strict=True)):
        x = act(torch.bmm(x.to(BF16), w.to(BF16)).float() + b if layer else torch.baddbmm(b, x, w))
    return torch.baddbmm(biases[-1], x, weights[-1])


def nets(activation: str, n: int, out: int, hidden=(48, 40), seed: int = 0):
    """The same random network twice: one multiplying its hidden layers in bf16, one in fp32."""
    torch.manual_seed(seed)
    low = StackedMLP(5, hidden, activation, out, n, low=BF16)
    full = StackedMLP(5, hidden, activation, out, n)
    full.load_state_dict(low.state_dict())
    for net in (low, full):
        flat_parameters(net.parameters())  # .grad views into one tensor, as the agents hold them
    g = torch.Generator().manual_seed(seed + 1)
    return low, full, 2 * torch.randn(64, 5, generator=g), torch.randn(n, 64, out, generator=g)


def relative_error(x: torch.Tensor, reference: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(x - reference) / torch.linalg.vector_norm(reference))


@pytest.mark.parametrize("activation", ["relu", "tanh", "silu"])
@pytest.mark.parametrize(("n", "out"), [(2, 1), (1, 3)])  # twin critics; an actor's outputs
def test_bf16_gradients_are_those_of_the_rounded_network(activation, n, out):
    low, full, x, dy = nets(activation, n, out)
    y, cache = low.evaluate(x)
    reference = rounded_forward(low, x, activation)
    torch.testing.assert_close(y, reference.detach(), rtol=1e-3, atol=1e-4)
    expected = torch.autograd.grad((reference * dy).sum(), list(low.parameters()))
    for p in low.parameters():
        p.grad.fill_(float("nan"))  # every gradient must be written, not added to what was there
    low.backward(cache, dy)
    for p, e in zip(low.parameters(), expected, strict=True):
        assert p.grad.dtype == torch.float32
        assert relative_error(p.grad, e) < 5e-3, relative_error(p.grad, e)

    # ∂L/∂(last 2 inputs), as the critics' action gradient takes it
    xa = x.clone().requires_grad_()
    (expected_input,) = torch.autograd.grad((rounded_forward(low, xa, activation) * dy).sum(), xa)
    got = low.input_gradient(cache, dy, 2)
    assert relative_error(got, expected_input[:, -2:]) < 5e-3

    # and near fp32's: bf16 keeps 8 bits of mantissa, so outputs differ by about 0.3% and some
    # gradients, summed over the batch with cancellations, by up to 8% (seeds 0-4); a wrong
    # product (a missing transpose, a stale cast) would be off by about 100%
    y_full, cache_full = full.evaluate(x)
    assert relative_error(y, y_full) < 2e-2
    full.backward(cache_full, dy)
    for p, q in zip(low.parameters(), full.parameters(), strict=True):
        assert relative_error(p.grad, q.grad) < 0.2
    assert relative_error(got, full.input_gradient(cache_full, dy, 2)) < 0.2


def test_only_hidden_to_hidden_products_are_rounded():
    """The first layer (the observation and action as given) and the output layer stay fp32: with
    one hidden layer there is nothing to round, and `forward` (acting) is always fp32."""
    torch.manual_seed(0)
    low, full = StackedMLP(5, [32], "relu", 1, 2, low=BF16), StackedMLP(5, [32], "relu", 1, 2)
    full.load_state_dict(low.state_dict())
    x = torch.randn(16, 5)
    assert torch.equal(low.evaluate(x)[0], full.evaluate(x)[0])
    deep = StackedMLP(5, [32, 32], "relu", 1, 2, low=BF16)
    deep_full = StackedMLP(5, [32, 32], "relu", 1, 2)
    deep_full.load_state_dict(deep.state_dict())
    assert torch.equal(deep(x), deep_full(x))
    assert not torch.equal(deep.evaluate(x)[0], deep_full.evaluate(x)[0])


SPEC = EnvSpec("Test-v0", (3,), np.dtype(np.float32), gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32))
WIDE = OmegaConf.create({"hidden_sizes": [128, 128], "activation": "relu"})
NARROW = OmegaConf.create({"hidden_sizes": [64, 64], "activation": "relu"})


def agent(kind: str, network, precision: str):
    return continuous_agent(kind, SPEC, network, precision=precision)


@pytest.mark.parametrize("kind", ["ddpg", "td3", "sac"])
def test_agents_learn_with_bf16_products_where_asked_and_fp32_elsewhere(kind):
    bf16 = agent(kind, NARROW, "bf16")
    assert bf16.precision == "bf16" and all(net.low == BF16 for net in learned_networks(bf16))
    fp32 = agent(kind, WIDE, "fp32")
    assert fp32.precision == "fp32" and all(net.low is None for net in learned_networks(fp32))
    # auto: narrow networks stay fp32 on any CPU; wide ones follow the CPU (tests/unit/test_device.py)
    assert agent(kind, NARROW, "auto").precision == "fp32"


@pytest.mark.parametrize("kind", ["ddpg", "td3", "sac"])
def test_a_bf16_update_keeps_parameters_and_optimizer_in_fp32(kind):
    a = agent(kind, NARROW, "bf16")
    before = a.critic_flat.detach().clone(), a.actor_flat.detach().clone()
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        b = Batch(torch.randn(32, 3, generator=g), torch.rand(32, 2, generator=g) * 2 - 1,
                  torch.randn(32, generator=g), torch.randn(32, 3, generator=g), torch.full((32,), 0.9))
        metrics, _ = a.update(b, 10)
    for flat, start in zip((a.critic_flat, a.actor_flat), before, strict=True):
        assert flat.dtype == torch.float32 and flat.grad.dtype == torch.float32
        assert torch.isfinite(flat).all() and not torch.equal(flat.detach(), start)
    assert all(torch.isfinite(torch.as_tensor(v)).all() for v in metrics.values())
    # acting reads the fp32 forward pass
    obs = np.zeros((1, 3), np.float32)
    assert a.act(obs, 10, eval_mode=True).dtype == np.float32
