"""The new-node gate's untaint step, as rendered by ``prepull.manifests()``.

Covers its place in each DaemonSet, its token, the NetworkPolicy, the RBAC and
admission policy, and the behaviour of its shell script run against a fake kubectl.
"""

import os
import re
import shutil
import subprocess

import celpy
import pytest
from gate_helpers import busybox_shell, of_kind, one, pod

import prepull
from prepull.core import gate

KEY = "prepull.dev/not-ready"
NS, BASE = "warmup", "gpu"
IMAGES = ["nginx:1.27", "ghcr.io/org/app:2", "quay.io/x/tool:3"]
TOKEN_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
NODE = "ip-10-0-1-7.ec2.internal"
SH = "/bin/sh"
PLATFORMS = {"nginx:1.27": ["linux/amd64"], "ghcr.io/org/app:2": ["linux/arm64"]}  # amd64, arm64 and "other" DaemonSets
VARIANTS = {
    "kubelet": {},
    "platforms": {"image_platforms": PLATFORMS},
    "image-volume": {"method": "image-volume"},
    "docker-socket": {"method": "docker-socket"},
    "image-volume-platforms": {"method": "image-volume", "image_platforms": PLATFORMS},
}


def render(gate=True, **extra):
    args = {"images": IMAGES, "namespace": NS, "base_name": BASE, **extra}
    if gate:
        args.setdefault("startup_taint", {"key": KEY})
        args["remove_startup_taint"] = True
    return prepull.manifests(args)


def script_of(container):
    cmd = container.get("command") or []
    assert "-c" in cmd and cmd[cmd.index("-c") - 1] == "sh", cmd
    return cmd[cmd.index("-c") + 1]


def untaint_of(ds):
    """(index, container) of the init container whose script runs `kubectl taint`; exactly one."""
    found = [(i, c) for i, c in enumerate(pod(ds).get("initContainers") or []) if "kubectl taint" in " ".join(c.get("command") or [])]
    assert len(found) == 1, f"{ds['metadata']['name']}: {len(found)} untaint containers"
    return found[0]


def selects(selector, labels):
    """Kubernetes label-selector semantics (matchLabels and matchExpressions)."""
    ok = all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())
    for e in selector.get("matchExpressions") or []:
        present, value, values = e["key"] in labels, labels.get(e["key"]), e.get("values") or []
        ok = (
            ok
            and {"In": present and value in values, "NotIn": value not in values, "Exists": present, "DoesNotExist": not present}[
                e["operator"]
            ]
        )
    return ok


@pytest.mark.parametrize("extra", VARIANTS.values(), ids=VARIANTS.keys())
def test_untaint_is_the_last_init_container_after_every_pull(extra):
    dss = of_kind(render(**extra), "DaemonSet")
    assert len(dss) == (3 if "image_platforms" in extra else 1)
    for ds in dss:
        inits = pod(ds)["initContainers"]
        idx, untaint = untaint_of(ds)
        assert idx == len(inits) - 1, [c["name"] for c in inits]
        # every pull step (init container or image volume) exists for this DaemonSet and precedes the untaint
        pulls = [c for c in inits[:idx] if c["name"] != "prepull-noop"]
        image_volumes = [v for v in pod(ds).get("volumes") or [] if "image" in v and v["name"] != "prepull-bin"]
        assert pulls or image_volumes, ds["metadata"]["name"]
        # The static busybox the script runs on is there before it: copied in by an earlier init
        # container, or with method image-volume the helper image itself, mounted whole (no subPath:
        # image volumes take one only from Kubernetes 1.33 and containerd 2.2), its bin/busybox run.
        helper = next(m for m in untaint["volumeMounts"] if untaint["command"][0].startswith(m["mountPath"] + "/"))
        volume = next(v for v in pod(ds)["volumes"] if v["name"] == helper["name"])
        noops = [i for i, c in enumerate(inits) if c["name"] == "prepull-noop"]
        if extra.get("method") == "image-volume":
            assert noops == [] and "subPath" not in helper and untaint["command"][0] == helper["mountPath"] + "/bin/busybox"
            assert volume["image"]["reference"] == "docker.io/library/busybox:1.37.0-musl"
            # Every image volume is mounted in the step too: the kubelet starts a container only once
            # the volumes it mounts are pulled, so the taint cannot go while one of them failed.
            holder = pod(ds)["containers"][0]
            assert {m["name"] for m in holder["volumeMounts"]} <= {m["name"] for m in untaint["volumeMounts"]}
            assert all(m["readOnly"] for m in untaint["volumeMounts"] if m["name"].startswith("img-"))
            continue
        assert len(noops) == 1 and noops[0] < idx and "emptyDir" in volume
        noop = inits[noops[0]]
        assert "cp" in noop["command"] and untaint["command"][0] == noop["command"][-1]
        noop_mount = next(m for m in noop["volumeMounts"] if noop["command"][-1].startswith(m["mountPath"] + "/"))
        assert noop_mount["name"] == helper["name"] and noop_mount["mountPath"] == helper["mountPath"] and "subPath" not in helper


