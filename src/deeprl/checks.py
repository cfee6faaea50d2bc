"""Checks that need the environment's spaces: run once the EnvSpec is known, before any agent,
network or buffer is built.

- Structural pairing: algorithm family × action space (discrete, continuous) × observation kind
  (image stack, vector, state index) × network (nature_cnn and minatar_cnn take image stacks, mlp
  vectors).
  What each algorithm needs is one table, NEEDS.
- Memory: the replay, rollout or dataset a run will fill, and a known model's dense arrays, must
  fit in the available memory (deeprl.storage).
- With a single env at hand, what its known model implies (planners need one; gamma = 1 needs
  every state to reach a terminal).
- A time limit: evaluation plays each episode to its end, so an env that sets none needs one.

Every failure is one ConfigError naming the key to change. `check_spec` runs them all; the range
checks that need no env are deeprl.validate.validate.
"""

import functools
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from omegaconf import DictConfig, OmegaConf

from deeprl.conf import CONF_DIR, named_env_config
from deeprl.core.errors import ConfigError
from deeprl.envs import EnvSpec
from deeprl.envs.make import registered_id
from deeprl.envs.model import TabularModel
from deeprl.storage import check_memory

IMAGE, VECTOR, STATE_INDEX = "image stacks", "vectors", "a state index"
DISCRETE, CONTINUOUS = "discrete", "continuous"
TABULAR_ENVS = "env=gridworld_4x3, maze, gridworld, frozenlake, frozenlake8x8, cliffwalking or taxi"


@dataclass(frozen=True)
class Needs:
    """What an algorithm (its `algo.name`) needs from the env and the network."""

    actions: tuple[str, ...]
    observations: tuple[str, ...]
    # What the network config is applied to: "observations" (a torso on the observations),
    # "one-hot states" (fitted Q-iteration's regressor=mlp), or None (no network).
    network: str | None
    # Plans on the env's known model (P, R).
    model: bool = False


_PG = Needs((DISCRETE, CONTINUOUS), (VECTOR, IMAGE), "observations")
_TABULAR = Needs((DISCRETE,), (STATE_INDEX,), None)
NEEDS: dict[str, Needs] = {
    "dqn": Needs((DISCRETE,), (VECTOR, IMAGE), "observations"),
    "reinforce": _PG,
    "actor_critic": _PG,
    "a2c": _PG,
    "ppo": _PG,
    "value_iteration": Needs((DISCRETE,), (STATE_INDEX,), None, model=True),
    "policy_iteration": Needs((DISCRETE,), (STATE_INDEX,), None, model=True),
    "q_learning": _TABULAR,
    "sarsa": _TABULAR,
    "fitted_q_iteration": Needs((DISCRETE,), (STATE_INDEX,), "one-hot states"),
    # Continuous control: critics Q(s, a) and actors on MLPs of the observation vector.
    "ddpg": Needs((CONTINUOUS,), (VECTOR,), "observations"),
    "td3": Needs((CONTINUOUS,), (VECTOR,), "observations"),
    "sac": Needs((CONTINUOUS,), (VECTOR,), "observations"),
}

# network._target_ -> the name of its config (network=<name>) and what it takes.
NETWORKS = {"deeprl.networks.MLP": ("mlp", VECTOR), "deeprl.networks.NatureCNN": ("nature_cnn", IMAGE),
            "deeprl.networks.MinAtarCNN": ("minatar_cnn", IMAGE)}


def observation_kind(spec: EnvSpec) -> str:
    """A state index (a Discrete observation space), image stacks ((C, H, W) arrays) or vectors
    (any other array, which an MLP flattens)."""
    if spec.n_states:
        return STATE_INDEX
    return IMAGE if len(spec.obs_shape) == 3 else VECTOR


def action_kind(spec: EnvSpec) -> str:
    if isinstance(spec.action_space, gym.spaces.Discrete):
        return DISCRETE
    if isinstance(spec.action_space, gym.spaces.Box):
        return CONTINUOUS
    return type(spec.action_space).__name__


def check_spec(cfg: DictConfig, spec: EnvSpec, env: gym.Env | None = None, *, memory: bool = True,
               time_limit: bool = True) -> None:
    """All checks that need the env: pairing, memory, a time limit and, given one env, its known model.

    Call it after the envs exist and before the agent (and its buffers) is built. `env` is one
    (unwrappable) env of the run, e.g. `envs.envs[0]`; without it the model checks are skipped.
    `memory=False` skips the storage check (building an agent to evaluate fills no replay);
    `time_limit=False` the time-limit check (a run that exists already: it keeps its own config).
    """
    check_pairing(cfg, spec)
    if memory:
        check_memory(cfg, spec, tabular=uses_state_index(cfg))
    if time_limit:
        check_time_limit(cfg.env)
    if env is not None:
        check_env_model(cfg, spec, env)


