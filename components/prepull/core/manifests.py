"""Plan -> plain Kubernetes objects (camelCase dicts). No Pulumi engine involved.

The component, the offline renderer and the tests all build from here, so what
is reviewed is exactly what is deployed. Every dict is built in a fixed order
from sorted or user-ordered inputs: the same inputs give byte-identical output.
"""

import hashlib
import json
from typing import Mapping, Optional

from prepull.args import ImagePrePullerArgs, Method
from prepull.core.gate import gate_objects, gate_taint, lanes_on_node, untaint_container, untaint_volumes
from prepull.core.images import ImageRef
from prepull.core.kobject import KubeObject, KubeView
from prepull.core.kubectl import service_account_name
from prepull.core.labels import APP, ARCH_LABEL, LABEL_DAEMONSET, LABEL_INSTANCE, LABEL_NAME
from prepull.core.metadata import (
    BUSYBOX,
    HELPER_MOUNT,
    HELPER_VOLUME,
    NOOP,
    helper_mount_read_only,
    object_labels,
    object_meta,
    pairs,
    security_context,
)
from prepull.core.names import container_name
from prepull.core.plan import Group, Plan, build_plan
from prepull.core.retry import retry_container, retry_objects, retry_volumes

ANNOTATION_IMAGES_HASH = "prepull.dev/images-hash"  # users cannot set prepull.dev/ keys (plan.py)
# The first init container, which copies the static busybox (``status`` tells it from the pulls by this name).
HELPER_CONTAINER = "prepull-noop"
DOCKER_SOCKET = "/var/run/docker.sock"

# Checks checkov flags on the default output that do not apply to a pre-puller,
# carried on the objects so any scanner run shows the reason next to the skip.
CHECKOV_SKIPS = (
    ("CKV_K8S_8", "pause has no endpoint to probe; liveness adds nothing to a process that only sleeps"),
    ("CKV_K8S_9", "readiness is the completion of the pulls (init containers or image volumes), which the kubelet reports without a probe"),
    (
        "CKV_K8S_43",
        "references are used exactly as given (tag and/or digest); pin digests in images, pause_image and helper_image to satisfy it",
    ),
    (
        "CKV_K8S_15",
        "IfNotPresent is deliberate: Always re-contacts the registry on every pod start; "
        "pull_policy Always is offered for the pulled images",
    ),
)


def _images_hash(plan: Plan, group: Group) -> str:
    payload = json.dumps(
        {"images": [r.canonical for r in group.images], "pullPolicy": plan.pull_policy.value, "method": plan.method.value},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _resources(plan: Plan) -> KubeObject:
    r = plan.resources
    return {
        "requests": {"cpu": r["cpu_request"], "memory": r["memory_request"], "ephemeral-storage": r["ephemeral_storage_request"]},
        "limits": {"cpu": r["cpu_limit"], "memory": r["memory_limit"], "ephemeral-storage": r["ephemeral_storage_limit"]},
    }


def _selector_labels(plan: Plan, group: Group) -> dict[str, str]:
    return {LABEL_NAME: APP, LABEL_INSTANCE: plan.base_name, LABEL_DAEMONSET: group.name}


def _affinity(group: Group) -> Optional[KubeObject]:
    if group.arch_in:
        expr = {"key": ARCH_LABEL, "operator": "In", "values": list(group.arch_in)}
    elif group.arch_not_in:
        expr = {"key": ARCH_LABEL, "operator": "NotIn", "values": list(group.arch_not_in)}
    else:
        return None
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [expr]}]}}}


def _component_image(ref: Optional[ImageRef], field: str) -> str:
    """The canonical reference of one of the component's own images, which build_plan sets wherever it is used."""
    if ref is None:
        raise ValueError(f"the plan uses {field} but has none")
    return ref.canonical


def _helper_copy(plan: Plan) -> KubeObject:
    """The first init container: copy the static busybox so images without a shell or coreutils can run it."""
    return {
        "name": HELPER_CONTAINER,
        "image": _component_image(plan.helper_image, "helper_image"),
        "imagePullPolicy": "IfNotPresent",
        "command": ["/bin/busybox", "cp", "/bin/busybox", BUSYBOX],
        "resources": _resources(plan),
        "securityContext": security_context(),
        "volumeMounts": [{"name": HELPER_VOLUME, "mountPath": HELPER_MOUNT}],
    }


