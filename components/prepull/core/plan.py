"""Validate :class:`ImagePrePullerArgs` into a :class:`Plan`.

Every input is checked here, before any resource is registered, with the
checks of :mod:`prepull.core.checks` and :mod:`prepull.core.names`, which raise
:class:`PrePullInputError` naming the field and the value. The rest of the
package only ever sees a valid, normalised Plan.
"""

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

from prepull.args import DEFAULTS, KNOWN_FIELDS, Method, PullPolicy, TaintEffect, TolerationOperator
from prepull.core.checks import (
    IntOrPercent,
    Path,
    amount,
    check_bool,
    check_duration,
    check_enum,
    check_image,
    check_int,
    check_int_or_percent,
    check_keys,
    check_list,
    check_mapping,
    check_quantity,
    check_string_map,
    check_taint,
    image_text,
    quantity_value,
)
from prepull.core.images import ImageRef, Platform, parse_image, parse_platform
from prepull.core.labels import ARCH_LABEL, LABEL_DAEMONSET, LABEL_INSTANCE, LABEL_MANAGED_BY, LABEL_NAME, OS_LABEL
from prepull.core.lanes import assign as assign_lanes
from prepull.core.names import DNS1123_LABEL_MAX, check_dns_label, check_dns_subdomain, check_label_value, check_qualified_name
from prepull.errors import PrePullInputError

# Labels the component owns (core.labels): a user's labels may not override them.
RESERVED_LABELS = (LABEL_NAME, LABEL_INSTANCE, LABEL_DAEMONSET, LABEL_MANAGED_BY)
# Annotation prefixes the component writes or that change how tools treat the objects
# (pulumi.com/skipAwait would bypass the skip_await checks; checkov.io/skipN its written reasons).
RESERVED_ANNOTATION_PREFIXES = ("prepull.dev/", "pulumi.com/", "checkov.io/")
# Namespaces the component must never create (and, on destroy, delete).
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
# One DaemonSet and its ControllerRevision must each fit etcd's 1.5 MiB request limit (~0.5 KiB per image).
MAX_IMAGES_PER_DAEMONSET = 1000
MAX_ANNOTATIONS_BYTES = 256 * 1024
MAX_LANES = 32
# pull_retry_seconds: not below the kubelet's first back-off step (10 s), which a retry sooner would
# only multiply into registry and API load; at most 300 s, the kubelet's own cap (a longer period
# would shorten nothing, as the input's docstring says).
PULL_RETRY_MIN_SECONDS = 10
PULL_RETRY_MAX_SECONDS = 300
# Why a method other than kubelet cannot have the watchdog (pull_retry_seconds).
_NO_PULL_RETRY = {
    Method.IMAGE_VOLUME: "with image-volume a failed volume pull blocks the pod before any container runs, the watchdog included",
    Method.DOCKER_SOCKET: "with docker-socket a failed `docker pull` is a container restart, not the kubelet's image-pull back-off",
}
OTHER_ARCHES = "other"

_TOLERATION_KEYS = ("key", "operator", "value", "effect", "toleration_seconds")
_TIMEOUT_KEYS = ("create", "update", "delete")


_RESOURCE_DEFAULTS: Mapping[str, Any] = DEFAULTS["resources"]
_RESOURCE_KEYS = tuple(_RESOURCE_DEFAULTS)


Pairs = tuple[tuple[str, str], ...]
Getter = Callable[[str], Any]


@dataclass(frozen=True)
class Group:
    """One DaemonSet: a lane of the images for one set of architectures."""

    name: str
    images: tuple[ImageRef, ...]
    arch_in: tuple[str, ...] = ()
    """Select only nodes of these arches (empty: no arch constraint)."""
    arch_not_in: tuple[str, ...] = ()
    """Exclude nodes of these arches."""

    def same_nodes(self, other: "Group") -> bool:
        """Whether ``other`` runs on the same nodes (another lane of the same architectures)."""
        return (self.arch_in, self.arch_not_in) == (other.arch_in, other.arch_not_in)


