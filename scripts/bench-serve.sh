#!/usr/bin/env bash
# Load test of `mlsign serve` on loopback with wrk (Debian; scripts/deps/apt/serve.txt), against
# a real docker-registry (scripts/deps/apt/oci.txt) started here on 127.0.0.1:
#   warm      AdmissionReviews whose references are digest-pinned and cached (no registry call)
#   warm-tag  the same references by tag (one manifest GET per request to resolve the tag)
#   cold      cache disabled (--cache-ttl 0): every request verifies both references in the
#             registry (signature discovery, bundle, model manifest check)
# and the server's RSS sampled across a 60 s warm run (memory must stay flat).
#
# Usage: scripts/bench-serve.sh [--quick]      (MLSIGN=path/to/mlsign, default target/release
#        then target/debug; DURATION=10 seconds per wrk run; CONNECTIONS=32; THREADS=2)
#   BASELINE=path/to/other/mlsign  also run the warm scenarios with that binary, interleaved
#                                  with MLSIGN for ROUNDS rounds (default 3), same conditions
#   PRIO=-10                       run the server and wrk at this nice value (root), so that
#                                  other jobs on a shared machine disturb the figures less
#   LOGS=1                         log every decision (the production default) instead of --quiet
#   WARM_ONLY=1                    skip the memory and cold runs
# Prints a Markdown table (and the load average before each run). Figures in README come from
# this script.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
MLSIGN=${MLSIGN:-}
if [ -z "$MLSIGN" ]; then
  for c in "$ROOT/target/release/mlsign" "$ROOT/target/debug/mlsign"; do
    [ -x "$c" ] && MLSIGN=$c && break
  done
fi
[ -x "${MLSIGN:-}" ] || { echo "build mlsign first (cargo build --release)" >&2; exit 2; }
for t in wrk docker-registry openssl curl; do
  command -v "$t" >/dev/null || { echo "$t is missing: apt-get install -y \$(grep -hv '^#' scripts/deps/apt/serve.txt scripts/deps/apt/oci.txt)" >&2; exit 2; }
done
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
BASELINE=${BASELINE:-}
PRIO=${PRIO:-}
RUN=()
[ -n "$PRIO" ] && RUN=(nice -n "$PRIO")
QUIET=--quiet
[ -n "${LOGS:-}" ] && QUIET=
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
MEMORY_SECS=60
[ "${1:-}" = "--quick" ] && { DURATION=3; MEMORY_SECS=10; }

W=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$W"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

# Registry.
RPORT=$(free_port)
cat > "$W/registry.yml" <<EOF
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $W/storage}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$RPORT}
EOF
docker-registry serve "$W/registry.yml" >/dev/null 2>&1 & PIDS+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$RPORT/v2/" >/dev/null && break; sleep 0.1; done
REG=127.0.0.1:$RPORT
export DOCKER_CONFIG=/nonexistent-mlsign-bench

# Content: a signed model artifact (OMS signature, verified by manifest) mounted as a volume and
# an artifact signed image-style (cosign-compatible referrer) used as the container image.
"$MLSIGN" keygen --out "$W/release" >/dev/null
mkdir -p "$W/model" "$W/app"
head -c 1048576 /dev/urandom > "$W/model/model.safetensors"
echo '{"model_type":"bert"}' > "$W/model/config.json"
echo 'app' > "$W/app/app.txt"
"$MLSIGN" push "$W/model" "oci://$REG/team/bert:v1" --sign --key "$W/release.pem" >/dev/null
"$MLSIGN" push "$W/app" "oci://$REG/team/app:v1" >/dev/null
"$MLSIGN" sign "oci://$REG/team/app:v1" --key "$W/release.pem" >/dev/null
digest() { "$MLSIGN" verify "oci://$REG/$1" --key "$W/release.pub" --format json | python3 -c 'import json,sys;print(json.load(sys.stdin)["digest"])'; }
BERT=$(digest team/bert:v1)
APP=$(digest team/app:v1)

cat > "$W/policy.toml" <<EOF
schema = "mlsign-policy/1"
subjects = ["oci://$REG/team/**"]
[[authorities]]
name = "release"
key = "release.pub"
[requirements.signature]
EOF

