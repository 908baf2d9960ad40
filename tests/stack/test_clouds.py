"""Cloud node pools (EKS managed node group, GKE node pool, AKS agent pool) under Pulumi mocks.

__main__.py runs with configuration built here. Per cloud pool: exactly one node pool
of the cloud's type, registered after and depending on that pool's pre-puller
DaemonSets, with the pool's labels and taints in the cloud's spelling and, with
startupGate, the gate taint in the form the pre-puller may remove (EKS: kubelet
--register-with-taints via a nodeadm launch template; GKE: node_config taints;
AKS: nodeInitializationTaints). Bad or missing settings name the field, and a
missing SDK names the pip extra.
"""

import base64
import email
import importlib.metadata
import json
import runpy
import sys
from pathlib import Path

from golden import regen
import pytest
from stack_helpers import run_main_expecting_error
import yaml

from prepull import PrePullInputError
from prepull.stack.pools import AUTOSCALER_GATE_KEY, PROVIDER_FIELDS, PoolProvider

ROOT = Path(__file__).resolve().parents[2]
NODE_POOL_TYPES = {
    "eks": "aws:eks/nodeGroup:NodeGroup",
    "gke": "gcp:container/nodePool:NodePool",
    "aks": "azure-native:containerservice:AgentPool",
}
AKS_PREVIEW_TYPE = "azure-native:containerservice/v20251002preview:AgentPool"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
CLOUD_TYPES = set(NODE_POOL_TYPES.values()) | {AKS_PREVIEW_TYPE, LAUNCH_TEMPLATE}
GATE = {"key": AUTOSCALER_GATE_KEY, "value": "pulling", "effect": "NoSchedule"}

SETTINGS = {
    "eks": regen.EKS_SETTINGS,  # the golden EKS scenarios' node group: one definition for both
    "gke": {"cluster": "prod", "location": "europe-west4", "machineType": "g2-standard-8", "minNodes": 0, "maxNodes": 4, "diskSizeGb": 200},
    "aks": {"resourceGroupName": "rg-prod", "clusterName": "prod", "vmSize": "Standard_NC8as_T4_v3", "minCount": 0, "maxCount": 4},
}
TAINTS = [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}, {"key": "dedicated", "effect": "NoExecute"}]
LABELS = {"prepull.dev/pool": "gpu", "team": "ml"}


def cloud_pool(provider: str, name: str = "gpu", gate: bool = False, **settings) -> dict:
    pool = {
        "name": name,
        "provider": provider,
        "labels": dict(LABELS),
        "taints": [dict(t) for t in TAINTS],
        provider: {**SETTINGS[provider], **settings},
    }
    if gate:
        pool["startupGate"] = True
    return pool


def config(pools, images=("nginx:1.27",)) -> dict:
    return {"prepull:images": json.dumps(list(images)), "prepull:nodePools": json.dumps(pools)}


def run_main(run_program, pools):
    return run_program(lambda: runpy.run_path(str(ROOT / "__main__.py")), config=config(pools))


def run_expecting_error(run_program, pools) -> tuple:
    return run_main_expecting_error(run_program, config(pools))


def node_pools(run) -> list:
    return [r for r in run.requests if r.type in NODE_POOL_TYPES.values() or r.type == AKS_PREVIEW_TYPE]


def daemon_set_urns(run, pool: str) -> set:
    return {u for u in run.monitor.resources if "DaemonSet::" in u and u.split("::")[-1].startswith(f"pool-{pool}-ds")}


def nodeadm_flags(user_data_b64: str) -> list:
    """The kubelet flags of the nodeadm NodeConfig parts in MIME multipart user data."""
    message = email.message_from_string(base64.b64decode(user_data_b64).decode())
    assert message.is_multipart()
    flags = []
    for part in message.get_payload():
        if part.get_content_type() == "application/node.eks.aws":
            doc = yaml.safe_load(part.get_payload())
            assert (doc["apiVersion"], doc["kind"]) == ("node.eks.aws/v1alpha1", "NodeConfig")
            flags += doc["spec"]["kubelet"]["flags"]
    return flags


# --- one node pool per cloud pool, after its pre-puller ------------------------------------------------------------


@pytest.mark.parametrize("provider", sorted(NODE_POOL_TYPES))
@pytest.mark.parametrize("gate", [False, True], ids=["no-gate", "gate"])
def test_one_node_pool_after_its_prepuller(run_program, provider, gate):
    other = {"name": "web", "provider": "existing", "labels": {"pool": "web"}}
    run = run_main(run_program, [other, cloud_pool(provider, gate=gate)])
    (request,) = node_pools(run)
    expected_type = AKS_PREVIEW_TYPE if (provider == "aks" and gate) else NODE_POOL_TYPES[provider]
    assert (request.type, request.name) == (expected_type, "nodepool-gpu")
    # depends_on the component expands to its children: every DaemonSet of this pool, none of another pool's.
    mine, others = daemon_set_urns(run, "gpu"), daemon_set_urns(run, "web")
    assert mine and mine <= set(request.dependencies)
    assert not others & set(request.dependencies)
    names = [r.name for r in run.requests]
    assert names.index("pool-gpu") < names.index("nodepool-gpu")


