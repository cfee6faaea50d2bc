"""RMSpropTF: TensorFlow's RMSprop (ε inside the root, the mean square starting at 1)."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from deeprl.core.optim import RMSpropTF


def test_steps_follow_tensorflows_formula():
    """Six steps on random gradients against the update written out in float64 numpy."""
    lr, alpha, eps = 7e-4, 0.99, 1e-5
    rng = np.random.default_rng(0)
    theta0 = rng.normal(size=5)
    grads = rng.normal(scale=[1e-4, 1e-2, 1.0, 10.0, 0.0], size=(6, 5))  # tiny, usual, large, none
    param = nn.Parameter(torch.tensor(theta0, dtype=torch.float64))
    optimizer = RMSpropTF([param], lr=lr, alpha=alpha, eps=eps)
    theta, v = theta0.copy(), np.ones(5)
    for g in grads:
        param.grad = torch.tensor(g)
        optimizer.step()
        v = alpha * v + (1 - alpha) * g * g
        theta = theta - lr * g / np.sqrt(v + eps)
    np.testing.assert_allclose(param.detach().numpy(), theta, rtol=1e-12, atol=0)
    np.testing.assert_allclose(optimizer.state[param]["square_avg"].numpy(), v, rtol=1e-12)


def test_a_first_small_gradient_takes_a_gradient_descent_sized_step_not_torchs_jump():
    """The two differences from torch.optim.RMSprop: from v = 0 with ε outside the root, a first
    gradient of 1e-4 moves a weight by about 5 × lr; from v = 1 with ε inside, by about 1e-4 × lr."""
    lr = 1e-3
    steps = {}
    for name, make in (("tf", RMSpropTF), ("torch", torch.optim.RMSprop)):
        param = nn.Parameter(torch.zeros(1, dtype=torch.float64))
        optimizer = make([param], lr=lr, alpha=0.99, eps=1e-5)
        param.grad = torch.full((1,), 1e-4, dtype=torch.float64)
        optimizer.step()
        steps[name] = -param.item()
    assert steps["tf"] == pytest.approx(1e-4 * lr / np.sqrt(0.99 + 1e-2 * 1e-8 + 1e-5), rel=1e-12)
    assert steps["torch"] == pytest.approx(lr * 1e-4 / (np.sqrt(1e-2) * 1e-4 + 1e-5), rel=1e-12)
    assert steps["torch"] > 10_000 * steps["tf"]


def test_its_state_round_trips_through_a_state_dict():
    """A resumed run loads the optimizer's state dict: the next steps are the same, bit for bit."""
    def stepped(optimizer, param, seed, n):
        g = torch.Generator().manual_seed(seed)
        for _ in range(n):
            param.grad = torch.randn(4, generator=g)
            optimizer.step()

    whole = nn.Parameter(torch.arange(4.0))
    optimizer = RMSpropTF([whole], lr=0.01)
    stepped(optimizer, whole, 1, 3)
    saved = copy.deepcopy(optimizer.state_dict())  # as written to a checkpoint: not the live tensors
    cut = nn.Parameter(whole.detach().clone())
    restored = RMSpropTF([cut], lr=0.01)
    restored.load_state_dict(saved)
    stepped(optimizer, whole, 2, 3)
    stepped(restored, cut, 2, 3)
    assert torch.equal(whole, cut)
    assert torch.equal(optimizer.state[whole]["square_avg"], restored.state[cut]["square_avg"])


@pytest.mark.parametrize("kwargs", [{"alpha": 1.0}, {"alpha": -0.1}, {"eps": 0.0}])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        RMSpropTF([nn.Parameter(torch.ones(1))], lr=0.01, **kwargs)
