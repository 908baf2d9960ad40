"""A kubectl step inside a pre-pull pod: what the gate's untaint step and the pull-retry watchdog share.

Both run ``kubectl`` (from ``untaint_image``) through a script on the static busybox the helper
copied in, as the pod's one ServiceAccount, with its token projected into that container only
(the pod keeps ``automountServiceAccountToken: false``), a writable home for kubectl's discovery
cache on a read-only root filesystem, and every API call bounded by busybox's ``timeout``.
Keeping these here means the two steps cannot drift apart on any of them.
"""

from typing import Mapping, Optional

from prepull.core.kobject import KubeObject
from prepull.core.metadata import busybox_path, helper_mount_read_only, object_meta, security_context
from prepull.core.names import check_dns_subdomain
from prepull.core.plan import Plan

TOKEN_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"

# kubectl is a large Go binary that runs API discovery: the no-op containers' 32Mi would OOM it.
# The pod's effective request is the largest init container's, so this raises it only where a kubectl step runs.
KUBECTL_RESOURCES: Mapping[str, Mapping[str, str]] = {
    # kubectl writes its discovery cache to its home (an emptyDir of at most 128Mi), and logs.
    "requests": {"cpu": "10m", "memory": "64Mi", "ephemeral-storage": "32Mi"},
    "limits": {"cpu": "500m", "memory": "256Mi", "ephemeral-storage": "256Mi"},
}

# Each kubectl call is bounded by busybox's `timeout` (a dropped connection would otherwise hang it):
# kubectl's own --request-timeout flag makes it ignore the in-cluster configuration and call localhost:8080.
KUBECTL = "timeout 30 kubectl"


def service_account_name(plan: Plan) -> Optional[str]:
    """The pod's ServiceAccount, or None when no kubectl step runs.

    A pod has one: the gate's ``<base>-untaint`` whenever the gate is on (so a gated pool's objects
    do not change when the watchdog is added; the watchdog's RBAC binds to it too), else the
    watchdog's ``<base>-retry``.
    """
    if plan.remove_startup_taint:
        return f"{plan.base_name}-untaint"
    return f"{plan.base_name}-retry" if plan.pull_retry_seconds is not None else None


def username(plan: Plan) -> str:
    """The API server's name for the pod's ServiceAccount (what the admission policies match)."""
    return f"system:serviceaccount:{plan.namespace}:{service_account_name(plan)}"


def service_account_object(plan: Plan) -> KubeObject:
    """The pod's ServiceAccount: no automounted token, each kubectl step gets its own projected one."""
    name = service_account_name(plan)
    if name is None:  # callers render it only for a plan with a kubectl step
        raise ValueError("the plan has no kubectl step and so no ServiceAccount")
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": object_meta(plan, name, plan.namespace),
        "automountServiceAccountToken": False,
    }


def cluster_scoped_name(step: str, namespace: str, base: str) -> str:
    """Name of a step's cluster-scoped objects (``prepull-<step>.<namespace>.<base>``): unique per namespace and pre-puller.

    Both parts are DNS labels, which contain no dots, so dots keep the pairs apart
    ("team-a"+"gpu" and "team"+"a-gpu" would both read "team-a-gpu" with dashes).
    """
    return check_dns_subdomain(f"prepull-{step}.{namespace}.{base}", "name")


def token_volume(name: str) -> KubeObject:
    """The service-account token, CA and namespace, as the automount would provide them."""
    return {
        "name": name,
        "projected": {
            "sources": [
                {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
            ]
        },
    }


def kubectl_volumes(step: str) -> list[KubeObject]:
    """A step's own token volume (``<step>-token``) and kubectl's scratch home (``<step>-home``).

    One token volume per step, each mounted by that step's container only: no other container can read it.
    """
    return [token_volume(f"{step}-token"), {"name": f"{step}-home", "emptyDir": {"sizeLimit": "128Mi"}}]


def kubectl_container(name: str, step: str, image: str, script: str, env: list[KubeObject], helper_from_image: bool = False) -> KubeObject:
    """A container running ``script`` under busybox sh, with kubectl, the step's token and its home (``/home/<step>``).

    ``helper_from_image``: busybox comes from an image volume of the helper image, not the copy step's emptyDir.
    """
    home = f"/home/{step}"
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": [busybox_path(helper_from_image), "sh", "-c", script],
        # kubectl keeps a discovery cache under $HOME; the root filesystem is read-only.
        "env": [*env, {"name": "HOME", "value": home}],
        "resources": {k: dict(v) for k, v in KUBECTL_RESOURCES.items()},
        "securityContext": security_context(),
        "volumeMounts": [
            helper_mount_read_only(),  # the volume holding `busybox`
            {"name": f"{step}-token", "mountPath": TOKEN_MOUNT, "readOnly": True},
            {"name": f"{step}-home", "mountPath": home},
        ],
    }


def pod_role(plan: Plan, name: str, verbs: list[str], service_account: str) -> list[KubeObject]:
    """A Role ``name`` in the pods' namespace with ``verbs`` on pods, and its binding to ``service_account``."""
    rbac = "rbac.authorization.k8s.io"
    return [
        {
            "apiVersion": f"{rbac}/v1",
            "kind": "Role",
            "metadata": object_meta(plan, name, plan.namespace),
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": verbs}],
        },
        {
            "apiVersion": f"{rbac}/v1",
            "kind": "RoleBinding",
            "metadata": object_meta(plan, name, plan.namespace),
            "roleRef": {"apiGroup": rbac, "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": plan.namespace}],
        },
    ]


def admission_policy(plan: Plan, name: str, spec: KubeObject) -> list[KubeObject]:
    """A ValidatingAdmissionPolicy ``name`` (cluster-scoped) with ``spec``, and its binding that denies what it rejects."""
    return [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": object_meta(plan, name),
            "spec": spec,
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": object_meta(plan, name),
            "spec": {"policyName": name, "validationActions": ["Deny"]},
        },
    ]
