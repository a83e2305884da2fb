#!/usr/bin/env bash
# Short fuzz smoke run of the scan parsers (pickle VM, ZIP reader, all formats), for CI.
# Usage: scripts/scan-fuzz-smoke.sh [SECONDS_PER_TARGET]   (default 30; 4 targets)
# Needs cargo-fuzz (installed from crates.io if missing). The toolchain here is stable Rust:
# RUSTC_BOOTSTRAP=1 lets it accept the -Z flags cargo-fuzz passes (sanitizer, coverage).
# Seeds: the committed fixtures plus hand-made pickles; crashes land in fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
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
seeds=fuzz/seeds
mkdir -p "$seeds/pickle" "$seeds/zip" "$seeds/formats" "$seeds/containers"
cp testdata/scan/torch/* "$seeds/zip/"
cp testdata/scan/torch/* "$seeds/formats/"
cp testdata/scan/torch/* "$seeds/containers/"
cp testdata/scan/h5/* "$seeds/containers/"
printf '{{ x|attr("\\x5f\\x5fcla"~"ss\\x5f\\x5f") }}{%% for m in messages %%}{{ m.content }}{%% endfor %%}' > "$seeds/containers/template"
printf '{%%- generation -%%}{{ x["\\N{LOW LINE}"] ~ "\\N{EM DASH}" }}{%% endgeneration %%}' > "$seeds/containers/template-hf"
printf '\x80\x04(((]]]}}}q\x00h\x00h\x00\x80\x04N)R.' > "$seeds/pickle/budget"
printf '{"class_name": "Sequential", "config": {"layers": [NaN, "\\ud800"]}}' > "$seeds/containers/config.json"
printf 'cos\nsystem\n(S'"'"'id'"'"'\ntR.' > "$seeds/pickle/p0"
printf '\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x8c\x06system\x93\x8c\x02id\x85R.' > "$seeds/pickle/p4"
printf '\x93NUMPY\x01\x00\x16\x00{'"'"'descr'"'"': '"'"'|O'"'"'}   \n\x80\x02N.' > "$seeds/formats/npy"
for t in pickle zip formats containers; do
  echo "== fuzzing $t for ${secs}s"
  cargo fuzz run "${fuzz_opts[@]}" "$t" "$seeds/$t" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -max_len=1048576 -timeout=10 -print_final_stats=1 2>&1 \
    | grep -E "stat::number_of_executed_units|stat::peak_rss_mb|ERROR|panicked|SUMMARY" || true
  if ls fuzz/artifacts/"$t"/crash-* fuzz/artifacts/"$t"/oom-* fuzz/artifacts/"$t"/timeout-* >/dev/null 2>&1; then
    echo "fuzz target $t found a failure:"; ls fuzz/artifacts/"$t"; exit 1
  fi
done
echo "fuzz smoke: no crashes"
