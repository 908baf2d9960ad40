"""API objects for the ``status`` tests, in the shape the API server returns them (camelCase JSON).

The DaemonSets are the component's own (``prepull.manifests``); pods are built from their
templates the way the DaemonSet controller and the kubelet fill them in: the controller pins each
pod to its node with a ``metadata.name`` node affinity, the scheduler sets ``nodeName``, the kubelet
writes one status per init container in order. Messages are the kubelet's formats.
"""

import copy
import json
from datetime import datetime, timedelta, timezone

import prepull
from prepull.status.report import Snapshot, classify

NAMESPACE = "prepull"
T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
PYTHON = "docker.io/library/python:3.13-slim"
UV = "ghcr.io/astral-sh/uv:0.5.11"
POOL = {"prepull.dev/pool": "general"}
GATE_TAINT = {"key": "prepull.dev/not-ready", "effect": "NoSchedule"}


def ts(seconds: float) -> str:
    """A timestamp ``seconds`` after T0, as the API writes it (whole seconds)."""
    return (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def daemon_set(name: str = "general", images=(PYTHON, UV), **args) -> dict:
    """The component's DaemonSet for ``images`` on the general pool, as read back (uid, generation)."""
    args = {"images": list(images), "node_selector": dict(POOL), **args}
    ds = copy.deepcopy([o for o in prepull.manifests(args, name) if o["kind"] == "DaemonSet"][0])
    ds["metadata"].update(uid=f"uid-ds-{name}", generation=1)
    return ds


def gated_daemon_set(name: str = "gated") -> dict:
    return daemon_set(name, startup_taint=dict(GATE_TAINT), remove_startup_taint=True)


def node(name: str, labels=None, taints=None) -> dict:
    labels = {"kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64", "kubernetes.io/hostname": name, **POOL, **(labels or {})}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}, "spec": {"taints": list(taints or [])}}


def init_names(ds: dict) -> list:
    return [c["name"] for c in ds["spec"]["template"]["spec"]["initContainers"]]


def terminated(start: float, end: float, code: int = 0, reason: str = None, message: str = None) -> dict:
    done = {"exitCode": code, "reason": reason or ("Completed" if code == 0 else "Error"), "startedAt": ts(start), "finishedAt": ts(end)}
    if message:
        done["message"] = message
    return {"terminated": done}


def running(start: float) -> dict:
    return {"running": {"startedAt": ts(start)}}


def waiting(reason: str = "PodInitializing", message: str = None) -> dict:
    return {"waiting": {"reason": reason, **({"message": message} if message else {})}}


def all_done(ds: dict, step: float = 2.0) -> list:
    """Every init container terminated with exit code 0, one after another ``step`` seconds apart."""
    return [terminated(1 + i * step + 1, 1 + (i + 1) * step) for i in range(len(init_names(ds)))]


def pod(ds: dict, node_name: str, states=None, scheduled: bool = True, last_states=None, **status) -> dict:
    """The DaemonSet's pod for ``node_name``; ``states`` are its init containers' states, in order (default: all done)."""
    template = copy.deepcopy(ds["spec"]["template"])
    name = f"{ds['metadata']['name']}-{node_name}"
    meta = {
        "name": name,
        "namespace": NAMESPACE,
        "uid": f"uid-{name}",
        "creationTimestamp": ts(0),
        "labels": {**template["metadata"]["labels"], "pod-template-generation": "1"},
    }
    spec = template["spec"]
    spec["affinity"] = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_name]}]}]
            }
        }
    }
    if not scheduled:
        return {"metadata": meta, "spec": spec, "status": {"phase": "Pending", **status}}
    spec["nodeName"] = node_name
    states = all_done(ds) if states is None else states
    last_states = last_states or {}
    statuses = [
        {
            "name": c["name"],
            "image": c["image"],
            "state": state,
            "lastState": last_states.get(c["name"], {}),
            "ready": False,
            "restartCount": 0,
        }
        for c, state in zip(spec.get("initContainers") or [], states)
    ]
    return {"metadata": meta, "spec": spec, "status": {"phase": "Running", "startTime": ts(1), "initContainerStatuses": statuses, **status}}


