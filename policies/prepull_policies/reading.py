"""Reading workloads: what the policies need from a resource's properties.

A resource arrives as the SDK's property proxies, possibly with values that
are unknown during preview and in any shape a program can write. This module
turns it into a :class:`Workload` (its images, hostPath volumes, shape
problems and unknown values) without ever raising, so the policies only judge
and never parse. Pod templates are found through ``prepull.core.workloads`` and
images parsed by ``prepull.core.images.parse_image``, so the pack and the component
agree on what a workload and an image are.
"""

import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional

from prepull.core.images import parse_image
from prepull.core.workloads import CONTAINER_LISTS, POD_SPEC_PATHS, iter_images, kind_of
from prepull.errors import PrePullInputError
from pulumi_policy import ResourceValidationArgs, Secret, proxy
from pulumi_policy.proxy import UnknownValueError

from .patterns import shorten, shown

# --- values unknown during preview and the SDK's proxies ----------------------------

# The SDK's sentinels, one per value type, that stand in the props for values unknown during preview.
_UNKNOWNS = frozenset(
    (
        proxy.UNKNOWN_ARCHIVE_VALUE,
        proxy.UNKNOWN_ARRAY_VALUE,
        proxy.UNKNOWN_ASSET_VALUE,
        proxy.UNKNOWN_BOOLEAN_VALUE,
        proxy.UNKNOWN_NUMBER_VALUE,
        proxy.UNKNOWN_OBJECT_VALUE,
        proxy.UNKNOWN_STRING_VALUE,
    )
)


def is_unknown(value: object) -> bool:
    """Whether ``value`` is the SDK's sentinel for a value not known until the update runs."""
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


# --- what a workload holds -------------------------------------------------------------


@dataclass(frozen=True)
class ImageUse:
    """One image a workload declares."""

    where: str
    """``initContainers``, ``containers``, ``ephemeralContainers``, ``volumes`` or ``docker pull``.

    ``docker pull``: an image pulled through the Docker socket.
    """
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


def docker_pull_image(container: Mapping) -> Optional[object]:
    """The image a ``docker pull`` container pulls (the docker-socket pre-pull method), else None."""
    argv = [a for a in list(container.get("command") or []) + list(container.get("args") or []) if isinstance(a, str)]
    if len(argv) < 3 or posixpath.basename(argv[0]) != "docker" or argv[1] != "pull":
        return None
    operands = [a for a in argv[2:] if not a.startswith("-")]
    return operands[-1] if operands else None


# --- reading one workload, step by step ---------------------------------------------------
#
# Each step records what it cannot read in ``work.problems`` or ``work.unknowns``
# and goes on, so one malformed entry never hides the others; the steps run in
# the order messages are reported.


def _label(kind: str, patch: bool, name: str, obj: Any) -> str:
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    k8s_name = meta.get("name") if isinstance(meta, dict) else None
    label = f'{kind}{"Patch" if patch else ""} "{shorten(name)}"'
    if isinstance(k8s_name, str) and k8s_name and k8s_name != name:
        label += f' (metadata.name "{shorten(k8s_name)}")'
    return label


def _find_pod_spec(work: Workload, obj: Any) -> Optional[tuple]:
    """``(PodSpec, path)``, or None when there is none to read (absent, unknown or malformed: noted in ``work``)."""
    node, path = obj, []
    for key in POD_SPEC_PATHS[work.kind]:
        if is_unknown(node):
            work.unknowns.append(("template", node, path))
            return None
        if not isinstance(node, dict):
            where = ".".join(path) or "the resource"
            expected = ".".join(POD_SPEC_PATHS[work.kind])
            work.problems.append(("template", f"{where} is {_type_name(node)}, not an object: cannot find the pod template at {expected}"))
            return None
        node, path = node.get(key), path + [key]
        if node is None:
            # No pod template (a patch that leaves it alone): nothing to check.
            return None
    if is_unknown(node):
        work.unknowns.append(("template", node, path))
        return None
    if not isinstance(node, dict):
        work.problems.append(("template", f"{'.'.join(path)} is {_type_name(node)}, not an object (a PodSpec)"))
        return None
    return node, path


