#!/usr/bin/env bash
# Issue 17's scale figures in one run, each next to what it is compared with:
#   - 1,000,000 files of 1 KB: `mlsign hash` / `mlsign sign` vs `find | xargs sha256sum`, the
#     walk+stat and read floors, peak RSS; mlsign vs model_signing on a 100,000-file part;
#   - 1 × 1 GiB, 2 × 512 MiB and 20,000 small files vs model_signing (with each shape's floor);
#   - `sign --since` with nothing changed and after a README edit in a 2 GiB model;
#   - peak RSS of sign, verify, sign --since, hash --partition ×4 + sign --from-parts and
#     verify --partition over 100,000 files of 1 KB (`memory` suite; --memory-files N).
# The machine is shared: read the ratios (same interleaved rounds) and the load averages printed
# with each table. Needs ~5 GB free under --scale-dir (default /tmp); the tree is removed after.
# Extra args go to scripts/bench_signing.py (e.g. --scale-files 100000 --repeat 3).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --no-default-features --bin mlsign
OMS=${MODEL_SIGNING:-.venv/bin/model_signing}
if [ ! -x "$OMS" ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q -r scripts/deps/python/signing.txt
fi
mkdir -p .bench
cargo bench --locked --no-default-features --bench sha256_kernels 2>/dev/null | tail -n 1 > .bench/kernels.json
uptime
exec python3 scripts/bench_signing.py --suite shapes,incremental,scale,memory --shapes 1,2,6 \
  --model-signing "$OMS" "$@"
