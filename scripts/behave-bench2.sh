#!/usr/bin/env bash
# Second, independent `mlsign behave` benchmark (issue 15 §6; not a test). Generates the glyph-CNN
# population (scripts/behave-bench2-gen.py), calibrates with `mlsign behave calibrate --fpr 0.05`
# on the calibration negatives ONLY, scores the held-out negatives and positives with the
# calibrated suite, then (with SYN=1) does the same with trigger synthesis on the first
# SYN_CAL calibration negatives and SYN_TEST test models of each kind/family (costly on a CPU:
# see docs/behave.md), and prints the table (scripts/behave-bench2-report.py, numbers in
# $OUT/results.json).
#   scripts/behave-bench2.sh                      # 48 + 48 + 42 models
#   scripts/behave-bench2.sh --cal-neg 96 --test-neg 96 --pos-per-cell 4
# On few cores, generate the three populations in parallel instead (--part cal-neg / test-neg /
# test-pos, then --merge; --resume-only records a cut-short run) and run with SKIP_GEN=1.
# Needs: numpy, scipy, pillow (scripts/behave-bench2-requirements.txt) in $PYTHON or .venv, and
# the fonts of scripts/behave-bench2-apt.txt. SKIP_GEN=1 reuses $OUT's population.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-.bench/behave-bench2}
PY=${PYTHON:-.venv/bin/python}
BIN=${MLSIGN:-}
FPR=${FPR:-0.05}
if [ -z "$BIN" ]; then
  cargo build --release --quiet
  BIN="${CARGO_TARGET_DIR:-target}/release/mlsign"
fi
BIN=$(realpath "$BIN")
if [ "${SKIP_GEN:-0}" != 1 ]; then
  rm -rf "$OUT"
  "$PY" scripts/behave-bench2-gen.py --out "$OUT" "$@"
fi
cd "$OUT"
cp suite.toml suite-cal.toml
cp suite-syn.toml suite-syn-cal.toml
run() { set +e; "$@"; local rc=$?; set -e; [ "$rc" -le 1 ] || { echo "mlsign failed ($rc): $*" >&2; exit "$rc"; }; }
# Probe statistic: calibrate on the calibration negatives, score every test model.
run "$BIN" behave calibrate --baseline base --suite suite-cal.toml --benign cal-neg/* --fpr "$FPR" \
  --write --format json --no-progress > cal.json
run "$BIN" behave --baseline base --suite suite-cal.toml $(printf -- '--candidate %s ' test-neg/* test-pos/*) \
  --format json --no-progress > test.json
# `calibrate --bounded` would re-score the same calibration models: the report applies its rule
# to cal.json's scores (and checks it against a cal-bounded.json from a real run, if present).
if [ "${SYN:-0}" = 1 ]; then
  # Synthesis costs minutes per CNN candidate on a CPU: a stratified subset.
  SYN_CAL=${SYN_CAL:-48}
  SYN_TEST=${SYN_TEST:-2}
  cal=$(ls -d cal-neg/* | head -n "$SYN_CAL")
  tst=$("$PY" - "$SYN_TEST" <<'EOF'
import json, sys
k = int(sys.argv[1]); seen = {}
for m in json.load(open("manifest.json"))["models"]:
    if m["population"] == "cal-neg":
        continue
    key = m.get("trigger", m["kind"]) + str(m.get("poison", ""))
    if seen.get(key, 0) < k:
        seen[key] = seen.get(key, 0) + 1
        print(m["path"])
EOF
)
  run "$BIN" behave calibrate --baseline base --suite suite-syn-cal.toml $(printf -- '--benign %s ' $cal) \
    --fpr "$FPR" --write --format json --no-progress > syn-cal.json
  run "$BIN" behave --baseline base --suite suite-syn-cal.toml $(printf -- '--candidate %s ' $tst) \
    --format json --no-progress > syn-test.json
fi
cd - > /dev/null
"$PY" scripts/behave-bench2-report.py --dir "$OUT" --json "$OUT/results.json" | tee "$OUT/report.md"
