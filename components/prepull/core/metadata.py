"""What every object and container we render shares: metadata, the restricted security context, the helper mount.

The DaemonSet renderer (manifests.py) and the gate's renderer (gate.py) both build from here,
so a pre-pull container and the untaint container cannot drift apart on security settings.
"""

from typing import Iterable, Mapping, Optional

from prepull.core.kobject import KubeObject
from prepull.core.labels import APP, LABEL_INSTANCE, LABEL_MANAGED_BY, LABEL_NAME
from prepull.core.plan import Plan

# The static busybox the copy step puts in an emptyDir, for containers of images without one.
HELPER_MOUNT = "/.prepull"
HELPER_VOLUME = "prepull-bin"
BUSYBOX = f"{HELPER_MOUNT}/busybox"
NOOP = [BUSYBOX, "true"]
# With method image-volume the helper image itself is the volume (no copy step), mounted whole at
# HELPER_MOUNT: a subPath on an image volume needs Kubernetes 1.33 and containerd 2.2.
BUSYBOX_IN_IMAGE = f"{HELPER_MOUNT}/bin/busybox"


def pairs(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """A dict of (key, value) pairs, in their (already sorted) order."""
    return {k: v for k, v in items}


def helper_mount_read_only() -> KubeObject:
    """How every container after the copy step sees the static busybox (or, with image-volume, the helper image)."""
    return {"name": HELPER_VOLUME, "mountPath": HELPER_MOUNT, "readOnly": True}


def busybox_path(from_image: bool) -> str:
    """Where a container finds busybox: copied to the emptyDir, or in the helper image mounted as a volume."""
    return BUSYBOX_IN_IMAGE if from_image else BUSYBOX


def security_context(read_only_root: bool = True) -> KubeObject:
    # Container-level settings Pod Security "restricted" checks on every container.
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "privileged": False,
        "readOnlyRootFilesystem": read_only_root,
    }


def object_labels(plan: Plan, extra: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    labels = {LABEL_NAME: APP, LABEL_INSTANCE: plan.base_name, LABEL_MANAGED_BY: APP}
    labels.update(extra or {})
    labels.update(pairs(plan.labels))
    return labels


def object_meta(plan: Plan, name: str, namespace: Optional[str] = None) -> KubeObject:
    """Metadata of an object of ``plan``: its name, namespace, our labels and the user's annotations."""
    meta: KubeObject = {"name": name, **({"namespace": namespace} if namespace else {}), "labels": object_labels(plan)}
    if plan.annotations:
        meta["annotations"] = pairs(plan.annotations)
    return meta
