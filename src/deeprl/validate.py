"""Range checks on a composed config, before anything is built or written.

Hydra already rejects unknown groups and keys (the config is in struct mode); this catches
values that are the right type but cannot work. Each failure is a ConfigError naming the key.
"""

from omegaconf import DictConfig

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
    _int(cfg, "log.every", 1)
    validate_algo(cfg)


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
