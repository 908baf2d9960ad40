"""OCI and Docker manifests, indexes and image configs, as a registry serves them. Pure.

Only what locking needs: the kind of a manifest, an index's per-platform
manifests, an image manifest's compressed size (the sum of its layers) and the
platform its config declares. Anything else is a :class:`MalformedManifest`
that says what is wrong, never a KeyError.
"""

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Mapping, Optional

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
IMAGE_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
# What we send as Accept: without the index types a registry would pick one platform for us.
ACCEPT = ", ".join(INDEX_TYPES + IMAGE_TYPES)
# The digest algorithms the OCI image spec registers; the encoded part is lowercase hex.
DIGEST = re.compile(r"^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$")
# Index entries that are not runnable images (BuildKit attestations carry platform unknown/unknown).
ATTESTATION_ANNOTATION = "vnd.docker.reference.type"


class MalformedManifest(ValueError):
    """A manifest, index or config that cannot be used, with the reason."""


@dataclass(frozen=True)
class Manifest:
    """A parsed manifest or index."""

    media_type: str
    children: tuple[tuple[str, str], ...] = ()
    """An index's ``(platform, digest)`` pairs in index order; empty for an image manifest."""
    size: int = 0
    """An image manifest's compressed size: the sum of its layer sizes."""
    config_digest: Optional[str] = None
    """An image manifest's config blob (it names the platform)."""

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES


def digest_of(body: bytes, algorithm: str = "sha256") -> str:
    """``sha256:<hex>`` of the exact bytes (a registry's digest is of the bytes it stores, not of re-encoded JSON)."""
    if algorithm not in ("sha256", "sha512"):
        raise MalformedManifest(f"unsupported digest algorithm {algorithm!r}")
    return f"{algorithm}:{hashlib.new(algorithm, body).hexdigest()}"


def _json(body: bytes, what: str) -> Mapping[str, Any]:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise MalformedManifest(f"the {what} is not JSON ({err})") from None
    if not isinstance(doc, dict):
        raise MalformedManifest(f"the {what} is not a JSON object")
    return doc


def _media_type(doc: Mapping[str, Any], content_type: Optional[str]) -> str:
    """The body's own mediaType, else the Content-Type, else its shape (OCI lets both omit it)."""
    declared = doc.get("mediaType") or (content_type or "").split(";")[0].strip()
    if declared in INDEX_TYPES + IMAGE_TYPES:
        return declared
    if doc.get("schemaVersion") == 1 or declared.startswith("application/vnd.docker.distribution.manifest.v1"):
        raise MalformedManifest("it is a Docker schema 1 manifest, which is deprecated and not supported: push the image again")
    if "manifests" in doc:
        return OCI_INDEX
    if "layers" in doc:
        return OCI_MANIFEST
    raise MalformedManifest(f"unknown manifest media type {declared or '(none)'!r}: expected one of {ACCEPT}")


def _digest(value: Any, where: str) -> str:
    if not isinstance(value, str) or not DIGEST.match(value):
        raise MalformedManifest(f"{where}: not a digest: {value!r}")
    return value


def platform_name(platform: Any) -> Optional[str]:
    """``os/arch[/variant]`` of an index entry's or config's platform; None when it names no real platform."""
    if not isinstance(platform, Mapping):
        return None
    os_, arch, variant = platform.get("os"), platform.get("architecture"), platform.get("variant")
    if not (isinstance(os_, str) and isinstance(arch, str)) or "unknown" in (os_, arch) or not os_ or not arch:
        return None
    return "/".join([os_, arch] + ([variant] if isinstance(variant, str) and variant else []))


def _children(doc: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    entries = doc.get("manifests")
    if not isinstance(entries, list):
        raise MalformedManifest("the index has no 'manifests' list")
    children: list[tuple[str, str]] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise MalformedManifest(f"manifests[{i}] is not an object")
        name = platform_name(entry.get("platform"))
        attestation = ATTESTATION_ANNOTATION in (entry.get("annotations") or {})
        nested = entry.get("mediaType") not in (None,) + IMAGE_TYPES
        if name is None or attestation or nested or name in seen:
            continue  # not a runnable image, or a platform already listed (a runtime takes the first match)
        seen.add(name)
        children.append((name, _digest(entry.get("digest"), f"manifests[{i}].digest")))
    if not children:
        raise MalformedManifest("the index lists no image manifest for any platform")
    return tuple(children)


def _layers_size(doc: Mapping[str, Any]) -> int:
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise MalformedManifest("the image manifest has no 'layers' list")
    total = 0
    for i, layer in enumerate(layers):
        size = layer.get("size") if isinstance(layer, Mapping) else None
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise MalformedManifest(f"layers[{i}].size is not a byte count: {size!r}")
        total += size
    return total


def parse_manifest(body: bytes, content_type: Optional[str] = None) -> Manifest:
    """Parse a manifest or index as served (``content_type`` from the response, used when the body names none)."""
    doc = _json(body, "manifest")
    media_type = _media_type(doc, content_type)
    if media_type in INDEX_TYPES:
        return Manifest(media_type, children=_children(doc))
    config = doc.get("config")
    if not isinstance(config, Mapping):
        raise MalformedManifest("the image manifest has no 'config' descriptor")
    return Manifest(media_type, size=_layers_size(doc), config_digest=_digest(config.get("digest"), "config.digest"))


def config_platform(body: bytes) -> str:
    """``os/arch[/variant]`` an image config declares (a single-platform image says it nowhere else)."""
    name = platform_name(_json(body, "image config"))
    if name is None:
        raise MalformedManifest("the image config names no os and architecture")
    return name


__all__ = [
    "ACCEPT",
    "DOCKER_LIST",
    "DOCKER_MANIFEST",
    "IMAGE_TYPES",
    "INDEX_TYPES",
    "MalformedManifest",
    "Manifest",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "config_platform",
    "digest_of",
    "parse_manifest",
    "platform_name",
]
