"""Optimizer pieces: parameter groups that keep their base learning rate, its linear annealing, and
RMSprop as TensorFlow runs it (RL-Zoo's setting for A2C on Atari; torch.optim has no such option)."""

import torch

from deeprl.core.schedules import linear_schedule


def param_groups(*groups: tuple[list, float]) -> list[dict]:
    """Optimizer parameter groups with their base learning rate kept for annealing (groups with no
    parameters left out)."""
    return [{"params": params, "lr": lr, "base_lr": lr} for params, lr in groups if params]


def scheduled_lr(group: dict, anneal: bool, total_steps: int, step: int) -> float:
    """A param group's learning rate at env step `step`: its base rate, or with `anneal` that rate
    falling linearly to 0 at total_steps (CleanRL's anneal_lr, RL-Zoo's `lin_<lr>`). Annealing to
    zero freezes the policy as training ends instead of letting it drift."""
    return linear_schedule(group["base_lr"], 0.0, total_steps, step) if anneal else group["base_lr"]


def set_scheduled_lr(optimizer: torch.optim.Optimizer, anneal: bool, total_steps: int, step: int) -> None:
    """Each param group's rate for env step `step` (scheduled_lr)."""
    for group in optimizer.param_groups:
        group["lr"] = scheduled_lr(group, anneal, total_steps, step)


class RMSpropTF(torch.optim.Optimizer):
    """RMSprop with TensorFlow's arithmetic, which the A3C paper, OpenAI Baselines' A2C and
    Stable-Baselines3's Atari A2C (`RMSpropTFLike`) use:

        v ← α v + (1 − α) g²,   θ ← θ − lr · g / √(v + ε),   v starting at 1.

    torch's RMSprop differs twice: ε outside the root, g / (√v + ε), and v starting at 0. With
    ε = 1e-5 a weight whose gradient has been near zero can then take a step of up to lr·|g|/ε
    (10⁵ × lr × |g|) the first time it gets one; here the divisor is at least √ε ≈ 0.003, and
    the first steps are close to plain gradient descent while v learns the gradients' scale.
    No momentum, no centring (neither setting is used by those A2Cs).
    """

    def __init__(self, params, lr: float = 7e-4, alpha: float = 0.99, eps: float = 1e-5):
        if not 0.0 <= alpha < 1.0:
            raise ValueError(f"alpha must be in [0, 1), got {alpha}")
        if eps <= 0.0:
            raise ValueError(f"eps must be > 0, got {eps}")
        super().__init__(params, {"lr": lr, "alpha": alpha, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, alpha, eps = group["lr"], group["alpha"], group["eps"]
            for param in group["params"]:
                grad = param.grad
                if grad is None:
                    continue
                state = self.state[param]
                if not state:
                    state["square_avg"] = torch.ones_like(param, memory_format=torch.preserve_format)
                square_avg = state["square_avg"]
                square_avg.mul_(alpha).addcmul_(grad, grad, value=1.0 - alpha)
                param.addcdiv_(grad, square_avg.add(eps).sqrt_(), value=-lr)
        return loss
