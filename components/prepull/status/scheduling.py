"""Which nodes a pre-pull DaemonSet selects, which of them it can run on, and which pod speaks for each.

Pure functions of the API objects (camelCase JSON), following the scheduler's and the DaemonSet
controller's rules: a node is *selected* when the pod template's ``nodeSelector`` and required node
affinity match it; a selected node with a ``NoSchedule``/``NoExecute`` taint the pods do not
tolerate gets no pod (the controller leaves it out).
"""

from typing import Iterable, Mapping, Optional

from prepull.core.kobject import KubeView

# Tolerations the DaemonSet controller adds to every DaemonSet pod (pkg/controller/daemon/util).
DAEMONSET_TOLERATIONS = tuple(
    {"key": f"node.kubernetes.io/{key}", "operator": "Exists", "effect": effect}
    for key, effect in (
        ("not-ready", "NoExecute"),
        ("unreachable", "NoExecute"),
        ("disk-pressure", "NoSchedule"),
        ("memory-pressure", "NoSchedule"),
        ("pid-pressure", "NoSchedule"),
        ("unschedulable", "NoSchedule"),
    )
)


def _matches_expression(values: Mapping[str, str], expr: KubeView) -> bool:
    # A label key is never empty: a missing key matches as one no node has.
    key: str = expr.get("key") or ""
    op: object = expr.get("operator")
    wanted: list[str] = expr.get("values") or []
    if op == "Exists":
        return key in values
    if op == "DoesNotExist":
        return key not in values
    if op in ("In", "NotIn"):
        return (values.get(key) in wanted) == (op == "In") if key in values else op == "NotIn"
    if op in ("Gt", "Lt") and key in values:
        try:
            have, limit = int(values[key]), int(wanted[0])
        except (ValueError, IndexError):
            return False
        return have > limit if op == "Gt" else have < limit
    return False


def _matches_term(node: KubeView, term: KubeView) -> bool:
    labels = node["metadata"].get("labels") or {}
    fields = {"metadata.name": node["metadata"]["name"]}
    exprs = [(labels, e) for e in term.get("matchExpressions") or []] + [(fields, e) for e in term.get("matchFields") or []]
    # An empty term matches no node (the scheduler's rule).
    return bool(exprs) and all(_matches_expression(values, e) for values, e in exprs)


def _required_terms(pod_spec: KubeView) -> list[KubeView]:
    affinity = (pod_spec.get("affinity") or {}).get("nodeAffinity") or {}
    return (affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms") or []


def selects(pod_spec: KubeView, node: KubeView) -> bool:
    """Whether the pod template's node selector and required node affinity match ``node``."""
    labels = node["metadata"].get("labels") or {}
    if any(labels.get(k) != v for k, v in (pod_spec.get("nodeSelector") or {}).items()):
        return False
    terms = _required_terms(pod_spec)
    return not terms or any(_matches_term(node, t) for t in terms)


def _tolerates(toleration: KubeView, taint: KubeView) -> bool:
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    operator = toleration.get("operator") or "Equal"
    if not toleration.get("key"):
        return operator == "Exists"
    if toleration["key"] != taint.get("key"):
        return False
    return operator == "Exists" or (toleration.get("value") or "") == (taint.get("value") or "")


def taint_text(taint: KubeView) -> str:
    """``key=value:Effect`` (``key:Effect`` without a value), as kubectl prints taints."""
    value = f"={taint['value']}" if taint.get("value") else ""
    return f"{taint.get('key')}{value}:{taint.get('effect')}"


def untolerated_taints(pod_spec: KubeView, node: KubeView) -> list[str]:
    """The node's taints that keep a DaemonSet pod off it (NoSchedule, NoExecute), sorted."""
    tolerations = [*(pod_spec.get("tolerations") or []), *DAEMONSET_TOLERATIONS]
    taints = [t for t in (node.get("spec") or {}).get("taints") or [] if t.get("effect") in ("NoSchedule", "NoExecute")]
    return sorted(taint_text(t) for t in taints if not any(_tolerates(tol, t) for tol in tolerations))


def pod_node(pod: KubeView) -> Optional[str]:
    """The node a pod runs on, or, still pending, the node its DaemonSet meant it for (its ``metadata.name`` affinity)."""
    spec = pod.get("spec") or {}
    node_name = spec.get("nodeName")
    if isinstance(node_name, str) and node_name:
        return node_name
    for term in _required_terms(spec):
        for field in term.get("matchFields") or []:
            if field.get("key") == "metadata.name" and field.get("operator") == "In" and field.get("values"):
                return str(field["values"][0])
    return None


def pick_pod(pods: Iterable[KubeView], generation: Optional[int]) -> Optional[KubeView]:
    """The pod that speaks for a node: live rather than terminating, of the current template, newest."""
    live = [p for p in pods if (p.get("status") or {}).get("phase") not in ("Failed", "Succeeded")]

    def rank(pod: KubeView) -> tuple[bool, bool, str, str]:
        meta = pod["metadata"]
        current = str(generation) == (meta.get("labels") or {}).get("pod-template-generation")
        return (not meta.get("deletionTimestamp"), current, meta.get("creationTimestamp") or "", meta["name"])

    return max(live, key=rank, default=None)