@pytest.mark.parametrize("extra", VARIANTS.values(), ids=VARIANTS.keys())
def test_token_is_projected_only_into_the_untaint_container(extra):
    objs = render(**extra)
    sa = one(objs, "ServiceAccount")
    for ds in of_kind(objs, "DaemonSet"):
        spec = pod(ds)
        assert spec["automountServiceAccountToken"] is False
        assert spec["serviceAccountName"] == sa["metadata"]["name"]
        assert sa["metadata"]["namespace"] == ds["metadata"]["namespace"] == NS
        _, untaint = untaint_of(ds)
        volumes = {v["name"]: v for v in spec["volumes"]}
        token_mounts = [m for m in untaint["volumeMounts"] if m["mountPath"].rstrip("/") == TOKEN_MOUNT]
        assert len(token_mounts) == 1 and token_mounts[0].get("readOnly") is True
        token_volume = token_mounts[0]["name"]
        sources = volumes[token_volume]["projected"]["sources"]
        sat = [s["serviceAccountToken"] for s in sources if "serviceAccountToken" in s]
        assert len(sat) == 1 and sat[0]["path"] == "token" and not sat[0].get("audience")  # audience: the API server
        cms = [s["configMap"] for s in sources if "configMap" in s]
        assert [(c["name"], c["items"]) for c in cms] == [("kube-root-ca.crt", [{"key": "ca.crt", "path": "ca.crt"}])]
        items = [i for s in sources if "downwardAPI" in s for i in s["downwardAPI"]["items"]]
        assert [(i["path"], i["fieldRef"]["fieldPath"]) for i in items] == [("namespace", "metadata.namespace")]
        # no other container sees the token: not by volume, not by path
        others = [c for c in spec.get("initContainers", []) + spec["containers"] if c is not untaint]
        for c in others:
            for m in c.get("volumeMounts") or []:
                assert m["name"] != token_volume and not m["mountPath"].startswith("/var/run/secrets"), (c["name"], m)
        assert [v["name"] for v in spec["volumes"] if "projected" in v or "secret" in v] == [token_volume]
        env = {e["name"]: e for e in untaint["env"]}
        assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
        # kubectl writes its cache under $HOME: a writable emptyDir, since the root filesystem is read-only
        assert untaint["securityContext"]["readOnlyRootFilesystem"] is True
        home = env["HOME"]["value"]
        covering = [m for m in untaint["volumeMounts"] if (home + "/").startswith(m["mountPath"].rstrip("/") + "/")]
        home_mounts = sorted(covering, key=lambda m: len(m["mountPath"]))  # the deepest mount holds $HOME
        assert home_mounts and not home_mounts[-1].get("readOnly")
        assert "emptyDir" in volumes[home_mounts[-1]["name"]]


