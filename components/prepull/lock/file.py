"""The lock file: every stack image's digest, per-platform manifest digests and sizes. Pure.

``stacks/prepull.<stack>.lock.yaml`` sits beside ``stacks/Pulumi.<stack>.yaml``
(docs/lock.md). :func:`parse_lock` and :func:`dump_lock` read and write it
(sorted keys, no timestamps: the same lock is the same bytes, and a moved tag
is a one-entry diff); :func:`apply_lock` turns a stack's references into
``repo:tag@digest``, checks that the lock matches the stack and that each
image exists for its pool's architectures, and gives lanes the sizes. The
network side (resolving tags) is in :mod:`prepull.lock.registry`.
"""

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, TypeVar

import yaml

from prepull.core.images import ImageRef, parse_image
from prepull.errors import PrePullInputError
from prepull.lock.oci import DIGEST
from prepull.stack.arches import KnownArches
from prepull.stack.pools import Pool, StackSpec

_T = TypeVar("_T")

LOCK_VERSION = 1
PLATFORM = re.compile(r"^[a-z0-9]+/[a-z0-9_]+(/[a-zA-Z0-9._-]+)?$")
ENTRY_KEYS = ("digest", "mediaType", "platforms")
PLATFORM_KEYS = ("digest", "size")


class LockError(PrePullInputError):
    """A lock file that cannot be used: unreadable, malformed, or stale. ``field`` starts with the file name."""


@dataclass(frozen=True)
class LockedPlatform:
    """One platform's image manifest."""

    digest: str
    size: int
    """Compressed bytes: the sum of the manifest's layer sizes (what a node downloads)."""


@dataclass(frozen=True)
class LockEntry:
    """What one image reference resolved to."""

    digest: str
    """The digest the tag pointed to: an index's for a multi-platform image, else the manifest's."""
    media_type: str
    platforms: Mapping[str, LockedPlatform]
    """``os/arch[/variant]`` -> its manifest (for a single manifest, one platform with ``digest``)."""

    def linux_arches(self) -> set[str]:
        """The architectures this image has a Linux manifest for."""
        return {p.split("/")[1] for p in self.platforms if p.startswith("linux/")}

    def size_for(self, arches: Optional[tuple[str, ...]]) -> Optional[int]:
        """Bytes a node of these arches downloads (the largest of them; all Linux platforms when None)."""
        sizes = [lp.size for p, lp in self.platforms.items() if p.startswith("linux/") and (arches is None or p.split("/")[1] in arches)]
        return max(sizes) if sizes else None


@dataclass(frozen=True)
class Lock:
    """A parsed lock file: canonical reference -> entry."""

    images: Mapping[str, LockEntry]


def lock_file_name(stack: str) -> str:
    """``prepull.<stack>.lock.yaml``: not ``Pulumi.*.yaml``, which Pulumi and the tooling take for a stack file."""
    return f"prepull.{stack}.lock.yaml"


def _need(value: object, kind: type[_T], field: str, what: str) -> _T:
    if not isinstance(value, kind) or isinstance(value, bool):
        raise LockError(field, value, f"must be {what}")
    return value


def _only(doc: Mapping[str, Any], keys: tuple[str, ...], field: str) -> None:
    for key in doc:
        if key not in keys:
            raise LockError(f"{field}.{key}", doc[key], f"unknown field; known: {', '.join(keys)}")
    for key in keys:
        if key not in doc:
            raise LockError(f"{field}.{key}", None, "is required")


def _digest(value: Any, field: str) -> str:
    if not isinstance(value, str) or not DIGEST.match(value):
        raise LockError(field, value, "must be a digest such as sha256:<64 hex digits>")
    return value


def _platform(name: Any, raw: Any, field: str) -> LockedPlatform:
    if not isinstance(name, str) or not PLATFORM.match(name):
        raise LockError(field, name, "a platform key must look like 'os/arch' or 'os/arch/variant'")
    _only(_need(raw, dict, field, "a mapping {digest, size}"), PLATFORM_KEYS, field)
    size = _need(raw["size"], int, f"{field}.size", "a whole number of bytes")
    if size < 0:
        raise LockError(f"{field}.size", size, "must not be negative")
    return LockedPlatform(_digest(raw["digest"], f"{field}.digest"), size)


