"""Reading the cluster for ``status``: a fixed number of list calls, whatever the number of nodes.

One snapshot is five requests: our DaemonSets and our pods in the namespace (by the label every
object we create carries), every node (one call; node selectors differ per DaemonSet), and the
namespace's pod events of reasons ``Pulled`` and ``Failed`` (two calls: a field selector cannot say
"either"). Lists are not paginated, so 1,000 nodes are still one call each. Responses are parsed as
plain JSON (``_preload_content=False``): the pure core (:mod:`prepull.status.report`) reads the objects
exactly as the API returns them, and thousands of objects skip the client's slow model classes.
"""

import json
from typing import TYPE_CHECKING, Any, Callable, Optional

from prepull.core.kobject import KubeView
from prepull.core.labels import MANAGED_BY_SELECTOR
from prepull.kube.client import Kubeconfig, Unreachable, api_client, api_message, cannot_reach
from prepull.status.report import Snapshot

if TYPE_CHECKING:
    from kubernetes.client import AppsV1Api, CoreV1Api

PULL_EVENTS = ("involvedObject.kind=Pod,reason=Pulled", "involvedObject.kind=Pod,reason=Failed")
# Seconds to wait for one response: an unreachable server fails the command instead of hanging it.
REQUEST_TIMEOUT = 30


class NotFound(Exception):
    """The cluster answered, but holds no pre-pull DaemonSet where we looked."""


class ClusterReader:
    """Takes snapshots of one namespace through the official client's CoreV1Api and AppsV1Api, counting requests."""

    def __init__(self, core: "CoreV1Api", apps: "AppsV1Api", namespace: str, context: Optional[str] = None) -> None:
        self.core, self.apps, self.namespace, self.context = core, apps, namespace, context
        self.calls = 0
        self.snapshots = 0

    def _list(self, what: str, method: Callable[..., Any], *args: str, **kwargs: str) -> list[KubeView]:
        from kubernetes.client.exceptions import ApiException

        self.calls += 1
        try:
            response = method(*args, _preload_content=False, _request_timeout=REQUEST_TIMEOUT, **kwargs)
            items = json.loads(response.data)["items"]
            if not isinstance(items, list):
                raise ValueError("its items are not a list")
            return items
        except ApiException as err:
            raise Unreachable(f"cannot list {what} (HTTP {err.status}): {api_message(err)}") from None
        except (ValueError, KeyError) as err:
            raise Unreachable(f"cannot list {what}: the API server's answer is not a list ({type(err).__name__}: {err})") from None
        except Exception as err:  # noqa: BLE001 - connection, TLS and timeout errors of urllib3 all mean "cannot reach"
            raise cannot_reach(self.context, err) from None

    def snapshot(self) -> Snapshot:
        """DaemonSets, pods, nodes and pull events now; NotFound if the namespace has none of our DaemonSets."""
        ns = self.namespace
        self.snapshots += 1
        daemon_sets = self._list(
            f"DaemonSets in namespace {ns!r}", self.apps.list_namespaced_daemon_set, ns, label_selector=MANAGED_BY_SELECTOR
        )
        if not daemon_sets:
            raise NotFound(
                f"no DaemonSet labelled {MANAGED_BY_SELECTOR} in namespace {ns!r}: is --namespace (or the stack's "
                "prepull:namespace) right, is --context the right cluster, and was the stack deployed?"
            )
        pods = self._list(f"pods in namespace {ns!r}", self.core.list_namespaced_pod, ns, label_selector=MANAGED_BY_SELECTOR)
        nodes = self._list("nodes", self.core.list_node)
        events = [
            e
            for selector in PULL_EVENTS
            for e in self._list(f"events in namespace {ns!r}", self.core.list_namespaced_event, ns, field_selector=selector)
        ]
        return Snapshot(ns, daemon_sets, pods, nodes, events)


def connect_reader(kubeconfig: Kubeconfig, context: Optional[str], namespace: str) -> ClusterReader:
    """A reader for ``namespace`` of the cluster of ``context`` (kubeconfig: a path, the parsed file, or None for kubectl's default)."""
    api = api_client(kubeconfig, context, needed_by="`status`", extra="status")
    from kubernetes import client

    return ClusterReader(client.CoreV1Api(api), client.AppsV1Api(api), namespace, context)