def test_network_policy_denies_all_without_gate_and_allows_only_api_egress_with_it():
    closed, gated = one(render(gate=False), "NetworkPolicy"), one(render(), "NetworkPolicy")
    for np in (closed, gated):
        assert set(np["spec"]["policyTypes"]) == {"Ingress", "Egress"}  # an unlisted type would mean allow-all
        assert not np["spec"].get("ingress")
    assert not closed["spec"].get("egress")
    rules = gated["spec"]["egress"]
    assert rules and all(not r.get("to") for r in rules)  # to anywhere: the API server address varies by cluster
    ports = [(p.get("protocol", "TCP"), p["port"], p.get("endPort")) for r in rules for p in r["ports"]]
    assert sorted(ports) == [("TCP", 443, None), ("TCP", 6443, None)]


@pytest.mark.parametrize("gate", [True, False])
def test_network_policy_selects_exactly_this_prepullers_pods(gate):
    objs = render(gate=gate, image_platforms=PLATFORMS)
    np = one(objs, "NetworkPolicy")
    dss = of_kind(objs, "DaemonSet")
    assert len(dss) == 3
    for ds in dss:
        assert ds["metadata"]["namespace"] == np["metadata"]["namespace"]
        assert selects(np["spec"]["podSelector"], ds["spec"]["template"]["metadata"]["labels"])
    args = {"images": IMAGES, "namespace": NS, "base_name": "other"}
    if gate:
        args.update(startup_taint={"key": KEY}, remove_startup_taint=True)
    for ds in of_kind(prepull.manifests(args), "DaemonSet"):
        assert not selects(np["spec"]["podSelector"], ds["spec"]["template"]["metadata"]["labels"])


def test_rbac_grants_only_get_and_patch_on_nodes_to_the_service_account():
    objs = render()
    sa = one(objs, "ServiceAccount")["metadata"]["name"]
    role, binding = one(objs, "ClusterRole"), one(objs, "ClusterRoleBinding")
    assert not of_kind(objs, "Role") and not of_kind(objs, "RoleBinding") and "aggregationRule" not in role
    grants = {
        (g, r, v) for rule in role["rules"] for g in rule.get("apiGroups", []) for r in rule.get("resources", []) for v in rule["verbs"]
    }
    assert grants == {("", "nodes", "get"), ("", "nodes", "patch")}
    assert all(not rule.get("nonResourceURLs") for rule in role["rules"])
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa, "namespace": NS}]


def test_admission_policy_applies_to_exactly_that_identity_and_denies():
    objs = render()
    sa = one(objs, "ServiceAccount")["metadata"]["name"]
    vap, vapb = one(objs, "ValidatingAdmissionPolicy"), one(objs, "ValidatingAdmissionPolicyBinding")
    assert vap["spec"]["failurePolicy"] == "Fail"
    assert vapb["spec"]["policyName"] == vap["metadata"]["name"]
    assert vapb["spec"]["validationActions"] == ["Deny"]
    env = celpy.Environment()

    def applies(user):
        act = {"request": celpy.json_to_cel({"operation": "UPDATE", "userInfo": {"username": user, "extra": {}}})}
        return all(env.program(env.compile(c["expression"])).evaluate(act) for c in vap["spec"]["matchConditions"])

    assert vap["spec"]["matchConditions"]
    assert applies(f"system:serviceaccount:{NS}:{sa}")
    for user in (f"system:serviceaccount:{NS}:default", f"system:serviceaccount:prepull:{sa}", f"system:node:{NODE}", "admin"):
        assert not applies(user), user


# Records each call's arguments (one a line, then "--end--"); outcomes come from the environment.
FAKE_KUBECTL = r"""#!/bin/sh
for a in "$@"; do printf '%s\n' "$a"; done >> "$FAKE_LOG"; echo --end-- >> "$FAKE_LOG"
case "$1" in
taint) failed=$(grep -c '^taint$' "$FAKE_LOG")
  [ -z "$FAKE_TAINT_ERR" ] || [ "$failed" -gt "${FAKE_TAINT_FAILS:-999}" ] && { echo "node/$3 untainted"; exit 0; }
  echo "$FAKE_TAINT_ERR" >&2; exit 1;;
get) [ -n "$FAKE_GET_ERR" ] && { echo "$FAKE_GET_ERR" >&2; exit 1; }; printf '%s' "$FAKE_GET_OUT"; exit 0;;
esac
echo "fake kubectl: unexpected call: $*" >&2; exit 99
"""
# Records the pause between tries instead of taking it.
FAKE_SLEEP = """#!/bin/sh
printf 'sleep\\n%s\\n--end--\\n' "$1" >> "$FAKE_LOG"
"""
TRIES = 3  # the script's bound on tries, lowered from 150 so that giving up takes no time
NOT_FOUND = 'error: taint "prepull.dev/not-ready:NoSchedule" not found'
FORBIDDEN = "Error from server (Forbidden): nodes is forbidden: ValidatingAdmissionPolicy denied request"
DOWN = "The connection to the server 10.96.0.1:443 was refused - did you specify the right host or port?"


