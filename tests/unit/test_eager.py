"""torch.optim without the compiler (deeprl.core.eager): the same steps, and no run loads it."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from deeprl.core import eager
from deeprl.core.optim import RMSpropTF


def trained(make, stepper, seed: int = 0):
    """Parameters and optimizer state after eight steps of `stepper` on a small regression."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2))
    optimizer = make(net.parameters())
    g = torch.Generator().manual_seed(1)
    for _ in range(8):
        optimizer.zero_grad(set_to_none=True)
        net(torch.randn(16, 3, generator=g)).pow(2).mean().backward()
        stepper(optimizer)
    state = [{k: v.clone() for k, v in optimizer.state[p].items()} for p in net.parameters()]
    return [p.detach().clone() for p in net.parameters()], state


@pytest.mark.parametrize("make", [
    lambda ps: torch.optim.Adam(ps, lr=0.01, fused=True),
    lambda ps: torch.optim.Adam(ps, lr=0.01, foreach=False, amsgrad=True),
    lambda ps: torch.optim.RMSprop(ps, lr=0.01, alpha=0.99, eps=1e-5),
    lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9),
    lambda ps: RMSpropTF(ps, lr=0.01, alpha=0.99, eps=1e-5),
], ids=["adam-fused", "adam-amsgrad", "rmsprop", "sgd-momentum", "rmsprop-tf"])
def test_a_step_without_the_compiler_matches_optimizer_step_bit_for_bit(make):
    assert eager._plain(make([nn.Parameter(torch.ones(1))]))  # the class's own step is what runs
    (p0, s0), (p1, s1) = trained(make, lambda o: o.step()), trained(make, eager.step)
    assert all(torch.equal(a, b) for a, b in zip(p0, p1, strict=True))
    for a, b in zip(s0, s1, strict=True):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_step_hook_or_a_differentiable_optimizer_goes_through_optimizer_step():
    param = nn.Parameter(torch.ones(3))
    param.grad = torch.ones(3)
    optimizer = torch.optim.SGD([param], lr=0.1)
    seen = []
    handle = optimizer.register_step_post_hook(lambda opt, args, kwargs: seen.append(1))
    eager.step(optimizer)
    assert seen == [1] and torch.allclose(param.detach(), torch.full((3,), 0.9))
    handle.remove()
    eager.step(optimizer)
    assert seen == [1]  # no hook left: the class's own step, not Optimizer.step
    assert not eager._plain(torch.optim.SGD([nn.Parameter(torch.ones(1))], lr=0.1, differentiable=True))


# Each algorithm trains a few updates and checkpoints in a fresh interpreter; the runs marked
# resume=True also go on from their checkpoint (an optimizer's load_state_dict: Adam and RMSprop).
RUNS = textwrap.dedent("""
    import sys, tempfile
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from conftest import compose_config
    from deeprl.build import build
    from deeprl.core.checkpoint import load
    assert "torch._dynamo" not in sys.modules, "loaded by an import"
    for overrides, resume in {runs!r}:
        run_dir = Path(tempfile.mkdtemp())
        cfg = compose_config(*overrides, "total_steps=200", "eval.every=0", "eval.episodes=1",
                             "log.progress=false", "device=cpu")
        build(cfg, run_dir).execute()
        if resume:
            cfg.total_steps = 300
            build(cfg, run_dir, resume_from=load(run_dir / "checkpoints" / "final.pt")).execute()
        assert "torch._dynamo" not in sys.modules, overrides
    print("ok")
""")

ALGOS = [
    (["algo=dqn", "env=cartpole", "algo.learning_starts=100"], True),
    (["algo=rainbow_lite", "env=cartpole", "algo.learning_starts=100"], False),
    (["algo=dqn", "env=minatar_breakout", "algo.learning_starts=100", "algo.batch_size=8"], False),
    (["algo=fitted_q_iteration", "env=gridworld_4x3"], False),
    (["algo=reinforce", "env=cartpole", "algo.batch_steps=100"], False),
    (["algo=actor_critic", "env=cartpole", "algo.mode=online"], False),
    (["algo=a2c", "env=cartpole"], True),
    (["algo=a2c", "env=cartpole", "algo.optimizer=rmsprop_tf", "algo.shared_torso=true"], True),
    (["algo=ppo", "env=pendulum", "algo.n_steps=64"], False),
    (["algo=ddpg", "env=pendulum", "algo.learning_starts=100", "algo.batch_size=16"], False),
    (["algo=td3", "env=pendulum", "algo.learning_starts=100", "algo.batch_size=16"], False),
    (["algo=sac", "env=pendulum", "algo.learning_starts=100", "algo.batch_size=16"], True),
]


def in_a_fresh_interpreter(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)


def test_no_algorithm_loads_the_compiler_to_train_checkpoint_and_resume(tmp_path):
    """torch._dynamo costs as much to import as torch: a run that does not compile never loads it
    (this fails, rather than slows, where a new torch wraps its optimizers some other way)."""
    tests = str(Path(__file__).resolve().parents[1])
    result = in_a_fresh_interpreter(RUNS.format(tests=tests, runs=ALGOS))
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]


def test_a_run_that_compiles_keeps_torchs_own_wrappers():
    """algo.compile: the compiler is loaded anyway, and torch.optim's methods stay excluded from it."""
    code = textwrap.dedent("""
        import sys, tempfile, torch
        sys.path.insert(0, {tests!r})
        from conftest import compose_config
        from deeprl.build import build
        cfg = compose_config("algo=dqn", "env=cartpole", "algo.compile=true", "device=cpu", "log.progress=false")
        build(cfg, tempfile.mkdtemp(), with_loop=False)
        raw = torch.optim.Optimizer.add_param_group.__wrapped__
        assert "torch._dynamo" in sys.modules
        assert getattr(raw, "__dynamo_disable") is not raw, "the wrapper was bypassed"
        print("ok")
    """)
    tests = str(Path(__file__).resolve().parents[1])
    result = in_a_fresh_interpreter(code.format(tests=tests))
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]
