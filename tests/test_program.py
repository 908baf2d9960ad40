"""The stack program (__main__.py) under Pulumi mocks, for every stack file and for
configurations built here: per pool one pre-puller that selects exactly the pool's
nodes and tolerates exactly its taints, node pools after their pre-puller, the gate
only where it is on, and bad configuration rejected before anything registers."""

import json
import runpy
from pathlib import Path

import pytest
from stack_helpers import run_main_expecting_error
import yaml

from prepull import PrePullInputError
from prepull.core.images import parse_image
from prepull.stack.pools import AUTOSCALER_GATE_KEY, KARPENTER_GATE_KEY

ROOT = Path(__file__).resolve().parent.parent
STACK_FILES = sorted((ROOT / "stacks").glob("Pulumi.*.yaml"))
GATE_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")


def stack_config(path: Path) -> dict:
    """A stack file's prepull:* values, as `pulumi config` hands them to the program (JSON for objects)."""
    raw = yaml.safe_load(path.read_text())["config"]
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()}


def run_main(run_program, config: dict):
    return run_program(lambda: runpy.run_path(str(ROOT / "__main__.py")), config={k: v for k, v in config.items()})


def children_of(run, parent_name: str, kind: str) -> list:
    parent = next(r for r in run.requests if r.name == parent_name and r.type == "prepull:index:ImagePrePuller")
    urn = next(u for u in run.monitor.resources if u.endswith(f"::{parent_name}") and "ImagePrePuller" in u)
    return [r for r in run.requests if r.parent == urn and r.type.endswith(f":{kind}")] if parent else []


def pools_of(config: dict) -> list:
    return json.loads(config["prepull:nodePools"])


def test_there_are_dev_and_prod_stacks():
    assert {p.name for p in STACK_FILES} >= {"Pulumi.dev.yaml", "Pulumi.prod.yaml"}


@pytest.mark.parametrize("path", STACK_FILES, ids=[p.stem.split(".", 1)[1] for p in STACK_FILES])
def test_every_stack_file_deploys_one_prepuller_per_pool(run_program, path):
    config = stack_config(path)
    run = run_main(run_program, config)
    global_images = json.loads(config.get("prepull:images", "[]"))
    pools = pools_of(config)
    prepullers = run.of_type("prepull:index:ImagePrePuller")
    assert sorted(r.name for r in prepullers) == sorted(f"pool-{p['name']}" for p in pools)

    for pool in pools:
        daemon_sets = children_of(run, f"pool-{pool['name']}", "DaemonSet")
        assert daemon_sets, pool["name"]
        expected_images = []
        for image in global_images + pool.get("images", []):
            canonical = parse_image(image, "x").canonical
            if canonical not in expected_images:
                expected_images.append(canonical)
        pulled = []
        for ds in daemon_sets:
            spec = run.state(ds)["spec"]["template"]["spec"]
            # Exactly the pool's nodes: its labels, plus Linux.
            assert spec["nodeSelector"] == {**pool["labels"], "kubernetes.io/os": "linux"}
            # Exactly its taints, plus the startup taint where the gate is on.
            expected_tolerations = [
                {"key": t["key"], "operator": "Equal", "value": t["value"], "effect": t["effect"]}
                if t.get("value")
                else {"key": t["key"], "operator": "Exists", "effect": t["effect"]}
                for t in pool.get("taints", [])
            ]
            if pool.get("startupGate"):
                key = KARPENTER_GATE_KEY if pool["provider"] == "karpenter" else AUTOSCALER_GATE_KEY
                expected_tolerations.append({"key": key, "operator": "Exists", "effect": "NoSchedule"})
            assert spec.get("tolerations", []) == expected_tolerations
            pulled += [c["image"] for c in spec.get("initContainers", []) if c["name"].startswith("pull-")]
        # Global + pool images, each once.
        assert pulled == expected_images