def _entry_problem(area: str, i: int, entry: Any, spec_path: str) -> Optional[str]:
    """Why one container or volume entry cannot be read, else None."""
    if not isinstance(entry, dict):
        return f"{spec_path}.{area}[{i}] is {_type_name(entry)}, not an object"
    if area == "volumes" and entry.get("image") is not None and not isinstance(entry["image"], dict):
        return f"{spec_path}.volumes[{i}].image is {_type_name(entry['image'])}, not an object"
    return None


def _readable_lists(work: Workload, spec: dict, path: list) -> dict:
    """The container lists and volumes of a PodSpec, keeping only the entries that are objects."""
    spec_path = ".".join(path)
    clean: dict = {}
    for area in CONTAINER_LISTS + ("volumes",):
        entries = spec.get(area)
        if entries is None:
            continue
        if is_unknown(entries):
            work.unknowns.append((area, entries, path + [area]))
            continue
        if not isinstance(entries, list):
            work.problems.append((area, f"{spec_path}.{area} is {_type_name(entries)}, not a list"))
            continue
        kept = []
        for i, entry in enumerate(entries):
            if is_unknown(entry):
                work.unknowns.append((area, entry, path + [area, str(i)]))
            elif (problem := _entry_problem(area, i, entry, spec_path)) is not None:
                work.problems.append((area, problem))
            else:
                kept.append(entry)
        clean[area] = kept
    return clean


def _read_images(work: Workload, clean: dict, path: list) -> None:
    """The image of every container and image volume, then those pulled by ``docker pull``."""
    spec_path = ".".join(path)
    for where, cname, image in iter_images(clean):
        use_name = cname if isinstance(cname, str) else None
        if image is None:
            # A patch may leave a container's image alone; a full object without one is broken.
            if not work.patch:
                what = "image volume" if where == "volumes" else "container"
                work.problems.append((where, f'{what} "{shorten(str(use_name))}" in {spec_path}.{where} has no image'))
        elif is_unknown(image):
            work.unknowns.append(("images", image, path + [where, shorten(str(use_name)), "image"]))
        elif not isinstance(image, str):
            work.problems.append((where, f"the image of {ImageUse(where, use_name, '').describe()} is {_type_name(image)}, not a string"))
        else:
            work.images.append(ImageUse(where, use_name, image))
    for area in CONTAINER_LISTS:
        for container in clean.get(area, ()):
            pulled = docker_pull_image(container)
            if isinstance(pulled, str) and not is_unknown(pulled):
                cname = container.get("name")
                work.images.append(ImageUse("docker pull", cname if isinstance(cname, str) else None, pulled))


def _read_host_paths(work: Workload, clean: dict, path: list) -> None:
    """The path of every hostPath volume."""
    spec_path = ".".join(path)
    for i, volume in enumerate(clean.get("volumes", ())):
        host = volume.get("hostPath")
        if host is None:
            continue
        vname = volume.get("name") if isinstance(volume.get("name"), str) else f"volumes[{i}]"
        host_path = host.get("path") if isinstance(host, dict) else host
        if is_unknown(host_path):
            work.unknowns.append(("hostPath", host_path, path + ["volumes", str(i), "hostPath", "path"]))
        elif not isinstance(host, dict) or not isinstance(host_path, str):
            work.problems.append(("volumes", f'hostPath of volume "{shorten(vname)}" in {spec_path}.volumes is malformed: {shown(host)}'))
        else:
            work.volumes.append((vname, host_path))


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
    work = Workload(kind, patch, _label(kind, patch, name, obj))
    found = _find_pod_spec(work, obj)
    if found is not None:
        spec, path = found
        clean = _readable_lists(work, spec, path)
        _read_images(work, clean, path)
        _read_host_paths(work, clean, path)
    return work


# --- images, parsed -----------------------------------------------------------------------

# Everything an image policy reads: it waits for unknowns in these areas only.
_IMAGE_AREAS = ("template",) + CONTAINER_LISTS + ("volumes", "images")


def parsed_images(args: ResourceValidationArgs, report: Callable, areas: Optional[tuple] = None) -> Iterator[tuple]:
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
