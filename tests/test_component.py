"""ImagePrePuller under Pulumi mocks: what is registered, with which options, and its outputs.

The registered inputs of every child are compared with ``prepull.manifests()``
for the same arguments: the component has no second code path.
"""

import pulumi
import pulumi_kubernetes as k8s
import pytest
from pulumi.provider.experimental.component import ComponentProvider
from pulumi.runtime.mocks import MockMonitor

import prepull
from prepull import Method, PullPolicy, TaintEffect, TolerationOperator
from prepull.core.images import parse_image

TYPE = "prepull:index:ImagePrePuller"
K8S_TYPES = {
    "Namespace": "kubernetes:core/v1:Namespace",
    "DaemonSet": "kubernetes:apps/v1:DaemonSet",
    "NetworkPolicy": "kubernetes:networking.k8s.io/v1:NetworkPolicy",
    "ServiceAccount": "kubernetes:core/v1:ServiceAccount",
    "ClusterRole": "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole",
    "ClusterRoleBinding": "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding",
    "Role": "kubernetes:rbac.authorization.k8s.io/v1:Role",
    "RoleBinding": "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding",
    "ValidatingAdmissionPolicy": "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding": "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicyBinding",
}
IMAGES = ["nginx:1.27", "gcr.io/distroless/static:nonroot", "redis"]


def build(run_program, args, name="pp", opts=None, extra=None):
    """Run a program creating one ImagePrePuller; return (run, resolved outputs)."""
    got = {}

    def program():
        opts_ = extra(got) if extra else opts
        c = prepull.ImagePrePuller(name, args, opts=opts_)
        got["component"] = c
        return pulumi.Output.all(
            urn=c.urn, namespace=c.namespace, daemon_set_names=c.daemon_set_names, images=c.images, ready=c.ready
        ).apply(got.update)

    run = run_program(program)
    return run, got


def registered_urn(run, name):
    matches = [u for u in run.monitor.resources if u.endswith(f"::{name}")]
    assert len(matches) == 1, (name, list(run.monitor.resources))
    return matches[0]


def children(run):
    return [r for r in run.requests if r.type.startswith("kubernetes:") and not r.type.startswith("pulumi:providers:")]


def child_for(run, obj):
    typ = K8S_TYPES[obj["kind"]]
    matches = [r for r in run.of_type(typ) if run.state(r)["metadata"]["name"] == obj["metadata"]["name"]]
    assert len(matches) == 1, obj["metadata"]["name"]
    return matches[0]


def test_type_token_and_one_registration(run_program):
    run, got = build(run_program, {"images": IMAGES})
    (comp,) = run.of_type(TYPE)
    assert comp.name == "pp"
    assert got["urn"].endswith(f"{TYPE}::pp")


@pytest.mark.parametrize(
    "args",
    [
        {"images": IMAGES},
        {"images": IMAGES, "lanes": 2, "labels": {"team": "ml"}, "annotations": {"example.com/a": "b"}},
        {"images": [*IMAGES, {"image": "cuda:12", "platforms": ["linux/amd64"]}], "tolerate_all_taints": True},
        {"images": IMAGES, "method": "image-volume", "pull_policy": "Always", "skip_await": True},
        {"images": IMAGES, "method": "docker-socket"},
        {"images": IMAGES, "create_namespace": False, "namespace": "kube-system"},
        {"images": IMAGES, "pull_retry_seconds": 30},
        {"images": IMAGES, "pull_retry_seconds": 30, "startup_taint": {"key": "prepull.dev/not-ready"}, "remove_startup_taint": True},
        {"images": IMAGES, "lanes": 2, "pull_retry_seconds": 30, "startup_taint": {"key": "t"}, "remove_startup_taint": True},
    ],
    ids=["defaults", "lanes", "platforms", "image-volume", "docker-socket", "no-namespace", "pull-retry", "pull-retry-gate", "gated-lanes"],
)
def test_children_are_exactly_the_manifests(run_program, args):
    run, got = build(run_program, args)
    objs = prepull.manifests(args, "pp")
    assert len(children(run)) == len(objs)
    for obj in objs:
        req = child_for(run, obj)
        # The state is the registered inputs (the mock echoes them): apiVersion and kind are added by the SDK.
        assert run.state(req) == obj
        assert req.parent == got["urn"], req.name


