"""The pre-pull policies: image allowlist, moving tags, digests and runtime sockets.

Importable without side effects (``PolicyPack`` itself is built only in
``__main__.py``, because constructing one starts a gRPC server and blocks).
Image references are parsed by ``prepull.images.parse_image`` and pod templates
found through ``prepull.workloads``, so the pack and the component agree on
what an image and a workload are.

Every policy reads its settings through :func:`load_config`, which applies
:data:`DEFAULTS` (the Pulumi CLI fills schema defaults, the SDK and direct
calls do not) and rejects unknown keys and malformed values.
"""

import copy
import posixpath
import threading
from dataclasses import dataclass, field
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Iterator, Optional

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Secret,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import (
    UNKNOWN_ARCHIVE_VALUE,
    UNKNOWN_ARRAY_VALUE,
    UNKNOWN_ASSET_VALUE,
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_NUMBER_VALUE,
    UNKNOWN_OBJECT_VALUE,
    UNKNOWN_STRING_VALUE,
    UnknownValueError,
)

from prepull.errors import PrePullInputError
from prepull.images import ImageRef, parse_image
from prepull.workloads import CONTAINER_LISTS, POD_SPEC_PATHS, iter_images, kind_of, pod_spec

from .patterns import ImagePattern, Mirror, PatternError, parse_mirror, parse_pattern, shorten, shown

IMAGE_ALLOWLIST = "image-allowlist"
FORBID_LATEST = "forbid-latest"
REQUIRE_DIGEST = "require-digest"
NO_RUNTIME_SOCKET = "no-runtime-socket"
PACK_CONFIG = "pack-config"

# The one place defaults live: the schemas below publish them to the CLI and
# load_config() applies them in code.
DEFAULTS: Mapping[str, Mapping[str, Any]] = {
    IMAGE_ALLOWLIST: {"allowedImages": [], "mirrorRegistry": None},
    FORBID_LATEST: {},
    REQUIRE_DIGEST: {},
    NO_RUNTIME_SOCKET: {"allowedHostPaths": []},
    PACK_CONFIG: {},
}

ENFORCEMENT_DEFAULTS: Mapping[str, EnforcementLevel] = {
    IMAGE_ALLOWLIST: EnforcementLevel.MANDATORY,
    FORBID_LATEST: EnforcementLevel.MANDATORY,
    REQUIRE_DIGEST: EnforcementLevel.DISABLED,
    NO_RUNTIME_SOCKET: EnforcementLevel.MANDATORY,
    PACK_CONFIG: EnforcementLevel.MANDATORY,
}

_PROPERTIES: Mapping[str, Mapping[str, dict]] = {
    IMAGE_ALLOWLIST: {
        "allowedImages": {
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "description": "Image patterns (see docs/policies.md, 'Pattern grammar'): registry/path[:tag][@digest], "
            "'*' within a path segment, '**' across segments. An image must match one. Default: [] (nothing is allowed).",
        },
        "mirrorRegistry": {
            "type": ["string", "null"],
            "description": "host[:port][/prefix] every allowed image must be pulled through, as <mirror>/<registry>/<path>; "
            "enforcementLevel 'remediate' rewrites images to it. Default: null (no mirror).",
        },
    },
    FORBID_LATEST: {},
    REQUIRE_DIGEST: {},
    NO_RUNTIME_SOCKET: {
        "allowedHostPaths": {
            "type": "array",
            "items": {"type": "string", "pattern": "^/"},
            "description": "hostPath paths that may be mounted although they expose a container runtime socket, "
            "e.g. ['/var/run/docker.sock'] for a docker-socket pre-puller. Default: [].",
        },
    },
    PACK_CONFIG: {},
}

LEVELS = tuple(level.value for level in EnforcementLevel)


def config_schema(policy: str) -> dict:
    """The complete JSON schema of one policy's settings (``additionalProperties: false``).

    The policy protocol carries only ``properties`` and ``required`` to the
    CLI, which wraps them in an object schema of its own without
    ``additionalProperties``; :func:`load_config` therefore rejects unknown
    keys itself.
    """
    props = {key: {**schema, "default": copy.deepcopy(DEFAULTS[policy][key])} for key, schema in _PROPERTIES[policy].items()}
    return {"type": "object", "properties": props, "additionalProperties": False}


