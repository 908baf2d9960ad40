"""Pull times for ``status``: the kubelet's own figures from its events, else derived from timestamps.

The kubelet records each pull as an event on the pod (``reason=Pulled``)::

    Successfully pulled image "X" in 1.234s (1.234s including waiting). Image size: 1234 bytes.
    Container image "X" already present on machine

and each failed pull as ``reason=Failed``: ``Failed to pull image "X": <the runtime's error>``.
Events expire (the API server keeps them an hour by default); for an older pull the time is
derived from the pod's init containers instead: a pod's init containers run one after another, and
the kubelet pulls container *i*'s image after container *i-1* finished and before *i* starts, so
``startedAt(i) - finishedAt(i-1)`` bounds the pull from above (it includes creating the container).
Such a time is marked ``derived``. Everything here is pure: parsed text and timestamps in, numbers out.
"""

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Optional

from prepull.core.kobject import KubeView

EVENT = "event"
DERIVED = "derived"
CACHED = "cached"  # the kubelet found the image already there: no pull, no time

# Go's time.Duration.String(): "1.234s", "567ms", "1m2.5s", "1h0m0s", "0s".
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PULLED = re.compile(
    r'^Successfully pulled image "(?P<image>[^"]+)" in (?P<took>\S+?)'
    r"(?: \((?P<waiting>\S+) including waiting\))?(?:\. Image size: (?P<size>\d+) bytes)?\.?$"
)
_ALREADY_PRESENT = re.compile(r'^Container image "(?P<image>[^"]+)" already present on machine')
_FAILED_PULL = re.compile(r'^Failed to pull image "(?P<image>[^"]+)": (?P<error>.+)$', re.S)
# The container an event is about: "spec.initContainers{pull-nginx-0123abcd}".
_FIELD_PATH = re.compile(r"^spec\.(?:initContainers|containers)\{(?P<name>[^}]+)\}$")


@dataclass(frozen=True)
class Pulled:
    """One pull the kubelet reported: its time and size, or that the image was already there."""

    image: str
    seconds: Optional[float]
    waiting_seconds: Optional[float] = None
    size_bytes: Optional[int] = None
    cached: bool = False


def go_duration_seconds(text: str) -> Optional[float]:
    """Seconds in a Go duration string (``1.234s``, ``567ms``, ``1m2.5s``), or None if it is not one."""
    if text == "0":
        return 0.0
    total, position = 0.0, 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            return None
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    return total if position and position == len(text) else None


def parse_pulled(message: str) -> Optional[Pulled]:
    """The figures of a ``reason=Pulled`` event message, or None for any other text."""
    match = _PULLED.match(message.strip())
    if match:
        waiting = go_duration_seconds(match["waiting"]) if match["waiting"] else None
        size = int(match["size"]) if match["size"] else None
        return Pulled(match["image"], go_duration_seconds(match["took"]), waiting, size)
    match = _ALREADY_PRESENT.match(message.strip())
    return Pulled(match["image"], None, cached=True) if match else None


def parse_time(value: Optional[str]) -> Optional[datetime]:
    """An RFC 3339 timestamp as the API server writes it (``2025-01-02T03:04:05Z``, micro-seconds in eventTime)."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def derived_seconds(previous_finished: Optional[str], started: Optional[str]) -> Optional[float]:
    """Seconds from the previous init container's end to this one's start (see the module docstring)."""
    begin, end = parse_time(previous_finished), parse_time(started)
    if begin is None or end is None:
        return None
    return max(0.0, (end - begin).total_seconds())


def _event_time(event: KubeView) -> float:
    """When the event last happened, as a number (0 if it carries no time): the later event wins."""
    meta = event.get("metadata") or {}
    for value in (event.get("lastTimestamp"), event.get("eventTime"), event.get("firstTimestamp"), meta.get("creationTimestamp")):
        parsed = parse_time(value)
        if parsed:
            return parsed.timestamp()
    return 0.0


def pod_key(pod_meta: KubeView) -> str:
    """How events name a pod: its uid, else (recorded objects without one) its name."""
    return pod_meta.get("uid") or pod_meta.get("name") or ""


# (pod uid or name, "image" or "container", the image or the container name)
EventKey = tuple[str, str, str]


def _keys(event: KubeView, image: str) -> tuple[EventKey, ...]:
    involved = event.get("involvedObject") or {}
    pod = involved.get("uid") or involved.get("name") or ""
    container = _FIELD_PATH.match(involved.get("fieldPath") or "")
    keys: list[EventKey] = [(pod, "image", image)]
    if container:
        keys.append((pod, "container", container["name"]))
    return tuple(keys)


@dataclass
class EventIndex:
    """The latest Pulled and Failed events per pod, by container and by image."""

    pulled: dict[EventKey, Pulled]
    failed: dict[EventKey, str]

    def pull_of(self, pod: str, container: str, image: str) -> Optional[Pulled]:
        """The pull of ``image`` by ``container`` of ``pod`` (by container first: two containers may share an image)."""
        return self.pulled.get((pod, "container", container)) or self.pulled.get((pod, "image", image))

    def failure_of(self, pod: str, container: str, image: str) -> Optional[str]:
        """The runtime's error for the last failed pull of ``image`` in ``pod``, or None."""
        return self.failed.get((pod, "container", container)) or self.failed.get((pod, "image", image))


def index_events(events: Iterable[KubeView]) -> EventIndex:
    """Index ``reason=Pulled`` and ``reason=Failed`` pod events; a later event replaces an earlier one."""
    pulled: dict[EventKey, Pulled] = {}
    failed: dict[EventKey, str] = {}
    for event in sorted(events, key=_event_time):
        message = event.get("message") or ""
        if event.get("reason") == "Pulled":
            figures = parse_pulled(message)
            if figures:
                pulled.update(dict.fromkeys(_keys(event, figures.image), figures))
        elif event.get("reason") == "Failed":
            match = _FAILED_PULL.match(message.strip())
            if match:
                failed.update(dict.fromkeys(_keys(event, match["image"]), match["error"].strip()))
    return EventIndex(pulled, failed)
