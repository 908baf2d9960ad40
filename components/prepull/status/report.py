"""``python -m prepull status``, the pure core: recorded API objects in, a typed report out.

For every pre-pull DaemonSet we manage and every node it selects (its node selector and required
node affinity; a node they do not match is simply not listed), each image is in one state:

- ``present``: its pull init container terminated with exit code 0;
- ``pulling``: that container is waiting or running, or an earlier init container is not done
  (``Queued``), or the node's pod is of an older revision that lacks it (``OldRevision``);
- ``failed``: the kubelet could not pull it (``ErrImagePull``, ``ImagePullBackOff``,
  ``InvalidImageName``, ...) or its container exited non-zero, with the kubelet's message;
- ``not-scheduled``: the node has no running pod: ``UntoleratedTaint`` (the DaemonSet controller
  leaves such a node out), ``Unschedulable`` (a pending pod, with the scheduler's message) or
  ``NoPod`` (the controller has not created one yet).

The helper (``prepull-noop``), the gate's ``untaint`` step and the pull-retry watchdog
(``prepull-retry``, a sidecar) are reported beside the pulls (roles ``helper``, ``untaint`` and
``retry``): a failure there stops the pulls as surely as a failed pull. The watchdog runs for the
pod's whole life, so running is its ``present``. A gated DaemonSet also reports, per node, whether
its startup taint is still on the node.
Nothing here talks to a cluster: :func:`classify` takes the objects as the API returns them (JSON).
"""

import statistics
from dataclasses import dataclass
from typing import Iterable, Mapping, Optional

from prepull.core.gate import UNTAINT_CONTAINER, removed_taint
from prepull.core.kobject import KubeView
from prepull.core.manifests import HELPER_CONTAINER
from prepull.core.metadata import HELPER_VOLUME
from prepull.core.retry import RETRY_CONTAINER
from prepull.status.scheduling import pick_pod, pod_node, selects, untolerated_taints
from prepull.status.times import CACHED, DERIVED, EVENT, EventIndex, derived_seconds, index_events, pod_key

PRESENT, PULLING, FAILED, NOT_SCHEDULED = "present", "pulling", "failed", "not-scheduled"
# A node's state is the worst of its images'.
SEVERITY = {PRESENT: 0, PULLING: 1, NOT_SCHEDULED: 2, FAILED: 3}
HELPER, PULL, UNTAINT, RETRY = "helper", "pull", "untaint", "retry"
UNTOLERATED_TAINT, UNSCHEDULABLE, NO_POD = "UntoleratedTaint", "Unschedulable", "NoPod"
# Waiting reasons of a container whose image is being fetched, or whose turn has not come.
IN_PROGRESS = frozenset({"", "PodInitializing", "ContainerCreating"})
HOLDER_PREFIX = "volume:"  # image volumes (method image-volume) are pulled for the holder container


@dataclass(frozen=True)
class Snapshot:
    """What ``status`` reads from the cluster, as the API returns it (camelCase JSON objects)."""

    namespace: str
    daemon_sets: list[KubeView]
    pods: list[KubeView]
    nodes: list[KubeView]
    events: list[KubeView]


@dataclass(frozen=True)
class ImageStatus:
    """One image on one node."""

    image: str
    container: str
    role: str
    state: str
    reason: Optional[str] = None
    message: Optional[str] = None
    seconds: Optional[float] = None
    time_source: Optional[str] = None  # status_times.EVENT, DERIVED or CACHED
    size_bytes: Optional[int] = None


@dataclass(frozen=True)
class Gate:
    """The gate's startup taint (``key:effect``) and whether this node still carries it."""

    taint: str
    present: bool