def pack_config_schema() -> dict:
    """JSON schema of a whole ``--policy-pack-config`` file (used to check the example files)."""
    level = {"type": "string", "enum": list(LEVELS)}
    entries = {"all": {"oneOf": [level, {"type": "object", "properties": {"enforcementLevel": level}, "additionalProperties": False}]}}
    for policy in DEFAULTS:
        schema = config_schema(policy)
        schema["properties"] = {"enforcementLevel": level, **schema["properties"]}
        entries[policy] = {"oneOf": [level, schema]}
    return {"type": "object", "properties": entries, "additionalProperties": False}


def _policy_schema(policy: str) -> Optional[PolicyConfigSchema]:
    props = config_schema(policy)["properties"]
    return PolicyConfigSchema(properties=props) if props else None


# --- configuration -----------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """A policy's validated settings."""

    allowed_images: tuple = ()
    """Parsed :class:`ImagePattern` objects, in configured order."""
    mirror: Optional[Mirror] = None
    allowed_host_paths: tuple = ()
    """Normalised absolute paths."""


def load_config(policy: str, raw: Optional[Mapping]) -> tuple:
    """Apply :data:`DEFAULTS` to ``raw`` and validate it: returns ``(Config, errors)``.

    ``errors`` lists every problem (unknown keys, wrong types, malformed
    patterns) as a sentence; a policy with errors checks nothing else.
    """
    raw = dict(raw or {})
    # Reserved by the engine; the CLI strips it, but a hand-written config may carry it.
    raw.pop("enforcementLevel", None)
    known = DEFAULTS[policy]
    errors = [
        f"unknown setting {shown(key)}" + (f"; known settings: {', '.join(sorted(known))}" if known else "; this policy has no settings")
        for key in sorted(raw)
        if key not in known
    ]
    merged = {key: copy.deepcopy(default) for key, default in known.items()}
    merged.update({key: value for key, value in raw.items() if key in known and value is not None})

    patterns, mirror, host_paths = [], None, []
    if "allowedImages" in known:
        value = merged["allowedImages"]
        if not isinstance(value, (list, tuple)):
            errors.append(f"allowedImages must be a list of patterns, got {shown(value)}")
        else:
            for i, text in enumerate(value):
                try:
                    patterns.append(parse_pattern(text))
                except PatternError as exc:
                    errors.append(f"allowedImages[{i}]: {exc}")
        if merged["mirrorRegistry"] is not None:
            try:
                mirror = parse_mirror(merged["mirrorRegistry"])
            except PatternError as exc:
                errors.append(str(exc))
    if "allowedHostPaths" in known:
        value = merged["allowedHostPaths"]
        if not isinstance(value, (list, tuple)):
            errors.append(f"allowedHostPaths must be a list of absolute paths, got {shown(value)}")
        else:
            for i, path in enumerate(value):
                if not isinstance(path, str) or not path.startswith("/"):
                    errors.append(f"allowedHostPaths[{i}] must be an absolute path, got {shown(path)}")
                else:
                    host_paths.append(normalise_host_path(path))
    return Config(tuple(patterns), mirror, tuple(host_paths)), errors


def _config_or_report(policy: str, args: ResourceValidationArgs, report: Callable) -> Optional[Config]:
    config, errors = load_config(policy, args.get_config())
    for error in errors:
        report(f"invalid configuration of policy {policy!r}: {error}")
    return None if errors else config


# --- reading workloads ---------------------------------------------------------

_UNKNOWNS = frozenset(
    (
        UNKNOWN_ARCHIVE_VALUE,
        UNKNOWN_ARRAY_VALUE,
        UNKNOWN_ASSET_VALUE,
        UNKNOWN_BOOLEAN_VALUE,
        UNKNOWN_NUMBER_VALUE,
        UNKNOWN_OBJECT_VALUE,
        UNKNOWN_STRING_VALUE,
    )
)


def _is_unknown(value: object) -> bool:
    return isinstance(value, str) and value in _UNKNOWNS


