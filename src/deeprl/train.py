"""The `train` command: compose the config with Hydra, build, run, summarise."""

import shutil
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from deeprl.build import build
from deeprl.core.errors import ConfigError


def discard_run_dir(run_dir: Path) -> None:
    """Remove a run dir that Hydra created for a run that never started, and its empty parents."""
    shutil.rmtree(run_dir, ignore_errors=True)
    stop = Path.cwd().resolve()
    parent = run_dir.resolve().parent
    while parent != stop and stop in parent.parents and not any(parent.iterdir()):
        parent.rmdir()
        parent = parent.parent


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        run = build(cfg, run_dir)
    except ConfigError as error:
        discard_run_dir(run_dir)
        print(f"deeprl: error: {error}", file=sys.stderr)
        sys.exit(2)
    summary = run.execute()
    # Returned for sweepers that optimise an objective (e.g. Hydra's Optuna sweeper).
    return summary["eval_return_mean"]


if __name__ == "__main__":
    main()
