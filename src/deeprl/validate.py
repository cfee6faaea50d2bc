"""Range checks on a composed config, before anything is built or written.

Hydra already rejects unknown groups and keys (the config is in struct mode); this catches
values that are the right type but cannot work. Each failure is a ConfigError naming the key.
"""

from omegaconf import DictConfig, OmegaConf

from deeprl.core.errors import ConfigError


def _number(cfg, key: str):
    value = cfg
    for part in key.split("."):
        value = value[part]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(key, f"expected a number, got {value!r}")
    return value


def _int(cfg, key: str, minimum: int) -> None:
    value = _number(cfg, key)
    if int(value) != value or value < minimum:
        raise ConfigError(key, f"must be an integer >= {minimum}, got {value}; set {key}=<int >= {minimum}>")


def _positive(cfg, key: str) -> None:
    value = _number(cfg, key)
    if not value > 0:
        raise ConfigError(key, f"must be > 0, got {value}; set {key} to a positive value")


def _unit(cfg, key: str, low_open=False, high_open=False) -> None:
    value = _number(cfg, key)
    ok_low = value > 0 if low_open else value >= 0
    ok_high = value < 1 if high_open else value <= 1
    if not (ok_low and ok_high):
        interval = f"{'(' if low_open else '['}0, 1{')' if high_open else ']'}"
        raise ConfigError(key, f"must be in {interval}, got {value}")


def validate(cfg: DictConfig) -> None:
    _int(cfg, "seed", 0)
    _int(cfg, "total_steps", 1)
    _int(cfg, "num_envs", 1)
    _int(cfg, "threads", 0)
    _int(cfg, "eval.every", 0)
    _int(cfg, "eval.episodes", 1)
    _int(cfg, "checkpoint.every", 0)
    _int(cfg, "video.every", 0)
    _int(cfg, "log.every", 1)
    validate_algo(cfg)
    validate_env(cfg)


def _has(cfg, key: str) -> bool:
    node = cfg
    for part in key.split("."):
        if not isinstance(node, DictConfig) or part not in node:
            return False
        node = node[part]
    return True


def validate_algo(cfg: DictConfig) -> None:
    """Checks by key name, so every algorithm's config gets the ones that apply to it."""
    algo = cfg.algo

    def has(key):
        return _has(cfg, f"algo.{key}")

    if has("gamma"):
        _unit(cfg, "algo.gamma", low_open=True)
    for key in ("lr", "actor_lr", "critic_lr", "value_lr"):
        if has(key):
            _positive(cfg, f"algo.{key}")
    for key in ("buffer_size", "batch_size", "train_freq", "gradient_steps"):
        if has(key):
            _int(cfg, f"algo.{key}", 1)
    if has("learning_starts"):
        _int(cfg, "algo.learning_starts", 0)
    if has("batch_size") and has("buffer_size") and algo.batch_size > algo.buffer_size:
        raise ConfigError(
            "algo.batch_size",
            f"{algo.batch_size} is larger than algo.buffer_size={algo.buffer_size}; "
            "lower the batch size or raise the buffer size",
        )
    if has("max_grad_norm") and algo.max_grad_norm is not None:
        _positive(cfg, "algo.max_grad_norm")
    if has("loss") and algo.loss not in ("huber", "mse"):
        raise ConfigError("algo.loss", f"unknown loss '{algo.loss}'; use huber or mse")
    for key in ("exploration.start", "exploration.end", "exploration.fraction", "exploration.eval"):
        if has(key):
            _unit(cfg, f"algo.{key}")
    if has("target.every"):
        _int(cfg, "algo.target.every", 1)
    if has("target.tau"):
        _unit(cfg, "algo.target.tau", low_open=True)
    _validate_policy_gradient(cfg, has)
    _validate_tabular(cfg, has)


