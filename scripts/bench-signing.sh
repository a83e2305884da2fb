#!/usr/bin/env bash
# Builds mlsign (release), installs the anchors (model_signing in .venv, b3sum from crates.io
# into .bench/tools) and runs the side-by-side signing benchmark. Extra args go to
# scripts/bench_signing.py (e.g. --size-mb 512 --repeat 5, --suite shapes,incremental,large,
# --large-files 1000000). The ML stack (behave) is not needed here, so it is not built.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --no-default-features --bin mlsign
mkdir -p .bench
if [ ! -x .venv/bin/model_signing ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q -r scripts/deps/python/signing.txt
fi
if ! command -v b3sum >/dev/null && [ ! -x .bench/tools/bin/b3sum ]; then
  cargo install --locked b3sum --version 1.8.7 --root .bench/tools
fi
# The SHA-256 ceiling of this CPU (in-memory kernels), read by the table's last section.
cargo bench --locked --no-default-features --bench sha256_kernels 2>/dev/null | tail -n 1 > .bench/kernels.json
exec python3 scripts/bench_signing.py "$@"
