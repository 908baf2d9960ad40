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

from .arches import implied_arches
from .args import DEFAULTS, KNOWN_FIELDS, TaintEffect
from .errors import PrePullInputError, camel_case
from .images import parse_image, parse_platform
from .manifests import namespace_object, render
from .names import check_dns_label, check_label_value, check_qualified_name
from .plan import Plan, build_plan


class Provider(str, enum.Enum):
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

# Provider-specific blocks: required keys, optional keys.
PROVIDER_FIELDS = {
    Provider.EXISTING: ((), ("nodesRegisterWithTaint", "taintKey")),
    Provider.KARPENTER: (("nodeClassRef",), ("requirements", "limits", "disruption", "weight")),
    Provider.EKS: (
        ("clusterName", "nodeRoleArn", "subnetIds", "instanceTypes", "minSize", "maxSize"),
        ("desiredSize", "amiType", "diskSize", "capacityType"),
    ),
    Provider.GKE: (("cluster", "location", "machineType", "minNodes", "maxNodes"), ("project", "diskSizeGb", "spot", "serviceAccount")),
    Provider.AKS: (("resourceGroupName", "clusterName", "vmSize", "minCount", "maxCount"), ("agentPoolName", "osSku", "gateApiVersion")),
}
POOL_KEYS = ("name", "provider", "labels", "taints", "images", "startupGate", "lanes", "prepuller", "platforms") + tuple(p.value for p in Provider)
# ImagePrePuller inputs a pool may set in its `prepuller` block (camelCase, as in YAML). The pool
# itself decides images, namespace, base name, node selection, tolerations and the gate.
PREPULLER_KEYS = (
    "pullPolicy", "method", "pauseImage", "helperImage", "dockerCliImage", "untaintImage", "imagePlatforms",
    "imagePullSecrets", "priorityClassName", "labels", "annotations", "maxUnavailable", "maxSurge",
    "customTimeouts", "skipAwait", "resources", "runAsUser", "networkPolicy",
)
KARPENTER_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")
STACK_KEYS = ("images", "namespace", "nodePools", "kubeconfig", "kubeContext")
CLOUD_PROVIDERS = (Provider.EKS, Provider.GKE, Provider.AKS)
POOL_NAME_MAX = 40  # leaves room for "-<arch>" and the untaint suffixes in derived names


@dataclass(frozen=True)
class Pool:
    """One validated node pool."""

    name: str
    provider: Provider
    labels: tuple  # sorted (key, value) pairs
    taints: tuple  # of {key, value?, effect}
    images: tuple  # global + pool-specific, deduplicated, as written
    startup_gate: bool
    gate_taint: Optional[Mapping]
    settings: Mapping  # the provider-specific block
    lanes: int
    prepuller: Mapping  # extra ImagePrePuller inputs from the pool's `prepuller` block
    platforms: tuple = ()  # of Platform: the node platforms the pool declares (checks only; selects nothing)
    image_sizes: tuple = ()  # sorted (image as in `images`, bytes) pairs, from the lock file; balances lanes


@dataclass(frozen=True)
class PrePuller:
    """A pool's pre-puller, validated and rendered once: what the stack program registers and `render` prints."""

    plan: Plan
    objects: tuple  # render(plan)


@dataclass(frozen=True)
class StackSpec:
    """A validated stack configuration."""

    namespace: str
    pools: tuple
    kubeconfig: Optional[str]
    kube_context: Optional[str]
    prepullers: Mapping[str, PrePuller] = field(default_factory=dict)  # by pool name, in pool order


# The stack file's camelCase names back to the Python ones: the exact inverse of errors.camel_case
# (the schema's rule), for the inputs a `prepuller` block may set and the keys of `resources`.
_PYTHON_NAMES = {camel_case(name): name for name in (*KNOWN_FIELDS, *DEFAULTS["resources"])}


