"""Stack configuration: node pools and the pre-puller each one gets. Pure (no Pulumi engine).

``load_stack`` validates the decoded ``prepull:*`` stack config; ``prepuller_args``
turns one pool into ImagePrePullerArgs; ``karpenter_node_pool`` renders the
Karpenter NodePool; ``stack_manifests`` renders every Kubernetes object a stack
declares (used by the offline renderer). Errors name the pool and the field.
"""

import enum
import re
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Optional

from prepull.args import DEFAULTS
from prepull.core.checks import (
    INPUT_NAMES,
    PYTHON_NAMES,
    Path,
    check_bool,
    check_choice,
    check_enum,
    check_image,
    check_int,
    check_keys,
    check_list,
    check_mapping,
    check_required,
    check_str,
    check_string_map,
    check_taint,
)
from prepull.core.images import ImageRef, Platform, parse_platform
from prepull.core.labels import APP, LABEL_MANAGED_BY, LABEL_NAME, OS_LABEL
from prepull.core.manifests import namespace_object, render
from prepull.core.names import check_dns_label, check_label_value, check_qualified_name
from prepull.core.plan import Pairs, Plan, build_plan
from prepull.errors import PrePullInputError, camel_case
from prepull.stack.arches import KnownArches, implied_arches


class PoolProvider(str, enum.Enum):
    """Who manages a pool's nodes."""

    EXISTING = "existing"
    """Nodes already exist (or are managed elsewhere): only the pre-puller is declared."""
    KARPENTER = "karpenter"
    """A Karpenter `karpenter.sh/v1` NodePool, declared through pulumi-kubernetes."""
    EKS = "eks"
    """An EKS managed node group (extra `prepull[eks]`)."""
    GKE = "gke"
    """A GKE node pool (extra `prepull[gke]`)."""
    AKS = "aks"
    """An AKS agent pool (extra `prepull[aks]`)."""


# Startup-taint keys per provider. Karpenter ignores startup taints when it
# provisions; the cluster-autoscaler prefix makes CA count the node as "coming
# up" instead of scaling out again (shared/reference k8s_mechanics.md §4).
KARPENTER_GATE_KEY = "prepull.dev/not-ready"
AUTOSCALER_GATE_KEY = "startup-taint.cluster-autoscaler.kubernetes.io/prepull"
GATE_EFFECT = "NoSchedule"


@dataclass(frozen=True)
class ProviderFields:
    """The keys of a provider-specific block (``eks:``, ``karpenter:`` ...)."""

    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()

    @property
    def known(self) -> tuple[str, ...]:
        """Every key the block may hold, required ones first."""
        return self.required + self.optional