@dataclass(frozen=True)
class NodeStatus:
    """One node selected by one DaemonSet."""

    name: str
    state: str
    images: tuple[ImageStatus, ...]
    pod: Optional[str] = None
    reason: Optional[str] = None  # why not scheduled
    message: Optional[str] = None
    gate: Optional[Gate] = None

    @property
    def pulls(self) -> tuple[ImageStatus, ...]:
        """The pulled images themselves (not the helper or untaint step)."""
        return tuple(i for i in self.images if i.role == PULL)

    @property
    def pulls_done(self) -> int:
        return sum(1 for i in self.pulls if i.state == PRESENT)

    @property
    def targeted(self) -> bool:
        """False for a node the DaemonSet controller leaves out (an untolerated taint): shown, not waited for."""
        return self.reason != UNTOLERATED_TAINT


@dataclass(frozen=True)
class DaemonSetStatus:
    """One pre-pull DaemonSet and the nodes it selects (sorted by name)."""

    name: str
    images: tuple[str, ...]
    nodes: tuple[NodeStatus, ...]
    gate_taint: Optional[str] = None

    @property
    def targeted(self) -> tuple[NodeStatus, ...]:
        return tuple(n for n in self.nodes if n.targeted)

    @property
    def done(self) -> int:
        return sum(1 for n in self.targeted if n.state == PRESENT)


@dataclass(frozen=True)
class ImageSummary:
    """One image over every (DaemonSet, node) that pulls it: how many have it, median and slowest time."""

    image: str
    pulls: int
    present: int
    timed: int
    median_seconds: Optional[float]
    slowest_node: Optional[str]
    slowest_seconds: Optional[float]


@dataclass(frozen=True)
class Report:
    """Everything ``status`` shows; ``state`` decides the exit code."""

    namespace: str
    daemon_sets: tuple[DaemonSetStatus, ...]
    images: tuple[ImageSummary, ...]

    @property
    def state(self) -> str:
        """``failed`` if any image failed, ``present`` if every targeted node has everything, else ``pulling``."""
        nodes = [n for ds in self.daemon_sets for n in ds.targeted]
        if any(n.state == FAILED for n in nodes):
            return FAILED
        return PRESENT if all(n.state == PRESENT for n in nodes) else PULLING


@dataclass(frozen=True)
class _Step:
    container: str
    image: str
    role: str


# ---------------------------------------------------------------- what a DaemonSet pulls, and where


def _role(step: str) -> str:
    # The helper is a copy step (init container), or with method image-volume an image volume of its own.
    roles = {HELPER_CONTAINER: HELPER, HOLDER_PREFIX + HELPER_VOLUME: HELPER, UNTAINT_CONTAINER: UNTAINT, RETRY_CONTAINER: RETRY}
    return roles.get(step, PULL)


def _pulled_image(container: KubeView) -> str:
    # method docker-socket: the init container runs the docker CLI, and the image pulled is its last argument.
    command = container.get("command") or []
    if command[:2] == ["docker", "pull"]:
        return str(command[-1])
    return str(container.get("image"))


def expected_steps(pod_spec: KubeView) -> tuple[_Step, ...]:
    """Every image a DaemonSet's pods pull, in order: image volumes (the kubelet pulls them before any container), then init containers."""
    steps = []
    for volume in (v for v in pod_spec.get("volumes") or [] if v.get("image")):
        step = HOLDER_PREFIX + volume["name"]
        steps.append(_Step(step, volume["image"]["reference"], _role(step)))
    steps += [_Step(c["name"], _pulled_image(c), _role(c["name"])) for c in pod_spec.get("initContainers") or []]
    return tuple(steps)


def _gate_taint(pod_spec: KubeView) -> Optional[dict[str, str]]:
    untaint = [c for c in pod_spec.get("initContainers") or [] if c.get("name") == UNTAINT_CONTAINER]
    return removed_taint(untaint[0]) if untaint else None


# ---------------------------------------------------------------- one container's state


def _exit_message(terminated: KubeView) -> str:
    text = f"exit code {terminated.get('exitCode')}"
    return f"{text}: {terminated['message'].strip()}" if terminated.get("message") else text


