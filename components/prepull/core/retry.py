"""A bounded image-pull back-off: a watchdog that deletes its own pod while one of its pulls backs off.

The kubelet waits between failed pulls of an image, per pod and image: 10 s, doubling, capped at
5 minutes. After a registry outage a pre-pull can therefore wait up to 5 minutes once the registry
is back (a gated node stays tainted meanwhile). A new pod has no back-off: the DaemonSet replaces
a deleted pod, and the replacement pulls at once (docs/reliability.md). With ``pull_retry_seconds``
each pre-pull pod runs a watchdog, a native sidecar (an init container with ``restartPolicy:
Always``, so it runs during the pulls) that every that many seconds reads its own pod and, while a
pull is in ``ErrImagePull`` or ``ImagePullBackOff``, deletes it. Once the pod is ``Initialized``
(every pull done) it stops calling the API server and idles, as a sidecar that exits is restarted.

Least privilege, as for the gate (gate.py; what both share is in kubectl.py):

- the pod's ServiceAccount (the gate's when both are on: a pod has one), its token projected into
  the watchdog's container only, in a volume of its own;
- a Role in the pods' namespace with ``get`` and ``delete`` on pods (RBAC cannot say "its own pod":
  a DaemonSet's pods have generated names, so ``resourceNames`` cannot list them);
- a ValidatingAdmissionPolicy that lets that identity delete only the pod named in its token
  (bound service-account tokens carry the pod they were issued for).
"""

from prepull.core.kobject import KubeObject
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
from prepull.core.plan import Plan

POD_NAME_EXTRA = "authentication.kubernetes.io/pod-name"
# The sidecar (``status`` reports it beside the pulls, not as one).
RETRY_CONTAINER = "prepull-retry"
# The step's volumes (`retry-token`, `retry-home`), namespaced objects' suffix and cluster-scoped objects' prefix.
STEP = "retry"
# Waiting reasons of a pull that failed and waits for the kubelet's next try; a new pod tries at once.
# (Not InvalidImageName or ErrImageNeverPull: no retry can mend those.)
BACK_OFF_REASONS = ("ErrImagePull", "ImagePullBackOff")
# One `kubectl get`: the pod's Initialized condition, then its init containers' waiting reasons.
_POD_STATE = '{.status.conditions[?(@.type=="Initialized")].status} {.status.initContainerStatuses[*].state.waiting.reason}'
# Once every pull is done the watchdog only has to stay alive: a sidecar that exits is restarted.
IDLE_SECONDS = 86400


def retry_script(seconds: int) -> str:
    """Every ``seconds``: delete the pod if a pull backs off; stop once the pod is Initialized.

    A failing ``kubectl get`` (the API server unreachable) skips that round: the loop goes on.
    """
    backing_off = "|".join(f'*" {reason} "*' for reason in BACK_OFF_REASONS)
    pod = '"$POD_NAME" -n "$POD_NAMESPACE"'
    return (
        # On SIGTERM (its pod deleted) exit at once: the shell is PID 1 and would otherwise ignore it for the
        # whole grace period, and the DaemonSet makes no new pod while the old one is still terminating.
        "trap 'exit 0' TERM; "
        # `sleep & wait`: a trapped signal interrupts `wait` at once, but not a foreground `sleep`.
        f"while :; do sleep {seconds} & wait $!; "
        f"state=$({KUBECTL} get pod {pod} -o jsonpath='{_POD_STATE}') || continue; "
        'case "$state" in True*) break;; esac; '
        f'case " $state " in {backing_off}) '
        'echo "pod $POD_NAME: image pull back-off (${state#* }): deleting it, so that the DaemonSet\'s new pod pulls at once"; '
        f"{KUBECTL} delete pod {pod} --wait=false;; esac; done; "
        'echo "pod $POD_NAME: every pull is done"; '
        f"while :; do sleep {IDLE_SECONDS} & wait $!; done"
    )


def retry_container(seconds: int, image: str) -> KubeObject:
    """The watchdog: a native sidecar (it runs beside the init containers that come after it)."""
    env = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
    ]
    return {**kubectl_container(RETRY_CONTAINER, STEP, image, retry_script(seconds), env), "restartPolicy": "Always"}


def retry_volumes() -> list[KubeObject]:
    """The watchdog's own token volume and kubectl's scratch home."""
    return kubectl_volumes(STEP)


def cel_validations(namespace: str) -> list[KubeObject]:
    """The policy's validations: a DELETE is admitted only for the identity's own pod (also evaluated by the tests)."""
    return [
        {
            # For a DELETE the pod is `oldObject` (`object` is null). A request with no extras has no
            # `extra` field at all, and `in` on an absent field is an evaluation error: test for it first.
            "expression": f"has(request.userInfo.extra) && '{POD_NAME_EXTRA}' in request.userInfo.extra && "
            f"request.userInfo.extra['{POD_NAME_EXTRA}'].exists(n, n == oldObject.metadata.name) && "
            f"oldObject.metadata.namespace == '{namespace}'",
            "message": "the pre-puller's pull-retry watchdog may only delete its own pod",
        }
    ]


def _names(plan: Plan) -> tuple[str, str]:
    """(name of the Role and RoleBinding, name of the policy and its binding)."""
    return f"{plan.base_name}-{STEP}", cluster_scoped_name(STEP, plan.namespace, plan.base_name)


def retry_object_ids(plan: Plan) -> frozenset[tuple[str, str]]:
    """``(kind, name)`` of the watchdog's own objects (not the ServiceAccount, which may be the gate's).

    The component names its children by it: the gate's admission policy and this one are of one kind.
    """
    if plan.pull_retry_seconds is None:
        return frozenset()
    name, cluster_name = _names(plan)
    kinds = (
        ("Role", name),
        ("RoleBinding", name),
        ("ValidatingAdmissionPolicy", cluster_name),
        ("ValidatingAdmissionPolicyBinding", cluster_name),
    )
    return frozenset(kinds)


def retry_objects(plan: Plan) -> list[KubeObject]:
    """The ServiceAccount (unless the gate's declares it), Role, RoleBinding, ValidatingAdmissionPolicy and its binding."""
    sa = service_account_object(plan)
    name, cluster_name = _names(plan)
    # `get` to read its own pod's state, `delete` to replace it: no list, no eviction, no other kind.
    role = pod_role(plan, name, ["get", "delete"], sa["metadata"]["name"])
    return [*([] if plan.remove_startup_taint else [sa]), *role, *admission_policy(plan, cluster_name, _policy(plan))]


def _policy(plan: Plan) -> KubeObject:
    return {
        "failurePolicy": "Fail",
        "matchConstraints": {
            "resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["DELETE"], "resources": ["pods"]}]
        },
        "matchConditions": [{"name": "is-retry-identity", "expression": f"request.userInfo.username == '{username(plan)}'"}],
        "validations": cel_validations(plan.namespace),
    }