@pytest.mark.parametrize("path", STACK_FILES, ids=[p.stem.split(".", 1)[1] for p in STACK_FILES])
def test_node_pools_are_created_after_their_prepuller(run_program, path):
    config = stack_config(path)
    run = run_main(run_program, config)
    for pool in pools_of(config):
        node_pools = [r for r in run.requests if r.name == f"nodepool-{pool['name']}"]
        if pool["provider"] == "existing":
            assert node_pools == []
            continue
        assert len(node_pools) == 1
        request = node_pools[0]
        assert request.type == "kubernetes:karpenter.sh/v1:NodePool"
        # depends_on a component expands to its children: the node pool waits for every DaemonSet.
        ds_urns = {u for u in run.monitor.resources if "DaemonSet::" in u and u.split("::")[-1].startswith(f"pool-{pool['name']}-ds")}
        assert ds_urns and ds_urns <= set(request.dependencies)
        names = [r.name for r in run.requests]
        assert names.index(f"pool-{pool['name']}") < names.index(f"nodepool-{pool['name']}")
        state = run.state(request)
        template = state["spec"]["template"]
        assert template["metadata"]["labels"] == pool["labels"]
        assert template["spec"].get("taints", []) == [dict(t) for t in pool.get("taints", [])]
        if pool.get("startupGate"):
            assert template["spec"]["startupTaints"] == [{"key": KARPENTER_GATE_KEY, "effect": "NoSchedule"}]
        else:
            assert "startupTaints" not in template["spec"]


@pytest.mark.parametrize("path", STACK_FILES, ids=[p.stem.split(".", 1)[1] for p in STACK_FILES])
def test_gate_objects_only_where_the_gate_is_on(run_program, path):
    config = stack_config(path)
    run = run_main(run_program, config)
    for pool in pools_of(config):
        for kind in GATE_KINDS:
            found = children_of(run, f"pool-{pool['name']}", kind)
            assert len(found) == (1 if pool.get("startupGate") else 0), (pool["name"], kind)
        for ds in children_of(run, f"pool-{pool['name']}", "DaemonSet"):
            init = run.state(ds)["spec"]["template"]["spec"].get("initContainers", [])
            has_untaint = bool(init) and init[-1]["name"] == "untaint"
            assert has_untaint == bool(pool.get("startupGate"))


@pytest.mark.parametrize("path", STACK_FILES, ids=[p.stem.split(".", 1)[1] for p in STACK_FILES])
def test_every_kubernetes_resource_uses_the_explicit_provider(run_program, path):
    run = run_main(run_program, stack_config(path))
    k8s = [r for r in run.requests if r.type.startswith("kubernetes:")]
    assert k8s
    for r in k8s:
        assert "pulumi:providers:kubernetes::k8s::" in r.provider, r.name


def test_provider_takes_kubeconfig_and_context_from_config(run_program, tmp_path):
    kubeconfig = tmp_path / "kc.yaml"
    kubeconfig.write_text(json.dumps({"apiVersion": "v1", "kind": "Config", "contexts": [{"name": "kind-x", "context": {}}]}))
    config = {**stack_config(ROOT / "stacks" / "Pulumi.dev.yaml"), "prepull:kubeconfig": str(kubeconfig), "prepull:kubeContext": "kind-x"}
    run = run_main(run_program, config)
    provider = run.state(next(r for r in run.requests if r.type == "pulumi:providers:kubernetes"))
    assert provider["kubeconfig"] == str(kubeconfig) and provider["context"] == "kind-x"


def _config(pools, images=("nginx:1.27",)) -> dict:
    return {"prepull:images": json.dumps(list(images)), "prepull:nodePools": json.dumps(pools)}


def test_pool_images_are_global_plus_pool_without_duplicates(run_program):
    pools = [{"name": "a", "provider": "existing", "labels": {"pool": "a"}, "images": ["docker.io/library/nginx:1.27", "redis:7"]}]
    run = run_main(run_program, _config(pools, images=("nginx:1.27", "busybox:1.37")))
    (ds,) = children_of(run, "pool-a", "DaemonSet")
    pulled = [c["image"] for c in run.state(ds)["spec"]["template"]["spec"]["initContainers"] if c["name"].startswith("pull-")]
    assert pulled == ["docker.io/library/nginx:1.27", "docker.io/library/busybox:1.37", "docker.io/library/redis:7"]


