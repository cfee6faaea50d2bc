"""Wiring only: a composed config in, ready-to-run objects out. No learning logic here.

`build` makes the envs and runs every check that needs only their spaces before it imports torch
and the algorithms (about 2 s of a start): a refused pairing (`algo=sac env=cartpole`) is told in
the time a bad key takes plus the env's, and a run that goes ahead imports them as before."""

from __future__ import annotations

import importlib
import math
import random
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from deeprl.checks import (
    IMAGE,
    NEEDS,
    NETWORKS,
    VECTOR,
    check_frame_stack,
    check_spec,
    mlp_keys_left_out,
)
from deeprl.core.checkpoint import UnreadableCheckpoint, check_agent_state, layout_difference, read
from deeprl.core.errors import ConfigError
from deeprl.envs import make_vec_env, spec_of
from deeprl.envs.render import render_env
from deeprl.validate import validate

if TYPE_CHECKING:
    import torch

    from deeprl.run import Run

__all__ = ["ALGOS", "algo_classes", "build"]

# algo.name -> (agent class, loop class), as "module:Class": `algo_classes` imports the pair a run
# needs. A loop's KEYS are the algo config keys it consumes, SHARED_KEYS those both it and the
# agent receive (e.g. gamma); every other key of the algo config is a keyword argument of the
# agent's constructor.
_OFF_POLICY = "deeprl.loops.off_policy:OffPolicyLoop"
_ON_POLICY = "deeprl.loops.on_policy:OnPolicyLoop"
ALGOS: dict[str, tuple[str, str]] = {
    "dqn": ("deeprl.algos.dqn:DQN", _OFF_POLICY),
    "reinforce": ("deeprl.algos.reinforce:Reinforce", "deeprl.loops.episodic:EpisodicLoop"),
    "actor_critic": ("deeprl.algos.actor_critic:ActorCritic", _ON_POLICY),
    "a2c": ("deeprl.algos.a2c:A2C", _ON_POLICY),
    "ppo": ("deeprl.algos.ppo:PPO", _ON_POLICY),
    "value_iteration": ("deeprl.algos.planning:ValueIteration", "deeprl.loops.planning:PlanningLoop"),
    "policy_iteration": ("deeprl.algos.planning:PolicyIteration", "deeprl.loops.planning:PlanningLoop"),
    "q_learning": ("deeprl.algos.tabular:TabularQ", "deeprl.loops.tabular:TabularLoop"),
    "sarsa": ("deeprl.algos.tabular:TabularQ", "deeprl.loops.tabular:TabularLoop"),
    "fitted_q_iteration": ("deeprl.algos.fqi:FittedQIteration", "deeprl.loops.fqi:FQILoop"),
    # TD3 is DDPG with its three switches on (conf/algo/td3.yaml).
    "ddpg": ("deeprl.algos.ddpg:DDPG", _OFF_POLICY),
    "td3": ("deeprl.algos.ddpg:DDPG", _OFF_POLICY),
    "sac": ("deeprl.algos.sac:SAC", _OFF_POLICY),
}


def algo_classes(name: str) -> tuple[type, type]:
    """The (agent class, loop class) of `algo.name`, imported."""
    def load(path: str) -> type:
        module, _, cls = path.partition(":")
        return getattr(importlib.import_module(module), cls)

    agent, loop = ALGOS[name]
    return load(agent), load(loop)


