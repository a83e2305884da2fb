#!/usr/bin/env bash
# Trigger synthesis vs the probe statistic on the `mlsign behave` benchmark population (not a
# test): generates a population with scripts/behave-bench-gen.py, runs ONE `mlsign behave` over
# its calibration negatives, test negatives and positives with the benchmark suite plus
# [synthesis], and prints the table in docs/behave.md (scripts/behave-synth-bench.py).
#   scripts/behave-synth-bench.sh                                   # 100 + 100 + 54 models
#   scripts/behave-synth-bench.sh --cal-neg 300 --test-neg 300 --pos-per-cell 15
# Needs: numpy, scikit-learn, scipy (scripts/behave-bench-requirements.txt) in $PYTHON or .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-.bench/behave-synth}
PY=${PYTHON:-.venv/bin/python}
TARGET=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet
BIN="$TARGET/release/mlsign"
rm -rf "$OUT"
[ $# -gt 0 ] || set -- --cal-neg 100 --test-neg 100 --pos-per-cell 6
"$PY" scripts/behave-bench-gen.py --out "$OUT" "$@"
cp "$OUT/suite.toml" "$OUT/suite-syn.toml"
printf '\n[synthesis]\nmax_steps = 150\n' >> "$OUT/suite-syn.toml"
set +e
"$BIN" behave --baseline "$OUT/base" --suite "$OUT/suite-syn.toml" \
  $(printf -- '--candidate %s ' "$OUT"/cal-neg/* "$OUT"/test-neg/* "$OUT"/test-pos/*) \
  --format json --no-progress > "$OUT/all.json"
rc=$?
set -e
[ "$rc" -le 1 ] || { echo "mlsign behave failed ($rc)" >&2; exit "$rc"; }
"$PY" scripts/behave-synth-bench.py --dir "$OUT" --scores "$OUT/all.json" | tee "$OUT/report.md"