def test_daemon_sets_depend_on_the_namespace(run_program):
    run, _ = build(run_program, {"images": IMAGES, "lanes": 3})
    ns_urn = registered_urn(run, "pp-ns")
    dss = run.of_type(K8S_TYPES["DaemonSet"])
    assert len(dss) == 3
    for ds in dss:
        assert ns_urn in ds.dependencies, ds.name
    # and the namespace itself depends on nothing of ours
    (ns,) = run.of_type(K8S_TYPES["Namespace"])
    assert list(ns.dependencies) == []
    # registration order: namespace before any DaemonSet
    types = [t for t, _ in run.mocks.order]
    assert types.index(K8S_TYPES["Namespace"]) < types.index(K8S_TYPES["DaemonSet"])


def test_custom_timeouts_reach_the_daemon_set_registration(run_program):
    timeouts = {"create": "45m", "update": "30m", "delete": "5m"}
    run, _ = build(run_program, {"images": IMAGES, "lanes": 2, "custom_timeouts": timeouts})
    dss = run.of_type(K8S_TYPES["DaemonSet"])
    assert len(dss) == 2
    for ds in dss:
        ct = ds.customTimeouts
        assert (ct.create, ct.update, ct.delete) == ("45m", "30m", "5m")


def test_no_custom_timeouts_by_default(run_program):
    run, _ = build(run_program, {"images": IMAGES})
    for ds in run.of_type(K8S_TYPES["DaemonSet"]):
        ct = ds.customTimeouts
        assert (ct.create, ct.update, ct.delete) == ("", "", "")


@pytest.mark.parametrize(
    "args, namespace",
    [
        ({"images": IMAGES}, "prepull"),
        ({"images": IMAGES, "namespace": "images"}, "images"),
        ({"images": IMAGES, "namespace": "kube-system", "create_namespace": False}, "kube-system"),
    ],
)
def test_outputs(run_program, args, namespace):
    run, got = build(run_program, {**args, "lanes": 2})
    assert got["namespace"] == namespace
    assert got["daemon_set_names"] == [
        d["metadata"]["name"] for d in prepull.manifests({**args, "lanes": 2}, "pp") if d["kind"] == "DaemonSet"
    ]
    assert got["daemon_set_names"] == ["pp-l1", "pp-l2"]
    assert got["images"] == [parse_image(i, "t").canonical for i in IMAGES]
    assert got["images"][2] == "docker.io/library/redis:latest"
    assert got["ready"] is True


def test_register_outputs_is_called(run_program, monkeypatch):
    seen = []
    original = MockMonitor.RegisterResourceOutputs

    def record(self, request):
        from pulumi.runtime import rpc

        seen.append((request.urn, rpc.deserialize_properties(request.outputs)))
        return original(self, request)

    monkeypatch.setattr(MockMonitor, "RegisterResourceOutputs", record)
    _, got = build(run_program, {"images": IMAGES})
    outputs = [o for urn, o in seen if urn == got["urn"]]
    assert len(outputs) == 1
    assert set(outputs[0]) == {"namespace", "daemon_set_names", "images", "ready"}
    assert outputs[0]["images"] == got["images"]


def test_enum_instances_and_strings_are_equivalent(run_program):
    as_enums = {
        "images": IMAGES,
        "method": Method.IMAGE_VOLUME,
        "pull_policy": PullPolicy.ALWAYS,
        "tolerations": [{"key": "gpu", "operator": TolerationOperator.EXISTS, "effect": TaintEffect.NO_SCHEDULE}],
        "startup_taint": {"key": "prepull.dev/not-ready", "effect": TaintEffect.NO_EXECUTE},
    }
    as_strings = {
        "images": IMAGES,
        "method": "image-volume",
        "pull_policy": "Always",
        "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "startup_taint": {"key": "prepull.dev/not-ready", "effect": "NoExecute"},
    }
    run_e, _ = build(run_program, as_enums)
    run_s, _ = build(run_program, as_strings)
    state = lambda run: [run.state(r) for r in children(run)]  # noqa: E731
    assert state(run_e) == state(run_s) == prepull.manifests(as_strings, "pp")
    (ds,) = [s for s in state(run_e) if s["kind"] == "DaemonSet"]
    assert any("image" in v for v in ds["spec"]["template"]["spec"]["volumes"])