@dataclass(frozen=True)
class Plan:
    """Validated, normalised inputs. Built only by :func:`build_plan`."""

    base_name: str
    namespace: str
    create_namespace: bool
    images: tuple[ImageRef, ...]  # in the user's order
    platforms: Mapping[str, tuple[Platform, ...]]  # canonical ref -> sorted Platforms
    groups: tuple[Group, ...]
    node_selector: Pairs  # sorted, kubernetes.io/os included
    tolerations: tuple[dict[str, Any], ...]  # wire shape
    image_pull_secrets: tuple[str, ...]
    pull_policy: PullPolicy
    method: Method
    pause_image: ImageRef
    helper_image: Optional[ImageRef]
    docker_cli_image: Optional[ImageRef]
    startup_taint: Optional[Mapping[str, str]]
    lanes: int
    priority_class_name: Optional[str]
    labels: Pairs  # sorted
    annotations: Pairs  # sorted
    max_unavailable: IntOrPercent  # an int or a percentage such as "10%", as given
    max_surge: IntOrPercent  # 0 when unused (a zero percentage included), else as given
    custom_timeouts: Mapping[str, str]
    skip_await: bool
    resources: Mapping[str, str]
    run_as_user: int
    remove_startup_taint: bool
    untaint_image: Optional[ImageRef]
    network_policy: bool
    pull_retry_seconds: Optional[int] = None  # the watchdog's period (core.retry); None: the kubelet's back-off alone

    @property
    def needs_helper(self) -> bool:
        """The static busybox, for the kubelet no-op and the kubectl steps: copied in, or with image-volume mounted from its image."""
        return self.method is Method.KUBELET or self.remove_startup_taint

    @property
    def needs_api(self) -> bool:
        """A kubectl step runs (the gate's untaint step, the pull-retry watchdog): the pod has a ServiceAccount and calls the API server."""
        return self.remove_startup_taint or self.pull_retry_seconds is not None


PlatformLists = dict[str, tuple[Path, Any]]  # canonical ref -> (field, the platforms as given)


def _images(args: Mapping[str, Any]) -> tuple[tuple[ImageRef, ...], dict[str, tuple[Platform, ...]]]:
    """Parse `images` (and dict entries' platforms); return (refs, {canonical: platforms})."""
    if args.get("images") is None:
        raise PrePullInputError("images", None, "is required: list at least one image reference")
    raw = check_list(args["images"], "images", "image references", non_empty=True)
    refs: list[ImageRef] = []
    seen: dict[str, int] = {}
    platform_lists: PlatformLists = {}
    for i, entry in enumerate(raw):
        field = Path("images").at(i)
        entry_platforms = None
        if isinstance(entry, Mapping):
            check_keys(entry, ("image", "platforms"), field)
            entry_platforms = entry.get("platforms")
            entry, field = entry.get("image"), field.child("image")
        ref = check_image(entry, field)
        if ref.identity in seen:
            raise PrePullInputError(field, image_text(entry), f"duplicate of images[{seen[ref.identity]}] (both are {ref.identity})")
        seen[ref.identity] = i
        refs.append(ref)
        if entry_platforms is not None:
            platform_lists[ref.canonical] = (Path("images").at(i).child("platforms"), entry_platforms)
    _image_platforms(args.get("image_platforms"), refs, platform_lists)
    platforms = {}
    for canonical, (field, plats) in platform_lists.items():
        plats = check_list(plats, field, "platforms such as 'linux/amd64'", non_empty=True)
        platforms[canonical] = tuple(sorted({parse_platform(p, field.at(j)) for j, p in enumerate(plats)}))
    return tuple(refs), platforms


def _image_platforms(value: Any, refs: list[ImageRef], platform_lists: PlatformLists) -> None:
    """Add `image_platforms` to ``platform_lists``: each key an image of ``refs`` without platforms of its own."""
    if value is None:
        return
    for key, plats in check_mapping(value, "image_platforms").items():
        field = Path("image_platforms").entry(image_text(key))
        # A key may be written as in images or in any equivalent form ("nginx" for "nginx:latest").
        canonical = check_image(key, field).canonical
        ref = next((r for r in refs if r.canonical == canonical), None)
        if ref is None:
            raise PrePullInputError(field, image_text(key), "names an image that is not in images")
        if ref.canonical in platform_lists:
            raise PrePullInputError(field, image_text(key), "platforms are already given for this image in its images entry")
        platform_lists[ref.canonical] = (field, plats)


