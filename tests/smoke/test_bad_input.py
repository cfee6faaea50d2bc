"""Bad input: a non-zero exit, one line naming the key and the fix, and no run dir left behind."""

import ctypes.util
import os
import subprocess
import sys

import pytest
import torch

from conftest import train_cli

CASES = [
    (["total_steps=0"], "total_steps"),
    (["total_steps=-5"], "total_steps"),
    (["algo.gamma=1.5"], "algo.gamma"),
    (["algo.gamma=0"], "algo.gamma"),
    (["algo.lr=-0.001"], "algo.lr"),
    (["algo.batch_size=512", "algo.buffer_size=100"], "algo.batch_size"),
    (["env=gym", "env.id=NoSuchEnv-v9"], "env.id"),
    (["env=gym", "env.id=Pendulum-v1"], "discrete"),
    (["device=tpu"], "device"),
    (["num_envs=0"], "num_envs"),
    (["algo.exploration.end=2"], "algo.exploration.end"),
    (["algo.loss=l1"], "algo.loss"),
    (["env=minatar_breakout", "env.vectorization=threads"], "env.vectorization"),
    (["algo=dqn", "env=cartpole", "device=cpu", "algo.replay_device=cuda"], "algo.replay_device"),
    (["algo=sac", "env=pendulum", "algo.replay_device=tpu"], "algo.replay_device"),
    (["algo=dqn", "env=cartpole", "device=cpu", "algo.cuda_graphs=true"], "algo.cuda_graphs"),
    (["algo=sac", "env=pendulum", "algo.precision=bf16", "algo.cpu_gemm=onednn"], "algo.cpu_gemm"),
    (["algo=td3", "env=pendulum", "algo.cpu_gemm=mkl"], "algo.cpu_gemm"),
    (["algo=q_learning", "env=frozenlake", "+env.vectorization=async"], "env.vectorization"),
]
if not torch.cuda.is_available():
    CASES.append((["device=cuda"], "device"))


