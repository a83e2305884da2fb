#!/usr/bin/env bash
# Registry figures for README / docs/oci.md: sign + verify of an image reference, manifest-only
# verify of a model artifact (bytes read), push and pull of a 1 GiB model against `cp` of the
# same files, all against a local Debian docker-registry (distribution 2.8) on 127.0.0.1.
#
#   scripts/bench-oci.sh [MLSIGN_BIN] [SIZE_MIB]
#
# Default binary: target/release/mlsign (build it with
# `cargo build --release --no-default-features`: the registry code needs no ML stack).
set -euo pipefail
BIN=${1:-target/release/mlsign}
SIZE_MIB=${2:-1024}
command -v docker-registry >/dev/null && command -v skopeo >/dev/null || {
  echo "needs docker-registry and skopeo (scripts/deps/apt/oci.txt)" >&2; exit 2; }
BIN=$(realpath "$BIN")
W=$(mktemp -d)
REG_PID=
cleanup() { [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$W/config.yml" <<YML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $W/storage}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$PORT}
YML
docker-registry serve "$W/config.yml" >/dev/null 2>&1 &
REG_PID=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/v2/" >/dev/null && break; sleep 0.1; done
R="oci://127.0.0.1:$PORT"

t() { # seconds of wall time for "$@"
  local s e; s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N)
  python3 -c "print(f'{$e-$s:.2f}')"
}

"$BIN" keygen --out "$W/k" >/dev/null

# An image: a 1-layer layout pushed with skopeo.
mkdir -p "$W/img/blobs/sha256"
python3 - "$W/img" <<'PY'
import hashlib, json, os, sys, io, tarfile
d = sys.argv[1]
def put(b):
    h = hashlib.sha256(b).hexdigest(); open(f"{d}/blobs/sha256/{h}", "wb").write(b); return "sha256:" + h
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w") as t:
    data = b"hello\n"; ti = tarfile.TarInfo("hello.txt"); ti.size = len(data); t.addfile(ti, io.BytesIO(data))
layer = buf.getvalue(); ld = put(layer)
cfg = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [ld]}}).encode()
m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(cfg), "size": len(cfg)},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": len(layer)}]}).encode()
md = put(m)
open(f"{d}/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
open(f"{d}/index.json", "w").write(json.dumps({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": len(m), "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}))
PY
skopeo --insecure-policy copy --quiet --dest-tls-verify=false "oci:$W/img:v1" "docker://127.0.0.1:$PORT/bench/app:v1"
SIGN_IMG=$(t "$BIN" sign "$R/bench/app:v1" --key "$W/k.pem")
VERIFY_IMG=$(t "$BIN" verify "$R/bench/app:v1" --key "$W/k.pub")

# A model: 4 files of SIZE_MIB/4 MiB random data plus a config.
mkdir -p "$W/model"
for i in 0 1 2 3; do head -c $((SIZE_MIB / 4))M /dev/urandom > "$W/model/model-0000$i.safetensors"; done
echo '{"architectures":["LlamaForCausalLM"],"model_type":"llama","torch_dtype":"bfloat16"}' > "$W/model/config.json"
sync
CP=$(t cp -r "$W/model" "$W/cp-copy")
rm -rf "$W/cp-copy"
PUSH=$(t "$BIN" push "$W/model" "$R/bench/model:v1" --sign --key "$W/k.pem")
VERIFY_MODEL=$(t "$BIN" verify "$R/bench/model:v1" --key "$W/k.pub")
READ=$("$BIN" verify "$R/bench/model:v1" --key "$W/k.pub" --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["bytes_read"])')
PULL=$(t "$BIN" pull "$R/bench/model:v1" "$W/pulled")
rm -rf "$W/pulled"
CP2=$(t cp -r "$W/model" "$W/cp-copy")
MB=$(python3 -c "print($SIZE_MIB * 1048576 / 1e6)")
rate() { python3 -c "print(f'{$MB/$1:.0f}')"; }
cat <<EOF
| operation (local docker-registry 2.8.2, 127.0.0.1) | wall s | MB/s |
|---|---|---|
| sign image reference (resolve, bundle, referrer, tag-schema index) | $SIGN_IMG | |
| verify image reference | $VERIFY_IMG | |
| push ${SIZE_MIB} MiB model (ModelPack, --sign) | $PUSH | $(rate "$PUSH") |
| verify model artifact, manifest only ($READ bytes read) | $VERIFY_MODEL | |
| pull ${SIZE_MIB} MiB model (digest-checked, atomic) | $PULL | $(rate "$PULL") |
| cp -r of the same files (before / after) | $CP / $CP2 | $(rate "$CP") / $(rate "$CP2") |
EOF
