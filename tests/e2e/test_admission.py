"""The security claims, against a real API server: the gate's identity, and Pod Security.

Our rendered objects (the same core the component uses) are applied with kubectl, then:

- the gate's ValidatingAdmissionPolicy is accepted and type-checks against the real Node schema;
- impersonating the untaint ServiceAccount *with the node-name extra its bound token carries*,
  removing the startup taint from that node is allowed, and every other change is denied by the
  policy itself (its message, not an RBAC refusal);
- that identity can read no secret, list no pod, and touch nothing but nodes;
- the namespace enforces Pod Security `restricted`, our pods are admitted, and a privileged pod is
  rejected; with `method: docker-socket` the namespace is `privileged` and the pods are admitted.

The nodes whose taints are changed are kwok nodes: simulated, but API objects like any other, and
admission is what is tested. Runs on any cluster the e2e tier reaches (kubectl's current context);
skipped with the reason otherwise.
"""

import json

import pytest
from cluster_env import apply, as_list, kubectl, marks, poll, unreachable

from prepull import manifests

pytestmark = marks(unreachable())

NAMESPACE = "prepull-admission"
NAME = "gate"
TAINT = {"key": "prepull.dev/admission-test", "effect": "NoSchedule"}
OTHER_TAINT = "prepull.dev/admission-other"
SA = f"system:serviceaccount:{NAMESPACE}:{NAME}-untaint"
NODE_EXTRA = "authentication.kubernetes.io/node-name"
POLICY = f"prepull-untaint.{NAMESPACE}.{NAME}"
OWN = "the pre-puller may only change the node its own pod runs on"
ONLY_ITS_TAINT = "the pre-puller may only remove its startup taint"
NO_FIELDS = "the pre-puller may not change node labels, annotations"


def as_untaint(node_name=None) -> list:
    extra = [f"--as-user-extra={NODE_EXTRA}={node_name}"] if node_name else []
    return [f"--as={SA}", *extra]


def taints(node: str) -> list:
    return json.loads(kubectl("get", "node", node, "-o", "json").stdout)["spec"].get("taints") or []


def two_nodes() -> tuple:
    """Two nodes that run no gate of their own: kwok nodes on the local cluster."""
    names = kubectl("get", "nodes", "-l", "prepull.dev/simulated=true", "-o", "name").stdout.split()
    if len(names) < 2:
        names = kubectl("get", "nodes", "-o", "name").stdout.split()
    assert len(names) >= 2, names
    return names[0].split("/")[1], names[1].split("/")[1]


@pytest.fixture(scope="module")
def gate():
    """The gate's objects for a pool no node belongs to (its RBAC and policy are what matter here)."""
    args = {
        "images": ["docker.io/library/busybox:1.37.0-musl"],
        "namespace": NAMESPACE,
        "remove_startup_taint": True,
        "startup_taint": TAINT,
        "node_selector": {"prepull.dev/admission-test": "no-such-node"},
    }
    objects = manifests(args, NAME)
    apply(objects)
    own, other = two_nodes()
    for node in (own, other):
        kubectl("taint", "node", node, f"{TAINT['key']}:{TAINT['effect']}", "--overwrite")
        kubectl("taint", "node", node, f"{OTHER_TAINT}=x:NoSchedule", "--overwrite")
    wait_until_enforced(other)
    try:
        yield {"own": own, "other": other, "objects": objects}
    finally:
        for node in (own, other):
            kubectl("taint", "node", node, f"{TAINT['key']}-", check=False)
            kubectl("taint", "node", node, f"{OTHER_TAINT}-", check=False)
            kubectl("label", "node", node, "prepull.dev/admission-label-", check=False)
            kubectl("uncordon", node, check=False)
        kubectl("delete", "-f", "-", "--wait=true", "--ignore-not-found", input=as_list(objects), check=False)


def wait_until_enforced(node: str) -> None:
    """A new policy takes effect once the API server loaded it, a moment after it was created.

    Observed here: right after creation a change the policy denies went through. So the tests
    start only once a request the policy must deny (no node-name extra) is denied by it.
    """

    def not_yet() -> str:
        out = kubectl("annotate", "node", node, "prepull.dev/admission-probe=x", "--overwrite", f"--as={SA}", check=False)
        if POLICY in out.stderr:
            return ""
        kubectl("annotate", "node", node, "prepull.dev/admission-probe-", check=False)
        return f"{POLICY} did not deny: {out.stderr or out.stdout}"

    poll(f"the policy {POLICY} to be enforced", not_yet, timeout=60, every=1)


