"""The ImagePrePuller ComponentResource: registers the objects of :func:`manifests`."""

from typing import Optional, Sequence

import pulumi
import pulumi_kubernetes as k8s

from .args import ImagePrePullerArgs
from .manifests import render
from .plan import Plan, build_plan

TYPE_TOKEN = "prepull:index:ImagePrePuller"

# kind -> (pulumi-kubernetes class, child-name slug). Top-level fields are passed
# through as they are: nested dicts stay camelCase, which is the wire format.
KINDS = {
    "Namespace": (k8s.core.v1.Namespace, "ns"),
    "ServiceAccount": (k8s.core.v1.ServiceAccount, "sa"),
    "ClusterRole": (k8s.rbac.v1.ClusterRole, "clusterrole"),
    "ClusterRoleBinding": (k8s.rbac.v1.ClusterRoleBinding, "clusterrolebinding"),
    "ValidatingAdmissionPolicy": (k8s.admissionregistration.v1.ValidatingAdmissionPolicy, "vap"),
    "ValidatingAdmissionPolicyBinding": (k8s.admissionregistration.v1.ValidatingAdmissionPolicyBinding, "vapbinding"),
    "NetworkPolicy": (k8s.networking.v1.NetworkPolicy, "netpol"),
    "DaemonSet": (k8s.apps.v1.DaemonSet, "ds"),
}
_KWARGS = {
    "metadata": "metadata",
    "spec": "spec",
    "rules": "rules",
    "roleRef": "role_ref",
    "subjects": "subjects",
    "automountServiceAccountToken": "automount_service_account_token",
}


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
        self._declare(name, plan, render(plan), opts)

    @classmethod
    def _from_plan(cls, name: str, plan: Plan, objects: Sequence[dict], opts: Optional[pulumi.ResourceOptions] = None) -> "ImagePrePuller":
        """Internal: the component of an already validated and rendered plan (the stack program builds each once)."""
        self = cls.__new__(cls)
        self._declare(name, plan, objects, opts)
        return self

    def _declare(self, name: str, plan: Plan, objects: Sequence[dict], opts: Optional[pulumi.ResourceOptions]) -> None:
        super().__init__(TYPE_TOKEN, name, {}, opts)
        namespace, daemon_sets = self._children(name, plan, objects)
        self.namespace = namespace.metadata.apply(lambda m: m["name"]) if namespace else pulumi.Output.from_input(plan.namespace)
        self.daemon_set_names = pulumi.Output.all(*[d.metadata.apply(lambda m: m["name"]) for d in daemon_sets])
        self.images = pulumi.Output.from_input([r.canonical for r in plan.images])
        # Each DaemonSet's id resolves only after its create/update (and rollout await) finished.
        self.ready = pulumi.Output.all(*[d.id for d in daemon_sets]).apply(lambda ids: all(bool(i) for i in ids))
        self.register_outputs(
            {"namespace": self.namespace, "daemon_set_names": self.daemon_set_names, "images": self.images, "ready": self.ready}
        )

    def _children(self, name: str, plan: Plan, objects: Sequence[dict]) -> tuple:
        """Register ``objects`` as children: (the Namespace resource or None, the DaemonSets)."""
        prerequisites: list = []
        namespace: list = []  # the Namespace resource, when the component creates it
        daemon_sets: list = []
        timeouts = pulumi.CustomTimeouts(**plan.custom_timeouts) if plan.custom_timeouts else None
        for obj in objects:
            cls, slug = KINDS[obj["kind"]]
            kwargs = {_KWARGS[k]: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
            if obj["kind"] == "DaemonSet":
                # "<name>-ds" plus the DaemonSet's split suffix ("-arm64-l2"), if any.
                child = f"{name}-ds{obj['metadata']['name'][len(plan.base_name):]}"
                # The namespace, identity and admission policy exist before any pod runs.
                opts_ = pulumi.ResourceOptions(parent=self, depends_on=list(prerequisites), custom_timeouts=timeouts)
                daemon_sets.append(cls(child, **kwargs, opts=opts_))
            else:
                deps = namespace if obj["metadata"].get("namespace") else []
                prerequisites.append(cls(f"{name}-{slug}", **kwargs, opts=pulumi.ResourceOptions(parent=self, depends_on=deps)))
                if obj["kind"] == "Namespace":
                    namespace.append(prerequisites[-1])
        return (namespace[0] if namespace else None), daemon_sets
