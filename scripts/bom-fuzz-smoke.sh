#!/usr/bin/env bash
# Short fuzz smoke run of the ML-BOM and lineage parsers (lockfiles, README front matter,
# lineage files, BOM validation/reading/rendering, BOM statements).
# Usage: scripts/bom-fuzz-smoke.sh [SECONDS]   (default 60). Needs cargo-fuzz; stable Rust with
# RUSTC_BOOTSTRAP=1 (as scripts/scan-fuzz-smoke.sh). Crashes land in fuzz/artifacts/bom/.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
export RUSTC_BOOTSTRAP=1
# No sanitizer by default: the fuzzed code is safe Rust, and libFuzzer still catches panics,
# OOMs and hangs; an ASan build doubles the build time for nothing it could find here.
# MLSIGN_FUZZ_SANITIZER=address brings it back. MLSIGN_FUZZ_TARGET_DIR moves the build.
fuzz_opts=(--fuzz-dir fuzz --sanitizer "${MLSIGN_FUZZ_SANITIZER:-none}")
if [ -n "${MLSIGN_FUZZ_TARGET_DIR:-}" ]; then fuzz_opts+=(--target-dir "$MLSIGN_FUZZ_TARGET_DIR"); fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked --version 0.13.2 -q
fi
seeds=fuzz/seeds/bom
mkdir -p "$seeds"
for f in testdata/bom/locks/*; do cp "$f" "$seeds/good-$(basename "$f")"; done
for f in testdata/bom/bad/*; do cp "$f" "$seeds/bad-$(basename "$f")"; done
cp testdata/bom/model/README.md "$seeds/README.md"
cp src/bom/schema/jsf-0.82.SNAPSHOT.schema.json "$seeds/jsf.json"
printf '{"bomFormat":"CycloneDX","specVersion":"1.6","version":1,"metadata":{"component":{"type":"machine-learning-model","name":"m","bom-ref":"m"}},"components":[{"type":"data","name":"d","bom-ref":"d"}],"dependencies":[{"ref":"m","dependsOn":["d","x"]}]}' > "$seeds/bom.json"
printf '{"mlsignLineage":1,"datasets":[{"name":"a","path":"a","digest":"sha256:%s","files":[{"path":"x","sha256":"%s"}],"recordedAt":"2026-01-01T00:00:00Z"}]}' \
  "$(printf '%064d' 0)" "$(printf '%064d' 0)" > "$seeds/lineage.json"
echo "== fuzzing bom for ${secs}s"
cargo fuzz run "${fuzz_opts[@]}" bom "$seeds" -- \
  -max_total_time="$secs" -rss_limit_mb=2048 -max_len=262144 -timeout=10 -print_final_stats=1 2>&1 \
  | grep -E "stat::number_of_executed_units|stat::peak_rss_mb|ERROR|panicked|SUMMARY" || true
if ls fuzz/artifacts/bom/crash-* fuzz/artifacts/bom/oom-* fuzz/artifacts/bom/timeout-* >/dev/null 2>&1; then
  echo "fuzz target bom found a failure:"; ls fuzz/artifacts/bom; exit 1
fi
