"""deeprl.checks: algorithm × action space × observation kind × network, the memory of every
replay and rollout, and what a known model implies, on real configs and real envs."""

import functools
import subprocess
import sys
import textwrap

import gymnasium as gym
import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from conftest import CONF_DIR, compose_config
from deeprl.algos.planning import PolicyIteration, require_finite_values
from deeprl.buffers import make_replay
from deeprl.buffers.rollout import Rollout
from deeprl.checks import (
    NEEDS,
    algo_choices,
    check_pairing,
    check_spec,
    check_time_limit,
    observation_kind,
    uses_state_index,
)
from deeprl.core.errors import ConfigError
from deeprl.envs import EnvSpec, make_vec_env, spec_of
from deeprl.envs.gridworld import GridWorld
from deeprl.storage import check_memory, storage
from deeprl.validate import validate

ALGOS = sorted(p.stem for p in (CONF_DIR / "algo").glob("*.yaml"))
ENVS = sorted(p.stem for p in (CONF_DIR / "env").glob("*.yaml") if p.stem not in ("gym", "atari"))
NETWORKS = sorted(p.stem for p in (CONF_DIR / "network").glob("*.yaml"))
TUNED = sorted(p.stem for p in (CONF_DIR / "tuned").glob("*.yaml"))
HUGE = 10**12


@functools.cache
def env_and_spec(*overrides: str):
    cfg = compose_config(*overrides)
    envs = make_vec_env(cfg.env, 1, seed=0)
    return envs, spec_of(envs, cfg.env.id)


def checked(*overrides: str, env: bool = True):
    """Compose, validate and check against the real env; returns the ConfigError, or None."""
    cfg = compose_config(*overrides)
    validate(cfg)
    env_overrides = [o for o in overrides if o.startswith(("env", "+env"))]
    envs, spec = env_and_spec(*env_overrides)
    try:
        check_spec(cfg, spec, envs.envs[0] if env else None)
    except ConfigError as error:
        return error
    return None


def test_every_algorithm_says_what_it_needs():
    names = {compose_config(f"algo={algo}").algo.name for algo in ALGOS}
    assert names <= set(NEEDS), f"add {names - set(NEEDS)} to deeprl.checks.NEEDS"


@pytest.mark.parametrize("tuned", TUNED)
def test_every_tuned_preset_pairs_up(tuned):
    algo = max((a for a in ALGOS if tuned.startswith(f"{a}_")), key=len)
    env = tuned[len(algo) + 1:]
    game = ["env.game=Pong"] if env == "atari" else []  # the generic atari config has no game
    assert checked(f"algo={algo}", f"env={env}", *game) is None


@pytest.mark.parametrize("env", ENVS)
def test_every_env_selects_a_network_that_takes_its_observations(env):
    """Each env's default network passes, and every pairing the check accepts really runs."""
    one_hot = ["env.one_hot=true"] if "one_hot" in compose_config(f"env={env}").env else []
    default = compose_config(f"env={env}", *one_hot).network._target_
    envs, spec = env_and_spec(f"env={env}", *one_hot)
    for network in NETWORKS:
        cfg = compose_config("algo=ppo", f"env={env}", f"network={network}", *one_hot)
        try:
            check_pairing(cfg, spec)
        except ConfigError as error:
            assert str(error).startswith("network: "), error
            assert cfg.network._target_ != default, f"env={env} selects a network its observations do not fit"
            continue
        obs, _ = envs.reset(seed=0)
        torso = instantiate(cfg.network, obs_shape=spec.obs_shape)
        assert torso(torch.as_tensor(obs)).shape == (1, torso.out_dim)


