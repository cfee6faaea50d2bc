"""deeprl: config-driven deep reinforcement learning experiments."""

import hashlib
import os
import re

from omegaconf import OmegaConf

__version__ = "0.1.0"


LIBRARIES = ("torch", "gymnasium", "ale-py", "numpy", "hydra-core", "tensorboard")


def versions() -> dict[str, str]:
    """deeprl's version, Python's and those of the libraries a result depends on, read from the
    installed packages' metadata (no import): for `--version`, a bug report and summary.json."""
    import platform
    from importlib import metadata

    def installed(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    return {"deeprl": __version__, "python": platform.python_version(),
            **{name: installed(name) for name in LIBRARIES}}


def version_line(prog: str) -> str:
    """`<prog> --version`, one line."""
    found = versions()
    libraries = ", ".join(f"{name} {found[name]}" for name in LIBRARIES)
    return f"{prog} (deeprl) {found['deeprl']} | Python {found['python']} | {libraries}"


def load(path, device: str | None = None):
    """A trained agent, from a run dir or a checkpoint file, to act with in Python (deeprl.trained)."""
    from deeprl.trained import load as load_trained

    return load_trained(path, device)


def usable_cores() -> int:
    """The cores this process may run on (fewer than the machine's in a container or a job)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# `${deeprl.cores:}` in configs (the Ray launcher preset sizes Ray with it).
OmegaConf.register_new_resolver("deeprl.cores", usable_cores, replace=True)


# What Hydra's override_dirname escapes with a backslash and a dir name can hold as it is: all but
# the separators of overrides (`,` and `=`) and the backslash itself.
_PLAIN_IN_DIRNAMES = re.compile(r"\\([:()\[\]{} \t])")


def job_dirname(overrides: str, limit: int = 255) -> str:
    """A sweep job's dir name: Hydra's override_dirname, each part (between slashes) cut to `limit`
    bytes, the most a file system takes in one name (a search's five floats at full precision come
    close; one more dimension went past and the trial failed). A cut part ends in a hash of the
    whole, so distinct jobs stay distinct and the same overrides always name the same dir (a sweep
    run again goes on in it).

    Hydra's escapes are dropped where the character alone cannot be misread (`env.id=mod:Env-v0`,
    not `env.id=mod\\:Env-v0`, a name to quote in every shell command that reads it); an escaped
    `,` `=` or backslash keeps its backslash, so two jobs' names stay two."""
    digest = hashlib.sha1(overrides.encode()).hexdigest()[:12]
    overrides = _PLAIN_IN_DIRNAMES.sub(r"\1", overrides)

    def cut(part: str) -> str:
        if len(part.encode()) <= limit:
            return part
        return part.encode()[:limit - len(digest) - 1].decode(errors="ignore") + "~" + digest

    return "/".join(cut(part) for part in overrides.split("/"))


# `${deeprl.dirname:${hydra.job.override_dirname}}`: hydra.sweep.subdir (conf/config.yaml).
OmegaConf.register_new_resolver("deeprl.dirname", job_dirname, replace=True)

# The env configs that take any registered id or game from the command line, and that key.
GENERIC_ENVS = {"gym": "id", "atari": "game", "minatar": "game"}


def search_name(algo: str, env: str, env_cfg) -> str:
    """A search's study name and sweep dir, `<algo>_<env config>`: one study per pair, so that a
    search run on another algo or env never continues a study of other trials. A generic env
    config names every game or id the same, so there the game or id is added (`env=atari
    env.game=Pong`: dqn_atari-Pong; `env=gym env.id=Acrobot-v1`: ppo_gym-Acrobot-v1). One not given
    yet is refused by the search before the name is used."""
    key = GENERIC_ENVS.get(env)
    if key is not None and not OmegaConf.is_missing(env_cfg, key):
        return f"{algo}_{env}-{str(env_cfg[key]).replace('/', '-').replace(':', '-')}"
    return f"{algo}_{env}"


# hydra.sweeper.study_name in conf/search/: `${deeprl.search_name:<algo choice>,<env choice>,${env}}`.
OmegaConf.register_new_resolver("deeprl.search_name", search_name, replace=True)