def _image_sizes(value: Any, images: tuple[ImageRef, ...]) -> dict[str, int]:
    """``image_sizes`` as {canonical: bytes}; every image or none, so lanes are never balanced on half the bytes."""
    if value is None:
        return {}
    sizes: dict[str, int] = {}
    for key, size in check_mapping(value, "image_sizes").items():
        field = Path("image_sizes").entry(image_text(key))
        canonical = check_image(key, field).canonical
        if canonical not in {r.canonical for r in images}:
            raise PrePullInputError(field, image_text(key), "names an image that is not in images")
        sizes[canonical] = check_int(size, field, 0)
    for i, ref in enumerate(images):
        if ref.canonical not in sizes:
            raise PrePullInputError(
                "image_sizes",
                {image_text(k): v for k, v in value.items()},
                f"has no size for images[{i}] ({ref.original!r}): give every image a size, or none",
            )
    return sizes


def _toleration(value: Any, field: Path) -> dict[str, Any]:
    """A toleration in its wire shape (camelCase), as the API server validates it."""
    tol = check_mapping(value, field)
    check_keys(tol, _TOLERATION_KEYS, field)
    key, value_, effect, seconds = tol.get("key") or None, tol.get("value"), tol.get("effect"), tol.get("toleration_seconds")
    operator = check_enum(TolerationOperator, tol.get("operator", TolerationOperator.EQUAL), field.child("operator"))
    out: dict[str, Any] = {}
    if key is not None:
        out["key"] = check_qualified_name(key, field.child("key"))
    out["operator"] = operator.value
    if operator is TolerationOperator.EXISTS:
        if value_:
            raise PrePullInputError(field.child("value"), value_, "must be empty when operator is Exists")
    else:
        if key is None:
            raise PrePullInputError(field.child("key"), key, "is required when operator is Equal (use operator Exists to match every key)")
        out["value"] = check_label_value(value_ if value_ is not None else "", field.child("value"))
    if effect is not None:
        out["effect"] = check_enum(TaintEffect, effect, field.child("effect")).value
    if seconds is not None:
        if out.get("effect") != TaintEffect.NO_EXECUTE.value:
            raise PrePullInputError(field.child("toleration_seconds"), seconds, "is only allowed with effect NoExecute")
        out["tolerationSeconds"] = check_int(seconds, field.child("toleration_seconds"), 0)
    return out


def _startup_taint(value: Any) -> dict[str, str]:
    field = Path("startup_taint")
    taint = check_taint(value, field, default_effect=TaintEffect(DEFAULTS["startup_taint_effect"]))
    if taint["effect"] == TaintEffect.PREFER_NO_SCHEDULE.value:
        raise PrePullInputError(
            field.child("effect"),
            taint["effect"],
            "must be NoSchedule or NoExecute: PreferNoSchedule does not keep workloads off a cold node",
        )
    return taint


ArchSet = tuple[str, tuple[ImageRef, ...], tuple[str, ...], tuple[str, ...]]  # (name suffix, images, arch_in, arch_not_in)


def _arch_sets(images: tuple[ImageRef, ...], platforms: Mapping[str, tuple[Platform, ...]], gate: bool) -> list[ArchSet]:
    """The images per architecture where platforms are given; one set of every image where none are."""
    arches = sorted({p.arch for plats in platforms.values() for p in plats})
    if not arches:
        return [("", tuple(images), (), ())]
    arch_sets: list[ArchSet] = [
        (a, tuple(r for r in images if r.canonical not in platforms or a in {p.arch for p in platforms[r.canonical]}), (a,), ())
        for a in arches
    ]
    unrestricted = tuple(r for r in images if r.canonical not in platforms)
    if unrestricted or gate:
        # Nodes of any other architecture still get the unrestricted images (and the gate).
        arch_sets.append((OTHER_ARCHES, unrestricted, (), tuple(arches)))
    return arch_sets