# TLS.
( cd "$W"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.crt -subj /CN=bench-ca -days 1 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' > ext.cnf
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout tls.key -out tls.csr -subj /CN=127.0.0.1 2>/dev/null
  openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out tls.crt -days 1 -extfile ext.cnf 2>/dev/null )

start_server() { # $1 = extra args, $2 = binary (default $MLSIGN); sets SPORT, SPID
  SPORT=$(free_port)
  # shellcheck disable=SC2086
  "${RUN[@]}" "${2:-$MLSIGN}" serve --policy "$W/policy.toml" --tls-cert "$W/tls.crt" --tls-key "$W/tls.key" \
    --listen "127.0.0.1:$SPORT" $QUIET $1 2>"$W/serve.$SPORT.log" & SPID=$!
  PIDS+=("$SPID")
  for _ in $(seq 200); do curl -sf --cacert "$W/ca.crt" "https://127.0.0.1:$SPORT/healthz" >/dev/null && return; sleep 0.05; done
  echo "server did not start" >&2; cat "$W/serve.$SPORT.log" >&2; exit 2
}
stop_server() { kill "$SPID" 2>/dev/null || true; wait "$SPID" 2>/dev/null || true; }

review() { # $1 container image, $2 volume image
  cat <<EOF
{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"bench","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"namespace":"ml","operation":"CREATE","userInfo":{"username":"bench"},"object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"app","image":"$1"}],"volumes":[{"name":"weights","image":{"reference":"$2"}}]}},"dryRun":false}}
EOF
}
lua() { # $1 body file
  printf 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nlocal f = io.open("%s")\nwrk.body = f:read("*a")\nf:close()\n' "$1" > "$1.lua"
  # Warm answers were checked to be allows before the run (check_allowed) and come from the cache.
  # Cold ones are counted: a deny (a registry error, a deadline) must not flatter the figures.
  cat >> "$1.lua" <<'LUA'
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) denied = 0 end
LUA
  # Reading every body costs wrk CPU on the same 2 cores: only where answers may vary (cold).
  [ -n "${2:-}" ] && cat >> "$1.lua" <<'LUA'
function response(status, headers, body)
  if not string.find(body, '"allowed":true', 1, true) then denied = denied + 1 end
end
LUA
  cat >> "$1.lua" <<'LUA'
