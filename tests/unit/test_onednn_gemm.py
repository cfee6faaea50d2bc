"""algo.cpu_gemm: oneDNN multiplying the fp32 hidden-to-hidden products of DDPG, TD3 and SAC gives
torch's numbers (to float rounding), and `auto` picks it only where it pays."""

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from conftest import compose_config, continuous_agent, learned_networks
from deeprl.buffers import Batch
from deeprl.core.device import onednn_available, onednn_pays, resolve_cpu_gemm
from deeprl.core.errors import ConfigError
from deeprl.core.params import flat_parameters
from deeprl.envs import EnvSpec
from deeprl.networks.continuous import (
    Critics,
    DeterministicActor,
    SquashedGaussianActor,
    StackedMLP,
)

pytestmark = pytest.mark.skipif(not onednn_available(), reason="this torch build has no oneDNN")

CPU = torch.device("cpu")
# Unequal widths, so that a transposed product in the wrong place cannot pass; two hidden-to-hidden
# products, so that a layer between two oneDNN layers is covered.
HIDDEN = [32, 24, 16]
SPACE = gym.spaces.Box(low=np.array([-1.0, 0.0], np.float32), high=np.array([3.0, 10.0], np.float32))
SPEC = EnvSpec("Test-v0", (3,), np.dtype(np.float32), SPACE)


def pair(make):
    """The same network twice (same parameters), multiplied by torch and by oneDNN."""
    torch.manual_seed(0)
    ours, theirs = make("torch"), make("onednn")
    theirs.load_state_dict(ours.state_dict())
    return ours, theirs, flat_parameters(ours.parameters()), flat_parameters(theirs.parameters())


@pytest.mark.parametrize("n", [2, 1])
@pytest.mark.parametrize("activation", ["relu", "tanh", "silu"])
def test_critics_evaluate_backward_and_action_gradient_agree(n, activation):
    torch_net, dnn_net, torch_flat, dnn_flat = pair(lambda gemm: Critics(5, HIDDEN, activation, n, gemm=gemm))
    assert dnn_net.net.onednn and not torch_net.net.onednn
    g = torch.Generator().manual_seed(1)
    obs, actions, dq = 2 * torch.randn(64, 3, generator=g), torch.rand(64, 2, generator=g) * 2 - 1, torch.randn(n, 64, generator=g)
    (q1, c1), (q2, c2) = torch_net.evaluate(obs, actions), dnn_net.evaluate(obs, actions)
    torch.testing.assert_close(q2, q1)
    torch.testing.assert_close(dnn_net.action_gradient(c2, dq), torch_net.action_gradient(c1, dq))
    dnn_flat.grad.fill_(float("nan"))  # every gradient written, none added to
    torch_net.backward(c1, dq)
    dnn_net.backward(c2, dq)
    torch.testing.assert_close(dnn_flat.grad, torch_flat.grad)
    # and the first critic alone (TD3's actor step)
    (q1, c1), (q2, c2) = torch_net.evaluate(obs, actions, first=1), dnn_net.evaluate(obs, actions, first=1)
    torch.testing.assert_close(dnn_net.action_gradient(c2, dq[:1]), torch_net.action_gradient(c1, dq[:1]))


def test_the_oneDNN_products_are_the_hidden_to_hidden_ones_only():
    """Layers 1..L-2 go to oneDNN; the first layer (observation in) and the output layer stay torch's."""
    net = StackedMLP(5, HIDDEN, "relu", 1, 2, gemm="onednn")
    params = net._params
    assert [net._onednn_layer(layer, params) for layer in range(len(params))] == [False, True, True, False]
    assert not StackedMLP(5, HIDDEN, "relu", 1, 2, low=torch.bfloat16, gemm="onednn").onednn  # bf16 wins
    with pytest.raises(ValueError, match="gemm"):
        StackedMLP(5, HIDDEN, "relu", 1, 2, gemm="mkl")


def test_actors_agree():
    net = OmegaConf.create({"hidden_sizes": HIDDEN, "activation": "relu"})
    det, det_dnn, det_flat, det_dnn_flat = pair(lambda gemm: DeterministicActor(net, (3,), 2, gemm=gemm))
    obs, dmu = 2 * torch.randn(32, 3), torch.randn(32, 2)
    (mu1, c1), (mu2, c2) = det.evaluate(obs), det_dnn.evaluate(obs)
    torch.testing.assert_close(mu2, mu1)
    det.backward(c1, dmu)
    det_dnn.backward(c2, dmu)
    torch.testing.assert_close(det_dnn_flat.grad, det_flat.grad)
    sq, sq_dnn, _, _ = pair(lambda gemm: SquashedGaussianActor(net, (3,), 2, gemm=gemm))
    assert sq_dnn.net.onednn
    torch.testing.assert_close(sq_dnn.mode(obs), sq.mode(obs))


def agent(kind: str, cpu_gemm: str):
    torch.manual_seed(0)
    network = OmegaConf.create({"hidden_sizes": HIDDEN, "activation": "relu"})
    return continuous_agent(kind, SPEC, network, precision="fp32", cpu_gemm=cpu_gemm)


