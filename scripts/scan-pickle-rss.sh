#!/usr/bin/env bash
# Peak memory of `mlsign scan` on pickles built to make the VM hold as much as possible per input
# byte (issue 10, memory budget). Each is a joblib-style zlib file of up to 48 MiB of opcodes, so
# the payload is held and replayed; the VM charges every value it keeps against its budget
# (src/scan/pickle/vm.rs, VM_BUDGET) and stops as unscannable (PKL021), so peak RSS must stay
# under 256 MiB whatever the opcodes are.
# With --large, it also scans inputs far larger than memory allows to hold (generated, ~3.5 GiB of
# disk): a 1 GiB raw pickle of one bytes object, a 1 GiB raw pickle of many small opcodes, a
# joblib.dump of a 256 MiB array compressed with zlib (decompresses past the 192 MiB in-memory
# limit), and the 1 GiB torch checkpoint of scripts/scan-compare.py. These are streamed into the VM
# through a bounded window (src/scan/pickle/input.rs) and report throughput (MB/s) too.
# Usage: scripts/scan-pickle-rss.sh [--large] [MLSIGN_BINARY...]   (default target/debug/mlsign)
# Needs python3 and /usr/bin/time (GNU time); --large needs numpy and joblib in $PYTHON (default
# .venv/bin/python, else python3). Prints one line per input and binary: verdict, seconds, MB/s,
# peak RSS; fails when the first binary peaks at 256 MiB or more on any input.
set -euo pipefail
cd "$(dirname "$0")/.."
large=""
if [ "${1:-}" = "--large" ]; then large=1; shift; fi
bins=("$@")
[ ${#bins[@]} -gt 0 ] || bins=(target/debug/mlsign)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
python3 - "$dir" <<'PY'
import struct, sys, zlib
d = sys.argv[1]
N = 48 << 20

def write(name, body):
    """body: opcodes after PROTO 4; padded with nothing, ended with STOP."""
    data = b"\x80\x04" + body + b"."
    open(f"{d}/{name}.joblib", "wb").write(zlib.compress(data, 9))

def flood(op, n=N):
    return op * (n // len(op))

write("empty-list-flood", flood(b"]"))
write("empty-dict-flood", flood(b"}"))
write("empty-tuple-flood", flood(b")"))
write("none-flood", flood(b"N"))
write("mark-flood", flood(b"("))
write("list-mark-flood", flood(b"](")) 
# BININT values are distinct ints (immediate ids; only the stack holds them).
write("binint-flood", b"".join(b"J" + struct.pack("<i", i) for i in range(N // 5)))
# Large ints that do not fit an immediate id: a slot each.
write("binint8-flood", b"".join(b"\x8a\x08" + struct.pack("<q", (1 << 40) + i) for i in range(N // 10)))
# One value memoised under N/5 distinct keys.
write("memo-put-flood", b"N" + b"".join(b"r" + struct.pack("<I", i) for i in range(N // 5)))
# Sparse memo keys (hash map entries), text PUT with 1 KiB-digit keys (the big-key map).
write("memo-sparse-flood", b"N" + b"".join(b"r" + struct.pack("<I", (i * 7919 + (1 << 27)) & 0xFFFFFFFF) for i in range(N // 5)))
key = b"9" * 1024
write("memo-bigkey-flood", b"N" + b"".join(b"p" + key + str(i).encode() + b"\n" for i in range(N // 1100)))
# Distinct short strings (a string slot each) and long BINUNICODE chains.
write("short-string-flood", b"".join(b"\x8c\x10" + b"%016d" % i for i in range(N // 18)))
write("binunicode-chain", b"".join(b"X" + struct.pack("<I", 4000) + (b"%04d" % (i % 10000)) * 1000 for i in range(N // 4005)))
# GET of one value, over and over (DUP-like growth of the stack).
write("get-flood", b"]q\x00" + flood(b"h\x00", N - 3))
# A list of 64 Ki items appended to itself through the memo: each APPENDS copies the items.
base = b"]q\x00(" + b"N" * 65536 + b"e"
write("appends-blowup", base + flood(b"h\x00(h\x00e0", N - len(base)))
# Deep nesting: list in list in list… (MARK + EMPTY_LIST + APPENDS at the end).
depth = N // 4
write("deep-nesting", b"]" + b"(]" * depth + b"e" * depth)
# Distinct globals (a recorded global and its report each) and misplaced PROTO anomalies.
write("global-flood", b"".join(b"c__main__\nC%d\n0" % i for i in range(N // 18)))
write("proto-anomaly-flood", b"N" + flood(b"\x80\x04", N - 1))
# Calls on a non-global (one call site each).
write("reduce-flood", b"N" + flood(b"N)R", N - 1))
PY
if [ -n "$large" ]; then
  py=${PYTHON:-}
  [ -n "$py" ] || { [ -x .venv/bin/python ] && py=.venv/bin/python || py=python3; }
  "$py" - "$dir" <<'PY'
import importlib.util, os, struct, sys
d = sys.argv[1]
MiB = 1 << 20
# One BINBYTES8 of 1 GiB (less its 12 opcode bytes): nothing to hold but the window.
n = (1 << 30) - 12
with open(f"{d}/big-bytes-1GiB.pkl", "wb") as f:
    f.write(b"\x80\x04\x8e" + struct.pack("<Q", n - 0))
    z = b"\0" * MiB
    left = n
    while left:
        k = min(left, MiB)
        f.write(z[:k])
        left -= k
    f.write(b".")
# Many small opcodes: 99,000 stacked streams (under the 100,000-stream limit), each a list of
# 5,419 BININT1 (under 1 GiB, which the whole-read path still accepted).
one = b"\x80\x04](" + b"K\x07" * 5419 + b"e."
with open(f"{d}/small-ops-1GiB.pkl", "wb") as f:
    for _ in range(99):
        f.write(one * 1000)
# joblib.dump of a 256 MiB float64 array, zlib: more than the 192 MiB held in memory.
try:
    import joblib, numpy as np
    a = (np.arange(32 * MiB, dtype=np.float64) % 1000.0) * 0.5
    joblib.dump({"w": a, "meta": [1, 2, 3]}, f"{d}/joblib-256MiB.zlib.joblib", compress=("zlib", 3))
except ImportError as e:
    print(f"skipping the joblib case: {e}", file=sys.stderr)
# The README's 1 GiB torch checkpoint (scripts/scan-compare.py).
spec = importlib.util.spec_from_file_location("scan_compare", "scripts/scan-compare.py")
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
m.make_big_checkpoint(f"{d}/torch-1GiB.pt")
PY
fi
printf '%-26s %-22s %12s %12s %8s %9s %10s\n' file binary "input bytes" verdict seconds "MB/s" "peak RSS"
over=""
for f in "$dir"/*.joblib "$dir"/*.pkl "$dir"/*.pt; do
  [ -e "$f" ] || continue
  for bin in "${bins[@]}"; do
    out=$(/usr/bin/time -v "$bin" scan --format json "$f" 2>"$dir/time.txt" || true)
    rss=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$dir/time.txt")
    secs=$(awk '/Elapsed \(wall clock\)/ {print $NF}' "$dir/time.txt")
    verdict=$(printf '%s' "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["files"][0]["verdict"])' 2>/dev/null || echo "?")
    size=$(stat -c %s "$f")
    mbs=$(python3 -c 'import sys; p=sys.argv[2].split(":"); s=sum(float(x)*60**i for i,x in enumerate(reversed(p))); print(f"{int(sys.argv[1])/1e6/max(s,0.005):.0f}")' "$size" "$secs")
    printf '%-26s %-22s %12s %12s %8s %9s %6s MiB\n' "$(basename "$f")" "$(basename "$bin")" "$size" "$verdict" "$secs" "$mbs" "$((rss / 1024))"
    if [ "$bin" = "${bins[0]}" ] && [ "$rss" -ge $((256 * 1024)) ]; then over="$over $(basename "$f")"; fi
  done
done
if [ -n "$over" ]; then echo "peak RSS over 256 MiB on:$over"; exit 1; fi