@pytest.mark.parametrize(("overrides", "key", "words"), [
    (["network=nature_cnn"], "network", "use network=mlp"),
    (["algo=ppo", "network=nature_cnn"], "network", "use network=mlp"),
    (["env=breakout", "network=mlp"], "network", "use network=nature_cnn"),
    (["algo=reinforce", "env=breakout", "network=mlp"], "network", "use network=nature_cnn"),
    (["env=breakout", "env.screen_size=20"], "network", "raise env.screen_size"),
    (["algo=fitted_q_iteration", "env=taxi", "algo.regressor=mlp", "network=nature_cnn"], "network",
     "one-hot state vectors"),
    (["algo=dqn", "env=pendulum"], "algo", "discrete action space"),
    (["algo=dqn", "env=pendulum"], "algo", "algorithms that fit Pendulum-v1: reinforce, actor_critic, a2c, ppo, ddpg, "
                                           "td3, sac"),
    (["algo=sac", "env=cartpole"], "algo", "sac needs a continuous action space but CartPole-v1 has Discrete actions; "
                                           "algorithms that fit CartPole-v1: dqn, double_dqn, dueling_dqn, "
                                           "prioritized_dqn, rainbow_lite, reinforce, actor_critic, a2c, ppo"),
    (["algo=ddpg", "env=breakout"], "algo", "ddpg needs a continuous action space but ALE/Breakout-v5 has Discrete"),
    (["algo=sac", "env=frozenlake"], "algo", "sac needs a continuous action space"),
    (["algo=ddpg", "env=gym", "env.id=CarRacing-v3"], "algo",
     "ddpg takes observations that are vectors, but CarRacing-v3 observes image stacks of shape (3, 96, 96); "
     "algorithms that fit CarRacing-v3: reinforce, actor_critic, a2c, ppo"),
    (["algo=dqn", "env=taxi"], "env.one_hot", "set env.one_hot=true"),
    (["algo=q_learning", "env=taxi", "env.one_hot=true"], "env.one_hot", "set env.one_hot=false"),
    (["algo=value_iteration", "env=cartpole"], "env", "discrete state index"),
    (["algo=q_learning", "env=pendulum"], "env", "discrete state index"),
])
def test_mismatches_name_the_key_and_the_fix(overrides, key, words):
    error = checked(*overrides)
    assert error is not None and str(error).startswith(f"{key}: ") and words in str(error), error


def test_the_hint_names_every_algo_choice_by_the_algorithm_hydra_composes_for_it():
    # The hint lists `algo=` choices (what a user types) by the algo.name each composes to, read
    # from the files' defaults lists; Hydra's composition is the reference.
    choices = algo_choices()
    assert sorted(choices) == ALGOS
    for stem in ALGOS:
        assert compose_config(f"algo={stem}").algo.name == choices[stem], stem
    assert set(choices.values()) == set(NEEDS)  # every algorithm is checked, none is stale


def test_a_table_needs_no_network():
    assert checked("algo=fitted_q_iteration", "env=taxi", "network=nature_cnn") is None
    assert checked("algo=q_learning", "env=taxi", "network=nature_cnn") is None


def test_observation_kinds():
    assert observation_kind(env_and_spec("env=cartpole")[1]) == "vectors"
    assert observation_kind(env_and_spec("env=breakout")[1]) == "image stacks"
    assert observation_kind(env_and_spec("env=taxi")[1]) == "a state index"
    assert observation_kind(env_and_spec("env=taxi", "env.one_hot=true")[1]) == "vectors"


# Memory ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("overrides", "key"), [
    ([f"algo.buffer_size={HUGE}"], "algo.buffer_size"),  # vector observations too
    (["algo=rainbow_lite", f"algo.buffer_size={HUGE}"], "algo.buffer_size"),
    (["env=breakout", f"algo.buffer_size={2 * 10**9}"], "algo.buffer_size"),  # 15 TB of frames
    (["algo.replay=false", f"algo.batch_size={HUGE}", f"algo.buffer_size={HUGE}"], "algo.batch_size"),
    (["algo=ppo", f"algo.n_steps={HUGE}"], "algo.n_steps"),
    (["algo=a2c", f"algo.n_steps={HUGE}"], "algo.n_steps"),
    (["algo=actor_critic", f"algo.n_steps={HUGE}"], "algo.n_steps"),
    (["algo=reinforce", f"algo.batch_steps={HUGE}"], "algo.batch_steps"),
    (["algo=fitted_q_iteration", "env=taxi", f"total_steps={HUGE}"], "total_steps"),
])
def test_storage_that_cannot_fit_names_the_key(overrides, key):
    error = checked(*overrides, env=False)
    assert error is not None and str(error).startswith(f"{key}: ") and "GiB" in str(error), error
    assert f"lower {key}" in str(error)


