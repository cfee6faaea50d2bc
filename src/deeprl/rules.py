"""What every key of conf/ may hold: one table, RULES, by key path, of rules (a number in a range,
one of some choices, true/false, a string, a device name, a list of sizes, or a subtree handed on
unchecked to what checks it). deeprl.validate walks a composed config and checks each leaf against
its rule; tests/config/test_ranges.py checks that every key of every config in conf/ has one.
"""

import math
from dataclasses import dataclass
from fnmatch import fnmatchcase

from deeprl.core.errors import ConfigError


def _fmt(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


@dataclass(frozen=True)
class Number:
    """A number in [low, high] (either end open, or missing = unbounded); `integer` for counts,
    `nullable` when null is a setting (e.g. max_grad_norm: null = no clipping)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    integer: bool = False
    nullable: bool = False
    # Optional words for the message: what the key means, and the fix (default: "set KEY to RANGE").
    what: str = ""
    fix: str = ""

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a number"
        if self.low is not None and self.high is not None:
            text = (f"{kind} in {'(' if self.low_open else '['}{_fmt(self.low)}, "
                    f"{_fmt(self.high)}{')' if self.high_open else ']'}")
        elif self.low is not None:
            text = f"{kind} {'>' if self.low_open else '>='} {_fmt(self.low)}"
        elif self.high is not None:
            text = f"{kind} {'<' if self.high_open else '<='} {_fmt(self.high)}"
        else:
            text = f"a finite {kind.split()[-1]}"
        return f"{text} or null" if self.nullable else text

    def check(self, key: str, value) -> None:
        if value is None and self.nullable:
            return
        ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
        fix = self.fix or f"set {key} to {self.describe()}"
        if ok and self.integer and not isinstance(value, int):
            # 1e6 is a float to YAML and Hydra; counts are used as ints (array sizes, range()).
            if float(value).is_integer():
                try:
                    self.check(key, int(value))
                    fix = f"write it as an integer, e.g. {key}={int(value)}"
                except ConfigError:
                    pass
            ok = False
        if ok and self.low is not None:
            ok = value > self.low if self.low_open else value >= self.low
        if ok and self.high is not None:
            ok = value < self.high if self.high_open else value <= self.high
        if not ok:
            what = f"{self.what} and " if self.what else ""
            raise ConfigError(key, f"{what}must be {self.describe()}, got {value!r}; {fix}")


@dataclass(frozen=True)
class Choice:
    options: tuple

    def describe(self) -> str:
        return "one of " + ", ".join(o if isinstance(o, str) else _yaml(o) for o in self.options)

    def check(self, key: str, value) -> None:
        # `value in options` alone would take 1 for true and 0 for false.
        if not any(value == o and type(value) is type(o) for o in self.options):
            raise ConfigError(key, f"unknown {_yaml(value)}; use {self.describe()}")


@dataclass(frozen=True)
class Flag:
    def describe(self) -> str:
        return "true or false"

    def check(self, key: str, value) -> None:
        if not isinstance(value, bool):
            raise ConfigError(key, f"must be true or false, got {_yaml(value)}; set {key}=true or {key}=false")


@dataclass(frozen=True)
class Text:
    """Any string; what it names is checked where it is used (e.g. env.id by gymnasium)."""

    def describe(self) -> str:
        return "a string"

    def check(self, key: str, value) -> None:
        if not isinstance(value, str):
            raise ConfigError(key, f"must be a string, got {value!r}")


@dataclass(frozen=True)
class DeviceName:
    """auto, cpu, cuda or cuda:N, spelled right: checked here, before torch is imported, so a typo
    is refused in about a second; whether CUDA and GPU N are there is deeprl.core.device's to say."""

    def describe(self) -> str:
        return "auto, cpu, cuda or cuda:N"

    def check(self, key: str, value) -> None:
        name = str(value).strip().lower()
        if name in ("auto", "cpu", "cuda") or (name.startswith("cuda:") and name[5:].isdigit()):
            return
        if name.startswith("cuda:"):
            raise ConfigError(key, f"'{name}' is not a device; use cuda:N with N a GPU index")
        raise ConfigError(key, f"unknown device '{name}'; use {self.describe()}")


@dataclass(frozen=True)
class Sizes:
    """A list of layer widths (integers >= 1); empty is allowed (a linear model)."""

    def describe(self) -> str:
        return "a list of integers >= 1"

    def check(self, key: str, value) -> None:
        ok = isinstance(value, (list, tuple)) and all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
        if not ok:
            raise ConfigError(key, f"must be {self.describe()}, got {_yaml(value)}; e.g. {key}=[64,64]")


@dataclass(frozen=True)
class Passthrough:
    """Handed on unchecked to a library that checks it (env.kwargs to gymnasium.make), or checked by
    the code that parses it (a gridworld's layout); the whole subtree is covered."""

    def describe(self) -> str:
        return "checked where it is used"

    def check(self, key: str, value) -> None:
        pass


def as_override(value) -> str:
    """A config value written as it is given on the command line: true, false, null, 0.001, [64, 64]."""
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    return str(value)


def _yaml(value) -> str:
    """A value in a message: as on the command line, strings quoted."""
    return repr(value) if isinstance(value, str) else as_override(value)


INT0 = Number(0, integer=True)
INT1 = Number(1, integer=True)
POSITIVE = Number(0, low_open=True)
NON_NEGATIVE = Number(0)
PROBABILITY = Number(0, 1)
ANY = Number()
FLAG = Flag()
TEXT = Text()

# Every key of conf/, by path. `*` stands for one path segment (a cell character, a kwarg name).
# The one source of truth for ranges and choices: a new key needs a rule here
# (tests/config/test_ranges.py walks every config in conf/).
RULES: dict[str, Number | Choice | Flag | Text | Sizes | Passthrough] = {
    # Run-level keys (conf/config.yaml).
    "seed": Number(0, 2**32 - 1, integer=True),
    "device": DeviceName(),
    "threads": INT0,
    "deterministic": FLAG,
    "total_steps": INT1,
    "num_envs": INT1,
    "eval.every": INT0,
    "eval.episodes": INT1,
    "video.every": INT0,
    "checkpoint.every": INT0,
    "checkpoint.every_minutes": NON_NEGATIVE,
    "checkpoint.keep": INT0,
    "checkpoint.buffer": FLAG,
    "checkpoint.best": FLAG,
    "guard": Choice(("stop", "warn", "off")),
    "resume": Passthrough(),  # a run dir, checked by deeprl.resume before anything starts
    "init_from": Passthrough(),  # a run dir or checkpoint, checked by deeprl.build.start_from
    "optimize.objective": Choice(("final", "mean_eval")),
    "optimize.seeds": Number(1, 100, integer=True),
    "log.every": INT1,
    "log.progress": FLAG,
    # Every algorithm.
    "algo.name": TEXT,
    "algo.gamma": Number(0, 1, low_open=True, fix="e.g. algo.gamma=0.99"),
    # Optimisation.
    "algo.lr": POSITIVE,
    "algo.actor_lr": POSITIVE,
    "algo.critic_lr": POSITIVE,
    "algo.value_lr": POSITIVE,
    "algo.anneal_lr": FLAG,
    "algo.adam_eps": POSITIVE,
    "algo.optim_eps": POSITIVE,
    "algo.optimizer": Choice(("rmsprop", "rmsprop_tf", "adam")),
    "algo.rms_alpha": Number(0, 1, low_open=True, high_open=True),
    "algo.max_grad_norm": Number(0, low_open=True, nullable=True),
    # The DQN family.
    "algo.loss": Choice(("huber", "mse")),
    "algo.dueling": FLAG,
    "algo.double": FLAG,
    "algo.exploration.start": PROBABILITY,
    "algo.exploration.end": PROBABILITY,
    "algo.exploration.fraction": PROBABILITY,
    "algo.exploration.eval": PROBABILITY,
    "algo.target.enabled": FLAG,
    "algo.target.every": INT1,
    "algo.target.tau": Number(0, 1, low_open=True),
    "algo.replay": FLAG,
    "algo.buffer_size": INT1,
    "algo.batch_size": INT1,
    "algo.learning_starts": INT0,
    "algo.n_step": INT1,
    "algo.prioritized.enabled": FLAG,
    # alpha = 0 is uniform replay, 1 fully proportional (Schaul et al. 2016).
    "algo.prioritized.alpha": PROBABILITY,
    "algo.prioritized.beta_start": PROBABILITY,
    "algo.prioritized.eps": POSITIVE,
    "algo.train_freq": INT1,
    "algo.gradient_steps": INT1,
    "algo.precision": Choice(("auto", "fp32", "bf16")),
    "algo.cpu_gemm": Choice(("auto", "torch", "onednn")),
    "algo.replay_device": Choice(("auto", "cpu", "cuda")),
    "algo.compile": FLAG,
    "algo.cuda_graphs": Choice(("auto", True, False)),
    "algo.random_starts": FLAG,
    # DDPG, TD3, SAC.
    "algo.tau": Number(0, 1, low_open=True, fix="e.g. algo.tau=0.005"),
    "algo.exploration.noise": Choice(("gaussian", "ou")),
    "algo.exploration.std": NON_NEGATIVE,
    "algo.exploration.ou_theta": POSITIVE,
    "algo.exploration.ou_dt": POSITIVE,
    "algo.twin_critics": FLAG,
    "algo.target_noise": NON_NEGATIVE,
    "algo.target_noise_clip": NON_NEGATIVE,
    "algo.policy_delay": INT1,
    "algo.target_every": INT1,
    "algo.entropy.autotune": FLAG,
    "algo.entropy.alpha": POSITIVE,
    "algo.entropy.target": Number(nullable=True, fix="e.g. algo.entropy.target=-1 (null = minus the number of "
                                                    "action dimensions)"),
    # The policy-gradient family.
    "algo.reward_scale": POSITIVE,
    "algo.gae_lambda": PROBABILITY,
    "algo.norm_adv": FLAG,
    "algo.ent_coef": NON_NEGATIVE,
    "algo.vf_coef": NON_NEGATIVE,
    "algo.shared_torso": FLAG,
    "algo.ortho_init": FLAG,
    # exp(±20) is as far as a float32 standard deviation stays meaningful (SB3 clamps to [-20, 2]).
    "algo.init_log_std": Number(-20, 20),
    "algo.action_bounds": Choice(("clip", "tanh")),
    "algo.normalize_obs": FLAG,
    "algo.deterministic_eval": FLAG,
    "algo.n_steps": INT1,
    "algo.mode": Choice(("batch", "online")),
    "algo.target_updates": INT1,
    "algo.critic_steps": INT1,
    "algo.n_epochs": INT1,
    "algo.num_minibatches": INT1,
    "algo.clip_coef": POSITIVE,
    "algo.clip_vloss": FLAG,
    "algo.target_kl": Number(0, low_open=True, nullable=True),
    "algo.reward_to_go": FLAG,
    "algo.baseline": Choice(("none", "mean", "value")),
    "algo.value_steps": INT1,
    "algo.normalize_returns": FLAG,
    "algo.batch_steps": INT1,
    # Planning and tabular.
    "algo.tol": POSITIVE,
    "algo.max_sweeps": INT1,
    "algo.evaluation": Choice(("exact", "iterative")),
    "algo.eval_sweeps": INT1,
    "algo.figure_every": INT0,
    "algo.init_values": Choice(("zero", "cell")),
    "algo.rule": Choice(("q_learning", "sarsa")),
    "algo.alpha": Number(0, 1, low_open=True),
    "algo.alpha_decay": Choice(("constant", "linear", "visits")),
    "algo.alpha_end": PROBABILITY,
    "algo.alpha_power": Number(0, 1, low_open=True),
    "algo.q_init": ANY,
    "algo.exploration.kind": Choice(("epsilon", "boltzmann")),
    "algo.exploration.temperature": POSITIVE,
    "algo.exploration.temperature_end": POSITIVE,
    "algo.iterations": INT1,
    "algo.regressor": Choice(("table", "mlp")),
    "algo.behaviour": Choice(("uniform", "expert")),
    "algo.behaviour_epsilon": PROBABILITY,
    "algo.fit_steps": INT1,
    # Every env.
    "env.name": TEXT,
    "env.kind": Choice(("gym", "gridworld", "atari", "minatar")),
    "env.id": TEXT,
    "env.kwargs": Passthrough(),
    "env.max_episode_steps": Number(1, integer=True, nullable=True),
    "env.one_hot": FLAG,
    "env.channels_first": FLAG,
    "env.vectorization": Choice(("sync", "async")),
    # Atari.
    "env.game": TEXT,
    "env.frame_skip": INT1,
    "env.noop_max": INT0,
    "env.repeat_action_probability": Number(0, 1, high_open=True),
    "env.terminal_on_life_loss": FLAG,
    "env.clip_rewards": FLAG,
    "env.screen_size": Number(8, integer=True),
    "env.grayscale": FLAG,
    "env.frame_stack": INT1,
    "env.fire_reset": Choice(("auto", True, False)),
    "env.full_action_space": FLAG,
    "env.eval_epsilon": PROBABILITY,
    "env.deterministic_eval": FLAG,
    "env.max_frames": Number(1, integer=True, nullable=True),
    # MinAtar (its sticky actions are env.repeat_action_probability).
    "env.difficulty_ramping": FLAG,
    # Gridworlds (the layout itself is parsed by deeprl.envs.gridworld.parse_layout).
    "env.layout": Passthrough(),
    "env.terminals.*": ANY,
    "env.rewards.*": ANY,
    "env.step_reward": ANY,
    "env.slip": Number(0, 1, what="is the probability of the intended move",
                       fix="e.g. env.slip=0.8 (or 1.0 for a deterministic world)"),
    "env.terminal": Choice(("end", "absorbing")),
    "env.pay": Choice(("enter", "occupy")),
    "env.objective": Choice(("reward", "cost")),
    # Networks.
    "network._target_": TEXT,
    "network.hidden_sizes": Sizes(),
    "network.activation": Choice(("relu", "tanh", "elu", "gelu", "silu")),
    "network.hidden_size": INT1,
    "network.channels": INT1,
    "network.channels_last": Choice(("auto", True, False)),
}

def rule_for(key: str):
    """The rule of a key path, or None. Exact paths win over patterns."""
    if key in RULES:
        return RULES[key]
    for pattern, rule in RULES.items():
        if "*" in pattern and pattern.count(".") == key.count(".") and fnmatchcase(key, pattern):
            return rule
    return None