def _prepuller_block(raw: Any, pool: str) -> dict:
    """The pool's `prepuller` block as ImagePrePullerArgs keys (validated later by build_plan)."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise PrePullInputError(_field(pool, "prepuller"), raw, "must be a mapping of ImagePrePuller inputs")
    out = {}
    for key, value in raw.items():
        if key not in PREPULLER_KEYS:
            raise PrePullInputError(_field(pool, f"prepuller.{key}"), value, f"unknown field; known: {', '.join(PREPULLER_KEYS)}")
        if key == "resources" and isinstance(value, Mapping):
            value = {_PYTHON_NAMES.get(k, k): v for k, v in value.items()}
        out[_PYTHON_NAMES[key]] = value
    return out


def _karpenter(settings: Mapping, pool: str) -> None:
    """Shape checks for the karpenter block, so mistakes fail at preview and not when Karpenter rejects them."""
    f = lambda key: _field(pool, f"karpenter.{key}")  # noqa: E731
    ref = settings["nodeClassRef"]
    if not isinstance(ref, Mapping) or set(ref) != {"group", "kind", "name"} or not all(isinstance(v, str) and v for v in ref.values()):
        raise PrePullInputError(f("nodeClassRef"), ref, "must be {group, kind, name}, e.g. {group: karpenter.k8s.aws, kind: EC2NodeClass, name: default}")
    reqs = settings.get("requirements")
    if reqs is not None:
        if not isinstance(reqs, list):
            raise PrePullInputError(f("requirements"), reqs, "must be a list of {key, operator, values}")
        for i, req in enumerate(reqs):
            if not isinstance(req, Mapping) or not set(req) <= {"key", "operator", "values", "minValues"}:
                raise PrePullInputError(f(f"requirements[{i}]"), req, "must be {key, operator, values[, minValues]}")
            check_qualified_name(req.get("key"), f(f"requirements[{i}].key"))
            if req.get("operator") not in KARPENTER_OPERATORS:
                raise PrePullInputError(f(f"requirements[{i}].operator"), req.get("operator"), f"must be one of {', '.join(KARPENTER_OPERATORS)}")
            values = req.get("values", [])
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise PrePullInputError(f(f"requirements[{i}].values"), values, "must be a list of strings")
            if req["operator"] in ("In", "NotIn", "Gt", "Lt") and not values:
                raise PrePullInputError(f(f"requirements[{i}].values"), values, f"must not be empty with operator {req['operator']}")
    limits = settings.get("limits")
    if limits is not None and (
        not isinstance(limits, Mapping) or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in limits.values())
    ):
        raise PrePullInputError(f("limits"), limits, "must map resource names to quantities, e.g. {cpu: '400', memory: 1600Gi}")
    if settings.get("disruption") is not None and not isinstance(settings["disruption"], Mapping):
        raise PrePullInputError(f("disruption"), settings["disruption"], "must be a mapping (Karpenter's NodePool spec.disruption)")
    weight = settings.get("weight")
    if weight is not None and (isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= 100):
        raise PrePullInputError(f("weight"), weight, "must be a whole number from 1 to 100")


def _field(pool: str, rest: str) -> str:
    return f"nodePools.{pool}.{rest}" if rest else f"nodePools.{pool}"


def _taints(raw: Any, pool: str) -> tuple:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise PrePullInputError(_field(pool, "taints"), raw, "must be a list of {key, value, effect}")
    out = []
    for i, t in enumerate(raw):
        f = _field(pool, f"taints[{i}]")
        if not isinstance(t, Mapping):
            raise PrePullInputError(f, t, "must be a mapping {key, value, effect}")
        for k in t:
            if k not in ("key", "value", "effect"):
                raise PrePullInputError(f"{f}.{k}", t[k], "unknown field; known: key, value, effect")
        taint = {"key": check_qualified_name(t.get("key"), f"{f}.key")}
        if t.get("value"):
            taint["value"] = check_label_value(t["value"], f"{f}.value")
        effects = [e.value for e in TaintEffect]
        if t.get("effect") not in effects:
            raise PrePullInputError(f"{f}.effect", t.get("effect"), f"must be one of {', '.join(repr(e) for e in effects)}")
        taint["effect"] = t["effect"]
        out.append(taint)
    return tuple(out)


def _platforms(raw: Any, pool: str, provider: Provider, settings: Mapping, labels: Mapping) -> tuple:
    """The pool's declared node platforms; they must agree with what its labels or node settings imply."""
    if raw is None:
        return ()
    field = _field(pool, "platforms")
    if not isinstance(raw, list) or not raw:
        raise PrePullInputError(field, raw, "must be a non-empty list of platforms such as 'linux/amd64', or be left out")
    platforms = tuple(sorted({parse_platform(p, f"{field}[{i}]") for i, p in enumerate(raw)}))
    implied = implied_arches(provider.value, settings, labels)
    extra = sorted({p.arch for p in platforms} - set(implied.arches)) if implied else []
    if extra:
        raise PrePullInputError(
            field, raw, f"lists {', '.join(extra)}, but the pool's {implied.source} allows only {', '.join(implied.arches) or 'no architecture'}"
        )
    return platforms