def container_state(status: Optional[KubeView], failure: Optional[str]) -> tuple[str, str, Optional[str]]:
    """(state, reason, message) of one init container from its status; ``failure`` is the Failed event's error, if any."""
    if not status:
        return PULLING, "Waiting", "no status reported yet"
    state = status.get("state") or {}
    if state.get("terminated"):
        done = state["terminated"]
        if done.get("exitCode") == 0:
            return PRESENT, "Completed", None
        return FAILED, done.get("reason") or "Error", _exit_message(done)
    if state.get("running"):
        return PULLING, "Running", "the image is pulled; its container is running"
    waiting = state.get("waiting") or {}
    reason, message = waiting.get("reason") or "", waiting.get("message")
    if reason in IN_PROGRESS:
        return PULLING, reason or "Waiting", message
    if reason == "CrashLoopBackOff":
        last = (status.get("lastState") or {}).get("terminated") or {}
        return FAILED, last.get("reason") or "Error", f"{_exit_message(last)} ({message or 'back-off restarting'})"
    if failure and failure not in (message or ""):
        # ImagePullBackOff's message may only say "Back-off pulling image": the Failed event has the runtime's error.
        message = f"{message}: {failure}" if message else failure
    return FAILED, reason, message


def _sidecar_state(status: Optional[KubeView], failure: Optional[str]) -> tuple[str, str, Optional[str]]:
    """State of a sidecar (the pull-retry watchdog): it never ends, so once it runs it is done with its part."""
    state, reason, message = container_state(status, failure)
    if state == PULLING and reason == "Running":
        return PRESENT, "Running", None
    return state, reason, message


def _holder_state(view: "_PodView", volume: str, image: str, failure: Optional[str]) -> tuple[str, str, Optional[str]]:
    """State of an image volume: present once a container that mounts it started (the gate's step, or the holder)."""
    if volume in view.started_mounts:
        return PRESENT, "Mounted", None
    # With the gate its step mounts every volume and is the first container the kubelet tries.
    state, reason, message = container_state(view.first_mounter.get(volume) or view.holder, failure)
    if state == PULLING and reason == "Running":
        return PRESENT, "Mounted", None
    if state == FAILED and message and image not in message and '"' in message:
        return PULLING, "Waiting", "another image volume of this pod failed"
    return state, reason, message


# ---------------------------------------------------------------- one node


@dataclass(frozen=True)
class _PodView:
    """A pod's init-container statuses, each one's predecessor's end, and its key for events."""

    key: str
    names: tuple[str, ...]
    statuses: Mapping[str, KubeView]
    holder: Optional[KubeView]
    previous_finished: Mapping[str, Optional[str]]
    started_mounts: frozenset[str]
    """Volumes an init container that has started mounts: the kubelet starts none before its image volumes are pulled."""
    first_mounter: Mapping[str, KubeView]
    """Per volume, the status of the first init container not yet started that mounts it: a failed pull shows there."""


def _pod_view(pod: KubeView) -> _PodView:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    names = tuple(c["name"] for c in spec.get("initContainers") or [])
    statuses = {s["name"]: s for s in status.get("initContainerStatuses") or []}
    holders = [s for s in status.get("containerStatuses") or []]
    previous: dict[str, Optional[str]] = {}
    before = status.get("startTime")
    for container in spec.get("initContainers") or []:
        previous[container["name"]] = before
        state = (statuses.get(container["name"]) or {}).get("state") or {}
        # The kubelet starts the next init container once a sidecar (restartPolicy Always) runs, not once it ends.
        started = (state.get("running") or {}).get("startedAt") if container.get("restartPolicy") == "Always" else None
        before = started or (state.get("terminated") or {}).get("finishedAt")
    started, first_mounter = _mounts(spec.get("initContainers") or [], statuses)
    return _PodView(pod_key(pod["metadata"]), names, statuses, holders[0] if holders else None, previous, started, first_mounter)