def materialise(value: Any, keep_secrets: bool = False) -> Any:
    """Plain dicts and lists from the SDK's property proxies.

    The proxies raise on unknown (preview) values as soon as they are read;
    the raw structure keeps the sentinels, so known images can still be
    checked and the unknown ones reported once, at the end. With
    ``keep_secrets`` secret values stay wrapped in :class:`Secret`, so a
    remediation writes them back as secrets.
    """
    if isinstance(value, Secret):
        inner = materialise(value.value, keep_secrets)
        return Secret(inner) if keep_secrets else inner
    if isinstance(value, Mapping):
        target = value if isinstance(value, dict) else value["__target"]
        return {key: materialise(target[key], keep_secrets) for key in target}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        # The SDK's list proxies are Sequences but not lists.
        items = value if isinstance(value, (list, tuple)) else value["__target"]
        return [materialise(item, keep_secrets) for item in items]
    return value


def _type_name(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )


@dataclass(frozen=True)
class ImageUse:
    """One image a workload declares."""

    where: str
    """``initContainers``, ``containers``, ``ephemeralContainers``, ``volumes`` or ``docker pull`` (an image pulled through the Docker socket)."""
    name: Optional[str]
    """Container or volume name."""
    image: str

    def describe(self) -> str:
        """``initContainers "pull-nginx"`` - the part of a message that names the container."""
        kind = "volume" if self.where == "volumes" else "container"
        label = f'{kind} "{shorten(self.name)}"' if isinstance(self.name, str) and self.name else f"an unnamed {kind}"
        if self.where == "docker pull":
            return f"{label} (its `docker pull` command)"
        return f"{label} in {self.where}"

    @property
    def shown_image(self) -> str:
        """The image as messages quote it: as written, cut to ``patterns.MAX_SHOWN`` characters."""
        return shorten(self.image)


@dataclass
class Workload:
    """What the policies need from one workload resource."""

    kind: str
    patch: bool
    label: str
    """How messages name the resource: kind, Pulumi name and Kubernetes name."""
    images: list = field(default_factory=list)
    volumes: list = field(default_factory=list)
    """``(name, hostPath path)`` of every hostPath volume."""
    problems: list = field(default_factory=list)
    """``(area, message)``: ``area`` is ``template``, a container list or ``volumes``."""
    unknowns: list = field(default_factory=list)
    """``(area, sentinel, path)`` of values unknown during preview; ``area`` as in ``problems``, or
    ``images`` (an image) or ``hostPath`` (a hostPath path), so each policy waits only for what it reads."""

    def raise_unknowns(self, areas: Optional[tuple] = None) -> None:
        """Raise the first unknown value (in ``areas``): the servicer reports it as "can't run during preview"."""
        for area, sentinel, path in self.unknowns:
            if areas is None or area in areas:
                raise UnknownValueError(sentinel, path)


def _docker_pull_image(container: Mapping) -> Optional[object]:
    """The image a ``docker pull`` container pulls (the docker-socket pre-pull method), else None."""
    argv = [a for a in list(container.get("command") or []) + list(container.get("args") or []) if isinstance(a, str)]
    if len(argv) < 3 or posixpath.basename(argv[0]) != "docker" or argv[1] != "pull":
        return None
    operands = [a for a in argv[2:] if not a.startswith("-")]
    return operands[-1] if operands else None


