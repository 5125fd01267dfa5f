#!/usr/bin/env bash
# Smoke-test a packaged studio the way a user meets it: unpacked outside the checkout, started
# with a PATH that holds no Python at all and a clean environment (`make package-test` runs this).
#
#   packaging/smoke-test.sh dist/codetune-studio-VERSION-linux-x86_64-cpu.tar.gz
#   packaging/smoke-test.sh dist/codetune-studio        # the built folder, without the archive
#
# Checks: --version (commit and torch build baked in), db status (Alembic migrations bundled), a
# five-step training of the bundled starter model through the frozen training worker, `analyze`
# through the frozen plugin runner, and the window under Xvfb (screenshot kept). It also times the
# frozen window's cold start against the source install's (.venv), both to the first painted frame.
# Results: $SMOKE_OUT (default /tmp/codetune-package-test), summary.txt and window.png there.
set -euo pipefail

archive=$(realpath "${1:?usage: smoke-test.sh ARCHIVE.tar.gz|FOLDER}")
root=$(cd "$(dirname "$0")/.." && pwd)
out=${SMOKE_OUT:-/tmp/codetune-package-test}
rm -rf "$out"
mkdir -p "$out/nopython-bin" "$out/home" "$out/work"
summary="$out/summary.txt"
: >"$summary"
note() { echo "$*" | tee -a "$summary"; }
fail() { echo "SMOKE TEST FAILED: $*" | tee -a "$summary" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

started=$(now)
if [ -d "$archive" ]; then  # a built folder (dist/codetune-studio): copied, as a user would
  cp -a "$archive" "$out/codetune-studio"
  note "copied $archive in $(since "$started") s: $(du -sh "$out/codetune-studio" | cut -f1) on disk"
else
  tar -xzf "$archive" -C "$out"
  note "unpacked $(basename "$archive") in $(since "$started") s: $(du -sh "$out/codetune-studio" | cut -f1) on disk, archive $(du -h "$archive" | cut -f1)"
fi
app="$out/codetune-studio"
exe="$app/codetune-studio"
data="$out/data"

# The studio as a user starts it: nothing of ours on PATH, nothing inherited but what is named.
frozen() {
  # ${FROZEN_EXEC} is "exec" for a background start, so that $! is the studio's own pid.
  ${FROZEN_EXEC:-} env -i PATH="$out/nopython-bin" HOME="$out/home" LANG=C.UTF-8 \
    HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    CODETUNE_TORCH_THREADS="${CODETUNE_TORCH_THREADS:-1}" ${DISPLAY:+DISPLAY=$DISPLAY} \
    ${CODETUNE_EXIT_AFTER_FIRST_FRAME:+CODETUNE_EXIT_AFTER_FIRST_FRAME=1} \
    "$exe" "$@"
}

# 1. --version: version, the commit baked in at package time, the torch build, the device.
frozen --version | tee "$out/version.txt"
grep -q "^codetune-studio " "$out/version.txt" || fail "--version printed no version"
grep -q "^torch: .*(CPU\|(CUDA" "$out/version.txt" || fail "--version named no torch build"
grep -q "^device: " "$out/version.txt" || fail "--version named no device"

# 2. db status: creates the SQLite store through the bundled Alembic migrations.
frozen --data-dir "$data" db status | tee "$out/db-status.txt"
grep -q "^revision .*(up to date)" "$out/db-status.txt" || fail "db status: the schema is not at the bundled head"

# 3. Five training steps of the starter model through the frozen worker, exactly the command
#    line the window uses (python_module_command), with the bundled recipe and dataset.
resources="$app/_internal/resources"
[ -d "$app/_internal/models/starter-v2" ] || fail "the bundle carries no starter model"
sed -e "s|max_steps: 200|max_steps: 5|" -e "s|eval_steps: 20|eval_steps: 5|" \
  -e "s|save_steps: 40|save_steps: 5|" \
  -e "s|path: ../datasets/|path: $resources/datasets/|" \
  "$resources/recipes/quickstart.yaml" >"$out/work/smoke.yaml"
started=$(now)
rc=0
frozen --codetune-run-module codetune_studio.worker --recipe "$out/work/smoke.yaml" \
  --run-id smoke --output-dir "$out/work/run" --data-dir "$data" --log-level WARNING \
  >"$out/worker-events.jsonl" 2>"$out/worker-stderr.log" || rc=$?
[ "$rc" -eq 0 ] || { tail -20 "$out/worker-stderr.log"; fail "the frozen worker exited with $rc"; }
train_s=$(since "$started")
steps=$(grep -c '"event":"metrics_logged"' "$out/worker-events.jsonl" || true)
finished=$(grep '"event":"run_finished"' "$out/worker-events.jsonl" || true)
case "$finished" in
  *'"status":"FINISHED","final_step":5'*) ;;
  *) tail -5 "$out/worker-events.jsonl"; fail "the worker did not finish 5 steps: $finished" ;;
