"""The pre-pull policies: image allowlist, moving tags, digests and runtime sockets.

This package is the policy pack's code; the pack folder's ``__main__.py`` only
builds the ``PolicyPack`` from :data:`POLICIES`, because constructing one
starts a gRPC server and blocks. It is imported as ``prepull_policies``,
found next to ``__main__.py`` (the folder itself is on ``sys.path`` when the
CLI runs the pack, or the tests import it), whatever the folder is called.

This module holds what the policies judge and how they say it; their settings
live in :mod:`prepull_policies.config`, the reading of a resource in
:mod:`prepull_policies.reading` and the ``allowedImages`` grammar in
:mod:`prepull_policies.patterns`, so each policy here is a few lines of
judgement over an already read :class:`~prepull_policies.reading.Workload`.
Imports run one way: ``patterns`` is used by ``config`` and ``reading``, and
all three by this module; the image parser and the table of where each
workload kind keeps its pod template come from the installed ``prepull``
package (``prepull.core.images``, ``prepull.core.workloads``), never from a copy.

Importable without side effects. It is also the pack's public face:
``__all__`` re-exports the config and reading names the tests and other packs
use, so they import from one place.
"""

import posixpath
from collections.abc import Mapping
from typing import Any, Callable, Optional

from prepull.core.images import ImageRef, parse_image
from prepull.core.workloads import CONTAINER_LISTS, kind_of, pod_spec
from prepull.errors import PrePullInputError
from pulumi_policy import (
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Secret,
    StackValidationArgs,
    StackValidationPolicy,
)

from .config import (
    DEFAULTS,
    ENFORCEMENT_DEFAULTS,
    FORBID_LATEST,
    IMAGE_ALLOWLIST,
    NO_RUNTIME_SOCKET,
    PACK_CONFIG,
    REQUIRE_DIGEST,
    Config,
    config_error,
    config_or_report,
    config_schema,
    load_config,
    normalise_host_path,
    note_config,
    noting,
    pack_config_schema,
    policy_schema,
    take_noted_configs,
)
from .patterns import ImagePattern, shorten, shown
from .reading import ImageUse, Workload, docker_pull_image, is_unknown, materialise, parsed_images, read_workload

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
    config = config_or_report(IMAGE_ALLOWLIST, args, report)
    if config is None:
        return
    listed = ", ".join(shorten(p.text) for p in config.allowed_images) or "none: allowedImages is empty"
    for work, use, ref in parsed_images(args, report):
        allowed, on_mirror = _judge(ref, config)
        if not allowed:
            report(
                f'{work.label}, {use.describe()}: image "{use.shown_image}" ({shorten(ref.canonical)}) '
                f"is not allowed; allowedImages: {listed}"
            )
        elif config.mirror is not None and not on_mirror:
            target = config.mirror.mirrored(ref)
            how = (
                f'use "{shorten(target)}" (enforcementLevel "remediate" rewrites it)'
                if target
                else "it cannot be written as a mirror path (its registry has a port)"
            )
            report(
                f'{work.label}, {use.describe()}: image "{use.shown_image}" '
                f"must be pulled through the mirror {shorten(config.mirror.text)}: {how}"
            )


def _rewrite(value: Any, config: Config) -> Optional[Any]:
    """The mirrored form of one image value, or None to leave it as it is."""
    if isinstance(value, Secret):
        new = _rewrite(value.value, config)
        return None if new is None else Secret(new)
    if not isinstance(value, str) or is_unknown(value):
        return None
    try:
        ref = parse_image(value, "image")
    except PrePullInputError:
        return None
    allowed, on_mirror = _judge(ref, config)
    if not allowed or on_mirror:
        return None
    return config.mirror.mirrored(ref)


def _mirror_container(container: dict, config: Config) -> bool:
    """Rewrite a container's image and the image its ``docker pull`` names; whether anything changed."""
    changed = False
    new = _rewrite(container.get("image"), config)
    if new is not None:
        container["image"], changed = new, True
    pulled = docker_pull_image(container)
    new = _rewrite(pulled, config)
    if new is None:
        return changed
    # docker_pull_image took the last operand of command + args, so the occurrence to replace is the last one, in args first.
    for key in ("args", "command"):
        argv = container.get(key)
        if isinstance(argv, list) and pulled in argv:
            argv[len(argv) - 1 - argv[::-1].index(pulled)] = new
            return True
    return changed


def _mirror_image_volumes(spec: dict, config: Config) -> bool:
    """Rewrite the reference of every image volume; whether anything changed."""
    changed = False
    volumes = spec.get("volumes")
    for volume in volumes if isinstance(volumes, list) else ():
        if isinstance(volume, dict) and isinstance(volume.get("image"), dict):
            new = _rewrite(volume["image"].get("reference"), config)
            if new is not None:
                volume["image"]["reference"], changed = new, True
    return changed


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
            if isinstance(container, dict) and _mirror_container(container, config):
                changed = True
    if _mirror_image_volumes(spec, config):
        changed = True
    return props if changed else None


# --- forbid-latest / require-digest ----------------------------------------------


