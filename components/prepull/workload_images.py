"""``images_from``: the images a program's own workloads run, as one Output for ``images``.

So the pre-pulled list follows what the program deploys, with no list kept by hand. Where each
kind keeps its pod template comes from the one table, :mod:`prepull.core.workloads`.
"""

from collections.abc import Mapping
from typing import Any

import pulumi
from pulumi._types import is_output_type, output_type_to_dict

from prepull.core.checks import check_image, is_list
from prepull.core.labels import LABEL_DAEMONSET
from prepull.core.workloads import POD_SPEC_PATHS, iter_images, kind_of, pod_spec
from prepull.errors import camel_case
from prepull.run_error import reported_plainly

Found = list[tuple[object, str]]  # (image as found, where it was found), in order


def images_from(*resources: Any) -> pulumi.Output[list[str]]:
    """The images of the given Kubernetes workloads, in order, each once.

    Every container, init container, ephemeral container and image volume counts. ``resources``
    may be Deployments, StatefulSets, DaemonSets, ReplicaSets, ReplicationControllers, Jobs,
    CronJobs, Pods and PodTemplates (their ``*Patch`` variants too), and lists, dicts or Outputs
    of them, such as ``helm.v4.Chart(...).resources``. Other resources are ignored, and so are
    prepull's own DaemonSets. Images are the same when ``images`` would call them duplicates
    (``nginx`` and ``docker.io/library/nginx:latest``); the first spelling is kept.

    A reference no image parser accepts fails naming the workload and container. During preview,
    the result is unknown while any workload's pod template is.
    """
    return _collect(list(resources)).apply(_unique)


def _collect(item: Any) -> pulumi.Output[Found]:
    """(image, where) of every workload in ``item``, in order."""
    if isinstance(item, pulumi.Output):
        return item.apply(_collect)
    if isinstance(item, Mapping):
        item = list(item.values())
    if is_list(item):
        return pulumi.Output.all(*[_collect(x) for x in item]).apply(lambda lists: [pair for pairs in lists for pair in pairs])
    if isinstance(item, pulumi.Resource):
        kind = kind_of(item.pulumi_resource_type)
        if kind is not None:
            return _workload(item, kind)
    none: Found = []
    return pulumi.Output.from_input(none)


def _workload(resource: pulumi.Resource, kind: str) -> pulumi.Output[Found]:
    root = POD_SPEC_PATHS[kind][0]  # "spec" or "template"
    where = f"{kind} {resource.pulumi_resource_name!r}"
    return pulumi.Output.all(getattr(resource, "metadata", None), getattr(resource, root, None)).apply(
        lambda values: _images(kind, where, _wire(values[0]) or {}, {root: _wire(values[1])})
    )


def _images(kind: str, where: str, metadata: Mapping[str, Any], obj: Mapping[str, Any]) -> Found:
    if LABEL_DAEMONSET in (metadata.get("labels") or {}):
        return []  # one of prepull's own DaemonSets: pre-pulling its own images would be circular
    spec = pod_spec(kind, obj)
    if spec is None:
        return []
    return [(image, f"{where}: {lst}[{name!r}]") for lst, name, image in iter_images(spec) if image]


def _wire(value: Any) -> Any:
    """``value`` as plain wire-format data: output types to dicts, keys camelCase (the SDK may give either)."""
    if is_output_type(type(value)):
        value = output_type_to_dict(value)
    if isinstance(value, Mapping):
        return {camel_case(k) if isinstance(k, str) else k: _wire(v) for k, v in value.items()}
    if is_list(value):
        return [_wire(v) for v in value]
    return value


def _unique(pairs: Found) -> list[str]:
    seen: set[str] = set()
    images = []
    for image, where in pairs:
        with reported_plainly():  # raised in an apply, which hands it as it is to the language host
            ref = check_image(image, f"images_from({where})")
        if ref.identity not in seen:
            seen.add(ref.identity)
            images.append(ref.original)
    return images


__all__ = ["images_from"]