def test_the_policy_is_accepted_and_type_checks_against_the_node_schema(gate):
    def policy() -> dict:
        return json.loads(kubectl("get", "validatingadmissionpolicy", POLICY, "-o", "json").stdout)

    def unchecked(p: dict) -> dict:
        return {} if p.get("status", {}).get("observedGeneration") == p["metadata"]["generation"] else p.get("status", {"status": None})

    poll("the policy to be type-checked", lambda: unchecked(policy()), timeout=60, every=1)
    status = policy().get("status", {})
    assert not (status.get("typeChecking") or {}).get("expressionWarnings"), status["typeChecking"]


def test_removing_the_startup_taint_from_its_own_node_is_allowed(gate):
    own = gate["own"]
    out = kubectl("taint", "node", own, f"{TAINT['key']}:{TAINT['effect']}-", *as_untaint(own), check=False)
    assert out.returncode == 0, out.stderr
    assert not any(t["key"] == TAINT["key"] for t in taints(own))
    assert any(t["key"] == OTHER_TAINT for t in taints(own)), "the other taint went too"
    kubectl("taint", "node", own, f"{TAINT['key']}:{TAINT['effect']}")  # back, for the tests below


def taint_index(node: str, key: str) -> int:
    return next(i for i, t in enumerate(taints(node)) if t["key"] == key)


def remove_gate(node: str) -> list:
    return [{"op": "remove", "path": f"/spec/taints/{taint_index(node, TAINT['key'])}"}]


# Each change is one JSON patch of the node, sent as the untaint identity whose token names `own`.
# The API server reports the first failing validation: changes to other fields ride along with
# the allowed taint removal, so that only the field rule can fail and its message is the one shown.
DENIED = {
    "removing it from another node": (lambda g: (g["other"], remove_gate(g["other"])), OWN),
    "removing another taint": (
        lambda g: (g["own"], [{"op": "remove", "path": f"/spec/taints/{taint_index(g['own'], OTHER_TAINT)}"}]),
        ONLY_ITS_TAINT,
    ),
    "adding a taint": (
        lambda g: (g["own"], [{"op": "add", "path": "/spec/taints/-", "value": {"key": "prepull.dev/added", "effect": "NoSchedule"}}]),
        ONLY_ITS_TAINT,
    ),
    "changing the taint's effect": (
        lambda g: (
            g["own"],
            [{"op": "replace", "path": f"/spec/taints/{taint_index(g['own'], TAINT['key'])}/effect", "value": "NoExecute"}],
        ),
        ONLY_ITS_TAINT,
    ),
    "removing it and changing a label": (
        lambda g: (
            g["own"],
            remove_gate(g["own"]) + [{"op": "add", "path": "/metadata/labels/prepull.dev~1admission-label", "value": "x"}],
        ),
        NO_FIELDS,
    ),
    "removing it and changing an annotation": (
        lambda g: (
            g["own"],
            remove_gate(g["own"]) + [{"op": "add", "path": "/metadata/annotations/prepull.dev~1admission-annotation", "value": "x"}],
        ),
        NO_FIELDS,
    ),
    "removing it and cordoning": (
        lambda g: (g["own"], remove_gate(g["own"]) + [{"op": "add", "path": "/spec/unschedulable", "value": True}]),
        NO_FIELDS,
    ),
}


def node_state(node: str) -> tuple:
    obj = json.loads(kubectl("get", "node", node, "-o", "json").stdout)
    return obj["metadata"].get("labels"), obj["metadata"].get("annotations"), obj["spec"]


@pytest.mark.parametrize("change", sorted(DENIED))
def test_every_other_change_is_denied_by_the_policy(gate, change):
    make, message = DENIED[change]
    node, patch = make(gate)
    before = node_state(node)
    out = kubectl("patch", "node", node, "--type=json", "-p", json.dumps(patch), *as_untaint(gate["own"]), check=False)
    assert out.returncode != 0, f"{change} was allowed: {out.stdout}"
    assert POLICY in out.stderr and message in out.stderr, out.stderr
    assert node_state(node) == before