def test_gate_on_existing_pool_with_registered_taint(run_program):
    pools = [
        {"name": "a", "provider": "existing", "labels": {"pool": "a"}, "startupGate": True, "existing": {"nodesRegisterWithTaint": True}}
    ]
    run = run_main(run_program, _config(pools))
    (ds,) = children_of(run, "pool-a", "DaemonSet")
    spec = run.state(ds)["spec"]["template"]["spec"]
    assert {"key": AUTOSCALER_GATE_KEY, "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert AUTOSCALER_GATE_KEY in " ".join(spec["initContainers"][-1]["command"])


GOOD = {"name": "a", "provider": "existing", "labels": {"pool": "a"}}
KARP = {
    "name": "k",
    "provider": "karpenter",
    "labels": {"pool": "k"},
    "karpenter": {"nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "d"}},
}
BAD_CONFIGS = [
    ("duplicate-pool-names", [GOOD, dict(GOOD)], "nodePools[1].name", "a"),
    ("pool-without-labels", [{"name": "a", "provider": "existing"}], "nodePools.a.labels", None),
    ("pool-with-empty-labels", [{**GOOD, "labels": {}}], "nodePools.a.labels", {}),
    ("unknown-provider", [{**GOOD, "provider": "nomad"}], "nodePools.a.provider", "nomad"),
    ("taint-without-effect", [{**GOOD, "taints": [{"key": "gpu"}]}], "nodePools.a.taints[0].effect", None),
    ("taint-bad-effect", [{**GOOD, "taints": [{"key": "gpu", "effect": "NoRun"}]}], "nodePools.a.taints[0].effect", "NoRun"),
    ("gate-on-existing-without-taint", [{**GOOD, "startupGate": True}], "nodePools.a.startupGate", True),
    ("missing-karpenter-node-class", [{**KARP, "karpenter": {}}], "nodePools.k.karpenter.nodeClassRef", None),
    ("missing-eks-field", [{**GOOD, "provider": "eks", "eks": {"clusterName": "c"}}], "nodePools.a.eks.nodeRoleArn", None),
    ("block-of-other-provider", [{**GOOD, "karpenter": {"nodeClassRef": {}}}], "nodePools.a.karpenter", {"nodeClassRef": {}}),
    ("unknown-pool-field", [{**GOOD, "taint": []}], "nodePools.a.taint", []),
    ("bad-pool-name", [{**GOOD, "name": "GPU_pool"}], "nodePools[0].name", "GPU_pool"),
    ("bad-pool-image", [{**GOOD, "images": ["Bad Image"]}], "nodePools.a.images[0]", "Bad Image"),
    ("bad-pool-lanes", [{**GOOD, "lanes": 0}], "nodePools.a.lanes", 0),
    ("bad-pool-pull-retry", [{**GOOD, "pullRetrySeconds": 5}], "nodePools.a.pullRetrySeconds", 5),
    (
        "pool-pull-retry-with-image-volume",
        [{**GOOD, "pullRetrySeconds": 30, "prepuller": {"method": "image-volume"}}],
        "nodePools.a.pullRetrySeconds",
        30,
    ),
    ("no-pools", [], "nodePools", []),
    ("karpenter-node-class-not-a-mapping", [{**KARP, "karpenter": {"nodeClassRef": 5}}], "nodePools.k.karpenter.nodeClassRef", 5),
    (
        "karpenter-node-class-incomplete",
        [{**KARP, "karpenter": {"nodeClassRef": {"name": "d"}}}],
        "nodePools.k.karpenter.nodeClassRef",
        {"name": "d"},
    ),
    (
        "karpenter-bad-operator",
        [
            {
                **KARP,
                "karpenter": {**KARP["karpenter"], "requirements": [{"key": "kubernetes.io/arch", "operator": "Is", "values": ["amd64"]}]},
            }
        ],
        "nodePools.k.karpenter.requirements[0].operator",
        "Is",
    ),
    ("karpenter-bad-weight", [{**KARP, "karpenter": {**KARP["karpenter"], "weight": 0}}], "nodePools.k.karpenter.weight", 0),
    ("karpenter-bad-limits", [{**KARP, "karpenter": {**KARP["karpenter"], "limits": ["cpu"]}}], "nodePools.k.karpenter.limits", ["cpu"]),
    ("prepuller-unknown-key", [{**GOOD, "prepuller": {"images": ["x:1"]}}], "nodePools.a.prepuller.images", ["x:1"]),
    (
        "prepuller-bad-timeout",
        [{**GOOD, "prepuller": {"customTimeouts": {"create": "soon"}}}],
        "nodePools.a.prepuller.customTimeouts.create",
        "soon",
    ),
    (
        "prepuller-bad-resource",
        [{**GOOD, "prepuller": {"resources": {"memoryLimit": "lots"}}}],
        "nodePools.a.prepuller.resources.memoryLimit",
        "lots",
    ),
    (
        "daemonset-name-collision",
        [{**GOOD, "name": "gpu", "lanes": 2, "images": ["b:1"]}, {**GOOD, "name": "gpu-l1"}],
        "nodePools.gpu-l1.name",
        "gpu-l1",
    ),
]


@pytest.mark.parametrize("pools, field, value", [c[1:] for c in BAD_CONFIGS], ids=[c[0] for c in BAD_CONFIGS])
def test_bad_configuration_names_pool_and_field_and_registers_nothing(run_program, pools, field, value):
    err, run = run_main_expecting_error(run_program, _config(pools))
    assert (err.field, err.value) == (field, value)
    assert [r.type for r in run.requests if r.type != "pulumi:pulumi:Stack"] == []


def test_daemonset_names_may_not_collide_across_pools():
    from prepull.stack.pools import load_stack

    pools = [{**GOOD, "name": "gpu", "lanes": 2, "images": ["b:1"]}, {**GOOD, "name": "gpu-l1"}]
    with pytest.raises(PrePullInputError) as exc:
        load_stack({"images": ["nginx:1"], "nodePools": pools})
    assert (exc.value.field, exc.value.value) == ("nodePools.gpu-l1.name", "gpu-l1")
    assert "'gpu-l1'" in exc.value.reason and "'gpu'" in exc.value.reason


def test_prepuller_block_errors_use_the_stack_file_spelling():
    from prepull.stack.pools import load_stack

    with pytest.raises(PrePullInputError) as exc:
        load_stack({"images": ["nginx:1"], "nodePools": [{**GOOD, "prepuller": {"maxSurge": 2, "maxUnavailable": 3}}]})
    assert exc.value.field == "nodePools.a.prepuller.maxUnavailable"
    assert "maxSurge" in exc.value.reason and "max_surge" not in exc.value.reason


def test_prepuller_block_errors_spell_nested_inputs_as_the_stack_file_does():
    from prepull.stack.pools import load_stack

    with pytest.raises(PrePullInputError) as exc:
        load_stack({"images": ["nginx:1"], "nodePools": [{**GOOD, "prepuller": {"resources": {"cpuRequest": "500m"}}}]})
    assert exc.value.field == "nodePools.a.prepuller.resources.cpuRequest"
    assert exc.value.reason == "must not exceed resources.cpuLimit (100m)"


def test_kube_settings_must_be_strings():
    from prepull.stack.pools import load_stack

    with pytest.raises(PrePullInputError) as exc:
        load_stack({"images": ["nginx:1"], "nodePools": [GOOD], "kubeContext": 3})
    assert exc.value.field == "prepull:kubeContext"


def test_prepuller_block_reaches_the_daemon_sets(run_program):
    pools = [
        {
            **GOOD,
            "prepuller": {
                "customTimeouts": {"create": "45m", "update": "45m"},
                "maxSurge": 3,
                "imagePullSecrets": ["regcred"],
                "resources": {"memoryLimit": "64Mi"},
                "priorityClassName": "prepull",
            },
        }
    ]
    run = run_main(run_program, _config(pools))
    (ds,) = children_of(run, "pool-a", "DaemonSet")
    assert (ds.customTimeouts.create, ds.customTimeouts.update) == ("45m", "45m")
    state = run.state(ds)
    assert state["spec"]["updateStrategy"]["rollingUpdate"] == {"maxSurge": 3, "maxUnavailable": 0}
    spec = state["spec"]["template"]["spec"]
    assert spec["imagePullSecrets"] == [{"name": "regcred"}] and spec["priorityClassName"] == "prepull"
    assert {c["resources"]["limits"]["memory"] for c in spec["initContainers"] + spec["containers"]} == {"64Mi"}
    # The pool still decides selection.
    assert spec["nodeSelector"] == {"pool": "a", "kubernetes.io/os": "linux"}


def test_pull_retry_seconds_is_a_pool_key_and_reaches_only_that_pools_pre_puller():
    from prepull.stack.pools import load_stack

    pools = [{**GOOD, "pullRetrySeconds": 30}, {**GOOD, "name": "b", "labels": {"pool": "b"}}]
    spec = load_stack({"images": ["nginx:1"], "nodePools": pools})
    assert spec.prepullers["a"].plan.pull_retry_seconds == 30 and spec.prepullers["b"].plan.pull_retry_seconds is None
    kinds = {pool: sorted(o["kind"] for o in spec.prepullers[pool].objects) for pool in ("a", "b")}
    assert kinds["b"] == ["DaemonSet", "NetworkPolicy"]
    assert set(kinds["a"]) - set(kinds["b"]) == {
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    }
    (ds,) = [o for o in spec.prepullers["a"].objects if o["kind"] == "DaemonSet"]
    assert [c["name"] for c in ds["spec"]["template"]["spec"]["initContainers"]][:2] == ["prepull-noop", "prepull-retry"]


def test_pull_retry_errors_name_the_pool_key_in_the_stack_file_spelling():
    from prepull.stack.pools import load_stack

    with pytest.raises(PrePullInputError) as exc:
        load_stack({"images": ["nginx:1"], "nodePools": [{**GOOD, "pullRetrySeconds": 30, "prepuller": {"method": "docker-socket"}}]})
    assert exc.value.field == "nodePools.a.pullRetrySeconds"
    assert str(exc.value).startswith("nodePools.a.pullRetrySeconds: needs method kubelet, not docker-socket")
    # untaintImage in the prepuller block names the pool key as the stack file spells it.
    with pytest.raises(PrePullInputError) as exc:
        load_stack({"images": ["nginx:1"], "nodePools": [{**GOOD, "prepuller": {"untaintImage": "registry.k8s.io/kubectl:v1.33.0"}}]})
    assert exc.value.field == "nodePools.a.prepuller.untaintImage"
    assert exc.value.reason == "is only used with removeStartupTaint or pullRetrySeconds"


def test_pool_with_no_images_at_all_is_rejected():
    from prepull.stack.pools import load_stack

    with pytest.raises(PrePullInputError) as exc:
        load_stack({"nodePools": [GOOD]})
    assert exc.value.field == "nodePools.a.images"


def test_gate_error_on_existing_pool_says_how_to_add_the_taint():
    from prepull.stack.pools import load_stack

    with pytest.raises(PrePullInputError, match="register-with-taints"):
        load_stack({"images": ["nginx:1"], "nodePools": [{**GOOD, "startupGate": True}]})


def _count_calls(monkeypatch, counts: dict) -> None:
    """Count build_plan and render calls wherever the stack and render paths import them."""
    import prepull.cli.common
    import prepull.component
    import prepull.core.manifests
    import prepull.stack.pools

    for module in (prepull.stack.pools, prepull.component, prepull.core.manifests, prepull.cli.common):
        for name in ("build_plan", "render"):
            real = getattr(module, name, None)
            if real is not None:
                monkeypatch.setattr(
                    module, name, lambda *a, _real=real, _name=name, **k: counts.update({_name: counts.get(_name, 0) + 1}) or _real(*a, **k)
                )


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: p.stem)
def test_each_pools_plan_is_built_and_rendered_once_on_the_stack_path(monkeypatch, run_program, path):
    config = stack_config(path)
    counts: dict = {}
    _count_calls(monkeypatch, counts)
    run_main(run_program, config)
    pools = len(yaml.safe_load(config["prepull:nodePools"]))
    assert counts == {"build_plan": pools, "render": pools}


def test_each_pools_plan_is_built_and_rendered_once_on_the_render_path(monkeypatch, capsys):
    from prepull.cli.main import main

    counts: dict = {}
    _count_calls(monkeypatch, counts)
    assert main(["render", "--stack", "dev"]) == 0
    pools = len(yaml.safe_load(stack_config(ROOT / "stacks" / "Pulumi.dev.yaml")["prepull:nodePools"]))
    assert counts == {"build_plan": pools, "render": pools}


def test_every_prepuller_key_maps_back_to_an_input_by_the_schemas_rule():
    """The stack file's camelCase is the provider schema's: one rule (errors.camel_case), inverted exactly."""
    from prepull.args import KNOWN_FIELDS
    from prepull.core.checks import PYTHON_NAMES
    from prepull.errors import camel_case
    from prepull.stack.pools import PREPULLER_KEYS

    assert all(PYTHON_NAMES[key] in KNOWN_FIELDS and camel_case(PYTHON_NAMES[key]) == key for key in PREPULLER_KEYS)
    schema = json.loads((ROOT / "components" / "schema.json").read_text())
    inputs = schema["resources"]["prepull:index:ImagePrePuller"]["inputProperties"]
    assert set(PREPULLER_KEYS) <= set(inputs)
