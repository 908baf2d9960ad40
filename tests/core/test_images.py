"""Image reference parsing and normalisation (distribution grammar)."""

import pytest

from prepull.errors import PrePullInputError
from prepull.core.images import parse_image, parse_platform

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    "given, canonical",
    [
        ("nginx", "docker.io/library/nginx:latest"),
        ("nginx:1.27", "docker.io/library/nginx:1.27"),
        ("library/nginx:1.27", "docker.io/library/nginx:1.27"),
        ("index.docker.io/library/nginx:1.27", "docker.io/library/nginx:1.27"),
        ("bitnami/redis:7", "docker.io/bitnami/redis:7"),
        ("registry.example.com:5000/team/app:v1", "registry.example.com:5000/team/app:v1"),
        ("localhost/app", "localhost/app:latest"),
        (f"nginx@{DIGEST}", f"docker.io/library/nginx@{DIGEST}"),
        (f"ghcr.io/org/app:1.0@{DIGEST}", f"ghcr.io/org/app:1.0@{DIGEST}"),
    ],
)
def test_normalises_like_the_runtimes(given, canonical):
    assert parse_image(given, "images[0]").canonical == canonical


def test_short_hash_is_stable_and_differs_per_image():
    a = parse_image("nginx", "f")
    assert a.short_hash == parse_image("docker.io/library/nginx:latest", "f").short_hash
    assert a.short_hash != parse_image("nginx:1.27", "f").short_hash
    assert len(a.short_hash) == 8


@pytest.mark.parametrize(
    "bad",
    [
        "ngi nx:1.0",  # space
        " nginx",  # surrounding space
        "Nginx:1.0",  # uppercase repository
        "ghcr.io/Org/app:1",  # uppercase path
        "nginx:",  # empty tag
        "nginx::1",  # doubled separator
        "nginx@sha256:abc",  # short digest
        "nginx@md5:" + "a" * 32,  # unsupported algorithm
        "nginx@" + "ab" * 32,  # digest without algorithm
        ":1.0",  # no repository
        "@" + DIGEST,  # digest only
        "nginx:-1",  # tag may not start with '-'
        "",
    ],
)
def test_rejects_malformed_references(bad):
    with pytest.raises(PrePullInputError) as exc:
        parse_image(bad, "images[3]")
    assert exc.value.field == "images[3]"
    assert exc.value.value == bad
    assert "images[3]" in str(exc.value) and repr(bad) in str(exc.value)


def test_rejects_non_strings():
    with pytest.raises(PrePullInputError, match=r"images\[0\]: an image reference must be a string"):
        parse_image(42, "images[0]")


@pytest.mark.parametrize("given, arch", [("linux/amd64", "amd64"), ("linux/arm64", "arm64"), ("linux/arm/v7", "arm")])
def test_platforms(given, arch):
    assert parse_platform(given, "p").arch == arch


@pytest.mark.parametrize("bad", ["linux", "linux/sparc", "windows/amd64", "darwin/arm64", "linux//v7", "linux/arm64/v8/x", 3])
def test_rejects_unknown_platforms(bad):
    with pytest.raises(PrePullInputError) as exc:
        parse_platform(bad, "image_platforms['x'][0]")
    assert exc.value.field == "image_platforms['x'][0]"
