"""The new-node gate: remove the startup taint from a node once its images are present.

The last init container of each pre-pull pod removes the pool's startup taint
from its own node. It runs only after every pull container succeeded (init
containers run strictly in order), so a node loses the taint only when it holds
every image. Least privilege:

- a dedicated ServiceAccount whose token is projected into that one container
  only (the pod keeps ``automountServiceAccountToken: false``; with
  ``pull_retry_seconds`` the watchdog of retry.py is bound to the same account,
  a pod having one, and gets its own token volume);
- a ClusterRole with ``get`` and ``patch`` on nodes (RBAC cannot narrow further:
  nodes are cluster-scoped and ``resourceNames`` cannot say "my node");
- a ValidatingAdmissionPolicy that lets that identity change nothing on a node
  except removing that one taint, and only on the node its pod runs on (bound
  service-account tokens carry the node name, KEP-4193, GA in 1.32).

With ``lanes`` above 1 a node runs one pod per lane, each with its own untaint step. Each step
first waits until the untaint step of every lane's pod on its node has started (that pod's pulls
are then done), listing the pods of those DaemonSets on its node; then any of them removes the
taint (idempotent). That needs ``list`` on pods in the namespace: a Role, only then.

What the untaint step shares with the watchdog (token, home, resources, bounded
kubectl calls) is in kubectl.py.
"""

import re
from typing import Mapping, Optional

from prepull.core.kobject import KubeObject, KubeView
from prepull.core.labels import LABEL_DAEMONSET
from prepull.core.kubectl import (
    KUBECTL,
    admission_policy,
    cluster_scoped_name,
    kubectl_container,
    kubectl_volumes,
    pod_role,
    service_account_object,
    username,
)
from prepull.core.metadata import object_meta
from prepull.core.plan import Group, Plan

NODE_NAME_EXTRA = "authentication.kubernetes.io/node-name"
# The last init container of a gated pod (``status`` finds the gate's taint in its script).
UNTAINT_CONTAINER = "untaint"
# The first command of the untaint script (below): `kubectl taint node "$NODE_NAME" "<key>:<effect>-"`.
_UNTAINT_CALL = re.compile(r'kubectl taint node "\$NODE_NAME" "(?P<key>[^":]+):(?P<effect>NoSchedule|PreferNoSchedule|NoExecute)-"')
# The step's volumes (`untaint-token`, `untaint-home`) and its cluster-scoped objects' prefix.
STEP = "untaint"


def _cel_str(value: str) -> str:
    # Keys and effects are validated qualified names / enum values: no quotes or backslashes to escape.
    return "'" + value + "'"


def cel_variables(taint: Mapping[str, str]) -> list[KubeObject]:
    """The policy's CEL variables (also evaluated directly by the tests)."""
    key, effect = _cel_str(taint["key"]), _cel_str(taint["effect"])
    return [
        {"name": "oldTaints", "expression": "has(oldObject.spec.taints) ? oldObject.spec.taints : []"},
        {"name": "newTaints", "expression": "has(object.spec.taints) ? object.spec.taints : []"},
        {"name": "withoutGate", "expression": f"variables.oldTaints.filter(t, !(t.key == {key} && t.effect == {effect}))"},
    ]


def cel_validations() -> list[KubeObject]:
    """The policy's validations: each must hold for the update to be admitted."""

    def same(path: str, empty: Optional[str]) -> str:
        """``path`` unchanged, an absent value counting as ``empty``.

        An object-typed field has no empty literal of its own type (the API server's type check
        rejects ``cond ? <NodeConfigSource> : {}``): pass None to compare presence, then value.
        """
        if empty is None:
            return f"(has(object.{path}) == has(oldObject.{path}) && (!has(object.{path}) || object.{path} == oldObject.{path}))"
        return f"(has(object.{path}) ? object.{path} : {empty}) == (has(oldObject.{path}) ? oldObject.{path} : {empty})"

    return [
        {
            # A request with no extras at all has no `extra` field (seen on a real API server):
            # `in` on the absent field is an evaluation error, so test for it first.
            "expression": f"has(request.userInfo.extra) && '{NODE_NAME_EXTRA}' in request.userInfo.extra && "
            f"request.userInfo.extra['{NODE_NAME_EXTRA}'].exists(n, n == object.metadata.name)",
            "message": "the pre-puller may only change the node its own pod runs on",
        },
        {
            "expression": "variables.newTaints == variables.withoutGate",
            "message": "the pre-puller may only remove its startup taint: no other taint may be added, removed or changed",
        },
        {
            "expression": " && ".join(
                [
                    same("metadata.labels", "{}"),
                    same("metadata.annotations", "{}"),
                    same("spec.unschedulable", "false"),
                    same("spec.podCIDR", "''"),
                    same("spec.podCIDRs", "[]"),
                    same("spec.providerID", "''"),
                    same("spec.externalID", "''"),
                    same("spec.configSource", None),
                    # An ownerReference to a missing owner gets the Node garbage-collected; a finalizer blocks its deletion.
                    same("metadata.ownerReferences", "[]"),
                    same("metadata.finalizers", "[]"),
                ]
            ),
            "message": "the pre-puller may not change node labels, annotations, owners, finalizers, schedulability or other node fields",
        },
    ]


# While the API server is unreachable the step retries every 2 s for up to 5 minutes, so the taint
# comes off within seconds of its return. Only then does it exit non-zero and leave the retries to the
# kubelet, whose restart back-off grows to 5 minutes (docs/reliability.md).
UNTAINT_RETRY_SECONDS = 2
UNTAINT_TRIES = 150


def lanes_on_node(plan: Plan, group: Group) -> tuple[str, ...]:
    """The DaemonSets whose pods share ``group``'s nodes (its lanes, itself included), in plan order."""
    return tuple(g.name for g in plan.groups if g.same_nodes(group))