def _mounts(inits: list[KubeView], statuses: Mapping[str, KubeView]) -> tuple[frozenset[str], dict[str, KubeView]]:
    """(volumes a started init container mounts, {volume: status of the first unstarted init container mounting it})."""
    started: set[str] = set()
    first: dict[str, KubeView] = {}
    for container in inits:
        status = statuses.get(container["name"]) or {}
        ran = bool(set(status.get("state") or {}) & {"running", "terminated"})
        for mount in container.get("volumeMounts") or []:
            if ran:
                started.add(mount["name"])
            elif status:
                first.setdefault(mount["name"], status)
    return frozenset(started), first


def _times(step: _Step, view: _PodView, events: EventIndex) -> tuple[Optional[float], Optional[str], Optional[int]]:
    """(seconds, source, size in bytes): the kubelet's event, else derived from the timestamps."""
    pulled = events.pull_of(view.key, step.container, step.image)
    if pulled and pulled.cached:
        return None, CACHED, None
    if pulled and pulled.seconds is not None:
        return pulled.seconds, EVENT, pulled.size_bytes
    state = (view.statuses.get(step.container) or {}).get("state") or {}
    started = (state.get("terminated") or state.get("running") or {}).get("startedAt")
    seconds = derived_seconds(view.previous_finished.get(step.container), started)
    return (seconds, DERIVED, None) if seconds is not None else (None, None, None)


def _image_status(step: _Step, view: _PodView, events: EventIndex, blocked_by: Optional[str]) -> ImageStatus:
    failure = events.failure_of(view.key, step.container, step.image)
    reason: Optional[str]
    if step.container.startswith(HOLDER_PREFIX):
        state, reason, message = _holder_state(view, step.container.removeprefix(HOLDER_PREFIX), step.image, failure)
    elif step.container not in view.names:
        state, reason, message = PULLING, "OldRevision", "the node's pod is of an older revision; the rollout has not reached it"
    else:
        own_state = _sidecar_state if step.role == RETRY else container_state
        state, reason, message = own_state(view.statuses.get(step.container), failure)
        if state == PULLING and blocked_by:
            reason, message = "Queued", f"after {blocked_by}"
    if state == PRESENT:
        reason = None
    seconds, source, size = _times(step, view, events) if state in (PRESENT, PULLING) else (None, None, None)
    return ImageStatus(step.image, step.container, step.role, state, reason, message, seconds, source, size)


def _scheduled_images(steps: tuple[_Step, ...], pod: KubeView, events: EventIndex) -> tuple[ImageStatus, ...]:
    view = _pod_view(pod)
    blocked_by: Optional[str] = None
    out: list[ImageStatus] = []
    for step in steps:
        image = _image_status(step, view, events, blocked_by)
        if image.state != PRESENT and blocked_by is None and not step.container.startswith(HOLDER_PREFIX):
            blocked_by = step.container
        out.append(image)
    return tuple(out)


def _why_not_scheduled(pod: Optional[KubeView], taints: list[str]) -> tuple[str, str]:
    if pod is not None:
        conditions = {c.get("type"): c for c in (pod.get("status") or {}).get("conditions") or []}
        scheduled = conditions.get("PodScheduled") or {}
        return UNSCHEDULABLE, scheduled.get("message") or f"pod {pod['metadata']['name']} is pending: not scheduled yet"
    if taints:
        return (
            UNTOLERATED_TAINT,
            f"untolerated taint{'s' if len(taints) > 1 else ''} {', '.join(taints)}: the DaemonSet controller leaves the node out",
        )
    return NO_POD, "no pod yet: the DaemonSet controller has not created one"