@pytest.mark.parametrize("kind", ["ddpg", "td3", "sac"])
def test_updates_with_oneDNN_products_follow_the_torch_ones(kind):
    """Five updates from the same start (SAC draws the same noise from its own generator) end at the
    same parameters, up to float rounding carried through Adam."""
    plain, dnn = agent(kind, "torch"), agent(kind, "onednn")
    assert dnn.gemm == "onednn" and all(net.onednn for net in learned_networks(dnn))
    assert plain.gemm == "torch" and not any(net.onednn for net in learned_networks(plain))
    g = torch.Generator().manual_seed(0)
    for step in range(5):
        b = Batch(torch.randn(32, 3, generator=g), torch.rand(32, 2, generator=g) * 2 - 1,
                  torch.randn(32, generator=g), torch.randn(32, 3, generator=g), torch.full((32,), 0.9))
        m1, _ = plain.update(copy.deepcopy(b), 10 + step)
        m2, _ = dnn.update(b, 10 + step)
        for key in m1:
            torch.testing.assert_close(torch.as_tensor(m2[key]), torch.as_tensor(m1[key]), rtol=1e-4, atol=1e-5)
    for ours, theirs in ((plain.critic_flat, dnn.critic_flat), (plain.actor_flat, dnn.actor_flat)):
        torch.testing.assert_close(theirs, ours, rtol=1e-4, atol=1e-5)


AMD_AVX512 = "vendor_id\t: AuthenticAMD\ncpu family\t: 26\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16\n\n"
AMD_AVX2 = "vendor_id\t: AuthenticAMD\ncpu family\t: 25\nflags\t\t: fpu sse2 avx2\n\n"
INTEL_AVX512 = "vendor_id\t: GenuineIntel\ncpu family\t: 6\nflags\t\t: fpu sse2 avx2 avx512f amx_bf16\n\n"


@pytest.mark.parametrize(("text", "expected"), [(AMD_AVX512, True), (AMD_AVX2, False), (INTEL_AVX512, False),
                                                 ("processor\t: 0\n", False)])
def test_oneDNN_pays_on_amd_cpus_with_avx512(tmp_path, text, expected):
    path = tmp_path / "cpuinfo"
    path.write_text(text + "vendor_id\t: GenuineIntel\nflags\t\t: avx512f\n")  # later CPUs are not read
    assert onednn_pays(path) is expected
    assert onednn_pays(tmp_path / "missing") is False


def test_auto_picks_oneDNN_for_wide_fp32_cpu_runs_where_it_pays():
    assert resolve_cpu_gemm("auto", CPU, "fp32", large=True, pays=True) == "onednn"
    assert resolve_cpu_gemm("auto", CPU, "fp32", large=True, pays=False) == "torch"
    assert resolve_cpu_gemm("auto", CPU, "fp32", large=False, pays=True) == "torch"  # narrow: per-call cost
    assert resolve_cpu_gemm("auto", CPU, "bf16", large=True, pays=True) == "torch"  # bf16 has its own products
    assert resolve_cpu_gemm("auto", torch.device("cuda"), "fp32", large=True, pays=True) == "torch"
    assert resolve_cpu_gemm("torch", CPU, "fp32", large=True, pays=True) == "torch"
    assert resolve_cpu_gemm("onednn", CPU, "fp32", large=False, pays=False) == "onednn"


@pytest.mark.parametrize(("device", "precision", "message"), [
    (torch.device("cuda"), "fp32", "algo.cpu_gemm: onednn multiplies on the CPU, but this run trains on cuda; "
                                   "set algo.cpu_gemm=auto or torch"),
    (CPU, "bf16", "algo.cpu_gemm: onednn is for fp32 products, but algo.precision resolved to bf16; "
                  "set algo.precision=fp32 or algo.cpu_gemm=auto"),
])
def test_oneDNN_where_it_cannot_apply_is_refused_in_one_line(device, precision, message):
    with pytest.raises(ConfigError) as error:
        resolve_cpu_gemm("onednn", device, precision, large=True)
    assert str(error.value) == message


def test_a_run_asked_for_oneDNN_trains_with_it(tmp_path):
    """The config key reaches the agent through build, and a short SAC run on Pendulum goes through."""
    from deeprl.build import build

    cfg = compose_config("algo=sac", "env=pendulum", "network.hidden_sizes=[128,128]", "algo.precision=fp32",
                         "algo.cpu_gemm=onednn", "device=cpu", "total_steps=300", "algo.learning_starts=100",
                         "algo.batch_size=32", "eval.every=0", "eval.episodes=1", "log.progress=false")
    run = build(cfg, tmp_path)
    assert run.agent.gemm == "onednn" and all(net.onednn for net in learned_networks(run.agent))
    summary = run.execute()
    assert summary["total_steps"] == 300 and np.isfinite(summary["eval_return_mean"])
