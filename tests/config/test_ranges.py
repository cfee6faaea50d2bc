"""One table of ranges (deeprl.rules.RULES) covers every key of every config in conf/, and each
rule turns a value outside it into a ConfigError naming the key."""

import copy
import functools
import math

import pytest
from omegaconf import OmegaConf

from conftest import EVERY_CONFIG, compose_config, every_config
from deeprl.core.errors import ConfigError
from deeprl.rules import RULES, Choice, DeviceName, Flag, Number, Passthrough, Sizes, Text, rule_for
from deeprl.validate import leaves, uncovered_numbers, validate

# Reading every_config(): the tests of this file run on the worker that composes them.
pytestmark = EVERY_CONFIG
# Patterns for keys that no shipped config sets (a gridworld's reward cells come from the command line).
UNUSED_BY_DEFAULT = {"env.rewards.*"}


def test_every_numeric_key_in_conf_has_a_range():
    missing = {name: uncovered_numbers(cfg) for name, cfg in every_config().items()}
    missing = {name: paths for name, paths in missing.items() if paths}
    assert not missing, f"numeric keys without a rule in deeprl.rules.RULES: {missing}"


def test_every_key_in_conf_has_a_rule():
    """Not only numbers: flags, choices and strings have a rule too, so nothing is unchecked."""
    missing = {(name, path) for name, cfg in every_config().items() for path, _ in leaves(cfg)
               if rule_for(path) is None}
    assert not missing, sorted(missing)


def test_every_rule_is_used_by_some_config():
    seen = {path for cfg in every_config().values() for path, _ in leaves(cfg)}
    unused = [key for key in RULES if key not in UNUSED_BY_DEFAULT
              and not any(rule_for(path) is RULES[key] and _matches(key, path) for path in seen)]
    assert not unused, f"rules for keys no config in conf/ has (renamed or removed?): {unused}"


def _matches(pattern: str, path: str) -> bool:
    from fnmatch import fnmatchcase

    return pattern == path or ("*" in pattern and pattern.count(".") == path.count(".") and fnmatchcase(path, pattern))


def test_every_default_value_is_inside_its_range():
    for cfg in every_config().values():
        validate(cfg)


def test_a_new_numeric_key_without_a_range_is_flagged():
    cfg = compose_config("+algo.new_rate=0.5", "+env.kwargs.free=3")
    assert uncovered_numbers(cfg) == ["algo.new_rate"]  # env.kwargs goes to gymnasium unchecked
    with pytest.raises(ConfigError, match=r"^algo\.new_rate: is not a key deeprl knows"):
        validate(cfg)


def _bad_values(rule) -> list:
    """Values just outside each rule (and of the wrong kind)."""
    if isinstance(rule, Number):
        bad = []
        if rule.low is not None:
            bad.append(rule.low if rule.low_open else rule.low - 1)
        if rule.high is not None:
            bad.append(rule.high if rule.high_open else rule.high + 1)
        if rule.integer:
            bad.append((rule.low or 0) + 1.5)
        if not rule.nullable:
            bad.append(None)
        return [*bad, math.nan, math.inf, "abc", True]
    if isinstance(rule, Choice):
        return ["no_such_choice", 3]
    if isinstance(rule, Flag):
        return ["maybe", 1]
    if isinstance(rule, Sizes):
        return [[0], [64, -1], [1.5], "abc"]
    if isinstance(rule, DeviceName):
        return ["tpu", "cuda:", "cuda:one", "cuda0", 3]
    assert isinstance(rule, (Text, Passthrough))
    return [] if isinstance(rule, Passthrough) else [3]


@functools.cache
def _first_config_with() -> dict[str, object]:
    """For each key path, the first composed config (algo x env pair, or network) that has it."""
    found: dict[str, object] = {}
    for cfg in every_config().values():
        for path, _ in leaves(cfg):
            found.setdefault(path, cfg)
    return found


CASES = [(key, bad) for key, rule in RULES.items() if "*" not in key for bad in _bad_values(rule)]


@pytest.mark.parametrize(("key", "bad"), CASES, ids=[f"{k}={v!r}" for k, v in CASES])
def test_a_value_outside_its_range_names_the_key(key, bad):
    cfg = copy.deepcopy(_first_config_with()[key])
    OmegaConf.update(cfg, key, bad, merge=False)
    with pytest.raises(ConfigError) as error:
        validate(cfg)
    message = str(error.value)
    assert message.startswith(f"{key}: "), message
    assert "\n" not in message


def test_override_strings_reach_the_same_rules():
    """The same through Hydra's parser, as a user types them."""
    for override, key in [("algo.n_step=0", "algo.n_step"), ("algo.prioritized.alpha=-1", "algo.prioritized.alpha"),
                          ("algo.lr=inf", "algo.lr"), ("algo.gamma=nan", "algo.gamma"),
                          ("algo.double=maybe", "algo.double"), ("network.hidden_sizes=[0]", "network.hidden_sizes"),
                          ("seed=99999999999999999999", "seed"), ("env.max_episode_steps=0", "env.max_episode_steps")]:
        with pytest.raises(ConfigError, match=rf"^{key.replace('.', '[.]')}: "):
            validate(compose_config(override))


def test_whole_floats_for_counts_say_how_to_write_them():
    with pytest.raises(ConfigError, match=r"^algo\.buffer_size: .*got 100000\.0; write it as an integer, "
                                          r"e\.g\. algo\.buffer_size=100000$"):
        validate(compose_config("algo.buffer_size=1e5"))


def test_a_wildcard_rule_covers_every_cell_character():
    cfg = compose_config("algo=value_iteration", "env=gridworld", "++env.terminals={G: 10}", "++env.rewards={x: -5}")
    assert rule_for("env.terminals.G") is RULES["env.terminals.*"]
    assert rule_for("env.rewards.x") is RULES["env.rewards.*"]
    assert not uncovered_numbers(cfg)
    with pytest.raises(ConfigError, match=r"^env\.rewards\.x: "):
        validate(compose_config("algo=value_iteration", "env=gridworld", "++env.rewards={x: abc}"))


def test_an_unset_mandatory_value_names_the_key_and_an_example():
    with pytest.raises(ConfigError, match=r"^env\.id: has no default .* env=gym env\.id=CartPole-v1"):
        validate(compose_config("env=gym"))
    with pytest.raises(ConfigError, match=r"^env\.game: has no default .* env\.game=Breakout"):
        validate(compose_config("env=atari"))


def test_an_interpolated_value_is_reported_at_its_source():
    # algo.exploration.eval interpolates env.eval_epsilon: the error names the key that was set.
    with pytest.raises(ConfigError, match=r"^env\.eval_epsilon: "):
        validate(compose_config("env=breakout", "env.eval_epsilon=2"))
