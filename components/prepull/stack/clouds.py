"""Cloud node pools (EKS managed node group, GKE node pool, AKS agent pool), created after their pre-puller.

Each adapter imports its Pulumi SDK lazily, so the package works without the
cloud SDKs; a missing one is a configuration error that names the pip extra
(``prepull[eks]``, ``prepull[gke]``, ``prepull[aks]``).

Every node pool carries the pool's labels and taints. With ``startupGate`` it
also carries the gate taint (``pool.gate_taint``) in the one form each cloud
offers that the pre-puller may remove and that nothing puts back
(docs/providers.md, shared reference k8s_mechanics.md §4):

- EKS: *not* the managed node group's ``taints`` (eks:node-manager applies
  those after registration, racing with the pre-puller), but the kubelet's
  ``--register-with-taints``, set through a nodeadm ``NodeConfig`` (MIME
  multipart user data) in a launch template. AL2023 AMIs only.
- GKE: ``node_config.taints``, which GKE applies when it creates a node.
  Whether GKE re-applies a taint removed from a live node is not verified.
- AKS: ``nodeInitializationTaints`` (removable with kubectl), never
  ``nodeTaints`` (which AKS reconciles). They exist only in preview API
  versions of the AgentPool, so a gated pool is registered at such a version.

Settings are checked here, before anything of the pool is registered by this
module; errors name ``nodePools.<pool>.<provider>.<field>``.
"""

import base64
import importlib
import importlib.metadata
import json
import re
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import pulumi

from prepull.core.checks import Path, check_bool, check_choice, check_int, check_list, check_str
from prepull.errors import PrePullInputError
from prepull.stack.pools import CLOUD_PROVIDERS, Pool, PoolProvider


@dataclass(frozen=True)
class CloudSdk:
    """What ``pip install 'prepull[<extra>]'`` adds for a provider."""

    extra: str
    distribution: str
    module: str
    """The top-level import name."""


SDKS = {
    PoolProvider.EKS: CloudSdk("eks", "pulumi-aws", "pulumi_aws"),
    PoolProvider.GKE: CloudSdk("gke", "pulumi-gcp", "pulumi_gcp"),
    PoolProvider.AKS: CloudSdk("aks", "pulumi-azure-native", "pulumi_azure_native"),
}

# Kubernetes taint effect -> the cloud API's spelling (EKS and GKE share it; AKS uses the Kubernetes one).
CLOUD_EFFECTS = {"NoSchedule": "NO_SCHEDULE", "PreferNoSchedule": "PREFER_NO_SCHEDULE", "NoExecute": "NO_EXECUTE"}

EKS_CAPACITY_TYPES = ("ON_DEMAND", "SPOT", "CAPACITY_BLOCK")
# The root volume of the EKS-optimized AL2023 AMIs (used for diskSize when a launch template carries the gate).
EKS_AL2023_ROOT_DEVICE = "/dev/xvda"
NODEADM_BOUNDARY = "//"

AKS_TYPE = "azure-native:containerservice:AgentPool"
# nodeInitializationTaints is absent from the stable AgentPool API (pulumi-azure-native 3.29.0 defaults to
# 2025-09-01) and present in the preview versions; override with aks.gateApiVersion.
AKS_GATE_API_VERSION = "2025-10-02-preview"
AKS_POOL_NAME = re.compile(r"[a-z][a-z0-9]{0,11}")  # AKS: lowercase alphanumerics, at most 12 (Linux pools)

Taint = Mapping[str, str]


def _sdk(pool: Pool) -> ModuleType:
    """The pool's cloud SDK (top-level module), or a configuration error naming the pip extra."""
    sdk = SDKS[pool.provider]
    try:
        return importlib.import_module(sdk.module)
    except ImportError:
        raise PrePullInputError(
            pool.path.child("provider"), pool.provider.value, f"needs the {sdk.distribution} SDK: pip install 'prepull[{sdk.extra}]'"
        ) from None


# --- settings ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EksSettings:
    """A pool's ``eks`` block, checked. Sizes are node counts; ``disk_size`` is GiB."""

    cluster_name: str
    node_role_arn: str
    subnet_ids: tuple[str, ...]
    instance_types: tuple[str, ...]
    min_size: int
    max_size: int
    desired_size: int
    """Default: min_size."""
    ami_type: Optional[str] = None
    disk_size: Optional[int] = None
    capacity_type: Optional[str] = None