def _groups(
    base: str,
    images: tuple[ImageRef, ...],
    platforms: Mapping[str, tuple[Platform, ...]],
    lanes: int,
    fixed_arch: Optional[str],
    gate: bool = False,
    sizes: Optional[Mapping[str, int]] = None,
) -> tuple[Group, ...]:
    """Split images into DaemonSets: per architecture where platforms are given, then per lane.

    Lanes are balanced by ``sizes`` ({canonical: bytes}) when every image has one, else
    round-robin (prepull.core.lanes). With the gate, nodes of an architecture no image is for
    still need a pod: one that pulls nothing and only removes the startup taint (a single lane).
    """
    sizes = sizes or {}
    if fixed_arch is not None and platforms:
        raise PrePullInputError(
            Path("node_selector").entry(ARCH_LABEL),
            fixed_arch,
            "conflicts with image_platforms: per-image platforms already choose the architectures",
        )
    groups = []
    for suffix, group_images, arch_in, arch_not_in in _arch_sets(images, platforms, gate):
        n = max(min(lanes, len(group_images)), 1)
        for lane, indices in enumerate(assign_lanes([sizes.get(r.canonical) for r in group_images], n)):
            lane_images = tuple(group_images[i] for i in indices)
            parts = [base] + ([suffix] if suffix else []) + ([f"l{lane + 1}"] if lanes > 1 else [])
            groups.append(Group("-".join(parts), lane_images, arch_in, arch_not_in))
    return tuple(groups)


def _max_suffix_len(platforms: Mapping[str, tuple[Platform, ...]], lanes: int) -> int:
    arch_len = max([len(p.arch) for plats in platforms.values() for p in plats] + [len(OTHER_ARCHES)]) + 1 if platforms else 0
    return arch_len + (len(f"-l{lanes}") if lanes > 1 else 0)


@dataclass(frozen=True)
class _Rollout:
    lanes: int
    max_unavailable: IntOrPercent
    max_surge: IntOrPercent


@dataclass(frozen=True)
class _Naming:
    base_name: str
    namespace: str
    create_namespace: bool


@dataclass(frozen=True)
class _Scheduling:
    node_selector: Pairs
    tolerations: tuple[dict[str, Any], ...]
    startup_taint: Optional[Mapping[str, str]]


@dataclass(frozen=True)
class _Timeouts:
    skip_await: bool
    custom_timeouts: Mapping[str, str]


@dataclass(frozen=True)
class _Metadata:
    labels: Pairs
    annotations: Pairs
    priority_class_name: Optional[str]


@dataclass(frozen=True)
class _OwnImages:
    """The component's own images: pause always; helper, untaint and docker CLI where they are used."""

    pause: ImageRef
    helper: Optional[ImageRef]
    untaint: Optional[ImageRef]
    docker_cli: Optional[ImageRef]


def build_plan(args: Optional[Mapping[str, Any]], name: str = "prepull") -> Plan:
    """Validate ``args`` (an ImagePrePullerArgs) and normalise them into a Plan.

    One step per concern, in a fixed order: the first problem found is the one reported.
    """
    args = check_mapping({} if args is None else args, "args")
    check_keys(args, KNOWN_FIELDS, Path())
    get: Getter = lambda key: args.get(key) if args.get(key) is not None else DEFAULTS.get(key)  # noqa: E731
    images, platforms = _images(args)
    method = check_enum(Method, get("method"), "method")
    pull_policy = check_enum(PullPolicy, get("pull_policy"), "pull_policy")
    rollout = _rollout(args, get, len(images))
    run_as_user = check_int(get("run_as_user"), "run_as_user", 1)
    naming = _naming(args, get, name, platforms, rollout.lanes)
    scheduling = _scheduling(args, get)
    pull_secrets = _pull_secrets(args, method)
    gate = check_bool(get("remove_startup_taint"), "remove_startup_taint")
    retry = _pull_retry(args, method)
    _check_method_inputs(args, method, pull_policy, gate, retry)
    timeouts, resources, metadata = _timeouts(args, get), _resources(args), _metadata(args)
    own = _component_images(args, method, gate, retry)
    groups = _daemon_sets(args, images, platforms, naming.base_name, rollout.lanes, scheduling.node_selector, gate)
    return Plan(
        base_name=naming.base_name,
        namespace=naming.namespace,
        create_namespace=naming.create_namespace,
        images=images,
        platforms=platforms,
        groups=groups,
        node_selector=scheduling.node_selector,
        tolerations=scheduling.tolerations,
        startup_taint=scheduling.startup_taint,
        image_pull_secrets=pull_secrets,
        pull_policy=pull_policy,
        method=method,
        pause_image=own.pause,
        helper_image=own.helper,
        docker_cli_image=own.docker_cli,
        untaint_image=own.untaint,
        lanes=rollout.lanes,
        max_unavailable=rollout.max_unavailable,
        max_surge=rollout.max_surge,
        priority_class_name=metadata.priority_class_name,
        labels=metadata.labels,
        annotations=metadata.annotations,
        custom_timeouts=timeouts.custom_timeouts,
        skip_await=timeouts.skip_await,
        resources=resources,
        run_as_user=run_as_user,
        remove_startup_taint=gate,
        network_policy=check_bool(get("network_policy"), "network_policy"),
        pull_retry_seconds=retry,
    )