def read_workload(resource_type: str, props: Any, name: str = "") -> Optional[Workload]:
    """Images, hostPath volumes and shape problems of a workload resource; None for other resources.

    Never raises on malformed input: a value of the wrong shape becomes a
    problem, so the policy can report it.
    """
    kind = kind_of(resource_type)
    if kind is None:
        return None
    patch = resource_type.endswith("Patch")
    obj = materialise(props)
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    k8s_name = meta.get("name") if isinstance(meta, dict) else None
    label = f'{kind}{"Patch" if patch else ""} "{shorten(name)}"'
    if isinstance(k8s_name, str) and k8s_name and k8s_name != name:
        label += f' (metadata.name "{shorten(k8s_name)}")'
    work = Workload(kind, patch, label)

    node, path = obj, []
    for key in POD_SPEC_PATHS[kind]:
        if _is_unknown(node):
            work.unknowns.append(("template", node, path))
            return work
        if not isinstance(node, dict):
            where = ".".join(path) or "the resource"
            work.problems.append(
                (
                    "template",
                    f"{where} is {_type_name(node)}, not an object: cannot find the pod template at {'.'.join(POD_SPEC_PATHS[kind])}",
                )
            )
            return work
        node, path = node.get(key), path + [key]
        if node is None:
            # No pod template (a patch that leaves it alone): nothing to check.
            return work
    if _is_unknown(node):
        work.unknowns.append(("template", node, path))
        return work
    if not isinstance(node, dict):
        work.problems.append(("template", f"{'.'.join(path)} is {_type_name(node)}, not an object (a PodSpec)"))
        return work

    spec_path = ".".join(path)
    clean: dict = {}
    for area in CONTAINER_LISTS + ("volumes",):
        entries = node.get(area)
        if entries is None:
            continue
        if _is_unknown(entries):
            work.unknowns.append((area, entries, path + [area]))
            continue
        if not isinstance(entries, list):
            work.problems.append((area, f"{spec_path}.{area} is {_type_name(entries)}, not a list"))
            continue
        kept = []
        for i, entry in enumerate(entries):
            if _is_unknown(entry):
                work.unknowns.append((area, entry, path + [area, str(i)]))
            elif not isinstance(entry, dict):
                work.problems.append((area, f"{spec_path}.{area}[{i}] is {_type_name(entry)}, not an object"))
            elif area == "volumes" and entry.get("image") is not None and not isinstance(entry["image"], dict):
                work.problems.append((area, f"{spec_path}.volumes[{i}].image is {_type_name(entry['image'])}, not an object"))
            else:
                kept.append(entry)
        clean[area] = kept

    for where, cname, image in iter_images(clean):
        use_name = cname if isinstance(cname, str) else None
        if image is None:
            # A patch may leave a container's image alone; a full object without one is broken.
            if not patch:
                what = "image volume" if where == "volumes" else "container"
                work.problems.append((where, f'{what} "{shorten(str(use_name))}" in {spec_path}.{where} has no image'))
        elif _is_unknown(image):
            work.unknowns.append(("images", image, path + [where, shorten(str(use_name)), "image"]))
        elif not isinstance(image, str):
            work.problems.append((where, f"the image of {ImageUse(where, use_name, '').describe()} is {_type_name(image)}, not a string"))
        else:
            work.images.append(ImageUse(where, use_name, image))
    for area in CONTAINER_LISTS:
        for container in clean.get(area, ()):
            pulled = _docker_pull_image(container)
            if isinstance(pulled, str) and not _is_unknown(pulled):
                cname = container.get("name")
                work.images.append(ImageUse("docker pull", cname if isinstance(cname, str) else None, pulled))

    for i, volume in enumerate(clean.get("volumes", ())):
        host = volume.get("hostPath")
        if host is None:
            continue
        vname = volume.get("name") if isinstance(volume.get("name"), str) else f"volumes[{i}]"
        host_path = host.get("path") if isinstance(host, dict) else host
        if _is_unknown(host_path):
            work.unknowns.append(("hostPath", host_path, path + ["volumes", str(i), "hostPath", "path"]))
        elif not isinstance(host, dict) or not isinstance(host_path, str):
            work.problems.append(("volumes", f'hostPath of volume "{shorten(vname)}" in {spec_path}.volumes is malformed: {shown(host)}'))
        else:
            work.volumes.append((vname, host_path))
    return work


_IMAGE_AREAS = ("template",) + CONTAINER_LISTS + ("volumes", "images")


def _images(args: ResourceValidationArgs, report: Callable, areas: Optional[tuple] = None) -> Iterator[tuple]:
    """Report the workload's shape problems and unparsable images; yield ``(workload, use, ref)`` for the rest.

    Raises the first unknown value after the last image, so known images are
    always checked, even during preview.
    """
    work = read_workload(args.resource_type, args.props, args.name)
    if work is None:
        return
    for area, problem in work.problems:
        if areas is None or area in areas:
            report(f"{work.label}: {problem}")
    for use in work.images:
        try:
            ref = parse_image(use.image, "image")
        except PrePullInputError as exc:
            report(
                f'{work.label}, {use.describe()}: image "{use.shown_image}" cannot be parsed as an image reference: {shorten(exc.reason)}'
            )
            continue
        yield work, use, ref
    work.raise_unknowns(_IMAGE_AREAS)


# --- image-allowlist -------------------------------------------------------------


def _allowed(ref: ImageRef, patterns: tuple) -> bool:
    return any(p.matches(ref) for p in patterns)


def _judge(ref: ImageRef, config: Config) -> tuple:
    """``(allowed, on_mirror)``: an image on the mirror is judged by its upstream reference."""
    if config.mirror is not None:
        upstream = config.mirror.upstream(ref)
        if upstream is not None:
            return _allowed(upstream, config.allowed_images) or _allowed(ref, config.allowed_images), True
    return _allowed(ref, config.allowed_images), False