def _validate_policy_gradient(cfg: DictConfig, has) -> None:
    """Keys of the policy-gradient family (reinforce, actor_critic, a2c, ppo)."""
    algo = cfg.algo
    if has("gae_lambda"):
        _unit(cfg, "algo.gae_lambda")
    if has("clip_coef"):
        _positive(cfg, "algo.clip_coef")
    for key in ("n_steps", "n_epochs", "num_minibatches", "batch_steps", "target_updates", "critic_steps",
                "value_steps"):
        if has(key):
            _int(cfg, f"algo.{key}", 1)
    for key in ("ent_coef", "vf_coef"):
        if has(key) and _number(cfg, f"algo.{key}") < 0:
            raise ConfigError(f"algo.{key}", f"must be >= 0, got {algo[key]}")
    for key in ("adam_eps", "optim_eps", "reward_scale"):
        if has(key):
            _positive(cfg, f"algo.{key}")
    if has("rms_alpha"):
        _unit(cfg, "algo.rms_alpha", low_open=True, high_open=True)
    if has("target_kl") and algo.target_kl is not None:
        _positive(cfg, "algo.target_kl")
    if has("init_log_std"):
        _number(cfg, "algo.init_log_std")
    # Choice keys whose names other algorithms may use differently: checked for this family only.
    family = algo.get("name") in ("reinforce", "actor_critic", "a2c", "ppo")
    for key, choices in (("mode", ("batch", "online")), ("baseline", ("none", "mean", "value")),
                         ("action_bounds", ("clip", "tanh")), ("optimizer", ("rmsprop", "adam"))):
        if family and has(key) and algo[key] not in choices:
            raise ConfigError(f"algo.{key}", f"unknown '{algo[key]}'; use one of {', '.join(choices)}")
    if has("num_minibatches") and has("n_steps"):
        batch = algo.n_steps * cfg.num_envs
        if algo.num_minibatches > batch:
            raise ConfigError("algo.num_minibatches",
                              f"{algo.num_minibatches} minibatches of a {batch}-step rollout (n_steps × num_envs) "
                              "would leave some empty; lower it or raise algo.n_steps / num_envs")


TABULAR_FAMILY = ("value_iteration", "policy_iteration", "q_learning", "sarsa", "fitted_q_iteration")


def _validate_tabular(cfg: DictConfig, has) -> None:
    """Keys of the planning and tabular family."""
    algo = cfg.algo
    if has("tol"):
        _positive(cfg, "algo.tol")
    for key in ("max_sweeps", "eval_sweeps", "iterations", "fit_steps"):
        if has(key):
            _int(cfg, f"algo.{key}", 1)
    if has("figure_every"):
        _int(cfg, "algo.figure_every", 0)
    if has("alpha"):
        _unit(cfg, "algo.alpha", low_open=True)
    for key in ("alpha_end", "behaviour_epsilon"):
        if has(key):
            _unit(cfg, f"algo.{key}")
    if has("alpha_power"):
        _unit(cfg, "algo.alpha_power", low_open=True)
    if has("q_init"):
        _number(cfg, "algo.q_init")
    for key in ("exploration.temperature", "exploration.temperature_end"):
        if has(key):
            _positive(cfg, f"algo.{key}")
    if algo.get("name") not in TABULAR_FAMILY:
        return
    for key, choices in (("rule", ("q_learning", "sarsa")), ("alpha_decay", ("constant", "linear", "visits")),
                         ("exploration.kind", ("epsilon", "boltzmann")), ("evaluation", ("exact", "iterative")),
                         ("regressor", ("table", "mlp")), ("behaviour", ("uniform", "expert"))):
        if has(key) and OmegaConf.select(algo, key) not in choices:
            raise ConfigError(f"algo.{key}", f"unknown '{OmegaConf.select(algo, key)}'; use one of {', '.join(choices)}")


def validate_env(cfg: DictConfig) -> None:
    """A gridworld's layout and numbers are checked here, before anything is built."""
    env = cfg.env
    if env.get("kind") != "gridworld":
        return
    from deeprl.envs.gridworld import TERMINAL_MODES, check_slip, gridworld_kwargs, parse_layout

    check_slip(env.get("slip"))
    _number(cfg, "env.step_reward")
    if env.get("terminal") not in TERMINAL_MODES:
        raise ConfigError("env.terminal", f"unknown mode '{env.get('terminal')}'; use end or absorbing")
    if env.get("max_episode_steps") is not None:
        _int(cfg, "env.max_episode_steps", 1)
    kwargs = gridworld_kwargs(env)
    parse_layout(kwargs["layout"], kwargs["terminals"], kwargs["rewards"])
