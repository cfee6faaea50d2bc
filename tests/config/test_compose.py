"""Compose every config in conf/ for real and build what each combination instantiates."""

import os

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep
from hydra.utils import instantiate
from omegaconf import OmegaConf

from conftest import CONF_DIR, EVERY_CONFIG, compose_config, every_config
from deeprl.build import ALGOS
from deeprl.checks import check_time_limit
from deeprl.validate import validate

ALGO_NAMES = sorted(p.stem for p in (CONF_DIR / "algo").glob("*.yaml"))
# gym and atari are generic: they need env.id / env.game from the command line.
ENV_NAMES = sorted(p.stem for p in (CONF_DIR / "env").glob("*.yaml") if p.stem not in ("gym", "atari"))
NETWORK_NAMES = sorted(p.stem for p in (CONF_DIR / "network").glob("*.yaml"))
TUNED = sorted(p.stem for p in (CONF_DIR / "tuned").glob("*.yaml"))


def test_every_group_has_configs():
    assert ALGO_NAMES and ENV_NAMES and NETWORK_NAMES and TUNED


@EVERY_CONFIG
@pytest.mark.parametrize("algo", ALGO_NAMES)
@pytest.mark.parametrize("env", ENV_NAMES)
def test_every_algo_env_pair_composes_and_validates(algo, env):
    cfg = every_config()[f"{algo} {env}"]
    assert cfg.algo.name in ALGOS, f"algo/{algo}.yaml names an algorithm build.py does not know"
    assert cfg.env.name == env
    assert "_target_" in cfg.network, "each env must select a default network"
    OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
    validate(cfg)
    check_time_limit(cfg.env)  # each env's episodes end: a time limit, or a game's own rules


@EVERY_CONFIG
def test_policy_gradients_evaluate_atari_by_sampling_and_the_mode_elsewhere():
    # A greedy policy that never presses FIRE after a lost life stalls an Atari game for its 27,000
    # agent steps, so on Atari a policy-gradient agent evaluates as it trains; the command line wins.
    pairs = {key: cfg for key, cfg in every_config().items()
             if "deterministic_eval" in cfg.get("algo", {})}
    assert {key.split()[0] for key in pairs} == {"reinforce", "actor_critic", "a2c", "ppo"}
    for key, cfg in pairs.items():
        assert cfg.algo.deterministic_eval is (cfg.env.kind != "atari"), key
    assert compose_config("algo=a2c", "env=pong", "algo.deterministic_eval=true").algo.deterministic_eval is True
    assert compose_config("algo=ppo", "env=atari", "env.game=Pong", "env.deterministic_eval=true"
                          ).algo.deterministic_eval is True


def with_choices(*overrides: str):
    """The composed config with Hydra's own node (hydra.runtime.choices: what each group picked)."""
    with initialize_config_module("deeprl.conf", version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=True)


def choices(*overrides: str):
    return with_choices(*overrides).hydra.runtime.choices


# Which configs belong to a family, as the algo and env configs declare it (`override /algo_family`).
ALGO_FAMILIES = {"dqn": {"dqn", "double_dqn", "dueling_dqn", "prioritized_dqn", "rainbow_lite"}, "ppo": {"ppo"},
                 "a2c": {"a2c"}, "reinforce": {"reinforce"}, "actor_critic": {"actor_critic"}}
ENV_FAMILIES = {"atari": {"atari", "breakout", "pong", "seaquest", "spaceinvaders", "beamrider"},
                "minatar": {"minatar"} | {n for n in ENV_NAMES if n.startswith("minatar_")}}


def test_each_config_names_its_family():
    for algo in ALGO_NAMES:
        expected = next((f for f, members in ALGO_FAMILIES.items() if algo in members), "none")
        assert choices(f"algo={algo}").algo_family == expected, algo
    for env in [*ENV_NAMES, "atari"]:
        expected = next((f for f, members in ENV_FAMILIES.items() if env in members), "none")
        assert choices(f"env={env}", *(["env.game=Pong"] if env == "atari" else [])).env_family == expected, env


