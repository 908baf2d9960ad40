"""Where each workload kind keeps its pod template: the one table for the whole project.

Used by the policy pack (to find every image a resource declares) and by tests.
A path is the list of keys from the object root to the PodSpec.
"""

from typing import Iterator, Mapping, Optional

from prepull.core.kobject import KubeView

POD_SPEC_PATHS: Mapping[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "PodTemplate": ("template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}

CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")


def kind_of(resource_type: str) -> Optional[str]:
    """Workload kind of a Pulumi type token, ``*Patch`` kinds included.

    ``kubernetes:apps/v1:DaemonSetPatch`` -> ``DaemonSet``; non-workloads -> None.
    """
    parts = resource_type.split(":")
    if len(parts) != 3 or parts[0] != "kubernetes":
        return None
    kind = parts[2][: -len("Patch")] if parts[2].endswith("Patch") else parts[2]
    return kind if kind in POD_SPEC_PATHS else None


def pod_spec(kind: str, obj: KubeView) -> Optional[KubeView]:
    """The PodSpec of a workload object (camelCase dict), or None when absent."""
    node: object = obj
    for key in POD_SPEC_PATHS[kind]:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node if isinstance(node, Mapping) else None


def iter_images(spec: KubeView) -> Iterator[tuple[str, object, object]]:
    """Yield ``(where, name, image)`` for every container and image volume of a PodSpec.

    ``name`` and ``image`` are as found, not checked (a policy reports a non-string image).

    ``where`` is ``initContainers``, ``containers``, ``ephemeralContainers`` or ``volumes``.
    """
    for where in CONTAINER_LISTS:
        for container in spec.get(where) or ():
            if isinstance(container, Mapping):
                yield where, container.get("name"), container.get("image")
    for volume in spec.get("volumes") or ():
        if isinstance(volume, Mapping) and isinstance(volume.get("image"), Mapping):
            yield "volumes", volume.get("name"), volume["image"].get("reference")