def _merge_images(global_images: tuple, pool_images: Any, pool: str) -> tuple:
    if pool_images is None:
        pool_images = []
    if not isinstance(pool_images, list):
        raise PrePullInputError(_field(pool, "images"), pool_images, "must be a list of image references")
    merged, seen = [], set()
    for i, image in enumerate(list(global_images) + pool_images):
        field = f"images[{i}]" if i < len(global_images) else _field(pool, f"images[{i - len(global_images)}]")
        identity = parse_image(image, field).identity
        if identity not in seen:  # a pool may repeat a global image: pulled once
            seen.add(identity)
            merged.append(image)
    if not merged:
        raise PrePullInputError(_field(pool, "images"), pool_images, "this pool has no images: set prepull:images or the pool's images")
    return tuple(merged)


def _gate_taint(provider: Provider, settings: Mapping, pool: str) -> dict:
    if provider is Provider.KARPENTER:
        return {"key": KARPENTER_GATE_KEY, "effect": GATE_EFFECT}
    if provider is Provider.EXISTING:
        if settings.get("nodesRegisterWithTaint") is not True:
            raise PrePullInputError(
                _field(pool, "startupGate"),
                True,
                "an existing pool's nodes must already register with the startup taint: add "
                f"`--register-with-taints={AUTOSCALER_GATE_KEY}=:{GATE_EFFECT}` to the kubelet (or your node group's "
                "startup taints), then set existing.nodesRegisterWithTaint: true",
            )
        key = settings.get("taintKey", AUTOSCALER_GATE_KEY)
        return {"key": check_qualified_name(key, _field(pool, "existing.taintKey")), "effect": GATE_EFFECT}
    # Cloud pools (docs/providers.md): the kubelet or the cloud registers the taint once, at node
    # creation, and nothing re-adds it after the pre-puller removed it. The value is there because
    # GKE's and AKS's taint formats take one (key=value:effect).
    if provider is Provider.EKS:
        # MNG `taints` are applied by eks:node-manager and race with the pre-puller; the gate is
        # registered by the kubelet itself (nodeadm NodeConfig in a launch template): AL2023 only.
        ami = settings.get("amiType")
        if not (isinstance(ami, str) and ami.startswith("AL2023_")):
            raise PrePullInputError(
                _field(pool, "eks.amiType"),
                ami,
                "startupGate on an eks pool needs an AL2023 AMI type (e.g. AL2023_x86_64_STANDARD): the gate taint is "
                "registered by the kubelet through a nodeadm NodeConfig in the node group's launch template, because "
                "managed-node-group taints are applied after registration and race with the pre-puller; for Bottlerocket "
                "or AL2 nodes use a karpenter pool (startupTaints) instead",
            )
    if provider is Provider.AKS and settings.get("gateApiVersion") is not None:
        version = settings["gateApiVersion"]
        if not (isinstance(version, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}-preview", version)):
            raise PrePullInputError(
                _field(pool, "aks.gateApiVersion"),
                version,
                "must be an AKS preview API version such as '2025-10-02-preview': nodeInitializationTaints exist only in preview API versions",
            )
    return {"key": AUTOSCALER_GATE_KEY, "value": "pulling", "effect": GATE_EFFECT}


def _pool(raw: Any, index: int, global_images: tuple, names: dict) -> Pool:
    if not isinstance(raw, Mapping):
        raise PrePullInputError(f"nodePools[{index}]", raw, "must be a mapping")
    name = raw.get("name")
    if name is None:
        raise PrePullInputError(f"nodePools[{index}].name", None, "is required")
    check_dns_label(name, f"nodePools[{index}].name", max_len=POOL_NAME_MAX)
    if name in names:
        raise PrePullInputError(f"nodePools[{index}].name", name, f"duplicate pool name (also nodePools[{names[name]}])")
    names[name] = index
    for key in raw:
        if key not in POOL_KEYS:
            raise PrePullInputError(_field(name, key), raw[key], f"unknown field; known: {', '.join(POOL_KEYS)}")
    try:
        provider = Provider(raw.get("provider"))
    except ValueError:
        raise PrePullInputError(
            _field(name, "provider"), raw.get("provider"), f"must be one of {', '.join(repr(p.value) for p in Provider)}"
        ) from None
    labels = raw.get("labels")
    if not isinstance(labels, Mapping) or not labels:
        raise PrePullInputError(_field(name, "labels"), labels, "is required: the node labels that select this pool's nodes")
    for k, v in labels.items():
        check_qualified_name(k, _field(name, "labels key"))
        check_label_value(v, _field(name, f"labels[{k!r}]"))
    for other in Provider:
        if other is not provider and raw.get(other.value) is not None:
            raise PrePullInputError(_field(name, other.value), raw[other.value], f"belongs to provider {other.value!r}, not {provider.value!r}")
    settings = raw.get(provider.value) or {}
    if not isinstance(settings, Mapping):
        raise PrePullInputError(_field(name, provider.value), settings, "must be a mapping")
    required, optional = PROVIDER_FIELDS[provider]
    for key in required:
        if settings.get(key) is None:
            raise PrePullInputError(_field(name, f"{provider.value}.{key}"), None, f"is required for provider {provider.value!r}")
    for key in settings:
        if key not in required + optional:
            raise PrePullInputError(
                _field(name, f"{provider.value}.{key}"), settings[key], f"unknown field; known: {', '.join(required + optional)}"
            )
    gate = raw.get("startupGate", False)
    if not isinstance(gate, bool):
        raise PrePullInputError(_field(name, "startupGate"), gate, "must be true or false")
    if provider is Provider.KARPENTER:
        _karpenter(settings, name)
    lanes = raw.get("lanes", 1)
    return Pool(
        name=name,
        provider=provider,
        labels=tuple(sorted(labels.items())),
        taints=_taints(raw.get("taints"), name),
        images=_merge_images(global_images, raw.get("images"), name),
        startup_gate=gate,
        gate_taint=_gate_taint(provider, settings, name) if gate else None,
        settings=dict(settings),
        lanes=lanes,
        prepuller=_prepuller_block(raw.get("prepuller"), name),
        platforms=_platforms(raw.get("platforms"), name, provider, settings, labels),
    )


def load_stack(config: Mapping) -> StackSpec:
    """Validate the decoded ``prepull:*`` stack config (keys without the ``prepull:`` prefix); build every pre-puller once.

    With a lock file, use ``with_prepullers(lock_stack(validate_stack(config), ...))`` instead, so
    that the pre-pullers are built once, from the locked images.
    """
    return with_prepullers(validate_stack(config))


def validate_stack(config: Mapping) -> StackSpec:
    """The stack config validated, its pools' pre-pullers not built yet (see :func:`with_prepullers`)."""
    for key in config:
        if key not in STACK_KEYS:
            raise PrePullInputError(f"prepull:{key}", config[key], f"unknown stack setting; known: {', '.join('prepull:' + k for k in STACK_KEYS)}")
    images = config.get("images") or []
    if not isinstance(images, list):
        raise PrePullInputError("images", images, "must be a list of image references")
    for i, image in enumerate(images):
        parse_image(image, f"images[{i}]")
    namespace = check_dns_label(config.get("namespace") or "prepull", "namespace")
    raw_pools = config.get("nodePools")
    if not isinstance(raw_pools, list) or not raw_pools:
        raise PrePullInputError("nodePools", raw_pools, "must list at least one node pool")
    names: dict = {}
    pools = tuple(_pool(p, i, tuple(images), names) for i, p in enumerate(raw_pools))
    for key in ("kubeconfig", "kubeContext"):
        if config.get(key) is not None and not isinstance(config[key], str):
            raise PrePullInputError(f"prepull:{key}", config[key], "must be a string")
    return StackSpec(namespace, pools, config.get("kubeconfig") or None, config.get("kubeContext") or None)


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
        inside = "prepuller." if camel_case(top) in PREPULLER_KEYS else ""
        raise err.in_camel_case(KNOWN_FIELDS, prefix=f"{_field(pool.name, '')}.{inside}") from None
    return PrePuller(plan, tuple(render(plan)))


def _check_collisions(prepullers: Mapping[str, PrePuller]) -> None:
    """E.g. pool "gpu" with 2 lanes and a pool named "gpu-l1" would share a DaemonSet."""
    owners: dict = {}
    for pool, prepuller in prepullers.items():
        for obj in prepuller.objects:
            key = (obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"])
            if key in owners:
                raise PrePullInputError(
                    _field(pool, "name"), pool, f"its {key[0]} {key[2]!r} has the same name as one of pool {owners[key]!r}: rename a pool"
                )
            owners[key] = pool


def prepuller_args(spec: StackSpec, pool: Pool) -> dict:
    """The ImagePrePullerArgs of a pool: select exactly its nodes, tolerate exactly its taints."""
    tolerations = [
        {"key": t["key"], "operator": "Equal", "value": t["value"], "effect": t["effect"]}
        if "value" in t
        else {"key": t["key"], "operator": "Exists", "effect": t["effect"]}
        for t in pool.taints
    ]
    args: dict = {
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
    if tolerations:
        args["tolerations"] = tolerations
    if pool.gate_taint:
        args["startup_taint"] = dict(pool.gate_taint)
        args["remove_startup_taint"] = True
    return args


def karpenter_node_pool(pool: Pool) -> dict:
    """The Karpenter v1 NodePool of a pool: its labels and taints, and the gate as a startup taint."""
    s = pool.settings
    template_spec: dict = {
        "nodeClassRef": dict(s["nodeClassRef"]),
        "requirements": list(s.get("requirements") or [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]),
    }
    if pool.taints:
        template_spec["taints"] = [dict(t) for t in pool.taints]
    if pool.gate_taint:
        template_spec["startupTaints"] = [dict(pool.gate_taint)]
    spec: dict = {"template": {"metadata": {"labels": dict(pool.labels)}, "spec": template_spec}}
    for key in ("limits", "disruption", "weight"):
        if s.get(key) is not None:
            spec[key] = s[key]
    return {
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodePool",
        "metadata": {"name": pool.name, "labels": {"app.kubernetes.io/managed-by": "prepull"}},
        "spec": spec,
    }


def namespace_for(spec: StackSpec) -> dict:
    """The stack's shared namespace."""
    return namespace_object(spec.namespace, False, {"app.kubernetes.io/name": "prepull", "app.kubernetes.io/managed-by": "prepull"})


def stack_manifests(spec: StackSpec) -> list:
    """Every Kubernetes object the stack declares, in creation order (cloud node pools are not Kubernetes objects)."""
    spec = built(spec)
    objects = [namespace_for(spec)]
    for pool in spec.pools:
        objects.extend(spec.prepullers[pool.name].objects)
        if pool.provider is Provider.KARPENTER:
            objects.append(karpenter_node_pool(pool))
    return objects
