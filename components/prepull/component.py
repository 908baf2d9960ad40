"""The ImagePrePuller ComponentResource: registers the objects of :func:`manifests`."""

from typing import Any, Mapping, Optional, Sequence

import pulumi
import pulumi_kubernetes as k8s

from prepull.args import ImagePrePullerArgs
from prepull.core.manifests import render
from prepull.core.plan import Plan, build_plan
from prepull.core.retry import retry_object_ids
from prepull.outputs import has_outputs, plain_containers, shape_args, with_parsed_images
from prepull.run_error import PrePullRunError, reported_plainly

TYPE_TOKEN = "prepull:index:ImagePrePuller"
Manifest = dict[str, Any]  # one Kubernetes object, camelCase wire format
Properties = dict[str, Any]  # one child's keyword arguments (each a value or an Output)

# kind -> (pulumi-kubernetes class, child-name slug). Top-level fields are passed
# through as they are: nested dicts stay camelCase, which is the wire format.
# The classes are Any: each pulumi-kubernetes class has its own keyword arguments (spec, rules, role_ref...).
KINDS: dict[str, tuple[Any, str]] = {
    "Namespace": (k8s.core.v1.Namespace, "ns"),
    "ServiceAccount": (k8s.core.v1.ServiceAccount, "sa"),
    "ClusterRole": (k8s.rbac.v1.ClusterRole, "clusterrole"),
    "ClusterRoleBinding": (k8s.rbac.v1.ClusterRoleBinding, "clusterrolebinding"),
    "Role": (k8s.rbac.v1.Role, "role"),
    "RoleBinding": (k8s.rbac.v1.RoleBinding, "rolebinding"),
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
    # The schema's description of the output, which other languages show as is: one line.
    """Resolves to true once every DaemonSet has been created and, unless skip_await is set, rolled out: every node selected at that time holds every image."""  # noqa: E501

    def __init__(self, name: str, args: ImagePrePullerArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        # Validate first: bad input raises here, before anything is registered (as a RunError: no traceback under the CLI).
        with reported_plainly():
            if has_outputs(args):
                self._declare_deferred(name, args, opts)
                return
            plan = build_plan(args, name)
        self._declare(name, plan, render(plan), opts)

    @classmethod
    def _from_plan(
        cls, name: str, plan: Plan, objects: Sequence[Manifest], opts: Optional[pulumi.ResourceOptions] = None
    ) -> "ImagePrePuller":
        """Internal: the component of an already validated and rendered plan (the stack program builds each once)."""
        self = cls.__new__(cls)
        self._declare(name, plan, objects, opts)
        return self

    def _declare(self, name: str, plan: Plan, objects: Sequence[Manifest], opts: Optional[pulumi.ResourceOptions]) -> None:
        super().__init__(TYPE_TOKEN, name, {}, opts)
        namespace, daemon_sets = self._children(name, plan, objects, [_properties(obj) for obj in objects])
        self._finish(namespace, daemon_sets, _daemon_set_names(objects), plan.namespace, _canonical_images(plan))

    def _declare_deferred(self, name: str, args: ImagePrePullerArgs, opts: Optional[pulumi.ResourceOptions]) -> None:
        """Some values are Outputs: every child is registered now, with values from the plan of the resolved inputs.

        The plain inputs are checked now; the resolved ones in the same ``build_plan``, so a bad
        Output value fails with the usual message, and no child is created (each waits on it).
        """
        shape = build_plan(shape_args(args), name)
        shape_objects = render(shape)
        super().__init__(TYPE_TOKEN, name, {}, opts)
        plan: pulumi.Output[Plan] = pulumi.Output.from_input(plain_containers(args)).apply(
            lambda resolved: _resolved_plan(with_parsed_images(resolved, args, shape.images), name)
        )
        objects: pulumi.Output[list[Manifest]] = plan.apply(lambda p: _same_shape(render(p), shape_objects))
        properties = [{key: _field_of(objects, i, field) for key, field in _fields(obj)} for i, obj in enumerate(shape_objects)]
        namespace, daemon_sets = self._children(name, shape, shape_objects, properties)
        self._finish(
            namespace, daemon_sets, _daemon_set_names(shape_objects), plan.apply(lambda p: p.namespace), plan.apply(_canonical_images)
        )

    def _finish(
        self,
        namespace: Optional[pulumi.CustomResource],
        daemon_sets: list[pulumi.CustomResource],
        names: list[str],
        namespace_name: pulumi.Input[str],
        images: pulumi.Input[list[str]],
    ) -> None:
        self.namespace = _name_of(namespace) if namespace else pulumi.Output.from_input(namespace_name)
        # Each DaemonSet's id resolves only after its create/update (and rollout await) finished.
        ids = pulumi.Output.all(*[d.id for d in daemon_sets])
        self.ready = ids.apply(lambda values: all(bool(i) for i in values))
        # The names are the ones rendered (given, never generated); they resolve with the DaemonSets.
        self.daemon_set_names = ids.apply(lambda _: names)
        self.images = pulumi.Output.from_input(images)
        self.register_outputs(
            {"namespace": self.namespace, "daemon_set_names": self.daemon_set_names, "images": self.images, "ready": self.ready}
        )

    def _children(
        self, name: str, plan: Plan, objects: Sequence[Manifest], properties: Sequence[Properties]
    ) -> tuple[Optional[pulumi.CustomResource], list[pulumi.CustomResource]]:
        """Register ``objects`` as children, with ``properties`` (their fields as keyword arguments).

        Returns (the Namespace resource or None, the DaemonSets).
        """
        prerequisites: list[pulumi.Resource] = []
        namespace: list[pulumi.CustomResource] = []  # the Namespace resource, when the component creates it
        daemon_sets: list[pulumi.CustomResource] = []
        timeouts = pulumi.CustomTimeouts(**plan.custom_timeouts) if plan.custom_timeouts else None
        # The pull-retry watchdog's objects are "<name>-retry-<slug>": its policy and the gate's are both "vap" by kind.
        retry_ids = retry_object_ids(plan)
        for obj, kwargs in zip(objects, properties):
            cls, slug = KINDS[obj["kind"]]
            slug = f"retry-{slug}" if (obj["kind"], obj["metadata"]["name"]) in retry_ids else slug
            if obj["kind"] == "DaemonSet":
                # "<name>-ds" plus the DaemonSet's split suffix ("-arm64-l2"), if any.
                child = f"{name}-ds{obj['metadata']['name'][len(plan.base_name) :]}"
                # The namespace, identity and admission policy exist before any pod runs.
                opts_ = pulumi.ResourceOptions(parent=self, depends_on=list(prerequisites), custom_timeouts=timeouts)
                daemon_sets.append(cls(child, **kwargs, opts=opts_))
                continue
            deps: list[pulumi.Resource] = list(namespace) if obj["metadata"].get("namespace") else []
            resource = cls(f"{name}-{slug}", **kwargs, opts=pulumi.ResourceOptions(parent=self, depends_on=deps))
            prerequisites.append(resource)
            if obj["kind"] == "Namespace":
                namespace.append(resource)
        return (namespace[0] if namespace else None), daemon_sets


def _resolved_plan(resolved: Mapping[str, Any], name: str) -> Plan:
    """The plan of the resolved inputs (run in an apply).

    An exception in an apply faults the Output; the SDK re-raises that same object from ``run_in_stack``
    once a child's registration awaits it, so the language host sees its type: a RunError too.
    """
    with reported_plainly():
        return build_plan(resolved, name)


def _canonical_images(plan: Plan) -> list[str]:
    """The ``images`` output: the plan's images in normalised form, in order."""
    return [r.canonical for r in plan.images]


def _name_of(resource: pulumi.CustomResource) -> pulumi.Output[str]:
    metadata: pulumi.Output[Any] = getattr(resource, "metadata")
    return metadata.apply(lambda m: str(m["name"]))


def _fields(obj: Manifest) -> list[tuple[str, str]]:
    """(keyword argument, manifest field) of an object's top-level fields; nested dicts stay camelCase, the wire format."""
    return [(_KWARGS[k], k) for k in obj if k not in ("apiVersion", "kind")]


def _properties(obj: Manifest) -> Properties:
    return {key: obj[field] for key, field in _fields(obj)}


def _field_of(objects: pulumi.Output[list[Manifest]], index: int, field: str) -> pulumi.Output[Any]:
    return objects.apply(lambda objs: objs[index].get(field))


def _signature(objects: Sequence[Manifest]) -> list[tuple[str, str, tuple[str, ...]]]:
    """What decides the children: kinds, fields and the DaemonSets' names (others are named by values, e.g. the namespace)."""
    return [(o["kind"], o["metadata"]["name"] if o["kind"] == "DaemonSet" else "", tuple(o)) for o in objects]


def _daemon_set_names(objects: Sequence[Manifest]) -> list[str]:
    return [o["metadata"]["name"] for o in objects if o["kind"] == "DaemonSet"]


def _same_shape(objects: list[Manifest], shape: Sequence[Manifest]) -> list[Manifest]:
    """The resolved inputs' objects, which must be the ones registered from the plain inputs."""
    if _signature(objects) != _signature(shape):
        raise PrePullRunError(  # raised in an apply: see _resolved_plan
            "images",
            _daemon_set_names(objects),
            f"the resolved images need other DaemonSets than the {_daemon_set_names(shape)} declared from the inputs known at preview:"
            " give the images' platforms as plain values",
        )
    return objects