def _rollout(args: Mapping[str, Any], get: Getter, image_count: int) -> _Rollout:
    """lanes, max_unavailable and max_surge (each a whole number, or a percentage as Kubernetes takes them).

    Exactly one of the two is non-zero in the DaemonSet, as Kubernetes requires: max_unavailable
    (at least 1 or 1%) unless max_surge is non-zero, and then max_unavailable is 0 and may not be set.
    """
    lanes = check_int(get("lanes"), "lanes", 1, MAX_LANES)
    if lanes > image_count:
        raise PrePullInputError("lanes", lanes, f"is more than the number of images ({image_count}); extra lanes would be empty DaemonSets")
    max_unavailable = check_int_or_percent(get("max_unavailable"), "max_unavailable", 1)
    max_surge = check_int_or_percent(get("max_surge"), "max_surge", 0)
    if amount(max_surge) and args.get("max_unavailable") is not None:
        raise PrePullInputError(
            "max_unavailable", args["max_unavailable"], "conflicts with max_surge, which replaces pods without taking any away"
        )
    return _Rollout(lanes, max_unavailable, max_surge if amount(max_surge) else 0)


def _naming(args: Mapping[str, Any], get: Getter, name: str, platforms: Mapping[str, tuple[Platform, ...]], lanes: int) -> _Naming:
    """base_name (room left for the split suffixes), namespace and create_namespace."""
    base_field = "base_name" if args.get("base_name") is not None else "name"
    raw_base = args.get("base_name") if args.get("base_name") is not None else name
    base = check_dns_label(raw_base, base_field, max_len=DNS1123_LABEL_MAX - _max_suffix_len(platforms, lanes))
    namespace = check_dns_label(get("namespace"), "namespace")
    create_namespace = check_bool(get("create_namespace"), "create_namespace")
    if create_namespace and namespace in SYSTEM_NAMESPACES:
        raise PrePullInputError(
            "namespace",
            namespace,
            "is a system namespace the component must not create (and delete on destroy): set create_namespace to false",
        )
    return _Naming(base, namespace, create_namespace)


def _scheduling(args: Mapping[str, Any], get: Getter) -> _Scheduling:
    """node_selector (always Linux), tolerations (the startup taint's added) and startup_taint."""
    node_selector = dict(check_string_map(args.get("node_selector") or {}, "node_selector", check_label_value))
    if node_selector.get(OS_LABEL, "linux") != "linux":
        raise PrePullInputError(Path("node_selector").entry(OS_LABEL), node_selector[OS_LABEL], "only Linux nodes are supported")
    node_selector[OS_LABEL] = "linux"
    tolerate_all = check_bool(get("tolerate_all_taints"), "tolerate_all_taints")
    raw_tolerations = check_list(args.get("tolerations") or [], "tolerations")
    if tolerate_all and raw_tolerations:
        raise PrePullInputError("tolerations", raw_tolerations, "conflicts with tolerate_all_taints, which already tolerates every taint")
    tolerations: list[dict[str, Any]] = (
        [{"operator": "Exists"}] if tolerate_all else [_toleration(t, Path("tolerations").at(i)) for i, t in enumerate(raw_tolerations)]
    )
    startup_taint = _startup_taint(args["startup_taint"]) if args.get("startup_taint") is not None else None
    if startup_taint is not None:
        tol = {"key": startup_taint["key"], "operator": "Exists", "effect": startup_taint["effect"]}
        if tol not in tolerations and not tolerate_all:
            tolerations.append(tol)
    return _Scheduling(tuple(sorted(node_selector.items())), tuple(tolerations), startup_taint)