def event(pod_obj: dict, container: str, reason: str, message: str, at: float = 10) -> dict:
    """A kubelet event about one container of a pod."""
    meta = pod_obj["metadata"]
    return {
        "metadata": {"name": f"{meta['name']}.{container}.{reason}.{at}", "namespace": NAMESPACE},
        "involvedObject": {
            "kind": "Pod",
            "namespace": NAMESPACE,
            "name": meta["name"],
            "uid": meta["uid"],
            "fieldPath": f"spec.initContainers{{{container}}}",
        },
        "reason": reason,
        "message": message,
        "type": "Normal" if reason == "Pulled" else "Warning",
        "source": {"component": "kubelet"},
        "firstTimestamp": ts(at),
        "lastTimestamp": ts(at),
        "count": 1,
    }


def pulled(pod_obj: dict, container: str, image: str, took: str, size: int = None, at: float = 10) -> dict:
    text = f'Successfully pulled image "{image}" in {took} ({took} including waiting).'
    if size is not None:
        text = text[:-1] + f". Image size: {size} bytes."
    return event(pod_obj, container, "Pulled", text, at)


class Response:
    """What the client returns with ``_preload_content=False``: the raw body."""

    def __init__(self, items: list) -> None:
        self.data = json.dumps({"items": items}).encode()


class FakeApi:
    """CoreV1Api and AppsV1Api in one, serving recorded objects and recording every call with its selectors."""

    def __init__(self, daemon_sets=(), pods=(), nodes=(), events=()) -> None:
        self.objects = {"daemon_sets": list(daemon_sets), "pods": list(pods), "nodes": list(nodes), "events": list(events)}
        self.calls: list = []

    def _serve(self, what: str, kwargs: dict, items: list) -> Response:
        assert kwargs.pop("_preload_content") is False and kwargs.pop("_request_timeout")
        self.calls.append((what, kwargs))
        return Response(items)

    def list_namespaced_daemon_set(self, namespace, **kwargs):
        return self._serve("daemonsets", {"namespace": namespace, **kwargs}, self.objects["daemon_sets"])

    def list_namespaced_pod(self, namespace, **kwargs):
        return self._serve("pods", {"namespace": namespace, **kwargs}, self.objects["pods"])

    def list_node(self, **kwargs):
        return self._serve("nodes", kwargs, self.objects["nodes"])

    def list_namespaced_event(self, namespace, field_selector, **kwargs):
        reason = field_selector.rsplit("reason=", 1)[-1]
        items = [e for e in self.objects["events"] if e["reason"] == reason]
        return self._serve("events", {"namespace": namespace, "field_selector": field_selector, **kwargs}, items)


# The kubelet's message for an image the registry does not have (containerd's wording).
NOT_FOUND = (
    'rpc error: code = NotFound desc = failed to pull and unpack image "ghcr.io/astral-sh/uv:0.5.11": '
    'failed to resolve reference "ghcr.io/astral-sh/uv:0.5.11": ghcr.io/astral-sh/uv:0.5.11: not found'
)


# ---------------------------------------------------------------- reports of these objects


def report(daemon_sets, pods=(), nodes=(), events=()):
    return classify(Snapshot(NAMESPACE, list(daemon_sets), list(pods), list(nodes), list(events)))


def only_node(rep, name=None):
    nodes = [n for ds in rep.daemon_sets for n in ds.nodes if name is None or n.name == name]
    assert len(nodes) == 1, nodes
    return nodes[0]


def by_image(node_status):
    return {i.image: i for i in node_status.images if i.role == "pull"}


def one_node(ds, states=None, node_name="n1", events_for=None, **pod_kw):
    """The report for ``ds`` on a single node whose pod's init containers are in ``states``."""
    p = pod(ds, node_name, states, **pod_kw)
    events = events_for(p) if events_for else []
    return report([ds], [p], [node(node_name)], events), p