def uses_state_index(cfg: DictConfig) -> bool:
    """Whether the algorithm works on a state index: a tabular learner or planner, which holds the
    env's known model as dense arrays."""
    name = cfg.algo.get("name")
    return name in NEEDS and NEEDS[name].observations == (STATE_INDEX,)


def fitting(spec: EnvSpec) -> list[str]:
    """The algorithms (algo.name) whose needs this env's actions and observations meet."""
    actions, observations = action_kind(spec), observation_kind(spec)
    return [name for name, needs in NEEDS.items() if actions in needs.actions and observations in needs.observations]


@functools.cache
def algo_choices() -> dict[str, str]:
    """Each `algo=` choice (a file in conf/algo) and the algorithm it runs (its algo.name): the
    variants (double_dqn, rainbow_lite, ...) inherit their name through their defaults list."""
    folder = CONF_DIR / "algo"

    def name(stem: str) -> str:
        node = OmegaConf.load(folder / f"{stem}.yaml")
        if "name" in node:
            return str(node.name)
        return name(next(d for d in node.defaults if isinstance(d, str) and d != "_self_"))

    return {path.stem: name(path.stem) for path in sorted(folder.glob("*.yaml"))}


def _fit_hint(spec: EnvSpec) -> str:
    """The `algo=` choices that fit the env, in NEEDS' order, each algorithm's own file first."""
    choices = algo_choices()
    names = [stem for name in fitting(spec)
             for stem in sorted((s for s in choices if choices[s] == name), key=lambda s: (s != name, s))]
    return f"algorithms that fit {spec.id}: {', '.join(names)}" if names else f"no deeprl algorithm fits {spec.id}"


def check_pairing(cfg: DictConfig, spec: EnvSpec) -> None:
    """Algorithm × action space × observation kind × network, or a ConfigError naming the key."""
    name = cfg.algo.get("name")
    needs = NEEDS.get(name)
    if needs is None:
        return  # build.py reports an unknown algorithm
    actions, observations = action_kind(spec), observation_kind(spec)
    if actions not in needs.actions and STATE_INDEX not in needs.observations and len(needs.actions) == 1:
        # No observation setting (one_hot) would help: name the algorithms that fit the env instead.
        raise ConfigError("algo", f"{name} needs a {needs.actions[0]} action space but {spec.id} has "
                                  f"{type(spec.action_space).__name__} actions; {_fit_hint(spec)}")
    if observations not in needs.observations and STATE_INDEX not in needs.observations \
            and observations != STATE_INDEX:
        raise ConfigError("algo", f"{name} takes observations that are {' or '.join(needs.observations)}, but "
                                  f"{spec.id} observes {observations} of shape {spec.obs_shape}; {_fit_hint(spec)}")
    if observations not in needs.observations:
        one_hot = "one_hot" in cfg.env
        if observations == STATE_INDEX:
            fix = "set env.one_hot=true" if one_hot else "add +env.one_hot=true"
            raise ConfigError("env.one_hot", f"{name} feeds observations to a network, but {spec.id} observes a "
                                             f"single state index; {fix}")
        if one_hot and cfg.env.one_hot:
            raise ConfigError("env.one_hot", f"{name} is tabular and needs the state index, but env.one_hot=true "
                                             "turns it into a vector; set env.one_hot=false")
        raise ConfigError("env", f"{name} is tabular and needs observations that are a discrete state index, "
                                 f"but {spec.id} observes shape {spec.obs_shape}; use {TABULAR_ENVS}")
    if actions not in needs.actions:
        space = type(spec.action_space).__name__
        if needs.actions == (DISCRETE,) and needs.observations == (STATE_INDEX,):
            raise ConfigError("algo", f"{name} needs a discrete action space but {spec.id} has {space} actions; "
                                      f"use {TABULAR_ENVS}")
        raise ConfigError("env", f"{name} supports Discrete and Box action spaces; {spec.id} has {space} actions")
    if needs.actions == (CONTINUOUS,):  # a tanh-bounded actor (DDPG, TD3, SAC)
        space = spec.action_space
        if not (np.isfinite(space.low).all() and np.isfinite(space.high).all()):
            raise ConfigError("env", f"{name} scales a tanh-bounded actor to the action bounds, but {spec.id} has "
                                     f"unbounded actions (low {space.low}, high {space.high}); use algo=ppo")
    if needs.network == "one-hot states" and cfg.algo.get("regressor") != "mlp":
        return  # the table needs no network
    if needs.network is not None:
        _check_network(cfg, spec, name, IMAGE if observations == IMAGE else VECTOR,
                       spec.obs_shape if needs.network == "observations" else (spec.n_states,), needs.network)


