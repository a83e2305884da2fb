#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what the tests need (Debian packages, a
# Python venv with the anchor tools), builds once and runs every test. Exits non-zero on any
# failure. Package lists live in scripts/deps/{apt,python}/*.txt, one file per area.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
# A clean clone gains nothing from incremental compilation, only its overhead.
if [ "${CI:-}" = true ]; then export CARGO_INCREMENTAL=0; fi

# 1. Debian packages (only when something is missing; apt-get update first).
pkgs=$(cat scripts/deps/apt/*.txt 2>/dev/null | sed 's/#.*//' | xargs -r echo)
if [ -n "$pkgs" ]; then
  missing=""
  for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  if [ -n "$missing" ]; then
    echo "== installing Debian packages:$missing"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
  fi
fi

# 2. Python venv with the tools the interop tests drive (model_signing, validators, ...).
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  python3 -m venv .venv
fi
reqs=(scripts/deps/python/*.txt)
stamp=.venv/.mlsign-reqs
want=$(cat "${reqs[@]}" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "== installing Python test packages"
  .venv/bin/pip install -q --disable-pip-version-check $(printf -- '-r %s ' "${reqs[@]}")
  echo "$want" > "$stamp"
fi
export MLSIGN_TEST_PYTHON="$PWD/.venv/bin/python"
export PATH="$PWD/.venv/bin:$PATH"

# 3. One build, every test (unit, integration driving the real binary, doc tests), with the
#    optional ONNX loader (`onnx` feature: candle-onnx, needs protoc from step 1) built in.
echo "== cargo test"
cargo test --locked --all-targets --features onnx "$@"
cargo test --locked --doc --features onnx

# 4. Fuzz smoke over every parser of untrusted input: pickle VM, ZIP, formats, BOM/lineage,
#    bundles/keys/certificates. MLSIGN_FUZZ_SECS=0 skips it (seconds per target, default 15).
fuzz_secs=${MLSIGN_FUZZ_SECS:-15}
if [ "$fuzz_secs" != 0 ]; then
  echo "== fuzz smoke (${fuzz_secs}s per target)"
  scripts/fuzz-smoke.sh "$fuzz_secs"
fi
