#!/usr/bin/env bash
# Build (or update) a virtual environment for the studio: `make setup` and `make test-latest`.
#
#   packaging/install_env.sh VENV TORCH LOCK
#
# TORCH: auto (CUDA where nvidia-smi sees a GPU, else CPU), cpu, cuda, or skip (keep the torch the
#        environment already has).
# LOCK:  yes  - the exact, hashed versions in packaging/locks/{cpu,cuda}.txt (Python 3.11, Linux
#               x86_64): `pip install --require-hashes --no-deps -r LOCK`, then the project itself
#               with --no-deps. What `make run`, `make test` and CI use.
#        none - the newest versions pyproject.toml's ranges allow (torch pinned by
#               packaging/locks/torch.in on CPU): other platforms and Pythons, and `make test-latest`.
# Environment: PYTHON (the interpreter for a new venv), TORCH_CPU_INDEX (where the CPU build of
# torch comes from; empty for the configured package indexes and find-links only).
set -euo pipefail

venv=$1 mode=$2 lock_mode=$3
python=${PYTHON:-python3}
locks=packaging/locks
pip=("$venv/bin/python" -m pip)

test -x "$venv/bin/python" || "$python" -m venv "$venv"

if [ "$mode" = auto ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then mode=cuda; else mode=cpu; fi
fi
echo "torch build: $mode; versions: $([ "$lock_mode" = none ] && echo "newest in pyproject.toml's ranges" || echo "locked")"
cpu_index=()
if [ "$mode" = cpu ] && [ -n "${TORCH_CPU_INDEX:-}" ]; then
  cpu_index=(--extra-index-url "$TORCH_CPU_INDEX")
fi

case "$mode" in
  cpu | cuda | skip) ;;
  *) echo "TORCH must be auto, cpu, cuda or skip (got $mode)" >&2; exit 2 ;;
esac

if [ "$lock_mode" = none ]; then
  case "$mode" in
    cpu) "${pip[@]}" install --retries 1 -c "$locks/torch.in" "${cpu_index[@]}" torch
         "${pip[@]}" install -c "$locks/torch.in" -e ".[test]" ;;
    *) [ "$mode" = cuda ] && "${pip[@]}" install torch
       "${pip[@]}" install -e ".[test]" ;;
  esac
  exit 0
fi

# The locks are compiled for one interpreter and platform; say so rather than fail on a wheel.
if ! "$venv/bin/python" -c 'import platform, sys; sys.exit(not (sys.version_info[:2] == (3, 11) and sys.platform == "linux" and platform.machine() == "x86_64"))'; then
  echo "error: the locks in $locks are for Python 3.11 on Linux x86_64; this is" \
    "$("$venv/bin/python" -c 'import platform, sys; print(sys.version.split()[0], sys.platform, platform.machine())')." \
    "Use \`make setup LOCK=none\` (the ranges in pyproject.toml) or PYTHON=python3.11." >&2
  exit 2
fi
"$venv/bin/python" packaging/lock_inputs.py --check "$locks/cpu.txt" "$locks/cuda.txt"

case "$mode" in
  cpu) lock=$locks/cpu.txt ;;
  cuda) lock=$locks/cuda.txt ;;
  skip) # The CPU lock less torch's own entry: keep the torch already installed.
        lock=$venv/lock-without-torch.txt
        awk '/^torch==/ {skip = 1} skip && !/\\$/ {skip = 0; next} !skip' "$locks/cpu.txt" >"$lock" ;;
esac
"${pip[@]}" install --require-hashes --no-deps "${cpu_index[@]}" -r "$lock"
# The project itself, from source, with the build tools the lock just installed.
"${pip[@]}" install --no-deps --no-build-isolation -e .
"${pip[@]}" check