def _pull_secrets(args: Mapping[str, Any], method: Method) -> tuple[str, ...]:
    secrets = check_list(args.get("image_pull_secrets") or [], "image_pull_secrets")
    for i, secret in enumerate(secrets):
        check_dns_subdomain(secret, Path("image_pull_secrets").at(i))
    if len(set(secrets)) != len(secrets):
        raise PrePullInputError("image_pull_secrets", secrets, "lists a secret more than once")
    if method is Method.DOCKER_SOCKET and secrets:
        raise PrePullInputError(
            "image_pull_secrets",
            secrets,
            "cannot be honoured by method docker-socket: the Docker daemon pulls with the node's own credentials",
        )
    return tuple(secrets)


def _pull_retry(args: Mapping[str, Any], method: Method) -> Optional[int]:
    """pull_retry_seconds, where its watchdog can run: a sidecar of the pod whose pulls the kubelet backs off (method kubelet)."""
    if args.get("pull_retry_seconds") is None:
        return None
    seconds = check_int(args["pull_retry_seconds"], "pull_retry_seconds", PULL_RETRY_MIN_SECONDS, PULL_RETRY_MAX_SECONDS)
    if method is not Method.KUBELET:
        raise PrePullInputError("pull_retry_seconds", seconds, f"needs method kubelet, not {method.value}: {_NO_PULL_RETRY[method]}")
    return seconds


def _check_method_inputs(
    args: Mapping[str, Any], method: Method, pull_policy: PullPolicy, remove_taint: bool, retry: Optional[int]
) -> None:
    """Inputs the chosen method, gate or retry setting cannot honour, or does not use: each is an error, not ignored."""
    if remove_taint and args.get("startup_taint") is None:
        raise PrePullInputError("remove_startup_taint", True, "needs startup_taint: there is no taint to remove")
    if not remove_taint and retry is None and args.get("untaint_image") is not None:
        # The kubectl image of the untaint step and of the pull-retry watchdog.
        raise PrePullInputError("untaint_image", args["untaint_image"], "is only used with remove_startup_taint or pull_retry_seconds")
    if method is not Method.KUBELET and not remove_taint and args.get("helper_image") is not None:
        raise PrePullInputError(
            "helper_image", args["helper_image"], f"is only used by method kubelet or remove_startup_taint, not {method.value}"
        )
    if method is not Method.DOCKER_SOCKET and args.get("docker_cli_image") is not None:
        raise PrePullInputError("docker_cli_image", args["docker_cli_image"], f"is only used by method docker-socket, not {method.value}")
    if method is Method.DOCKER_SOCKET and args.get("pull_policy") is not None and pull_policy is not PullPolicy.ALWAYS:
        raise PrePullInputError(
            "pull_policy",
            args["pull_policy"],
            "cannot be honoured by method docker-socket: `docker pull` always asks the registry (leave it unset or Always)",
        )
    if method is Method.DOCKER_SOCKET and args.get("run_as_user") is not None:
        raise PrePullInputError(
            "run_as_user",
            args["run_as_user"],
            "cannot be honoured by method docker-socket: its pull step must run as root to reach the socket",
        )


def _timeouts(args: Mapping[str, Any], get: Getter) -> _Timeouts:
    """skip_await and custom_timeouts (which must not wait for a rollout nothing waits for)."""
    skip_await = check_bool(get("skip_await"), "skip_await")
    timeouts_raw = check_mapping(args.get("custom_timeouts") or {}, "custom_timeouts")
    check_keys(timeouts_raw, _TIMEOUT_KEYS, "custom_timeouts")
    timeouts = {
        k: check_duration(timeouts_raw[k], Path("custom_timeouts").child(k)) for k in _TIMEOUT_KEYS if timeouts_raw.get(k) is not None
    }
    if skip_await and ({"create", "update"} & set(timeouts)):
        raise PrePullInputError(
            "custom_timeouts", dict(timeouts_raw), "create/update timeouts conflict with skip_await: nothing waits for the rollout"
        )
    return _Timeouts(skip_await, timeouts)