def test_online_actor_critic_stores_one_step_whatever_n_steps_says():
    assert checked("algo=actor_critic", "algo.mode=online", f"algo.n_steps={HUGE}", env=False) is None


@pytest.mark.parametrize("overrides", [
    ["algo=dqn", "env=cartpole"],
    ["algo=rainbow_lite", "env=cartpole", "num_envs=2"],
    ["algo=dqn", "env=breakout"],
    ["algo=dqn", "env=maze", "env.one_hot=true", "algo.replay=false", "algo.n_step=3"],
])
def test_the_replay_estimate_is_the_buffer_the_run_builds(overrides):
    cfg = compose_config(*overrides, "algo.buffer_size=2000", "algo.batch_size=32")
    _, spec = env_and_spec(*[o for o in overrides if o.startswith("env")])
    (nbytes, _, _, _), *_ = storage(cfg, spec, tabular=False)
    algo = cfg.algo
    from deeprl.buffers import frame_stack_of

    capacity = algo.buffer_size if algo.replay else algo.batch_size + (algo.n_step - 1) * cfg.num_envs
    buffer = make_replay(capacity, spec.obs_shape, spec.obs_dtype, spec.action_shape, spec.action_space.dtype,
                         algo.gamma, torch.device("cpu"), n_step=algo.n_step,
                         frame_stack=frame_stack_of(cfg.env, spec.obs_shape, spec.obs_dtype),
                         prioritized=algo.replay and algo.prioritized.enabled)
    inner = getattr(buffer, "buffer", buffer)
    arrays = [v for v in vars(inner).values() if isinstance(v, np.ndarray)]
    if buffer is not inner:
        arrays.append(buffer.tree.tree)
    assert nbytes >= sum(a.nbytes for a in arrays)
    assert nbytes <= 1.01 * sum(a.nbytes for a in arrays) + 64 * inner.capacity


def test_the_rollout_estimate_covers_what_a_rollout_allocates():
    cfg = compose_config("algo=ppo", "env=pendulum", "num_envs=2", "algo.n_steps=16")
    envs, spec = env_and_spec("env=pendulum")
    (nbytes, _, key, _), = storage(cfg, spec, tabular=False)
    assert key == "algo.n_steps"
    rollout = Rollout(16)
    obs = torch.zeros((2, *spec.obs_shape))
    rollout.add(obs, torch.zeros((2, *spec.action_shape)), np.zeros(2), np.zeros(2, bool), np.zeros(2, bool), {},
                log_probs=torch.zeros(2), values=torch.zeros(2))  # what a shared torso's acting pass keeps
    allocated = sum(t.nbytes for t in rollout._tensors.values()) + sum(a.nbytes for a in rollout._arrays.values())
    assert allocated <= nbytes


# The known model ---------------------------------------------------------------------------


def closed_world(step_reward=-0.04):
    """S and its neighbour are walled off from the goal."""
    return GridWorld(["S.#+"], terminals={"+": 1.0}, step_reward=step_reward, slip=1.0).model


def test_gamma_one_needs_every_state_to_reach_a_terminal():
    with pytest.raises(ConfigError, match=r"^algo\.gamma: with gamma=1 .* 2 states \(e\.g\. state 0 at row 0, "
                                          r"column 0\) never do; set algo\.gamma below 1"):
        require_finite_values(closed_world(), 1.0, every_state=True)
    require_finite_values(closed_world(), 0.99, every_state=True)
    # Value iteration converges where the stuck states collect nothing; policy iteration's exact
    # evaluation would still be singular there.
    require_finite_values(closed_world(step_reward=0.0), 1.0, every_state=False)
    with pytest.raises(ConfigError, match=r"^algo\.gamma: "):
        require_finite_values(closed_world(step_reward=0.0), 1.0, every_state=True)
    with pytest.raises(ConfigError, match=r"^algo\.gamma: "):
        require_finite_values(closed_world(), 1.0, every_state=False)