def test_eks_node_group_carries_labels_and_mapped_taints(run_program):
    run = run_main(run_program, [cloud_pool("eks")])
    (request,) = node_pools(run)
    state = run.state(request)
    assert state["labels"] == LABELS
    assert state["taints"] == [
        {"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"},
        {"key": "dedicated", "effect": "NO_EXECUTE"},
    ]
    assert (state["clusterName"], state["nodeGroupName"], state["nodeRoleArn"]) == ("prod", "gpu", SETTINGS["eks"]["nodeRoleArn"])
    assert state["subnetIds"] == ["subnet-a", "subnet-b"] and state["instanceTypes"] == ["g6.xlarge"]
    assert state["scalingConfig"] == {"minSize": 0, "maxSize": 4, "desiredSize": 0}
    assert state["diskSize"] == 200 and state["amiType"] == "AL2023_x86_64_NVIDIA"
    assert "launchTemplate" not in state and run.of_type(LAUNCH_TEMPLATE) == []
    # cluster-autoscaler owns the desired size.
    assert list(request.ignoreChanges) == ["scalingConfig.desiredSize"]


def test_eks_gate_is_registered_by_the_kubelet_not_by_the_node_group(run_program):
    run = run_main(run_program, [cloud_pool("eks", gate=True)])
    (request,) = node_pools(run)
    state = run.state(request)
    # The node group keeps only the pool's own taints: eks:node-manager applies those after registration.
    assert [t["key"] for t in state["taints"]] == ["nvidia.com/gpu", "dedicated"]
    assert AUTOSCALER_GATE_KEY not in json.dumps(state)
    # The launch template's nodeadm NodeConfig makes the kubelet register with every taint of the pool and the gate.
    (template,) = run.of_type(LAUNCH_TEMPLATE)
    lt = run.state(template)
    assert state["launchTemplate"]["id"] == f"{template.name}-id"
    assert "diskSize" not in state  # with a launch template the disk is the template's
    assert lt["blockDeviceMappings"] == [{"deviceName": "/dev/xvda", "ebs": {"volumeSize": 200, "volumeType": "gp3"}}]
    assert nodeadm_flags(lt["userData"]) == [
        f"--register-with-taints=nvidia.com/gpu=present:NoSchedule,dedicated:NoExecute,{AUTOSCALER_GATE_KEY}=pulling:NoSchedule"
    ]
    # The template too is declared after the pre-puller.
    assert daemon_set_urns(run, "gpu") <= set(template.dependencies)


@pytest.mark.parametrize("scenario", sorted(regen.EKS_SCENARIOS))
def test_eks_launch_template_user_data_is_the_golden_file(run_program, scenario):
    # Through the registration path: the launch template receives exactly tests/golden/eks/<scenario>.user-data.
    run = run_program(lambda: runpy.run_path(str(ROOT / "__main__.py")), config=config([regen.EKS_SCENARIOS[scenario]], regen.EKS_IMAGES))
    (template,) = run.of_type(LAUNCH_TEMPLATE)
    regen.assert_matches(f"eks/{scenario}.user-data", base64.b64decode(run.state(template)["userData"]).decode())


def test_gke_node_pool_carries_labels_taints_and_the_gate(run_program):
    run = run_main(run_program, [cloud_pool("gke", gate=True)])
    (request,) = node_pools(run)
    state = run.state(request)
    assert (state["name"], state["cluster"], state["location"]) == ("gpu", "prod", "europe-west4")
    assert state["autoscaling"] == {"minNodeCount": 0, "maxNodeCount": 4}
    node_config = state["nodeConfig"]
    assert node_config["labels"] == LABELS
    assert node_config["machineType"] == "g2-standard-8" and node_config["diskSizeGb"] == 200
    assert node_config["taints"] == [
        {"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"},
        {"key": "dedicated", "value": "", "effect": "NO_EXECUTE"},
        {"key": AUTOSCALER_GATE_KEY, "value": "pulling", "effect": "NO_SCHEDULE"},
    ]
    assert list(request.ignoreChanges) == ["initialNodeCount"]


def test_gke_without_gate_has_only_the_pool_taints(run_program):
    run = run_main(run_program, [cloud_pool("gke")])
    (request,) = node_pools(run)
    assert [t["key"] for t in run.state(request)["nodeConfig"]["taints"]] == ["nvidia.com/gpu", "dedicated"]


