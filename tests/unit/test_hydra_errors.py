"""deeprl.core.hydra_errors: Hydra's composition errors worded as one ConfigError, on real
compositions of conf/; and a run's missing key blamed on `~key` only when `~key` removed it."""

import pytest
from hydra.errors import HydraException
from omegaconf.errors import ConfigAttributeError

from conftest import compose_config
from deeprl.core.hydra_errors import from_hydra, removed_key


def composition_error(*overrides: str) -> str:
    with pytest.raises(HydraException) as caught:
        compose_config(*overrides)
    message = str(from_hydra(caught.value))
    assert "\n" not in message
    return message


def test_a_typo_gets_the_nearest_key_and_a_far_miss_gets_the_way_to_list_them():
    assert composition_error("algo.batchsize=64") == "algo.batchsize: no such key; did you mean algo.batch_size?"
    assert composition_error("algo.qwertyuiop=1").startswith("algo.qwertyuiop: no such key; `train --cfg job`")


def test_an_unknown_config_name_lists_the_choices():
    message = composition_error("env=cartpol")
    assert message.startswith("env: there is no env config named 'cartpol'; did you mean env=cartpole? The choices: ")
    assert "minatar_breakout" in message


def test_any_other_composition_error_keeps_hydras_words_on_one_line():
    message = composition_error("+algo.lr=1")  # the key exists: Hydra says how to override it
    assert message.startswith("overrides: Could not append to config. An item is already at 'algo.lr'.")
    assert "++algo.lr=1" in message


@pytest.mark.parametrize(("error", "overrides", "key"), [
    (TypeError("DQN.__init__() missing 1 required keyword-only argument: 'lr'"), ["~algo.lr"], "algo.lr"),
    (TypeError("f() missing 2 required keyword-only arguments: 'tau' and 'gamma'"), ["~algo.gamma"], "algo.gamma"),
    (KeyError("batch_size"), ["seed=3", "~algo.batch_size"], "algo.batch_size"),
])
def test_a_missing_argument_is_blamed_on_the_tilde_that_removed_it(error, overrides, key):
    assert str(removed_key(error, overrides)) == f"{key}: the run needs it and ~{key} removed it; drop ~{key}"


def test_a_missing_config_key_is_blamed_on_the_tilde_that_removed_it():
    cfg = compose_config("~seed")
    with pytest.raises(ConfigAttributeError) as caught:
        _ = cfg.seed
    assert str(removed_key(caught.value, ["~seed"])).startswith("seed: the run needs it and ~seed removed it")


@pytest.mark.parametrize(("error", "overrides"), [
    (TypeError("DQN.__init__() missing 1 required keyword-only argument: 'lr'"), ["algo.lr=0.1"]),  # no ~
    (TypeError("DQN.__init__() missing 1 required keyword-only argument: 'lr'"), ["~tuned"]),  # another key
    (TypeError("unsupported operand type(s) for +: 'int' and 'str'"), ["~algo.lr"]),  # not a missing key
    (KeyError("gamma"), ["~algo.lr"]),
    (ValueError("lr"), ["~algo.lr"]),
])
def test_an_error_that_is_not_the_removed_key_is_left_to_raise(error, overrides):
    assert removed_key(error, overrides) is None
