"""The pull-retry watchdog's ValidatingAdmissionPolicy, evaluated with a CEL implementation (cel-python)
against DELETE requests its identity could send. The expressions are taken from the rendered
manifests, so what is tested is what is deployed."""

import celpy
import pytest

import prepull

NS = "prepull"
POD = "gpu-x7k2p"
POD_NAME_EXTRA = "authentication.kubernetes.io/pod-name"
ENV = celpy.Environment()


def _policy(gate: bool = False) -> dict:
    args = {"images": ["nginx:1.27"], "pull_retry_seconds": 30, "namespace": NS}
    if gate:
        args |= {"startup_taint": {"key": "prepull.dev/not-ready"}, "remove_startup_taint": True}
    policies = [o for o in prepull.manifests(args, "gpu") if o["kind"] == "ValidatingAdmissionPolicy"]
    (policy,) = [p for p in policies if p["spec"]["matchConstraints"]["resourceRules"][0]["resources"] == ["pods"]]
    return policy["spec"]


def _eval(expr: str, activation: dict):
    return ENV.program(ENV.compile(expr)).evaluate(activation)


def admit(pod_name=POD, namespace=NS, username=f"system:serviceaccount:{NS}:gpu-retry", token_pod=POD, extra=None, gate=False):
    """(allowed, failed messages) for the DELETE of pod ``namespace/pod_name``, as the API server decides for this policy alone.

    ``token_pod`` is the pod named in the requester's token; None gives a request with no ``extra``
    field at all (an impersonated or extra-less user); ``extra`` overrides the extras.
    """
    policy = _policy(gate)
    user = {"username": username}
    if token_pod:
        user["extra"] = {POD_NAME_EXTRA: [token_pod], "authentication.kubernetes.io/pod-uid": ["0000-1111"]}
    if extra is not None:
        user["extra"] = extra
    act = {
        # For a DELETE the object is null; the pod being deleted is the old object.
        "object": celpy.json_to_cel(None),
        "oldObject": celpy.json_to_cel({"metadata": {"name": pod_name, "namespace": namespace}, "spec": {}}),
        "request": celpy.json_to_cel({"operation": "DELETE", "namespace": namespace, "userInfo": user}),
    }
    if not all(_eval(cond["expression"], act) for cond in policy["matchConditions"]):
        return True, []  # the policy does not apply to this request
    assert not policy.get("variables")
    failed = [v["message"] for v in policy["validations"] if not _eval(v["expression"], act)]
    return not failed, failed


OWN_POD_ONLY = ["the pre-puller's pull-retry watchdog may only delete its own pod"]


def test_deleting_its_own_pod_is_allowed():
    assert admit() == (True, [])


def test_deleting_another_pod_is_denied():
    assert admit(pod_name="gpu-other") == (False, OWN_POD_ONLY)
    assert admit(pod_name="coredns-5d78c9869d-abcde") == (False, OWN_POD_ONLY)


def test_a_pod_of_the_same_name_in_another_namespace_is_denied():
    assert admit(namespace="team-a") == (False, OWN_POD_ONLY)


def test_a_token_without_extras_is_denied():
    assert admit(token_pod=None) == (False, OWN_POD_ONLY)


@pytest.mark.parametrize("extra", [{}, {"other.example/key": ["x"]}, {POD_NAME_EXTRA: []}])
def test_extras_without_its_pod_name_are_denied(extra):
    assert admit(extra=extra) == (False, OWN_POD_ONLY)


def test_other_identities_are_not_matched():
    # Anyone else (the DaemonSet controller, an admin) is outside this policy's scope.
    for user in ("system:serviceaccount:kube-system:daemon-set-controller", "admin", f"system:serviceaccount:{NS}:default"):
        assert admit(pod_name="gpu-other", username=user) == (True, [])


def test_with_the_gate_the_shared_identity_is_the_one_restricted():
    shared = f"system:serviceaccount:{NS}:gpu-untaint"
    assert admit(username=shared, gate=True) == (True, [])
    assert admit(pod_name="gpu-other", username=shared, gate=True) == (False, OWN_POD_ONLY)
    assert admit(pod_name="gpu-other", username=f"system:serviceaccount:{NS}:gpu-retry", gate=True) == (True, [])
