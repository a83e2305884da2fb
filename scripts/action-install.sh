#!/usr/bin/env bash
# The GitHub Action's installer (action.yml, step "Install mlsign").
#
# Inputs (environment): INPUT_MLSIGN (a binary already on the runner: used as is), INPUT_VERSION,
# ACTION_PATH, OS_NAME/OS_ARCH (runner.os/runner.arch), RUNNER_TEMP, GITHUB_OUTPUT.
# Pins: $ACTION_PATH/release/pins.txt (version, base_url, sha256 per target) and the release
# public key $ACTION_PATH/release/mlsign-release.pub, both committed with the action, so pinning
# the action by commit pins the binary.
#
# A release binary is installed only when
#   1. its SHA-256 equals the pinned one, and
#   2. its bundle (.sig) is a DSSE signature by the pinned release key over a model_signing
#      statement whose one resource is exactly those bytes.
# Step 2 is checked with jq and openssl (present on GitHub's runners), not with the downloaded
# binary, which could lie about itself. Anything else (download error, mismatch, a bundle for
# other bytes or by another key) installs nothing and exits 2. Without a pinned checksum for the
# runner's platform, mlsign is built from the action's own source with cargo.
set -euo pipefail

fail() { echo "::error title=mlsign install::$*"; exit 2; }
out() { echo "$1=$2" >> "${GITHUB_OUTPUT:?}"; }

if [ -n "${INPUT_MLSIGN:-}" ]; then
    if [ ! -x "$INPUT_MLSIGN" ] || [ -d "$INPUT_MLSIGN" ]; then
        fail "the mlsign input ($INPUT_MLSIGN) is not an executable file"
    fi
    bin="$(cd "$(dirname "$INPUT_MLSIGN")" && pwd)/$(basename "$INPUT_MLSIGN")"
    echo "mlsign: using $bin (provided)"
    "$bin" --version
    out mlsign-path "$bin"
    out install-method provided
    exit 0
fi

pins="$ACTION_PATH/release/pins.txt"
[ -f "$pins" ] || fail "$pins is missing: the action is incomplete"
pin() { # the value of KEY in pins.txt (KEY=VALUE lines; # comments)
    sed -n "s/^$1=//p" "$pins" | head -n1
}
pinned_version=$(pin version)
if [ "${INPUT_VERSION:-}" != "$pinned_version" ]; then
    fail "version ${INPUT_VERSION:-} has no checksum pinned in this action (it pins $pinned_version); use the action at tag v${INPUT_VERSION:-} or pass the mlsign input"
fi
case "${OS_NAME:-}-${OS_ARCH:-}" in
    Linux-X64) target=x86_64-unknown-linux-gnu ;;
    Linux-ARM64) target=aarch64-unknown-linux-gnu ;;
    macOS-ARM64) target=aarch64-apple-darwin ;;
    *) target='' ;;
esac
sha=''
[ -n "$target" ] && sha=$(pin "sha256.$target")
dest="${RUNNER_TEMP:-/tmp}/mlsign-$pinned_version"
bin="$dest/bin/mlsign"

sha256_of() { (sha256sum "$1" 2>/dev/null || shasum -a 256 "$1") | cut -d' ' -f1; }

# Is $1 signed by the pinned key, as a statement over exactly the bytes with SHA-256 $2?
check_bundle() {
    local file=$1 want=$2 sig=$3 key="$ACTION_PATH/release/mlsign-release.pub" w
    [ -f "$key" ] || fail "$key is missing: cannot check the release signature"
    w=$(mktemp -d)
    jq -e '.mediaType | startswith("application/vnd.dev.sigstore.bundle")' "$sig" >/dev/null 2>&1 \
        || { rm -rf "$w"; fail "$sig is not a Sigstore bundle"; }
    jq -r '.dsseEnvelope.payload' "$sig" | base64 -d > "$w/payload" 2>/dev/null \
        || { rm -rf "$w"; fail "$sig: no DSSE payload"; }
    local ptype
    ptype=$(jq -r '.dsseEnvelope.payloadType' "$sig")
    [ "$ptype" = application/vnd.in-toto+json ] || { rm -rf "$w"; fail "$sig: payload type $ptype"; }
    # One resource, the file itself ("." for a single file), hashed with sha256.
    jq -e --arg d "$want" '.predicate.resources | length == 1 and .[0].name == "."
        and .[0].algorithm == "sha256" and .[0].digest == $d' "$w/payload" >/dev/null 2>&1 \
        || { rm -rf "$w"; fail "$sig does not cover $(basename "$file") (sha256 $want)"; }
    [ "$(jq '.dsseEnvelope.signatures | length' "$sig")" = 1 ] \
        || { rm -rf "$w"; fail "$sig: expected exactly one signature"; }
    jq -r '.dsseEnvelope.signatures[0].sig' "$sig" | base64 -d > "$w/sig.der" 2>/dev/null \
        || { rm -rf "$w"; fail "$sig: signature is not base64"; }
    # DSSE pre-authentication encoding: "DSSEv1 <len> <type> <len> <payload>".
    printf 'DSSEv1 %d %s %d ' "${#ptype}" "$ptype" "$(wc -c < "$w/payload" | tr -d ' ')" > "$w/pae"
    cat "$w/payload" >> "$w/pae"
    if ! openssl dgst -sha256 -verify "$key" -signature "$w/sig.der" "$w/pae" >/dev/null 2>&1; then
        rm -rf "$w"
        fail "$sig: the signature does not verify with the pinned release key"
    fi
    rm -rf "$w"
}

how=''
if [ -n "$sha" ]; then
    if [ -x "$bin" ] && [ "$(sha256_of "$bin")" = "$sha" ]; then
        how=cached # a runner cache is trusted only for the pinned bytes
    else
        rm -f "$bin"
        base=$(pin base_url)
        name="mlsign-$pinned_version-$target"
        tmp=$(mktemp -d)
        trap 'rm -rf "$tmp"' EXIT
        if curl -fsSL --retry 3 -o "$tmp/$name" "$base/$name" \
            && curl -fsSL --retry 3 -o "$tmp/$name.sig" "$base/$name.sig"; then
            got=$(sha256_of "$tmp/$name")
            [ "$got" = "$sha" ] || fail "checksum mismatch for $base/$name: got $got, pinned $sha; nothing installed"
            check_bundle "$tmp/$name" "$sha" "$tmp/$name.sig"
            mkdir -p "$dest/bin"
            install -m 0755 "$tmp/$name" "$bin.partial"
            mv -f "$bin.partial" "$bin"
            how=release
        else
            echo "::warning title=mlsign install::could not download $base/$name(.sig); building from source"
        fi
    fi
fi
if [ -z "$how" ]; then
    command -v cargo >/dev/null \
        || fail "no release binary for ${OS_NAME:-}-${OS_ARCH:-} and no cargo to build one; install Rust or pass the mlsign input"
    echo "mlsign: no pinned release binary for ${OS_NAME:-}-${OS_ARCH:-}; cargo install --locked --path $ACTION_PATH"
    cargo install --locked --path "$ACTION_PATH" --root "$dest" --quiet
    how=cargo
fi
echo "mlsign: using $bin ($how)"
"$bin" --version
out mlsign-path "$bin"
out install-method "$how"