def assert_sets(cfg, preset, where) -> None:
    """Every value `preset` sets (nested keys included) is the one `cfg` holds."""
    for key, value in preset.items():
        if OmegaConf.is_dict(value):
            assert_sets(cfg[key], value, (*where, key))
        else:
            assert cfg[key] == value, (*where, key)


@pytest.mark.parametrize("family", sorted(p.stem for p in (CONF_DIR / "tuned" / "family").glob("*.yaml")))
def test_a_family_preset_applies_to_every_pair_of_its_families_under_the_pairs_own(family):
    """tuned/family/dqn_atari.yaml is the Atari protocol of every DQN variant on every Atari game,
    a game added later included (env=atari env.game=Qbert)."""
    algo_family, env_family = family.rsplit("_", 1)
    preset = OmegaConf.load(CONF_DIR / "tuned" / "family" / f"{family}.yaml")
    for algo in sorted(ALGO_FAMILIES[algo_family]):
        for env in sorted(ENV_FAMILIES[env_family]):
            game = ["env.game=Qbert"] if env == "atari" else []  # a game with no config of its own
            cfg = with_choices(f"algo={algo}", f"env={env}", *game)
            assert cfg.hydra.runtime.choices["tuned/family"] == family, (algo, env)
            assert not (CONF_DIR / "tuned" / f"{algo}_{env}.yaml").is_file(), "a pair file that repeats its family's"
            assert cfg.total_steps == preset.total_steps, (algo, env)
            assert_sets(cfg.algo, preset.algo, (algo, env))


def test_a_pairs_own_preset_goes_on_top_of_its_familys():
    """The order in conf/config.yaml: the family's preset, then the pair's, then the command line."""
    with_pair = with_choices("algo=ppo", "env=minatar_breakout", "tuned=ppo_lunarlander")  # in the pair's place
    family = OmegaConf.load(CONF_DIR / "tuned" / "family" / "ppo_minatar.yaml")
    pair = OmegaConf.load(CONF_DIR / "tuned" / "ppo_lunarlander.yaml")
    assert with_pair.hydra.runtime.choices["tuned/family"] == "ppo_minatar"
    assert pair.total_steps != family.total_steps and with_pair.total_steps == pair.total_steps
    assert "clip_vloss" not in pair.algo and with_pair.algo.clip_vloss == family.algo.clip_vloss


def test_generic_gym_env_takes_any_id():
    cfg = compose_config("env=gym", "env.id=Acrobot-v1")
    assert cfg.env.id == "Acrobot-v1" and cfg.env.kind == "gym"


@pytest.mark.parametrize("tuned", TUNED)
def test_every_tuned_preset_is_picked_for_its_pair(tuned):
    # Algorithm names may hold underscores (value_iteration_gridworld_4x3): match the longest name.
    algo = max((a for a in ALGO_NAMES if tuned.startswith(f"{a}_")), key=len)
    env = tuned[len(algo) + 1:]
    # The generic atari config has no game: validation asks for one.
    game = ["env.game=Pong"] if env == "atari" else []
    plain = compose_config(f"algo={algo}", f"env={env}", *game, "~tuned")
    preset = compose_config(f"algo={algo}", f"env={env}", *game)
    assert plain != preset, f"tuned/{tuned}.yaml changes nothing"
    validate(preset)


def test_command_line_beats_tuned_preset():
    cfg = compose_config("algo=dqn", "env=cartpole", "algo.lr=0.123")
    assert cfg.algo.lr == 0.123


# Image torsos take (C, H, W) maps, on an env of their kind; the others a vector.
IMAGE_NETWORKS = {"nature_cnn": ("env=breakout", (4, 84, 84)),
                  "minatar_cnn": ("env=minatar_breakout", (4, 10, 10))}


@pytest.mark.parametrize("network", NETWORK_NAMES)
def test_every_network_instantiates_and_runs(network):
    env, shape = IMAGE_NETWORKS.get(network, (None, (4,)))
    cfg = compose_config(f"network={network}", *([env] if env else []))
    torso = instantiate(cfg.network, obs_shape=shape)
    out = torso(torch.zeros(3, *shape))
    assert out.shape == (3, torso.out_dim)


