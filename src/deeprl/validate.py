"""Checks on a composed config, before anything is built or written.

Hydra already rejects unknown groups and keys (the config is in struct mode); this catches values
that are the right kind of thing but cannot work. One table, RULES (deeprl.rules), says what every key of
conf/ may hold: a number in a range, one of some choices, true/false, a string, or a list of sizes.
`validate(cfg)` walks every leaf of the composed config (run-level keys, algo, env, network) and
checks it against its rule; a number with no rule is an error too, and tests/config walk every
config in conf/ so that a new numeric key without a range fails the tests. Then a few checks that
relate keys to each other (batch_size <= buffer_size, ...) and a gridworld's layout.
Each failure is one ConfigError naming the key and the fix.

What depends on the environment's spaces (algorithm x action space x observation kind x network,
and the memory a replay needs) is checked by deeprl.checks.check_spec once the spaces are known.
"""

from collections.abc import Iterator

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from deeprl.core.errors import ConfigError
from deeprl.rules import rule_for

# How to set the keys that have no default (`???`).
EXAMPLES = {"env.id": "env=gym env.id=CartPole-v1", "env.game": "env=atari env.game=Breakout"}

# Paths the walk does not enter: Hydra's own settings.
SKIP = ("hydra",)


def _keys(node, prefix: str) -> list:
    return [key for key in node if f"{prefix}{key}" not in SKIP]


def _unset(path: str) -> ConfigError:
    return ConfigError(path, f"has no default and must be given; set it, e.g. {EXAMPLES.get(path, path + '=<value>')}")


def require_set(node, prefix: str = "", given: frozenset[str] = frozenset()) -> None:
    """ConfigError for the first mandatory value (`???`) left unset, before anything resolves it
    (env.name: ${.game} would otherwise fail on env.game with an interpolation error). `given`: keys
    a search sets in each trial, not yet in the config it checks."""
    for key in _keys(node, prefix):
        path = f"{prefix}{key}"
        if OmegaConf.is_missing(node, key) and path not in given:
            raise _unset(path)
        child = node._get_node(key)
        if isinstance(child, DictConfig):
            require_set(child, f"{path}.", given)


def leaves(node, prefix: str = "") -> Iterator[tuple[str, object]]:
    """(path, value) of every key to check: a key with a rule (a whole subtree for Passthrough and a
    list for Sizes), or a leaf without one. Raises ConfigError for a mandatory value left unset."""
    if not prefix:
        require_set(node)
    for key in _keys(node, prefix):
        path = f"{prefix}{key}"
        if OmegaConf.is_missing(node, key):
            raise _unset(path)
        try:
            value = node[key]
        except OmegaConfBaseException as e:  # e.g. an interpolation to a key that does not exist
            raise ConfigError(path, f"cannot be resolved ({str(e).strip().splitlines()[0]}); fix or remove "
                                    "the interpolation") from None
        if rule_for(path) is None and isinstance(value, DictConfig):
            yield from leaves(value, f"{path}.")
        elif rule_for(path) is None and isinstance(value, ListConfig):
            for i, item in enumerate(value):
                yield f"{path}[{i}]", item
        else:
            yield path, value


def _interpolated(cfg: DictConfig, path: str) -> bool:
    parent, _, key = path.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    return isinstance(node, DictConfig) and "[" not in key and OmegaConf.is_interpolation(node, key)


def _plain(value):
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def uncovered_numbers(cfg: DictConfig) -> list[str]:
    """Paths of numeric leaves that have no rule in RULES (each needs one)."""
    return [path for path, value in leaves(cfg) if rule_for(path) is None
            and isinstance(value, (int, float)) and not isinstance(value, bool)]


def check_keys(cfg: DictConfig, prefix: str = "") -> None:
    """Check every key of `cfg` (a whole config, or a subtree such as cfg.env with prefix "env.")
    against RULES. A number without a rule is an error: deeprl does not know the key."""
    require_set(cfg, prefix)
    # A torso of one's own (network._target_=<module>.<Class>) takes keys of its own; deeprl.checks
    # holds them against its signature once the envs are made.
    target = OmegaConf.select(cfg, "network._target_") if not prefix else None
    own_torso = target is not None and not str(target).startswith("deeprl.")
    # Interpolated values last: a bad value is reported at the key that was set (env.eval_epsilon),
    # not at a key that copies it (algo.exploration.eval: ${oc.select:env.eval_epsilon,0.0}).
    for path, value in sorted(leaves(cfg, prefix), key=lambda item: _interpolated(cfg, item[0][len(prefix):])):
        rule = rule_for(path)
        if rule is not None:
            rule.check(path, _plain(value))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) \
                and not (own_torso and path.startswith("network.")):
            raise ConfigError(path, "is not a key deeprl knows (no range for it in deeprl.rules.RULES); "
                                    "remove it, or add its range there if you added the key")


def validate(cfg: DictConfig) -> None:
    """Every key against its rule, then the checks that relate keys to each other."""
    check_keys(cfg)
    _check_relations(cfg)
    validate_env(cfg)


def _check_relations(cfg: DictConfig) -> None:
    algo = cfg.algo
    if algo.get("replay", True) and "batch_size" in algo and "buffer_size" in algo \
            and algo.batch_size > algo.buffer_size:
        raise ConfigError(
            "algo.batch_size",
            f"{algo.batch_size} is larger than algo.buffer_size={algo.buffer_size}; "
            "lower the batch size or raise the buffer size",
        )
    if "num_minibatches" in algo and "n_steps" in algo:
        batch = algo.n_steps * cfg.num_envs
        if algo.num_minibatches > batch:
            raise ConfigError("algo.num_minibatches",
                              f"{algo.num_minibatches} minibatches of a {batch}-step rollout (n_steps × num_envs) "
                              "would leave some empty; lower it or raise algo.n_steps / num_envs")


def validate_env(cfg: DictConfig) -> None:
    """A gridworld's layout is parsed here, before anything is built; with gamma = 1 a planner also
    needs every state to reach a terminal (see deeprl.algos.planning.require_finite_values)."""
    env = cfg.env
    if env.get("kind") != "gridworld":
        return
    from deeprl.buffers.memory import check_fits
    from deeprl.envs.gridworld import build_model, check_slip, gridworld_kwargs, parse_layout

    kwargs = gridworld_kwargs(env)
    layout = parse_layout(kwargs["layout"], kwargs["terminals"], kwargs["rewards"])
    n_states = len(layout.cells)
    # The model is dense: P[s, a, s'] in float64, and a product of the same size to compute R.
    check_fits(3 * n_states * 4 * n_states * 8, f"the model of a {n_states}-state gridworld", key="env.layout")
    from deeprl.checks import check_model

    check_model(cfg, build_model(layout, float(kwargs["step_reward"]), check_slip(kwargs["slip"]),
                                 pay=kwargs["pay"], terminal=kwargs["terminal"], objective=kwargs["objective"]))
