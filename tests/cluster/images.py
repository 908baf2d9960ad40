"""The local cluster's images: built here as OCI layouts, pushed to its loopback registry.

Nothing comes from the internet. Every image is made of local files: the static busybox of
Debian's busybox-static, the kubectl that tests/cluster/build compiled, a pause built from
pause.c, and generated data. They are *stand-ins*: containerd's mirror configuration (see
cluster.py) sends every pull of ``docker.io``, ``registry.k8s.io``, ``ghcr.io`` and ``gcr.io`` to
the loopback registry, so the references our defaults and the dev stack name resolve, unchanged,
to these images. They prove pulls, shells and exit codes, not the upstream images' contents.

Standard library only: ``up`` runs before any virtualenv exists.
"""

import gzip
import hashlib
import io
import json
import random
import subprocess
import tarfile
from pathlib import Path

# What each stand-in is made of (a kind below). The first group is every image our component's
# defaults name (prepull/args.py DEFAULTS); the second every image of stacks/Pulumi.dev.yaml and the
# image the e2e test adds. tests/test_cluster_images.py keeps both groups complete.
STAND_INS = {
    "docker.io/library/busybox:1.37.0-musl": "busybox",
    "registry.k8s.io/pause:3.10.1": "pause",
    "registry.k8s.io/kubectl:v1.32.3": "kubectl",
    # dev stack: a shell image, a big one, a multi-architecture index, a distroless one.
    "docker.io/library/python:3.13-slim": "busybox",
    "docker.io/library/postgres:17.2": "sized",
    "ghcr.io/astral-sh/uv:0.5.11": "multiarch",
    "gcr.io/distroless/static-debian12:nonroot": "shellless",
    "docker.io/library/alpine:3.21": "busybox",
}

# Test images, pulled by tests straight from $PREPULL_TEST_REGISTRY/<path> over plain HTTP.
TEST_IMAGES = {
    "prepull-test/busybox:1": "busybox",
    "prepull-test/shellless:1": "shellless",
    "prepull-test/multiarch:1": "multiarch",
}

SIZED_REPO = "prepull-test/sized"  # tagged "<MiB>mib": the size is up's --sized-mib
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BUSYBOX_APPLETS = ("sh", "true", "cp", "sleep", "cat", "ls", "echo", "env", "id")


def registry_path(reference: str) -> str:
    """``docker.io/library/busybox:1`` -> ``library/busybox:1``: where a mirror finds it."""
    return reference.split("/", 1)[1]


def mirrored_hosts() -> list:
    return sorted({ref.split("/", 1)[0] for ref in STAND_INS})


# ---------------------------------------------------------------- layers and layouts


def _entry(tar: tarfile.TarFile, path: str, data: bytes = b"", mode: int = 0o644, link: str = "", directory=False):
    info = tarfile.TarInfo(path)
    info.mtime, info.uid, info.gid, info.mode = 1, 0, 0, mode  # fixed metadata: the same digest every time
    if directory:
        info.type = tarfile.DIRTYPE
    elif link:
        info.type, info.linkname = tarfile.SYMTYPE, link
    else:
        info.size = len(data)
    tar.addfile(info, io.BytesIO(data) if data or not (link or directory) else None)


