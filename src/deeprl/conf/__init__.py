# Hydra config package: the YAML files here are the `conf/` config groups.
from pathlib import Path

import yaml

from deeprl import GENERIC_ENVS

# This folder, for code that reads a group's files directly (conf/algo, conf/tuned).
CONF_DIR = Path(__file__).resolve().parent


def env_configs() -> dict[str, dict]:
    """conf/env/*.yaml by name, as written (no composing)."""
    return {path.stem: yaml.safe_load(path.read_text()) or {} for path in (CONF_DIR / "env").glob("*.yaml")}


def named_env_config(field: str, value: str, base: str | None) -> str | None:
    """The named env config whose `field` (id or game) is `value` and which builds on `base` (atari,
    minatar, or None for the classic ones), if there is one: env=pong for the ALE's Pong."""
    own = sorted(name for name, doc in env_configs().items() if name not in GENERIC_ENVS
                 and doc.get(field) == value and base_env(doc) == base)
    return own[0] if own else None


def base_env(env_doc: dict) -> str | None:
    """The env config a named one builds on (breakout: atari; minatar_breakout: minatar), if any."""
    return next((item for item in env_doc.get("defaults") or [] if isinstance(item, str) and item != "_self_"), None)
