"""Typed inputs of :class:`ImagePrePuller`.

Written so Pulumi's component schema analyzer can read them (for TypeScript,
Go, C#, Java and YAML callers): TypedDicts with plain annotations, Enums
instead of ``Literal``, and no ``from __future__ import annotations``.
Every field is plain (not ``pulumi.Input``): the inputs must be known while
the program runs so that bad input fails at preview, before anything is
registered. Defaults live in code (the schema cannot carry them) and each
field's docstring states its default.
"""

import enum
from typing import Mapping, Required, Sequence, TypedDict


class Method(str, enum.Enum):
    """How images are brought onto the node."""

    KUBELET = "kubelet"
    """Each image is an init container running a static no-op: the kubelet pulls it through the node's own runtime and credentials (containerd, CRI-O, Docker). Restricted-compatible. The default."""
    DOCKER_SOCKET = "docker-socket"
    """Legacy: `docker pull` through the host's Docker socket (hostPath). Docker Engine nodes only; needs a privileged namespace."""
    IMAGE_VOLUME = "image-volume"
    """Each image is an OCI image volume mounted read-only into the holder container, which also keeps it in use. Needs Kubernetes >= 1.35 (or the ImageVolume gate) and containerd >= 2.1 / CRI-O >= 1.31."""


class PullPolicy(str, enum.Enum):
    """Image pull policy of the pre-pulled images."""

    IF_NOT_PRESENT = "IfNotPresent"
    """Pull only when the node lacks the image (the default; pair with digests or immutable tags)."""
    ALWAYS = "Always"
    """Ask the registry every time a pod starts (for moving tags; costs registry requests)."""


class TaintEffect(str, enum.Enum):
    """A taint effect."""

    NO_SCHEDULE = "NoSchedule"
    """New pods are not scheduled unless they tolerate the taint."""
    PREFER_NO_SCHEDULE = "PreferNoSchedule"
    """The scheduler tries to avoid the node."""
    NO_EXECUTE = "NoExecute"
    """Running pods that do not tolerate the taint are evicted."""


class TolerationOperator(str, enum.Enum):
    """How a toleration matches a taint's value."""

    EQUAL = "Equal"
    """Key and value must match (the default)."""
    EXISTS = "Exists"
    """Any value matches; with no key, every taint matches."""


class Toleration(TypedDict, total=False):
    """A pod toleration (the Kubernetes Toleration, snake_case)."""

    key: str
    """Taint key to match. Empty or absent with operator Exists matches every key. Default: absent."""
    operator: TolerationOperator
    """Equal or Exists. Default: Equal."""
    value: str
    """Taint value to match with Equal; must be absent with Exists. Default: empty."""
    effect: TaintEffect
    """Effect to match; absent matches every effect. Default: absent."""
    toleration_seconds: int
    """With NoExecute only: how long the pod stays after the taint appears. Default: forever."""


class StartupTaint(TypedDict, total=False):
    """A taint that new nodes register with and that is removed once their images are present."""

    key: str
    """Taint key, e.g. `prepull.dev/not-ready`. Required."""
    value: str
    """Taint value. Default: empty (tolerated whatever its value)."""
    effect: TaintEffect
    """NoSchedule or NoExecute. Default: NoSchedule."""


class CustomTimeouts(TypedDict, total=False):
    """How long Pulumi waits for each DaemonSet (Go durations such as `30m`)."""

    create: str
    """Wait for the first rollout (every selected node pulled every image). Default: pulumi-kubernetes' 10m."""
    update: str
    """Wait for a rollout after a change. Default: pulumi-kubernetes' 10m."""
    delete: str
    """Wait for deletion. Default: pulumi-kubernetes' 10m."""


class ContainerResources(TypedDict, total=False):
    """Requests and limits applied to every container of the pre-pull pods."""

    cpu_request: str
    """Default: `1m`."""
    memory_request: str
    """Default: `8Mi`."""
    cpu_limit: str
    """Default: `100m`."""
    memory_limit: str
    """Default: `32Mi`."""