@dataclass(frozen=True)
class GkeSettings:
    """A pool's ``gke`` block, checked. Node counts are per zone, as GKE counts them; ``disk_size_gb`` is GB."""

    cluster: str
    location: str
    machine_type: str
    min_nodes: int
    max_nodes: int
    project: Optional[str] = None
    service_account: Optional[str] = None
    disk_size_gb: Optional[int] = None
    spot: Optional[bool] = None


@dataclass(frozen=True)
class AksSettings:
    """A pool's ``aks`` block, checked."""

    resource_group_name: str
    cluster_name: str
    vm_size: str
    min_count: int
    max_count: int
    agent_pool_name: str
    """Default: the pool's name (which must then be a valid agent pool name)."""
    gate_api_version: str = AKS_GATE_API_VERSION
    os_sku: Optional[str] = None


CloudSettings = Union[EksSettings, GkeSettings, AksSettings]


def _path(pool: Pool, key: str) -> Path:
    return pool.path.child(pool.provider.value).child(key)


def _str(pool: Pool, key: str, default: Optional[str] = None) -> str:
    return check_str(pool.settings.get(key, default), _path(pool, key))


def _opt_str(pool: Pool, key: str) -> Optional[str]:
    return None if pool.settings.get(key) is None else _str(pool, key)


def _int(pool: Pool, key: str, minimum: int, default: Optional[int] = None) -> int:
    return check_int(pool.settings.get(key, default), _path(pool, key), minimum)


def _opt_int(pool: Pool, key: str, minimum: int) -> Optional[int]:
    return None if pool.settings.get(key) is None else _int(pool, key, minimum)


def _opt_bool(pool: Pool, key: str) -> Optional[bool]:
    value = pool.settings.get(key)
    return None if value is None else check_bool(value, _path(pool, key))


def _strings(pool: Pool, key: str) -> tuple[str, ...]:
    path = _path(pool, key)
    return tuple(check_str(v, path.at(i)) for i, v in enumerate(check_list(pool.settings.get(key), path, "strings", non_empty=True)))


def _sizes(pool: Pool, low: str, high: str) -> tuple[int, int]:
    lo, hi = _int(pool, low, 0), _int(pool, high, 1)
    if lo > hi:
        raise PrePullInputError(_path(pool, low), lo, f"must not exceed {high} ({hi})")
    return lo, hi


def eks_settings(pool: Pool) -> EksSettings:
    """The pool's ``eks`` block, checked in the order of its keys; errors name ``nodePools.<pool>.eks.<key>``."""
    cluster, role = _str(pool, "clusterName"), _str(pool, "nodeRoleArn")
    subnets, instance_types = _strings(pool, "subnetIds"), _strings(pool, "instanceTypes")
    low, high = _sizes(pool, "minSize", "maxSize")
    desired = _int(pool, "desiredSize", 0, default=low)
    if not low <= desired <= high:
        raise PrePullInputError(_path(pool, "desiredSize"), desired, f"must lie between minSize ({low}) and maxSize ({high})")
    ami, disk, capacity = _opt_str(pool, "amiType"), _opt_int(pool, "diskSize", 1), _opt_str(pool, "capacityType")
    if capacity is not None:
        check_choice(capacity, EKS_CAPACITY_TYPES, _path(pool, "capacityType"))
    return EksSettings(
        cluster_name=cluster,
        node_role_arn=role,
        subnet_ids=subnets,
        instance_types=instance_types,
        min_size=low,
        max_size=high,
        desired_size=desired,
        ami_type=ami,
        disk_size=disk,
        capacity_type=capacity,
    )


def gke_settings(pool: Pool) -> GkeSettings:
    """The pool's ``gke`` block, checked in the order of its keys; errors name ``nodePools.<pool>.gke.<key>``."""
    cluster, location, machine = _str(pool, "cluster"), _str(pool, "location"), _str(pool, "machineType")
    low, high = _sizes(pool, "minNodes", "maxNodes")
    project, account = _opt_str(pool, "project"), _opt_str(pool, "serviceAccount")
    disk, spot = _opt_int(pool, "diskSizeGb", 10), _opt_bool(pool, "spot")
    return GkeSettings(
        cluster=cluster,
        location=location,
        machine_type=machine,
        min_nodes=low,
        max_nodes=high,
        project=project,
        service_account=account,
        disk_size_gb=disk,
        spot=spot,
    )


