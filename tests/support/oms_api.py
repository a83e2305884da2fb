"""Drive the OpenSSF model_signing Python API for the interop tests.

The model_signing CLI only signs whole files with SHA-256; the shard, BLAKE2b and BLAKE3
variants exist only through the API, so the tests call this script.

  oms_api.py sign   MODEL KEY.pem SIG  [--alg sha256|blake2|blake3] [--shard-size N] [--password P]
  oms_api.py verify MODEL KEY.pub SIG  [--alg ...] [--shard-size N]
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


def main():
    p = argparse.ArgumentParser()
    p.add_argument("op", choices=["sign", "verify"])
    p.add_argument("model")
    p.add_argument("key")
    p.add_argument("sig")
    p.add_argument("--alg", default="sha256")
    p.add_argument("--shard-size", type=int, default=0)
    p.add_argument("--password", default=None)
    args = p.parse_args()
    if args.op == "sign":
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
