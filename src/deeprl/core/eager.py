"""torch.optim without torch._dynamo: a run that never compiles does not load the compiler.

torch.optim keeps torch.compile out of its methods with `torch._disable_dynamo`, a wrapper that
imports torch._dynamo the first time each method is called (the constructor calls one), and
`Optimizer.step` imports it on every call to mark graph breaks. That import (the tracer, sympy)
costs as much CPU as importing torch itself, and every `train`, `evaluate` and sweep job paid it at
its start though none compiles: 1.5-1.8 s of a 300-step run's 4.2-4.4 s (docs/benchmarks.md,
`startup`).

`keep_compiler_out()` marks those wrapped methods as wrapped already. The wrapper caches what it
would build in the wrapped function's `__dynamo_disable` attribute, and outside a compiled region
that is a plain call, so the method itself goes there. `step(optimizer)` calls the optimizer class's
own step function under no_grad, which is what `Optimizer.step` does when no hook is registered and
the optimizer is not differentiable; anything else goes through `Optimizer.step`.

A run that compiles (`algo.compile`) leaves torch's wrappers as they are (build.py does not call
`keep_compiler_out`). A process that marked them for an earlier run (a sweep worker given several
jobs) keeps them marked for a compiled one, which is harmless: deeprl compiles networks' forward
passes only, and no optimizer method runs inside one.

Both helpers read torch internals (torch/_compile.py and torch/optim/optimizer.py of torch 2.x);
where those are not found torch's own path runs, loading the compiler again but computing the same
numbers. tests/unit/test_eager.py checks that the steps match `Optimizer.step` bit for bit and that
no algorithm's run loads torch._dynamo (so a torch that wraps its optimizers otherwise fails it).
"""

import functools
import inspect
import sys

import torch
import torch.optim

_kept_out = False


def _wrapper_codes() -> tuple:
    """The code objects of torch.optim's two compiler-excluding wrappers (found by making one)."""
    codes = [torch._disable_dynamo(lambda: None).__code__]
    optimizer_module = sys.modules["torch.optim.optimizer"]
    unsupported = getattr(optimizer_module, "_disable_dynamo_if_unsupported", None)
    if unsupported is not None:  # wraps the functional adam, rmsprop, ...: state_steps is its argument
        codes.append(unsupported()(lambda state_steps=None: None).__code__)
    return tuple(codes)


def keep_compiler_out() -> None:
    """Mark torch.optim's compiler-excluding wrappers as built, so calling them imports nothing.
    Once per process; not once torch._dynamo is loaded (its wrappers then cost nothing)."""
    global _kept_out
    if _kept_out or "torch._dynamo" in sys.modules:
        return
    try:
        codes = _wrapper_codes()
    except (AttributeError, KeyError, TypeError):  # another torch: its own path, as before
        return
    seen: set[int] = set()

    def mark(fn) -> None:
        while fn is not None and id(fn) not in seen:
            seen.add(id(fn))
            wrapped = getattr(fn, "__wrapped__", None)
            if getattr(fn, "__code__", None) in codes and wrapped is not None:
                wrapped.__dynamo_disable = wrapped  # what torch caches there: the function to call
            fn = wrapped

    modules = [sys.modules["torch.optim.optimizer"],
               *(m for m in vars(torch.optim).values() if inspect.ismodule(m))]
    for module in modules:
        for value in vars(module).values():
            for fn in vars(value).values() if inspect.isclass(value) else [value]:
                if callable(fn):
                    mark(fn)
    _kept_out = True


def _plain(optimizer: torch.optim.Optimizer) -> bool:
    """Whether Optimizer.step would add nothing around the class's step function: no step hooks
    (the optimizer's or global ones), not differentiable. Unknown internals count as not plain."""
    hooks = sys.modules["torch.optim.optimizer"]
    return (not optimizer.defaults.get("differentiable")
            and not getattr(optimizer, "_optimizer_step_pre_hooks", True)
            and not getattr(optimizer, "_optimizer_step_post_hooks", True)
            and not getattr(hooks, "_global_optimizer_pre_hooks", True)
            and not getattr(hooks, "_global_optimizer_post_hooks", True))


def step(optimizer: torch.optim.Optimizer) -> None:
    """`optimizer.step()`, without Optimizer.step's wrapping where it adds nothing (see `_plain`):
    the wrapping loads the compiler. (The class's step function loads it too, through the functional
    optimizer it calls, unless `keep_compiler_out` ran first.)"""
    if not _plain(optimizer):
        optimizer.step()
        return
    with torch.no_grad():
        _own_step(type(optimizer))(optimizer)


@functools.cache
def _own_step(cls: type):
    """The step function `cls` defines, under Optimizer.step's wrappers (the profiler's, then the
    grad-mode one); looked up once per class, not at every step."""
    raw = cls.step
    while hasattr(raw, "__wrapped__"):
        raw = raw.__wrapped__
    return raw