def _wait_for_lanes(lanes: tuple[str, ...]) -> str:
    """Script: wait until the untaint step of every lane's pod on this node has started ("" for one lane).

    Counts distinct lanes, not pods: with a surge, or a pod being replaced, a lane has two pods on
    a node, and one of them past its pulls must not stand in for another lane. Says how many lanes
    are done each time that changes, so a wait on a lane that never comes shows in the step's log.
    """
    if len(lanes) < 2:
        return ""
    state = f'{{.status.initContainerStatuses[?(@.name=="{UNTAINT_CONTAINER}")].state}}'
    lane = "{.metadata.labels." + LABEL_DAEMONSET.replace(".", "\\.") + "}"
    listing = (
        f'{KUBECTL} get pods -l "{LABEL_DAEMONSET} in ({",".join(lanes)})" --field-selector "spec.nodeName=$NODE_NAME" '
        f"-o jsonpath='{{range .items[*]}}{lane} {state}{{\"\\n\"}}{{end}}'"
    )
    done = f"""{listing} | grep -e ' {{"running"' -e ' {{"terminated"' | cut -d' ' -f1 | sort -u | wc -l"""
    return (
        f'last=; while :; do n=$({done}); [ "$n" -ge {len(lanes)} ] && break; '
        f'[ "$n" = "$last" ] || echo "$n of {len(lanes)} lanes on $NODE_NAME have pulled; waiting" >&2; '
        f"last=$n; sleep {UNTAINT_RETRY_SECONDS}; done; "
    )


def untaint_container(taint: Mapping[str, str], image: str, helper_from_image: bool = False, lanes: tuple[str, ...] = ()) -> KubeObject:
    """The last init container: remove the taint from this node, idempotently, retrying promptly.

    A pod restart (node reboot) finds the taint already gone; the script then
    checks that it is absent rather than failing on kubectl's "not found".
    ``helper_from_image``: busybox is an image volume of the helper image (method image-volume).
    ``lanes``: the DaemonSets of this node's lanes; with more than one, it first waits for them all.
    """
    key, effect = taint["key"], taint["effect"]
    script = (
        _wait_for_lanes(lanes) + "tries=0; while :; do "
        f'{KUBECTL} taint node "$NODE_NAME" "{key}:{effect}-" && exit 0; '
        f'left=$({KUBECTL} get node "$NODE_NAME" -o jsonpath=\'{{.spec.taints[?(@.key=="{key}")].effect}}\') && '
        f'case " $left " in *" {effect} "*) ;; *) exit 0;; esac; '
        f"tries=$((tries + 1)); if [ $tries -ge {UNTAINT_TRIES} ]; then "
        f'echo "taint {key}:{effect} is still on $NODE_NAME after {UNTAINT_TRIES} tries" >&2; exit 1; fi; '
        f"sleep {UNTAINT_RETRY_SECONDS}; done"
    )
    env = [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]
    return kubectl_container(UNTAINT_CONTAINER, STEP, image, script, env, helper_from_image)


def removed_taint(container: KubeView) -> Optional[dict[str, str]]:
    """``{key, effect}`` of the taint an untaint container (:func:`untaint_container`) removes, else None.

    Read back from its script, so ``status`` needs no other record of which taint the gate lifts.
    """
    if container.get("name") != UNTAINT_CONTAINER:
        return None
    match = _UNTAINT_CALL.search(" ".join(str(part) for part in container.get("command") or []))
    return {"key": match["key"], "effect": match["effect"]} if match else None


def untaint_volumes() -> list[KubeObject]:
    """The token volume and kubectl's scratch home."""
    return kubectl_volumes(STEP)


def gate_taint(plan: Plan) -> Mapping[str, str]:
    """``{key, effect[, value]}`` of the startup taint the gate removes."""
    if plan.startup_taint is None:  # build_plan rejects remove_startup_taint without startup_taint
        raise ValueError("the plan removes a startup taint but has none")
    return plan.startup_taint


def gate_objects(plan: Plan) -> list[KubeObject]:
    """ServiceAccount, ClusterRole(Binding), ValidatingAdmissionPolicy(Binding); with lanes, a Role and its binding too."""
    namespace, base = plan.namespace, plan.base_name

    def meta(name: str, ns: Optional[str] = None) -> KubeObject:
        return object_meta(plan, name, ns)

    sa = service_account_object(plan)
    cluster_name = cluster_scoped_name(STEP, namespace, base)
    return [
        sa,  # also the watchdog's (retry.py) when both are on: a pod has one ServiceAccount
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": meta(cluster_name),
            "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "patch"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": meta(cluster_name),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_name},
            "subjects": [{"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": namespace}],
        },
        *admission_policy(plan, cluster_name, _policy(plan)),
        *_lanes_rbac(plan, sa["metadata"]["name"]),
    ]


def _policy(plan: Plan) -> KubeObject:
    return {
        "failurePolicy": "Fail",
        "matchConstraints": {
            "resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["UPDATE"], "resources": ["nodes"]}]
        },
        "matchConditions": [{"name": "is-untaint-identity", "expression": f"request.userInfo.username == '{username(plan)}'"}],
        "variables": cel_variables(gate_taint(plan)),
        "validations": cel_validations(),
    }


def _lanes_rbac(plan: Plan, service_account: str) -> list[KubeObject]:
    """With several lanes on a node: a Role to list the pods of its namespace (to see the other lanes), and its binding."""
    if not any(len(lanes_on_node(plan, g)) > 1 for g in plan.groups):
        return []
    # `list` only: each step reads the untaint state of its node's lanes; nothing is changed.
    return pod_role(plan, f"{plan.base_name}-{STEP}", ["list"], service_account)