def build(cfg: DictConfig, run_dir: Path, resume_from: dict | None = None, with_loop: bool = True) -> Run:
    """Validate and construct everything; raises ConfigError before anything is written.

    `resume_from`: a checkpoint's contents; the run then continues from it (Run.execute loads it).
    `with_loop=False` builds the agent and envs only (no buffer, no session), for `evaluate`."""
    validate(cfg)
    saved_config = OmegaConf.to_yaml(cfg, resolve=False)  # before build resolves any `auto`
    if cfg.algo.name not in ALGOS:
        raise ConfigError("algo.name", f"unknown algorithm '{cfg.algo.name}'; known: {', '.join(ALGOS)}")
    seed = int(cfg.seed)
    random.seed(seed)  # before the envs, as an env of one's own may draw from it as it is made
    envs = make_vec_env(cfg.env, int(cfg.num_envs), seed)
    try:
        spec = spec_of(envs, cfg.env.id)
        check_frame_stack(cfg.env, envs.metadata, spec)
        # Algorithm x spaces x network, storage memory, the known model: before anything is built.
        check_spec(cfg, spec, getattr(envs, "envs", [None])[0], memory=with_loop,  # async: no model
                   time_limit=resume_from is None and with_loop)
        # Torch, the algorithms and the loops from here on.
        import torch

        from deeprl.core.device import auto_device, resolve_device
        from deeprl.core.eager import keep_compiler_out
        from deeprl.core.seeding import set_deterministic
        from deeprl.loops.session import Session
        from deeprl.run import Run

        agent_cls, loop_cls = algo_classes(cfg.algo.name)
        if getattr(loop_cls, "READS_ENV", False) and cfg.env.get("vectorization", "sync") == "async":
            raise ConfigError("env.vectorization", f"{cfg.algo.name} reads the env itself (its model or states) in "
                                                   "this process; use env.vectorization=sync")
        auto = str(cfg.device).strip().lower() == "auto"
        device, device_why = (None, "") if auto else (resolve_device(cfg.device), "")
        torch.manual_seed(seed)  # network initialisation
        rng = np.random.default_rng(seed)  # passed down: every other draw of the run
        set_deterministic(bool(cfg.get("deterministic", False)))  # an older run's config may lack it
        built_notes = leave_out_mlp_keys(cfg)
        if auto:  # by what the run computes: see deeprl.core.device.auto_device
            device, device_why = auto_device(*network_cost(cfg, spec))
        resolve_network_auto(cfg, device)
        algo = OmegaConf.to_container(cfg.algo, resolve=True)
        loop_kwargs = {key: algo.pop(key) for key in loop_cls.KEYS}
        loop_kwargs.update({key: algo[key] for key in loop_cls.SHARED_KEYS})
        algo.pop("name"), algo.pop("loop", None)  # ALGOS picks the loop (older runs name it too)
        total_steps = int(cfg.total_steps)
        if not algo.get("compile"):  # torch.optim then never loads torch._dynamo (deeprl.core.eager)
            keep_compiler_out()
        agent = agent_cls(spec, cfg.network, device, rng, total_steps, **_to_cfg(algo))
        if resume_from is not None:
            check_agent_state(agent, resume_from["agent"], "resume")
        if not with_loop:
            return Run(cfg, Path(run_dir), device, rng, envs, spec, agent, None, None, saved_config)
        # A new run may start from what another run's agent learned; a resumed one has its own.
        started_from = start_from(agent, cfg) if resume_from is None and cfg.get("init_from") else ""
        if int(cfg.video.every) > 0:  # a machine that cannot draw frames is told now, not at the first video
            render_env(cfg.env, "video.every", "set video.every=0").close()
        # The logger joins at the start of execution: building writes nothing.
        session = Session(logger=None, run_dir=run_dir, env_cfg=cfg.env, seed=seed, rng=rng,
                          total_steps=total_steps, eval_every=int(cfg.eval.every),
                          eval_episodes=int(cfg.eval.episodes), checkpoint_every=int(cfg.checkpoint.every),
                          checkpoint_minutes=float(cfg.checkpoint.every_minutes), log_every=int(cfg.log.every),
                          video_every=int(cfg.video.every), guard=str(cfg.guard))
        loop = loop_cls(agent, envs, session, spec=spec, device=device, seed=seed, rng=rng,
                        total_steps=total_steps, **loop_kwargs)
        loop.save_buffer = bool(cfg.checkpoint.buffer)
        loop.starts_trained = bool(started_from)
    except BaseException:
        envs.close()
        raise
    return Run(cfg, Path(run_dir), device, rng, envs, spec, agent, loop, session, saved_config, resume_from,
               device_why=device_why, started_from=started_from, built_notes=built_notes)


def leave_out_mlp_keys(cfg: DictConfig) -> list[str]:
    """Build a torso of one's own without the keys of deeprl's mlp it does not take (the network
    group's default and the tuned presets set them); the note the run prints, if any."""
    left_out = mlp_keys_left_out(cfg)
    if not left_out:
        return []
    with open_dict(cfg):
        for key in left_out:
            del cfg.network[key]
    them = "it" if len(left_out) == 1 else "them"
    return [f"{cfg.network._target_} takes no {' or '.join(left_out)}: built without {them} (deeprl's mlp takes "
            f"{them}; the network group and the tuned presets set {them})"]