@pytest.mark.parametrize(("overrides", "key"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_value_fails_with_one_line_and_leaves_nothing(tmp_path, overrides, key):
    result = train_cli(*overrides, cwd=tmp_path, timeout=120)
    assert result.returncode != 0
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert key in lines[0] and lines[0].startswith("deeprl: error:")
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "outputs").exists(), "a half-written run dir was left behind"


# What Hydra cannot compose (a mistyped key or config name, an override it cannot parse, a key the
# run needs removed with ~), and the one line each gets: the key, then the fix.
HYDRA_CASES = [
    (["algo=nosuchalgo"], "algo: there is no algo config named 'nosuchalgo'; choose one of: a2c, "),
    (["algo=dqnn"], "algo: there is no algo config named 'dqnn'; did you mean algo=dqn? The choices: "),
    (["env=minatar_breakot"], "env: there is no env config named 'minatar_breakot'; did you mean env=minatar_breakout?"),
    (["network=nosuchnet"], "network: there is no network config named 'nosuchnet'; choose one of: minatar_cnn, mlp, "),
    (["hydra/launcher=jobib"], "hydra/launcher: there is no hydra/launcher config named 'jobib'; did you mean "
                               "hydra/launcher=joblib?"),
    (["algo.lrr=0.1"], "algo.lrr: no such key; did you mean algo.lr?"),
    (["total_stepz=10"], "total_stepz: no such key; did you mean total_steps?"),
    (["algo.exploraton.end=0.1"], "algo.exploraton: no such key; did you mean algo.exploration?"),
    (["env=frozenlake", "env.kwargs.is_slipery=false"], "env.kwargs.is_slipery: no such key; did you mean "
                                                        "env.kwargs.is_slippery?"),
    (["env.kwargs.zzz=1"], "env.kwargs.zzz: no such key; `train --cfg job` prints every key (to add a key deeprl "
                           "passes on, such as an env.kwargs entry, write +env.kwargs.zzz=1)"),
    (["algo.lr=[1,"], "algo.lr: cannot read the override algo.lr=[1,: "),
    (["--cfg", "job", "algo.gama=0.9"], "algo.gama: no such key; did you mean algo.gamma?"),
    (["-m", "algo=dqn,dqnn"], "algo: there is no algo config named 'dqnn'; did you mean algo=dqn?"),
    (["-m", "seed=1,2", "algo.lrr=3"], "algo.lrr: no such key; did you mean algo.lr?"),
    (["~algo.lr"], "algo.lr: the run needs it and ~algo.lr removed it; drop ~algo.lr"),
    (["~algo.batch_size"], "algo.batch_size: the run needs it and ~algo.batch_size removed it; drop "),
    (["~seed"], "seed: the run needs it and ~seed removed it; drop ~seed"),
    (["-m", "seed=1,2", "--cfg", "job"], "command line: Only one of --run, --multirun, --cfg"),
]


@pytest.mark.parametrize(("overrides", "expected"), HYDRA_CASES, ids=[" ".join(c[0]) for c in HYDRA_CASES])
def test_what_hydra_cannot_compose_is_one_line_naming_the_key(tmp_path, overrides, expected):
    result = train_cli(*overrides, cwd=tmp_path, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.startswith(f"deeprl: error: {expected}"), result.stderr[-2000:]
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "HYDRA_FULL_ERROR" not in result.stderr and not result.stdout
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "multirun").exists(), "a run or sweep dir was left"


def test_a_user_who_sets_hydra_full_error_gets_hydras_traceback(tmp_path):
    result = train_cli("algo.lrr=0.1", cwd=tmp_path, env={**os.environ, "HYDRA_FULL_ERROR": "1"})
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "ConfigCompositionException" in result.stderr
    assert "deeprl: error:" not in result.stderr


def test_an_accepted_tilde_still_runs(tmp_path):
    """~ that removes what the run can do without (here the tuned preset) is not refused."""
    result = train_cli("~tuned", "total_steps=500", "eval.episodes=1", "log.progress=false", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert " over 1 episode | 500 steps in " in result.stdout


# MUJOCO_GL values MuJoCo cannot load here: one it does not know, and each offscreen backend whose
# library this machine lacks (with the cause the line gives).
MUJOCO_GL_CASES = [("bogus", "RuntimeError: invalid value for environment variable MUJOCO_GL: bogus")]
MUJOCO_GL_CASES += [(backend, f"lib{library} is not installed") for backend, library in (("egl", "EGL"), ("osmesa", "OSMesa"))
                    if ctypes.util.find_library(library) is None]


@pytest.mark.parametrize(("backend", "cause"), MUJOCO_GL_CASES, ids=[c[0] for c in MUJOCO_GL_CASES])
def test_a_mujoco_gl_that_cannot_load_is_one_line_naming_the_variable(tmp_path, backend, cause):
    """MuJoCo reads MUJOCO_GL when it is imported, and raises from inside its own modules."""
    env = {**os.environ, "MUJOCO_GL": backend}
    result = train_cli("algo=sac", "env=hopper", "total_steps=200", cwd=tmp_path, timeout=120, env=env)
    assert result.returncode == 2, result.stderr[-2000:]
    [line] = result.stderr.strip().splitlines()
    assert line == (f"deeprl: error: MUJOCO_GL: MuJoCo cannot load the OpenGL backend MUJOCO_GL={backend} ({cause}); "
                    "set MUJOCO_GL=egl (libegl1) or MUJOCO_GL=osmesa (libosmesa6) with its library installed, "
                    "or unset it")
    assert "Traceback" not in result.stdout
    assert not (tmp_path / "outputs").exists()


WALLED_OFF = 'env.layout=["S.#+"]'  # the goal cannot be reached from S: no terminal for two states
HUGE = str(10**11)  # transitions or steps that no machine's memory holds

# (overrides, the key the one line must start with), from trying bad inputs as a new user would.
KEYED = [
    # A network that cannot take the observations.
    (["network=nature_cnn"], "network"),
    (["env=breakout", "network=mlp"], "network"),
    (["algo=ppo", "network=nature_cnn"], "network"),
    (["algo=dqn", "env=frozenlake", "env.one_hot=true", "network=nature_cnn"], "network"),
    (["algo=fitted_q_iteration", "env=taxi", "algo.regressor=mlp", "network=nature_cnn"], "network"),
    (["algo=ppo", "env=breakout", "env.screen_size=20"], "network"),
    (["algo=ppo", "env=gym", "env.id=CarRacing-v3"], "network"),
    (["algo=q_learning", "env=taxi", "env.one_hot=true"], "env.one_hot"),
    (["env=gym", "env.id=CartPole-v1", "env.frame_stack=4"], "env.frame_stack"),
    (["algo=ppo", "env=gym", "env.id=CarRacing-v3", "env.channels_first=false", "env.frame_stack=2"], "env.frame_stack"),
    (["algo=dqn", "env=gym", "env.id=Blackjack-v1"], "env.id"),
    (["env=gym", "env.id=ALE/Pong-v5"], "env.id"),
    (["env=gym", "env.id=MinAtar/Breakout-v1"], "env.id"),
    # Discrete-action algorithms on continuous envs and the reverse (the line names what fits).
    (["algo=dqn", "env=pendulum"], "algo"),
    (["algo=double_dqn", "env=halfcheetah"], "algo"),
    (["algo=sac", "env=cartpole"], "algo"),
    (["algo=td3", "env=lunarlander"], "algo"),
    (["algo=ddpg", "env=breakout"], "algo"),
    (["algo=sac", "env=frozenlake"], "algo"),
    (["algo=sac", "env=pendulum", "network=nature_cnn"], "network"),
    # Continuous-control settings outside their rule.
    (["algo=sac", "env=pendulum", "algo.tau=0"], "algo.tau"),
    (["algo=sac", "env=pendulum", "algo.entropy.alpha=0"], "algo.entropy.alpha"),
    (["algo=td3", "env=pendulum", "algo.policy_delay=0"], "algo.policy_delay"),
    (["algo=ddpg", "env=pendulum", "algo.exploration.noise=pink"], "algo.exploration.noise"),
    (["algo=ddpg", "env=pendulum", "algo.target_noise=-1"], "algo.target_noise"),
    (["algo=sac", "env=pendulum", f"algo.buffer_size={HUGE}"], "algo.buffer_size"),
    # Out-of-range replay settings.
    (["algo.n_step=0"], "algo.n_step"),
    (["algo.n_step=1.5"], "algo.n_step"),
    (["algo.prioritized.enabled=true", "algo.prioritized.alpha=-1"], "algo.prioritized.alpha"),
    (["algo.prioritized.enabled=true", "algo.prioritized.beta_start=2"], "algo.prioritized.beta_start"),
    # Storage too large for memory: every replay, vector observations included, and rollouts.
    ([f"algo.buffer_size={HUGE}"], "algo.buffer_size"),
    (["algo=prioritized_dqn", f"algo.buffer_size={HUGE}"], "algo.buffer_size"),
    (["env=breakout", f"algo.buffer_size={2 * 10**9}"], "algo.buffer_size"),
    (["algo.replay=false", f"algo.buffer_size={HUGE}", f"algo.batch_size={HUGE}"], "algo.batch_size"),
    (["algo=ppo", f"algo.n_steps={HUGE}"], "algo.n_steps"),
    (["algo=reinforce", f"algo.batch_steps={HUGE}"], "algo.batch_steps"),
    (["algo=fitted_q_iteration", "env=taxi", f"total_steps={HUGE}"], "total_steps"),
    # gamma = 1 where some state cannot reach a terminal.
    (["algo=policy_iteration", "env=gridworld", WALLED_OFF, "algo.gamma=1.0"], "algo.gamma"),
    (["algo=value_iteration", "env=gridworld", WALLED_OFF, "algo.gamma=1.0"], "algo.gamma"),
    (["algo=fitted_q_iteration", "env=gridworld", WALLED_OFF, "algo.behaviour=expert", "algo.gamma=1.0"],
     "algo.gamma"),
    (["algo=policy_iteration", "env=frozenlake", "algo.gamma=1.0", "+env.kwargs.desc=[SF,FF]"], "algo.gamma"),
    # Other numbers, flags and choices outside their rule.
    (["algo=ppo", "env=pendulum", "algo.init_log_std=1000"], "algo.init_log_std"),
    (["env.max_episode_steps=0"], "env.max_episode_steps"),
    (["env=breakout", "env.max_frames=0"], "env.max_frames"),
    (["network.hidden_sizes=[0]"], "network.hidden_sizes"),
    (["network.activation=sigmoid"], "network.activation"),
    (["env=breakout", "network.hidden_size=0"], "network.hidden_size"),
    (["env=breakout", "network.channels_last=maybe"], "network.channels_last"),
    (["seed=99999999999999999999"], "seed"),
    (["algo.lr=inf"], "algo.lr"),
    (["algo.double=maybe"], "algo.double"),
    (["total_steps=1e4"], "total_steps"),
    (["+algo.foo=1"], "algo.foo"),
    # Values with no default, and arguments gymnasium rejects.
    (["env=atari"], "env.game"),
    (["env=gym"], "env.id"),
    (["+env.kwargs.foo=1"], "env.kwargs"),
    (["algo=q_learning", "env=frozenlake", "env.kwargs.map_name=9x9"], "env.kwargs"),
    # No time limit: an evaluation's greedy policy that never reaches an end would play forever.
    (["algo=q_learning", "env=gym", "env.id=CliffWalking-v1"], "env.max_episode_steps"),
    (["algo=q_learning", "env=gridworld", "env.max_episode_steps=null"], "env.max_episode_steps"),
]


def _id(case) -> str:
    return " ".join(case[0])


# Every case is checked where it is caught (build, before anything is written); a sample, one of
# each kind, also through the `train` command in a subprocess (64 subprocesses would take minutes).
CLI_SAMPLE = {"network=nature_cnn", "algo.n_step=0", "algo=prioritized_dqn algo.buffer_size=" + HUGE,
              "algo=ppo algo.n_steps=" + HUGE, "algo=policy_iteration env=gridworld " + WALLED_OFF + " algo.gamma=1.0",
              "network.hidden_sizes=[0]", "total_steps=1e4", "+algo.foo=1", "env=atari",
              "algo=q_learning env=frozenlake env.kwargs.map_name=9x9", "algo=dqn env=gym env.id=Blackjack-v1",
              "algo=sac env=cartpole", "algo=q_learning env=gym env.id=CliffWalking-v1"}


@pytest.mark.parametrize(("overrides", "key"), KEYED, ids=[_id(c) for c in KEYED])
def test_bad_input_is_caught_before_anything_is_written(tmp_path, overrides, key):
    from conftest import compose_config
    from deeprl.build import build
    from deeprl.core.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        run = build(compose_config(*overrides), tmp_path / "run")
        run.envs.close()
    message = str(caught.value)
    assert message.startswith(f"{key}: ") and "\n" not in message, message
    assert not (tmp_path / "run").exists()


SAMPLE = [c for c in KEYED if _id(c) in CLI_SAMPLE]


def test_the_cli_sample_covers_each_kind():
    assert len(SAMPLE) == len(CLI_SAMPLE)


@pytest.mark.parametrize(("overrides", "key"), SAMPLE, ids=[_id(c) for c in SAMPLE])
def test_bad_input_is_one_line_naming_the_key(tmp_path, overrides, key):
    result = train_cli(*overrides, "log.progress=false", cwd=tmp_path, timeout=180)
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"deeprl: error: {key}: "), result.stderr[-2000:]
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    assert "HYDRA_FULL_ERROR" not in result.stderr
    assert not (tmp_path / "outputs").exists(), "a half-written run dir was left behind"


@pytest.mark.parametrize(("override", "message"), [
    ("algo.lr=-1", "algo.lr: must be a number > 0, got -1; set algo.lr to a number > 0"),
    ("device=tpu", "device: unknown device 'tpu'; use auto, cpu, cuda or cuda:N"),
    ("device=cuda:one", "device: 'cuda:one' is not a device; use cuda:N with N a GPU index"),
])
def test_a_bad_value_is_refused_before_torch_and_the_envs_are_imported(tmp_path, override, message):
    """The config is checked before the heavy imports, so a typo costs under a second, not the
    seconds torch and gymnasium take to import (measured: 0.75 s against 4.3 s)."""
    code = ("import sys\n"
            f"sys.argv = ['train', '{override}']\n"
            "from deeprl.train import main\n"
            "try:\n"
            "    main()\n"
            "except SystemExit as stop:\n"
            "    print('exit', stop.code, *(name in sys.modules for name in ('torch', 'gymnasium')))\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["exit", "2", "False", "False"], result.stdout + result.stderr[-2000:]
    assert result.stderr.strip() == f"deeprl: error: {message}"
    assert not (tmp_path / "outputs").exists()


ALE = "an ALE game, built with the DQN-paper preprocessing by env=atari"
OLD_ALE = "an ALE game (an id of the older ALE versions), built with the DQN-paper preprocessing by env=atari"
NOT_STICKY = "; its actions were not sticky: add env.repeat_action_probability=0 to match"


@pytest.mark.parametrize(("env_id", "fix", "advised", "made"), [
    ("ALE/Pong-v5", f"{ALE}; use env=pong (its own config; or env=atari env.game=Pong)",
     [["env=pong"], ["env=atari", "env.game=Pong"]], "ALE/Pong-v5"),
    ("ALE/MsPacman-v5", f"{ALE}; use env=atari env.game=MsPacman", [["env=atari", "env.game=MsPacman"]],
     "ALE/MsPacman-v5"),
    # the ids SB3's and CleanRL's Atari scripts use, and the oldest
    ("BreakoutNoFrameskip-v4", f"{OLD_ALE}; use env=breakout (its own config; or env=atari env.game=Breakout)"
                               f"{NOT_STICKY}",
     [["env=breakout", "env.repeat_action_probability=0"]], "ALE/Breakout-v5"),
    ("SpaceInvaders-v0", f"{OLD_ALE}; use env=spaceinvaders (its own config; or env=atari "
                         "env.game=SpaceInvaders)", [["env=spaceinvaders"]], "ALE/SpaceInvaders-v5"),
    ("MinAtar/Seaquest-v0", "a MinAtar game, built by env=minatar; use env=minatar_seaquest (its own config; or "
                            "env=minatar env.game=Seaquest)",
     [["env=minatar_seaquest"], ["env=minatar", "env.game=Seaquest"]], "MinAtar/Seaquest-v0"),
    ("MinAtar/Breakout-v1", "a MinAtar game, built by env=minatar; use env=minatar_breakout env.id=MinAtar/Breakout-v1 "
                            "(its own config; or env=minatar env.game=Breakout env.id=MinAtar/Breakout-v1)",
     [["env=minatar_breakout", "env.id=MinAtar/Breakout-v1"]], "MinAtar/Breakout-v1"),
])
def test_a_game_asked_for_through_env_gym_is_pointed_to_its_own_config(tmp_path, env_id, fix, advised, made):
    """Before, `env=gym env.id=ALE/Pong-v5` said gymnasium does not know the id and asked whether
    the package for ALE was installed (it is: env=atari registers its games), and an old ALE id
    (`BreakoutNoFrameskip-v4`) that gymnasium did not know. The advice builds that game."""
    from conftest import compose_config
    from deeprl.build import build
    from deeprl.core.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        build(compose_config("env=gym", f"env.id={env_id}"), tmp_path / "run")
    assert str(caught.value) == f"env.id: {env_id} is {fix}"
    for i, overrides in enumerate(advised):
        run = build(compose_config(*overrides, "num_envs=1"), tmp_path / f"advised{i}", with_loop=False)
        try:
            assert run.cfg.env.id == made
            if "env.repeat_action_probability=0" in overrides:
                assert run.cfg.env.repeat_action_probability == 0
        finally:
            run.envs.close()


@pytest.mark.parametrize(("env_id", "algo", "fix"), [
    ("Taxi-v3", "q_learning", "did you mean env.id=Taxi-v4?"),  # deprecated: gymnasium names the version
    ("LunarLander-v2", "ppo", "did you mean env.id=LunarLander-v3?"),
    ("Cartpole-v1", "ppo", "did you mean env.id=CartPole-v1?"),  # another case
    ("CartPole-v9", "ppo", "did you mean env.id=CartPole-v1?"),  # no such version: the newest
    ("Pendulm-v1", "sac", "did you mean env.id=Pendulum-v1?"),  # a close spelling
    ("NoSuchEnv-v9", "ppo", "pick a registered id, e.g. env=gym env.id=CartPole-v1"),
    # registered, but made by mujoco-py, long gone: gymnasium makes MuJoCo's v4 and v5
    ("HalfCheetah-v3", "sac", "use env.id=HalfCheetah-v5"),
])
def test_an_unknown_or_unmakeable_gym_id_is_answered_with_the_id_meant(tmp_path, env_id, algo, fix):
    from conftest import compose_config
    from deeprl.build import build
    from deeprl.core.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        build(compose_config("env=gym", f"env.id={env_id}", f"algo={algo}"), tmp_path / "run")
    message = str(caught.value)
    problem = "cannot be made here" if fix.startswith("use") else f"gymnasium does not know '{env_id}'"
    assert message.startswith(f"env.id: {env_id} {problem} (" if fix.startswith("use") else f"env.id: {problem} (")
    assert message.endswith(f"); {fix}"), message
    if not fix.startswith("pick"):  # the advice builds
        advised = fix.partition("env.id=")[2].rstrip("?")
        run = build(compose_config("env=gym", f"env.id={advised}", f"algo={algo}", "num_envs=1"), tmp_path / "advised")
        run.envs.close()


def test_an_env_kwarg_its_env_asserts_against_is_named_in_one_line(tmp_path):
    from conftest import compose_config
    from deeprl.build import build
    from deeprl.core.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        build(compose_config("env=gym", "env.id=LunarLander-v3", "+env.kwargs.gravity=-20.0"), tmp_path / "run")
    assert str(caught.value) == ("env.kwargs: LunarLander-v3 rejected env.kwargs={'gravity': -20.0} (AssertionError: "
                                 "gravity (current value: -20.0) must be between -12 and 0); fix or remove the argument")


def test_a_search_without_multirun_is_refused_with_the_command_that_runs_it(tmp_path):
    """Hydra uses a sweeper only in a multirun: `+search=` alone would train once and search nothing."""
    args = ["algo=dqn", "env=cartpole", "+search=dqn_cartpole", "hydra.sweeper.n_trials=2", "total_steps=400",
            "eval.episodes=1", "optimize.seeds=1", "hydra.sweep.dir=search"]
    result = train_cli(*args, cwd=tmp_path)
    assert (result.returncode, result.stderr.strip()) == (
        2, f"deeprl: error: search: a search runs its trials as a sweep; add -m: train -m {' '.join(args)}")
    assert list(tmp_path.iterdir()) == []
    advised = train_cli("-m", *args, cwd=tmp_path)
    assert advised.returncode == 0, advised.stderr[-3000:]
    assert (tmp_path / "search" / "best_tuned.yaml").is_file()


@pytest.mark.parametrize("given, expected", [
    (["algo=ppo", "+search=dqn_cartpole"],
     "algo.batch_size: algo=ppo has no such key to search; +search=dqn_cartpole picks its own algo: drop algo=ppo, "
     "or choose a search written for algo=ppo (the searches: dqn_cartpole, ppo_cartpole)"),
    (["algo=dqn", "+search=dqn_cartpole", "algo.lrr=interval(1e-4,1e-3)"],
     "algo.lrr: no such key to search; did you mean algo.lr?"),
    (["+search=dqn_cartpole", "algoo.exploration.fraction=interval(0.1,0.2)"],
     "algoo: no such key to search; did you mean algo?"),
])
def test_a_search_over_a_key_the_config_lacks_is_refused_before_anything_is_written(tmp_path, given, expected):
    """Before: the study and the sweep dir were made, and the first trial failed on Hydra's "no such key"."""
    result = train_cli("-m", "env=cartpole", *given, "hydra.sweep.dir=search", cwd=tmp_path)
    assert (result.returncode, result.stderr.strip().splitlines()[-1]) == (2, f"deeprl: error: {expected}")
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("env, expected", [
    ("env=gym", "env.id: has no default and must be given; set it, e.g. env=gym env.id=CartPole-v1"),
    ("env=atari", "env.game: has no default and must be given; set it, e.g. env=atari env.game=Breakout"),
])
def test_a_search_on_a_generic_env_without_its_id_is_refused_before_anything_is_written(tmp_path, env, expected):
    """Before: the study was made, its first trial failed on the missing id, and the search ended in
    a traceback."""
    result = train_cli("-m", "+search=ppo_cartpole", env, cwd=tmp_path)
    assert (result.returncode, result.stderr.strip().splitlines()[-1]) == (2, f"deeprl: error: {expected}")
    assert "Traceback" not in result.stderr and "warn" not in result.stderr.lower()
    assert list(tmp_path.iterdir()) == []


def test_a_search_picks_its_algo_and_env_and_searches_a_dimension_given_on_the_command_line(tmp_path):
    """`train -m +search=ppo_cartpole` alone searches PPO (before: algo=dqn, the default, and every trial
    failed); a dimension added on the command line is searched too (its trial's dir name, with six
    floats, was past the file system's 255 bytes: the trial failed)."""
    import yaml

    result = train_cli("-m", "+search=ppo_cartpole", "algo.vf_coef=interval(0.4,0.6)", "hydra.sweeper.n_trials=1",
                       "total_steps=400", "eval.every=0", "eval.episodes=1", "optimize.seeds=1",
                       "hydra.sweep.dir=search", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    best = yaml.safe_load((tmp_path / "search" / "optimization_results.yaml").read_text())["best_params"]
    assert 0.4 <= best["algo.vf_coef"] <= 0.6 and "algo.ent_coef" in best
    (job,) = [p for p in (tmp_path / "search").iterdir() if (p / ".hydra").is_dir()]
    config = yaml.safe_load((job / ".hydra" / "config.yaml").read_text())
    assert (config["algo"]["name"], config["env"]["id"]) == ("ppo", "CartPole-v1")
