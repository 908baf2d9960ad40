"""Typed inputs of :class:`ImagePrePuller`.

Written for two readers at once:

* Pulumi's component schema analyzer, which imports this module and reads the
  annotations at run time to infer the schema other languages use (TypeScript,
  Go, C#, Java, YAML). It accepts TypedDicts, Enums, ``pulumi.Input[T]``,
  ``Sequence``, ``Mapping``, ``Optional`` and ``Any``, but rejects ``Union`` and
  crashes on ``Literal`` and on ``from __future__ import annotations``.
* Type checkers (mypy, pyright) reading a Python program that passes these
  inputs. They should accept what the runtime accepts: an enum member or its
  string value (``"Exists"``), an ``images`` entry that is a dict
  (:class:`ImageEntry`), ``"10%"`` for ``max_unavailable``.

The aliases below (``TolerationOperatorLike``, ``ImagesInput``, ...) are
therefore defined twice: under ``typing.TYPE_CHECKING`` as the union a type
checker should see, and otherwise as the one type the analyzer can read (the
Enum, ``Any``...). The schema is unchanged by the type-checker-only spellings.

Two kinds of field:

* **Accepts an Output** (``pulumi.Input[...]``, written ``Input[...]`` below; not plain in the schema):
  values that only end up inside the objects, such as images, node selector,
  tolerations, labels, resources. The component resolves them before it
  validates them, so a bad value still fails with a message naming the field.
* **Plain value**: values that decide which objects exist or how they are
  registered (``lanes``, ``method``, ``remove_startup_taint``,
  ``custom_timeouts``...). They must be known while the program runs.

Each field's docstring ends by saying which kind it is. Defaults live in code
(the schema cannot carry them) and each field's docstring states its default.
"""

import enum
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, ForwardRef, Literal, Mapping, Optional, Required, Sequence, TypedDict, TypeVar, Union

if TYPE_CHECKING:
    from pulumi import Input
else:
    # pulumi.Input, spelled exactly as pulumi/output.py defines it (the analyzer recognises this very
    # shape: a Union of T, Awaitable[T] and the forward reference "Output[T]"), so that the pure core
    # (`python -m prepull render`, manifests()) does not import the Pulumi SDK. tests/contracts/test_types.py
    # checks it against the SDK's.
    _T = TypeVar("_T")
    Input = Union[_T, Awaitable[_T], ForwardRef("Output[T]")]


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


# The string values of the enums above, for type checkers (tests/contracts/test_types.py keeps them equal to the members' values).
MethodName = Literal["kubelet", "docker-socket", "image-volume"]
PullPolicyName = Literal["IfNotPresent", "Always"]
TaintEffectName = Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]
TolerationOperatorName = Literal["Equal", "Exists"]

if TYPE_CHECKING:
    # What a type checker sees: the member or its string value.
    MethodLike = Method | MethodName
    PullPolicyLike = PullPolicy | PullPolicyName
    TaintEffectLike = TaintEffect | TaintEffectName
    TolerationOperatorLike = TolerationOperator | TolerationOperatorName
    # A whole number of nodes, or a percentage of them such as "10%".
    NodeCount = int | str
else:
    # What the analyzer sees: no Union or Literal (conventions §2.2). The enums keep the schema's enum types;
    # NodeCount is `Any` (pulumi.json#/Any) because the schema has no int-or-string type, and `str`
    # would make TypeScript and YAML callers quote whole numbers.
    MethodLike = Method
    PullPolicyLike = PullPolicy
    TaintEffectLike = TaintEffect
    TolerationOperatorLike = TolerationOperator
    NodeCount = Any


class Toleration(TypedDict, total=False):
    """A pod toleration (the Kubernetes Toleration, snake_case). The toleration, and each of its fields, accepts an Output."""

    key: Input[str]
    """Taint key to match. Empty or absent with operator Exists matches every key. Default: absent. Accepts an Output."""
    operator: Input[TolerationOperatorLike]
    """Equal or Exists (the enum member or its string value). Default: Equal. Accepts an Output."""
    value: Input[str]
    """Taint value to match with Equal; must be absent with Exists. Default: empty. Accepts an Output."""
    effect: Input[TaintEffectLike]
    """Effect to match (the enum member or its string value); absent matches every effect. Default: absent. Accepts an Output."""
    toleration_seconds: Input[int]
    """With NoExecute only: how long the pod stays after the taint appears. Default: forever. Accepts an Output."""