def start_from(agent, cfg: DictConfig) -> str:
    """`init_from=<run dir or checkpoint>`: load what another run's agent learned (its `LEARNED`
    entries: networks and their targets, a Q table) into this new run's agent; its optimizer,
    schedules, buffer and random streams start afresh, as configured. Returns the note the run
    prints. ConfigError(init_from), before anything is written, for a path without a checkpoint,
    another algorithm, or networks of other shapes (another env or network setting)."""
    from deeprl.runs import locate

    name = cfg.algo.name
    learned = getattr(agent, "LEARNED", ())
    if not learned:
        raise ConfigError("init_from", f"{name} does not start from another run's agent (it is for the DQN family, "
                                       "the policy-gradient algorithms, DDPG, TD3, SAC, q_learning and sarsa); drop "
                                       "init_from")
    path = Path(str(cfg.init_from)).expanduser()
    if not path.is_absolute() and HydraConfig.initialized():  # with hydra.job.chdir=true the job runs in its dir
        path = Path(HydraConfig.get().runtime.cwd) / path
    try:
        _, checkpoint, unfinished = locate(path, command="init_from=", then="start from it then")
        state = read(checkpoint, "agent", "config", "step")
    except ConfigError as error:
        raise ConfigError("init_from", str(error).partition(": ")[2]) from None
    except UnreadableCheckpoint as error:
        raise ConfigError("init_from", f"cannot read {checkpoint}: {error}; pass a run dir or a checkpoint "
                                       "written by `train`") from None
    source = OmegaConf.create(state["config"])
    if source.algo.name not in ALGOS or algo_classes(source.algo.name)[0] is not type(agent):
        raise ConfigError("init_from", f"{checkpoint} holds a {source.algo.name} agent and this run trains {name}; "
                                       f"start from a run of {name}")
    mine, theirs = agent.state_dict(), state["agent"]
    for key in learned:
        if (difference := layout_difference(mine[key], theirs.get(key))) is not None:
            raise ConfigError("init_from", f"{checkpoint} ({source.algo.name} on {source.env.id}) does not fit this "
                                           f"run: its '{key}' {difference}; start from a run whose networks have "
                                           "the same shapes (the same env, network.* and algo settings such as "
                                           "algo.dueling)")
    agent.load_state_dict({**mine, **{key: theirs[key] for key in learned}})
    newest = ", the newest checkpoint of a run that has not finished" if unfinished else ""
    return (f"the agent starts from what {source.algo.name} learned on {source.env.id} in {checkpoint} (step "
            f"{int(state['step'])}{newest}): {', '.join(learned)}; the rest (optimizer, schedules, buffer) "
            "starts afresh as configured")


def network_cost(cfg: DictConfig, spec) -> tuple[bool, int]:
    """(whether the torso is a large convolutional one, multiply-adds of one forward pass of the
    torso over an update batch), for `device: auto`. No network (tabular, planning): (False, 0).

    MinAtar's torso (one 3x3 convolution on a 10x10 map, 0.2M multiply-adds an observation) is
    counted like an MLP: at DQN's batch of 32 it is launch-bound on a GPU, as a small MLP is."""
    needs = NEEDS.get(cfg.algo.name)
    if needs is None or needs.network is None or (needs.network == "one-hot states"
                                                   and cfg.algo.get("regressor") != "mlp"):
        return False, 0
    network = cfg.network
    if network.get("_target_") not in NETWORKS:  # a torso of one's own: convolutional, presumably, on images
        return len(spec.obs_shape) == 3, 0
    minatar = network.get("_target_") == "deeprl.networks.MinAtarCNN" and len(spec.obs_shape) == 3
    if not minatar and NETWORKS.get(network.get("_target_"), ("", VECTOR))[1] == IMAGE:
        return True, 0
    algo, num_envs = cfg.algo, int(cfg.num_envs)
    if minatar:
        from deeprl.networks import MinAtarCNN

        per_sample = MinAtarCNN.multiply_adds(spec.obs_shape, int(network.channels), int(network.hidden_size))
    else:
        inputs = spec.n_states if needs.network == "one-hot states" else math.prod(spec.obs_shape)
        sizes = [int(inputs), *(int(h) for h in network.get("hidden_sizes", []))]
        per_sample = sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=False))
    if "batch_size" in algo:
        batch = int(algo.batch_size)
    elif "num_minibatches" in algo:
        batch = int(algo.n_steps) * num_envs // int(algo.num_minibatches)
    elif "n_steps" in algo:
        batch = int(algo.n_steps) * num_envs
    else:
        batch = int(algo.get("batch_steps", num_envs))
    return False, per_sample * batch


def resolve_network_auto(cfg: DictConfig, device: torch.device) -> None:
    """`network.channels_last: auto` becomes true on the CPU (oneDNN runs NHWC faster) and false on
    CUDA (cuDNN's fp32 default layout), so the logged config shows what ran."""
    if cfg.network.get("channels_last") == "auto":
        cfg.network.channels_last = device.type == "cpu"


def _to_cfg(kwargs: dict) -> dict:
    # Nested groups (exploration, target) keep attribute access for the agent.
    return {k: OmegaConf.create(v) if isinstance(v, dict) else v for k, v in kwargs.items()}