def validate_image_allowlist(args: ResourceValidationArgs, report: Callable) -> None:
    """Every image of a workload must match ``allowedImages`` (and be pulled through ``mirrorRegistry`` if set)."""
    if kind_of(args.resource_type) is None:
        return
    config = _config_or_report(IMAGE_ALLOWLIST, args, report)
    if config is None:
        return
    listed = ", ".join(shorten(p.text) for p in config.allowed_images) or "none: allowedImages is empty"
    for work, use, ref in _images(args, report):
        allowed, on_mirror = _judge(ref, config)
        if not allowed:
            report(
                f'{work.label}, {use.describe()}: image "{use.shown_image}" ({shorten(ref.canonical)}) is not allowed; allowedImages: {listed}'
            )
        elif config.mirror is not None and not on_mirror:
            target = config.mirror.mirrored(ref)
            how = (
                f'use "{shorten(target)}" (enforcementLevel "remediate" rewrites it)'
                if target
                else "it cannot be written as a mirror path (its registry has a port)"
            )
            report(
                f'{work.label}, {use.describe()}: image "{use.shown_image}" must be pulled through the mirror {shorten(config.mirror.text)}: {how}'
            )


def _rewrite(value: Any, config: Config) -> Optional[Any]:
    """The mirrored form of one image value, or None to leave it as it is."""
    if isinstance(value, Secret):
        new = _rewrite(value.value, config)
        return None if new is None else Secret(new)
    if not isinstance(value, str) or _is_unknown(value):
        return None
    try:
        ref = parse_image(value, "image")
    except PrePullInputError:
        return None
    allowed, on_mirror = _judge(ref, config)
    if not allowed or on_mirror:
        return None
    return config.mirror.mirrored(ref)


def remediate_image_allowlist(args: ResourceValidationArgs) -> Optional[dict]:
    """Rewrite every allowed image of a workload to ``mirrorRegistry``; None when nothing changes.

    Disallowed and malformed images are left alone for the validation to
    report (the engine remediates first, then validates).
    """
    kind = kind_of(args.resource_type)
    if kind is None:
        return None
    config, errors = load_config(IMAGE_ALLOWLIST, args.get_config())
    if errors or config.mirror is None:
        return None
    props = materialise(args.props, keep_secrets=True)
    spec = pod_spec(kind, props)
    if spec is None:
        return None
    changed = False
    for area in CONTAINER_LISTS:
        containers = spec.get(area)
        for container in containers if isinstance(containers, list) else ():
            if not isinstance(container, dict):
                continue
            new = _rewrite(container.get("image"), config)
            if new is not None:
                container["image"], changed = new, True
            pulled = _docker_pull_image(container)
            new = _rewrite(pulled, config)
            if new is not None:
                for key in ("args", "command"):
                    argv = container.get(key)
                    if isinstance(argv, list) and pulled in argv:
                        argv[len(argv) - 1 - argv[::-1].index(pulled)] = new
                        changed = True
                        break
    volumes = spec.get("volumes")
    for volume in volumes if isinstance(volumes, list) else ():
        if isinstance(volume, dict) and isinstance(volume.get("image"), dict):
            new = _rewrite(volume["image"].get("reference"), config)
            if new is not None:
                volume["image"]["reference"], changed = new, True
    return props if changed else None


# --- forbid-latest / require-digest ----------------------------------------------


def _explicit_tag(image: str) -> bool:
    return ":" in image.split("@", 1)[0].rsplit("/", 1)[-1]


def validate_forbid_latest(args: ResourceValidationArgs, report: Callable) -> None:
    """No image may use the moving tag ``latest``, written or implied (no tag and no digest)."""
    if kind_of(args.resource_type) is None or _config_or_report(FORBID_LATEST, args, report) is None:
        return
    for work, use, ref in _images(args, report):
        if ref.digest is None and ref.tag == "latest":
            why = 'the tag "latest"' if _explicit_tag(use.image) else 'no tag and no digest, which means "latest"'
            report(
                f'{work.label}, {use.describe()}: image "{use.shown_image}" has {why}, which can move to another image; pin a version tag or a digest'
            )