def _resources(args: Mapping[str, Any]) -> dict[str, str]:
    """Every container's requests and limits; a request may not exceed its limit (compared exactly)."""
    resources_raw = check_mapping(args.get("resources") or {}, "resources")
    check_keys(resources_raw, _RESOURCE_KEYS, "resources")
    resources = {k: check_quantity(resources_raw.get(k, _RESOURCE_DEFAULTS[k]), Path("resources").child(k)) for k in _RESOURCE_KEYS}
    for what in ("cpu", "memory", "ephemeral_storage"):
        if quantity_value(resources[f"{what}_request"]) > quantity_value(resources[f"{what}_limit"]):
            request, limit = f"{what}_request", f"{what}_limit"
            raise PrePullInputError(
                Path("resources").child(request), resources[request], f"must not exceed resources.{limit} ({resources[limit]})"
            )
    return resources


def _metadata(args: Mapping[str, Any]) -> _Metadata:
    """labels, annotations (none of ours overridden, within Kubernetes' size limit) and priority_class_name."""
    labels = check_string_map(args.get("labels") or {}, "labels", check_label_value)
    for key, _ in labels:
        if key in RESERVED_LABELS:
            raise PrePullInputError(
                Path("labels").entry(key), dict(labels)[key], "is set by the component (it selects the pods) and cannot be overridden"
            )
    annotations = check_string_map(args.get("annotations") or {}, "annotations")
    for key, value in annotations:
        if key.startswith(RESERVED_ANNOTATION_PREFIXES):
            raise PrePullInputError(
                Path("annotations").entry(key),
                value,
                f"keys starting with {', '.join(RESERVED_ANNOTATION_PREFIXES)} are set by the component (use its inputs instead)",
            )
    size = sum(len(k) + len(v) for k, v in annotations)
    if size > MAX_ANNOTATIONS_BYTES:
        raise PrePullInputError(
            "annotations", f"<{size} bytes>", f"exceed Kubernetes' {MAX_ANNOTATIONS_BYTES} bytes for all annotations of an object"
        )
    priority = args.get("priority_class_name")
    return _Metadata(labels, annotations, None if priority is None else check_dns_subdomain(priority, "priority_class_name"))


# The component's own images when not given: parsed once, not once per plan (a stack builds one per pool).
_DEFAULT_IMAGES: Mapping[str, ImageRef] = {
    "pause_image": parse_image(DEFAULTS["pause_image"], "pause_image"),
    "helper_image": parse_image(DEFAULTS["helper_image"], "helper_image"),
    "untaint_image": parse_image(DEFAULTS["untaint_image"], "untaint_image"),
    "docker_cli_image": parse_image(DEFAULTS["docker_cli_image"], "docker_cli_image"),
}


def _own_image(args: Mapping[str, Any], key: str) -> ImageRef:
    return _DEFAULT_IMAGES[key] if args.get(key) is None else check_image(args[key], key)


def _component_images(args: Mapping[str, Any], method: Method, remove_taint: bool, retry: Optional[int]) -> _OwnImages:
    return _OwnImages(
        pause=_own_image(args, "pause_image"),
        helper=_own_image(args, "helper_image") if method is Method.KUBELET or remove_taint else None,
        # kubectl, for the untaint step and for the pull-retry watchdog.
        untaint=_own_image(args, "untaint_image") if remove_taint or retry is not None else None,
        docker_cli=_own_image(args, "docker_cli_image") if method is Method.DOCKER_SOCKET else None,
    )


def _daemon_sets(
    args: Mapping[str, Any],
    images: tuple[ImageRef, ...],
    platforms: Mapping[str, tuple[Platform, ...]],
    base_name: str,
    lanes: int,
    node_selector: Pairs,
    gate: bool,
) -> tuple[Group, ...]:
    """The DaemonSets (groups): per architecture, then per lane; none may exceed the object size limits."""
    sizes = _image_sizes(args.get("image_sizes"), images)
    groups = _groups(base_name, images, platforms, lanes, dict(node_selector).get(ARCH_LABEL), gate=gate, sizes=sizes)
    largest = max(len(g.images) for g in groups)
    if largest > MAX_IMAGES_PER_DAEMONSET:
        raise PrePullInputError(
            "images",
            f"<{len(images)} images>",
            f"{largest} images in one DaemonSet exceed {MAX_IMAGES_PER_DAEMONSET} (object size limits): raise lanes",
        )
    return groups


__all__ = ["Group", "Plan", "build_plan"]
