"""The local cluster's images: built here as OCI layouts, pushed to its loopback registry.

Nothing comes from the internet. Every image is made of local files: the static busybox of
Debian's busybox-static, the kubectl that tests/cluster/build compiled, a pause built from
pause.c, and generated data. They are *stand-ins*: containerd's mirror configuration (see
cluster.py) sends every pull of ``docker.io``, ``registry.k8s.io``, ``ghcr.io`` and ``gcr.io`` to
the loopback registry, so the references our defaults and the dev stack name resolve, unchanged,
to these images. They prove pulls, shells and exit codes, not the upstream images' contents.

Standard library only: ``up`` runs before any virtualenv exists.
"""

import functools
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
# image the e2e test adds. tests/contracts/test_cluster_images.py keeps both groups complete.
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


@functools.lru_cache(maxsize=None)
def _gzip(data: bytes) -> bytes:
    # Cached: the sized image's big layer is shared by every image made of it.
    return gzip.compress(data, compresslevel=1, mtime=0)


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

    def image(self, tars, config: dict, label: str, arch: str = "amd64") -> dict:
        """The manifest descriptor of an image of the given uncompressed layer tars.

        A last small layer holds ``label`` (the reference it stands in for), so that no two
        stand-ins share a digest: the kubelet lists at most 5 names per image in
        node.status.images, and one image under many tags would hide some of them.
        """
        tars = [*tars, layer([("etc/prepull-stand-in", f"{label}\n".encode(), 0o644, "")])]
        layers = [self.blob(_gzip(t), "application/vnd.oci.image.layer.v1.tar+gzip") for t in tars]
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


def busybox_image(layout: Layout, label: str, busybox: Path) -> dict:
    entries = [("bin/", None, 0o755, ""), ("bin/busybox", busybox.read_bytes(), 0o755, "")]
    entries += [(f"bin/{applet}", None, 0o777, "busybox") for applet in BUSYBOX_APPLETS]
    return layout.image([layer(entries + [("tmp/", None, 0o1777, "")])], {"Cmd": ["sh"]}, label)


def pause_image(layout: Layout, label: str, pause: Path) -> dict:
    return layout.image([layer([("pause", pause.read_bytes(), 0o755, "")])], {"Entrypoint": ["/pause"], "User": "65535:65535"}, label)


def kubectl_image(layout: Layout, label: str, kubectl: Path) -> dict:
    entries = [("bin/", None, 0o755, ""), ("bin/kubectl", kubectl.read_bytes(), 0o755, "")]
    return layout.image([layer(entries)], {"Entrypoint": ["/bin/kubectl"]}, label)


def shellless_image(layout: Layout, label: str) -> dict:
    """Like distroless/static: a passwd file and data, no shell and no `true` binary."""
    entries = [
        ("etc/", None, 0o755, ""),
        ("etc/passwd", b"root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n", 0o644, ""),
        ("home/nonroot/", None, 0o700, ""),
        ("data/stand-in.txt", b"prepull test image: no shell, no true\n", 0o644, ""),
    ]
    return layout.image([layer(entries)], {"User": "65532"}, label)


def multiarch_index(layout: Layout, label: str) -> dict:
    manifests = [layout.image([layer([("arch.txt", f"{arch}\n".encode(), 0o644, "")])], {}, label, arch) for arch in ("amd64", "arm64")]
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests}
    return layout.json_blob(index, index["mediaType"])


@functools.lru_cache(maxsize=None)
def _sized_layer(mib: int) -> bytes:
    return layer([("data/blob", random.Random(mib).randbytes(mib * 1024 * 1024), 0o644, "")])


def sized_image(layout: Layout, label: str, mib: int) -> dict:
    """One layer of ``mib`` MiB of incompressible (seeded, so reproducible) bytes."""
    return layout.image([_sized_layer(mib)], {}, label)


def compile_pause(out: Path) -> Path:
    binary = out / "pause"
    subprocess.run(["gcc", "-static", "-Os", "-s", "-o", str(binary), str(Path(__file__).with_name("pause.c"))], check=True)
    return binary


def layout_tag(path: str) -> str:
    """The layout's name for the image pushed to ``path`` (a layout tag cannot hold ':')."""
    return path.replace("/", "_").replace(":", "_")


def build(out: Path, kubectl: Path, busybox: Path, sized_mib: int) -> Layout:
    """Every image to push, each its own (see Layout.image), in one layout under ``out``."""
    layout = Layout(out / "layout")
    pause = compile_pause(out)
    makers = {
        "busybox": lambda label: busybox_image(layout, label, busybox),
        "pause": lambda label: pause_image(layout, label, pause),
        "kubectl": lambda label: kubectl_image(layout, label, kubectl),
        "shellless": lambda label: shellless_image(layout, label),
        "multiarch": lambda label: multiarch_index(layout, label),
        "sized": lambda label: sized_image(layout, label, sized_mib),
    }
    for path, kind in sorted(destinations(sized_mib).items()):
        layout.tag(layout_tag(path), makers[kind](path))
    return layout


def destinations(sized_mib: int) -> dict:
    """Registry path -> kind, for every image pushed."""
    dest = {registry_path(ref): kind for ref, kind in STAND_INS.items()}
    dest.update(TEST_IMAGES)
    dest[f"{SIZED_REPO}:{sized_mib}mib"] = "sized"
    return dest


def push(layout: Layout, registry: str, sized_mib: int) -> None:
    for path in sorted(destinations(sized_mib)):
        subprocess.run(
            [
                "skopeo",
                "copy",
                "--quiet",
                "--all",
                "--dest-tls-verify=false",
                f"oci:{layout.root}:{layout_tag(path)}",
                f"docker://{registry}/{path}",
            ],
            check=True,
        )
