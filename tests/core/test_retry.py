"""The pull-retry watchdog (``pull_retry_seconds``), as rendered by ``prepull.manifests()``.

Covers its place among the init containers, its token, the ServiceAccount it shares with the gate,
its RBAC and admission policy objects, the NetworkPolicy, the inputs it is refused with, and that
leaving it out changes nothing. Its script is run against a fake kubectl in test_retry_script.py,
its policy's CEL evaluated in test_retry_cel.py.
"""

import celpy
import pytest
from gate_helpers import of_kind, one, pod

import prepull
from prepull import PrePullInputError

KEY = "prepull.dev/not-ready"
NS, BASE = "warmup", "gpu"
IMAGES = ["nginx:1.27", "ghcr.io/org/app:2", "quay.io/x/tool:3"]
TOKEN_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
SECONDS = 30
PLATFORMS = {"nginx:1.27": ["linux/amd64"], "ghcr.io/org/app:2": ["linux/arm64"]}  # amd64, arm64 and "other" DaemonSets
GATE = {"startup_taint": {"key": KEY}, "remove_startup_taint": True}
VARIANTS = {
    "retry": {},
    "retry-platforms": {"image_platforms": PLATFORMS},
    "retry-lanes": {"lanes": 2},
    "retry-gate": GATE,
    "retry-gate-platforms": {**GATE, "image_platforms": PLATFORMS},
}


def render(retry=SECONDS, **extra):
    args = {"images": IMAGES, "namespace": NS, "base_name": BASE, **extra}
    if retry is not None:
        args["pull_retry_seconds"] = retry
    return prepull.manifests(args)


def sidecars(ds):
    return [(i, c) for i, c in enumerate(pod(ds)["initContainers"]) if c.get("restartPolicy") == "Always"]


def watchdog_of(ds):
    """(index, container) of the watchdog: the one init container with restartPolicy Always."""
    found = sidecars(ds)
    assert len(found) == 1, f"{ds['metadata']['name']}: {len(found)} sidecars"
    return found[0]


def token_volumes(spec):
    return {v["name"] for v in spec.get("volumes") or [] if "projected" in v or "secret" in v}


# --------------------------------------------------------------------------- place and shape


@pytest.mark.parametrize("extra", VARIANTS.values(), ids=VARIANTS.keys())
def test_the_watchdog_is_a_sidecar_right_after_the_helper_copy_and_before_every_pull(extra):
    dss = of_kind(render(**extra), "DaemonSet")
    assert dss
    for ds in dss:
        inits = pod(ds)["initContainers"]
        idx, watchdog = watchdog_of(ds)
        # It runs the static busybox the copy step puts in the shared volume, so the copy comes first...
        assert inits[0]["name"] == "prepull-noop" and idx == 1, [c["name"] for c in inits]
        copy = inits[0]
        assert "cp" in copy["command"] and watchdog["command"][:3] == [copy["command"][-1], "sh", "-c"]
        copy_mount = next(m for m in copy["volumeMounts"] if copy["command"][-1].startswith(m["mountPath"] + "/"))
        assert {"name": copy_mount["name"], "mountPath": copy_mount["mountPath"], "readOnly": True} in watchdog["volumeMounts"]
        # ... and every pull after it, so it is running while they pull (and back off).
        pulls = [c for c in inits[idx + 1 :] if c["name"].startswith("pull-")]
        assert pulls and all(c["name"].startswith("pull-") for c in inits[2:] if c["name"] != "untaint")
        assert "restartPolicy" not in copy and all("restartPolicy" not in c for c in pulls)
        # The gate's untaint step stays last: the node opens only after every pull.
        if "remove_startup_taint" in extra:
            assert inits[-1]["name"] == "untaint"


