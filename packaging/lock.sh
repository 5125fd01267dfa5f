#!/usr/bin/env bash
# Compile packaging/locks/{cpu,cuda}.txt from pyproject.toml: `make lock` runs this.
#
# Both locks hold the runtime dependencies and the `test` and `packaging` extras (pytest, ruff,
# mypy, pyinstaller, ...), exact versions with their hashes, for Python 3.11 on Linux x86_64,
# plus the build requirements (packaging/locks/build.in), with torch pinned by
# packaging/locks/torch.in: the CPU build (from FIND_LINKS when set, else TORCH_CPU_INDEX) in
# cpu.txt, PyPI's CUDA build in cuda.txt. uv keeps the versions an existing lock already pins
# unless UPGRADE is set, so re-locking after adding a dependency changes only what it must.
#
# Environment: UV (the uv binary), PYTHON, FIND_LINKS, TORCH_CPU_INDEX, UPGRADE.
set -euo pipefail

uv=${UV:-uv}
python=${PYTHON:-python3}
locks=packaging/locks
common=(pyproject.toml "$locks/build.in" --extra test --extra packaging -c "$locks/torch.in"
  --python-version 3.11 --python-platform x86_64-manylinux_2_34 --generate-hashes --no-header
  --quiet)
[ -n "${UPGRADE:-}" ] && common+=(--upgrade)
if [ -n "${FIND_LINKS:-}" ]; then
  cpu_source=(--find-links "$FIND_LINKS")
else
  cpu_source=(--extra-index-url "${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}"
    --index-strategy unsafe-best-match)
fi
inputs=$("$python" packaging/lock_inputs.py)

for flavour in cpu cuda; do
  out=$locks/$flavour.txt
  extra=()
  [ "$flavour" = cpu ] && extra=("${cpu_source[@]}")
  echo "locking $flavour: uv pip compile ${common[*]} ${extra[*]}"
  # uv reads the existing lock as its preferences (that is what keeps unchanged pins).
  "$uv" pip compile "${common[@]}" "${extra[@]}" -o "$out"
  body=$(cat "$out")
  {
    echo "# Exact versions with hashes for Python 3.11 on Linux x86_64, glibc 2.34+ ($flavour build of torch)."
    echo "# Made by \`make lock\` (packaging/lock.sh) from pyproject.toml: do not edit by hand."
    echo "# Install: pip install --require-hashes --no-deps -r $out && pip install --no-deps -e ."
    echo "# lock-inputs: $inputs"
    printf '%s\n' "$body" | grep -v -e '^# lock-inputs: ' -e '^# Exact versions' -e '^# Made by' -e '^# Install: '
  } >"$out.tmp"
  mv "$out.tmp" "$out"
done
"$python" packaging/lock_inputs.py --check "$locks/cpu.txt" "$locks/cuda.txt"
echo "locks are up to date: $locks/cpu.txt $locks/cuda.txt (commit them)"
