"""``python -m prepull check --server``: ask a real API server whether it accepts the objects.

Each object is sent as a server-side apply with ``dryRun=All`` and ``fieldValidation=Strict``:
the API server defaults, validates and runs admission (Pod Security, admission policies) and
persists nothing. A rejection is a problem; a warning the server sends back (Pod Security's
``warn`` mode, a deprecated field) is reported beside the accepted object. Some objects
cannot be checked, and are reported as such, never counted as accepted: a kind the server does
not serve (a custom resource whose CRD is missing), and an object in a namespace that does not
exist yet (a dry run cannot create the namespace first).

Uses the official ``kubernetes`` client (the ``check`` extra); reads the kubeconfig the way
kubectl does (``--kubeconfig``, else ``KUBECONFIG``, else ``~/.kube/config``; ``--context``).
"""

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional, Sequence

from prepull.core.kobject import KubeView
from prepull.core.manifests import object_id
from prepull.kube.client import api_client, api_message, cannot_reach

if TYPE_CHECKING:
    # The kubernetes client is the optional `check` / `status` extra: imported where it is used.
    from kubernetes.dynamic import DynamicClient
    from kubernetes.dynamic.resource import Resource

FIELD_MANAGER = "prepull-check"


@dataclass
class ServerReport:
    """What the API server said of each object (ids as ``Kind/namespace/name``)."""

    accepted: list[str] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    not_checked: list[tuple[str, str]] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)


def connect(kubeconfig: Optional[str], context: Optional[str]) -> "DynamicClient":
    """A dynamic client for the cluster, after one discovery round trip (so an unreachable server fails here)."""
    api = api_client(kubeconfig, context)
    try:
        from kubernetes import dynamic

        return dynamic.DynamicClient(api)
    except Exception as err:  # noqa: BLE001 - config, TLS, connection and HTTP errors all mean "cannot check"
        raise cannot_reach(context, err) from None


def existing_namespaces(client: "DynamicClient", wanted: set[str]) -> set[str]:
    """Which of ``wanted`` exist. Listing namespaces needs a cluster-wide right; without it, each is asked by name."""
    from kubernetes.dynamic.exceptions import ForbiddenError, NotFoundError

    resource = client.resources.get(api_version="v1", kind="Namespace")
    try:
        return {str(ns.metadata.name) for ns in resource.get().items} & wanted
    except ForbiddenError:
        found: set[str] = set()
        for name in sorted(wanted):
            try:
                resource.get(name=name)
            except NotFoundError:
                continue
            except ForbiddenError:
                pass  # cannot tell: the dry run itself will say whether the namespace is there
            found.add(name)
        return found


def check_on_server(objects: Sequence[KubeView], client: "DynamicClient") -> ServerReport:
    """Dry-run every object on the server; see the module docstring."""
    from kubernetes.dynamic.exceptions import ResourceNotFoundError

    report = ServerReport()
    namespaces = existing_namespaces(client, {o["metadata"]["namespace"] for o in objects if o["metadata"].get("namespace")})
    for obj in objects:
        oid = object_id(obj)
        try:
            resource = client.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        except ResourceNotFoundError:
            report.not_checked.append((oid, f"the server does not serve {obj['apiVersion']} {obj['kind']} (is its CRD installed?)"))
            continue
        namespace = obj["metadata"].get("namespace") if resource.namespaced else None
        if namespace and namespace not in namespaces:
            report.not_checked.append((oid, f"namespace {namespace!r} does not exist yet (a dry run cannot create it first)"))
            continue
        rejected, warnings = dry_run_apply(client, resource, obj, namespace)
        if rejected:
            report.problems.append((oid, rejected))
        else:
            report.accepted.append(oid)
            report.warnings.extend((oid, w) for w in warnings)
    return report


def dry_run_apply(
    client: "DynamicClient", resource: "Resource", obj: KubeView, namespace: Optional[str]
) -> tuple[Optional[str], list[str]]:
    """(why the server rejected ``obj``, or None; the warnings it sent back)."""
    from kubernetes.client.exceptions import ApiException

    api = client.client
    request = api.param_serialize(
        "PATCH",
        resource.path(name=obj["metadata"]["name"], namespace=namespace),
        query_params=[("dryRun", "All"), ("fieldManager", FIELD_MANAGER), ("fieldValidation", "Strict"), ("force", "true")],
        header_params={"Content-Type": "application/apply-patch+yaml", "Accept": "application/json"},
        body=json.dumps(obj),
        auth_settings=["BearerToken"],
    )
    response = api.call_api(*request)
    if not 200 <= response.status <= 299:
        response.read()
        try:
            api.response_deserialize(response, {})
        except ApiException as err:
            return api_message(err), []
        return f"HTTP {response.status}", []
    return None, [_warning_text(w) for w in response.response.headers.getlist("Warning")]


def _warning_text(header: str) -> str:
    """The text of a ``Warning: 299 - "text"`` header (RFC 7234: a quoted string with backslash escapes)."""
    text = header.split(" ", 2)[-1]
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return text
