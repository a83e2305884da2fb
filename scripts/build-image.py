#!/usr/bin/env python3
"""Build the `mlsign serve` container image as an OCI image layout, without a container daemon.

    scripts/build-image.py BINARY OUT_DIR [--tag TAG] [--gzip-level N]

The image is distroless-style: one layer holding the mlsign binary, exactly the shared libraries
its ELF interpreter loads (found with `ldd`, copied from the build machine), the CA bundle (for
registries and Sigstore services), /etc/passwd and /etc/group with a `nonroot` user (65532), and
an empty /tmp. No shell, no package manager. The config runs as 65532:65532 with
`mlsign serve` as the entrypoint and exposes 8443/tcp.

Reproducible: file order, owners and mtimes (SOURCE_DATE_EPOCH, default 0) are fixed and gzip
carries no name or time, so the same binary and libraries give the same manifest digest.
Push with `skopeo copy oci:OUT_DIR:TAG docker://REGISTRY/REPO:TAG`, then sign the pushed digest
with `mlsign sign oci://…` (docs/install.md, "Container image").
Prints the manifest digest on stdout.
"""

import argparse
import datetime
import gzip
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile

NONROOT = 65532
CA_BUNDLES = ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"]


def die(msg):
    print(f"build-image: {msg}", file=sys.stderr)
    sys.exit(2)


def shared_libs(binary):
    """The absolute paths `ldd` resolves for BINARY (interpreter included), in load order."""
    try:
        out = subprocess.run(["ldd", binary], check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        die(f"ldd {binary}: {e}")
    libs = []
    for line in out.splitlines():
        line = line.strip()
        if "statically linked" in line or "not a dynamic executable" in line:
            return []
        if "not found" in line:
            die(f"{binary}: shared library not found: {line}")
        m = re.match(r"(?:\S+ => )?(/\S+) \(0x[0-9a-f]+\)$", line)
        if m:
            libs.append(m.group(1))
    return libs


def add_dir(tar, path, mode=0o755, uid=0, mtime=0):
    ti = tarfile.TarInfo(path)
    ti.type = tarfile.DIRTYPE
    ti.mode, ti.uid, ti.gid, ti.mtime = mode, uid, uid, mtime
    tar.addfile(ti)


def add_file(tar, path, data, mode=0o644, mtime=0):
    ti = tarfile.TarInfo(path)
    ti.size, ti.mode, ti.mtime = len(data), mode, mtime
    tar.addfile(ti, io.BytesIO(data))


def layer(binary, mtime):
    libs = shared_libs(binary)
    ca = next((c for c in CA_BUNDLES if os.path.isfile(c)), None)
    if ca is None:
        die("no CA bundle found (install ca-certificates)")
    files = {
        "usr/local/bin/mlsign": (open(binary, "rb").read(), 0o755),
        "etc/passwd": (
            b"root:x:0:0:root:/root:/sbin/nologin\n"
            b"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n",
            0o644,
        ),
        "etc/group": (b"root:x:0:\nnonroot:x:65532:\n", 0o644),
        "etc/ssl/certs/ca-certificates.crt": (open(ca, "rb").read(), 0o644),
    }
    for lib in libs:
        # Stored at the path the loader asks for (the interpreter's PT_INTERP and ldd's
        # search result); the bytes are those of the resolved file.
        files[lib.lstrip("/")] = (open(os.path.realpath(lib), "rb").read(), 0o755)
    dirs = {"tmp": (0o1777, 0), "home/nonroot": (0o700, NONROOT)}
    for path in files:
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.setdefault("/".join(parts[:i]), (0o755, 0))
    for d in list(dirs):
        parts = d.split("/")
        for i in range(1, len(parts)):
            dirs.setdefault("/".join(parts[:i]), (0o755, 0))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in sorted(dirs):
            mode, uid = dirs[d]
            add_dir(tar, d, mode, uid, mtime)
        for f in sorted(files):
            data, mode = files[f]
            add_file(tar, f, data, mode, mtime)
    return buf.getvalue(), libs


def blob(out, data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = os.path.join(out, "blobs", "sha256", digest[7:])
    with open(path, "wb") as f:
        f.write(data)
    return digest


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("binary")
    ap.add_argument("out")
    ap.add_argument("--tag", default="latest")
    ap.add_argument("--gzip-level", type=int, default=9, choices=range(1, 10))
    a = ap.parse_args()
    if not os.path.isfile(a.binary):
        die(f"{a.binary}: no such file")
    if os.path.exists(a.out) and os.listdir(a.out):
        die(f"{a.out}: exists and is not empty")
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    created = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )

    tar, libs = layer(a.binary, epoch)
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb", compresslevel=a.gzip_level, mtime=0, filename="") as g:
        g.write(tar)
    os.makedirs(os.path.join(a.out, "blobs", "sha256"), exist_ok=True)
    layer_digest = blob(a.out, gz.getvalue())
    config = {
        "created": created,
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "User": f"{NONROOT}:{NONROOT}",
            "Entrypoint": ["/usr/local/bin/mlsign"],
            "Cmd": ["serve", "--help"],
            "Env": ["PATH=/usr/local/bin", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"],
            "WorkingDir": "/home/nonroot",
            "ExposedPorts": {"8443/tcp": {}},
            "Labels": {"org.opencontainers.image.title": "mlsign"},
        },
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar).hexdigest()]},
        "history": [{"created": created, "created_by": "scripts/build-image.py"}],
    }
    cfg = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": blob(a.out, cfg),
            "size": len(cfg),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": layer_digest,
                "size": len(gz.getvalue()),
            }
        ],
    }
    man = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    man_digest = blob(a.out, man)
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": man_digest,
                "size": len(man),
                "annotations": {"org.opencontainers.image.ref.name": a.tag},
            }
        ],
    }
    with open(os.path.join(a.out, "index.json"), "w") as f:
        json.dump(index, f, sort_keys=True, separators=(",", ":"))
    with open(os.path.join(a.out, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    print(
        f"image {a.tag}: {len(libs)} shared libraries, layer {len(gz.getvalue())} bytes",
        file=sys.stderr,
    )
    print(man_digest)


if __name__ == "__main__":
    main()
