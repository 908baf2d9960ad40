"""Validate :class:`ImagePrePullerArgs` into a :class:`Plan`.

Every check lives here, runs before any resource is registered, and raises
:class:`PrePullInputError` naming the field and the value. The rest of the
package only ever sees a valid, normalised Plan.
"""

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

from .args import DEFAULTS, KNOWN_FIELDS, Method, PullPolicy, TaintEffect, TolerationOperator
from .errors import PrePullInputError
from .images import ImageRef, parse_image, parse_platform
from .lanes import assign as assign_lanes
from .names import (
    DNS1123_LABEL_MAX,
    check_dns_label,
    check_dns_subdomain,
    check_duration,
    check_label_value,
    check_qualified_name,
    check_quantity,
    quantity_value,
)

# Labels the component owns: the DaemonSet selectors are built from them and
# must never change (a selector change forces a DaemonSet replacement).
LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_DAEMONSET = "prepull.dev/daemonset"
RESERVED_LABELS = (LABEL_NAME, LABEL_INSTANCE, LABEL_DAEMONSET, "app.kubernetes.io/managed-by")
# Annotation prefixes the component writes or that change how tools treat the objects
# (pulumi.com/skipAwait would bypass the skip_await checks; checkov.io/skipN its written reasons).
RESERVED_ANNOTATION_PREFIXES = ("prepull.dev/", "pulumi.com/", "checkov.io/")
# Namespaces the component must never create (and, on destroy, delete).
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
# One DaemonSet and its ControllerRevision must each fit etcd's 1.5 MiB request limit (~0.5 KiB per image).
MAX_IMAGES_PER_DAEMONSET = 1000
MAX_ANNOTATIONS_BYTES = 256 * 1024
OS_LABEL = "kubernetes.io/os"
ARCH_LABEL = "kubernetes.io/arch"
MAX_LANES = 32
OTHER_ARCHES = "other"

_TOLERATION_KEYS = ("key", "operator", "value", "effect", "toleration_seconds")
_TAINT_KEYS = ("key", "value", "effect")
_TIMEOUT_KEYS = ("create", "update", "delete")
_RESOURCE_KEYS = tuple(DEFAULTS["resources"])


@dataclass(frozen=True)
class Group:
    """One DaemonSet: a lane of the images for one set of architectures."""

    name: str
    images: tuple
    arch_in: tuple = ()
    """Select only nodes of these arches (empty: no arch constraint)."""
    arch_not_in: tuple = ()
    """Exclude nodes of these arches."""


@dataclass(frozen=True)
class Plan:
    """Validated, normalised inputs. Built only by :func:`build_plan`."""

    base_name: str
    namespace: str
    create_namespace: bool
    images: tuple  # of ImageRef, in the user's order
    platforms: Mapping[str, tuple]  # canonical ref -> sorted Platforms
    groups: tuple  # of Group
    node_selector: tuple  # sorted (key, value) pairs, kubernetes.io/os included
    tolerations: tuple  # of wire-shape dicts
    image_pull_secrets: tuple
    pull_policy: PullPolicy
    method: Method
    pause_image: ImageRef
    helper_image: Optional[ImageRef]
    docker_cli_image: Optional[ImageRef]
    startup_taint: Optional[Mapping[str, str]]
    lanes: int
    priority_class_name: Optional[str]
    labels: tuple  # sorted pairs
    annotations: tuple  # sorted pairs
    max_unavailable: int
    max_surge: int
    custom_timeouts: Mapping[str, str]
    skip_await: bool
    resources: Mapping[str, str]
    run_as_user: int
    remove_startup_taint: bool
    untaint_image: Optional[ImageRef]
    network_policy: bool

    @property
    def needs_helper(self) -> bool:
        """The static busybox is copied in for the kubelet no-op and for the untaint script."""
        return self.method is Method.KUBELET or self.remove_startup_taint


def _enum(enum_type: type, value: Any, field: str) -> Any:
    if isinstance(value, enum_type):
        return value
    try:
        return enum_type(value)
    except ValueError:
        allowed = ", ".join(repr(m.value) for m in enum_type)
        raise PrePullInputError(field, value, f"must be one of {allowed}") from None


