#!/usr/bin/env bash
# Short fuzz smoke run of every parser of untrusted input, for CI: the scan targets (pickle VM,
# ZIP reader, all formats), the BOM/lineage target and the signing target (bundles, statements,
# PEM keys, certificates). Usage: scripts/fuzz-smoke.sh [SECONDS_PER_TARGET] (default 15).
# Needs cargo-fuzz (installed from crates.io if missing); RUSTC_BOOTSTRAP=1 lets stable Rust take
# the -Z flags it passes. Exits non-zero when any target crashes, leaks or times out.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-15}
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
echo "== building fuzz targets"
cargo fuzz build "${fuzz_opts[@]}" >/dev/null
scripts/scan-fuzz-smoke.sh "$secs"
scripts/bom-fuzz-smoke.sh "$secs"
scripts/keyless-fuzz-smoke.sh "$secs"
seeds=fuzz/seeds/bundle
mkdir -p "$seeds"
cp tests/cli/support/oms_api.py "$seeds/not-a-bundle.py"
printf '{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"publicKey":{"hint":"00"},"tlogEntries":[]},"dsseEnvelope":{"payload":"e30=","payloadType":"application/vnd.in-toto+json","signatures":[{"sig":"MEUCIQ==","keyid":""}]}}' > "$seeds/bundle.json"
printf '{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"m","digest":{"sha256":"00"}}],"predicateType":"https://model_signing/signature/v1.0","predicate":{"serialization":{"method":"shards","hash_type":"sha256","shard_size":1.5,"allow_symlinks":false},"resources":[{"name":"../a:0:1","algorithm":"sha256-sharded-1","digest":"00"}]}}' > "$seeds/statement.json"
printf -- '-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n' > "$seeds/key.pem"
echo "== fuzzing bundle for ${secs}s"
cargo fuzz run "${fuzz_opts[@]}" bundle "$seeds" -- \
  -max_total_time="$secs" -rss_limit_mb=2048 -max_len=65536 -timeout=10 2>&1 \
  | grep -E "stat::|ERROR|panicked|SUMMARY|Done" || true
if ls fuzz/artifacts/bundle/crash-* fuzz/artifacts/bundle/oom-* fuzz/artifacts/bundle/timeout-* >/dev/null 2>&1; then
  echo "fuzz target bundle found a failure:"; ls fuzz/artifacts/bundle; exit 1
fi
echo "fuzz smoke: all targets ran without a crash"