def run_script(tmp_path, effect="NoSchedule", taint_err="", get_out="", get_err="", taint_fails=None, shell=SH):
    # The real pod runs the script with busybox sh; here /bin/sh (dash is fine: the script is POSIX sh),
    # which, unlike busybox, finds `sleep` on PATH: the fake one.
    if not os.access(shell, os.X_OK):
        pytest.fail(f"{shell} is required to run the untaint script under test, and is missing")
    _, untaint = untaint_of(of_kind(render(startup_taint={"key": KEY, "effect": effect}), "DaemonSet")[0])
    bindir, log = tmp_path / "bin", tmp_path / "calls"
    bindir.mkdir()
    (bindir / "kubectl").write_text(FAKE_KUBECTL)
    (bindir / "kubectl").chmod(0o755)
    (bindir / "sleep").write_text(FAKE_SLEEP)
    (bindir / "sleep").chmod(0o755)
    for tool in ("grep", "timeout"):
        (bindir / tool).symlink_to(shutil.which(tool))
    env = {
        "PATH": str(bindir),
        "NODE_NAME": NODE,
        "HOME": str(tmp_path),
        "FAKE_LOG": str(log),
        "FAKE_TAINT_ERR": taint_err,
        "FAKE_GET_OUT": get_out,
        "FAKE_GET_ERR": get_err,
        **({"FAKE_TAINT_FAILS": str(taint_fails)} if taint_fails is not None else {}),
    }
    proc = subprocess.run([shell, "-c", script_of(untaint)], env=env, capture_output=True, text=True, timeout=30)
    calls = [c.split("\n")[:-1] for c in log.read_text().split("--end--\n")[:-1]] if log.exists() else []
    return proc, calls


def check_get_call(call, key=KEY):
    assert call[:3] == ["get", "node", NODE], call
    rest = " ".join(call[3:])
    m = re.search(r"(?:-o[= ]|--output[= ])jsonpath=(\S+)", rest)
    assert m, call
    sel = re.fullmatch(r"\{\.spec\.taints\[\?\(@\.key==[\"']([^\"']+)[\"']\)\]\.effect\}", m.group(1))
    assert sel and sel.group(1) == key, m.group(1)


@pytest.mark.parametrize("effect", ["NoSchedule", "NoExecute"])
def test_script_removes_present_taint(tmp_path, effect):
    proc, calls = run_script(tmp_path, effect=effect)
    assert proc.returncode == 0, proc.stderr
    assert calls == [["taint", "node", NODE, f"{KEY}:{effect}-"]]


@pytest.mark.parametrize("get_out", ["", "NoExecute"], ids=["taint-gone", "same-key-other-effect"])
def test_script_succeeds_when_taint_already_absent(tmp_path, get_out):
    proc, calls = run_script(tmp_path, taint_err=NOT_FOUND, get_out=get_out)
    assert proc.returncode == 0, proc.stderr
    assert len(calls) == 2 and calls[0] == ["taint", "node", NODE, f"{KEY}:NoSchedule-"]
    check_get_call(calls[1])


@pytest.fixture(autouse=True)
def few_tries(monkeypatch):
    monkeypatch.setattr(gate, "UNTAINT_TRIES", TRIES)


def tries(calls):
    """The calls grouped by try: each ends with the pause before the next ("sleep")."""
    groups, current = [], []
    for call in calls:
        current.append(call[0])
        if call[0] == "sleep":
            groups.append(current)
            current = []
    return [*groups, current] if current else groups