@pytest.mark.parametrize("algo", ["policy_iteration", "value_iteration"])
def test_a_gridworld_is_checked_before_anything_is_built(algo):
    with pytest.raises(ConfigError, match=r"^algo\.gamma: "):
        validate(compose_config(f"algo={algo}", "env=gridworld", 'env.layout=["S.#+"]', "algo.gamma=1.0"))
    validate(compose_config(f"algo={algo}", "env=gridworld", 'env.layout=["S.#+"]', "algo.gamma=0.9"))


def test_a_toy_text_model_is_checked_with_the_env():
    error = checked("algo=policy_iteration", "env=frozenlake", "algo.gamma=1.0", "+env.kwargs.desc=[SF,FF]")
    assert error is not None and str(error).startswith("algo.gamma: ")
    assert checked("algo=policy_iteration", "env=frozenlake", "algo.gamma=1.0") is None
    assert checked("algo=policy_iteration", "env=cliffwalking", "algo.gamma=1.0") is None
    assert checked("algo=value_iteration", "env=taxi", "algo.gamma=1.0") is None


def test_check_memory_passes_the_shipped_presets():
    for overrides in (["algo=ppo", "env=breakout"], ["algo=a2c", "env=pong"], ["algo=dqn", "env=cartpole"],
                      ["algo=reinforce", "env=cartpole"]):
        cfg = compose_config(*overrides)
        check_memory(cfg, env_and_spec(*overrides[1:])[1], tabular=False)


@pytest.mark.parametrize("algo, tabular", [("value_iteration", True), ("q_learning", True), ("dqn", False)])
def test_the_known_models_arrays_count_for_the_algorithms_on_a_state_index(algo, tabular):
    """A planner or tabular learner holds the env's known model as dense float64 arrays (P[s, a, s']
    and two temporaries of its size); DQN on the same 64 states holds no model."""
    cfg = compose_config(f"algo={algo}", "env=frozenlake8x8", "env.one_hot=false")
    spec = env_and_spec("env=frozenlake8x8")[1]
    assert uses_state_index(cfg) is tabular
    rows = {what: nbytes for nbytes, what, _, _ in storage(cfg, spec, tabular=uses_state_index(cfg))}
    model = rows.get("the known model of a 64-state world")
    assert model == (3 * 64 * 4 * 64 * 8 if tabular else None)


def test_policy_iteration_stops_when_a_loop_pays_more_than_ending():
    """Every state can reach the terminal, but +0.1 a step forever beats it: no finite values."""
    model = GridWorld(["S..-"], terminals={"-": -1.0}, step_reward=0.1, slip=1.0).model
    spec = EnvSpec("loop", (), np.dtype(np.int64), gym.spaces.Discrete(4), model.n_states)
    agent = PolicyIteration(spec, None, None, None, 0, gamma=1.0, tol=1e-8, evaluation="exact", eval_sweeps=10)
    agent.prepare(model)  # every state can reach the terminal
    with pytest.raises(ConfigError, match=r"^algo\.gamma: with gamma=1 the greedy policy never reaches a terminal"):
        for _ in range(10):
            agent.sweep()


def test_frame_replay_pointers_bound_the_buffer_size():
    cfg = compose_config("algo=dqn", "env=breakout", f"algo.buffer_size={2**31}")
    with pytest.raises(ConfigError, match=r"^algo\.buffer_size: a frame replay holds at most 2,082,407,392"):
        storage(cfg, env_and_spec("env=breakout")[1], tabular=False)