class StartupTaint(TypedDict, total=False):
    """A taint that new nodes register with and that is removed once their images are present. Plain values."""

    key: str
    """Taint key, e.g. `prepull.dev/not-ready`. Required. Plain value."""
    value: str
    """Taint value. Default: empty (tolerated whatever its value). Plain value."""
    effect: TaintEffectLike
    """NoSchedule or NoExecute (the enum member or its string value). Default: NoSchedule. Plain value."""


class CustomTimeouts(TypedDict, total=False):
    """How long Pulumi waits for each DaemonSet (Go durations such as `30m`). Plain values: resource options."""

    create: str
    """Wait for the first rollout (every selected node pulled every image). Default: pulumi-kubernetes' 10m. Plain value."""
    update: str
    """Wait for a rollout after a change. Default: pulumi-kubernetes' 10m. Plain value."""
    delete: str
    """Wait for deletion. Default: pulumi-kubernetes' 10m. Plain value."""


class ContainerResources(TypedDict, total=False):
    """Requests and limits applied to every container of the pre-pull pods. Each field accepts an Output."""

    cpu_request: Input[str]
    """Default: `1m`. Accepts an Output."""
    memory_request: Input[str]
    """Default: `8Mi`. Accepts an Output."""
    cpu_limit: Input[str]
    """Default: `100m`. Accepts an Output."""
    memory_limit: Input[str]
    """Default: `32Mi`. Accepts an Output."""
    ephemeral_storage_request: Input[str]
    """Default: `16Mi`: room for what a pod writes (the helper's copy of its static busybox, at most the 16Mi of its volume, and logs). Under disk pressure the kubelet evicts pods that use more than their request first, and evicting the holder unpins the images. Accepts an Output."""
    ephemeral_storage_limit: Input[str]
    """Default: `256Mi`. Accepts an Output."""


class ImageEntry(TypedDict):
    """An `images` entry that also restricts the image to some platforms (Python callers only).

    ``{"image": "nvcr.io/nvidia/cuda:12.6.2-base-ubuntu24.04", "platforms": ["linux/amd64"]}``
    is the same as listing the image and giving ``image_platforms`` an entry for it.
    The schema has no string-or-object type, so other languages use ``image_platforms``.
    """

    image: Input[str]
    """The image reference (tag and/or digest). Required. Accepts an Output."""
    platforms: Sequence[str]
    """Platforms (`linux/amd64`, `linux/arm64`...) whose nodes pull the image; non-empty. Required. Plain value: decides which DaemonSets exist."""


if TYPE_CHECKING:
    # An entry is an image reference (maybe an Output) or an ImageEntry; the list itself may be an
    # Output only when it holds references, as an ImageEntry's platforms decide which objects exist.
    ImagesInput = Input[Sequence[Input[str]]] | Sequence[Input[str] | ImageEntry]
else:
    # The schema's view (no Union): a list of strings, the list and each entry maybe an Output.
    ImagesInput = Input[Sequence[Input[str]]]

# The Input shapes shared by several fields.
StringMapInput = Input[Mapping[str, Input[str]]]
StringListInput = Input[Sequence[Input[str]]]


