"""The gate's ValidatingAdmissionPolicy, evaluated with a CEL implementation (cel-python)
against admission requests the untaint identity could send. The expressions are
taken from the rendered manifests, so what is tested is what is deployed."""

import copy

import celpy
import pytest

import prepull

TAINT_KEY = "prepull.dev/not-ready"
SA_USER = "system:serviceaccount:prepull:gpu-untaint"
NODE = "ip-10-0-1-7"


def _policy() -> dict:
    objs = prepull.manifests(
        {"images": ["nginx:1.27"], "startup_taint": {"key": TAINT_KEY}, "remove_startup_taint": True, "namespace": "prepull"}, "gpu"
    )
    return next(o for o in objs if o["kind"] == "ValidatingAdmissionPolicy")["spec"]


ENV = celpy.Environment()


def _eval(expr: str, activation: dict):
    return ENV.program(ENV.compile(expr)).evaluate(activation)


def admit(old: dict, new: dict, username: str = SA_USER, node_name=NODE, extra=None) -> tuple:
    """(allowed, failed messages) as the API server would decide for this policy alone.

    Without a node name the request has no ``extra`` field at all, as a real API server presents
    an impersonated or extra-less user; ``extra`` overrides that.
    """
    policy = _policy()
    user = {"username": username}
    if node_name:
        user["extra"] = {"authentication.kubernetes.io/node-name": [node_name]}
    if extra is not None:
        user["extra"] = extra
    act = {
        "object": celpy.json_to_cel(new),
        "oldObject": celpy.json_to_cel(old),
        "request": celpy.json_to_cel({"operation": "UPDATE", "userInfo": user}),
    }
    for cond in policy["matchConditions"]:
        if not _eval(cond["expression"], act):
            return True, []  # the policy does not apply to this request
    variables = {}
    for var in policy["variables"]:  # later variables may use earlier ones, as in the API server
        act["variables"] = celpy.celtypes.MapType({celpy.celtypes.StringType(k): v for k, v in variables.items()})
        variables[var["name"]] = _eval(var["expression"], act)
    act["variables"] = celpy.celtypes.MapType({celpy.celtypes.StringType(k): v for k, v in variables.items()})
    failed = [v["message"] for v in policy["validations"] if not _eval(v["expression"], act)]
    return not failed, failed


def node(taints=None, labels=None, unschedulable=None, name=NODE) -> dict:
    obj = {"metadata": {"name": name, "labels": labels or {"kubernetes.io/os": "linux", "prepull.dev/pool": "gpu"}}, "spec": {}}
    if taints is not None:
        obj["spec"]["taints"] = taints
    if unschedulable is not None:
        obj["spec"]["unschedulable"] = unschedulable
    return obj


GATE = {"key": TAINT_KEY, "effect": "NoSchedule"}
GPU = {"key": "nvidia.com/gpu", "effect": "NoSchedule"}


def test_removing_the_gate_taint_from_its_own_node_is_allowed():
    assert admit(node([GATE, GPU]), node([GPU])) == (True, [])


def test_removing_the_only_taint_leaves_no_taints_field():
    assert admit(node([GATE]), node())[0]


def test_removing_it_from_another_node_is_denied():
    allowed, failed = admit(node([GATE], name="other-node"), node([], name="other-node"))
    assert not allowed and any("own pod runs on" in m for m in failed)


def test_a_token_without_node_name_is_denied():
    allowed, failed = admit(node([GATE]), node([]), node_name=None)
    assert not allowed and any("own pod runs on" in m for m in failed)


def test_extras_without_the_node_name_are_denied():
    allowed, failed = admit(node([GATE]), node([]), node_name=None, extra={"other.example/key": ["x"]})
    assert not allowed and any("own pod runs on" in m for m in failed)


def test_changing_labels_is_denied():
    new = node([], labels={"kubernetes.io/os": "linux", "prepull.dev/pool": "gpu", "owned": "yes"})
    allowed, failed = admit(node([GATE]), new)
    assert not allowed and any("labels" in m for m in failed)


def test_adding_a_taint_is_denied():
    allowed, failed = admit(node([GATE]), node([GATE, {"key": "evil", "effect": "NoExecute"}]))
    assert not allowed and any("only remove its startup taint" in m for m in failed)


def test_removing_another_taint_is_denied():
    allowed, _ = admit(node([GATE, GPU]), node([GATE]))
    assert not allowed


def test_removing_the_gate_key_with_another_effect_is_denied():
    other_effect = {"key": TAINT_KEY, "effect": "NoExecute"}
    allowed, _ = admit(node([GATE, other_effect]), node([GATE]))
    assert not allowed


def test_changing_a_taint_value_is_denied():
    allowed, _ = admit(node([GATE, {**GPU, "value": "a"}]), node([{**GPU, "value": "b"}]))
    assert not allowed


def test_cordoning_is_denied():
    allowed, failed = admit(node([GATE]), node([GATE], unschedulable=True))
    assert not allowed and any("schedulability" in m for m in failed)


def test_other_identities_are_not_matched():
    # Anyone else (the kubelet, an admin) is outside this policy's scope.
    assert admit(node([GATE]), node([GATE, {"key": "evil", "effect": "NoExecute"}]), username="system:node:x") == (True, [])


def test_a_noop_update_is_allowed():
    # A restarted pod that finds the taint gone must not be blocked.
    assert admit(node([GPU]), node([GPU]))[0]


@pytest.mark.parametrize(
    "field, value",
    [
        ("spec.providerID", "aws:///evil"),
        ("spec.podCIDR", "10.9.0.0/24"),
        ("spec.podCIDRs", ["10.9.0.0/24"]),
        ("spec.externalID", "x"),
        ("spec.configSource", {"configMap": {"name": "x", "namespace": "kube-system", "kubeletConfigKey": "k"}}),
        ("metadata.annotations", {"evil": "yes"}),
        ("metadata.ownerReferences", [{"apiVersion": "v1", "kind": "ConfigMap", "name": "gone", "uid": "0000"}]),
        ("metadata.finalizers", ["example.com/block"]),
    ],
)
def test_other_node_fields_are_frozen(field, value):
    # Removing the gate taint legitimately, while also changing one more field, is denied.
    old = node([GATE])
    new = copy.deepcopy(old)
    new["spec"]["taints"] = []
    section, key = field.split(".")
    new[section][key] = value
    allowed, failed = admit(old, new)
    assert not allowed and failed == [
        "the pre-puller may not change node labels, annotations, owners, finalizers, schedulability or other node fields"
    ]


@pytest.mark.parametrize("new_source", [None, {"configMap": {"name": "y", "namespace": "kube-system", "kubeletConfigKey": "k"}}])
def test_an_existing_config_source_may_be_neither_removed_nor_changed(new_source):
    # Compared by presence, then value (an object-typed field has no empty literal the type checker accepts).
    old = node([GATE])
    old["spec"]["configSource"] = {"configMap": {"name": "x", "namespace": "kube-system", "kubeletConfigKey": "k"}}
    new = copy.deepcopy(old)
    new["spec"]["taints"] = []
    new["spec"].pop("configSource")
    if new_source:
        new["spec"]["configSource"] = new_source
    allowed, failed = admit(old, new)
    assert not allowed and any("other node fields" in m for m in failed)
    same = copy.deepcopy(old)
    same["spec"]["taints"] = []
    assert admit(old, same) == (True, [])