PROVIDER_FIELDS = {
    PoolProvider.EXISTING: ProviderFields(optional=("nodesRegisterWithTaint", "taintKey")),
    PoolProvider.KARPENTER: ProviderFields(required=("nodeClassRef",), optional=("requirements", "limits", "disruption", "weight")),
    PoolProvider.EKS: ProviderFields(
        required=("clusterName", "nodeRoleArn", "subnetIds", "instanceTypes", "minSize", "maxSize"),
        optional=("desiredSize", "amiType", "diskSize", "capacityType"),
    ),
    PoolProvider.GKE: ProviderFields(
        required=("cluster", "location", "machineType", "minNodes", "maxNodes"),
        optional=("project", "diskSizeGb", "spot", "serviceAccount"),
    ),
    PoolProvider.AKS: ProviderFields(
        required=("resourceGroupName", "clusterName", "vmSize", "minCount", "maxCount"),
        optional=("agentPoolName", "osSku", "gateApiVersion"),
    ),
}
POOL_KEYS = (
    "name",
    "provider",
    "labels",
    "taints",
    "images",
    "startupGate",
    "lanes",
    "pullRetrySeconds",
    "prepuller",
    "platforms",
) + tuple(p.value for p in PoolProvider)
# ImagePrePuller inputs a pool may set in its `prepuller` block, and their keys there (camelCase, as in the
# schema). The pool itself decides images, namespace, base name, node selection, tolerations and the gate.
PREPULLER_INPUTS = (
    "pull_policy",
    "method",
    "pause_image",
    "helper_image",
    "docker_cli_image",
    "untaint_image",
    "image_platforms",
    "image_pull_secrets",
    "priority_class_name",
    "labels",
    "annotations",
    "max_unavailable",
    "max_surge",
    "custom_timeouts",
    "skip_await",
    "resources",
    "run_as_user",
    "network_policy",
)
PREPULLER_KEYS = tuple(camel_case(name) for name in PREPULLER_INPUTS)
KARPENTER_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")
KARPENTER_REQUIREMENT_KEYS = ("key", "operator", "values", "minValues")
STACK_KEYS = ("images", "namespace", "nodePools", "kubeconfig", "kubeContext")
# The keys whose values are lists or objects: the program reads them with Config.get_object (a string is JSON).
OBJECT_KEYS = ("images", "nodePools")
CLOUD_PROVIDERS = (PoolProvider.EKS, PoolProvider.GKE, PoolProvider.AKS)
POOL_NAME_MAX = 40  # leaves room for "-<arch>" and the untaint suffixes in derived names
# Field paths: the stack's own settings are Pulumi config keys (`prepull:kubeContext`); a pool's
# fields are named after the pool once its name is known (`nodePools.gpu.taints[0].effect`).
# The stack's config namespace: the Pulumi project's name (Pulumi.yaml), whose keys are `prepull:<key>`.
CONFIG_NAMESPACE = "prepull"
CONFIG = Path(f"{CONFIG_NAMESPACE}:")
POOLS = Path("nodePools")


@dataclass(frozen=True)
class Pool:
    """One validated node pool."""

    name: str
    provider: PoolProvider
    labels: Pairs  # sorted
    taints: tuple[Mapping[str, str], ...]  # of {key, value?, effect}
    images: tuple[ImageRef, ...]  # global + pool-specific, deduplicated, in order (parsed once, from the stack file)
    startup_gate: bool
    gate_taint: Optional[Mapping[str, str]]
    settings: Mapping[str, Any]  # the provider-specific block
    lanes: Any  # as written: build_plan checks it
    prepuller: Mapping[str, Any]  # extra ImagePrePuller inputs from the pool's `prepuller` block
    platforms: tuple[Platform, ...] = ()  # the node platforms the pool declares (checks only; selects nothing)
    image_sizes: tuple[tuple[ImageRef, int], ...] = ()  # (image of `images`, bytes) pairs, from the lock file; balances lanes
    pull_retry_seconds: Any = None  # as written (None: not set): build_plan checks it

    @property
    def path(self) -> Path:
        """Where the pool's fields are in the stack config (``nodePools.<name>``)."""
        return POOLS.child(self.name)

    @property
    def resource_name(self) -> str:
        """The Pulumi resource name of the pool's node pool (``nodepool-<name>``), whoever provides it."""
        return f"nodepool-{self.name}"

    def node_arches(self) -> Optional[KnownArches]:
        """The pool's node architectures: its ``platforms`` if given, else what its labels or settings imply; None if unknown."""
        if self.platforms:
            return KnownArches(tuple(sorted({p.arch for p in self.platforms})), "platforms")
        return implied_arches(self.provider.value, self.settings, dict(self.labels))


@dataclass(frozen=True)
class PrePuller:
    """A pool's pre-puller, validated and rendered once: what the stack program registers and `render` prints."""

    plan: Plan
    objects: tuple[dict[str, Any], ...]  # render(plan)


@dataclass(frozen=True)
class StackSpec:
    """A validated stack configuration."""

    namespace: str
    pools: tuple[Pool, ...]
    kubeconfig: Optional[str]
    kube_context: Optional[str]
    prepullers: Mapping[str, PrePuller] = field(default_factory=dict)  # by pool name, in pool order