def test_mlc_style_construction(run_program):
    # What the multi-language provider does: map camelCase wire inputs to the Python names and
    # Enum members (ComponentProvider.map_inputs), then call the constructor with that plain dict.
    provider = ComponentProvider([prepull.ImagePrePuller], "prepull")
    wire = {
        "images": ["nginx:1.27", "redis:7"],
        "method": "image-volume",
        "pullPolicy": "Always",
        "nodeSelector": {"pool": "gpu"},
        "tolerations": [{"key": "gpu", "operator": "Equal", "value": "true", "effect": "NoExecute", "tolerationSeconds": 60.0}],
        "lanes": 2.0,
        "customTimeouts": {"create": "20m"},
    }
    mapped = provider.map_inputs(wire, provider._component_defs["ImagePrePuller"])
    assert type(mapped) is dict
    assert mapped["method"] is Method.IMAGE_VOLUME and mapped["pull_policy"] is PullPolicy.ALWAYS
    run, got = build(run_program, mapped)
    objs = prepull.manifests(mapped, "pp")
    assert [run.state(child_for(run, o)) for o in objs] == objs
    (ds1, ds2) = run.of_type(K8S_TYPES["DaemonSet"])
    spec = run.state(ds1)["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"kubernetes.io/os": "linux", "pool": "gpu"}
    assert spec["tolerations"][0]["tolerationSeconds"] == 60
    assert ds1.customTimeouts.create == "20m"
    assert got["images"] == ["docker.io/library/nginx:1.27", "docker.io/library/redis:7"]


def test_resource_options_reach_children(run_program):
    def opts(got):
        prov = k8s.Provider("cluster", kubeconfig="~/.kube/config")
        prov.urn.apply(lambda u: got.setdefault("provider_urn", u))
        return pulumi.ResourceOptions(providers=[prov], protect=True)

    run, got = build(run_program, {"images": IMAGES, "lanes": 2}, extra=opts)
    (comp,) = run.of_type(TYPE)
    assert comp.protect is True
    kids = children(run)
    assert len(kids) == 4  # namespace, network policy, two DaemonSets
    for req in kids:
        assert req.parent == got["urn"], req.name
        # provider references are "<provider urn>::<provider id>"
        assert req.provider.startswith(got["provider_urn"] + "::"), (req.name, req.provider)
        assert req.protect is True, req.name


def test_without_options_children_use_the_default_provider(run_program):
    run, got = build(run_program, {"images": IMAGES})
    for req in children(run):
        assert req.parent == got["urn"]
        assert req.provider == ""
        assert req.protect is False


def test_child_names_are_prefixed_with_the_component_name(run_program):
    run, _ = build(run_program, {"images": IMAGES, "lanes": 2}, name="workers")
    assert sorted(r.name for r in children(run)) == ["workers-ds-l1", "workers-ds-l2", "workers-netpol", "workers-ns"]


def test_pull_retry_children_have_names_of_their_own_and_leave_the_gates_unchanged(run_program):
    gate = {"startup_taint": {"key": "prepull.dev/not-ready"}, "remove_startup_taint": True}
    run, _ = build(run_program, {"images": IMAGES, **gate}, name="w")
    gated = [r.name for r in children(run)]
    run, _ = build(run_program, {"images": IMAGES, "pull_retry_seconds": 30, **gate}, name="w")
    both = [r.name for r in children(run)]
    assert len(set(both)) == len(both) and set(gated) <= set(both)
    assert sorted(set(both) - set(gated)) == ["w-retry-role", "w-retry-rolebinding", "w-retry-vap", "w-retry-vapbinding"]
    # Without the gate: the watchdog's own ServiceAccount under the same child name.
    run, _ = build(run_program, {"images": IMAGES, "pull_retry_seconds": 30}, name="w")
    assert sorted(r.name for r in children(run)) == [
        "w-ds",
        "w-netpol",
        "w-ns",
        "w-retry-role",
        "w-retry-rolebinding",
        "w-retry-vap",
        "w-retry-vapbinding",
        "w-sa",
    ]


def test_the_gate_across_lanes_adds_its_role_under_names_apart_from_the_watchdogs(run_program):
    args = {"images": IMAGES, "lanes": 2, "startup_taint": {"key": "t"}, "remove_startup_taint": True, "pull_retry_seconds": 30}
    run, _ = build(run_program, args, name="w")
    names = [r.name for r in children(run)]
    assert len(set(names)) == len(names)
    assert {"w-role", "w-rolebinding", "w-retry-role", "w-retry-rolebinding"} <= set(names)
