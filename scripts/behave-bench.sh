#!/usr/bin/env bash
# Re-runnable detection benchmark for `mlsign behave` (not a test): generates the seeded model
# populations, calibrates on the calibration negatives only, scores held-out negatives and
# positives, prints the table committed in docs/behave.md.
#   scripts/behave-bench.sh                      # full run (300 + 300 + 135 models)
#   scripts/behave-bench.sh --cal-neg 100 --test-neg 100 --pos-per-cell 5   # smaller
# Needs: numpy, scikit-learn (pip install -r scripts/behave-bench-requirements.txt) in $PYTHON or .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-.bench/behave}
PY=${PYTHON:-.venv/bin/python}
TARGET=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet
BIN="$TARGET/release/mlsign"
rm -rf "$OUT"
echo "== generating populations into $OUT" >&2
"$PY" scripts/behave-bench-gen.py --out "$OUT" "$@"
echo "== calibrating on $(ls "$OUT/cal-neg" | wc -l) calibration negatives (FPR 1%)" >&2
"$BIN" behave calibrate --baseline "$OUT/base" --suite "$OUT/suite.toml" --benign "$OUT"/cal-neg/* \
  --fpr 0.01 --write --format json --no-progress > "$OUT/calibration.json"
echo "== scoring held-out negatives and positives" >&2
set +e
"$BIN" behave --baseline "$OUT/base" --suite "$OUT/suite.toml" \
  $(printf -- '--candidate %s ' "$OUT"/test-neg/* "$OUT"/test-pos/*) --format json --no-progress > "$OUT/scores.json"
rc=$?
set -e
[ "$rc" -le 1 ] || { echo "mlsign behave failed ($rc)" >&2; exit "$rc"; }
"$PY" scripts/behave-bench-report.py --dir "$OUT" | tee "$OUT/report.md"