def _prepuller_block(raw: Any, path: Path) -> dict[str, Any]:
    """The pool's `prepuller` block as ImagePrePullerArgs keys (validated later by build_plan)."""
    if raw is None:
        return {}
    check_keys(check_mapping(raw, path, "ImagePrePuller inputs"), PREPULLER_KEYS, path)
    out = {}
    for key, value in raw.items():
        if key == "resources" and isinstance(value, Mapping):
            value = {PYTHON_NAMES.get(k, k): v for k, v in value.items()}
        if key == "imagePlatforms" and isinstance(value, Mapping):
            # Parsed here, once: the lock file and build_plan take these ImageRefs as they are.
            value = {check_image(k, path.child(key).entry(k)): v for k, v in value.items()}
        out[PYTHON_NAMES[key]] = value
    return out


def _check_karpenter(settings: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """The karpenter block, shape-checked so mistakes fail at preview and not when Karpenter rejects them (weight an int)."""
    ref = settings["nodeClassRef"]
    if not isinstance(ref, Mapping) or set(ref) != {"group", "kind", "name"} or not all(isinstance(v, str) and v for v in ref.values()):
        raise PrePullInputError(
            path.child("nodeClassRef"),
            ref,
            "must be {group, kind, name}, e.g. {group: karpenter.k8s.aws, kind: EC2NodeClass, name: default}",
        )
    if settings.get("requirements") is not None:
        reqs = check_list(settings["requirements"], path.child("requirements"), "{key, operator, values}")
        for i, req in enumerate(reqs):
            _karpenter_requirement(req, path.child("requirements").at(i))
    limits = settings.get("limits")
    if limits is not None:
        for key, value in check_mapping(
            limits, path.child("limits"), "resource names to quantities, e.g. {cpu: '400', memory: 1600Gi}"
        ).items():
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                raise PrePullInputError(path.child("limits").entry(key), value, "must be a quantity such as '400' or '1600Gi'")
    if settings.get("disruption") is not None:
        check_mapping(settings["disruption"], path.child("disruption"), "Karpenter's NodePool spec.disruption settings")
    if settings.get("weight") is None:
        return dict(settings)
    return {**settings, "weight": check_int(settings["weight"], path.child("weight"), 1, 100)}


def _karpenter_requirement(value: Any, path: Path) -> None:
    """One NodePool requirement: {key, operator, values[, minValues]}, values given where the operator needs them."""
    req = check_mapping(value, path, "{key, operator, values[, minValues]}")
    check_keys(req, KARPENTER_REQUIREMENT_KEYS, path)
    check_qualified_name(req.get("key"), path.child("key"))
    operator = check_choice(req.get("operator"), KARPENTER_OPERATORS, path.child("operator"))
    values = check_list(req.get("values", []), path.child("values"), "strings")
    for i, item in enumerate(values):
        check_str(item, path.child("values").at(i), empty=True)
    if operator in ("In", "NotIn", "Gt", "Lt") and not values:
        raise PrePullInputError(path.child("values"), values, f"must not be empty with operator {operator}")


def _taints(raw: Any, path: Path) -> tuple[dict[str, str], ...]:
    if raw is None:
        return ()
    return tuple(check_taint(t, path.at(i)) for i, t in enumerate(check_list(raw, path, "{key, value, effect}")))


def _platforms(
    raw: Any, path: Path, provider: PoolProvider, settings: Mapping[str, Any], labels: Mapping[str, str]
) -> tuple[Platform, ...]:
    """The pool's declared node platforms; they must agree with what its labels or node settings imply."""
    if raw is None:
        return ()
    raw = check_list(raw, path, "platforms such as 'linux/amd64'", non_empty=True)
    platforms = tuple(sorted({parse_platform(p, path.at(i)) for i, p in enumerate(raw)}))
    implied = implied_arches(provider.value, settings, labels)
    extra = sorted({p.arch for p in platforms} - set(implied.arches)) if implied else []
    if implied and extra:
        raise PrePullInputError(
            path,
            raw,
            f"lists {', '.join(extra)}, but the pool's {implied.source} allows only {', '.join(implied.arches) or 'no architecture'}",
        )
    return platforms


def _merge_images(global_images: tuple[ImageRef, ...], pool_images: Any, path: Path) -> tuple[ImageRef, ...]:
    """The stack's images, then the pool's own (each parsed here, once), every image once."""
    pool_images = check_list([] if pool_images is None else pool_images, path, "image references")
    merged: list[ImageRef] = []
    seen: set[str] = set()
    for ref in list(global_images) + [check_image(image, path.at(i)) for i, image in enumerate(pool_images)]:
        if ref.identity not in seen:  # a pool may repeat a global image: pulled once
            seen.add(ref.identity)
            merged.append(ref)
    if not merged:
        raise PrePullInputError(path, pool_images, "this pool has no images: set prepull:images or the pool's images")
    return tuple(merged)


def _gate_taint(provider: PoolProvider, settings: Mapping[str, Any], path: Path) -> dict[str, str]:
    if provider is PoolProvider.KARPENTER:
        return {"key": KARPENTER_GATE_KEY, "effect": GATE_EFFECT}
    if provider is PoolProvider.EXISTING:
        if settings.get("nodesRegisterWithTaint") is not True:
            raise PrePullInputError(
                path.child("startupGate"),
                True,
                "an existing pool's nodes must already register with the startup taint: add "
                f"`--register-with-taints={AUTOSCALER_GATE_KEY}=:{GATE_EFFECT}` to the kubelet (or your node group's "
                "startup taints), then set existing.nodesRegisterWithTaint: true",
            )
        key = settings.get("taintKey", AUTOSCALER_GATE_KEY)
        return {"key": check_qualified_name(key, path.child("existing").child("taintKey")), "effect": GATE_EFFECT}
    # Cloud pools (docs/providers.md): the kubelet or the cloud registers the taint once, at node
    # creation, and nothing re-adds it after the pre-puller removed it. The value is there because
    # GKE's and AKS's taint formats take one (key=value:effect).
    if provider is PoolProvider.EKS:
        # MNG `taints` are applied by eks:node-manager and race with the pre-puller; the gate is
        # registered by the kubelet itself (nodeadm NodeConfig in a launch template): AL2023 only.
        ami = settings.get("amiType")
        if not (isinstance(ami, str) and ami.startswith("AL2023_")):
            raise PrePullInputError(
                path.child("eks").child("amiType"),
                ami,
                "startupGate on an eks pool needs an AL2023 AMI type (e.g. AL2023_x86_64_STANDARD): the gate taint is "
                "registered by the kubelet through a nodeadm NodeConfig in the node group's launch template, because "
                "managed-node-group taints are applied after registration and race with the pre-puller; for Bottlerocket "
                "or AL2 nodes use a karpenter pool (startupTaints) instead",
            )
    if provider is PoolProvider.AKS and settings.get("gateApiVersion") is not None:
        version = settings["gateApiVersion"]
        if not (isinstance(version, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}-preview", version)):
            raise PrePullInputError(
                path.child("aks").child("gateApiVersion"),
                version,
                "must be an AKS preview API version such as '2025-10-02-preview': "
                "nodeInitializationTaints exist only in preview API versions",
            )
    return {"key": AUTOSCALER_GATE_KEY, "value": "pulling", "effect": GATE_EFFECT}


def _pool_name(raw: Any, index: int, names: dict[str, int]) -> str:
    """The pool's name: required, a short DNS label, unique in the stack (``names``: name -> index so far)."""
    check_required(check_mapping(raw, POOLS.at(index)), ("name",), POOLS.at(index))
    name = check_dns_label(raw["name"], POOLS.at(index).child("name"), max_len=POOL_NAME_MAX)
    if name in names:
        raise PrePullInputError(POOLS.at(index).child("name"), name, f"duplicate pool name (also nodePools[{names[name]}])")
    names[name] = index
    return name


def _labels(raw: Any, path: Path) -> Pairs:
    if not isinstance(raw, Mapping) or not raw:
        raise PrePullInputError(path, raw, "is required: the node labels that select this pool's nodes")
    return check_string_map(raw, path, check_label_value)


def _settings(raw: Mapping[str, Any], provider: PoolProvider, path: Path) -> Mapping[str, Any]:
    """The provider's block (required keys present, no unknown ones); no other provider's block may be set."""
    for other in PoolProvider:
        if other is not provider and raw.get(other.value) is not None:
            raise PrePullInputError(
                path.child(other.value), raw[other.value], f"belongs to provider {other.value!r}, not {provider.value!r}"
            )
    block = path.child(provider.value)
    settings = check_mapping(raw.get(provider.value) or {}, block)
    fields = PROVIDER_FIELDS[provider]
    check_required(settings, fields.required, block, f" for provider {provider.value!r}")
    check_keys(settings, fields.known, block)
    return settings


def _pool(raw: Any, index: int, global_images: tuple[ImageRef, ...], names: dict[str, int]) -> Pool:
    name = _pool_name(raw, index, names)
    path = POOLS.child(name)
    check_keys(raw, POOL_KEYS, path)
    provider = check_enum(PoolProvider, raw.get("provider"), path.child("provider"))
    labels = _labels(raw.get("labels"), path.child("labels"))
    settings = _settings(raw, provider, path)
    gate = check_bool(raw.get("startupGate", False), path.child("startupGate"))
    if provider is PoolProvider.KARPENTER:
        settings = _check_karpenter(settings, path.child(provider.value))
    return Pool(
        name=name,
        provider=provider,
        labels=labels,
        taints=_taints(raw.get("taints"), path.child("taints")),
        images=_merge_images(global_images, raw.get("images"), path.child("images")),
        startup_gate=gate,
        gate_taint=_gate_taint(provider, settings, path) if gate else None,
        settings=dict(settings),
        lanes=raw.get("lanes", 1),
        pull_retry_seconds=raw.get("pullRetrySeconds"),
        prepuller=_prepuller_block(raw.get("prepuller"), path.child("prepuller")),
        platforms=_platforms(raw.get("platforms"), path.child("platforms"), provider, settings, dict(labels)),
    )


def load_stack(config: Mapping[str, Any]) -> StackSpec:
    """Validate the decoded ``prepull:*`` stack config (keys without the ``prepull:`` prefix); build every pre-puller once.

    With a lock file, use ``with_prepullers(lock_stack(validate_stack(config), ...))`` instead, so
    that the pre-pullers are built once, from the locked images.
    """
    return with_prepullers(validate_stack(config))


def validate_stack(config: Mapping[str, Any]) -> StackSpec:
    """The stack config validated, its pools' pre-pullers not built yet (see :func:`with_prepullers`)."""
    check_keys(config, STACK_KEYS, CONFIG)
    raw_images = check_list(config.get("images") or [], "images", "image references")
    images = tuple(check_image(image, Path("images").at(i)) for i, image in enumerate(raw_images))
    namespace = check_dns_label(config.get("namespace") or DEFAULTS["namespace"], "namespace")
    raw_pools = check_list(config.get("nodePools"), POOLS, "node pools", non_empty=True)
    names: dict[str, int] = {}
    pools = tuple(_pool(p, i, images, names) for i, p in enumerate(raw_pools))
    kube = {
        key: check_str(config[key], CONFIG.child(key), empty=True) for key in ("kubeconfig", "kubeContext") if config.get(key) is not None
    }
    return StackSpec(namespace, pools, kube.get("kubeconfig") or None, kube.get("kubeContext") or None)


def with_prepullers(spec: StackSpec) -> StackSpec:
    """``spec`` with every pool's pre-puller validated and rendered, once; no two pools' objects may share a name.

    Fails before anything registers.
    """
    prepullers = {pool.name: _prepuller(spec, pool) for pool in spec.pools}
    _check_collisions(prepullers)
    return replace(spec, prepullers=prepullers)


def built(spec: StackSpec) -> StackSpec:
    """``spec`` itself when its pre-pullers are built (load_stack, with_prepullers), else with them built now."""
    return spec if spec.prepullers else with_prepullers(spec)


def _prepuller(spec: StackSpec, pool: Pool) -> PrePuller:
    """The pool's plan and objects, built once; errors name fields the way the stack file spells them."""
    try:
        plan = build_plan(prepuller_args(spec, pool), pool.name)
    except PrePullInputError as err:
        top = re.split(r"[.\[]", err.field, maxsplit=1)[0]
        inside = "prepuller." if top in PREPULLER_INPUTS else ""
        raise err.in_camel_case(INPUT_NAMES, prefix=f"{pool.path}.{inside}") from None
    return PrePuller(plan, tuple(render(plan)))


def _check_collisions(prepullers: Mapping[str, PrePuller]) -> None:
    """E.g. pool "gpu" with 2 lanes and a pool named "gpu-l1" would share a DaemonSet."""
    owners: dict[tuple[str, Optional[str], str], str] = {}
    for pool, prepuller in prepullers.items():
        for obj in prepuller.objects:
            key = (obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"])
            if key in owners:
                raise PrePullInputError(
                    POOLS.child(pool).child("name"),
                    pool,
                    f"its {key[0]} {key[2]!r} has the same name as one of pool {owners[key]!r}: rename a pool",
                )
            owners[key] = pool


def prepuller_args(spec: StackSpec, pool: Pool) -> dict[str, Any]:
    """The ImagePrePullerArgs of a pool: select exactly its nodes, tolerate exactly its taints."""
    tolerations = [
        {"key": t["key"], "operator": "Equal", "value": t["value"], "effect": t["effect"]}
        if "value" in t
        else {"key": t["key"], "operator": "Exists", "effect": t["effect"]}
        for t in pool.taints
    ]
    args: dict[str, Any] = {
        **pool.prepuller,
        "images": list(pool.images),
        "namespace": spec.namespace,
        "create_namespace": False,  # the stack declares the shared namespace once
        "base_name": pool.name,
        "node_selector": dict(pool.labels),
        "lanes": pool.lanes,
    }
    if pool.image_sizes:
        args["image_sizes"] = dict(pool.image_sizes)
    if pool.pull_retry_seconds is not None:
        args["pull_retry_seconds"] = pool.pull_retry_seconds
    if tolerations:
        args["tolerations"] = tolerations
    if pool.gate_taint:
        args["startup_taint"] = dict(pool.gate_taint)
        args["remove_startup_taint"] = True
    return args


def karpenter_node_pool(pool: Pool) -> dict[str, Any]:
    """The Karpenter v1 NodePool of a pool: its labels and taints, and the gate as a startup taint."""
    s = pool.settings
    template_spec: dict[str, Any] = {
        "nodeClassRef": dict(s["nodeClassRef"]),
        "requirements": list(s.get("requirements") or [{"key": OS_LABEL, "operator": "In", "values": ["linux"]}]),
    }
    if pool.taints:
        template_spec["taints"] = [dict(t) for t in pool.taints]
    if pool.gate_taint:
        template_spec["startupTaints"] = [dict(pool.gate_taint)]
    spec: dict[str, Any] = {"template": {"metadata": {"labels": dict(pool.labels)}, "spec": template_spec}}
    for key in ("limits", "disruption", "weight"):
        if s.get(key) is not None:
            spec[key] = s[key]
    return {
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodePool",
        "metadata": {"name": pool.name, "labels": {LABEL_MANAGED_BY: APP}},
        "spec": spec,
    }


def namespace_for(spec: StackSpec) -> dict[str, Any]:
    """The stack's shared namespace."""
    return namespace_object(spec.namespace, False, {LABEL_NAME: APP, LABEL_MANAGED_BY: APP})


def stack_manifests(spec: StackSpec) -> list[dict[str, Any]]:
    """Every Kubernetes object the stack declares, in creation order (cloud node pools are not Kubernetes objects)."""
    spec = built(spec)
    objects = [namespace_for(spec)]
    for pool in spec.pools:
        objects.extend(spec.prepullers[pool.name].objects)
        if pool.provider is PoolProvider.KARPENTER:
            objects.append(karpenter_node_pool(pool))
    return objects
