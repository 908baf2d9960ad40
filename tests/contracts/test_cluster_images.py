"""The local cluster's stand-in images (tests/cluster/images.py), checked offline.

The cluster tier can only pull what `up` pushed: every image our defaults and the dev stack
name must have a stand-in, and the layouts must be valid OCI (digests and sizes that match).
"""

import gzip
import hashlib
import importlib.util
import io
import json
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from prepull.args import DEFAULTS

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "cluster"))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))  # test_e2e.py imports cluster_env
import images  # noqa: E402

_e2e_spec = importlib.util.spec_from_file_location("prepull_e2e_for_images", ROOT / "tests" / "e2e" / "test_e2e.py")


# The docker-socket method talks to a Docker daemon on the node; the local cluster's node runs
# containerd only, so that method (and its CLI image) cannot run there.
NOT_ON_A_CONTAINERD_NODE = {"docker_cli_image"}


def default_images() -> set:
    return {value for key, value in DEFAULTS.items() if key.endswith("_image") and key not in NOT_ON_A_CONTAINERD_NODE}


def dev_stack_images() -> set:
    config = yaml.safe_load((ROOT / "stacks" / "Pulumi.dev.yaml").read_text())["config"]
    found = set(config.get("prepull:images") or [])
    for pool in config["prepull:nodePools"]:
        found.update(pool.get("images") or [])
    return found


def test_every_default_image_has_a_stand_in():
    assert default_images(), "DEFAULTS names no *_image"
    assert default_images() <= set(images.STAND_INS), default_images() - set(images.STAND_INS)


def test_every_dev_stack_image_and_the_added_one_have_a_stand_in():
    e2e = importlib.util.module_from_spec(_e2e_spec)
    _e2e_spec.loader.exec_module(e2e)
    needed = dev_stack_images() | {e2e.ADDED_IMAGE}
    assert needed <= set(images.STAND_INS), needed - set(images.STAND_INS)
    # The e2e test's shell-less image is the bare stand-in.
    assert images.STAND_INS[e2e.SHELL_LESS_IMAGE] == "shellless"


def test_mirrored_hosts_are_every_registry_named():
    assert images.mirrored_hosts() == ["docker.io", "gcr.io", "ghcr.io", "registry.k8s.io"]
    assert images.registry_path("docker.io/library/busybox:1.37.0-musl") == "library/busybox:1.37.0-musl"


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    root = tmp_path_factory.mktemp("oci")
    fake = root / "fake-binary"
    fake.write_bytes(b"\x7fELF not really")
    out = images.Layout(root / "layout")
    out.tag("busybox", images.busybox_image(out, "a/busybox:1", fake))
    out.tag("python", images.busybox_image(out, "a/python:1", fake))
    out.tag("shellless", images.shellless_image(out, "a/shellless:1"))
    out.tag("multiarch", images.multiarch_index(out, "a/multiarch:1"))
    out.tag("sized", images.sized_image(out, "a/sized:1", 1))
    return out


def blob(layout, descriptor) -> bytes:
    data = (layout.root / "blobs" / "sha256" / descriptor["digest"].split(":")[1]).read_bytes()
    assert len(data) == descriptor["size"] and hashlib.sha256(data).hexdigest() == descriptor["digest"].split(":")[1]
    return data


def tagged(layout, name) -> dict:
    index = json.loads((layout.root / "index.json").read_text())
    return next(m for m in index["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == name)


def files(layout, manifest_descriptor) -> dict:
    """Path -> TarInfo of every layer of one image manifest, each blob's digest and size checked."""
    manifest = json.loads(blob(layout, manifest_descriptor))
    config = json.loads(blob(layout, manifest["config"]))
    found = {}
    for layer, diff_id in zip(manifest["layers"], config["rootfs"]["diff_ids"]):
        raw = gzip.decompress(blob(layout, layer))
        assert "sha256:" + hashlib.sha256(raw).hexdigest() == diff_id
        with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
            found.update({m.name: m for m in tar.getmembers()})
    return found


def test_the_shell_less_image_has_no_shell_and_no_true(layout):
    names = files(layout, tagged(layout, "shellless"))
    assert not any(n.startswith("bin/") or n.endswith(("/sh", "/true")) for n in names), sorted(names)
    assert "etc/passwd" in names


def test_the_busybox_image_has_the_applets_the_untaint_script_and_probes_use(layout):
    names = files(layout, tagged(layout, "busybox"))
    for applet in ("sh", "true", "sleep"):
        assert names[f"bin/{applet}"].issym() and names[f"bin/{applet}"].linkname == "busybox"


def test_the_multi_architecture_index_names_two_platforms(layout):
    index = json.loads(blob(layout, tagged(layout, "multiarch")))
    assert [m["platform"]["architecture"] for m in index["manifests"]] == ["amd64", "arm64"]
    for manifest in index["manifests"]:
        assert files(layout, manifest)["arch.txt"].size > 0


def test_the_sized_image_is_as_big_as_asked_and_incompressible(layout):
    manifest = json.loads(blob(layout, tagged(layout, "sized")))
    assert manifest["layers"][0]["size"] > 1024 * 1024  # gzip could not shrink it below 1 MiB


def test_two_stand_ins_of_one_kind_have_different_digests(layout):
    # The kubelet lists at most 5 names per image in node.status.images: shared digests would hide tags.
    assert tagged(layout, "busybox")["digest"] != tagged(layout, "python")["digest"]
    assert files(layout, tagged(layout, "python"))["etc/prepull-stand-in"].size == len("a/python:1\n")


def test_the_layout_is_byte_identical_when_built_twice(tmp_path):
    first, second = images.Layout(tmp_path / "a"), images.Layout(tmp_path / "b")
    assert images.shellless_image(first, "x") == images.shellless_image(second, "x")
    assert images.multiarch_index(first, "x") == images.multiarch_index(second, "x")


def test_layout_tags_keep_paths_apart():
    paths = images.destinations(64)
    assert len({images.layout_tag(p) for p in paths}) == len(paths)
    assert all(":" not in images.layout_tag(p) for p in paths)