def _entry(key: Any, raw: Any, field: str) -> LockEntry:
    try:
        ref = parse_image(key, field)
    except PrePullInputError as err:
        raise LockError(err.field, err.value, err.reason) from None
    if ref.canonical != key:
        raise LockError(field, key, f"must be written in canonical form {ref.canonical!r}")
    _only(_need(raw, dict, field, "a mapping {digest, mediaType, platforms}"), ENTRY_KEYS, field)
    digest = _digest(raw["digest"], f"{field}.digest")
    if ref.digest and ref.digest != digest:
        raise LockError(f"{field}.digest", digest, f"differs from the digest in the reference ({ref.digest})")
    media_type = _need(raw["mediaType"], str, f"{field}.mediaType", "a media type string")
    plats = _need(raw["platforms"], dict, f"{field}.platforms", "a mapping of platforms")
    platforms = {name: _platform(name, p, f"{field}.platforms[{name!r}]") for name, p in plats.items()}
    return LockEntry(digest, media_type, platforms)


def parse_lock(text: str, source: str) -> Lock:
    """Parse a lock file's text; a :class:`LockError` names ``source``, the entry and the field."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise LockError(source, "<file>", f"is not valid YAML: {err}") from None
    _only(_need(doc, dict, source, "a mapping {version, images}"), ("version", "images"), source)
    if doc["version"] != LOCK_VERSION:
        raise LockError(f"{source}: version", doc["version"], f"unsupported lock file version; this prepull reads version {LOCK_VERSION}")
    images = _need(doc["images"], dict, f"{source}: images", "a mapping of image references")
    return Lock({key: _entry(key, raw, f"{source}: images[{key!r}]") for key, raw in images.items()})


def _entry_doc(entry: LockEntry) -> dict[str, Any]:
    platforms = {name: {"digest": p.digest, "size": p.size} for name, p in entry.platforms.items()}
    return {"digest": entry.digest, "mediaType": entry.media_type, "platforms": platforms}


def dump_lock(lock: Lock, stack: str) -> str:
    """The lock file's text: a header, ``version``, then the entries with every key sorted."""
    header = (
        f"# prepull lock file of Pulumi.{stack}.yaml, written by `python -m prepull lock --stack {stack}`: do not edit.\n"
        "# Per image: the digest its tag resolved to and, per platform, the manifest digest and compressed size.\n"
    )
    images = {key: _entry_doc(lock.images[key]) for key in sorted(lock.images)}
    body = yaml.safe_dump({"images": images}, sort_keys=True, width=10_000, default_flow_style=False)
    return f"{header}version: {LOCK_VERSION}\n{body}"


# ---------------------------------------------------------------- applying a lock to a stack


def locked_reference(ref: ImageRef, entry: LockEntry) -> ImageRef:
    """``repo:tag@digest`` (``repo@digest`` without a tag): the tag stays for readers, the runtime pulls the digest.

    Built from ``ref``'s parts, not parsed again: what ``parse_image`` would make of that text.
    """
    text = f"{ref.repository}{':' + ref.tag if ref.tag else ''}@{entry.digest}"
    return ImageRef(original=text, domain=ref.domain, path=ref.path, tag=ref.tag, digest=entry.digest)


def _rerun(stack: str) -> str:
    return f"run `python -m prepull lock --stack {stack}`"


def check_matches(spec: StackSpec, lock: Lock, source: str, stack: str) -> None:
    """Every stack image has an entry, and every entry is a stack image: else an error naming them and the fix."""
    wanted: set[str] = set()
    for pool in spec.pools:
        for ref in pool.images:
            if ref.canonical not in lock.images:
                raise PrePullInputError(f"nodePools.{pool.name}.images", ref.original, f"is not in the lock file {source}: {_rerun(stack)}")
            wanted.add(ref.canonical)
    stale = sorted(set(lock.images) - wanted)
    if stale:
        raise LockError(
            f"{source}: images",
            stale,
            f"{len(stale)} {'entry matches' if len(stale) == 1 else 'entries match'} no image of Pulumi.{stack}.yaml any more "
            f"(removed or changed there), so the lock is stale: {_rerun(stack)}",
        )


def _restricted_arches(pool: Pool) -> dict[str, set[str]]:
    """{canonical: arches} of the images the pool's prepuller.imagePlatforms restricts."""
    raw = pool.prepuller.get("image_platforms")
    if not isinstance(raw, Mapping):
        return {}  # none, or not a mapping: build_plan reports that
    return {k.canonical: {str(p).split("/")[1] for p in v} for k, v in raw.items() if isinstance(k, ImageRef)}