def aks_settings(pool: Pool) -> AksSettings:
    """The pool's ``aks`` block, checked in the order of its keys; errors name ``nodePools.<pool>.aks.<key>``."""
    group, cluster, size = _str(pool, "resourceGroupName"), _str(pool, "clusterName"), _str(pool, "vmSize")
    low, high = _sizes(pool, "minCount", "maxCount")
    os_sku = _opt_str(pool, "osSku")
    name = _str(pool, "agentPoolName", default=pool.name)
    if not AKS_POOL_NAME.fullmatch(name):
        raise PrePullInputError(
            _path(pool, "agentPoolName"),
            name,
            "AKS agent pool names are 1-12 lowercase letters and digits, starting with a letter: set aks.agentPoolName",
        )
    return AksSettings(
        resource_group_name=group,
        cluster_name=cluster,
        vm_size=size,
        min_count=low,
        max_count=high,
        agent_pool_name=name,
        gate_api_version=_str(pool, "gateApiVersion", default=AKS_GATE_API_VERSION),
        os_sku=os_sku,
    )


def _taints(pool: Pool) -> list[dict[str, str]]:
    """The pool's taints, then the gate taint when the gate is on (Kubernetes spelling)."""
    return [dict(t) for t in pool.taints] + ([dict(pool.gate_taint)] if pool.gate_taint else [])


def kubectl_taint(taint: Taint) -> str:
    """``key=value:Effect`` (``key:Effect`` without a value): the kubelet's and AKS's taint syntax."""
    head = f"{taint['key']}={taint['value']}" if taint.get("value") else taint["key"]
    return f"{head}:{taint['effect']}"


def _opts(depends_on: Sequence[pulumi.Resource], provider_opts: Optional[pulumi.ResourceOptions], **extra: Any) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions.merge(
        provider_opts or pulumi.ResourceOptions(), pulumi.ResourceOptions(depends_on=list(depends_on), **extra)
    )


# --- EKS ------------------------------------------------------------------------------------------------------


def nodeadm_user_data(taints: Sequence[Taint]) -> str:
    """MIME multipart user data with a nodeadm NodeConfig that makes the kubelet register with ``taints``.

    EKS merges it with its own NodeConfig; nodeadm appends kubelet flags in document
    order and the last ``--register-with-taints`` wins, so the flag lists every taint
    of the pool (the node group's own taints too), not just the gate.
    """
    flag = "--register-with-taints=" + ",".join(kubectl_taint(t) for t in taints)
    return "\n".join(
        [
            "MIME-Version: 1.0",
            f'Content-Type: multipart/mixed; boundary="{NODEADM_BOUNDARY}"',
            "",
            f"--{NODEADM_BOUNDARY}",
            "Content-Type: application/node.eks.aws",
            "",
            "---",
            "apiVersion: node.eks.aws/v1alpha1",
            "kind: NodeConfig",
            "spec:",
            "  kubelet:",
            "    flags:",
            f"      - {json.dumps(flag)}",
            "",
            f"--{NODEADM_BOUNDARY}--",
            "",
        ]
    )


def _eks_launch_template(pool: Pool, gate: Taint, settings: EksSettings, ec2: ModuleType, opts: pulumi.ResourceOptions) -> Any:
    """The launch template whose nodeadm user data makes the kubelet register with the gate (and the pool's taints)."""
    template: dict[str, Any] = {
        "name_prefix": f"prepull-{pool.name}-",
        "description": f"prepull pool {pool.name}: the kubelet registers with the startup taint {gate['key']}",
        "user_data": base64.b64encode(nodeadm_user_data(_taints(pool)).encode()).decode(),
        "update_default_version": True,
    }
    if settings.disk_size:  # a node group with a launch template must not set disk_size: the volume goes in the template
        template["block_device_mappings"] = [
            ec2.LaunchTemplateBlockDeviceMappingArgs(
                device_name=EKS_AL2023_ROOT_DEVICE,
                ebs=ec2.LaunchTemplateBlockDeviceMappingEbsArgs(volume_size=settings.disk_size, volume_type="gp3"),
            )
        ]
    return ec2.LaunchTemplate(f"{pool.resource_name}-launch-template", **template, opts=opts)


