"""Manifests, indexes and configs as registries serve them (prepull.lock.oci): parsed, or refused with the reason."""

import hashlib
import json

import pytest

from prepull.lock.oci import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, MalformedManifest, config_platform, digest_of, parse_manifest

D1, D2, D3 = ("sha256:" + c * 64 for c in "123")


def body(doc) -> bytes:
    return json.dumps(doc).encode()


def image(media_type=OCI_MANIFEST, sizes=(10, 20)):
    return {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"digest": D1, "size": 5},
        "layers": [{"digest": D2, "size": s} for s in sizes],
    }


def index(*entries):
    return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": list(entries)}


def child(digest, os_="linux", arch="amd64", **extra):
    return {"mediaType": OCI_MANIFEST, "digest": digest, "size": 1, "platform": {"os": os_, "architecture": arch, **extra}}


def test_an_image_manifest_is_sized_by_its_layers():
    m = parse_manifest(body(image(DOCKER_MANIFEST, sizes=(100, 23))))
    assert (m.media_type, m.size, m.config_digest, m.is_index) == (DOCKER_MANIFEST, 123, D1, False)


def test_an_index_lists_its_platforms_in_order_without_attestations():
    attestation = {**child(D3, "unknown", "unknown"), "annotations": {"vnd.docker.reference.type": "attestation-manifest"}}
    m = parse_manifest(body(index(child(D1), child(D2, arch="arm", variant="v7"), attestation, child(D3))))
    assert m.is_index and m.children == (("linux/amd64", D1), ("linux/arm/v7", D2))  # the repeated linux/amd64 is dropped


def test_the_media_type_may_come_from_the_header_or_the_shape():
    doc = image()
    del doc["mediaType"]
    assert parse_manifest(body(doc), "application/vnd.docker.distribution.manifest.v2+json; charset=utf-8").media_type == DOCKER_MANIFEST
    assert parse_manifest(body(doc)).media_type == OCI_MANIFEST
    assert parse_manifest(body({"manifests": [child(D1)]})).is_index


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"<html>", "is not JSON"),
        (b"[1]", "not a JSON object"),
        (body({"schemaVersion": 1, "fsLayers": []}), "schema 1"),
        (body({"mediaType": "application/vnd.example+json"}), "unknown manifest media type 'application/vnd.example+json'"),
        (body(index()), "lists no image manifest"),
        (body(index(child(D1, "unknown", "unknown"))), "lists no image manifest"),
        (body(index(child("sha256:xyz"))), "manifests[0].digest: not a digest"),
        (body({**image(), "layers": [{"digest": D2, "size": -1}]}), "layers[0].size is not a byte count"),
        (body({**image(), "layers": "x"}), "no 'layers' list"),
        (body({k: v for k, v in image().items() if k != "config"}), "no 'config' descriptor"),
    ],
)
def test_malformed_manifests_say_why(raw, reason):
    with pytest.raises(MalformedManifest) as err:
        parse_manifest(raw)
    assert reason in str(err.value)


def test_a_config_names_the_platform():
    assert config_platform(body({"os": "linux", "architecture": "arm64", "variant": "v8"})) == "linux/arm64/v8"
    with pytest.raises(MalformedManifest, match="names no os and architecture"):
        config_platform(body({"os": "linux"}))


def test_digests_are_of_the_exact_bytes():
    assert digest_of(b"{}") == "sha256:" + hashlib.sha256(b"{}").hexdigest()
    assert digest_of(b"{}", "sha512").startswith("sha512:")
    with pytest.raises(MalformedManifest):
        digest_of(b"", "md5")