def check_platforms(pool: Pool, known: KnownArches, refs: Sequence[ImageRef], lock: Lock) -> None:
    """Each image must have a locked Linux manifest for every architecture of the pool it is pulled on."""
    restricted = _restricted_arches(pool)
    for ref in refs:
        entry = lock.images[ref.canonical]
        needed = set(known.arches) & restricted.get(ref.canonical, set(known.arches))
        missing = sorted(needed - entry.linux_arches())
        if missing:
            raise PrePullInputError(
                f"nodePools.{pool.name}.images",
                ref.original,
                f"has no {', '.join('linux/' + a for a in missing)} image "
                f"(locked platforms: {', '.join(sorted(entry.platforms)) or 'none'}), but the pool's nodes "
                f"are {', '.join(known.arches)} ({known.source}): it would fail to pull there; remove it from the pool, restrict it "
                "with prepuller.imagePlatforms, or use an image built for that platform",
            )


def _locked_pool(pool: Pool, lock: Lock) -> Pool:
    """The pool with ``repo:tag@digest`` images (and imagePlatforms keys) and the images' sizes."""
    known = pool.node_arches()
    if known is not None:
        check_platforms(pool, known, pool.images, lock)
    locked = {ref.canonical: locked_reference(ref, lock.images[ref.canonical]) for ref in pool.images}
    sizes = [(locked[ref.canonical], lock.images[ref.canonical].size_for(known.arches if known else None)) for ref in pool.images]
    prepuller = dict(pool.prepuller)
    if isinstance(prepuller.get("image_platforms"), Mapping):
        # A key naming no image of the pool stays as it is: build_plan reports it.
        prepuller["image_platforms"] = {
            locked.get(k.canonical, k) if isinstance(k, ImageRef) else k: v for k, v in prepuller["image_platforms"].items()
        }
    known_sizes = [(ref, size) for ref, size in sizes if size is not None]
    return dataclasses.replace(
        pool,
        images=tuple(locked[ref.canonical] for ref in pool.images),
        # Every image's size, or none: lanes are never balanced on half the bytes.
        image_sizes=tuple(known_sizes) if len(known_sizes) == len(sizes) else (),
        prepuller=prepuller,
    )


def apply_lock(spec: StackSpec, lock: Lock, source: str, stack: str) -> StackSpec:
    """The stack with every image locked, checked against the lock and the pools' architectures.

    Its pre-pullers are built (and validated again, with the locked references) by ``pools.with_prepullers``.
    """
    check_matches(spec, lock, source, stack)
    return dataclasses.replace(spec, pools=tuple(_locked_pool(pool, lock) for pool in spec.pools), prepullers={})


def lock_changes(old: Optional[Lock], new: Lock) -> list[str]:
    """What writing ``new`` over ``old`` changes, one line per image, sorted (empty: nothing)."""
    before = old.images if old else {}
    lines = []
    for key in sorted(set(before) | set(new.images)):
        if key not in new.images:
            lines.append(f"removed  {key} (no longer in the stack)")
        elif key not in before:
            lines.append(f"added    {key} -> {new.images[key].digest}")
        elif before[key] != new.images[key]:
            was, now = before[key].digest, new.images[key].digest
            lines.append(f"changed  {key}: {was} -> {now}" if was != now else f"changed  {key}: platforms or sizes")
    return lines


def read_lock(path: Path) -> Optional[Lock]:
    """The lock file at ``path``, or None when there is none."""
    if not path.exists():
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise LockError(str(path), "<file>", f"cannot be read: {err}") from None
    return parse_lock(text, str(path))


def lock_stack(spec: StackSpec, stacks_dir: Path, stack: str) -> StackSpec:
    """``spec`` with its lock file applied when ``stacks_dir`` has one for ``stack``; unchanged otherwise."""
    path = Path(stacks_dir) / lock_file_name(stack)
    lock = read_lock(path)
    return spec if lock is None else apply_lock(spec, lock, str(path), stack)


__all__ = [
    "Lock",
    "LockEntry",
    "LockError",
    "LockedPlatform",
    "apply_lock",
    "check_matches",
    "check_platforms",
    "dump_lock",
    "lock_changes",
    "lock_file_name",
    "lock_stack",
    "locked_reference",
    "parse_lock",
    "read_lock",
]