def _check_network(cfg: DictConfig, spec: EnvSpec, algo: str, fed: str, shape: tuple, what: str) -> None:
    target = cfg.network.get("_target_")
    if target not in NETWORKS:
        check_own_torso(cfg, algo)  # a torso of one's own: it checks its input itself
        return
    network, takes = NETWORKS[target]
    if what == "one-hot states" and takes != VECTOR:
        raise ConfigError("network", f"{algo} fits its network on one-hot state vectors of size {shape[0]}, "
                                     f"which {network} cannot take; use network=mlp")
    if takes != fed:
        if network == "mlp":
            # MinAtar's 10x10 maps are too small for the Nature CNN's strides.
            other = "nature_cnn" if _cnn_fits(*shape[1:]) else "minatar_cnn"
            raise ConfigError("network", f"mlp takes flat vectors but {spec.id} observes image stacks of shape "
                                         f"{tuple(shape)}; use network={other}")
        raise ConfigError("network", f"{network} takes image stacks (channels, height, width) but {spec.id} "
                                     f"observes vectors of shape {tuple(shape)}; use network=mlp")
    if network == "nature_cnn" and not _cnn_fits(*shape[1:]):
        raise ConfigError("network", f"nature_cnn needs (channels, height, width) frame stacks of at least 36x36 "
                                     f"pixels, but {spec.id} observes shape {tuple(shape)}"
                                     + ("; raise env.screen_size (84 is the DQN setting)"
                                        if "screen_size" in cfg.env else
                                        "; deeprl's pixel pipeline is env=atari (84x84 frame stacks); "
                                        "small maps such as MinAtar's take network=minatar_cnn"))
    if network == "minatar_cnn" and min(shape[1:]) < 3:
        raise ConfigError("network", f"minatar_cnn's 3x3 convolution needs maps of at least 3x3, but {spec.id} "
                                     f"observes shape {tuple(shape)}")


# The algorithms that build their networks themselves: the continuous-control ones stack their
# actor's and critics' MLPs (network.hidden_sizes, network.activation) into batched products.
BUILDS_ITS_OWN = ("ddpg", "td3", "sac")


# The keys of deeprl's mlp, which the network group's default and the tuned presets set: a torso of
# one's own that does not take them is built without them (`mlp_keys_left_out`).
MLP_KEYS = ("hidden_sizes", "activation")


def check_own_torso(cfg: DictConfig, algo: str) -> None:
    """`network._target_=<module>.<Class>`: a torso of one's own, built as Class(obs_shape=...,
    **the other network keys), with an `out_dim` attribute (README, "A network of your own"). Its
    module is imported from the folder train started in too; the class must take the keys given,
    but for deeprl's mlp keys, which it is built without (`mlp_keys_left_out`)."""
    target = str(cfg.network.get("_target_"))
    if algo in BUILDS_ITS_OWN:
        raise ConfigError("network._target_", f"{algo} builds its actor and critics as MLPs itself "
                                              "(network.hidden_sizes, network.activation), so it cannot take "
                                              f"{target}; a torso of your own is for the DQN family, the policy-"
                                              "gradient algorithms and fitted_q_iteration; use network=mlp")
    params = _torso_params(target)
    if params is None:
        return
    if "obs_shape" not in params:
        raise ConfigError("network._target_", f"{target} takes no argument 'obs_shape'; take the observation's "
                                              "shape as obs_shape, as deeprl's torsos do")
    unknown = [key for key in cfg.network if key != "_target_" and key not in params and key not in MLP_KEYS]
    if unknown:
        them = "it" if len(unknown) == 1 else "them"
        raise ConfigError(f"network.{unknown[0]}", f"{target} takes no argument {', '.join(map(repr, unknown))}; "
                                                   f"remove {them} ({' '.join(f'~network.{k}' for k in unknown)}) "
                                                   f"or add {'that argument' if len(unknown) == 1 else 'those arguments'}"
                                                   f" to {target.rpartition('.')[2]}")


def mlp_keys_left_out(cfg: DictConfig) -> list[str]:
    """deeprl's mlp keys in `cfg.network` that a torso of one's own does not take (none for deeprl's
    own networks): the network group's default and the tuned presets set them for the mlp."""
    target = str(cfg.network.get("_target_"))
    if target in NETWORKS:
        return []
    params = _torso_params(target)
    return [key for key in MLP_KEYS if key in cfg.network and params is not None and key not in params]


def _torso_params(target: str):
    """The parameters a torso of one's own takes (its module imported), or None when it takes any
    keyword (**kwargs) or has no signature to read (it checks its arguments itself)."""
    import importlib
    import inspect

    from deeprl.core.imports import import_user_module

    module, _, name = target.rpartition(".")
    if not module:
        raise ConfigError("network._target_", f"'{target}' names no module; write <module>.<Class>, e.g. "
                                              "network._target_=mynets.MyTorso")
    import_user_module(module, "network._target_", target, "<module>.<Class>")
    torso = getattr(importlib.import_module(module), name, None)
    if not callable(torso):
        raise ConfigError("network._target_", f"{module} has no class or function {name}; fix "
                                              f"network._target_={target}")
    try:
        params = inspect.signature(torso).parameters
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return params