def eks_node_group(
    pool: Pool, depends_on: Sequence[pulumi.Resource], provider_opts: Optional[pulumi.ResourceOptions] = None
) -> pulumi.Resource:
    """An EKS managed node group (``aws.eks.NodeGroup``); with the gate, plus a launch template that registers the taint."""
    s = eks_settings(pool)
    aws = _sdk(pool)
    eks, ec2 = importlib.import_module(f"{aws.__name__}.eks"), importlib.import_module(f"{aws.__name__}.ec2")

    args: dict[str, Any] = {
        "cluster_name": s.cluster_name,
        "node_group_name": pool.name,
        "node_role_arn": s.node_role_arn,
        "subnet_ids": list(s.subnet_ids),
        "instance_types": list(s.instance_types),
        "scaling_config": eks.NodeGroupScalingConfigArgs(min_size=s.min_size, max_size=s.max_size, desired_size=s.desired_size),
        "labels": dict(pool.labels),
        # The pool's own taints stay on the node group: cluster-autoscaler and eks:node-manager read them there.
        # The gate taint never goes there (node-manager would apply it after registration, racing the pre-puller).
        "taints": [eks.NodeGroupTaintArgs(key=t["key"], value=t.get("value"), effect=CLOUD_EFFECTS[t["effect"]]) for t in pool.taints]
        or None,
    }
    if s.ami_type:
        args["ami_type"] = s.ami_type
    if s.capacity_type:
        args["capacity_type"] = s.capacity_type
    if pool.gate_taint:
        launch_template = _eks_launch_template(pool, pool.gate_taint, s, ec2, _opts(depends_on, provider_opts))
        args["launch_template"] = eks.NodeGroupLaunchTemplateArgs(id=launch_template.id, version=launch_template.latest_version.apply(str))
    elif s.disk_size:
        args["disk_size"] = s.disk_size
    # cluster-autoscaler owns the desired size once the group exists.
    node_group: pulumi.Resource = eks.NodeGroup(
        pool.resource_name, **args, opts=_opts(depends_on, provider_opts, ignore_changes=["scalingConfig.desiredSize"])
    )
    return node_group


# --- GKE ------------------------------------------------------------------------------------------------------


def gke_node_pool(
    pool: Pool, depends_on: Sequence[pulumi.Resource], provider_opts: Optional[pulumi.ResourceOptions] = None
) -> pulumi.Resource:
    """A GKE node pool (``gcp.container.NodePool``) with labels and taints (the gate included) in ``node_config``."""
    s = gke_settings(pool)
    container = importlib.import_module(f"{_sdk(pool).__name__}.container")

    node_config: dict[str, Any] = {
        "machine_type": s.machine_type,
        "labels": dict(pool.labels),
        # GKE's NodeTaint takes a value (empty for a key-only taint).
        "taints": [
            container.NodePoolNodeConfigTaintArgs(key=t["key"], value=t.get("value", ""), effect=CLOUD_EFFECTS[t["effect"]])
            for t in _taints(pool)
        ]
        or None,
    }
    if s.disk_size_gb:
        node_config["disk_size_gb"] = s.disk_size_gb
    if s.spot is not None:
        node_config["spot"] = s.spot
    if s.service_account:
        node_config["service_account"] = s.service_account
    args: dict[str, Any] = {
        "name": pool.name,
        "cluster": s.cluster,
        "location": s.location,
        "initial_node_count": s.min_nodes,
        # Per zone of the pool, as GKE counts them.
        "autoscaling": container.NodePoolAutoscalingArgs(min_node_count=s.min_nodes, max_node_count=s.max_nodes),
        "node_config": container.NodePoolNodeConfigArgs(**node_config),
    }
    if s.project:
        args["project"] = s.project
    # The autoscaler changes the size; initial_node_count would otherwise force a replacement.
    node_pool: pulumi.Resource = container.NodePool(
        pool.resource_name, **args, opts=_opts(depends_on, provider_opts, ignore_changes=["initialNodeCount"])
    )
    return node_pool


# --- AKS ------------------------------------------------------------------------------------------------------


def aks_gate_type(api_version: str) -> str:
    """The type token of the AgentPool at an explicit API version (``2025-10-02-preview`` -> ``.../v20251002preview:AgentPool``)."""
    return f"azure-native:containerservice/v{api_version.replace('-', '')}:AgentPool"