def layer(entries) -> bytes:
    """An uncompressed tar of (path, data|None, mode, symlink target) entries; dirs end with '/'."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, data, mode, link in entries:
            if path.endswith("/"):
                _entry(tar, path.rstrip("/"), mode=mode, directory=True)
            else:
                _entry(tar, path, data or b"", mode, link)
    return buf.getvalue()


class Layout:
    """An OCI image layout on disk, written blob by blob."""

    def __init__(self, root: Path):
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
        self.refs = []

    def blob(self, data: bytes, media_type: str, **extra) -> dict:
        digest = hashlib.sha256(data).hexdigest()
        (self.root / "blobs" / "sha256" / digest).write_bytes(data)
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data), **extra}

    def json_blob(self, doc: dict, media_type: str, **extra) -> dict:
        return self.blob(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode(), media_type, **extra)

    def image(self, tars, config: dict, arch: str = "amd64") -> dict:
        """The manifest descriptor of an image of the given uncompressed layer tars."""
        layers = [self.blob(gzip.compress(t, compresslevel=1, mtime=0), "application/vnd.oci.image.layer.v1.tar+gzip") for t in tars]
        cfg = {
            "architecture": arch,
            "os": "linux",
            "config": {"Env": [PATH_ENV], **config},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(t).hexdigest() for t in tars]},
        }
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": self.json_blob(cfg, "application/vnd.oci.image.config.v1+json"),
            "layers": layers,
        }
        return self.json_blob(manifest, manifest["mediaType"], platform={"architecture": arch, "os": "linux"})

    def tag(self, name: str, descriptor: dict) -> None:
        self.refs.append({**descriptor, "annotations": {"org.opencontainers.image.ref.name": name}})
        index = {"schemaVersion": 2, "manifests": self.refs}
        (self.root / "index.json").write_text(json.dumps(index, sort_keys=True))


# ---------------------------------------------------------------- the kinds of image


def busybox_image(layout: Layout, busybox: Path) -> dict:
    entries = [("bin/", None, 0o755, ""), ("bin/busybox", busybox.read_bytes(), 0o755, "")]
    entries += [(f"bin/{applet}", None, 0o777, "busybox") for applet in BUSYBOX_APPLETS]
    return layout.image([layer(entries + [("tmp/", None, 0o1777, "")])], {"Cmd": ["sh"]})


def pause_image(layout: Layout, pause: Path) -> dict:
    return layout.image([layer([("pause", pause.read_bytes(), 0o755, "")])], {"Entrypoint": ["/pause"], "User": "65535:65535"})


def kubectl_image(layout: Layout, kubectl: Path) -> dict:
    entries = [("bin/", None, 0o755, ""), ("bin/kubectl", kubectl.read_bytes(), 0o755, "")]
    return layout.image([layer(entries)], {"Entrypoint": ["/bin/kubectl"]})


def shellless_image(layout: Layout) -> dict:
    """Like distroless/static: a passwd file and data, no shell and no `true` binary."""
    entries = [
        ("etc/", None, 0o755, ""),
        ("etc/passwd", b"root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n", 0o644, ""),
        ("home/nonroot/", None, 0o700, ""),
        ("data/stand-in.txt", b"prepull test image: no shell, no true\n", 0o644, ""),
    ]
    return layout.image([layer(entries)], {"User": "65532"})


def multiarch_index(layout: Layout) -> dict:
    manifests = [layout.image([layer([("arch.txt", f"{arch}\n".encode(), 0o644, "")])], {}, arch) for arch in ("amd64", "arm64")]
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests}
    return layout.json_blob(index, index["mediaType"])


def sized_image(layout: Layout, mib: int) -> dict:
    """One layer of ``mib`` MiB of incompressible (seeded, so reproducible) bytes."""
    data = random.Random(mib).randbytes(mib * 1024 * 1024)
    return layout.image([layer([("data/blob", data, 0o644, "")])], {})


def compile_pause(out: Path) -> Path:
    binary = out / "pause"
    subprocess.run(["gcc", "-static", "-Os", "-s", "-o", str(binary), str(Path(__file__).with_name("pause.c"))], check=True)
    return binary


def build(out: Path, kubectl: Path, busybox: Path, sized_mib: int) -> Layout:
    """Every kind of image, tagged by its kind, in one layout under ``out``."""
    layout = Layout(out / "layout")
    layout.tag("busybox", busybox_image(layout, busybox))
    layout.tag("pause", pause_image(layout, compile_pause(out)))
    layout.tag("kubectl", kubectl_image(layout, kubectl))
    layout.tag("shellless", shellless_image(layout))
    layout.tag("multiarch", multiarch_index(layout))
    layout.tag("sized", sized_image(layout, sized_mib))
    return layout


def destinations(sized_mib: int) -> dict:
    """Registry path -> kind, for every image pushed."""
    dest = {registry_path(ref): kind for ref, kind in STAND_INS.items()}
    dest.update(TEST_IMAGES)
    dest[f"{SIZED_REPO}:{sized_mib}mib"] = "sized"
    return dest


def push(layout: Layout, registry: str, sized_mib: int) -> None:
    for path, kind in sorted(destinations(sized_mib).items()):
        subprocess.run(
            ["skopeo", "copy", "--quiet", "--all", "--dest-tls-verify=false", f"oci:{layout.root}:{kind}", f"docker://{registry}/{path}"],
            check=True,
        )
