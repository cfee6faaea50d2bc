#!/usr/bin/env bash
# The wheels a GPU machine lacks, downloaded here into .whl/ for scripts/gpu_check.sh to install.
#
#   bash scripts/gpu_wheels.sh        # here, with network; then run scripts/gpu_check.sh there
#
# The GPU machine (docs/gpu.md) has no network. Its python3 (3.12) already holds torch (CUDA),
# numpy, pillow, matplotlib, tensorboard, tqdm, pyyaml, pytest, pytest-xdist, hypothesis, scipy,
# pandas, opencv-python-headless and cloudpickle. What `python3 -m deeprl.train algo=dqn|ppo
# env=breakout`, scripts/gpu_check.py and the tests marked `cuda` need beyond those is:
#   hydra-core, omegaconf, antlr4-python3-runtime   config composition (deeprl.train, build)
#   gymnasium, farama-notifications                 envs (gymnasium's one import-time dependency)
#   ale-py                                          the Atari emulator, ROMs included (cp312 wheel)
#   typing-extensions                               gymnasium needs >= 4.12; torch only asks 4.10
# Not needed there: box2d, pygame, mujoco (other envs), moviepy (videos), optuna, rliable and the
# launchers (sweeps and `compare`), stable-baselines3 (scripts/benchmark.py).
#
# Versions: what .venv has installed (so the GPU runs the code tested here), else the pins below.
# antlr4-python3-runtime 4.9.3 exists only as an sdist: it is built here into a pure-python wheel.
# .whl/ is kept out of git through .git/info/exclude (added below if missing); the device tool
# takes it along with `carry=[".whl"]`.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV_PY=.venv/bin/python
PACKAGES=(  # name fallback-version
  "hydra-core 1.3.8"
  "omegaconf 2.3.1"
  "antlr4-python3-runtime 4.9.3"
  "gymnasium 1.4.0"
  "farama-notifications 0.0.6"
  "ale-py 0.12.1"
  "typing-extensions 4.16.0"
)
PLATFORM=(--python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64
          --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
          --platform manylinux2014_x86_64 --platform manylinux1_x86_64)

version() {  # .venv's version of a distribution, else the fallback
  local found=""
  if [ -x "$VENV_PY" ]; then
    found=$("$VENV_PY" -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' \
            "$1" 2>/dev/null || true)
  fi
  echo "${found:-$2}"
}

exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
grep -qxF '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >> "$exclude"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for entry in "${PACKAGES[@]}"; do
  read -r name fallback <<< "$entry"
  spec="$name==$(version "$name" "$fallback")"
  echo "gpu_wheels | $spec"
  if ! "$PY" -m pip download -q --no-deps --only-binary=:all: "${PLATFORM[@]}" -d "$tmp" "$spec" \
       2> "$tmp/err.log"; then
    if [ "$name" = antlr4-python3-runtime ]; then  # sdist only: build the pure-python wheel
      "$PY" -m pip wheel -q --no-deps --no-binary=:all: -w "$tmp" "$spec"
    else
      cat "$tmp/err.log" >&2
      echo "gpu_wheels: no Python 3.12 manylinux x86_64 wheel of $spec" >&2
      exit 1
    fi
  fi
done

mkdir -p .whl
rm -f .whl/*.whl
mv "$tmp"/*.whl .whl/

# Each wheel must install on CPython 3.12 / Linux x86_64, and each of its requirements must be
# another wheel here or a package the GPU machine already has.
"$( [ -x "$VENV_PY" ] && echo "$VENV_PY" || echo "$PY" )" - <<'EOF'
import sys
import zipfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

DEVICE = {"torch", "numpy", "pillow", "matplotlib", "tensorboard", "tqdm", "pyyaml", "pytest",
          "pytest-xdist", "hypothesis", "scipy", "pandas", "opencv-python-headless", "cloudpickle",
          "packaging",  # pytest's and matplotlib's dependency
          }
ENV = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
       "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
       "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}
wheels = {}
for path in sorted(Path(".whl").glob("*.whl")):
    name, version, _, tags = parse_wheel_filename(path.name)
    ok = any((t.interpreter in ("py3", "cp312") and t.platform == "any") or
             (t.interpreter == "cp312" and t.platform.startswith("manylinux") and
              t.platform.endswith("x86_64")) for t in tags)
    if not ok:
        sys.exit(f"gpu_wheels: {path.name} does not install on CPython 3.12 / Linux x86_64")
    wheels[canonicalize_name(name)] = (version, path)
problems = []
for name, (version, path) in wheels.items():
    with zipfile.ZipFile(path) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        lines = z.read(meta).decode().splitlines()
    for line in lines:
        if not line.startswith("Requires-Dist:"):
            continue
        req = Requirement(line.split(":", 1)[1].strip())
        if req.marker is not None and not req.marker.evaluate(ENV):
            continue
        dep = canonicalize_name(req.name)
        if dep in wheels:
            if not req.specifier.contains(wheels[dep][0], prereleases=True):
                problems.append(f"{name} needs {req}, .whl has {dep} {wheels[dep][0]}")
        elif dep not in DEVICE:
            problems.append(f"{name} needs {req}: neither in .whl nor on the GPU machine")
if problems:
    sys.exit("gpu_wheels: incomplete set:\n  " + "\n  ".join(problems))
total = sum(p.stat().st_size for _, p in wheels.values())
for name, (version, path) in wheels.items():
    print(f"gpu_wheels | {path.name}  {path.stat().st_size / 2**10:,.0f} KiB")
print(f"gpu_wheels | {len(wheels)} wheels, {total / 2**20:.1f} MiB in .whl/; requirements all met "
      "(by these wheels or by the GPU machine's packages)")
EOF
