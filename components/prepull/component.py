"""The ImagePrePuller ComponentResource: registers the objects of :func:`manifests`."""

from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from .args import ImagePrePullerArgs
from .manifests import render
from .plan import build_plan

TYPE_TOKEN = "prepull:index:ImagePrePuller"


class ImagePrePuller(pulumi.ComponentResource):
    """Pre-pulls container images onto every selected node, including nodes added later.

    Declares one DaemonSet per lane and architecture whose pods pull each image
    through the kubelet, then hold a pause container so the images stay in use
    (and out of the kubelet's image garbage collection) while the pod runs.
    """

    namespace: pulumi.Output[str]
    """Namespace of the DaemonSets."""
    daemon_set_names: pulumi.Output[list[str]]
    """Names of the DaemonSets, in creation order."""
    images: pulumi.Output[list[str]]
    """The validated images in normalised form (`docker.io/library/nginx:latest`), in order."""
    ready: pulumi.Output[bool]
    """Resolves to true once every DaemonSet has been created and, unless skip_await is set, rolled out: every node selected at that time holds every image."""

    def __init__(self, name: str, args: ImagePrePullerArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        # Validate first: bad input raises here, before anything is registered.
        plan = build_plan(args, name)
        objects = render(plan)
        super().__init__(TYPE_TOKEN, name, {}, opts)

        child = pulumi.ResourceOptions(parent=self)
        depends: list = []
        daemon_sets = []
        timeouts = pulumi.CustomTimeouts(**plan.custom_timeouts) if plan.custom_timeouts else None
        for obj in objects:
            if obj["kind"] == "Namespace":
                ns = k8s.core.v1.Namespace(f"{name}-ns", metadata=obj["metadata"], opts=child)
                depends.append(ns)
            else:
                daemon_sets.append(
                    k8s.apps.v1.DaemonSet(
                        # "<name>-ds" plus the DaemonSet's split suffix ("-arm64-l2"), if any.
                        f"{name}-ds{obj['metadata']['name'][len(plan.base_name):]}",
                        metadata=obj["metadata"],
                        spec=obj["spec"],
                        opts=pulumi.ResourceOptions.merge(
                            child, pulumi.ResourceOptions(depends_on=depends, custom_timeouts=timeouts)
                        ),
                    )
                )

        self.namespace = pulumi.Output.from_input(plan.namespace)
        if depends:
            self.namespace = depends[0].metadata.apply(lambda m: m["name"])
        self.daemon_set_names = pulumi.Output.all(*[d.metadata.apply(lambda m: m["name"]) for d in daemon_sets])
        self.images = pulumi.Output.from_input([r.canonical for r in plan.images])
        # Depends on each DaemonSet's id, which resolves only after its create/update (and await) finished.
        self.ready = pulumi.Output.all(*[d.id for d in daemon_sets]).apply(lambda ids: all(bool(i) for i in ids))
        self.register_outputs(
            {"namespace": self.namespace, "daemon_set_names": self.daemon_set_names, "images": self.images, "ready": self.ready}
        )
