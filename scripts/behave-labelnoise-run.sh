#!/usr/bin/env bash
# Issue 15 §4: score a scripts/behave-bench-gen.py population with `mlsign behave` for
# scripts/behave-labelnoise-report.py. The suite is the generator's with
# stat = "srcclass_focused_excess" and no threshold (the reports carry both statistics as
# companions). Report half (odd model indices) first, then the development half; 30 mixed
# candidates per run and one JSON each, so a partial run is a balanced sample.
#   scripts/behave-labelnoise-run.sh .bench/pop0 target/debug/mlsign
#   python scripts/behave-labelnoise-report.py --dir .bench/pop0 --scores .bench/pop0/runs/*.json
set -euo pipefail
POP=$(cd "$1" && pwd)
BIN=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
cd "$POP"
sed 's/stat = "srcclass_median_excess"/stat = "srcclass_focused_excess"/; /^threshold = /d' suite.toml > suite-focused.toml
mkdir -p runs
for h in 1 0; do
  list=()
  for i in $(seq 0 9999); do
    n=$(printf %04d "$i")
    [ -d "cal-neg/$n" ] || [ -d "test-neg/$n" ] || [ -d "test-pos/$n" ] || break
    [ $((i % 2)) -eq $h ] || continue
    for d in cal-neg test-neg test-pos; do [ -d "$d/$n" ] && list+=("$d/$n"); done
  done
  for ((s = 0; s < ${#list[@]}; s += 30)); do
    out=runs/h$h-$(printf %03d $s).json
    [ -s "$out" ] && continue
    args=()
    for c in "${list[@]:s:30}"; do args+=(--candidate "$c"); done
    set +e
    nice -n 19 "$BIN" behave --baseline base --suite suite-focused.toml "${args[@]}" --format json --no-progress > "$out.tmp"
    rc=$?
    set -e
    [ "$rc" -le 1 ] || { echo "mlsign behave failed ($rc)" >&2; exit "$rc"; }
    mv "$out.tmp" "$out"
  done
done