def validate_require_digest(args: ResourceValidationArgs, report: Callable) -> None:
    """Every image must be pinned by digest (a tag can be moved to another image)."""
    if kind_of(args.resource_type) is None or _config_or_report(REQUIRE_DIGEST, args, report) is None:
        return
    for work, use, ref in _images(args, report):
        if ref.digest is None:
            report(
                f'{work.label}, {use.describe()}: image "{use.shown_image}" is not pinned by digest; write it as "{shorten(ref.canonical)}@sha256:<digest>"'
            )


# --- no-runtime-socket -----------------------------------------------------------

# Socket files of the container runtimes (and their shims) a pod could drive to run anything as root on the node.
RUNTIME_SOCKET_NAMES = ("containerd.sock", "cri-dockerd.sock", "crio.sock", "docker.sock", "dockershim.sock", "podman.sock")
# Where runtimes put them: mounting any directory above one exposes the socket too.
RUNTIME_SOCKET_PATHS = (
    "/run/containerd/containerd.sock",
    "/run/crio/crio.sock",
    "/run/cri-dockerd.sock",
    "/run/docker.sock",
    "/run/dockershim.sock",
    "/run/k3s/containerd/containerd.sock",
    "/run/podman/podman.sock",
    "/var/run/containerd/containerd.sock",
    "/var/run/crio/crio.sock",
    "/var/run/cri-dockerd.sock",
    "/var/run/docker.sock",
    "/var/run/dockershim.sock",
    "/var/snap/microk8s/common/run/containerd.sock",
)


def normalise_host_path(path: str) -> str:
    """``//var/run/./docker.sock/`` -> ``/var/run/docker.sock`` (POSIX normpath keeps a leading ``//``)."""
    return posixpath.normpath("/" + path.lstrip("/"))


def runtime_socket(host_path: str) -> Optional[str]:
    """The runtime socket a hostPath exposes (the path itself or one below it), else None."""
    path = normalise_host_path(host_path)
    if posixpath.basename(path) in RUNTIME_SOCKET_NAMES:
        return path
    below = [s for s in RUNTIME_SOCKET_PATHS if path == "/" or s.startswith(path + "/")]
    return below[0] if below else None


def validate_no_runtime_socket(args: ResourceValidationArgs, report: Callable) -> None:
    """No pod may mount a container runtime socket from the host, unless its path is in ``allowedHostPaths``."""
    if kind_of(args.resource_type) is None:
        return
    config = _config_or_report(NO_RUNTIME_SOCKET, args, report)
    if config is None:
        return
    work = read_workload(args.resource_type, args.props, args.name)
    for area, problem in work.problems:
        if area in ("template", "volumes"):
            report(f"{work.label}: {problem}")
    for vname, host_path in work.volumes:
        socket = runtime_socket(host_path)
        if socket is None or normalise_host_path(host_path) in config.allowed_host_paths:
            continue
        exposes = "" if socket == normalise_host_path(host_path) else f", which contains the runtime socket {shorten(socket)}"
        report(
            f'{work.label}, volume "{shorten(vname)}": hostPath "{shorten(host_path)}"{exposes} gives the pod control of the node\'s container runtime '
            f'(the legacy docker-socket pre-pull method); use method "kubelet", or list "{shorten(host_path)}" in allowedHostPaths'
        )
    work.raise_unknowns(("template", "volumes", "hostPath"))


# --- pack-config: every policy's config errors, once per stack, mandatory ----------------
#
# A stack policy receives only its own config (pulumi-policy passes
# ``_get_policy_config(policy.name)`` to every policy), so it cannot read the
# other policies' settings. The resource policies therefore note the config
# they are called with (for every resource, workload or not) and pack-config
# checks those at the end of the run: the engine analyzes each registered
# resource, the root ``pulumi:pulumi:Stack`` included, before it analyzes the
# stack, in the same policy-pack process (read from the engine source, not run
# here). A policy that never ran (disabled, or no resource analyzed at all) has
# no config to check.

_seen_lock = threading.Lock()
_seen_configs: dict = {}


def note_config(policy: str, raw: Optional[Mapping]) -> None:
    """Record the config ``policy`` was called with, for :func:`validate_pack_config`."""
    value = copy.deepcopy(dict(raw)) if isinstance(raw, Mapping) else raw
    with _seen_lock:
        _seen_configs[policy] = value