esac
[ -f "$data/models/starter-v2/model.safetensors" ] || fail "the bundled starter model was not copied"
note "frozen worker: 5 training steps of the bundled starter model in $train_s s ($steps metrics events)"

# 4. analyze: the built-in code analyzer in the frozen plugin runner.
printf 'import os\n\n\ndef f(x):\n    return eval(x)\n' >"$out/work/sample.py"
rc=0
frozen --data-dir "$data" analyze "$out/work/sample.py" --format json >"$out/analyze.json" || rc=$?
[ "$rc" -eq 0 ] || fail "analyze exited with $rc"
grep -q '"plugin"' "$out/analyze.json" || fail "analyze returned no plugin results"
note "frozen plugin runner: analyze returned $(grep -o '"plugin"' "$out/analyze.json" | wc -l) result(s)"

# 5. The window under Xvfb on a display of its own: cold start to the first painted frame, the
#    frozen build against the source install, then a screenshot of the frozen window.
Xvfb -displayfd 3 -screen 0 1600x1000x24 -nolisten tcp 3>"$out/display" 2>/dev/null &
xvfb=$!
trap 'kill "$xvfb" 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -s "$out/display" ] && break; sleep 0.1; done
export DISPLAY=":$(cat "$out/display")"

first_frame() {  # $1: label; the rest: the command (it quits after the first painted frame)
  local label=$1 t0
  shift
  t0=$(now)
  CODETUNE_EXIT_AFTER_FIRST_FRAME=1 "$@" >/dev/null 2>&1 || fail "$label window did not start"
  note "$label window: start to first frame and exit in $(since "$t0") s"
}
first_frame "frozen (first start)" frozen --data-dir "$out/data-ff1"
first_frame "frozen (second start)" frozen --data-dir "$out/data-ff1"
if [ -x "$root/.venv/bin/codetune-studio" ]; then
  first_frame "source (first start)" env CODETUNE_EXIT_AFTER_FIRST_FRAME=1 \
    "$root/.venv/bin/codetune-studio" --data-dir "$out/data-ff2"
  first_frame "source (second start)" env CODETUNE_EXIT_AFTER_FIRST_FRAME=1 \
    "$root/.venv/bin/codetune-studio" --data-dir "$out/data-ff2"
fi

(FROZEN_EXEC=exec frozen --data-dir "$data" >"$out/window.log" 2>&1) &
window=$!
DISPLAY=$DISPLAY timeout 60 xdotool search --sync --onlyvisible --name "CodeTune Studio" >/dev/null \
  || { kill "$window" 2>/dev/null; fail "the frozen window did not appear within 60 s"; }
sleep 3  # the deferred plots and the device detection fill in after the first frame
import -display "$DISPLAY" -window root "$out/window.png"
kill -TERM "$window" 2>/dev/null || true
wait "$window" 2>/dev/null || true
if grep -qiE "Traceback|CRITICAL|X11 connection broke" "$out/window.log"; then
  fail "the window logged an error: $(grep -iE 'Traceback|CRITICAL|X11' "$out/window.log" | head -1)"
fi
note "window screenshot: $out/window.png"
note "SMOKE TEST PASSED"
