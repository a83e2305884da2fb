#!/usr/bin/env bash
# Peak memory of `mlsign scan` on decompression and ZIP bombs (issue 10 §9): every payload is
# streamed, so peak RSS must stay under 256 MiB whatever the input inflates to.
# Usage: scripts/scan-bomb-rss.sh [MLSIGN_BINARY]   (default target/debug/mlsign)
# Needs python3 and /usr/bin/time (GNU time). Prints one line per bomb: verdict, peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/debug/mlsign}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
python3 - "$dir" <<'PY'
import bz2, gzip, io, lzma, os, struct, sys, zipfile, zlib
d = sys.argv[1]
GiB = 1 << 30
chunk = 1 << 20

def stream(comp, n, byte=b"\0"):
    c = byte * chunk
    out = [comp.compress(c) for _ in range(n // chunk)]
    out.append(comp.flush())
    return b"".join(out)

def zip_member(name, n, byte=b"\0"):
    raw = stream(zlib.compressobj(9, zlib.DEFLATED, -15), n, byte)
    crc = 0
    c = byte * chunk
    for _ in range(n // chunk):
        crc = zlib.crc32(c, crc)
    nm = name.encode()
    size32 = min(n, 0xFFFFFFFF)
    lh = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 8, 0, 0, crc, len(raw), size32, len(nm), 0) + nm
    cd = struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, crc, len(raw), size32,
                     len(nm), 0, 0, 0, 0, 0, 0) + nm
    eocd = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 1, 1, len(cd), len(lh) + len(raw), 0)
    return lh + raw + cd + eocd

open(f"{d}/zip-1GiB-zeros.zip", "wb").write(zip_member("zeros.bin", GiB))
open(f"{d}/zip-1GiB-pickle-marks.zip", "wb").write(zip_member("data.pkl", GiB, b"("))
open(f"{d}/gzip-1GiB-zeros.gz", "wb").write(stream(zlib.compressobj(9, zlib.DEFLATED, 31), GiB))
open(f"{d}/zlib-1GiB-pickle-marks.joblib", "wb").write(stream(zlib.compressobj(9), GiB, b"("))
# 48 MiB of EMPTY_LIST opcodes: held (it is a pickle) and replayed by the VM.
open(f"{d}/zlib-48MiB-empty-lists.joblib", "wb").write(stream(zlib.compressobj(9), 48 << 20, b"]"))
open(f"{d}/xz-1GiB-zeros.xz", "wb").write(stream(lzma.LZMACompressor(), GiB))
open(f"{d}/bz2-256MiB-zeros.bz2", "wb").write(stream(bz2.BZ2Compressor(9), GiB // 4))
# A bomb inside a bomb: a ZIP (stored) holding the 1 GiB deflated ZIP.
inner = open(f"{d}/zip-1GiB-zeros.zip", "rb").read()
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
    z.writestr("inner.zip", inner)
open(f"{d}/zip-in-zip-1GiB.zip", "wb").write(buf.getvalue())
PY
printf '%-32s %12s %12s %10s\n' file "input bytes" verdict "peak RSS"
for f in "$dir"/*; do
  out=$(/usr/bin/time -v "$bin" scan --format json "$f" 2>"$dir/time.txt" || true)
  rss=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$dir/time.txt")
  verdict=$(printf '%s' "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["files"][0]["verdict"])' 2>/dev/null || echo "?")
  printf '%-32s %12s %12s %7s MiB\n' "$(basename "$f")" "$(stat -c %s "$f")" "$verdict" "$((rss / 1024))"
  if [ "$rss" -ge $((256 * 1024)) ]; then over="$over $(basename "$f")"; fi
done
if [ -n "${over:-}" ]; then echo "peak RSS over 256 MiB on:$over"; exit 1; fi