@pytest.mark.parametrize(
    "effect, get_out", [("NoSchedule", "NoSchedule"), ("NoSchedule", "NoExecute NoSchedule"), ("NoExecute", "NoExecute")]
)
def test_script_gives_up_after_its_tries_when_taint_is_still_there(tmp_path, effect, get_out):
    proc, calls = run_script(tmp_path, effect=effect, taint_err=FORBIDDEN, get_out=get_out)
    assert proc.returncode != 0 and f"{KEY}:{effect}" in proc.stderr and f"after {TRIES} tries" in proc.stderr
    assert tries(calls) == [["taint", "get", "sleep"]] * (TRIES - 1) + [["taint", "get"]]
    assert [c for c in calls if c[0] == "sleep"] == [["sleep", str(gate.UNTAINT_RETRY_SECONDS)]] * (TRIES - 1)
    check_get_call(calls[1])


def test_script_gives_up_after_its_tries_when_api_unreachable(tmp_path):
    proc, calls = run_script(tmp_path, taint_err=DOWN, get_err=DOWN)
    assert proc.returncode != 0
    assert tries(calls) == [["taint", "get", "sleep"]] * (TRIES - 1) + [["taint", "get"]]


def test_script_removes_the_taint_on_the_try_after_the_api_server_is_back(tmp_path):
    proc, calls = run_script(tmp_path, taint_err=DOWN, get_err=DOWN, taint_fails=TRIES - 1)
    assert proc.returncode == 0, proc.stderr
    assert tries(calls) == [["taint", "get", "sleep"]] * (TRIES - 1) + [["taint"]]
    # Each call bounded: kubectl's --request-timeout would make it ignore the in-cluster configuration.
    assert script_of(untaint_of(of_kind(render(), "DaemonSet")[0])[1]).count("timeout 30 kubectl ") == 2
    assert not any("--request-timeout" in arg for call in calls for arg in call)


def test_script_runs_under_busybox_sh_as_in_the_pod(tmp_path):
    # busybox sh runs its own `sleep` (not the fake): the first try succeeds, so nothing waits.
    proc, calls = run_script(tmp_path, shell=busybox_shell(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert calls == [["taint", "node", NODE, f"{KEY}:NoSchedule-"]]


def test_cluster_scoped_names_never_collide_across_namespaces():
    # "team-a"+"gpu" and "team"+"a-gpu" joined with dashes would both give "team-a-gpu".
    def names(namespace, base):
        objs = prepull.manifests(
            {"images": ["nginx:1"], "startup_taint": {"key": "t"}, "remove_startup_taint": True, "namespace": namespace}, base
        )
        return {(o["kind"], o["metadata"]["name"]) for o in objs if "namespace" not in o["metadata"] and o["kind"] != "Namespace"}

    a, b = names("team-a", "gpu"), names("team", "a-gpu")
    assert len(a) == 4 and not a & b


def test_gate_covers_nodes_of_an_architecture_no_image_is_for():
    # Every image is pinned to a platform: a node of another architecture pulls nothing but must still lose the taint.
    objs = prepull.manifests(
        {
            "images": [{"image": "a:1", "platforms": ["linux/amd64"]}, {"image": "b:1", "platforms": ["linux/arm64"]}],
            "startup_taint": {"key": "t"},
            "remove_startup_taint": True,
        },
        "pp",
    )
    other = next(o for o in objs if o["kind"] == "DaemonSet" and o["metadata"]["name"] == "pp-other")
    spec = other["spec"]["template"]["spec"]
    assert [c["name"] for c in spec["initContainers"]] == ["prepull-noop", "untaint"]
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "NotIn", "values": ["amd64", "arm64"]}]}]
    # Without the gate such nodes need no pod at all.
    plain = prepull.manifests(
        {"images": [{"image": "a:1", "platforms": ["linux/amd64"]}, {"image": "b:1", "platforms": ["linux/arm64"]}]}, "pp"
    )
    assert "pp-other" not in {o["metadata"]["name"] for o in plain}