def _cnn_fits(height: int, width: int) -> bool:
    """Whether the Nature CNN's convolutions (8/4, 4/2, 3/1) leave at least one pixel."""
    def out(size: int) -> int:
        for kernel, stride in ((8, 4), (4, 2), (3, 1)):
            if size < kernel:
                return 0
            size = (size - kernel) // stride + 1
        return size

    return out(height) >= 1 and out(width) >= 1


# Frame stacks of images ---------------------------------------------------------------------


def check_frame_stack(env_cfg: DictConfig, metadata: dict, spec: EnvSpec) -> None:
    """`env=gym` stacks frames of images only (envs/make.py marks the envs it stacked): a
    frame_stack their observations could not take is refused, not ignored."""
    stack = int(env_cfg.get("frame_stack") or 1)
    if env_cfg.get("kind", "gym") != "gym" or stack == 1 or metadata.get("frame_stack") == stack:
        return
    if not env_cfg.get("channels_first", True):
        raise ConfigError("env.frame_stack", "stacks image frames channels first, which env.channels_first=false "
                                             "turns off; set env.frame_stack=1, or stack them in a wrapper of your own")
    raise ConfigError("env.frame_stack", f"stacks image frames (height x width x channels, uint8), but {spec.id} "
                                         f"observes {np.dtype(spec.obs_dtype)} of shape {spec.obs_shape}; "
                                         "set env.frame_stack=1")


# A time limit -------------------------------------------------------------------------------


def check_time_limit(env_cfg: DictConfig) -> None:
    """Every episode must end: evaluation plays each to its end, and a policy that never reaches one
    (the greedy policy of an early evaluation, walking into a wall, or stepping off CliffWalking's
    cliff back to its start) would play on forever, with no word, in an env that sets no time limit.
    Gymnasium's registered tasks set one, but for a few (CliffWalking-v1); a gridworld's is
    env.max_episode_steps. ALE and MinAtar games end by their own rules (and frame limits)."""
    kind = env_cfg.get("kind", "gym")
    if env_cfg.get("max_episode_steps") or kind not in ("gym", "gridworld"):
        return
    fix = "set one, e.g. env.max_episode_steps=1000"
    if kind == "gym":
        if gym.spec(registered_id(env_cfg.id)).max_episode_steps or (env_cfg.get("kwargs") or {}).get("max_episode_steps"):
            return
        own = named_env_config("id", env_cfg.id, None)
        if own and own != env_cfg.get("name"):
            fix += f", or use env={own} (its own config, which sets one)"
        what = f"{env_cfg.id} sets no time limit"
    else:
        what, fix = "a gridworld without env.max_episode_steps has no time limit", "set one, e.g. env.max_episode_steps=100"
    raise ConfigError("env.max_episode_steps", f"{what}, so an episode of a policy that never reaches an end (the "
                                               f"greedy policy of an early evaluation) would never stop; {fix}")


# The known model ----------------------------------------------------------------------------


def check_env_model(cfg: DictConfig, spec: EnvSpec, env: gym.Env) -> None:
    """What the env's known model implies: planners need one, an expert behaviour needs one, and
    gamma = 1 needs every state to reach a terminal (check_model)."""
    from deeprl.envs.model import describe, tabular_model

    name = cfg.algo.get("name")
    needs = NEEDS.get(name)
    if needs is None or not spec.n_states:
        return
    expert = name == "fitted_q_iteration" and cfg.algo.get("behaviour") == "expert"
    if not (needs.model or expert):
        return
    if needs.model:
        model = tabular_model(env)  # ConfigError("env", ...) when there is none
    else:
        model = describe(env)
        if model is None:
            raise ConfigError("algo.behaviour", "expert needs an env with a known model; use behaviour=uniform")
    check_model(cfg, model)


def check_model(cfg: DictConfig, model: TabularModel) -> None:
    """Planning with gamma = 1 on this model must have finite values (see require_finite_values)."""
    from deeprl.algos.planning import require_finite_values

    name = cfg.algo.get("name")
    needs = NEEDS.get(name)
    plans = needs is not None and needs.model
    expert = name == "fitted_q_iteration" and cfg.algo.get("behaviour") == "expert"  # value iteration first
    if plans or expert:
        # Policy iteration solves (I - P_pi) V = R_pi exactly: singular for any state stuck forever.
        require_finite_values(model, float(cfg.algo.gamma), every_state=name == "policy_iteration")