class ImagePrePullerArgs(TypedDict, total=False):
    """Inputs of ImagePrePuller. Only `images` is required.

    A field that "accepts an Output" may also be given another resource's Output (or an Awaitable);
    a "plain value" must be known while the program runs.
    """

    images: Required[ImagesInput]
    """Image references to pre-pull (tag and/or digest), pulled in this order. Required, non-empty, no duplicates after normalisation (`nginx` is `docker.io/library/nginx:latest`). From Python an entry may also be an ImageEntry dict `{"image": ..., "platforms": [...]}`, the same as an `image_platforms` entry. Accepts an Output (the list, or each reference)."""
    image_platforms: Mapping[str, Sequence[str]]
    """Restricts some images to nodes of given platforms, e.g. `{"nvcr.io/nvidia/cuda:12.6.2-base-ubuntu24.04": ["linux/amd64"]}`, so an amd64-only image never loops in ErrImagePull on arm64 nodes. Keys must appear in `images`. Default: every image on every node. Plain value: decides which DaemonSets exist."""
    image_sizes: Mapping[str, int]
    """Compressed size in bytes of each image (the sum of its layers), e.g. from `python -m prepull lock`: `lanes` then balances the images by size, largest first to the lane with the fewest bytes, instead of round-robin. Give every image a size, or none. Default: none (round-robin). Plain value: decides which DaemonSet pulls which image."""
    namespace: Input[str]
    """Namespace of the DaemonSets. Default: `prepull`. Accepts an Output."""
    create_namespace: bool
    """Create the namespace, labelled for Pod Security `restricted` (or `privileged` with the docker-socket method). Default: true. Plain value: decides which objects exist."""
    base_name: str
    """Base name of the Kubernetes objects: DaemonSets are `<base_name>`, or `<base_name>-<arch>` / `<base_name>-l<lane>` when split. Default: the component's resource name, which then must be a DNS-1123 label. Plain value: names the objects (Pulumi resource names must be known)."""
    node_selector: StringMapInput
    """Node labels the pre-pull pods require; merged with `kubernetes.io/os: linux`. Default: every Linux node. Accepts an Output (the map, or each value)."""
    tolerations: Input[Sequence[Input[Toleration]]]
    """Taints the pods tolerate, so tainted (GPU, dedicated) pools get the images too. Default: none. Accepts an Output (the list, or each toleration)."""
    tolerate_all_taints: bool
    """Tolerate every taint (operator Exists). Conflicts with `tolerations`. Avoid on clusters with virtual nodes (Fargate, virtual-kubelet): the rollout then never completes. Default: false. Plain value: checked against `tolerations` before anything is registered."""
    image_pull_secrets: StringListInput
    """Names of docker-registry Secrets in `namespace` used to pull private images. Not supported by the docker-socket method. Default: none (node credentials only). Accepts an Output (the list, or each name)."""
    pull_policy: PullPolicyLike
    """IfNotPresent or Always (the enum member or its string value). Default: IfNotPresent. Plain value: checked against `method` before anything is registered."""
    method: MethodLike
    """kubelet, docker-socket or image-volume (see the Method enum; the member or its string value). Default: kubelet. Plain value: decides which objects and containers exist."""
    pause_image: Input[str]
    """Image of the long-running holder container. Default: `registry.k8s.io/pause:3.10.1` (static, multi-arch, runs as non-root). Accepts an Output."""
    helper_image: Input[str]
    """kubelet method: image whose static busybox is copied into a shared emptyDir and run as the no-op command of every pull container, so images without a shell (distroless, scratch) work. The gate's untaint step runs its script on the same busybox: copied the same way, or with method image-volume mounted straight from this image as an image volume (no copy step). Must contain a static `/bin/busybox`. Default: `docker.io/library/busybox:1.37.0-musl`. Accepts an Output."""
    docker_cli_image: Input[str]
    """docker-socket method: image with the `docker` CLI. Default: `docker.io/library/docker:27.5.1-cli`. Accepts an Output."""
    startup_taint: StartupTaint
    """A startup taint the pods tolerate (new nodes register with it; see the node-pool gate). Default: none. Plain value: decides which objects exist (with `remove_startup_taint`)."""
    remove_startup_taint: bool
    """Remove `startup_taint` from each node once every image is present there (the new-node gate): adds a ServiceAccount, a ClusterRole limited to get/patch on nodes and a ValidatingAdmissionPolicy that allows only that removal, only on the pod's own node. With `lanes` above 1, each lane's pod has the step, which first waits until every lane's pod on its node has finished its pulls (adds a Role with `list` on pods in `namespace`). Needs `startup_taint` and Kubernetes >= 1.30 (1.32 for the node-name claim in tokens). Default: false. Plain value: decides which objects exist."""
    untaint_image: Input[str]
    """Image with `kubectl` for the taint removal step and for the `pull_retry_seconds` watchdog. Default: `registry.k8s.io/kubectl:v1.32.3` (official, multi-arch, kubectl only). Accepts an Output."""
    pull_retry_seconds: Optional[int]
    """Bound the kubelet's image-pull back-off (10 s doubling to 5 minutes, per pod and image), e.g. after a registry outage: each pod gets a watchdog sidecar (kubectl from `untaint_image`) that, every this many seconds until every pull is done, deletes its own pod when a pull is in ErrImagePull or ImagePullBackOff, so that the DaemonSet's new pod pulls at once. Adds a ServiceAccount (the gate's, when there is one), a Role with get and delete on pods in `namespace`, and a ValidatingAdmissionPolicy that lets it delete only its own pod. From 10 to 300 (the kubelet's own cap: a longer period would shorten nothing). Method kubelet only; Kubernetes >= 1.30. A pull that cannot succeed (an unknown tag) is then retried every this many seconds rather than every 5 minutes, and the pod keeps the watchdog's requests (10m / 64Mi) for its lifetime. Default: none (the kubelet's back-off alone). Plain value: decides which objects exist."""
    lanes: int
    """Split the images over this many DaemonSets: round-robin in order, or by size with `image_sizes` (largest first to the lane with the fewest bytes). A pod pulls its images one after another; separate pods pull in parallel when the kubelet has `serializeImagePulls: false` (EKS, AKS >= 1.31, GKE, Bottlerocket). Each lane costs one pod slot per node. Default: 1. Plain value: decides which objects exist."""
    priority_class_name: Input[str]
    """PriorityClass of the pods. Default: none (priority 0). Accepts an Output."""
    labels: StringMapInput
    """Extra labels on every object and pod. Default: none. Accepts an Output (the map, or each value)."""
    annotations: StringMapInput
    """Extra annotations on every object and pod. Default: none. Accepts an Output (the map, or each value)."""
    max_unavailable: NodeCount
    """Nodes whose pod may be replaced at once when the image list changes (DaemonSet rolling update): a whole number, or a percentage of the nodes such as `"10%"`. New nodes are never limited by it. The schema types it `Any` (it has no integer-or-string type); Python type checkers see `int | str`. Default: 1. Plain value: checked against `max_surge` before anything is registered."""
    max_surge: NodeCount
    """If set, a changed image list rolls by starting the new pod beside the old one on this many nodes at a time (maxSurge, maxUnavailable 0): a whole number, or a percentage of the nodes such as `"10%"`. The old pod keeps the old images pinned until the new one has pulled. Conflicts with `max_unavailable`. Costs one extra pod slot per node during the rollout. The schema types it `Any`; Python type checkers see `int | str`. Default: 0 (use max_unavailable). Plain value: checked against `max_unavailable` before anything is registered."""
    custom_timeouts: CustomTimeouts
    """How long `pulumi up` waits for each DaemonSet rollout (every selected node holding every image); raise it for multi-GB images. Default: pulumi-kubernetes' 10 minutes. Plain value: a resource option of the DaemonSets."""
    skip_await: bool
    """Do not wait for rollouts (annotation `pulumi.com/skipAwait`); `pulumi up` then returns before nodes hold the images. Default: false. Plain value: decides whether Pulumi waits (checked against `custom_timeouts`)."""
    resources: Input[ContainerResources]
    """Requests and limits of the pull and holder containers. The gate's untaint step (kubectl) has its own, requests 10m / 64Mi and limits 500m / 256Mi, so a gated pod reserves 10m / 64Mi. Default: requests 1m CPU / 8Mi, limits 100m / 32Mi. Accepts an Output (the whole, or each field)."""
    network_policy: bool
    """Declare a NetworkPolicy that denies the pods all ingress and all egress (the kubelet, not the pod, pulls), except egress to the API server on ports 443/6443 for the untaint step. Harmless where the CNI does not enforce policies. Default: true. Plain value: decides which objects exist."""
    run_as_user: int
    """Non-root UID of every container (not for docker-socket's pull step, which must be root). Default: 65532. Plain value: checked against `method` before anything is registered."""