def test_aks_agent_pool_carries_labels_and_node_taints(run_program):
    run = run_main(run_program, [cloud_pool("aks", agentPoolName="gpu", osSku="AzureLinux")])
    (request,) = node_pools(run)
    state = run.state(request)
    assert state["nodeLabels"] == LABELS
    assert state["nodeTaints"] == ["nvidia.com/gpu=present:NoSchedule", "dedicated:NoExecute"]
    assert "nodeInitializationTaints" not in state
    assert (state["resourceGroupName"], state["resourceName"], state["agentPoolName"]) == ("rg-prod", "prod", "gpu")
    assert (state["minCount"], state["maxCount"], state["enableAutoScaling"], state["osSKU"]) == (0, 4, True, "AzureLinux")
    assert list(request.ignoreChanges) == ["count"]


def test_aks_gate_is_a_node_initialization_taint_at_a_preview_api_version(run_program):
    run = run_main(run_program, [cloud_pool("aks", gate=True)])
    (request,) = node_pools(run)
    state = run.state(request)
    # Removable with kubectl: an initialization taint, never a (reconciled) node taint.
    assert state["nodeInitializationTaints"] == [f"{AUTOSCALER_GATE_KEY}=pulling:NoSchedule"]
    assert state["nodeTaints"] == ["nvidia.com/gpu=present:NoSchedule", "dedicated:NoExecute"]
    assert state["nodeLabels"] == LABELS
    # Same provider plugin as the typed SDK, and an alias so that toggling the gate updates the pool in place.
    assert request.version == importlib.metadata.version("pulumi-azure-native")
    assert [a.spec.type for a in request.aliases] == [NODE_POOL_TYPES["aks"]]


def test_aks_gate_api_version_can_be_chosen(run_program):
    run = run_main(run_program, [cloud_pool("aks", gate=True, gateApiVersion="2026-01-02-preview")])
    assert [r.type for r in run.requests if r.name == "nodepool-gpu"] == ["azure-native:containerservice/v20260102preview:AgentPool"]
    assert node_pools(run) == []  # not the default preview version, nor the stable one


