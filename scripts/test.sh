#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what the tests need (Debian packages, a
# Python venv with the anchor tools), builds once and runs every test. Exits non-zero on any
# failure. Package lists live in scripts/deps/{apt,python}/*.txt, one file per area.
#
# Caches (under ${MLSIGN_CACHE:-$HOME/.cache/mlsign}): the Python venv (keyed by the hash of the
# requirement files and the Python version), the cargo target directory and the fuzz target
# directory. Cargo's own fingerprints decide what is stale, so a cache never changes a result,
# only the time; a fresh machine builds everything. MLSIGN_NO_CACHE=1 uses ./target and ./.venv.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
# A clean clone gains nothing from incremental compilation, only its overhead.
if [ "${CI:-}" = true ]; then export CARGO_INCREMENTAL=0; fi
t0=$(date +%s); tp=$t0; last=""
# Each step prints its start offset and, when the next begins, its own duration (README's table).
step() {
  local now; now=$(date +%s)
  [ -n "$last" ] && echo "== $last: $(( now - tp ))s"
  tp=$now; last="$*"
  echo "== [$(( now - t0 ))s] $*"
}

cache=${MLSIGN_CACHE:-$HOME/.cache/mlsign}
if [ "${MLSIGN_NO_CACHE:-}" = 1 ]; then
  venv=.venv
else
  mkdir -p "$cache"
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$cache/target}
  export MLSIGN_FUZZ_TARGET_DIR=${MLSIGN_FUZZ_TARGET_DIR:-$cache/fuzz-target}
fi

# 1. Debian packages (only when something is missing; apt-get update first).
pkgs=$(cat scripts/deps/apt/*.txt 2>/dev/null | sed 's/#.*//' | xargs -r echo)
if [ -n "$pkgs" ]; then
  missing=""
  for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  if [ -n "$missing" ]; then
    step "installing Debian packages:$missing"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
  fi
fi

# 2. Python venv with the tools the interop tests drive (model_signing, validators, ...).
reqs=(scripts/deps/python/*.txt)
want=$( (cat "${reqs[@]}"; python3 --version) | sha256sum | cut -c1-16)
if [ "${MLSIGN_NO_CACHE:-}" != 1 ]; then venv="$cache/venv-$want"; fi
stamp="$venv/.mlsign-reqs"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  step "creating the Python venv $venv"
  # A venv cannot be moved (its scripts name their path): build it in place, stamp it last.
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check $(printf -- '-r %s ' "${reqs[@]}")
  echo "$want" > "$stamp"
  # Old venvs of other requirement sets are only disk.
  if [ "${MLSIGN_NO_CACHE:-}" != 1 ]; then
    find "$cache" -maxdepth 1 -name 'venv-*' ! -name "venv-$want" -exec rm -rf {} +
  fi
fi
# Scripts and docs use ./.venv; point it at the cached one unless a real one is there.
if [ "$venv" != .venv ] && { [ -L .venv ] || [ ! -e .venv ]; }; then ln -sfn "$venv" .venv; fi
export MLSIGN_TEST_PYTHON="$PWD/$venv/bin/python"
case "$venv" in /*) export MLSIGN_TEST_PYTHON="$venv/bin/python" ;; esac
export PATH="$(dirname "$MLSIGN_TEST_PYTHON"):$PATH"

# 3. One build, every test (unit and integration tests driving the real binary), with the
#    optional ONNX loader (`onnx` feature: candle-onnx, needs protoc from step 1) built in.
step "cargo test"
cargo test --locked --all-targets --features onnx "$@"
# The wheel test runs maturin, whose cargo would race the other tests over target/debug: it runs
# here, alone, after them (tests/cli/dist.rs).
if [ $# = 0 ]; then
  step "cargo test: pip wheel (alone)"
  cargo test --locked --features onnx --test cli -- --ignored dist::
fi

# 4. Fuzz smoke over every parser of untrusted input: pickle VM, ZIP, formats, BOM/lineage,
#    bundles/keys/certificates. MLSIGN_FUZZ_SECS=0 skips it (seconds per target, default 15).
fuzz_secs=${MLSIGN_FUZZ_SECS:-15}
if [ "$fuzz_secs" != 0 ]; then
  step "fuzz smoke (${fuzz_secs}s per target)"
  scripts/fuzz-smoke.sh "$fuzz_secs"
fi
step "done"