def aks_agent_pool(
    pool: Pool, depends_on: Sequence[pulumi.Resource], provider_opts: Optional[pulumi.ResourceOptions] = None
) -> pulumi.Resource:
    """An AKS agent pool: node labels and taints; with the gate, the gate as a node *initialization* taint."""
    s = aks_settings(pool)
    sdk = _sdk(pool)

    props: dict[str, Any] = {
        "resourceGroupName": s.resource_group_name,
        "resourceName": s.cluster_name,
        "agentPoolName": s.agent_pool_name,
        "vmSize": s.vm_size,
        "count": s.min_count,
        "enableAutoScaling": True,
        "minCount": s.min_count,
        "maxCount": s.max_count,
        "mode": "User",
        "osType": "Linux",
        "type": "VirtualMachineScaleSets",
        "nodeLabels": dict(pool.labels),
    }
    if pool.taints:  # node taints are reconciled by AKS: only the pool's own, permanent taints go there
        props["nodeTaints"] = [kubectl_taint(t) for t in pool.taints]
    if s.os_sku:
        props["osSKU"] = s.os_sku
    # The autoscaler owns the node count.
    opts = _opts(depends_on, provider_opts, ignore_changes=["count"])
    if not pool.gate_taint:
        containerservice = importlib.import_module(f"{sdk.__name__}.containerservice")
        agent_pool: pulumi.Resource = containerservice.AgentPool(
            pool.resource_name, **{_AKS_ARGUMENTS[k]: v for k, v in props.items()}, opts=opts
        )
        return agent_pool
    # nodeInitializationTaints exist only in preview API versions, which pulumi-azure-native 3.x reaches through
    # their explicit type tokens (same provider plugin). The alias keeps switching the gate on or off an update.
    props["nodeInitializationTaints"] = [kubectl_taint(pool.gate_taint)]
    opts = pulumi.ResourceOptions.merge(
        opts, pulumi.ResourceOptions(version=importlib.metadata.version("pulumi-azure-native"), aliases=[pulumi.Alias(type_=AKS_TYPE)])
    )
    return pulumi.CustomResource(aks_gate_type(s.gate_api_version), pool.resource_name, props, opts)


# The AgentPool properties set above: the API's names (sent as they are at a preview type token) and the typed
# class's Python argument names. pulumi-azure-native's code generator chooses those (`resource_name_` beside
# Pulumi's own resource_name, `os_sku` for osSKU): a cloud SDK's names, not our inputs, so not checks.PYTHON_NAMES.
_AKS_ARGUMENTS = {
    "resourceGroupName": "resource_group_name",
    "resourceName": "resource_name_",
    "agentPoolName": "agent_pool_name",
    "vmSize": "vm_size",
    "count": "count",
    "enableAutoScaling": "enable_auto_scaling",
    "minCount": "min_count",
    "maxCount": "max_count",
    "mode": "mode",
    "osType": "os_type",
    "type": "type",
    "nodeLabels": "node_labels",
    "nodeTaints": "node_taints",
    "osSKU": "os_sku",
}


# --- dispatch -------------------------------------------------------------------------------------------------

Adapter = Callable[[Pool, Sequence[pulumi.Resource], Optional[pulumi.ResourceOptions]], pulumi.Resource]
ADAPTERS: Mapping[PoolProvider, Adapter] = {
    PoolProvider.EKS: eks_node_group,
    PoolProvider.GKE: gke_node_pool,
    PoolProvider.AKS: aks_agent_pool,
}
SETTINGS: Mapping[PoolProvider, Callable[[Pool], CloudSettings]] = {
    PoolProvider.EKS: eks_settings,
    PoolProvider.GKE: gke_settings,
    PoolProvider.AKS: aks_settings,
}
assert set(ADAPTERS) == set(SETTINGS) == set(CLOUD_PROVIDERS)


def validate_node_pool(pool: Pool) -> CloudSettings:
    """Check a cloud pool's settings (types, ranges, names) and that its SDK is installed, registering nothing; the settings."""
    settings = SETTINGS[pool.provider](pool)
    _sdk(pool)
    return settings


def create_node_pool(
    pool: Pool, depends_on: Sequence[pulumi.Resource], provider_opts: Optional[pulumi.ResourceOptions] = None
) -> pulumi.Resource:
    """Create the cloud node pool of ``pool`` (eks, gke or aks), depending on ``depends_on`` (its pre-puller)."""
    adapter = ADAPTERS.get(pool.provider)
    if adapter is None:
        raise PrePullInputError(pool.path.child("provider"), pool.provider.value, "is not a cloud provider (eks, gke, aks)")
    return adapter(pool, depends_on, provider_opts)