def test_env_selects_network_and_command_line_overrides_it():
    cfg = compose_config("env=cartpole", "network.hidden_sizes=[8]")
    assert list(cfg.network.hidden_sizes) == [8]


SEARCHES = sorted(p.stem for p in (CONF_DIR / "search").glob("*.yaml"))
LAUNCHERS = sorted(p.stem for p in (CONF_DIR / "hydra" / "launcher").glob("*.yaml"))


def compose_with_hydra(*overrides: str):
    with initialize_config_module("deeprl.conf", version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=True)


def test_every_search_and_launcher_preset_is_found():
    assert {"dqn_cartpole", "ppo_cartpole"} <= set(SEARCHES)
    assert {"ray_local", "ray_cluster", "slurm_gpu"} <= set(LAUNCHERS)


@pytest.mark.parametrize("search", SEARCHES)
def test_every_search_space_composes_and_each_of_its_values_validates(search):
    algo = max((a for a in ALGO_NAMES if search.startswith(f"{a}_")), key=len)
    env = search[len(algo) + 1:]
    pair = [f"+search={search}"]  # a search picks the algo and env it is named for
    cfg = compose_with_hydra(*pair)
    assert (cfg.algo.name, cfg.env.name) == (algo, env)
    assert (cfg.hydra.sweep.dir, cfg.hydra.sweeper.study_name) == (f"multirun/search/{search}", search)
    # On another env, a study of its own: continuing the first one's would mix the two envs' trials.
    other = compose_with_hydra(*pair, "env=acrobot")
    assert (other.hydra.sweep.dir, other.hydra.sweeper.study_name) == (f"multirun/search/{algo}_acrobot",
                                                                       f"{algo}_acrobot")
    # The generic env configs: one study per id or game, not one for all of them.
    for given, name in ((["env=gym", "env.id=Acrobot-v1"], f"{algo}_gym-Acrobot-v1"),
                        (["env=atari", "env.game=Breakout"], f"{algo}_atari-Breakout"),
                        (["env=minatar", "env.game=Breakout"], f"{algo}_minatar-Breakout")):
        generic = compose_with_hydra(*pair, *given)
        assert (generic.hydra.sweep.dir, generic.hydra.sweeper.study_name) == (f"multirun/search/{name}", name)
    if algo == "dqn":  # a variant with DQN's keys: its own study too, never mixed into DQN's
        variant = compose_with_hydra(*pair, "algo=double_dqn")
        assert (variant.hydra.sweep.dir, variant.hydra.sweeper.study_name) == (
            f"multirun/search/double_dqn_{env}", f"double_dqn_{env}")
    assert cfg.hydra.sweeper._target_ == "hydra_plugins.deeprl_search.OptunaSweeper"
    assert cfg.hydra.sweeper.direction == "maximize"
    assert str(cfg.hydra.sweeper.storage).startswith("sqlite:///")
    validate(cfg)
    parser = OverridesParser.create()
    for key, space in cfg.hydra.sweeper.params.items():
        assert OmegaConf.select(cfg, key) is not None, f"search/{search}.yaml searches {key}, which is not a key"
        sweep = parser.parse_overrides([f"{key}={space}"])[0].value()
        values = list(sweep.list) if isinstance(sweep, ChoiceSweep) else [sweep.start, sweep.end]
        for value in values:  # every choice, and both ends of every interval, is a valid config
            validate(compose_config(*pair, f"{key}={value}"))


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_every_launcher_preset_composes_and_resolves(launcher):
    cfg = compose_with_hydra(f"hydra/launcher={launcher}")
    resolved = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert resolved["_target_"].startswith("hydra_plugins.")
    if launcher == "ray_local":
        assert resolved["ray"]["init"]["num_cpus"] == len(os.sched_getaffinity(0))
    if launcher == "ray_cluster":  # hydra #2893: a set object_store_memory breaks joining a cluster
        assert resolved["ray"]["init"]["object_store_memory"] is None
    if launcher == "slurm_gpu":
        assert resolved["gpus_per_node"] == 1 and resolved["max_num_timeout"] > 0
