#!/usr/bin/env bash
# Release build of mlsign: scripts/release.sh VERSION [--check-repro]
#
# Writes dist/VERSION/:
#   mlsign-VERSION-x86_64-unknown-linux-gnu          the binary (stripped, reproducible)
#   mlsign-VERSION-x86_64-unknown-linux-gnu.sig      its mlsign bundle (sign --key)
#   mlsign-VERSION.cdx.json (+ .sig)                 mlsign's own CycloneDX SBOM from Cargo.lock,
#                                                    signed as an in-toto attestation (bom sign)
#   mlsign-VERSION-*.whl (+ .sig)                    the maturin wheel (bindings = "bin")
#   mlsign-VERSION-extras.tar.gz                     man pages + shell completions (deterministic tar)
#   mlsign-VERSION-image/ + IMAGE_DIGEST               the `mlsign serve` container image (OCI layout)
#   SHA256SUMS (+ SHA256SUMS.sig)
#
# Signing key: MLSIGN_RELEASE_KEY (private PEM) and MLSIGN_RELEASE_PUB (public PEM; every bundle
# is verified with it before the script succeeds). MLSIGN_RELEASE_PASS_ENV names the variable that
# holds the key's passphrase, if any. Without MLSIGN_RELEASE_KEY nothing is signed and the script
# says so (a dry run; not a release). Keyless CI signing: MLSIGN_RELEASE_KEYLESS=1 with
# MLSIGN_RELEASE_IDENTITY and MLSIGN_RELEASE_ISSUER (see the signing section below).
#
# Reproducibility: --locked, SOURCE_DATE_EPOCH (default: the last commit's time), paths remapped
# (--remap-path-prefix for the source tree, CARGO_HOME and RUSTUP_HOME), symbols stripped,
# codegen deterministic (the release profile sets codegen-units; no build script stamps time).
# --check-repro builds a second time in a fresh target directory and compares the bytes; the
# release fails if they differ. Both builds must use the same toolchain (rust-toolchain or
# `rustc -V` is recorded in BUILDINFO).
set -euo pipefail

usage() { echo "usage: scripts/release.sh VERSION [--check-repro]" >&2; exit 2; }
[ $# -ge 1 ] || usage
VERSION=$1; shift
CHECK_REPRO=0
for a in "$@"; do
    case $a in
        --check-repro) CHECK_REPRO=1 ;;
        *) usage ;;
    esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
CRATE_VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
if [ "$VERSION" != "$CRATE_VERSION" ]; then
    echo "error: VERSION $VERSION differs from Cargo.toml's version $CRATE_VERSION; bump Cargo.toml first" >&2
    exit 2
fi

TARGET=x86_64-unknown-linux-gnu
: "${SOURCE_DATE_EPOCH:=$(git log -1 --format=%ct)}"
export SOURCE_DATE_EPOCH
CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}
RUSTUP_HOME=${RUSTUP_HOME:-$HOME/.rustup}
export CARGO_INCREMENTAL=0
OUT=$ROOT/dist/$VERSION
mkdir -p "$OUT"
NAME=mlsign-$VERSION-$TARGET

# Every path that can reach the binary is remapped: the source tree, the target directory (build
# scripts' OUT_DIR lands in file!() and panic locations), CARGO_HOME and RUSTUP_HOME. rustc applies
# the last matching prefix, so the target directory (inside the source tree) comes after it.
rustflags() { # $1: source root, $2: target dir
    echo "--remap-path-prefix=$1=/build/mlsign --remap-path-prefix=$2=/build/target --remap-path-prefix=$CARGO_HOME=/cargo --remap-path-prefix=$RUSTUP_HOME=/rustup -C strip=symbols"
}
build() { # $1: target dir
    RUSTFLAGS=$(rustflags "$ROOT" "$1") \
        cargo build --release --locked --target "$TARGET" --target-dir "$1" --bin mlsign
}

echo "== build ($TARGET, SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH)"
start=$(date +%s)
build "$ROOT/target/release-dist"
echo "   build took $(( $(date +%s) - start ))s"
BIN=$ROOT/target/release-dist/$TARGET/release/mlsign
install -m 0755 "$BIN" "$OUT/$NAME"