def test_the_watchdog_runs_kubectl_from_untaint_image_with_its_pod_name():
    ds = one(render(untaint_image="registry.example.com/kubectl:v1.33.0"), "DaemonSet")
    _, watchdog = watchdog_of(ds)
    assert watchdog["name"] == "prepull-retry"
    assert watchdog["image"] == "registry.example.com/kubectl:v1.33.0" and watchdog["imagePullPolicy"] == "IfNotPresent"
    env = {e["name"]: e for e in watchdog["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    script = watchdog["command"][3]
    assert f"sleep {SECONDS} " in script and "--request-timeout" not in script
    # The default kubectl image when none is given: the gate's.
    _, default = watchdog_of(one(render(), "DaemonSet"))
    assert default["image"] == "registry.k8s.io/kubectl:v1.32.3"


def test_the_watchdog_has_the_untaint_steps_security_context_and_resources():
    ds = one(render(**GATE), "DaemonSet")
    _, watchdog = watchdog_of(ds)
    untaint = pod(ds)["initContainers"][-1]
    assert watchdog["securityContext"] == untaint["securityContext"]
    assert watchdog["securityContext"]["readOnlyRootFilesystem"] is True
    assert watchdog["resources"] == untaint["resources"]
    for kind in ("requests", "limits"):
        assert set(watchdog["resources"][kind]) == {"cpu", "memory", "ephemeral-storage"}
    # kubectl's home (its discovery cache) is a writable emptyDir of its own, since the root filesystem is read-only.
    home = next(e["value"] for e in watchdog["env"] if e["name"] == "HOME")
    (home_mount,) = [m for m in watchdog["volumeMounts"] if m["mountPath"] == home]
    volumes = {v["name"]: v for v in pod(ds)["volumes"]}
    assert "emptyDir" in volumes[home_mount["name"]] and not home_mount.get("readOnly")
    assert home_mount["name"] not in {m["name"] for m in untaint["volumeMounts"]}


@pytest.mark.parametrize("extra", VARIANTS.values(), ids=VARIANTS.keys())
def test_each_token_is_projected_only_into_its_own_container(extra):
    objs = render(**extra)
    (sa,) = of_kind(objs, "ServiceAccount")
    assert sa["automountServiceAccountToken"] is False
    for ds in of_kind(objs, "DaemonSet"):
        spec = pod(ds)
        assert spec["automountServiceAccountToken"] is False
        assert spec["serviceAccountName"] == sa["metadata"]["name"]
        _, watchdog = watchdog_of(ds)
        mounts = [m for m in watchdog["volumeMounts"] if m["mountPath"].rstrip("/") == TOKEN_MOUNT]
        assert len(mounts) == 1 and mounts[0]["readOnly"] is True
        token = mounts[0]["name"]
        assert token in token_volumes(spec)
        sources = next(v for v in spec["volumes"] if v["name"] == token)["projected"]["sources"]
        (sat,) = [s["serviceAccountToken"] for s in sources if "serviceAccountToken" in s]
        assert sat["path"] == "token" and not sat.get("audience")
        # No other container mounts it, or anything under /var/run/secrets; each token volume has one reader.
        readers = {}
        for c in spec["initContainers"] + spec["containers"]:
            for m in c.get("volumeMounts") or []:
                if m["name"] in token_volumes(spec) or m["mountPath"].startswith("/var/run/secrets"):
                    readers.setdefault(m["name"], []).append(c["name"])
        assert readers[token] == ["prepull-retry"]
        assert all(len(names) == 1 for names in readers.values()), readers
        assert set(readers) == token_volumes(spec)


# --------------------------------------------------------------------------- the identity and its rights


def test_without_the_gate_the_pod_has_its_own_retry_service_account():
    objs = render()
    sa = one(objs, "ServiceAccount")
    assert (sa["metadata"]["name"], sa["metadata"]["namespace"]) == (f"{BASE}-retry", NS)
    assert not of_kind(objs, "ClusterRole") and not of_kind(objs, "ClusterRoleBinding")


def test_with_the_gate_one_service_account_carries_both_roles():
    objs = render(**GATE)
    sa = one(objs, "ServiceAccount")["metadata"]["name"]
    assert sa == f"{BASE}-untaint"
    subjects = [b["subjects"] for b in of_kind(objs, "ClusterRoleBinding") + of_kind(objs, "RoleBinding")]
    assert subjects == [[{"kind": "ServiceAccount", "name": sa, "namespace": NS}]] * 2
    username = f"system:serviceaccount:{NS}:{sa}"
    policies = of_kind(objs, "ValidatingAdmissionPolicy")
    assert len(policies) == 2
    assert all(p["spec"]["matchConditions"][0]["expression"] == f"request.userInfo.username == '{username}'" for p in policies)


def test_with_the_gate_every_gated_object_is_unchanged():
    def by_id(objs):
        return {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in objs}

    gated, both = by_id(render(retry=None, **GATE)), by_id(render(**GATE))
    for key, obj in gated.items():
        if key[0] != "DaemonSet":
            assert both[key] == obj, key
    added = sorted(k[0] for k in set(both) - set(gated))
    assert added == ["Role", "RoleBinding", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"]


@pytest.mark.parametrize("extra", [{}, GATE], ids=["retry", "retry-gate"])
def test_rbac_grants_only_get_and_delete_on_pods_in_the_namespace(extra):
    objs = render(**extra)
    sa = one(objs, "ServiceAccount")["metadata"]["name"]
    role, binding = one(objs, "Role"), one(objs, "RoleBinding")
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == NS
    grants = {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    assert grants == {("", "pods", "get"), ("", "pods", "delete")}
    assert all(not rule.get("resourceNames") and not rule.get("nonResourceURLs") for rule in role["rules"])
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa, "namespace": NS}]
    # No cluster-wide grant comes with the watchdog.
    for cluster_role in of_kind(objs, "ClusterRole"):
        assert all(rule["resources"] == ["nodes"] for rule in cluster_role["rules"])


def test_admission_policy_matches_that_identitys_pod_deletions_and_denies():
    objs = render()
    sa = one(objs, "ServiceAccount")["metadata"]["name"]
    vap, vapb = one(objs, "ValidatingAdmissionPolicy"), one(objs, "ValidatingAdmissionPolicyBinding")
    assert vap["spec"]["failurePolicy"] == "Fail"
    assert vap["spec"]["matchConstraints"]["resourceRules"] == [
        {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["DELETE"], "resources": ["pods"]}
    ]
    assert (vapb["spec"]["policyName"], vapb["spec"]["validationActions"]) == (vap["metadata"]["name"], ["Deny"])
    env = celpy.Environment()

    def applies(user):
        act = {"request": celpy.json_to_cel({"operation": "DELETE", "userInfo": {"username": user}})}
        return all(env.program(env.compile(c["expression"])).evaluate(act) for c in vap["spec"]["matchConditions"])

    assert applies(f"system:serviceaccount:{NS}:{sa}")
    for user in (f"system:serviceaccount:{NS}:default", f"system:serviceaccount:prepull:{sa}", "system:node:n1", "admin"):
        assert not applies(user), user


def test_cluster_scoped_names_never_collide_across_namespaces_or_with_the_gates():
    def names(namespace, base):
        objs = prepull.manifests({"images": ["nginx:1"], "pull_retry_seconds": 10, "namespace": namespace, **GATE}, base)
        return {(o["kind"], o["metadata"]["name"]) for o in objs if "namespace" not in o["metadata"] and o["kind"] != "Namespace"}

    a, b = names("team-a", "gpu"), names("team", "a-gpu")
    assert len(a) == 6 and not a & b


@pytest.mark.parametrize("extra", [{}, GATE], ids=["retry", "retry-gate"])
def test_network_policy_allows_only_api_egress(extra):
    rules = one(render(**extra), "NetworkPolicy")["spec"]["egress"]
    assert rules and all(not r.get("to") for r in rules)
    assert sorted((p["protocol"], p["port"]) for r in rules for p in r["ports"]) == [("TCP", 443), ("TCP", 6443)]
    assert not one(render(retry=None), "NetworkPolicy")["spec"]["egress"]


# --------------------------------------------------------------------------- left out, and refused


@pytest.mark.parametrize("extra", [{}, GATE, {"method": "image-volume"}], ids=["kubelet", "gate", "image-volume"])
def test_unset_or_none_renders_exactly_what_it_did_before(extra):
    without = render(retry=None, **extra)
    assert render(retry=None, pull_retry_seconds=None, **extra) == without
    assert not any(c.get("restartPolicy") for ds in of_kind(without, "DaemonSet") for c in pod(ds).get("initContainers") or [])
    assert not of_kind(without, "Role")


@pytest.mark.parametrize("seconds", [10, 10.0, 300])
def test_the_bounds_are_accepted(seconds):
    _, watchdog = watchdog_of(one(render(retry=seconds), "DaemonSet"))
    assert f"sleep {int(seconds)} " in watchdog["command"][3]


@pytest.mark.parametrize("seconds", [9, 0, -30, 301, 3600, 12.5, "30", True, [30]])
def test_out_of_range_or_not_a_whole_number_is_refused(seconds):
    with pytest.raises(PrePullInputError) as exc:
        render(retry=seconds)
    assert exc.value.field == "pull_retry_seconds" and exc.value.value == seconds
    assert str(exc.value) == f"pull_retry_seconds: must be a whole number from 10 to 300 (got {seconds!r})"


@pytest.mark.parametrize(
    "method, why",
    [
        ("image-volume", "with image-volume a failed volume pull blocks the pod before any container runs"),
        ("docker-socket", "with docker-socket a failed `docker pull` is a container restart"),
    ],
)
def test_only_method_kubelet_is_accepted(method, why):
    with pytest.raises(PrePullInputError) as exc:
        render(method=method)
    assert (exc.value.field, exc.value.value) == ("pull_retry_seconds", SECONDS)
    assert str(exc.value).startswith(f"pull_retry_seconds: needs method kubelet, not {method}: {why}")
    assert str(exc.value).endswith(f"(got {SECONDS})")


def test_untaint_image_is_accepted_with_the_watchdog_and_still_refused_without_a_kubectl_step():
    assert of_kind(render(untaint_image="registry.k8s.io/kubectl:v1.33.0"), "DaemonSet")
    with pytest.raises(PrePullInputError) as exc:
        render(retry=None, untaint_image="registry.k8s.io/kubectl:v1.33.0")
    assert exc.value.field == "untaint_image"
    assert exc.value.reason == "is only used with remove_startup_taint or pull_retry_seconds"
