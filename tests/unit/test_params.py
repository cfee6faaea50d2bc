"""The flat-parameter helpers: one tensor behind a network, and the Adam shortcut on it."""

import pytest
import torch
from torch import nn

from deeprl.core.params import adam_step, flat_parameters, optimizer_step


def net_and_flat(seed: int = 0):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2))
    return net, flat_parameters(net.parameters())


@pytest.mark.parametrize("lr", [1e-3, 0.1])
def test_adam_shortcut_matches_optimizer_step_bit_for_bit(lr):
    """Ten steps through the shortcut end where ten optimizer.step() calls do: parameters and
    Adam's moments and step count, exactly."""
    runs = []
    for shortcut in (False, True):
        net, flat = net_and_flat()
        optimizer = torch.optim.Adam([flat], lr=lr, eps=1e-5, fused=True)
        g = torch.Generator().manual_seed(1)
        for _ in range(10):
            loss = net(torch.randn(16, 3, generator=g)).pow(2).mean()
            if shortcut:
                optimizer_step(optimizer, loss, None, None, flat)  # flat → the shortcut after step 1
            else:
                flat.grad.zero_()
                loss.backward()
                optimizer.step()
        runs.append((flat.detach().clone(), {k: v.clone() for k, v in optimizer.state[flat].items()}))
    (p0, s0), (p1, s1) = runs
    assert torch.equal(p0, p1)
    assert s0.keys() == s1.keys() and all(torch.equal(s0[k], s1[k]) for k in s0)
    assert s1["step"].item() == 10


def test_adam_shortcut_falls_back_where_it_does_not_apply():
    """Several parameters, or options the shortcut does not implement, go through step()."""
    net, _ = net_and_flat()
    for optimizer in (torch.optim.Adam(net.parameters(), lr=0.1),  # four parameters
                      torch.optim.Adam([next(net.parameters())], lr=0.1, amsgrad=True, fused=True)):
        before = [p.detach().clone() for p in net.parameters()]
        for p in net.parameters():
            p.grad = torch.ones_like(p)
        adam_step(optimizer)  # creates the state through step()
        adam_step(optimizer)
        moved = [not torch.equal(b, p) for b, p in zip(before, net.parameters(), strict=True)]
        assert any(moved)
        assert all(s["step"].item() == 2 for s in optimizer.state.values())


def test_flat_parameters_are_views_of_one_tensor():
    net, flat = net_and_flat()
    with torch.no_grad():
        flat.zero_()
    assert all((p == 0).all() for p in net.parameters())
    net(torch.randn(4, 3)).sum().backward()
    assert torch.equal(flat.grad, torch.cat([p.grad.reshape(-1) for p in net.parameters()]))
