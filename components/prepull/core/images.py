"""Image references: parsing, normalisation and platforms.

Parsing follows the distribution reference grammar through ``docker-image-py``
(a port of github.com/distribution/reference), so ``nginx`` and
``docker.io/library/nginx:latest`` are recognised as the same image, and
registry hosts with ports, tags and digests are handled the way the
container runtimes handle them.
"""

import hashlib
from dataclasses import dataclass
from functools import cached_property
from typing import Optional

from docker_image.digest import InvalidDigest
from docker_image.reference import InvalidReference, Reference

from prepull.errors import PrePullInputError

# The values the kubelet reports in the `kubernetes.io/arch` node label for
# Linux nodes (GOARCH names). Windows nodes are never selected (see manifests).
KNOWN_ARCHES = ("386", "amd64", "arm", "arm64", "ppc64le", "riscv64", "s390x")
KNOWN_OSES = ("linux",)


@dataclass(frozen=True)
class ImageRef:
    """A parsed, normalised image reference."""

    original: str
    """The reference exactly as the user wrote it (kept for messages)."""
    domain: str
    """Registry host, with port if any (``docker.io`` when implicit)."""
    path: str
    """Repository path (``library/nginx`` for official Docker Hub images)."""
    tag: Optional[str]
    """Tag, or None when only a digest was given."""
    digest: Optional[str]
    """``algorithm:hex`` digest, or None."""

    @cached_property
    def repository(self) -> str:
        """Fully qualified repository: ``docker.io/library/nginx``."""
        return f"{self.domain}/{self.path}"

    @cached_property
    def canonical(self) -> str:
        """The normalised reference used for comparison and deduplication.

        An image with neither tag nor digest gets ``:latest``, as the runtimes
        do; an image with a digest keeps its tag only for readability.
        """
        out = self.repository
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    @cached_property
    def identity(self) -> str:
        """What makes two references the same image: with a digest, the repository and digest
        (the runtime pulls by digest and ignores the tag); otherwise the canonical form."""
        return f"{self.repository}@{self.digest}" if self.digest else self.canonical

    @property
    def pull_reference(self) -> str:
        """What a registry is asked for: the digest if any, else the tag (``latest`` when neither, as the runtimes do)."""
        return self.digest or self.tag or "latest"

    @cached_property
    def short_hash(self) -> str:
        """8 hex chars of sha256(canonical): stable per image, for names."""
        return hashlib.sha256(self.canonical.encode()).hexdigest()[:8]


def parse_image(value: object, field: str) -> ImageRef:
    """Parse one reference or raise :class:`PrePullInputError` naming ``field``."""
    if not isinstance(value, str):
        raise PrePullInputError(field, value, "an image reference must be a string")
    if value != value.strip() or not value:
        raise PrePullInputError(field, value, "an image reference must be non-empty and have no surrounding spaces")
    try:
        ref = Reference.parse_normalized_named(value)
    except (InvalidReference, InvalidDigest) as exc:
        raise PrePullInputError(field, value, f"not a valid image reference: {exc}") from None
    tag = ref["tag"]
    digest = ref["digest"]
    if tag is None and digest is None:
        tag = "latest"
    # Registry host names are case-insensitive: one spelling, so duplicates are found.
    return ImageRef(original=value, domain=ref.domain().lower(), path=ref.path(), tag=tag, digest=digest)


@dataclass(frozen=True, order=True)
class Platform:
    """A node platform, ``os/arch[/variant]``."""

    os: str
    arch: str
    variant: Optional[str] = None

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.arch, self.variant) if p)


def parse_platform(value: object, field: str) -> Platform:
    """Parse ``linux/arm64`` (or ``linux/arm/v7``) or raise naming ``field``.

    Nodes expose only ``kubernetes.io/os`` and ``kubernetes.io/arch``, so a
    variant is accepted for documentation but cannot narrow node selection.
    """
    if not isinstance(value, str):
        raise PrePullInputError(field, value, "a platform must be a string such as 'linux/arm64'")
    parts = value.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise PrePullInputError(field, value, "a platform must look like 'os/arch' or 'os/arch/variant', e.g. 'linux/arm64'")
    os_, arch = parts[0], parts[1]
    if os_ not in KNOWN_OSES:
        raise PrePullInputError(field, value, f"unknown or unsupported platform OS {os_!r}; supported: {', '.join(KNOWN_OSES)}")
    if arch not in KNOWN_ARCHES:
        raise PrePullInputError(field, value, f"unknown platform architecture {arch!r}; known: {', '.join(KNOWN_ARCHES)}")
    return Platform(os_, arch, parts[2] if len(parts) == 3 else None)
