# Hydra config package: the YAML files here are the `conf/` config groups.
from pathlib import Path

# This folder, for code that reads a group's files directly (conf/algo, conf/tuned).
CONF_DIR = Path(__file__).resolve().parent