def _helper(plan: Plan, from_image: bool) -> tuple[list[KubeObject], KubeObject]:
    """(the copy step, or none; the volume busybox is run from).

    With method image-volume the helper image itself is an image volume: the kubelet pulls it with
    the others, and no init container (a pull, a start, and about a second until the kubelet sees
    it exit) stands before the gate's step. Otherwise the copy step fills an emptyDir.
    """
    if from_image:
        reference = _component_image(plan.helper_image, "helper_image")
        return [], {"name": HELPER_VOLUME, "image": {"reference": reference, "pullPolicy": "IfNotPresent"}}
    return [_helper_copy(plan)], {"name": HELPER_VOLUME, "emptyDir": {"sizeLimit": "16Mi"}}


def _kubelet_pull(plan: Plan, ref: ImageRef) -> KubeObject:
    return {
        "name": container_name("pull", ref.path, ref.short_hash),
        "image": ref.canonical,
        "imagePullPolicy": plan.pull_policy.value,
        # command replaces ENTRYPOINT and an empty args drops CMD: only the no-op runs.
        "command": list(NOOP),
        "args": [],
        "resources": _resources(plan),
        "securityContext": security_context(),
        "volumeMounts": [helper_mount_read_only()],
    }


def _docker_pull(plan: Plan, ref: ImageRef) -> KubeObject:
    sc = security_context(read_only_root=False)
    # Root is required to open the root-owned socket; this method is legacy and documented as not restricted.
    sc.update({"runAsNonRoot": False, "runAsUser": 0})
    return {
        "name": container_name("pull", ref.path, ref.short_hash),
        "image": _component_image(plan.docker_cli_image, "docker_cli_image"),
        "imagePullPolicy": "IfNotPresent",
        "command": ["docker", "pull", "--quiet", ref.canonical],
        "resources": _resources(plan),
        "securityContext": sc,
        "volumeMounts": [{"name": "docker-socket", "mountPath": DOCKER_SOCKET}],
    }


def _pull_containers(plan: Plan, group: Group) -> tuple[list[KubeObject], list[KubeObject], list[KubeObject]]:
    """(initContainers, holder volumeMounts, volumes) for the group's images."""
    init: list[KubeObject] = []
    mounts: list[KubeObject] = []
    volumes: list[KubeObject] = []
    helper_from_image = plan.method is Method.IMAGE_VOLUME
    if plan.needs_helper:
        copy, volume = _helper(plan, helper_from_image)
        init.extend(copy)
        volumes.append(volume)
    if plan.pull_retry_seconds is not None:
        # The watchdog runs on the busybox the copy above puts in the volume (the kubectl image has no
        # shell), so it comes right after the copy rather than first; it is a sidecar, so the pulls
        # after it run while it watches. A back-off on the copy's own pull (helper_image) is not bounded.
        init.append(retry_container(plan.pull_retry_seconds, _component_image(plan.untaint_image, "untaint_image")))
        volumes.extend(retry_volumes())
    if plan.method is Method.KUBELET:
        init.extend(_kubelet_pull(plan, ref) for ref in group.images)
    elif plan.method is Method.DOCKER_SOCKET:
        init.extend(_docker_pull(plan, ref) for ref in group.images)
        volumes.append({"name": "docker-socket", "hostPath": {"path": DOCKER_SOCKET, "type": "Socket"}})
    else:  # IMAGE_VOLUME: the kubelet pulls each image to mount it into the holder
        for ref in group.images:
            vol = container_name("img", ref.path, ref.short_hash)
            volumes.append({"name": vol, "image": {"reference": ref.canonical, "pullPolicy": plan.pull_policy.value}})
            mounts.append({"name": vol, "mountPath": f"/images/{vol}", "readOnly": True})
    if plan.remove_startup_taint:
        # Last: init containers run in order, so every pull above has succeeded.
        untaint_image = _component_image(plan.untaint_image, "untaint_image")
        untaint = untaint_container(gate_taint(plan), untaint_image, helper_from_image, lanes_on_node(plan, group))
        if helper_from_image:
            # The kubelet tries every image volume before any container, but a failed pull stops only
            # the containers that mount that volume: mounting them all keeps this step from running
            # (and lifting the taint) before every image is there.
            untaint["volumeMounts"] = [*untaint["volumeMounts"], *(dict(m) for m in mounts)]
        init.append(untaint)
        volumes.extend(untaint_volumes())
    return init, mounts, volumes


def object_id(obj: KubeView) -> str:
    """``Kind/name`` or ``Kind/namespace/name``, as problems, reports and file names refer to objects."""
    meta = obj.get("metadata") or {}
    parts = [str(obj.get("kind")), meta.get("namespace"), str(meta.get("name"))]
    return "/".join(p for p in parts if p)