def _explicit_tag(image: str) -> bool:
    return ":" in image.split("@", 1)[0].rsplit("/", 1)[-1]


def validate_forbid_latest(args: ResourceValidationArgs, report: Callable) -> None:
    """No image may use the moving tag ``latest``, written or implied (no tag and no digest)."""
    if kind_of(args.resource_type) is None or config_or_report(FORBID_LATEST, args, report) is None:
        return
    for work, use, ref in parsed_images(args, report):
        if ref.digest is None and ref.tag == "latest":
            why = 'the tag "latest"' if _explicit_tag(use.image) else 'no tag and no digest, which means "latest"'
            report(
                f'{work.label}, {use.describe()}: image "{use.shown_image}" has {why}, '
                "which can move to another image; pin a version tag or a digest"
            )


def validate_require_digest(args: ResourceValidationArgs, report: Callable) -> None:
    """Every image must be pinned by digest (a tag can be moved to another image)."""
    if kind_of(args.resource_type) is None or config_or_report(REQUIRE_DIGEST, args, report) is None:
        return
    for work, use, ref in parsed_images(args, report):
        if ref.digest is None:
            report(
                f'{work.label}, {use.describe()}: image "{use.shown_image}" is not pinned by digest; '
                f'write it as "{shorten(ref.canonical)}@sha256:<digest>"'
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
    config = config_or_report(NO_RUNTIME_SOCKET, args, report)
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
            f'{work.label}, volume "{shorten(vname)}": hostPath "{shorten(host_path)}"{exposes} '
            "gives the pod control of the node's container runtime "
            f'(the legacy docker-socket pre-pull method); use method "kubelet", or list "{shorten(host_path)}" in allowedHostPaths'
        )
    work.raise_unknowns(("template", "volumes", "hostPath"))


# --- pack-config: every policy's config errors, once per stack, mandatory ----------------
#
# The resource policies note the config they are called with, for every resource
# (config.noting explains why); this stack policy checks what they noted, so each
# config error is reported once per stack, mandatory, even on a stack without workloads.


def validate_pack_config(args: StackValidationArgs, report: Callable) -> None:
    """Report every config error of every policy that ran, once per stack (and this policy's own)."""
    checks = [(PACK_CONFIG, args.get_config())] + [(p, raw) for p, raw in take_noted_configs() if p != PACK_CONFIG]
    for policy, raw in checks:
        if raw is not None and not isinstance(raw, Mapping):
            report(config_error(policy, f"the settings must be an object, got {shown(raw)}"))
            continue
        for error in load_config(policy, raw)[1]:
            report(config_error(policy, error))


# --- the policies ------------------------------------------------------------------

POLICIES: list = [
    ResourceValidationPolicy(
        name=IMAGE_ALLOWLIST,
        description=(
            "Every container image and image volume must match the allowlist (allowedImages), "
            "and be pulled through mirrorRegistry when set."
        ),
        validate=noting(IMAGE_ALLOWLIST, validate_image_allowlist),
        remediate=remediate_image_allowlist,
        enforcement_level=ENFORCEMENT_DEFAULTS[IMAGE_ALLOWLIST],
        config_schema=policy_schema(IMAGE_ALLOWLIST),
        remediation_steps=(
            "Add the image to allowedImages or use an allowed image; "
            "with mirrorRegistry, enforcementLevel remediate rewrites allowed images to the mirror."
        ),
    ),
    ResourceValidationPolicy(
        name=FORBID_LATEST,
        description="Images must not use the moving tag latest (written, or implied by an image with no tag and no digest).",
        validate=noting(FORBID_LATEST, validate_forbid_latest),
        enforcement_level=ENFORCEMENT_DEFAULTS[FORBID_LATEST],
        config_schema=policy_schema(FORBID_LATEST),
    ),
    ResourceValidationPolicy(
        name=REQUIRE_DIGEST,
        description="Images must be pinned by digest (off unless enabled in the policy config).",
        validate=noting(REQUIRE_DIGEST, validate_require_digest),
        enforcement_level=ENFORCEMENT_DEFAULTS[REQUIRE_DIGEST],
        config_schema=policy_schema(REQUIRE_DIGEST),
    ),
    ResourceValidationPolicy(
        name=NO_RUNTIME_SOCKET,
        description="Pods must not mount a container runtime socket (docker.sock, containerd.sock, crio.sock...) from the host.",
        validate=noting(NO_RUNTIME_SOCKET, validate_no_runtime_socket),
        enforcement_level=ENFORCEMENT_DEFAULTS[NO_RUNTIME_SOCKET],
        config_schema=policy_schema(NO_RUNTIME_SOCKET),
    ),
    StackValidationPolicy(
        name=PACK_CONFIG,
        description="The pack's configuration is valid: every config error of every policy, reported once per stack as mandatory "
        "(a policy with an invalid config checks nothing).",
        validate=validate_pack_config,
        enforcement_level=ENFORCEMENT_DEFAULTS[PACK_CONFIG],
        config_schema=policy_schema(PACK_CONFIG),
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
