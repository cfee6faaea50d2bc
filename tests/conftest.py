import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

CONF_DIR = Path(__file__).resolve().parents[1] / "src" / "deeprl" / "conf"


def compose_config(*overrides: str):
    """Compose the real config tree the way `train` does (no mocks)."""
    with initialize_config_module("deeprl.conf", version_base="1.3"):
        return compose("config", overrides=list(overrides))


def train_cli(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the installed `train` console script in a subprocess."""
    exe = Path(sys.executable).parent / "train"
    return subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def run_in_process(tmp_path: Path, *overrides: str) -> dict:
    """Build and run in this process (faster than a subprocess) and return summary.json's data."""
    from deeprl.build import build

    cfg = compose_config(*overrides, "log.progress=false")
    return build(cfg, tmp_path).execute()


@pytest.fixture
def compose_cfg():
    return compose_config
