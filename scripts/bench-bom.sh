#!/usr/bin/env bash
# Builds mlsign (release), installs the anchor (cyclonedx-python-lib in .venv) and runs the
# side-by-side ML-BOM benchmark. Extra args go to scripts/bench_bom.py (e.g. --files 50000).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked
if ! .venv/bin/python -c 'import cyclonedx.validation.json' 2>/dev/null; then
  python3 -m venv .venv
  .venv/bin/pip install -q -r scripts/deps/python/bom.txt
fi
exec python3 scripts/bench_bom.py "$@"
