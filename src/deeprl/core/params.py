"""One flat parameter tensor behind a small network's parameters (see `flat_parameters`)."""

import torch
from torch import nn


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
    else:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if max_grad_norm:
            nn.utils.clip_grad_norm_(params, max_grad_norm)
    optimizer.step()