@pytest.mark.parametrize("command", [["label", "node", "{own}", "prepull.dev/admission-label=x"], ["cordon", "{own}"]])
def test_plain_kubectl_changes_are_denied_too(gate, command):
    before = node_state(gate["own"])
    # `kubectl cordon` prints the denial but exits 0: the proof is the message and the unchanged node.
    out = kubectl(*[c.format(own=gate["own"]) for c in command], *as_untaint(gate["own"]), check=False)
    assert POLICY in out.stderr and "denied request" in out.stderr, out.stderr
    assert node_state(gate["own"]) == before


def test_a_request_without_the_node_name_extra_is_denied_by_the_policy(gate):
    own = gate["own"]
    out = kubectl("taint", "node", own, f"{TAINT['key']}:{TAINT['effect']}-", *as_untaint(None), check=False)
    assert out.returncode != 0 and POLICY in out.stderr and OWN in out.stderr, out.stderr
    assert any(t["key"] == TAINT["key"] for t in taints(own))


@pytest.mark.parametrize(
    "verb,resource,expected",
    [
        ("get", "nodes", "yes"),
        ("patch", "nodes", "yes"),
        ("get", "secrets", "no"),
        ("list", "secrets", "no"),
        ("list", "pods", "no"),
        ("get", "configmaps", "no"),
        ("delete", "nodes", "no"),
        ("create", "nodes", "no"),
        ("update", "nodes/status", "no"),
        ("create", "pods/eviction", "no"),
        ("create", "deployments.apps", "no"),
        ("get", "validatingadmissionpolicies.admissionregistration.k8s.io", "no"),
    ],
)
def test_the_identity_can_only_get_and_patch_nodes(gate, verb, resource, expected):
    answer = kubectl("auth", "can-i", verb, resource, f"--as={SA}", "--all-namespaces", check=False).stdout.strip()
    assert answer == expected, f"can-i {verb} {resource}: {answer}"


# ---------------------------------------------------------------- Pod Security


def pods_of(namespace: str, instance: str) -> list:
    out = kubectl("get", "pods", "-n", namespace, "-l", f"app.kubernetes.io/instance={instance}", "-o", "json")
    return json.loads(out.stdout)["items"]


def deploy_and_wait_for_pods(args: dict, name: str) -> list:
    # The gate tests taint the simulated nodes for the module's duration.
    objects = manifests({**args, "tolerate_all_taints": True}, name)
    apply(objects)

    def not_admitted() -> str:
        if pods_of(args["namespace"], name):
            return ""
        return "no pod yet; events: " + kubectl("get", "events", "-n", args["namespace"], "-o", "json").stdout

    poll(f"the pods of DaemonSet {name} to be admitted", not_admitted, timeout=90, every=1)
    return objects


def simulated_node() -> str:
    return two_nodes()[0]


@pytest.fixture
def restricted():
    args = {
        "images": ["docker.io/library/busybox:1.37.0-musl"],
        "namespace": "prepull-psa",
        "node_selector": {"kubernetes.io/hostname": simulated_node()},
    }
    deploy_and_wait_for_pods(args, "psa")
    yield args["namespace"]
    kubectl("delete", "namespace", args["namespace"], "--wait=false", check=False)


def test_our_namespace_enforces_restricted_and_admits_our_pods(restricted):
    labels = json.loads(kubectl("get", "namespace", restricted, "-o", "json").stdout)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    privileged = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "privileged", "namespace": restricted},
        "spec": {"containers": [{"name": "c", "image": "docker.io/library/busybox:1.37.0-musl", "securityContext": {"privileged": True}}]},
    }
    out = kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(privileged), check=False)
    assert out.returncode != 0 and "violates PodSecurity" in out.stderr and "restricted" in out.stderr, out.stderr


def test_docker_socket_gets_a_privileged_namespace_and_its_pods_are_admitted():
    args = {
        "images": ["docker.io/library/busybox:1.37.0-musl"],
        "namespace": "prepull-docker",
        "method": "docker-socket",
        "node_selector": {"kubernetes.io/hostname": simulated_node()},
    }
    try:
        deploy_and_wait_for_pods(args, "docker")
        labels = json.loads(kubectl("get", "namespace", "prepull-docker", "-o", "json").stdout)["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "privileged"
    finally:
        kubectl("delete", "namespace", "prepull-docker", "--wait=false", check=False)
