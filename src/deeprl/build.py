"""Wiring only: a composed config in, ready-to-run objects out. No learning logic here."""

import json
import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from deeprl.algos.a2c import A2C
from deeprl.algos.actor_critic import ActorCritic
from deeprl.algos.dqn import DQN
from deeprl.algos.fqi import FittedQIteration
from deeprl.algos.planning import PolicyIteration, ValueIteration
from deeprl.algos.ppo import PPO
from deeprl.algos.reinforce import Reinforce
from deeprl.algos.tabular import TabularQ
from deeprl.core.device import keep_freed_memory, resolve_device
from deeprl.core.errors import ConfigError
from deeprl.core.seeding import seed_everything
from deeprl.envs import make_vec_env, spec_of
from deeprl.logging import Logger
from deeprl.loops import episodic, fqi, off_policy, on_policy, planning, tabular
from deeprl.loops.session import Session
from deeprl.validate import validate

# algo.name -> (agent class, loop module). The loop module's LOOP_KEYS are the algo config keys
# it consumes, SHARED_KEYS those both it and the agent receive (e.g. gamma); every other key of
# the algo config is a keyword argument of the agent's constructor.
ALGOS: dict[str, tuple[type, ModuleType]] = {
    "dqn": (DQN, off_policy),
    "reinforce": (Reinforce, episodic),
    "actor_critic": (ActorCritic, on_policy),
    "a2c": (A2C, on_policy),
    "ppo": (PPO, on_policy),
    "value_iteration": (ValueIteration, planning),
    "policy_iteration": (PolicyIteration, planning),
    "q_learning": (TabularQ, tabular),
    "sarsa": (TabularQ, tabular),
    "fitted_q_iteration": (FittedQIteration, fqi),
}


@dataclass
class Run:
    cfg: DictConfig
    run_dir: Path
    device: torch.device
    rng: np.random.Generator
    envs: object
    spec: object
    agent: object
    loop: ModuleType
    loop_kwargs: dict

    def execute(self) -> dict:
        cfg, run_dir = self.cfg, self.run_dir
        if cfg.threads > 0:
            torch.set_num_threads(int(cfg.threads))
        keep_freed_memory()
        print(f"deeprl | {cfg.algo.name} on {cfg.env.id} | seed {cfg.seed} | device {self.device} | "
              f"run dir {run_dir} | view: tensorboard --logdir {run_dir}", flush=True)
        logger = Logger(run_dir, int(cfg.total_steps), progress=bool(cfg.log.progress))
        logger.config(cfg)
        session = Session(logger=logger, run_dir=run_dir, env_cfg=cfg.env, seed=int(cfg.seed),
                          rng=self.rng, total_steps=int(cfg.total_steps), eval_every=int(cfg.eval.every),
                          eval_episodes=int(cfg.eval.episodes), checkpoint_every=int(cfg.checkpoint.every),
                          log_every=int(cfg.log.every), video_every=int(cfg.video.every))
        try:
            # A loop may return extra summary fields (e.g. a planner's sweeps and convergence).
            extra = self.loop.run(self.agent, self.envs, session, spec=self.spec, device=self.device,
                                  seed=int(cfg.seed), rng=self.rng, total_steps=int(cfg.total_steps),
                                  **self.loop_kwargs)
            train_time = session.train_time()
            steps = int(cfg.total_steps)
            returns, _ = session.evaluate(steps, self.agent)
            session.checkpoint(steps, self.agent, "final.pt")
            summary = {
                "algo": cfg.algo.name, "env": cfg.env.id, "seed": int(cfg.seed), "device": str(self.device),
                "total_steps": steps, "wall_time_s": round(train_time, 3),
                "sps": round(steps / max(train_time, 1e-9), 1),
                "eval_return_mean": float(returns.mean()), "eval_return_std": float(returns.std()),
                "eval_episodes": len(returns), "evaluations": session.history, **(extra or {}),
            }
            write_json_atomic(run_dir / "summary.json", summary)
            logger.hparams(cfg, {"hparams/eval_return_mean": summary["eval_return_mean"]})
        finally:
            logger.close()
            self.envs.close()
        work = (f"{summary['sweeps']} sweeps in {train_time:.1f} s" if "sweeps" in summary else
                f"{summary['total_steps']} steps in {train_time:.1f} s ({summary['sps']:.0f} steps/s)")
        print(f"deeprl | eval return {summary['eval_return_mean']:.1f} ± {summary['eval_return_std']:.1f} "
              f"over {len(returns)} episodes | {work} | {run_dir}", flush=True)
        return summary


def build(cfg: DictConfig, run_dir: Path) -> Run:
    """Validate and construct everything; raises ConfigError before anything is written."""
    validate(cfg)
    device = resolve_device(cfg.device)
    if cfg.algo.name not in ALGOS:
        raise ConfigError("algo.name", f"unknown algorithm '{cfg.algo.name}'; known: {', '.join(ALGOS)}")
    agent_cls, loop = ALGOS[cfg.algo.name]
    resolve_network_auto(cfg, device)
    rng = seed_everything(int(cfg.seed))
    envs = make_vec_env(cfg.env, int(cfg.num_envs), int(cfg.seed))
    try:
        spec = spec_of(envs, cfg.env.id)
        if spec.n_states and not getattr(agent_cls, "OBSERVES_STATE_INDEX", False):
            raise ConfigError("env.one_hot", f"{cfg.algo.name} feeds observations to a network, but {spec.id} "
                                             "observes a single state index; set env.one_hot=true")
        algo = OmegaConf.to_container(cfg.algo, resolve=True)
        loop_kwargs = {key: algo.pop(key) for key in loop.LOOP_KEYS}
        loop_kwargs.update({key: algo[key] for key in getattr(loop, "SHARED_KEYS", ())})
        algo.pop("name"), algo.pop("loop")
        agent = agent_cls(spec, cfg.network, device, rng, int(cfg.total_steps), **_to_cfg(algo))
    except BaseException:
        envs.close()
        raise
    return Run(cfg, Path(run_dir), device, rng, envs, spec, agent, loop, loop_kwargs)


def resolve_network_auto(cfg: DictConfig, device: torch.device) -> None:
    """`network.channels_last: auto` becomes true on the CPU (oneDNN runs NHWC faster) and false on
    CUDA (cuDNN's fp32 default layout), so the logged config shows what ran."""
    if cfg.network.get("channels_last") == "auto":
        cfg.network.channels_last = device.type == "cpu"


def _to_cfg(kwargs: dict) -> dict:
    # Nested groups (exploration, target) keep attribute access for the agent.
    return {k: OmegaConf.create(v) if isinstance(v, dict) else v for k, v in kwargs.items()}


def write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


