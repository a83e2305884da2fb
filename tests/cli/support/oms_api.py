"""Drive the OpenSSF model_signing Python API for the interop tests.

The model_signing CLI only signs whole files with SHA-256; the shard, BLAKE2b and BLAKE3
variants exist only through the API, so the tests call this script.

  oms_api.py sign   MODEL KEY.pem SIG  [--alg sha256|blake2|blake3] [--shard-size N] [--password P]
  oms_api.py verify MODEL KEY.pub SIG  [--alg ...] [--shard-size N]
  oms_api.py legacy-resign BUNDLE KEY.pem OUT
      re-sign BUNDLE's payload over the faulty PAE of model_signing 0.2, with upstream's own
      `pae_compat`, as a bundle from before model_signing 1.0 would be signed
"""
import argparse
import sys

import model_signing


def hashing_config(args):
    cfg = model_signing.hashing.Config()
    if args.shard_size:
        cfg.use_shard_serialization(hashing_algorithm=args.alg, shard_size=args.shard_size)
    else:
        cfg.use_file_serialization(hashing_algorithm=args.alg)
    return cfg


def legacy_resign(bundle_path, key_path, out_path):
    import base64
    import json

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from model_signing._signing import sign_sigstore_pb

    bundle = json.load(open(bundle_path))
    env = bundle["dsseEnvelope"]
    payload = base64.b64decode(env["payload"])
    key = serialization.load_pem_private_key(open(key_path, "rb").read(), password=None)
    sig = key.sign(sign_sigstore_pb.pae_compat(payload), ec.ECDSA(hashes.SHA256()))
    env["signatures"][0]["sig"] = base64.b64encode(sig).decode()
    json.dump(bundle, open(out_path, "w"))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("op", choices=["sign", "verify", "legacy-resign"])
    p.add_argument("model")
    p.add_argument("key")
    p.add_argument("sig")
    p.add_argument("--alg", default="sha256")
    p.add_argument("--shard-size", type=int, default=0)
    p.add_argument("--password", default=None)
    args = p.parse_args()
    if args.op == "legacy-resign":
        legacy_resign(args.model, args.key, args.sig)
    elif args.op == "sign":
        (
            model_signing.signing.Config()
            .use_elliptic_key_signer(
                private_key=args.key,
                password=args.password.encode() if args.password else None,
            )
            .set_hashing_config(hashing_config(args))
            .sign(args.model, args.sig)
        )
    else:
        (
            model_signing.verifying.Config()
            .use_elliptic_key_verifier(public_key=args.key)
            .set_hashing_config(hashing_config(args))
            .verify(args.model, args.sig)
        )
    print(f"{args.op} ok")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # report, exit 1 like the CLI
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