class Defaults(TypedDict):
    """The type of :data:`DEFAULTS`: the value each optional input takes when left out."""

    namespace: str
    create_namespace: bool
    tolerate_all_taints: bool
    pull_policy: PullPolicy
    method: Method
    pause_image: str
    helper_image: str
    docker_cli_image: str
    lanes: int
    remove_startup_taint: bool
    untaint_image: str
    max_unavailable: int
    max_surge: int
    skip_await: bool
    run_as_user: int
    network_policy: bool
    resources: Mapping[str, str]
    """Every ContainerResources field."""
    startup_taint_effect: TaintEffect
    """``startup_taint.effect``."""


# The defaults, in one place; the docstrings above state the same values.
DEFAULTS: Defaults = {
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
    "resources": {
        "cpu_request": "1m",
        "memory_request": "8Mi",
        "cpu_limit": "100m",
        "memory_limit": "32Mi",
        "ephemeral_storage_request": "16Mi",
        "ephemeral_storage_limit": "256Mi",
    },
    "startup_taint_effect": TaintEffect.NO_SCHEDULE,
}

KNOWN_FIELDS: tuple[str, ...] = tuple(ImagePrePullerArgs.__annotations__)

__all__ = [
    "ContainerResources",
    "CustomTimeouts",
    "DEFAULTS",
    "Defaults",
    "ImageEntry",
    "ImagePrePullerArgs",
    "ImagesInput",
    "KNOWN_FIELDS",
    "Method",
    "MethodLike",
    "MethodName",
    "NodeCount",
    "PullPolicy",
    "PullPolicyLike",
    "PullPolicyName",
    "StartupTaint",
    "StringListInput",
    "StringMapInput",
    "TaintEffect",
    "TaintEffectLike",
    "TaintEffectName",
    "Toleration",
    "TolerationOperator",
    "TolerationOperatorLike",
    "TolerationOperatorName",
]
