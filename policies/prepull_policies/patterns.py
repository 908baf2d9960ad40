"""The image pattern grammar of the ``allowedImages`` setting and the mirror layout.

Patterns are normalised with the same distribution-reference code as images
(``prepull.core.images.parse_image``), so ``nginx:*`` means
``docker.io/library/nginx:*`` and a registry is never confused with a path.
The grammar is documented in docs/policies.md ("Pattern grammar"); in short::

    pattern    = repository [ ":" tag ] [ "@" digest ]
    repository = [ registry "/" ] path         registry: literal host[:port], no wildcard
    path       = components, "*" = any run of characters except "/",
                 "**" = any run of characters including "/"
    tag        = tag characters and "*" (any run of tag characters)
    digest     = algorithm ":" ( hex | "*" )   algorithm: sha256, sha384 or sha512

A part left out is not constrained: ``ghcr.io/org/app`` allows every tag and
digest of that repository.
"""

import functools
import re
from dataclasses import dataclass
from typing import Optional

from prepull.core.images import ImageRef, parse_image
from prepull.errors import PrePullInputError

# Stand-ins for the wildcards while the repository part goes through the
# reference parser: valid path-component text that no real pattern contains.
_WILDCARD = "xprepullwildcardx"
_GLOBSTAR = "xprepullglobstarx"

_TAG_PATTERN = re.compile(r"^[A-Za-z0-9_*][A-Za-z0-9_.*-]{0,127}$")
_DIGEST_PATTERN = re.compile(r"^(sha256|sha384|sha512):(\*|[0-9a-f]+)$")
_DIGEST_HEX_LEN = {"sha256": 64, "sha384": 96, "sha512": 128}


class PatternError(ValueError):
    """A malformed ``allowedImages`` pattern or ``mirrorRegistry`` value."""


MAX_SHOWN = 200
"""How many characters of a user-supplied value (image, pattern, name, path) a message shows."""


def shorten(text: str, limit: int = MAX_SHOWN) -> str:
    """``text`` cut to ``limit`` characters, with a marker saying how much was left out.

    Messages quote images and config values as written; a value of any length
    must not make a message of that length.
    """
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...[{len(text) - limit} more characters]"


def shown(value: object) -> str:
    """``repr(value)``, shortened: how messages quote a config value."""
    return shorten(repr(value))


@dataclass(frozen=True)
class ImagePattern:
    """A parsed ``allowedImages`` pattern."""

    text: str
    """The pattern as written (kept for messages)."""
    domain: str
    """Registry host[:port], lower-cased (host names are case-insensitive)."""
    path: str
    """Normalised path, wildcards written back as ``*`` / ``**``."""
    path_regex: "re.Pattern"
    tag_regex: Optional["re.Pattern"]
    """None when the pattern has no tag part (any tag, or none, matches)."""
    digest_algorithm: Optional[str]
    """None when the pattern has no digest part (any digest, or none, matches)."""
    digest_hex: Optional[str]
    """None for ``@<algorithm>:*`` (any digest of that algorithm)."""

    def matches(self, ref: ImageRef) -> bool:
        """Whether a parsed image is allowed by this pattern."""
        if ref.domain.lower() != self.domain or not self.path_regex.fullmatch(ref.path):
            return False
        if self.tag_regex is not None and (ref.tag is None or not self.tag_regex.fullmatch(ref.tag)):
            return False
        if self.digest_algorithm is not None:
            if ref.digest is None:
                return False
            algorithm, _, hex_ = ref.digest.partition(":")
            if algorithm != self.digest_algorithm or (self.digest_hex is not None and hex_ != self.digest_hex):
                return False
        return True


def _split_tag(repo_tag: str) -> tuple:
    # A ":" after the last "/" starts the tag; one before it belongs to a registry port.
    colon = repo_tag.find(":", repo_tag.rfind("/") + 1)
    return (repo_tag, None) if colon < 0 else (repo_tag[:colon], repo_tag[colon + 1 :])


def _glob_regex(text: str) -> "re.Pattern":
    out = re.escape(text).replace(_GLOBSTAR, ".*").replace(_WILDCARD, "[^/]*")
    return re.compile(out)


def parse_pattern(text: object) -> ImagePattern:
    """Parse one ``allowedImages`` entry or raise :class:`PatternError` saying what is wrong.

    Any value is accepted: the type is checked here, before the cache, because
    config values such as lists and objects cannot be cache keys.
    """
    if not isinstance(text, str):
        raise PatternError(f"a pattern must be a string, got {type(text).__name__} {shown(text)}")
    return _parse_pattern(text)


@functools.lru_cache(maxsize=1024)
def _parse_pattern(text: str) -> ImagePattern:
    if not text or text != text.strip():
        raise PatternError(f"a pattern must be non-empty and have no surrounding spaces, got {shown(text)}")
    if _WILDCARD in text.lower() or _GLOBSTAR in text.lower():
        raise PatternError(f"{shown(text)} contains a reserved word")
    repo_tag, at, digest = text.partition("@")
    repo, tag = _split_tag(repo_tag)
    if not repo:
        raise PatternError(f"{shown(text)} has no repository")
    # Parts are checked left to right, so a pattern with several mistakes names the first.
    domain, path = _parse_repository(text, repo)
    tag_regex = _parse_tag(text, tag)
    digest_algorithm, digest_hex = _parse_digest(text, digest) if at else (None, None)
    written_path = path.replace(_GLOBSTAR, "**").replace(_WILDCARD, "*")
    return ImagePattern(text, domain, written_path, _glob_regex(path), tag_regex, digest_algorithm, digest_hex)


