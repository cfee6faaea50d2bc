#!/usr/bin/env bash
# The GPU check: one prepared command for a session lent a GPU machine (docs/gpu.md). Here, first:
#
#   bash scripts/gpu_wheels.sh        # the wheels the GPU machine lacks, into .whl/ (git-ignored)
#
# then, with the device tool:
#
#   run(command="bash scripts/gpu_check.sh", carry=[".whl"], timeout_s=540)
#
# It installs .whl/ into /tmp/site where hydra, gymnasium or ale-py are missing (exit 4 if they
# are and .whl/ is not there), checks that torch sees CUDA (exit 3 if not), runs the tests
# marked `cuda`, then scripts/gpu_check.py --device cuda. Everything lands in $OUT (./gpu_check_out
# when OUT is unset): pytest_cuda.log, gpu_check.log and gpu_check.md, the table to paste into
# docs/benchmarks.md, which is also the last thing printed. Finishes within 8 minutes whatever
# happens (each step has a timeout inside that budget; gpu_check.py starts no workload late, and
# writes its table after each one, so a slow machine still leaves the rows it measured).
#
# Arguments after `--` go to gpu_check.py, e.g. a second look at some rows, or where time goes:
#
#   bash scripts/gpu_check.sh -- --only env,cleanrl,fp32-graphs,dqn-8-async
#   bash scripts/gpu_check.sh --no-tests -- --only fp32-graphs,ppo-async --profile fp32-graphs,ppo-async
#
# The same steps on a machine without a GPU (CUDA not required; gpu_check.py --device cpu --quick):
#
#   PYTHON=.venv/bin/python bash scripts/gpu_check.sh --cpu-dry-run [--no-tests] [-- ARGS]
set -euo pipefail
cd "$(dirname "$0")/.."

BUDGET=470  # seconds, all steps together
T0=$SECONDS
MODE=
TESTS=1
while [ $# -gt 0 ] && [ "$1" != -- ]; do
  case "$1" in
    --cpu-dry-run) MODE=$1 ;;
    --no-tests) TESTS=0 ;;
    *) echo "usage: bash scripts/gpu_check.sh [--cpu-dry-run] [--no-tests] [-- gpu_check.py arguments]" >&2
       exit 2 ;;
  esac
  shift
done
[ $# -gt 0 ] && shift  # the --
EXTRA=("$@")
PY=${PYTHON:-python3}
SITE=${SITE:-/tmp/site}
OUT=${OUT:-$PWD/gpu_check_out}

say() { echo "gpu_check.sh | $*"; }
left() { echo $((BUDGET - (SECONDS - T0))); }

# The wheels go in only where they are missing (the GPU machine); a dry run with .venv's python
# already has them (and could not install the cp312 ale-py wheel into another Python).
if "$PY" -c "import ale_py, gymnasium, hydra, omegaconf" 2> /dev/null; then
  say "hydra, omegaconf, gymnasium and ale-py already importable by $PY: nothing to install"
  export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
elif compgen -G ".whl/*.whl" > /dev/null; then
  say "installing $(ls .whl/*.whl | wc -l) wheels from .whl/ into $SITE"
  if "$PY" -m pip --version > /dev/null 2>&1; then
    timeout 90 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
      --upgrade --target "$SITE" .whl/*.whl
  else  # no pip there: a wheel is a zip of what goes into site-packages
    say "no pip for $PY: unpacking the wheels instead"
    "$PY" -c 'import sys, zipfile
for wheel in sys.argv[2:]:
    zipfile.ZipFile(wheel).extractall(sys.argv[1])' "$SITE" .whl/*.whl
  fi
  export PYTHONPATH="$SITE:$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
else
  echo "gpu_check.sh: $PY lacks hydra/gymnasium/ale-py and there is no .whl/ (run" \
       "bash scripts/gpu_wheels.sh first, and carry .whl)" >&2
  exit 4
fi

cuda=$("$PY" -c "import torch; print(torch.__version__, torch.cuda.is_available())")
echo "$cuda"
if [[ "$cuda" != *True ]] && [ "$MODE" != --cpu-dry-run ]; then
  echo "gpu_check.sh: CUDA is not available to $PY (torch version, cuda available: $cuda):" \
       "nothing measured" >&2
  exit 3
fi
if command -v nvidia-smi > /dev/null; then
  nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total,utilization.gpu --format=csv \
    || true
fi
"$PY" - <<'EOF'
import sys

import ale_py
import gymnasium
import hydra

import deeprl
import deeprl.conf
import deeprl.train  # noqa: F401  (the `train` entry: python3 -m deeprl.train ...)

print(f"python {sys.version.split()[0]} | deeprl from {deeprl.__file__} | configs "
      f"{deeprl.conf.__path__[0]} | gymnasium {gymnasium.__version__} | "
      f"ale-py {ale_py.__version__} | hydra {hydra.__version__}")
EOF

mkdir -p "$OUT"
status=0

# The tests marked `cuda` (only the files that hold some: collecting the whole suite would import
# optuna and rliable, which the GPU machine lacks).
mapfile -t files < <(grep -rlE --include='test_*.py' 'mark\.cuda' tests | sort)
if [ "$TESTS" = 0 ]; then
  say "--no-tests: the cuda tests are not run"
elif [ "${#files[@]}" -gt 0 ]; then
  limit=$(($(left) - 300))  # keep 300 s for gpu_check.py; at most 120 s, at least 30 s
  if [ "$limit" -gt 120 ]; then limit=120; fi
  if [ "$limit" -lt 30 ]; then limit=30; fi
  say "pytest -m cuda ${files[*]} (limit ${limit} s)"
  set +e
  timeout -k 5 "$limit" "$PY" -m pytest -q -m cuda -p no:cacheprovider "${files[@]}" \
    > "$OUT/pytest_cuda.log" 2>&1
  rc=$?
  set -e
  tail -n 15 "$OUT/pytest_cuda.log"
  [ "$rc" -eq 0 ] || { say "pytest -m cuda: exit $rc (log: $OUT/pytest_cuda.log)"; status=1; }
fi

limit=$(( $(left) - 10 ))
device=(--device cuda)
[ "$MODE" = --cpu-dry-run ] && device=(--device cpu --quick)
say "scripts/gpu_check.py ${device[*]} ${EXTRA[*]} (limit ${limit} s)"
set +e
timeout -k 10 "$limit" "$PY" scripts/gpu_check.py "${device[@]}" --deadline $((limit - 90)) \
  --out "$OUT/gpu_check.md" "${EXTRA[@]}" 2>&1 > /dev/null | tee "$OUT/gpu_check.log"
rc=${PIPESTATUS[0]}
set -e
[ "$rc" -eq 0 ] || { say "gpu_check.py: exit $rc (log: $OUT/gpu_check.log)"; status=1; }

echo
if [ -f "$OUT/gpu_check.md" ]; then
  cat "$OUT/gpu_check.md"
else
  say "no table was written"
  status=1
fi
echo
say "done in $((SECONDS - T0)) s; results in $OUT (exit $status)"
exit "$status"