def take_noted_configs() -> list:
    """``(policy, config)`` of every policy noted since the last call, in :data:`DEFAULTS` order; forgets them."""
    with _seen_lock:
        seen = dict(_seen_configs)
        _seen_configs.clear()
    return [(policy, seen[policy]) for policy in DEFAULTS if policy in seen]


def _noting(policy: str, validate: Callable) -> Callable:
    def noting_validate(args: ResourceValidationArgs, report: Callable) -> None:
        note_config(policy, args.get_config())
        return validate(args, report)

    noting_validate.__name__ = noting_validate.__qualname__ = validate.__name__
    noting_validate.__doc__ = validate.__doc__
    return noting_validate


def validate_pack_config(args: StackValidationArgs, report: Callable) -> None:
    """Report every config error of every policy that ran, once per stack (and this policy's own)."""
    checks = [(PACK_CONFIG, args.get_config())] + [(p, raw) for p, raw in take_noted_configs() if p != PACK_CONFIG]
    for policy, raw in checks:
        if raw is not None and not isinstance(raw, Mapping):
            report(f"invalid configuration of policy {policy!r}: the settings must be an object, got {shown(raw)}")
            continue
        for error in load_config(policy, raw)[1]:
            report(f"invalid configuration of policy {policy!r}: {error}")


# --- the policies ------------------------------------------------------------------

POLICIES: list = [
    ResourceValidationPolicy(
        name=IMAGE_ALLOWLIST,
        description="Every container image and image volume must match the allowlist (allowedImages), and be pulled through mirrorRegistry when set.",
        validate=_noting(IMAGE_ALLOWLIST, validate_image_allowlist),
        remediate=remediate_image_allowlist,
        enforcement_level=ENFORCEMENT_DEFAULTS[IMAGE_ALLOWLIST],
        config_schema=_policy_schema(IMAGE_ALLOWLIST),
        remediation_steps="Add the image to allowedImages or use an allowed image; with mirrorRegistry, enforcementLevel remediate rewrites allowed images to the mirror.",
    ),
    ResourceValidationPolicy(
        name=FORBID_LATEST,
        description="Images must not use the moving tag latest (written, or implied by an image with no tag and no digest).",
        validate=_noting(FORBID_LATEST, validate_forbid_latest),
        enforcement_level=ENFORCEMENT_DEFAULTS[FORBID_LATEST],
        config_schema=_policy_schema(FORBID_LATEST),
    ),
    ResourceValidationPolicy(
        name=REQUIRE_DIGEST,
        description="Images must be pinned by digest (off unless enabled in the policy config).",
        validate=_noting(REQUIRE_DIGEST, validate_require_digest),
        enforcement_level=ENFORCEMENT_DEFAULTS[REQUIRE_DIGEST],
        config_schema=_policy_schema(REQUIRE_DIGEST),
    ),
    ResourceValidationPolicy(
        name=NO_RUNTIME_SOCKET,
        description="Pods must not mount a container runtime socket (docker.sock, containerd.sock, crio.sock...) from the host.",
        validate=_noting(NO_RUNTIME_SOCKET, validate_no_runtime_socket),
        enforcement_level=ENFORCEMENT_DEFAULTS[NO_RUNTIME_SOCKET],
        config_schema=_policy_schema(NO_RUNTIME_SOCKET),
    ),
    StackValidationPolicy(
        name=PACK_CONFIG,
        description="The pack's configuration is valid: every config error of every policy, reported once per stack as mandatory "
        "(a policy with an invalid config checks nothing).",
        validate=validate_pack_config,
        enforcement_level=ENFORCEMENT_DEFAULTS[PACK_CONFIG],
        config_schema=_policy_schema(PACK_CONFIG),
        remediation_steps="Fix the named setting in the --policy-pack-config file (see docs/policies.md, 'Config file').",
    ),
]
"""The pack's policies, in reporting order."""

__all__ = [
    "DEFAULTS",
    "ENFORCEMENT_DEFAULTS",
    "FORBID_LATEST",
    "IMAGE_ALLOWLIST",
    "NO_RUNTIME_SOCKET",
    "PACK_CONFIG",
    "POLICIES",
    "REQUIRE_DIGEST",
    "Config",
    "ImagePattern",
    "ImageUse",
    "Workload",
    "config_schema",
    "load_config",
    "materialise",
    "pack_config_schema",
    "read_workload",
    "normalise_host_path",
    "note_config",
    "runtime_socket",
    "take_noted_configs",
]