def _bool(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise PrePullInputError(field, value, "must be true or false")
    return value


def _int(value: Any, field: str, minimum: int, maximum: Optional[int] = None) -> int:
    # MLC callers may send integral floats; bools are ints in Python but never meant as one.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise PrePullInputError(field, value, "must be a whole number")
    if value < minimum:
        raise PrePullInputError(field, value, f"must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise PrePullInputError(field, value, f"must be at most {maximum}")
    return value


def _str(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise PrePullInputError(field, value, "must be a non-empty string")
    return value


def _list(value: Any, field: str) -> list:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise PrePullInputError(field, value, "must be a list")
    return list(value)


def _mapping(value: Any, field: str) -> Mapping:
    if not isinstance(value, Mapping):
        raise PrePullInputError(field, value, "must be a mapping")
    return value


def _only_keys(value: Mapping, allowed: Sequence[str], field: str) -> None:
    for key in value:
        if key not in allowed:
            raise PrePullInputError(f"{field}.{key}", value[key], f"unknown field; known: {', '.join(allowed)}")


def _string_map(value: Any, field: str, check_value) -> tuple:
    pairs = []
    for key, val in _mapping(value, field).items():
        check_qualified_name(key, f"{field} key")
        if not isinstance(val, str):
            raise PrePullInputError(f"{field}[{key!r}]", val, "must be a string")
        check_value(val, f"{field}[{key!r}]")
        pairs.append((key, val))
    return tuple(sorted(pairs))


def _images(args: Mapping) -> tuple:
    """Parse `images` (and dict entries' platforms); return (refs, {canonical: platforms})."""
    if "images" not in args or args.get("images") is None:
        raise PrePullInputError("images", None, "is required: list at least one image reference")
    raw = _list(args["images"], "images")
    if not raw:
        raise PrePullInputError("images", raw, "must list at least one image reference")
    refs: list = []
    seen: dict = {}
    platform_lists: dict = {}
    for i, entry in enumerate(raw):
        field = f"images[{i}]"
        entry_platforms = None
        if isinstance(entry, Mapping):
            _only_keys(entry, ("image", "platforms"), field)
            entry_platforms = entry.get("platforms")
            entry = entry.get("image")
            field = f"{field}.image"
        ref = parse_image(entry, field)
        if ref.identity in seen:
            raise PrePullInputError(field, entry, f"duplicate of images[{seen[ref.identity]}] (both are {ref.identity})")
        seen[ref.identity] = i
        refs.append(ref)
        if entry_platforms is not None:
            platform_lists[ref.canonical] = (f"images[{i}].platforms", entry_platforms)

    extra = args.get("image_platforms")
    if extra is not None:
        for key, plats in _mapping(extra, "image_platforms").items():
            field = f"image_platforms[{key!r}]"
            # A key may be written as in images or in any equivalent form ("nginx" for "nginx:latest").
            canonical = parse_image(key, field).canonical
            ref = next((r for r in refs if r.canonical == canonical), None)
            if ref is None:
                raise PrePullInputError(field, key, "names an image that is not in images")
            if ref.canonical in platform_lists:
                raise PrePullInputError(field, key, "platforms are already given for this image in its images entry")
            platform_lists[ref.canonical] = (field, plats)

    platforms: dict = {}
    for canonical, (field, plats) in platform_lists.items():
        plats = _list(plats, field)
        if not plats:
            raise PrePullInputError(field, plats, "must list at least one platform, or be left out")
        parsed = [parse_platform(p, f"{field}[{j}]") for j, p in enumerate(plats)]
        platforms[canonical] = tuple(sorted(set(parsed)))
    return tuple(refs), platforms


def _image_sizes(value: Any, images: tuple) -> dict:
    """``image_sizes`` as {canonical: bytes}; every image or none, so lanes are never balanced on half the bytes."""
    if value is None:
        return {}
    sizes: dict = {}
    for key, size in _mapping(value, "image_sizes").items():
        field = f"image_sizes[{key!r}]"
        canonical = parse_image(key, field).canonical
        if canonical not in {r.canonical for r in images}:
            raise PrePullInputError(field, key, "names an image that is not in images")
        sizes[canonical] = _int(size, field, 0)
    for i, ref in enumerate(images):
        if ref.canonical not in sizes:
            raise PrePullInputError("image_sizes", dict(value), f"has no size for images[{i}] ({ref.original!r}): give every image a size, or none")
    return sizes


def _toleration(value: Any, field: str) -> dict:
    tol = _mapping(value, field)
    _only_keys(tol, _TOLERATION_KEYS, field)
    key = tol.get("key") or None
    operator = _enum(TolerationOperator, tol.get("operator", TolerationOperator.EQUAL), f"{field}.operator")
    value_ = tol.get("value")
    effect = tol.get("effect")
    seconds = tol.get("toleration_seconds")
    out: dict = {}
    if key is not None:
        out["key"] = check_qualified_name(key, f"{field}.key")
    out["operator"] = operator.value
    if operator is TolerationOperator.EXISTS:
        if value_:
            raise PrePullInputError(f"{field}.value", value_, "must be empty when operator is Exists")
    else:
        if key is None:
            raise PrePullInputError(f"{field}.key", key, "is required when operator is Equal (use operator Exists to match every key)")
        out["value"] = check_label_value(value_ if value_ is not None else "", f"{field}.value")
    if effect is not None:
        out["effect"] = _enum(TaintEffect, effect, f"{field}.effect").value
    if seconds is not None:
        if out.get("effect") != TaintEffect.NO_EXECUTE.value:
            raise PrePullInputError(f"{field}.toleration_seconds", seconds, "is only allowed with effect NoExecute")
        out["tolerationSeconds"] = _int(seconds, f"{field}.toleration_seconds", 0)
    return out


def _startup_taint(value: Any) -> dict:
    field = "startup_taint"
    taint = _mapping(value, field)
    _only_keys(taint, _TAINT_KEYS, field)
    if not taint.get("key"):
        raise PrePullInputError(f"{field}.key", taint.get("key"), "is required")
    out = {"key": check_qualified_name(taint["key"], f"{field}.key")}
    if taint.get("value"):
        out["value"] = check_label_value(taint["value"], f"{field}.value")
    effect = _enum(TaintEffect, taint.get("effect", DEFAULTS["startup_taint_effect"]), f"{field}.effect")
    if effect is TaintEffect.PREFER_NO_SCHEDULE:
        raise PrePullInputError(f"{field}.effect", effect.value, "must be NoSchedule or NoExecute: PreferNoSchedule does not keep workloads off a cold node")
    out["effect"] = effect.value
    return out


def _groups(
    base: str, images: tuple, platforms: Mapping, lanes: int, fixed_arch: Optional[str], gate: bool = False, sizes: Optional[Mapping] = None
) -> tuple:
    """Split images into DaemonSets: per architecture where platforms are given, then per lane.

    Lanes are balanced by ``sizes`` ({canonical: bytes}) when every image has one, else
    round-robin (prepull.lanes). With the gate, nodes of an architecture no image is for
    still need a pod: one that pulls nothing and only removes the startup taint (lanes is 1 then).
    """
    sizes = sizes or {}
    arches = sorted({p.arch for plats in platforms.values() for p in plats})
    unrestricted = [r for r in images if r.canonical not in platforms]
    if not arches:
        arch_sets = [("", tuple(images), (), ())]
    else:
        arch_sets = [
            (a, tuple(r for r in images if r.canonical not in platforms or a in {p.arch for p in platforms[r.canonical]}), (a,), ())
            for a in arches
        ]
        if unrestricted or gate:
            # Nodes of any other architecture still get the unrestricted images (and the gate).
            arch_sets.append((OTHER_ARCHES, tuple(unrestricted), (), tuple(arches)))
    if fixed_arch is not None and arches:
        raise PrePullInputError(
            f"node_selector[{ARCH_LABEL!r}]", fixed_arch, "conflicts with image_platforms: per-image platforms already choose the architectures"
        )
    groups = []
    for suffix, group_images, arch_in, arch_not_in in arch_sets:
        n = max(min(lanes, len(group_images)), 1)
        for lane, indices in enumerate(assign_lanes([sizes.get(r.canonical) for r in group_images], n)):
            lane_images = tuple(group_images[i] for i in indices)
            parts = [base] + ([suffix] if suffix else []) + ([f"l{lane + 1}"] if lanes > 1 else [])
            groups.append(Group("-".join(parts), lane_images, arch_in, arch_not_in))
    return tuple(groups)


def _max_suffix_len(platforms: Mapping, lanes: int) -> int:
    arch_len = max([len(p.arch) for plats in platforms.values() for p in plats] + [len(OTHER_ARCHES)]) + 1 if platforms else 0
    return arch_len + (len(f"-l{lanes}") if lanes > 1 else 0)


def build_plan(args: Optional[Mapping], name: str = "prepull") -> Plan:
    """Validate ``args`` (an ImagePrePullerArgs) and normalise them into a Plan.

    One step per concern, in a fixed order: the first problem found is the one reported.
    """
    args = _mapping({} if args is None else args, "args")
    for key in args:
        if key not in KNOWN_FIELDS:
            raise PrePullInputError(key, args[key], f"unknown input; known inputs: {', '.join(KNOWN_FIELDS)}")
    get = lambda key: args.get(key) if args.get(key) is not None else DEFAULTS.get(key)  # noqa: E731

    images, platforms = _images(args)
    f: dict = {"images": images, "platforms": platforms}
    f["method"] = _enum(Method, get("method"), "method")
    f["pull_policy"] = _enum(PullPolicy, get("pull_policy"), "pull_policy")
    f.update(_rollout(args, get, len(images)))
    f["run_as_user"] = _int(get("run_as_user"), "run_as_user", 1)
    f.update(_naming(args, get, name, platforms, f["lanes"]))
    f.update(_scheduling(args, get))
    f["image_pull_secrets"] = _pull_secrets(args, f["method"])
    f["remove_startup_taint"] = _bool(get("remove_startup_taint"), "remove_startup_taint")
    _check_method_inputs(args, f)
    f.update(_timeouts(args, get))
    f["resources"] = _resources(args)
    f.update(_metadata(args))
    f.update(_component_images(get, f["method"], f["remove_startup_taint"]))
    f["groups"] = _daemon_sets(args, f)
    f["network_policy"] = _bool(get("network_policy"), "network_policy")
    return Plan(**f)


def _rollout(args: Mapping, get, image_count: int) -> dict:
    """lanes, max_unavailable and max_surge."""
    lanes = _int(get("lanes"), "lanes", 1, MAX_LANES)
    if lanes > image_count:
        raise PrePullInputError("lanes", lanes, f"is more than the number of images ({image_count}); extra lanes would be empty DaemonSets")
    max_unavailable = _int(get("max_unavailable"), "max_unavailable", 1)
    max_surge = _int(get("max_surge"), "max_surge", 0)
    if max_surge and args.get("max_unavailable") is not None:
        raise PrePullInputError("max_unavailable", args["max_unavailable"], "conflicts with max_surge, which replaces pods without taking any away")
    return {"lanes": lanes, "max_unavailable": max_unavailable, "max_surge": max_surge}


def _naming(args: Mapping, get, name: str, platforms: Mapping, lanes: int) -> dict:
    """base_name (room left for the split suffixes), namespace and create_namespace."""
    base_field = "base_name" if args.get("base_name") is not None else "name"
    base = args.get("base_name") if args.get("base_name") is not None else name
    check_dns_label(base, base_field, max_len=DNS1123_LABEL_MAX - _max_suffix_len(platforms, lanes))
    namespace = check_dns_label(get("namespace"), "namespace")
    create_namespace = _bool(get("create_namespace"), "create_namespace")
    if create_namespace and namespace in SYSTEM_NAMESPACES:
        raise PrePullInputError(
            "namespace", namespace, "is a system namespace the component must not create (and delete on destroy): set create_namespace to false"
        )
    return {"base_name": base, "namespace": namespace, "create_namespace": create_namespace}


def _scheduling(args: Mapping, get) -> dict:
    """node_selector (always Linux), tolerations (the startup taint's added) and startup_taint."""
    node_selector = dict(_string_map(args.get("node_selector") or {}, "node_selector", check_label_value))
    if node_selector.get(OS_LABEL, "linux") != "linux":
        raise PrePullInputError(f"node_selector[{OS_LABEL!r}]", node_selector[OS_LABEL], "only Linux nodes are supported")
    node_selector[OS_LABEL] = "linux"
    tolerate_all = _bool(get("tolerate_all_taints"), "tolerate_all_taints")
    raw_tolerations = _list(args.get("tolerations") or [], "tolerations")
    if tolerate_all and raw_tolerations:
        raise PrePullInputError("tolerations", raw_tolerations, "conflicts with tolerate_all_taints, which already tolerates every taint")
    tolerations = [{"operator": "Exists"}] if tolerate_all else [_toleration(t, f"tolerations[{i}]") for i, t in enumerate(raw_tolerations)]
    startup_taint = _startup_taint(args["startup_taint"]) if args.get("startup_taint") is not None else None
    if startup_taint is not None:
        tol = {"key": startup_taint["key"], "operator": "Exists", "effect": startup_taint["effect"]}
        if tol not in tolerations and not tolerate_all:
            tolerations.append(tol)
    return {"node_selector": tuple(sorted(node_selector.items())), "tolerations": tuple(tolerations), "startup_taint": startup_taint}


def _pull_secrets(args: Mapping, method: Method) -> tuple:
    secrets = _list(args.get("image_pull_secrets") or [], "image_pull_secrets")
    for i, secret in enumerate(secrets):
        check_dns_subdomain(secret, f"image_pull_secrets[{i}]")
    if len(set(secrets)) != len(secrets):
        raise PrePullInputError("image_pull_secrets", secrets, "lists a secret more than once")
    if method is Method.DOCKER_SOCKET and secrets:
        raise PrePullInputError(
            "image_pull_secrets", secrets, "cannot be honoured by method docker-socket: the Docker daemon pulls with the node's own credentials"
        )
    return tuple(secrets)


def _check_method_inputs(args: Mapping, f: Mapping) -> None:
    """Inputs the chosen method or gate setting cannot honour, or does not use: each is an error, not ignored."""
    method, remove_taint = f["method"], f["remove_startup_taint"]
    if remove_taint and args.get("startup_taint") is None:
        raise PrePullInputError("remove_startup_taint", True, "needs startup_taint: there is no taint to remove")
    if remove_taint and f["lanes"] > 1:
        raise PrePullInputError(
            "lanes", f["lanes"], "must be 1 with remove_startup_taint: one pod must see every image of its node before it removes the taint"
        )
    if not remove_taint and args.get("untaint_image") is not None:
        raise PrePullInputError("untaint_image", args["untaint_image"], "is only used with remove_startup_taint")
    if method is not Method.KUBELET and not remove_taint and args.get("helper_image") is not None:
        raise PrePullInputError("helper_image", args["helper_image"], f"is only used by method kubelet or remove_startup_taint, not {method.value}")
    if method is not Method.DOCKER_SOCKET and args.get("docker_cli_image") is not None:
        raise PrePullInputError("docker_cli_image", args["docker_cli_image"], f"is only used by method docker-socket, not {method.value}")
    if method is Method.DOCKER_SOCKET and args.get("pull_policy") is not None and f["pull_policy"] is not PullPolicy.ALWAYS:
        raise PrePullInputError(
            "pull_policy", args["pull_policy"], "cannot be honoured by method docker-socket: `docker pull` always asks the registry (leave it unset or Always)"
        )
    if method is Method.DOCKER_SOCKET and args.get("run_as_user") is not None:
        raise PrePullInputError("run_as_user", args["run_as_user"], "cannot be honoured by method docker-socket: its pull step must run as root to reach the socket")


def _timeouts(args: Mapping, get) -> dict:
    """skip_await and custom_timeouts (which must not wait for a rollout nothing waits for)."""
    skip_await = _bool(get("skip_await"), "skip_await")
    timeouts_raw = _mapping(args.get("custom_timeouts") or {}, "custom_timeouts")
    _only_keys(timeouts_raw, _TIMEOUT_KEYS, "custom_timeouts")
    timeouts = {k: check_duration(timeouts_raw[k], f"custom_timeouts.{k}") for k in _TIMEOUT_KEYS if timeouts_raw.get(k) is not None}
    if skip_await and ({"create", "update"} & set(timeouts)):
        raise PrePullInputError("custom_timeouts", dict(timeouts_raw), "create/update timeouts conflict with skip_await: nothing waits for the rollout")
    return {"skip_await": skip_await, "custom_timeouts": timeouts}


def _resources(args: Mapping) -> dict:
    """Every container's requests and limits; a request may not exceed its limit (compared exactly)."""
    resources_raw = _mapping(args.get("resources") or {}, "resources")
    _only_keys(resources_raw, _RESOURCE_KEYS, "resources")
    resources = {k: check_quantity(resources_raw.get(k, DEFAULTS["resources"][k]), f"resources.{k}") for k in _RESOURCE_KEYS}
    for what in ("cpu", "memory"):
        if quantity_value(resources[f"{what}_request"]) > quantity_value(resources[f"{what}_limit"]):
            raise PrePullInputError(
                f"resources.{what}_request", resources[f"{what}_request"], f"must not exceed resources.{what}_limit ({resources[f'{what}_limit']})"
            )
    return resources


def _metadata(args: Mapping) -> dict:
    """labels, annotations (none of ours overridden, within Kubernetes' size limit) and priority_class_name."""
    labels = _string_map(args.get("labels") or {}, "labels", check_label_value)
    for key, _ in labels:
        if key in RESERVED_LABELS:
            raise PrePullInputError(f"labels[{key!r}]", dict(labels)[key], "is set by the component (it selects the pods) and cannot be overridden")
    annotations = _string_map(args.get("annotations") or {}, "annotations", lambda v, f: v)
    for key, value in annotations:
        if key.startswith(RESERVED_ANNOTATION_PREFIXES):
            raise PrePullInputError(
                f"annotations[{key!r}]", value, f"keys starting with {', '.join(RESERVED_ANNOTATION_PREFIXES)} are set by the component (use its inputs instead)"
            )
    size = sum(len(k) + len(v) for k, v in annotations)
    if size > MAX_ANNOTATIONS_BYTES:
        raise PrePullInputError("annotations", f"<{size} bytes>", f"exceed Kubernetes' {MAX_ANNOTATIONS_BYTES} bytes for all annotations of an object")
    priority = args.get("priority_class_name")
    if priority is not None:
        check_dns_subdomain(priority, "priority_class_name")
    return {"labels": labels, "annotations": annotations, "priority_class_name": priority}


def _component_images(get, method: Method, remove_taint: bool) -> dict:
    """The component's own images: pause always; helper, untaint and docker CLI where they are used."""
    return {
        "pause_image": parse_image(get("pause_image"), "pause_image"),
        "helper_image": parse_image(get("helper_image"), "helper_image") if method is Method.KUBELET or remove_taint else None,
        "untaint_image": parse_image(get("untaint_image"), "untaint_image") if remove_taint else None,
        "docker_cli_image": parse_image(get("docker_cli_image"), "docker_cli_image") if method is Method.DOCKER_SOCKET else None,
    }


def _daemon_sets(args: Mapping, f: Mapping) -> tuple:
    """The DaemonSets (groups): per architecture, then per lane; none may exceed the object size limits."""
    images = f["images"]
    sizes = _image_sizes(args.get("image_sizes"), images)
    arch = dict(f["node_selector"]).get(ARCH_LABEL)
    groups = _groups(f["base_name"], images, f["platforms"], f["lanes"], arch, gate=f["remove_startup_taint"], sizes=sizes)
    largest = max(len(g.images) for g in groups)
    if largest > MAX_IMAGES_PER_DAEMONSET:
        raise PrePullInputError(
            "images", f"<{len(images)} images>",
            f"{largest} images in one DaemonSet exceed {MAX_IMAGES_PER_DAEMONSET} (object size limits): raise lanes",
        )
    return groups


__all__ = ["Group", "Plan", "build_plan"]