@pytest.mark.parametrize("provider", sorted(NODE_POOL_TYPES))
def test_prepuller_tolerates_the_cloud_gate(run_program, provider):
    run = run_main(run_program, [cloud_pool(provider, gate=True)])
    ds_urns = daemon_set_urns(run, "gpu")
    daemon_sets = [r for r in run.requests if r.type.endswith(":DaemonSet") and any(u.endswith(f"::{r.name}") for u in ds_urns)]
    assert daemon_sets
    for ds in daemon_sets:
        spec = run.state(ds)["spec"]["template"]["spec"]
        assert {"key": AUTOSCALER_GATE_KEY, "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
        assert spec["initContainers"][-1]["name"] == "untaint"
        assert f"{AUTOSCALER_GATE_KEY}:NoSchedule-" in " ".join(spec["initContainers"][-1]["command"])


# --- bad configuration ---------------------------------------------------------------------------------------


REQUIRED = [(p.value, key) for p in (PoolProvider.EKS, PoolProvider.GKE, PoolProvider.AKS) for key in PROVIDER_FIELDS[p].required]


@pytest.mark.parametrize("provider, key", REQUIRED, ids=[f"{p}-{k}" for p, k in REQUIRED])
def test_missing_provider_field_is_named_and_nothing_registers(run_program, provider, key):
    pool = cloud_pool(provider)
    del pool[provider][key]
    err, run = run_expecting_error(run_program, [pool])
    assert (err.field, err.value) == (f"nodePools.gpu.{provider}.{key}", None)
    assert [r.type for r in run.requests if r.type != "pulumi:pulumi:Stack"] == []


BAD_SETTINGS = [
    ("eks", {"subnetIds": "subnet-a"}, "eks.subnetIds"),
    ("eks", {"minSize": 5}, "eks.minSize"),
    ("eks", {"desiredSize": 9}, "eks.desiredSize"),
    ("eks", {"capacityType": "cheap"}, "eks.capacityType"),
    ("gke", {"maxNodes": "four"}, "gke.maxNodes"),
    ("gke", {"spot": "yes"}, "gke.spot"),
    ("aks", {"vmSize": ""}, "aks.vmSize"),
    ("aks", {"agentPoolName": "gpu-pool"}, "aks.agentPoolName"),
]


@pytest.mark.parametrize("provider, settings, field", BAD_SETTINGS, ids=[f"{p}-{f.split('.')[1]}" for p, _, f in BAD_SETTINGS])
def test_bad_provider_setting_is_named_and_nothing_registers(run_program, provider, settings, field):
    err, run = run_expecting_error(run_program, [cloud_pool(provider, **settings)])
    assert err.field == f"nodePools.gpu.{field}"
    # Checked before anything is registered: no provider, no pre-puller, no node pool.
    assert [r.type for r in run.requests if r.type != "pulumi:pulumi:Stack"] == []


def test_aks_pool_name_that_aks_rejects_asks_for_agent_pool_name(run_program):
    err, _ = run_expecting_error(run_program, [cloud_pool("aks", name="gpu-a100")])
    assert (err.field, err.value) == ("nodePools.gpu-a100.aks.agentPoolName", "gpu-a100")
    assert "aks.agentPoolName" in err.reason


@pytest.mark.parametrize("ami", [None, "BOTTLEROCKET_x86_64", "AL2_x86_64"])
def test_eks_gate_needs_an_al2023_ami_and_says_what_else_to_use(run_program, ami):
    pool = cloud_pool("eks", gate=True)
    if ami is None:
        del pool["eks"]["amiType"]
    else:
        pool["eks"]["amiType"] = ami
    err, run = run_expecting_error(run_program, [pool])
    assert (err.field, err.value) == ("nodePools.gpu.eks.amiType", ami)
    assert "AL2023" in err.reason and "karpenter" in err.reason and "race" in err.reason
    assert [r.type for r in run.requests if r.type != "pulumi:pulumi:Stack"] == []


def test_aks_gate_api_version_must_be_a_preview_version(run_program):
    err, run = run_expecting_error(run_program, [cloud_pool("aks", gate=True, gateApiVersion="2025-09-01")])
    assert (err.field, err.value) == ("nodePools.gpu.aks.gateApiVersion", "2025-09-01")
    assert [r.type for r in run.requests if r.type != "pulumi:pulumi:Stack"] == []


def test_create_node_pool_refuses_a_pool_no_cloud_manages():
    # docs/providers.md tells programs to call create_node_pool themselves: given a non-cloud pool, the error
    # names the field instead of failing on a missing adapter.
    from prepull.stack import clouds
    from prepull.stack.pools import load_stack

    (pool,) = load_stack(
        {"images": ["nginx:1.27"], "nodePools": [{"name": "web", "provider": "existing", "labels": {"pool": "web"}}]}
    ).pools
    with pytest.raises(PrePullInputError) as exc:
        clouds.create_node_pool(pool, depends_on=[])
    assert str(exc.value) == "nodePools.web.provider: is not a cloud provider (eks, gke, aks) (got 'existing')"


@pytest.mark.parametrize(
    "provider, module, extra", [("eks", "pulumi_aws", "eks"), ("gke", "pulumi_gcp", "gke"), ("aks", "pulumi_azure_native", "aks")]
)
def test_missing_sdk_names_the_pip_extra(run_program, monkeypatch, provider, module, extra):
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now raises ImportError
    err, run = run_expecting_error(run_program, [cloud_pool(provider, gate=True)])
    assert (err.field, err.value) == ("nodePools.gpu.provider", provider)
    assert f"pip install 'prepull[{extra}]'" in str(err)
    assert [r.type for r in run.requests if r.type != "pulumi:pulumi:Stack"] == []


def test_aks_argument_names_are_the_typed_agent_pools():
    """The table from API names to pulumi-azure-native's Python argument names matches the installed SDK."""
    import inspect

    from prepull.stack import clouds

    containerservice = importlib.import_module("pulumi_azure_native.containerservice")
    parameters = set(inspect.signature(containerservice.AgentPool._internal_init).parameters)
    assert set(clouds._AKS_ARGUMENTS.values()) <= parameters


def test_cloud_settings_are_frozen_dataclasses_with_their_defaults():
    import dataclasses

    from prepull.stack import clouds
    from prepull.stack.pools import validate_stack

    pools = [cloud_pool("eks", name="e", minSize=1.0), cloud_pool("gke", name="g"), cloud_pool("aks", name="a")]
    eks, gke, aks = (clouds.validate_node_pool(p) for p in validate_stack({"images": ["nginx:1"], "nodePools": pools}).pools)
    # An integral float (a JSON number from another language) is checked into an int.
    assert (eks.min_size, type(eks.min_size), eks.desired_size) == (1, int, 1)
    assert eks.subnet_ids == tuple(SETTINGS["eks"]["subnetIds"])
    assert (gke.machine_type, gke.disk_size_gb, gke.spot) == ("g2-standard-8", 200, None)
    assert (aks.agent_pool_name, aks.gate_api_version, aks.os_sku) == ("a", clouds.AKS_GATE_API_VERSION, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        aks.vm_size = "Standard_D2s_v5"
