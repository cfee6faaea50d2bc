import functools
import os
import random
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

import consoles

CONF_DIR = Path(__file__).resolve().parents[1] / "src" / "deeprl" / "conf"


def pytest_configure(config):
    """Share the cores among pytest-xdist's workers, as a sweep shares them among its jobs.

    Presets with `threads: 0` (Atari, MinAtar PPO) take torch's default, all cores. Two workers
    doing so on two cores run four OpenMP threads that spin at every barrier while the others
    hold the cores: measured, Breakout smoke tests that take 1.4-2.2 s alone took 15-37 s next
    to another worker (the full suite: 12:55 before, 10:25 after, on 2 cores).
    Each worker (and every `train` it starts, through OMP_NUM_THREADS) gets cores / workers.
    """
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        from deeprl import usable_cores

        os.environ["OMP_NUM_THREADS"] = str(max(1, usable_cores() // workers))
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def module_fixtures(item) -> list[str]:
    """The module-scoped fixtures a test uses, by module and name."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return []
    return sorted(f"{item.module.__name__}.{name}" for name, defs in info.name2fixturedefs.items()
                  if defs and defs[-1].scope == "module")


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the xdist_group marks
def pytest_collection_modifyitems(config, items):
    """Tests marked `cuda` need a GPU: skipped (and said so) on a machine without one.

    Tests that share a module-scoped fixture (a run trained once, then read by each test) go to
    one xdist worker: split across two, each worker trained the fixture's runs again (measured:
    15 s for test_compare's sweep, 4-6 s for the others)."""
    for item in items:
        shared = module_fixtures(item)
        if shared:
            item.add_marker(pytest.mark.xdist_group("+".join(shared)))
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (run scripts/gpu_check.sh on a GPU machine)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


def compose_config(*overrides: str):
    """Compose the real config tree the way `train` does (no mocks)."""
    with initialize_config_module("deeprl.conf", version_base="1.3"):
        return compose("config", overrides=list(overrides))


# The generic envs need a value that has no default.
REQUIRED = {"gym": ["env.id=CartPole-v1"], "atari": ["env.game=Pong"]}
# Tests that read every_config() share this xdist group (`make test` runs `--dist loadgroup`), so
# the 550-odd compositions (~50 s) are made once, by one worker, not once per worker and test file.
EVERY_CONFIG = pytest.mark.xdist_group("every_config")


@functools.cache
def every_config() -> dict[str, object]:
    """Every algo x env pair (with its tuned preset, if any) and every network, composed for real.
    Keys "<algo> <env>" and "network=<name>". Callers must not change the configs (copy first)."""
    algos = sorted(p.stem for p in (CONF_DIR / "algo").glob("*.yaml"))
    envs = sorted(p.stem for p in (CONF_DIR / "env").glob("*.yaml"))
    networks = sorted(p.stem for p in (CONF_DIR / "network").glob("*.yaml"))
    configs = {}
    with initialize_config_module("deeprl.conf", version_base="1.3"):
        for algo in algos:
            for env in envs:
                overrides = [f"algo={algo}", f"env={env}", *REQUIRED.get(env, [])]
                configs[f"{algo} {env}"] = compose("config", overrides=overrides)
        for network in networks:
            configs[f"network={network}"] = compose("config", overrides=[f"network={network}"])
    return configs


def as_in_a_terminal() -> None:
    """A subprocess's `preexec_fn`: SIGINT as a terminal's foreground command gets it (a test run in
    the background of a script hands it down ignored, and Python, evaluate and compare too, leave an
    ignored one ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def train_cli(*args: str, cwd: Path, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `train` in a process of its own (`env`: its environment variables; tests/consoles.py)."""
    return consoles.run("train", *args, cwd=cwd, timeout=timeout, env=env)


def run_in_process(tmp_path: Path, *overrides: str) -> dict:
    """Build and run in this process (faster than a subprocess) and return summary.json's data."""
    from deeprl.build import build

    cfg = compose_config(*overrides, "log.progress=false")
    return build(cfg, tmp_path).execute()


def final_returns(tmp_path: Path, seeds, *overrides: str, threshold: float, at_least: int) -> dict[int, float]:
    """Train one run per seed, in order and in-process, and return {seed: final eval return}.

    For a claim about a group of seeds: "at least `at_least` of `seeds` end at >= `threshold`".
    Stops as soon as the claim is decided either way (enough seeds reached the threshold, or too
    few are left to reach it), so a claim that holds on the first seeds costs only those runs.
    """
    returns: dict[int, float] = {}
    for i, seed in enumerate(seeds):
        summary = run_in_process(tmp_path / f"seed{seed}", *overrides, f"seed={seed}")
        returns[seed] = summary["eval_return_mean"]
        passed = sum(r >= threshold for r in returns.values())
        if passed >= at_least or passed + len(seeds) - i - 1 < at_least:
            break
    return returns


def continuous_agent(kind: str, spec, network, **kwargs):
    """A ddpg, td3 or sac agent on the CPU for unit tests (small learning rates, γ 0.9, τ 0.1,
    Gaussian noise); `kwargs` adds or replaces constructor arguments (precision, cpu_gemm, ...)."""
    from deeprl.algos.ddpg import DDPG
    from deeprl.algos.sac import SAC

    rng, cpu = np.random.default_rng(0), torch.device("cpu")
    common = dict(gamma=0.9, tau=0.1, actor_lr=1e-3, critic_lr=1e-3, **kwargs)
    if kind == "sac":
        return SAC(spec, network, cpu, rng, 100, entropy=OmegaConf.create(
            {"autotune": True, "alpha": 0.5, "target": None}), target_every=1, **common)
    return DDPG(spec, network, cpu, rng, 100, twin_critics=kind == "td3", policy_delay=1, target_noise=0.1,
                target_noise_clip=0.5, exploration=OmegaConf.create(
                    {"noise": "gaussian", "std": 0.1, "ou_theta": 0.15, "ou_dt": 0.01}), **common)


def learned_networks(agent) -> list:
    """The StackedMLPs a continuous agent learns with: critics, their target, the actor (and its target)."""
    modules = [agent.critic, agent.critic_target, agent.actor] + (
        [agent.actor_target] if hasattr(agent, "actor_target") else [])
    return [m.net for m in modules]


def assert_at_least(returns: dict[int, float], threshold: float, at_least: int) -> None:
    passed = [seed for seed, r in returns.items() if r >= threshold]
    assert len(passed) >= at_least, (
        f"{len(passed)} seed(s) ended at >= {threshold}, {at_least} needed; final returns by seed: "
        + ", ".join(f"{seed}: {r:.1f}" for seed, r in returns.items()))


@pytest.fixture
def compose_cfg():
    return compose_config


@pytest.fixture(autouse=True)
def restore_global_state():
    """Leave the process as each test found it, so no test depends on which ran before it.

    Training in-process sets torch's thread count (Run.execute) and seeds torch's and Python's
    global generators (deeprl.build); a test may also touch numpy's global generator, the
    default dtype, grad mode, the matmul precision, the deterministic flag, environment variables
    or the working directory. All are saved here and put back afterwards. Not restorable: glibc's
    malloc thresholds (keep_freed_memory; there is no getter), which change speed, not results.
    """
    threads = torch.get_num_threads()
    torch_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    python_rng = random.getstate()
    numpy_rng = np.random.get_state()
    dtype = torch.get_default_dtype()
    grad = torch.is_grad_enabled()
    matmul = torch.get_float32_matmul_precision()
    deterministic = (torch.are_deterministic_algorithms_enabled(),
                     torch.is_deterministic_algorithms_warn_only_enabled())
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    environ = dict(os.environ)
    cwd = os.getcwd()
    yield
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn
    os.chdir(cwd)
    for key in set(os.environ) | set(environ):
        if key == "PYTEST_CURRENT_TEST" or os.environ.get(key) == environ.get(key):
            continue  # pytest's own marker of the running phase changes on its own
        if key in environ:
            os.environ[key] = environ[key]
        else:
            del os.environ[key]
    torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])
    torch.set_float32_matmul_precision(matmul)
    torch.set_grad_enabled(grad)
    torch.set_default_dtype(dtype)
    np.random.set_state(numpy_rng)
    random.setstate(python_rng)
    if cuda_rng is not None:
        torch.cuda.set_rng_state_all(cuda_rng)
    torch.set_rng_state(torch_rng)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