function done(summary, latency, requests)
  local d = 0
  for _, t in ipairs(threads) do d = d + t:get("denied") end
  io.write(string.format("RESULT %.0f %.2f %.2f %d %d\n", summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.errors.status + d,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
LUA
}
run_wrk() { # $1 body file, $2 seconds -> "rps p50 p99 status_errors socket_errors"
  "${RUN[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$2"s -s "$1.lua" "https://127.0.0.1:$SPORT/validate" | awk '/^RESULT/ {print $2, $3, $4, $5, $6}'
}
check_allowed() {
  curl -s --cacert "$W/ca.crt" -H 'Content-Type: application/json' --data-binary @"$1" "https://127.0.0.1:$SPORT/validate" | grep -q '"allowed":true' \
    || { echo "the benchmark review is not allowed:"; curl -sS --cacert "$W/ca.crt" -H "Content-Type: application/json" --data-binary @"$1" "https://127.0.0.1:$SPORT/validate"; tail -5 "$W/serve.$SPORT.log"; exit 2; }
}

review "$REG/team/app@$APP" "$REG/team/bert@$BERT" > "$W/pinned.json"; lua "$W/pinned.json"
cp "$W/pinned.json" "$W/cold.json"; lua "$W/cold.json" check
review "$REG/team/app:v1" "$REG/team/bert:v1" > "$W/tags.json"; lua "$W/tags.json"

load() { cut -d' ' -f1 /proc/loadavg; }
# The server's own view: the bucket holding the 99th percentile of /validate handler time
# (mlsign_admission_duration_seconds; request read to answer written, no TLS or queueing).
handler_p99() {
  curl -s --cacert "$W/ca.crt" "https://127.0.0.1:$SPORT/metrics" | awk -F'[ "]' '
    /^mlsign_admission_duration_seconds_bucket\{endpoint="validate"/ { le[++n] = $4; c[n] = $NF }
    END { t = c[n]; for (i = 1; i <= n; i++) if (c[i] >= 0.99 * t) { printf "<= %s s\n", le[i]; exit } }'
}
echo "mlsign: $MLSIGN ($("$MLSIGN" --version)); wrk -t$THREADS -c$CONNECTIONS, ${DURATION}s per run; $(nproc) cores; nice ${PRIO:-0}; logs: ${QUIET:-every decision}"
[ -n "$BASELINE" ] && echo "baseline: $BASELINE"
echo
echo "| scenario | admissions/s | p50 ms | p99 ms | not allowed / non-2xx | socket errors | load | handler p99 |"
echo "|---|---|---|---|---|---|---|---|"

if [ -n "$BASELINE" ]; then
  # Interleaved, so that a change in the machine's load hits both binaries alike.
  for round in $(seq "$ROUNDS"); do
    for which in baseline mlsign; do
      bin=$MLSIGN; [ "$which" = baseline ] && bin=$BASELINE
      start_server "" "$bin"
      check_allowed "$W/pinned.json"
      l=$(load); read -r rps p50 p99 se ce < <(run_wrk "$W/pinned.json" "$DURATION")
      echo "| $which: warm, digest-pinned (round $round) | $rps | $p50 | $p99 | $se | $ce | $l | $(handler_p99) |"
      check_allowed "$W/tags.json"
      l=$(load); read -r rps p50 p99 se ce < <(run_wrk "$W/tags.json" "$DURATION")
      echo "| $which: warm, by tag (round $round) | $rps | $p50 | $p99 | $se | $ce | $l | (cumulative) |"
      stop_server
    done
  done
fi
[ -n "${WARM_ONLY:-}" ] && exit 0

start_server ""
check_allowed "$W/pinned.json"
read -r rps p50 p99 se ce < <(run_wrk "$W/pinned.json" "$DURATION")
echo "| warm, digest-pinned (cache hit) | $rps | $p50 | $p99 | $se | $ce | $(load) |"
check_allowed "$W/tags.json"
read -r rps p50 p99 se ce < <(run_wrk "$W/tags.json" "$DURATION")
echo "| warm, by tag (resolve in registry + cache hit) | $rps | $p50 | $p99 | $se | $ce | $(load) |"

# Memory across a long warm run.
RSS0=$(ps -o rss= -p "$SPID")
( run_wrk "$W/pinned.json" "$MEMORY_SECS" > "$W/mem.wrk" ) &
WRK=$!
RSS_MAX=$RSS0; RSS_SAMPLES=""
for _ in $(seq $((MEMORY_SECS / 5))); do
  sleep 5
  r=$(ps -o rss= -p "$SPID"); RSS_SAMPLES="$RSS_SAMPLES $((r / 1024))"
  [ "$r" -gt "$RSS_MAX" ] && RSS_MAX=$r
done
wait $WRK
read -r rps p50 p99 se ce < "$W/mem.wrk"
echo "| warm ${MEMORY_SECS} s (memory run) | $rps | $p50 | $p99 | $se | $ce | $(load) |"
stop_server

start_server "--cache-ttl 0"
check_allowed "$W/pinned.json"
# Sequential cold verifications: the latency of one admission that verifies both references.
: > "$W/cold.times"
for _ in $(seq 30); do
  curl -s -o /dev/null -w '%{time_total}\n' --cacert "$W/ca.crt" -H 'Content-Type: application/json' \
    --data-binary @"$W/pinned.json" "https://127.0.0.1:$SPORT/validate" >> "$W/cold.times"
done
read -r c50 c99 < <(sort -n "$W/cold.times" | awk '{a[NR]=$1} END {m=int(NR*0.5); if (m<1) m=1; n=int(NR*0.99); if (n<1) n=1; printf "%.1f %.1f\n", a[m]*1000, a[n]*1000}')
echo "| cold, sequential (2 references verified per request) | — | $c50 | $c99 | — | — | $(load) |"
read -r rps p50 p99 se ce < <(run_wrk "$W/cold.json" "$DURATION")
echo "| cold, concurrent | $rps | $p50 | $p99 | $se | $ce | $(load) |"
stop_server

echo
echo "RSS (MiB): start $((RSS0 / 1024)), every 5 s:$RSS_SAMPLES; max $((RSS_MAX / 1024))"