def node_status(ds: KubeView, node: KubeView, pods: list[KubeView], events: EventIndex) -> NodeStatus:
    """The state of each image of ``ds`` on ``node``, given the DaemonSet's pods meant for that node."""
    spec = ds["spec"]["template"]["spec"]
    steps, name = expected_steps(spec), node["metadata"]["name"]
    taint = _gate_taint(spec)
    gate = None
    if taint:
        on_node = any(
            t.get("key") == taint["key"] and t.get("effect") == taint["effect"] for t in (node.get("spec") or {}).get("taints") or []
        )
        gate = Gate(f"{taint['key']}:{taint['effect']}", on_node)
    pod = pick_pod(pods, (ds.get("metadata") or {}).get("generation"))
    if pod is None or not (pod.get("spec") or {}).get("nodeName"):
        reason, message = _why_not_scheduled(pod, untolerated_taints(spec, node))
        images = tuple(ImageStatus(s.image, s.container, s.role, NOT_SCHEDULED, reason) for s in steps)
        return NodeStatus(name, NOT_SCHEDULED, images, pod["metadata"]["name"] if pod is not None else None, reason, message, gate)
    images = _scheduled_images(steps, pod, events)
    state = max((i.state for i in images), key=SEVERITY.__getitem__, default=PRESENT)
    return NodeStatus(name, state, images, pod["metadata"]["name"], gate=gate)


# ---------------------------------------------------------------- the report


def _matches_labels(selector: KubeView, labels: KubeView) -> bool:
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def daemon_set_status(ds: KubeView, pods: list[KubeView], nodes: list[KubeView], events: EventIndex) -> DaemonSetStatus:
    """One DaemonSet: every node its template selects, sorted by name."""
    spec = ds["spec"]["template"]["spec"]
    selector = ds["spec"].get("selector") or {}
    by_node: dict[Optional[str], list[KubeView]] = {}
    for pod in pods:
        if _matches_labels(selector, pod["metadata"].get("labels") or {}):
            by_node.setdefault(pod_node(pod), []).append(pod)
    selected = sorted((n for n in nodes if selects(spec, n)), key=lambda n: n["metadata"]["name"])
    statuses = tuple(node_status(ds, n, by_node.get(n["metadata"]["name"], []), events) for n in selected)
    taint = _gate_taint(spec)
    images = tuple(s.image for s in expected_steps(spec) if s.role == PULL)
    return DaemonSetStatus(ds["metadata"]["name"], images, statuses, f"{taint['key']}:{taint['effect']}" if taint else None)


def summarize(daemon_sets: Iterable[DaemonSetStatus]) -> tuple[ImageSummary, ...]:
    """Per pulled image, over every targeted node of every DaemonSet: present count, median and slowest time."""
    seen: dict[str, list[tuple[str, ImageStatus]]] = {}
    for ds in daemon_sets:
        for node in ds.targeted:
            for image in node.pulls:
                seen.setdefault(image.image, []).append((node.name, image))
    return tuple(_summary(image, seen[image]) for image in sorted(seen))


def _summary(image: str, pulls: list[tuple[str, ImageStatus]]) -> ImageSummary:
    present = [(node, i) for node, i in pulls if i.state == PRESENT]
    timed = sorted(((i.seconds, node) for node, i in present if i.seconds is not None), key=lambda t: (-t[0], t[1]))
    median = statistics.median(s for s, _ in timed) if timed else None
    slowest = timed[0] if timed else (None, None)
    return ImageSummary(image, len(pulls), len(present), len(timed), median, slowest[1], slowest[0])


def classify(snapshot: Snapshot) -> Report:
    """The report for recorded API objects: DaemonSets and nodes sorted by name, so output is deterministic."""
    events = index_events(snapshot.events)
    nodes = list(snapshot.nodes)
    daemon_sets = tuple(
        daemon_set_status(ds, snapshot.pods, nodes, events) for ds in sorted(snapshot.daemon_sets, key=lambda d: d["metadata"]["name"])
    )
    return Report(snapshot.namespace, daemon_sets, summarize(daemon_sets))