class ImagePrePullerArgs(TypedDict, total=False):
    """Inputs of ImagePrePuller. Only `images` is required."""

    images: Required[Sequence[str]]
    """Image references to pre-pull (tag and/or digest), pulled in this order. Required, non-empty, no duplicates after normalisation (`nginx` is `docker.io/library/nginx:latest`). From Python an entry may also be a dict `{"image": ..., "platforms": [...]}`, the same as an `image_platforms` entry."""
    image_platforms: Mapping[str, Sequence[str]]
    """Restricts some images to nodes of given platforms, e.g. `{"nvcr.io/nvidia/cuda:12.6.2-base-ubuntu24.04": ["linux/amd64"]}`, so an amd64-only image never loops in ErrImagePull on arm64 nodes. Keys must appear in `images`. Default: every image on every node."""
    image_sizes: Mapping[str, int]
    """Compressed size in bytes of each image (the sum of its layers), e.g. from `python -m prepull lock`: `lanes` then balances the images by size, largest first to the lane with the fewest bytes, instead of round-robin. Give every image a size, or none. Default: none (round-robin)."""
    namespace: str
    """Namespace of the DaemonSets. Default: `prepull`."""
    create_namespace: bool
    """Create the namespace, labelled for Pod Security `restricted` (or `privileged` with the docker-socket method). Default: true."""
    base_name: str
    """Base name of the Kubernetes objects: DaemonSets are `<base_name>`, or `<base_name>-<arch>` / `<base_name>-l<lane>` when split. Default: the component's resource name, which then must be a DNS-1123 label."""
    node_selector: Mapping[str, str]
    """Node labels the pre-pull pods require; merged with `kubernetes.io/os: linux`. Default: every Linux node."""
    tolerations: Sequence[Toleration]
    """Taints the pods tolerate, so tainted (GPU, dedicated) pools get the images too. Default: none."""
    tolerate_all_taints: bool
    """Tolerate every taint (operator Exists). Conflicts with `tolerations`. Avoid on clusters with virtual nodes (Fargate, virtual-kubelet): the rollout then never completes. Default: false."""
    image_pull_secrets: Sequence[str]
    """Names of docker-registry Secrets in `namespace` used to pull private images. Not supported by the docker-socket method. Default: none (node credentials only)."""
    pull_policy: PullPolicy
    """IfNotPresent or Always. Default: IfNotPresent."""
    method: Method
    """kubelet, docker-socket or image-volume (see the Method enum). Default: kubelet."""
    pause_image: str
    """Image of the long-running holder container. Default: `registry.k8s.io/pause:3.10.1` (static, multi-arch, runs as non-root)."""
    helper_image: str
    """kubelet method: image whose static busybox is copied into a shared emptyDir and run as the no-op command of every pull container, so images without a shell (distroless, scratch) work. Must contain a static `/bin/busybox`. Default: `docker.io/library/busybox:1.37.0-musl`."""
    docker_cli_image: str
    """docker-socket method: image with the `docker` CLI. Default: `docker.io/library/docker:27.5.1-cli`."""
    startup_taint: StartupTaint
    """A startup taint the pods tolerate (new nodes register with it; see the node-pool gate). Default: none."""
    remove_startup_taint: bool
    """Remove `startup_taint` from each node once every image is present there (the new-node gate): adds a ServiceAccount, a ClusterRole limited to get/patch on nodes and a ValidatingAdmissionPolicy that allows only that removal, only on the pod's own node. Needs `startup_taint`, `lanes` 1 and Kubernetes >= 1.30 (1.32 for the node-name claim in tokens). Default: false."""
    untaint_image: str
    """Image with `kubectl` for the taint removal step. Default: `registry.k8s.io/kubectl:v1.32.3` (official, multi-arch, kubectl only)."""
    lanes: int
    """Split the images over this many DaemonSets: round-robin in order, or by size with `image_sizes` (largest first to the lane with the fewest bytes). A pod pulls its images one after another; separate pods pull in parallel when the kubelet has `serializeImagePulls: false` (EKS, AKS >= 1.31, GKE, Bottlerocket). Each lane costs one pod slot per node. Default: 1."""
    priority_class_name: str
    """PriorityClass of the pods. Default: none (priority 0)."""
    labels: Mapping[str, str]
    """Extra labels on every object and pod. Default: none."""
    annotations: Mapping[str, str]
    """Extra annotations on every object and pod. Default: none."""
    max_unavailable: int
    """Nodes whose pod may be replaced at once when the image list changes (DaemonSet rolling update). New nodes are never limited by it. Default: 1."""
    max_surge: int
    """If set, a changed image list rolls by starting the new pod beside the old one on this many nodes at a time (maxSurge, maxUnavailable 0): the old pod keeps the old images pinned until the new one has pulled. Conflicts with `max_unavailable`. Costs one extra pod slot per node during the rollout. Default: 0 (use max_unavailable)."""
    custom_timeouts: CustomTimeouts
    """How long `pulumi up` waits for each DaemonSet rollout (every selected node holding every image); raise it for multi-GB images. Default: pulumi-kubernetes' 10 minutes."""
    skip_await: bool
    """Do not wait for rollouts (annotation `pulumi.com/skipAwait`); `pulumi up` then returns before nodes hold the images. Default: false."""
    resources: ContainerResources
    """Requests and limits of the pull and holder containers. The gate's untaint step (kubectl) has its own, requests 10m / 64Mi and limits 500m / 256Mi, so a gated pod reserves 10m / 64Mi. Default: requests 1m CPU / 8Mi, limits 100m / 32Mi."""
    network_policy: bool
    """Declare a NetworkPolicy that denies the pods all ingress and all egress (the kubelet, not the pod, pulls), except egress to the API server on ports 443/6443 for the untaint step. Harmless where the CNI does not enforce policies. Default: true."""
    run_as_user: int
    """Non-root UID of every container (not for docker-socket's pull step, which must be root). Default: 65532."""


# The defaults, in one place; the docstrings above state the same values.
DEFAULTS = {
    "namespace": "prepull",
    "create_namespace": True,
    "tolerate_all_taints": False,
    "pull_policy": PullPolicy.IF_NOT_PRESENT,
    "method": Method.KUBELET,
    "pause_image": "registry.k8s.io/pause:3.10.1",
    "helper_image": "docker.io/library/busybox:1.37.0-musl",
    "docker_cli_image": "docker.io/library/docker:27.5.1-cli",
    "lanes": 1,
    "remove_startup_taint": False,
    "untaint_image": "registry.k8s.io/kubectl:v1.32.3",
    "max_unavailable": 1,
    "max_surge": 0,
    "skip_await": False,
    "run_as_user": 65532,
    "network_policy": True,
    "resources": {"cpu_request": "1m", "memory_request": "8Mi", "cpu_limit": "100m", "memory_limit": "32Mi"},
    "startup_taint_effect": TaintEffect.NO_SCHEDULE,
}

KNOWN_FIELDS = tuple(ImagePrePullerArgs.__annotations__)

__all__ = [
    "ContainerResources",
    "CustomTimeouts",
    "DEFAULTS",
    "ImagePrePullerArgs",
    "Method",
    "PullPolicy",
    "StartupTaint",
    "TaintEffect",
    "Toleration",
    "TolerationOperator",
]