if [ $CHECK_REPRO = 1 ]; then
    # The second build is a fresh export of the same commit at another path, with a fresh target
    # directory: what a user rebuilding from the tag does. A dirty tree could not be compared.
    if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
        echo "error: --check-repro needs a clean working tree (the second build exports HEAD)" >&2
        exit 2
    fi
    echo "== reproducibility: second build from an export of HEAD at another path"
    SECOND=$(mktemp -d)
    trap 'rm -rf "$SECOND"' EXIT
    mkdir "$SECOND/src"
    git archive HEAD | tar -x -C "$SECOND/src"
    start=$(date +%s)
    (cd "$SECOND/src" && RUSTFLAGS=$(rustflags "$SECOND/src" "$SECOND/target") \
        cargo build --release --locked --target "$TARGET" --target-dir "$SECOND/target" --bin mlsign)
    echo "   second build took $(( $(date +%s) - start ))s"
    a=$(sha256sum < "$BIN" | cut -d' ' -f1)
    b=$(sha256sum < "$SECOND/target/$TARGET/release/mlsign" | cut -d' ' -f1)
    if [ "$a" != "$b" ]; then
        echo "error: not reproducible: $a vs $b" >&2
        exit 1
    fi
    echo "   identical: $a"
fi

echo "== man pages and completions"
EXTRAS=$(mktemp -d)
mkdir -p "$EXTRAS/man/man1" "$EXTRAS/completions"
"$BIN" man --out "$EXTRAS/man/man1" >/dev/null
"$BIN" completions bash > "$EXTRAS/completions/mlsign.bash"
"$BIN" completions zsh > "$EXTRAS/completions/_mlsign"
"$BIN" completions fish > "$EXTRAS/completions/mlsign.fish"
"$BIN" completions powershell > "$EXTRAS/completions/_mlsign.ps1"
"$BIN" completions elvish > "$EXTRAS/completions/mlsign.elv"
tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
    --format=gnu -C "$EXTRAS" -cf - man completions | gzip -n -9 > "$OUT/mlsign-$VERSION-extras.tar.gz"
rm -rf "$EXTRAS"

echo "== container image for mlsign serve (OCI layout, no daemon)"
# Distroless-style, non-root, reproducible (scripts/build-image.py). Its manifest digest goes into
# IMAGE_DIGEST (covered by SHA256SUMS); after `skopeo copy oci:…` to a registry, sign the pushed
# digest with `mlsign sign oci://REGISTRY/mlsign@DIGEST` and pin deploy/ to it.
rm -rf "$OUT/mlsign-$VERSION-image"
python3 "$ROOT/scripts/build-image.py" "$OUT/$NAME" "$OUT/mlsign-$VERSION-image" --tag "$VERSION" \
    > "$OUT/IMAGE_DIGEST"
echo "   image $(cat "$OUT/IMAGE_DIGEST")"
# deploy/ pins the image by digest; a release that changes the image must update it.
if ! grep -q "@$(cat "$OUT/IMAGE_DIGEST")" "$ROOT/deploy/deployment.yaml"; then
    echo "   note: deploy/deployment.yaml pins another image digest; set it to $(cat "$OUT/IMAGE_DIGEST")"
fi

echo "== SBOM (mlsign bom over Cargo.lock)"
# The root component is the release binary, typed `application` (--type application); the Rust
# dependencies come from Cargo.lock with purls and checksums.
SBOM_DIR=$(mktemp -d)
cp "$OUT/$NAME" "$SBOM_DIR/"
"$BIN" bom "$SBOM_DIR/$NAME" -o "$OUT/mlsign-$VERSION.cdx.json" --lock Cargo.lock \
    --name mlsign --model-version "$VERSION" --type application --reproducible --force
rm -rf "$SBOM_DIR"
"$BIN" bom validate "$OUT/mlsign-$VERSION.cdx.json"