def namespace_object(name: str, privileged: bool, labels: Mapping[str, str], annotations: Optional[Mapping[str, str]] = None) -> KubeObject:
    """A Namespace labelled for Pod Security: enforce restricted (privileged only for docker-socket); warn and audit restricted."""
    meta: KubeObject = {
        "name": name,
        "labels": {
            **labels,
            "pod-security.kubernetes.io/enforce": "privileged" if privileged else "restricted",
            "pod-security.kubernetes.io/enforce-version": "latest",
            "pod-security.kubernetes.io/warn": "restricted",
            "pod-security.kubernetes.io/audit": "restricted",
        },
    }
    if annotations:
        meta["annotations"] = dict(annotations)
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def namespace_manifest(plan: Plan) -> KubeObject:
    """The plan's Namespace."""
    return namespace_object(plan.namespace, plan.method is Method.DOCKER_SOCKET, object_labels(plan), pairs(plan.annotations))


def _pod_spec(plan: Plan, group: Group) -> KubeObject:
    """The pre-pull pod: pull init containers (or image volumes) and a pause holder, restricted and token-less."""
    init, mounts, volumes = _pull_containers(plan, group)
    holder: KubeObject = {
        "name": "holder",
        "image": plan.pause_image.canonical,
        "imagePullPolicy": "IfNotPresent",
        "resources": _resources(plan),
        "securityContext": security_context(),
    }
    if mounts:
        holder["volumeMounts"] = mounts
    spec: KubeObject = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 5,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": plan.run_as_user,
            "runAsGroup": plan.run_as_user,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "nodeSelector": pairs(plan.node_selector),
    }
    optional = {
        "affinity": _affinity(group),
        "tolerations": [dict(t) for t in plan.tolerations],
        "serviceAccountName": service_account_name(plan),
        "priorityClassName": plan.priority_class_name,
        "imagePullSecrets": [{"name": s} for s in plan.image_pull_secrets],
        "initContainers": init,
    }
    spec.update({key: value for key, value in optional.items() if value})
    spec["containers"] = [holder]
    if volumes:
        spec["volumes"] = volumes
    return spec


def daemon_set_manifest(plan: Plan, group: Group) -> KubeObject:
    """One pre-pull DaemonSet of ``group``'s images."""
    selector = _selector_labels(plan, group)
    pod_annotations = {ANNOTATION_IMAGES_HASH: _images_hash(plan, group)}
    pod_annotations.update(pairs(plan.annotations))
    ds_annotations = {f"checkov.io/skip{i + 1}": f"{check}={why}" for i, (check, why) in enumerate(CHECKOV_SKIPS)}
    if plan.skip_await:
        ds_annotations["pulumi.com/skipAwait"] = "true"
    ds_annotations.update(pairs(plan.annotations))
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {
            "name": group.name,
            "namespace": plan.namespace,
            "labels": object_labels(plan, {LABEL_DAEMONSET: group.name}),
            "annotations": ds_annotations,
        },
        "spec": {
            "selector": {"matchLabels": selector},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": _rolling_update(plan)},
            "template": {
                "metadata": {"labels": object_labels(plan, selector), "annotations": pod_annotations},
                "spec": _pod_spec(plan, group),
            },
        },
    }


def network_policy_manifest(plan: Plan) -> KubeObject:
    """Deny the pre-pull pods all traffic: pulls are made by the kubelet and the runtime, outside the pod.

    Only the kubectl steps (the untaint step, the pull-retry watchdog) need the API server (the
    kubernetes Service, or its endpoints after DNAT: 443 or 6443 depending on the cluster).
    """
    egress = [{"ports": [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 6443}]}] if plan.needs_api else []
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": object_meta(plan, plan.base_name, plan.namespace),
        "spec": {
            "podSelector": {"matchLabels": {LABEL_NAME: APP, LABEL_INSTANCE: plan.base_name}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [],
            "egress": egress,
        },
    }


def _rolling_update(plan: Plan) -> KubeObject:
    if plan.max_surge:
        return {"maxSurge": plan.max_surge, "maxUnavailable": 0}
    return {"maxUnavailable": plan.max_unavailable}


def render(plan: Plan) -> list[KubeObject]:
    """Every object of a plan, Namespace first."""
    objects = [namespace_manifest(plan)] if plan.create_namespace else []
    if plan.remove_startup_taint:
        objects.extend(gate_objects(plan))
    if plan.pull_retry_seconds is not None:
        objects.extend(retry_objects(plan))
    if plan.network_policy:
        objects.append(network_policy_manifest(plan))
    objects.extend(daemon_set_manifest(plan, g) for g in plan.groups)
    return objects


def manifests(args: ImagePrePullerArgs, name: str = "prepull") -> list[KubeObject]:
    """The exact Kubernetes objects ImagePrePuller(name, args) creates, as camelCase dicts.

    Raises PrePullInputError (naming the field and value) on bad input.
    """
    return render(build_plan(args, name))
