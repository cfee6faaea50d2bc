"""One flat parameter tensor behind a small network's parameters (see `flat_parameters`)."""

import torch
from torch import nn

from deeprl.core import eager


def flat_parameters(params) -> nn.Parameter:
    """One contiguous parameter (and gradient) behind all of `params`, which become views into it.

    Optimizer steps, gradient zeroing and norm clipping then each run as one kernel on one tensor
    instead of a loop over a dozen small ones: for small networks that loop costs more than the
    arithmetic. Only for a single optimizer group where every parameter gets a gradient from the
    loss (a zero gradient still moves Adam's momentum, unlike a missing one).
    """
    params = list(params)
    flat = nn.Parameter(torch.cat([p.detach().reshape(-1) for p in params]))
    flat.grad = torch.zeros_like(flat)
    offset = 0
    for p in params:
        n = p.numel()
        p.data = flat.data[offset:offset + n].view_as(p)
        # Backward accumulates in place into an existing .grad, so gradients land in flat.grad.
        p.grad = flat.grad[offset:offset + n].view_as(p)
        offset += n
    return flat


def flat_backward(flat: nn.Parameter, loss: torch.Tensor, max_grad_norm: float | None) -> None:
    """Gradients of `loss` into `flat.grad`, the global norm clipped to `max_grad_norm` (as
    nn.utils.clip_grad_norm_ does). Zero, backward and clip each touch one tensor; the gradient
    buffer is kept (zeroed, never freed) because the parameters' .grad are views into it."""
    grad = flat.grad
    grad.zero_()
    loss.backward()
    if max_grad_norm:
        grad.mul_(torch.clamp(max_grad_norm / (torch.linalg.vector_norm(grad) + 1e-6), max=1.0))


def optimizer_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, max_grad_norm: float | None,
                   params, flat: nn.Parameter | None = None) -> None:
    """One optimizer step on `loss`, the global gradient norm of `params` clipped to
    `max_grad_norm`. With `flat` (see `flat_parameters`) zero, backward and clip touch that one
    tensor; otherwise gradients are freed and rebuilt, and only the parameters the loss reached
    are clipped."""
    if flat is not None:
        flat_backward(flat, loss, max_grad_norm)
        adam_step(optimizer)
        return
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if max_grad_norm:
        nn.utils.clip_grad_norm_(params, max_grad_norm)
    eager.step(optimizer)


def adam_step(optimizer: torch.optim.Optimizer) -> None:
    """`optimizer.step()`, with a shortcut for the common case of small networks: a fused Adam over
    one flat parameter whose state exists. `Optimizer.step` spends about 20 µs of Python (hooks,
    grouping, checks) around a 6 µs kernel, and an off-policy agent steps two or three optimizers
    per environment step; the shortcut calls the same fused kernel on the same state with the same
    arguments (tests/unit/test_params.py checks it matches step() bit for bit). Anything else
    (the first step, which creates the state; several groups or parameters; amsgrad, weight decay,
    maximize, a tensor lr) goes through step() (deeprl.core.eager.step: without loading the
    compiler)."""
    groups = optimizer.param_groups
    group = groups[0]
    params = group["params"]
    state = optimizer.state.get(params[0]) if len(groups) == 1 and len(params) == 1 else None
    if (not state or not isinstance(optimizer, torch.optim.Adam) or not group["fused"] or group["amsgrad"]
            or group["weight_decay"] or group["maximize"] or isinstance(group["lr"], torch.Tensor)
            or params[0].grad is None):
        eager.step(optimizer)
        return
    param = params[0]
    step = state["step"]
    step += 1  # Adam's step count, a tensor the fused kernel reads for bias correction
    beta1, beta2 = group["betas"]
    torch._fused_adam_([param], [param.grad], [state["exp_avg"]], [state["exp_avg_sq"]], [], [step],
                       amsgrad=False, lr=group["lr"], beta1=beta1, beta2=beta2, weight_decay=0.0,
                       eps=group["eps"], maximize=False)


@torch.no_grad()
def polyak_update(target, source, tau: float) -> None:
    """θ_target ← τ·θ + (1 − τ)·θ_target for each pair of tensors (τ = 1 is a hard copy).

    One fused kernel over the lists (one tensor each when both networks are flat parameters)."""
    target, source = list(target), list(source)
    if tau >= 1.0:
        torch._foreach_copy_(target, source)
    else:
        torch._foreach_lerp_(target, source, tau)