echo "== wheel (maturin, bindings = bin)"
MATURIN=${MATURIN:-maturin}
# Same RUSTFLAGS and target directory: cargo reuses the binary built above.
RUSTFLAGS=$(rustflags "$ROOT" "$ROOT/target/release-dist") \
    "$MATURIN" build --release --locked --target "$TARGET" --target-dir "$ROOT/target/release-dist" \
    --out "$OUT"

{
    echo "version $VERSION"
    echo "source_date_epoch $SOURCE_DATE_EPOCH"
    echo "commit $(git rev-parse HEAD)"
    rustc -V
    cargo -V
} > "$OUT/BUILDINFO"

# Signing mode: a key (MLSIGN_RELEASE_KEY) or keyless Sigstore in CI (MLSIGN_RELEASE_KEYLESS=1:
# the OIDC token comes from GitHub Actions or $SIGSTORE_ID_TOKEN; every bundle is verified against
# MLSIGN_RELEASE_IDENTITY and MLSIGN_RELEASE_ISSUER before the script succeeds).
SIGN=( ); VERIFY=( ); MODE=none
if [ -n "${MLSIGN_RELEASE_KEY:-}" ]; then
    : "${MLSIGN_RELEASE_PUB:?set MLSIGN_RELEASE_PUB to the public key that verifies the release}"
    MODE=key
    SIGN=(--key "$MLSIGN_RELEASE_KEY")
    [ -n "${MLSIGN_RELEASE_PASS_ENV:-}" ] && SIGN+=(--passphrase-env "$MLSIGN_RELEASE_PASS_ENV")
    VERIFY=(--key "$MLSIGN_RELEASE_PUB")
elif [ "${MLSIGN_RELEASE_KEYLESS:-0}" = 1 ]; then
    : "${MLSIGN_RELEASE_IDENTITY:?set MLSIGN_RELEASE_IDENTITY (the workflow identity that signs)}"
    : "${MLSIGN_RELEASE_ISSUER:?set MLSIGN_RELEASE_ISSUER (e.g. https://token.actions.githubusercontent.com)}"
    MODE=keyless
    SIGN=(--keyless)
    VERIFY=(--identity "$MLSIGN_RELEASE_IDENTITY" --issuer "$MLSIGN_RELEASE_ISSUER")
fi

sign_file() { # $1 artifact
    "$BIN" sign "$1" "${SIGN[@]}" --bundle "$1.sig" --force >/dev/null
    "$BIN" verify "$1" --bundle "$1.sig" "${VERIFY[@]}" >/dev/null
}

case $MODE in
key)
    echo "== signing with $MLSIGN_RELEASE_KEY"
    sign_file "$OUT/$NAME"
    for w in "$OUT"/*.whl; do sign_file "$w"; done
    "$BIN" bom sign "$OUT/mlsign-$VERSION.cdx.json" "${SIGN[@]}" \
        --bundle "$OUT/mlsign-$VERSION.cdx.json.sig" --force >/dev/null
    "$BIN" bom verify "$OUT/mlsign-$VERSION.cdx.json" --bundle "$OUT/mlsign-$VERSION.cdx.json.sig" \
        "${VERIFY[@]}" --no-rehash >/dev/null
    ;;
keyless)
    echo "== signing keylessly as $MLSIGN_RELEASE_IDENTITY"
    # The SBOM is signed as a file (its bytes), like the binary, so one verify command covers all.
    for f in "$OUT/$NAME" "$OUT"/*.whl "$OUT/mlsign-$VERSION.cdx.json"; do sign_file "$f"; done
    ;;
*)
    echo "== NOT SIGNED: neither MLSIGN_RELEASE_KEY nor MLSIGN_RELEASE_KEYLESS=1 (dry run, not a release)"
    ;;
esac

echo "== SHA256SUMS"
(cd "$OUT" && find . -maxdepth 1 -type f ! -name SHA256SUMS ! -name 'SHA256SUMS.sig' -printf '%P\n' \
    | LC_ALL=C sort | xargs sha256sum > SHA256SUMS)
if [ $MODE != none ]; then sign_file "$OUT/SHA256SUMS"; fi
ls -l "$OUT"
