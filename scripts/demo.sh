#!/usr/bin/env bash
# The main job on shipped sample data: sign the tiny model in testdata/, verify it, scan it,
# describe it in an ML-BOM, compare two small models' behaviour, then show what a tampered copy
# looks like. Builds mlsign first. Leaves its files in a temp directory.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet
ml="$PWD/target/release/mlsign"
work=$(mktemp -d "${TMPDIR:-/tmp}/mlsign-demo.XXXXXX")
echo "== working in $work"
cp -r testdata/tiny-model "$work/tiny-model"

echo; echo "== mlsign keygen --out $work/signer"
"$ml" keygen --out "$work/signer"

echo; echo "== mlsign sign tiny-model --key signer.pem --bundle tiny-model.sig"
"$ml" sign "$work/tiny-model" --key "$work/signer.pem" --bundle "$work/tiny-model.sig"

echo; echo "== mlsign verify tiny-model --bundle tiny-model.sig --key signer.pub"
"$ml" verify "$work/tiny-model" --bundle "$work/tiny-model.sig" --key "$work/signer.pub"

echo; echo "== mlsign scan tiny-model testdata/scan/torch (code-carrying formats are checked statically)"
"$ml" scan "$work/tiny-model" testdata/scan/torch

echo; echo "== mlsign bom tiny-model -o tiny-model.cdx.json, then validate and show it"
"$ml" bom "$work/tiny-model" -o "$work/tiny-model.cdx.json" --signature "$work/tiny-model.sig" --signature-key "$work/signer.pub"
"$ml" bom validate "$work/tiny-model.cdx.json"
"$ml" bom show "$work/tiny-model.cdx.json"

echo; echo "== mlsign gate: one policy, one verdict (signature + clean scan + signed, matching BOM)"
cp policies/default.toml "$work/default.toml"
cp "$work/signer.pub" "$work/release.pub"
"$ml" bom sign "$work/tiny-model.cdx.json" --key "$work/signer.pem"
"$ml" gate "$work/tiny-model" --policy "$work/default.toml" --bundle "$work/tiny-model.sig" --audit-log "$work/gate-audit.jsonl"
"$ml" policy explain "$work/default.toml" "$work/tiny-model"

echo; echo "== mlsign behave: a candidate with a planted trigger against its baseline (exit 1 expected)"
set +e
"$ml" behave --baseline testdata/behave/base --candidate testdata/behave/backdoored --suite testdata/behave/suite.toml --no-progress
code=$?
set -e
[ "$code" = 1 ] || { echo "demo: expected the backdoored candidate to be flagged" >&2; exit 1; }

echo; echo "== tamper: flip the classifier bias and add a file, then verify again (exit 1 expected)"
printf '\x00' | dd of="$work/tiny-model/model.safetensors" bs=1 seek=840 conv=notrunc status=none
echo 'import os; os.system("id")' > "$work/tiny-model/loader.py"
set +e
"$ml" verify "$work/tiny-model" --bundle "$work/tiny-model.sig" --key "$work/signer.pub"
code=$?
set -e
echo "exit code: $code"
[ "$code" = 1 ] || { echo "demo: expected exit 1 for the tampered model" >&2; exit 1; }
echo; echo "== the gate on the tampered model (exit 1 expected)"
set +e
"$ml" gate "$work/tiny-model" --policy "$work/default.toml" --bundle "$work/tiny-model.sig" --audit-log "$work/gate-audit.jsonl"
code=$?
set -e
[ "$code" = 1 ] || { echo "demo: expected the gate to fail the tampered model" >&2; exit 1; }
echo; echo "== done: files in $work"
