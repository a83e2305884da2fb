'use strict';
// Local Sigstore services on 127.0.0.1 for mlsign's keyless tests (tests/keyless.rs):
//  - Fulcio (POST /api/v2/signingCert): @sigstore/mock's CA and CT log, an independent
//    implementation (sigstore-js's test double) that issues certificates with embedded SCTs;
//  - Rekor v1 (POST /api/v1/log/entries): a real RFC 6962 Merkle tree (pre-seeded, so proofs
//    have hashes and a non-zero index), signed checkpoints (signed-note, key hint) and SETs,
//    dsse entries canonicalised as Rekor does (the bare mock stores them unconverted and
//    returns one-leaf proofs that real verifiers reject);
//  - OIDC discovery and a GitHub Actions ID-token endpoint (GET /gha-token, claims set with
//    POST /gha-claims) for the ambient token path; POST /rekor-offset shifts Rekor's clock.
//  - an RFC 3161 TSA (POST /api/v1/timestamp, DER queries) around @sigstore/mock's TSA.
// Writes trusted_root.json, signing_config.json (no TSA), signing_config_tsa.json and
// trust_config.json (sigstore-python's ClientTrustConfig) describing these services into
// OUTDIR, then prints "READY <port>".
// Usage: node server.js OUTDIR

const http = require('http');
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const mock = require('@sigstore/mock');
const canonicalize = require('canonicalize');
const asn1js = require('asn1js');
const pkijs = require('pkijs');

const outDir = process.argv[2];
if (!outDir) {
  console.error('usage: node server.js OUTDIR');
  process.exit(2);
}

const sha256 = (...parts) => {
  const h = crypto.createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
};
const genKeys = () => crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const spkiDer = (keys) => keys.publicKey.export({ format: 'der', type: 'spki' });

// RFC 6962 Merkle tree hashing and audit paths.
const leafHash = (b) => sha256(Buffer.from([0]), b);
const nodeHash = (l, r) => sha256(Buffer.from([1]), l, r);
const split = (n) => {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
};
function mth(hs) {
  if (hs.length === 1) return hs[0];
  const k = split(hs.length);
  return nodeHash(mth(hs.slice(0, k)), mth(hs.slice(k)));
}
function auditPath(m, hs) {
  if (hs.length <= 1) return [];
  const k = split(hs.length);
  if (m < k) return [...auditPath(m, hs.slice(0, k)), mth(hs.slice(k))];
  return [...auditPath(m - k, hs.slice(k)), mth(hs.slice(0, k))];
}

class Rekor {
  constructor(keys, host) {
    this.keys = keys;
    // As Rekor v1: the note's origin line is "<host> - <tree id>", the signature's name the host.
    this.host = host;
    this.logID = sha256(spkiDer(keys));
    this.origin = `${host} - 4242`;
    this.leaves = [];
    // Seconds added to the integrated time (tests of "integrated time in the future").
    this.offset = 0;
    // Earlier entries of other users, so proofs are not trivial.
    for (let i = 0; i < 6; i++) this.leaves.push(leafHash(crypto.randomBytes(40)));
  }

  sign(data) {
    return crypto.sign('sha256', Buffer.from(data), this.keys.privateKey);
  }

  canonical(proposed) {
    if (proposed.kind === 'hashedrekord') return proposed;
    if (proposed.kind === 'dsse') {
      const pc = proposed.spec.proposedContent;
      const env = JSON.parse(pc.envelope);
      return {
        apiVersion: '0.0.1',
        kind: 'dsse',
        spec: {
          envelopeHash: { algorithm: 'sha256', value: sha256(pc.envelope).toString('hex') },
          payloadHash: {
            algorithm: 'sha256',
            value: sha256(Buffer.from(env.payload, 'base64')).toString('hex'),
          },
          signatures: env.signatures.map((s, i) => ({
            signature: s.sig,
            verifier: pc.verifiers[i] || pc.verifiers[0],
          })),
        },
      };
    }
    throw new Error(`unsupported kind ${proposed.kind}`);
  }

  add(proposed) {
    const body = Buffer.from(canonicalize(this.canonical(proposed)));
    const logIndex = this.leaves.length;
    this.leaves.push(leafHash(body));
    const treeSize = this.leaves.length;
    const root = mth(this.leaves);
    const integratedTime = Math.floor(Date.now() / 1000) + this.offset;
    const logID = this.logID.toString('hex');
    const note = `${this.origin}\n${treeSize}\n${root.toString('base64')}\n`;
    const hint = this.logID.subarray(0, 4);
    const sigLine = `\u2014 ${this.host} ${Buffer.concat([hint, this.sign(note)]).toString('base64')}\n`;
    const set = this.sign(
      canonicalize({ body: body.toString('base64'), integratedTime, logIndex, logID })
    );
    return {
      [crypto.randomBytes(32).toString('hex')]: {
        body: body.toString('base64'),
        integratedTime,
        logID,
        logIndex,
        verification: {
          inclusionProof: {
            checkpoint: `${note}\n${sigLine}`,
            hashes: auditPath(logIndex, this.leaves).map((h) => h.toString('hex')),
            logIndex,
            rootHash: root.toString('hex'),
            treeSize,
          },
          signedEntryTimestamp: set.toString('base64'),
        },
      },
    };
  }
}