def test_a_pairing_is_refused_before_torch_and_the_algorithms_are_imported(tmp_path):
    """What needs only the env's spaces is checked before build imports torch and the algorithms
    (about 2 s of a start): `train algo=sac env=cartpole` is refused about as fast as a bad key.
    In a fresh interpreter, since this one has imported torch already."""
    code = textwrap.dedent(f"""
        import sys
        from hydra import compose, initialize_config_module
        from deeprl.build import build
        from deeprl.core.errors import ConfigError
        for pair in (["algo=sac", "env=cartpole"], ["algo=ppo", "env=breakout", "network=mlp"]):
            try:
                with initialize_config_module("deeprl.conf", version_base="1.3"):
                    cfg = compose("config", overrides=pair)
                build(cfg, {str(tmp_path)!r})
            except ConfigError as error:
                print(str(error).split(":")[0])
        print(sorted(m for m in ("torch", "deeprl.algos", "deeprl.loops", "deeprl.networks") if m in sys.modules))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split("\n")[:3] == ["algo", "network", "[]"]
    assert not any(tmp_path.iterdir())


def test_an_env_without_a_time_limit_needs_one_and_the_fix_lets_the_run_end(tmp_path):
    """CliffWalking-v1 sets no time limit and stepping off its cliff sends the agent back to the
    start without ending the episode: an evaluation's greedy policy that walks into the cliff or a
    wall played on forever, with no word. The run is refused, naming the key; with a limit, an
    untrained greedy agent's evaluation ends (every episode cut at the limit)."""
    from deeprl.build import build

    bare = compose_config("algo=q_learning", "env=gym", "env.id=CliffWalking-v1")
    with pytest.raises(ConfigError) as caught:
        check_time_limit(bare.env)
    assert str(caught.value).startswith("env.max_episode_steps: CliffWalking-v1 sets no time limit")
    assert str(caught.value).endswith("set one, e.g. env.max_episode_steps=1000, or use env=cliffwalking (its own "
                                      "config, which sets one)")
    with pytest.raises(ConfigError, match="^env.max_episode_steps: a gridworld without"):
        check_time_limit(compose_config("env=gridworld", "env.max_episode_steps=null").env)
    # A limit given either way, or set by gymnasium's registration, passes.
    check_time_limit(compose_config("env=gym", "env.id=CliffWalking-v1", "env.max_episode_steps=50").env)
    check_time_limit(compose_config("env=gym", "env.id=CliffWalking-v1", "+env.kwargs.max_episode_steps=50").env)
    check_time_limit(compose_config("env=gym", "env.id=Taxi-v4").env)
    cfg = compose_config("algo=q_learning", "env=gym", "env.id=CliffWalking-v1", "env.max_episode_steps=50",
                         "algo.exploration.eval=0", "total_steps=100", "eval.every=0", "eval.episodes=3",
                         "log.progress=false")
    run = build(cfg, tmp_path)
    run.execute()
    _, lengths = run.session.last_eval
    assert len(lengths) == 3 and 0 < lengths.max() <= 50


OWN_TORSO = ["network._target_=torso_of_mine.Torso", "~network.hidden_sizes", "~network.activation"]


@pytest.fixture
def torso_of_mine(tmp_path, monkeypatch):
    """torso_of_mine.py in the working folder, which is not on the import path (as for `train`)."""
    (tmp_path / "torso_of_mine.py").write_text(
        "from torch import nn\n\n\nclass Torso(nn.Module):\n    def __init__(self, obs_shape, width=8):\n"
        "        super().__init__()\n        self.out_dim = width\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.path", [p for p in sys.path if p not in ("", str(tmp_path))])


def test_a_torso_of_ones_own_is_built_without_the_mlp_keys_it_does_not_take(torso_of_mine):
    """The network group's default and the tuned presets set deeprl's mlp's keys (dqn_cartpole's
    hidden_sizes, the mlp's activation): a torso that takes neither is built without them, and says so."""
    from deeprl.build import leave_out_mlp_keys

    cfg = compose_config("algo=dqn", "env=cartpole", "network._target_=torso_of_mine.Torso", "+network.width=5")
    assert checked("algo=dqn", "env=cartpole", "network._target_=torso_of_mine.Torso", "+network.width=5") is None
    assert leave_out_mlp_keys(cfg) == ["torso_of_mine.Torso takes no hidden_sizes or activation: built without them "
                                       "(deeprl's mlp takes them; the network group and the tuned presets set them)"]
    assert dict(cfg.network) == {"_target_": "torso_of_mine.Torso", "width": 5}
    assert leave_out_mlp_keys(compose_config("algo=dqn", "env=cartpole")) == []  # deeprl's own mlp keeps them


@pytest.mark.parametrize("target", ["torso_of_mine.Torso", "deeprl.networks.MLP"])
def test_a_torso_of_ones_own_runs_where_its_observations_say(torso_of_mine, target):
    """device=auto: a torso of one's own on images is counted as convolutional (a GPU when there is
    one), on vectors as a small MLP (the CPU); deeprl's mlp by its size."""
    from deeprl.build import network_cost

    cfg = compose_config("algo=dqn", "env=cartpole", f"network._target_={target}")
    _, spec = env_and_spec("env=cartpole")
    assert network_cost(cfg, spec)[0] is False
    pixels = EnvSpec("screens", (3, 64, 64), np.dtype(np.uint8), gym.spaces.Discrete(3))
    assert network_cost(cfg, pixels)[0] is (target == "torso_of_mine.Torso")


@pytest.mark.parametrize(("overrides", "key", "words"), [
    (["algo=sac", "env=pendulum", *OWN_TORSO], "network._target_",
     "sac builds its actor and critics as MLPs itself (network.hidden_sizes, network.activation), so it cannot "
     "take torso_of_mine.Torso; a torso of your own is for the DQN family, the policy-gradient algorithms and "
     "fitted_q_iteration; use network=mlp"),
    (["algo=dqn", "env=cartpole", *OWN_TORSO, "+network.widht=3"], "network.widht",
     "torso_of_mine.Torso takes no argument 'widht'; remove it (~network.widht) or add that argument to Torso"),
    (["algo=dqn", "env=cartpole", *OWN_TORSO[1:], "network._target_=torso_of_mine.Torsoo"], "network._target_",
     "torso_of_mine has no class or function Torsoo; fix network._target_=torso_of_mine.Torsoo"),
    (["algo=dqn", "env=cartpole", *OWN_TORSO[1:], "network._target_=no_torso_here.Torso"], "network._target_",
     "no module named 'no_torso_here' to import for network._target_=no_torso_here.Torso; run from the folder "
     "that holds no_torso_here.py, or add that folder to PYTHONPATH (network._target_=<module>.<Class>)"),
    (["algo=dqn", "env=cartpole", *OWN_TORSO[1:], "network._target_=Torso"], "network._target_",
     "'Torso' names no module; write <module>.<Class>"),
], ids=["sac builds its own", "a misspelt key of its own", "no such class", "no such module", "no module named"])
def test_a_torso_of_ones_own_is_imported_from_where_train_runs_and_checked_against_its_keys(
        torso_of_mine, overrides, key, words):
    """The module is found in the working folder (not on the import path, as for the `train` console
    script); what the run cannot build with it is refused before the agent is, naming the key."""
    error = checked(*overrides)
    assert error is not None and str(error).startswith(f"{key}: ") and words in str(error), error


def test_a_frame_stack_the_observations_cannot_take_is_refused_not_ignored():
    from deeprl.checks import check_frame_stack

    def refusal(*overrides):
        cfg = compose_config(*overrides)
        envs, spec = env_and_spec(*overrides)
        try:
            check_frame_stack(cfg.env, envs.metadata, spec)
        except ConfigError as error:
            return str(error)
        return None

    assert refusal("env=gym", "env.id=CartPole-v1", "env.frame_stack=4") == (
        "env.frame_stack: stacks image frames (height x width x channels, uint8), but CartPole-v1 observes float32 "
        "of shape (4,); set env.frame_stack=1")
    assert refusal("env=gym", "env.id=CarRacing-v3", "env.channels_first=false", "env.frame_stack=2") == (
        "env.frame_stack: stacks image frames channels first, which env.channels_first=false turns off; "
        "set env.frame_stack=1, or stack them in a wrapper of your own")
    assert refusal("env=gym", "env.id=CarRacing-v3", "env.frame_stack=2") is None
    assert refusal("env=gym", "env.id=CartPole-v1") is None
    assert refusal("env=breakout") is None  # Atari stacks its own frames