def _parse_repository(text: str, repo: str) -> tuple:
    """``(registry, path)`` of a pattern's repository part; the path keeps the wildcard stand-ins."""
    # Wildcards stand for path characters: substitute valid text so the
    # repository is normalised exactly as images are.
    substituted = repo.replace("**", _GLOBSTAR).replace("*", _WILDCARD)
    try:
        ref = parse_image(substituted, "pattern")
    except PrePullInputError as exc:
        raise PatternError(f"{shown(text)} is not a valid pattern: {shorten(exc.reason)}") from None
    if _WILDCARD in ref.domain or _GLOBSTAR in ref.domain:
        raise PatternError(f"{shown(text)}: the registry cannot contain wildcards; write the registry host out exactly")
    path = ref.path
    # "docker.io/**" spans paths of any depth, so Docker Hub's "library/" prefix
    # for one-component names must not be added to it.
    first, _, rest = substituted.partition("/")
    written = rest if rest and _is_registry(first) else substituted
    if path == f"library/{written}" and _GLOBSTAR in written:
        path = written
    return ref.domain.lower(), path


def _parse_tag(text: str, tag: Optional[str]) -> Optional["re.Pattern"]:
    """The regex of a pattern's tag part, or None when it has none."""
    if tag is None:
        return None
    if not _TAG_PATTERN.fullmatch(tag):
        raise PatternError(f"{shown(text)}: {shown(tag)} is not a valid tag pattern (tag characters A-Z a-z 0-9 _ . - and *)")
    return re.compile(".*".join(re.escape(piece) for piece in tag.split("*")))


def _parse_digest(text: str, digest: str) -> tuple:
    """``(algorithm, hex)`` of a pattern's digest part; ``hex`` is None for ``<algorithm>:*``."""
    m = _DIGEST_PATTERN.fullmatch(digest)
    if not m:
        raise PatternError(f"{shown(text)}: {shown(digest)} is not a digest pattern (sha256:<hex>, sha256:*, sha384:..., sha512:...)")
    algorithm, hex_ = m.group(1), m.group(2)
    if hex_ == "*":
        return algorithm, None
    if len(hex_) != _DIGEST_HEX_LEN[algorithm]:
        raise PatternError(f"{shown(text)}: a {algorithm} digest has {_DIGEST_HEX_LEN[algorithm]} hex characters")
    return algorithm, hex_


def _is_registry(component: str) -> bool:
    # The distribution rule: the first component is a registry when it has a dot or port, or is localhost.
    return "." in component or ":" in component or component == "localhost"


@dataclass(frozen=True)
class Mirror:
    """A ``mirrorRegistry``: ``host[:port][/prefix]``.

    An image ``<registry>/<path>`` is pulled through it as
    ``<host[:port]>[/<prefix>]/<registry>/<path>`` with its tag and digest kept.
    """

    text: str
    domain: str
    prefix: str
    """Path under the mirror host, without slashes at the ends; may be empty."""

    def _root(self) -> str:
        return f"{self.domain}/{self.prefix}" if self.prefix else self.domain

    def mirrored(self, ref: ImageRef) -> Optional[str]:
        """The image's reference on the mirror, or None when it cannot be written as one.

        Images from a registry with a port cannot be mirrored: a port is not
        valid inside a repository path.
        """
        tail = (f":{ref.tag}" if ref.tag else "") + (f"@{ref.digest}" if ref.digest else "")
        candidate = f"{self._root()}/{ref.domain.lower()}/{ref.path}{tail}"
        try:
            return parse_image(candidate, "mirrored image").canonical
        except PrePullInputError:
            return None

    def upstream(self, ref: ImageRef) -> Optional[ImageRef]:
        """The original image of a reference on this mirror, or None when ``ref`` is not a mirrored image."""
        if ref.domain.lower() != self.domain:
            return None
        path = ref.path
        if self.prefix:
            if not path.startswith(self.prefix + "/"):
                return None
            path = path[len(self.prefix) + 1 :]
        first, _, rest = path.partition("/")
        if not rest or not _is_registry(first):
            return None
        tail = (f":{ref.tag}" if ref.tag else "") + (f"@{ref.digest}" if ref.digest else "")
        try:
            up = parse_image(f"{path}{tail}", "mirrored image")
        except PrePullInputError:
            return None
        return up if up.domain == first else None


def parse_mirror(text: object) -> Mirror:
    """Parse a ``mirrorRegistry`` value or raise :class:`PatternError` (any value is accepted, as in :func:`parse_pattern`)."""
    if not isinstance(text, str):
        raise PatternError(f"mirrorRegistry must be a string such as 'mirror.example.com', got {type(text).__name__} {shown(text)}")
    return _parse_mirror(text)


@functools.lru_cache(maxsize=64)
def _parse_mirror(text: str) -> Mirror:
    value = text.rstrip("/")
    first, _, prefix = value.partition("/")
    if not value or value != text.strip() or "@" in value or not _is_registry(first) or "*" in value:
        raise PatternError(
            "mirrorRegistry must be a registry host[:port] with an optional path prefix, "
            f"such as 'mirror.example.com/cache', got {shown(text)}"
        )
    try:
        probe = parse_image(f"{value}/probe", "mirrorRegistry")
    except PrePullInputError as exc:
        raise PatternError(f"mirrorRegistry {shown(text)} is not a valid registry and path prefix: {shorten(exc.reason)}") from None
    if probe.domain != first or probe.tag != "latest":
        raise PatternError(f"mirrorRegistry {shown(text)} is not a valid registry and path prefix")
    return Mirror(text, first.lower(), prefix)