const readBody = (req) =>
  new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });

const b64url = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
// Unsigned test tokens: the mock Fulcio reads the claims without checking a signature.
const mintToken = (claims) => `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(claims)}.`;

async function main() {
  const start = new Date(Date.now() - 60_000).toISOString();
  const caKeys = genKeys();
  const ctKeys = genKeys();
  const logKeys = genKeys();
  const ctLog = await mock.initializeCTLog(ctKeys);
  const ca = await mock.initializeCA(caKeys, ctLog);
  const fulcio = mock.fulcioHandler(ca);
  const tsa = await mock.initializeTSA(genKeys());
  // Whole seconds: the mock's genTime carries milliseconds, which the Rust verifier's DER
  // GeneralizedTime parser (and @sigstore/core's) reject although RFC 3161 allows them.
  tsa.getCurrentTime = () => new Date(Math.floor(Date.now() / 1000) * 1000);
  let rekor;
  let base;
  // What the GitHub Actions token endpoint hands out (set by the test via POST /gha-claims).
  let ghaClaims = null;
  // The interactive OIDC provider (authorization code + PKCE, as oauth2.sigstore.dev): the
  // claims its ID tokens carry (POST /oauth-claims) and the codes it has handed out.
  let oauthClaims = null;
  const codes = new Map();

  const server = http.createServer(async (req, res) => {
    const send = (status, body, type = 'application/json') => {
      res.writeHead(status, { 'Content-Type': type });
      res.end(typeof body === 'string' ? body : JSON.stringify(body));
    };
    try {
      const url = new URL(req.url, base);
      const body = await readBody(req);
      if (req.method === 'POST' && url.pathname === fulcio.path) {
        // Real clients (sigstore-python) send the token as a bearer header and the CSR as
        // base64 of its PEM; the mock expects both in the body, PEM as is.
        const json = JSON.parse(body.toString());
        const auth = req.headers.authorization || '';
        if (!json.credentials && auth.toLowerCase().startsWith('bearer ')) {
          json.credentials = { oidcIdentityToken: auth.slice(7).trim() };
        }
        const csr = json.certificateSigningRequest;
        if (csr && !csr.startsWith('-----BEGIN')) {
          json.certificateSigningRequest = Buffer.from(csr, 'base64').toString();
        }
        const r = await fulcio.fn(Buffer.from(JSON.stringify(json)));
        return send(r.statusCode, r.response, r.contentType || 'text/plain');
      }
      if (req.method === 'POST' && url.pathname === '/api/v1/log/entries') {
        return send(201, rekor.add(JSON.parse(body.toString())));
      }
      if (req.method === 'POST' && url.pathname === '/api/v1/timestamp') {
        // RFC 3161 over HTTP as real clients speak it (DER TimeStampReq); the mock's own
        // handler takes JSON only.
        const tsq = new pkijs.TimeStampReq({ schema: asn1js.fromBER(new Uint8Array(body)).result });
        const nonce = tsq.nonce ? Number(tsq.nonce.toBigInt() % 9007199254740991n) : 1;
        const tsr = await tsa.timestamp({
          artifactHash: Buffer.from(tsq.messageImprint.hashedMessage.valueBlock.valueHexView),
          hashAlgorithmOID: tsq.messageImprint.hashAlgorithm.algorithmId,
          nonce,
          policyOID: '1.3.6.1.4.1.57264.2',
          certReq: !!tsq.certReq,
        });
        res.writeHead(200, { 'Content-Type': 'application/timestamp-reply' });
        return res.end(Buffer.from(tsr));
      }
      if (req.method === 'GET' && url.pathname === '/.well-known/openid-configuration') {
        return send(200, {
          issuer: base,
          authorization_endpoint: `${base}/auth`,
          token_endpoint: `${base}/token`,
          jwks_uri: `${base}/keys`,
          response_types_supported: ['code'],
          subject_types_supported: ['public'],
          id_token_signing_alg_values_supported: ['ES256'],
        });
      }
      if (req.method === 'POST' && url.pathname === '/oauth-claims') {
        oauthClaims = JSON.parse(body.toString());
        return send(200, {});
      }
      if (req.method === 'GET' && url.pathname === '/auth') {
        // The "user" consents at once: redirect back to the client with a one-time code.
        const q = url.searchParams;
        const redirect = q.get('redirect_uri') || '';
        if (!oauthClaims || q.get('response_type') !== 'code' || q.get('code_challenge_method') !== 'S256'
          || !q.get('code_challenge') || !q.get('state') || !q.get('nonce')
          || !/^http:\/\/(localhost|127\.0\.0\.1):\d+\//.test(redirect)) {
          return send(400, { message: 'bad authorization request' });
        }
        const code = crypto.randomBytes(16).toString('hex');
        codes.set(code, { challenge: q.get('code_challenge'), nonce: q.get('nonce'), redirect, client: q.get('client_id') });
        const to = new URL(redirect);
        to.searchParams.set('code', code);
        to.searchParams.set('state', q.get('state'));
        res.writeHead(302, { Location: to.toString() });
        return res.end();
      }
      if (req.method === 'POST' && url.pathname === '/token') {
        const f = new URLSearchParams(body.toString());
        const c = codes.get(f.get('code') || '');
        codes.delete(f.get('code') || '');
        const verifier = f.get('code_verifier') || '';
        if (!c || f.get('grant_type') !== 'authorization_code' || f.get('redirect_uri') !== c.redirect
          || f.get('client_id') !== c.client
          || crypto.createHash('sha256').update(verifier).digest('base64url') !== c.challenge) {
          return send(400, { error: 'invalid_grant' });
        }
        return send(200, {
          access_token: 'unused',
          token_type: 'Bearer',
          id_token: mintToken({ ...oauthClaims, aud: c.client, nonce: c.nonce }),
        });
      }
      if (req.method === 'POST' && url.pathname === '/rekor-offset') {
        rekor.offset = JSON.parse(body.toString()).seconds;
        return send(200, {});
      }
      if (req.method === 'POST' && url.pathname === '/gha-claims') {
        ghaClaims = JSON.parse(body.toString());
        return send(200, {});
      }
      if (req.method === 'GET' && url.pathname === '/gha-token') {
        if (req.headers.authorization !== 'bearer gha-request-token') {
          return send(401, { message: 'bad request token' });
        }
        if (url.searchParams.get('audience') !== 'sigstore' || !ghaClaims) {
          return send(400, { message: 'audience must be sigstore' });
        }
        return send(200, { value: mintToken({ ...ghaClaims, aud: 'sigstore' }) });
      }
      return send(404, { message: `no route ${req.method} ${url.pathname}` });
    } catch (e) {
      return send(400, { message: String(e && e.message) });
    }
  });

  server.listen(0, '127.0.0.1', () => {
    const port = server.address().port;
    base = `http://127.0.0.1:${port}`;
    rekor = new Rekor(logKeys, `127.0.0.1:${port}`);
    const key = (keys) => ({
      rawBytes: spkiDer(keys).toString('base64'),
      keyDetails: 'PKIX_ECDSA_P256_SHA_256',
      validFor: { start },
    });
    const trustedRoot = {
      mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
      tlogs: [
        {
          baseUrl: base,
          hashAlgorithm: 'SHA2_256',
          publicKey: key(logKeys),
          logId: { keyId: sha256(spkiDer(logKeys)).toString('base64') },
        },
      ],
      certificateAuthorities: [
        {
          subject: { organization: 'sigstore.mock', commonName: 'sigstore' },
          uri: base,
          certChain: { certificates: [{ rawBytes: Buffer.from(ca.rootCertificate).toString('base64') }] },
          validFor: { start },
        },
      ],
      ctlogs: [
        {
          baseUrl: base,
          hashAlgorithm: 'SHA2_256',
          publicKey: key(ctKeys),
          logId: { keyId: sha256(spkiDer(ctKeys)).toString('base64') },
        },
      ],
      timestampAuthorities: [
        {
          subject: { organization: 'sigstore.mock', commonName: 'tsa' },
          uri: base,
          certChain: {
            certificates: [tsa.intCertificate, tsa.rootCertificate].map((c) => ({
              rawBytes: Buffer.from(c).toString('base64'),
            })),
          },
          validFor: { start },
        },
      ],
    };
    const service = { url: base, majorApiVersion: 1, validFor: { start }, operator: 'mlsign-test' };
    const signingConfig = {
      mediaType: 'application/vnd.dev.sigstore.signingconfig.v0.2+json',
      caUrls: [service],
      oidcUrls: [service],
      rekorTlogUrls: [service],
      tsaUrls: [],
      rekorTlogConfig: { selector: 'ANY' },
      tsaConfig: { selector: 'ANY' },
    };
    const withTsa = {
      ...signingConfig,
      tsaUrls: [{ ...service, url: `${base}/api/v1/timestamp` }],
    };
    const write = (name, obj) =>
      fs.writeFileSync(path.join(outDir, name), JSON.stringify(obj, null, 2));
    write('trusted_root.json', trustedRoot);
    write('signing_config.json', signingConfig);
    write('signing_config_tsa.json', withTsa);
    write('trust_config.json', {
      mediaType: 'application/vnd.dev.sigstore.clienttrustconfig.v0.1+json',
      trustedRoot,
      signingConfig,
    });
    process.stdout.write(`READY ${port}\n`);
  });
  // End with the test that started us.
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
