// Independent verifier for mlsign's keyless bundles: sigstore-js's own verification stack
// (@sigstore/bundle + @sigstore/verify, the code under @sigstore/cli and the `sigstore` npm
// package), fed a custom trusted root offline. @sigstore/cli itself reads roots only through TUF.
//
// usage: node verify.js TRUSTED_ROOT BUNDLE IDENTITY ISSUER [ARTIFACT] [--timestamps N]
// Exit 0 and "OK <san>" when the bundle verifies; exit 1 with the library's error otherwise.
'use strict';
const fs = require('fs');
const { bundleFromJSON } = require('@sigstore/bundle');
const { TrustedRoot } = require('@sigstore/protobuf-specs');
const { Verifier, toSignedEntity, toTrustMaterial } = require('@sigstore/verify');

const args = process.argv.slice(2);
let timestamps = 0;
const i = args.indexOf('--timestamps');
if (i >= 0) {
  timestamps = Number(args[i + 1]);
  args.splice(i, 2);
}
const [rootPath, bundlePath, identity, issuer, artifactPath] = args;
if (!issuer) {
  console.error('usage: node verify.js TRUSTED_ROOT BUNDLE IDENTITY ISSUER [ARTIFACT] [--timestamps N]');
  process.exit(2);
}
try {
  const root = TrustedRoot.fromJSON(JSON.parse(fs.readFileSync(rootPath, 'utf8')));
  const bundle = bundleFromJSON(JSON.parse(fs.readFileSync(bundlePath, 'utf8')));
  const artifact = artifactPath ? fs.readFileSync(artifactPath) : undefined;
  // One Rekor entry and one SCT, as the public-good policy; RFC 3161 timestamps counted on top
  // of the tlog's integrated time when asked.
  const verifier = new Verifier(toTrustMaterial(root), {
    tlogThreshold: 1,
    ctlogThreshold: 1,
    timestampThreshold: 1 + timestamps,
  });
  const signer = verifier.verify(toSignedEntity(bundle, artifact), {
    subjectAlternativeName: identity,
    extensions: { issuer },
  });
  console.log(`OK ${signer.identity ? signer.identity.subjectAlternativeName : ''}`);
} catch (e) {
  console.error(`FAIL ${e.code || ''} ${e.message}`);
  process.exit(1);
}
