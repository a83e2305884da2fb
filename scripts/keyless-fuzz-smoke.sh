#!/usr/bin/env bash
# Short fuzz smoke run of the keyless Sigstore inputs (bundles v0.1-v0.3 through the whole
# verifier, trusted roots, signing configs, identity tokens), seeded with the conformance corpus
# when it is found (shared/conformance/sigstore above the project, or MLSIGN_SIGSTORE_CORPUS).
# Usage: scripts/keyless-fuzz-smoke.sh [SECONDS] (default 60). Needs cargo-fuzz; stable Rust with
# RUSTC_BOOTSTRAP=1. Crashes land in fuzz/artifacts/keyless/.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
export RUSTC_BOOTSTRAP=1
# As scripts/scan-fuzz-smoke.sh: no sanitizer by default, MLSIGN_FUZZ_TARGET_DIR moves the build.
fuzz_opts=(--fuzz-dir fuzz --sanitizer "${MLSIGN_FUZZ_SANITIZER:-none}")
if [ -n "${MLSIGN_FUZZ_TARGET_DIR:-}" ]; then fuzz_opts+=(--target-dir "$MLSIGN_FUZZ_TARGET_DIR"); fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked --version 0.13.2 -q
fi
seeds=fuzz/seeds/keyless
mkdir -p "$seeds"
cp src/attest/sigstore/production_trusted_root.json "$seeds/root.json"
corpus=${MLSIGN_SIGSTORE_CORPUS:-}
if [ -z "$corpus" ]; then
  d=$PWD
  while [ "$d" != / ]; do
    if [ -d "$d/shared/conformance/sigstore/bundle-verify" ]; then corpus=$d/shared/conformance/sigstore; break; fi
    d=$(dirname "$d")
  done
fi
if [ -n "$corpus" ]; then
  for c in "$corpus"/bundle-verify/*/; do cp "$c/bundle.sigstore.json" "$seeds/$(basename "$c").json"; done
fi
echo "== fuzzing keyless for ${secs}s"
cargo fuzz run "${fuzz_opts[@]}" keyless "$seeds" -- \
  -max_total_time="$secs" -rss_limit_mb=2048 -max_len=65536 -timeout=10 -print_final_stats=1 2>&1 \
  | grep -E "stat::number_of_executed_units|stat::peak_rss_mb|ERROR|panicked|SUMMARY" || true
if ls fuzz/artifacts/keyless/crash-* fuzz/artifacts/keyless/oom-* fuzz/artifacts/keyless/timeout-* >/dev/null 2>&1; then
  echo "fuzz target keyless found a failure:"; ls fuzz/artifacts/keyless; exit 1
fi
