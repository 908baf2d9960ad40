"""Behaviour of ``prepull.manifests()``: the exact objects the component deploys.

Expected values are derived from the inputs and from Kubernetes rules
(Pod Security "restricted", pod effective requests, scheduling predicates),
not copied from the output.
"""

import json
import os
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
import yaml

import prepull
from prepull import Method, PullPolicy, TaintEffect, TolerationOperator
from prepull.core.images import KNOWN_ARCHES, parse_image

ROOT = Path(__file__).resolve().parents[2]
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
IMAGES = ["nginx:1.27", "gcr.io/distroless/static:nonroot", "ghcr.io/org/app@sha256:" + "ab" * 32]
CANONICAL = [parse_image(i, "t").canonical for i in IMAGES]


# --------------------------------------------------------------------------- helpers


def daemon_sets(objs):
    return [o for o in objs if o["kind"] == "DaemonSet"]


def one_ds(args, name="pp"):
    dss = daemon_sets(prepull.manifests(args, name))
    assert len(dss) == 1, [d["metadata"]["name"] for d in dss]
    return dss[0]


def pod(ds):
    return ds["spec"]["template"]["spec"]


def all_containers(spec):
    return [c for key in ("initContainers", "containers", "ephemeralContainers") for c in spec.get(key) or []]


def pull_containers(spec):
    """The init containers that pull a listed image (everything but the no-op copy step)."""
    return [c for c in spec.get("initContainers") or [] if c["name"] != "prepull-noop"]


def images_pulled(ds):
    """Images a DaemonSet's pod pulls, in order, whatever the method."""
    spec = pod(ds)
    vols = [v["image"]["reference"] for v in spec.get("volumes") or [] if "image" in v]
    if vols:
        return vols
    pulled = []
    for c in pull_containers(spec):
        if c["command"][:2] == ["docker", "pull"]:
            pulled.append(c["command"][-1])
        else:
            pulled.append(c["image"])
    return pulled


# Pod Security Admission "restricted" (k8s_mechanics.md §5; pod-security-admission policy/*):
# all baseline checks relevant here plus the restricted ones, over init, regular and ephemeral containers.
RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "image",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
SECCOMP_OK = {"RuntimeDefault", "Localhost"}


def restricted_violations(spec):
    """Return the list of Pod Security "restricted" violations of a PodSpec (empty = admitted)."""
    v = []
    psc = spec.get("securityContext") or {}
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(host):
            v.append(f"{host} is true")
    for vol in spec.get("volumes") or []:
        types = set(vol) - {"name"}
        if not types <= RESTRICTED_VOLUME_TYPES:
            v.append(f"volume {vol['name']} has type {sorted(types - RESTRICTED_VOLUME_TYPES)}")
    pod_nonroot = psc.get("runAsNonRoot") is True
    if psc.get("runAsUser") == 0:
        v.append("pod runAsUser is 0")
    pod_seccomp = (psc.get("seccompProfile") or {}).get("type")
    if pod_seccomp is not None and pod_seccomp not in SECCOMP_OK:
        v.append(f"pod seccompProfile {pod_seccomp}")
    for c in all_containers(spec):
        name = c["name"]
        sc = c.get("securityContext") or {}
        if sc.get("privileged"):
            v.append(f"{name}: privileged")
        for port in c.get("ports") or []:
            if port.get("hostPort"):
                v.append(f"{name}: hostPort {port['hostPort']}")
        if sc.get("allowPrivilegeEscalation") is not False:
            v.append(f"{name}: allowPrivilegeEscalation is not false")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            v.append(f"{name}: capabilities do not drop ALL")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            v.append(f"{name}: adds capabilities {caps['add']}")
        if sc.get("runAsNonRoot") is False or (not pod_nonroot and sc.get("runAsNonRoot") is not True):
            v.append(f"{name}: runAsNonRoot is not true")
        if sc.get("runAsUser") == 0:
            v.append(f"{name}: runAsUser is 0")
        seccomp = (sc.get("seccompProfile") or {}).get("type")
        if seccomp is not None and seccomp not in SECCOMP_OK:
            v.append(f"{name}: seccompProfile {seccomp}")
        if seccomp is None and pod_seccomp is None:
            v.append(f"{name}: no seccompProfile at pod or container level")
        if sc.get("procMount") not in (None, "Default"):
            v.append(f"{name}: procMount {sc['procMount']}")
    return v


_SUFFIX = {"m": Fraction(1, 1000), "": 1, "k": 10**3, "M": 10**6, "G": 10**9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}


def quantity(q):
    m = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", q)
    assert m, q
    return Fraction(m.group(1)) * _SUFFIX[m.group(2)]


def effective_request(spec, resource):
    """The pod's effective request per the Kubernetes rules (KEP-753 included):
    max(max over init containers of (its request + sidecars started before it),
        sum(regular containers) + sum(sidecars))."""
    req = lambda c: quantity(c["resources"]["requests"][resource])  # noqa: E731
    sidecars = Fraction(0)
    init_max = Fraction(0)
    for c in spec.get("initContainers") or []:
        if c.get("restartPolicy") == "Always":
            sidecars += req(c)
            init_max = max(init_max, sidecars)
        else:
            init_max = max(init_max, req(c) + sidecars)
    return max(init_max, sum((req(c) for c in spec["containers"]), Fraction(0)) + sidecars)


def tolerates(toleration, taint):
    """Kubernetes' Toleration.ToleratesTaint."""
    if toleration.get("effect") and toleration["effect"] != taint["effect"]:
        return False
    if toleration.get("key") and toleration["key"] != taint["key"]:
        return False
    op = toleration.get("operator", "Equal")
    if op == "Exists":
        return True
    return toleration.get("value", "") == taint.get("value", "")


def could_schedule(ds, node_labels):
    """Whether the DaemonSet's pods may land on a node with these labels (nodeSelector + required nodeAffinity)."""
    spec = pod(ds)
    if any(node_labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return False
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution")
    if not required:
        return True

    def term_ok(term):
        for e in term.get("matchExpressions") or []:
            val = node_labels.get(e["key"])
            if e["operator"] == "In" and val not in e["values"]:
                return False
            if e["operator"] == "NotIn" and val in e["values"]:
                return False
            if e["operator"] not in ("In", "NotIn"):
                raise AssertionError(f"unexpected operator {e['operator']}")
        return True

    return any(term_ok(t) for t in required["nodeSelectorTerms"])


def linux_node(arch):
    return {"kubernetes.io/os": "linux", "kubernetes.io/arch": arch}


# --------------------------------------------------------------------------- kubelet method


def test_each_image_is_one_init_container_in_order_after_the_noop_copy():
    spec = pod(one_ds({"images": IMAGES + ["nginx"]}))
    init = spec["initContainers"]
    assert init[0]["name"] == "prepull-noop"
    pulls = init[1:]
    # every image exactly once, with exactly that (normalised) image, in the user's order
    assert [c["image"] for c in pulls] == CANONICAL + ["docker.io/library/nginx:latest"]
    assert pulls == pull_containers(spec)


def test_pull_containers_run_the_copied_static_noop_so_images_without_a_shell_work():
    spec = pod(one_ds({"images": IMAGES}))
    copy = spec["initContainers"][0]
    volumes = {v["name"]: v for v in spec["volumes"]}
    copy_mounts = {m["name"]: m["mountPath"] for m in copy["volumeMounts"]}
    # the copy step writes into an emptyDir...
    (shared,) = [n for n in copy_mounts if "emptyDir" in volumes[n]]
    target = copy["command"][-1]
    assert target.startswith(copy_mounts[shared] + "/")
    # ...with a static busybox (musl/uclibc variants are static, k8s_mechanics.md §6)
    assert re.search(r":[0-9.]+-(musl|uclibc)$", copy["image"]), copy["image"]
    assert copy["command"][0] == "/bin/busybox" and copy["command"][1] == "cp"
    for c in pull_containers(spec):
        # command replaces ENTRYPOINT, empty args drops CMD: the image's own binaries never run
        assert c["command"][0] == target, c
        assert c["command"][1:] == ["true"]
        assert c["args"] == []
        mounts = {m["name"]: m for m in c["volumeMounts"]}
        assert mounts[shared]["mountPath"] == copy_mounts[shared]
        assert mounts[shared].get("readOnly") is True


def test_main_container_is_pause_and_only_pause():
    spec = pod(one_ds({"images": IMAGES}))
    (holder,) = spec["containers"]
    ref = parse_image(holder["image"], "t")
    assert ref.repository == "registry.k8s.io/pause"
    assert "command" not in holder and "args" not in holder  # pause's own entrypoint sleeps
    custom = pod(one_ds({"images": IMAGES, "pause_image": "my.registry/pause:3.10"}))
    assert custom["containers"][0]["image"] == "my.registry/pause:3.10"


LARGE_ARGS = {
    "images": IMAGES,
    "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "startup_taint": {"key": "prepull.dev/not-ready"},
    "image_pull_secrets": ["regcred"],
    "priority_class_name": "system-node-critical",
    "node_selector": {"pool": "gpu"},
    "pull_policy": "Always",
    "lanes": 2,
}


@pytest.mark.parametrize(
    "args",
    [
        {"images": IMAGES},
        {"images": IMAGES, "method": "image-volume"},
        LARGE_ARGS,
        {**LARGE_ARGS, "method": "image-volume"},
        {"images": IMAGES, "startup_taint": {"key": "prepull.dev/not-ready"}, "remove_startup_taint": True},
        {"images": IMAGES, "pull_retry_seconds": 30, "startup_taint": {"key": "prepull.dev/not-ready"}, "remove_startup_taint": True},
    ],
    ids=["kubelet", "image-volume", "kubelet-options", "image-volume-options", "kubelet-untaint-gate", "kubelet-pull-retry-gate"],
)
def test_pod_security_restricted_holds(args):
    objs = prepull.manifests(args, "pp")
    (ns,) = [o for o in objs if o["kind"] == "Namespace"]
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for ds in daemon_sets(objs):
        spec = pod(ds)
        assert restricted_violations(spec) == []
        psc = spec["securityContext"]
        # a fixed non-root UID: the kubelet cannot verify non-numeric or root image users
        assert psc["runAsNonRoot"] is True and isinstance(psc["runAsUser"], int) and psc["runAsUser"] > 0
        assert psc["seccompProfile"]["type"] == "RuntimeDefault"
        for c in all_containers(spec):
            assert c["securityContext"]["readOnlyRootFilesystem"] is True, c["name"]


def test_pod_security_checker_fails_for_docker_socket():
    objs = prepull.manifests({"images": IMAGES, "method": "docker-socket"}, "pp")
    violations = restricted_violations(pod(one_ds({"images": IMAGES, "method": "docker-socket"})))
    assert any("hostPath" in v for v in violations)
    assert any("runAsNonRoot" in v for v in violations)
    assert any("runAsUser is 0" in v for v in violations)
    (ns,) = [o for o in objs if o["kind"] == "Namespace"]
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"


MUTATIONS = {
    "hostNetwork": lambda s: s.update(hostNetwork=True),
    "hostPID": lambda s: s.update(hostPID=True),
    "hostIPC": lambda s: s.update(hostIPC=True),
    "hostPath": lambda s: s["volumes"].append({"name": "h", "hostPath": {"path": "/"}}),
    "privileged": lambda s: s["containers"][0]["securityContext"].update(privileged=True),
    "hostPort": lambda s: s["containers"][0].update(ports=[{"containerPort": 80, "hostPort": 80}]),
    "escalation": lambda s: s["initContainers"][1]["securityContext"].pop("allowPrivilegeEscalation"),
    "no-drop-all": lambda s: s["initContainers"][0]["securityContext"]["capabilities"].update(drop=["NET_RAW"]),
    "add-cap": lambda s: s["containers"][0]["securityContext"]["capabilities"].update(add=["SYS_ADMIN"]),
    "root-container": lambda s: s["initContainers"][1]["securityContext"].update(runAsNonRoot=False),
    "no-nonroot": lambda s: s["securityContext"].pop("runAsNonRoot"),
    "uid0-pod": lambda s: s["securityContext"].update(runAsUser=0),
    "uid0-ephemeral": lambda s: s.update(
        ephemeralContainers=[
            {**s["containers"][0], "name": "e", "securityContext": {**s["containers"][0]["securityContext"], "runAsUser": 0}}
        ]
    ),
    "unconfined": lambda s: s["containers"][0]["securityContext"].update(seccompProfile={"type": "Unconfined"}),
    "no-seccomp": lambda s: s["securityContext"].pop("seccompProfile"),
    "procMount": lambda s: s["containers"][0]["securityContext"].update(procMount="Unmasked"),
}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_pod_security_checker_catches_each_rule(mutation):
    spec = json.loads(json.dumps(pod(one_ds({"images": IMAGES}))))
    assert restricted_violations(spec) == []
    MUTATIONS[mutation](spec)
    assert restricted_violations(spec) != []


def test_service_account_token_is_not_mounted():
    for method in Method:
        assert pod(one_ds({"images": IMAGES, "method": method}))["automountServiceAccountToken"] is False


@pytest.mark.parametrize("gate", [False, True], ids=["no-gate", "gate"])
@pytest.mark.parametrize("method", list(Method))
def test_requests_and_limits_on_every_container(method, gate):
    """CPU, memory and ephemeral storage: under disk pressure the kubelet evicts pods over their
    ephemeral-storage request first, and evicting the holder unpins the images."""
    args = {"images": IMAGES, "method": method}
    if gate:
        args |= {"startup_taint": {"key": "prepull.dev/not-ready"}, "remove_startup_taint": True}
    pods = [o["spec"]["template"]["spec"] for o in prepull.manifests(args, "pp") if o["kind"] == "DaemonSet"]
    containers = [c for spec in pods for c in all_containers(spec)]
    assert containers and any(c["name"] == "untaint" for c in containers) == gate
    for c in containers:
        for kind in ("requests", "limits"):
            assert set(c["resources"][kind]) == {"cpu", "memory", "ephemeral-storage"}, (c["name"], kind)
            for res in ("cpu", "memory", "ephemeral-storage"):
                assert 0 < quantity(c["resources"][kind][res]) <= quantity(c["resources"]["limits"][res]), (c["name"], res)


def test_custom_resources_apply_to_every_container():
    spec = pod(one_ds({"images": IMAGES, "resources": {"cpu_request": "2m", "memory_limit": "64Mi"}}))
    for c in all_containers(spec):
        assert c["resources"]["requests"]["cpu"] == "2m"
        assert c["resources"]["limits"]["memory"] == "64Mi"


@pytest.mark.parametrize("method", [Method.KUBELET, Method.IMAGE_VOLUME, Method.DOCKER_SOCKET])
def test_effective_pod_request_is_constant_in_the_image_count(method):
    effective = {}
    for n in (1, 2, 10, 100):
        spec = pod(one_ds({"images": [f"registry.example.com/team/app{i}:1" for i in range(n)], "method": method}))
        assert len(images_pulled({"spec": {"template": {"spec": spec}}})) == n
        effective[n] = (effective_request(spec, "cpu"), effective_request(spec, "memory"))
    assert len(set(effective.values())) == 1, effective
    # and tiny: no more than two containers' worth of the per-container request
    cpu, mem = effective[100]
    one = pod(one_ds({"images": ["a:1"], "method": method}))["containers"][0]["resources"]["requests"]
    assert cpu <= 2 * quantity(one["cpu"]) and mem <= 2 * quantity(one["memory"])


@pytest.mark.parametrize("gate", [False, True], ids=["retry", "retry-gate"])
def test_with_the_pull_retry_watchdog_the_effective_request_is_still_constant_in_the_image_count(gate):
    # The watchdog is a sidecar: its requests add to every init container after it and to the holder, for the pod's life.
    extra = {"startup_taint": {"key": "prepull.dev/not-ready"}, "remove_startup_taint": True} if gate else {}
    effective = set()
    for n in (1, 2, 10, 100):
        spec = pod(one_ds({"images": [f"registry.example.com/team/app{i}:1" for i in range(n)], "pull_retry_seconds": 30, **extra}))
        effective.add((effective_request(spec, "cpu"), effective_request(spec, "memory")))
    assert len(effective) == 1, effective
    cpu, mem = effective.pop()
    # The holder's 1m/8Mi plus the watchdog's 10m/64Mi; with the gate, the untaint step's 10m/64Mi beside the watchdog's.
    assert (cpu, mem) == ((Fraction(20, 1000), 128 * 2**20) if gate else (Fraction(11, 1000), 72 * 2**20))


def test_effective_request_helper_follows_kubernetes_rules():
    # Guards the helper above: init containers count by max, regular containers by sum.
    r = lambda cpu: {"requests": {"cpu": cpu}}  # noqa: E731
    spec = {
        "initContainers": [{"resources": r("5m")}, {"resources": r("3m")}],
        "containers": [{"resources": r("1m")}, {"resources": r("2m")}],
    }
    assert effective_request(spec, "cpu") == Fraction(5, 1000)
    spec["containers"].append({"resources": r("4m")})
    assert effective_request(spec, "cpu") == Fraction(7, 1000)
    # a sidecar (restartable init container) adds to everything started after it
    spec["initContainers"].insert(0, {"resources": r("4m"), "restartPolicy": "Always"})
    assert effective_request(spec, "cpu") == Fraction(11, 1000)


# --------------------------------------------------------------------------- names and hashes


def _names(spec):
    return [c["name"] for c in all_containers(spec)]


LONG_REPO = "registry.example.com/platform/" + "very-long-repository-name-" * 8 + "x"


@pytest.mark.parametrize("method", [Method.KUBELET, Method.DOCKER_SOCKET, Method.IMAGE_VOLUME])
def test_container_and_volume_names_are_unique_dns_labels(method):
    images = IMAGES + [LONG_REPO + ":1", LONG_REPO + ":2", "a/app:1", "b/app:1", "UPPER.example.com/app_x__y:1"]
    spec = pod(one_ds({"images": images, "method": method}))
    names = _names(spec)
    vol_names = [v["name"] for v in spec.get("volumes") or []]
    for n in names + vol_names:
        assert len(n) <= 63 and DNS1123_LABEL.match(n), n
    assert len(set(names)) == len(names)
    assert len(set(vol_names)) == len(vol_names)
    assert len(images_pulled({"spec": {"template": {"spec": spec}}})) == len(images)


def _name_of(images, image, method=Method.KUBELET):
    spec = pod(one_ds({"images": images, "method": method}))
    canonical = parse_image(image, "t").canonical
    if method is Method.IMAGE_VOLUME:
        (name,) = [v["name"] for v in spec["volumes"] if v.get("image", {}).get("reference") == canonical]
    else:
        (name,) = [c["name"] for c in pull_containers(spec) if c["image"] == canonical]
    return name


@pytest.mark.parametrize("method", [Method.KUBELET, Method.IMAGE_VOLUME])
@pytest.mark.parametrize("image", ["nginx:1.27", LONG_REPO + ":1"])
def test_names_are_stable_for_an_image_across_lists_and_orders(method, image):
    lists = [[image], [image, "redis:7"], ["redis:7", "busybox:1", image], ["quay.io/x/y:2", image, "a:1"]]
    assert len({_name_of(lst, image, method) for lst in lists}) == 1


def test_spelling_variants_of_an_image_get_the_same_name():
    assert _name_of(["nginx"], "nginx") == _name_of(["docker.io/library/nginx:latest"], "nginx")


def _template_hash(args):
    return {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"]["annotations"]["prepull.dev/images-hash"]
        for d in daemon_sets(prepull.manifests(args, "pp"))
    }


def test_template_hash_changes_when_the_image_list_changes():
    base = _template_hash({"images": ["nginx:1.27", "redis:7"]})
    for changed in (["nginx:1.27"], ["nginx:1.27", "redis:7", "a:1"], ["redis:7", "nginx:1.27"], ["nginx:1.28", "redis:7"]):
        assert _template_hash({"images": changed}) != base, changed


def test_template_hash_does_not_change_otherwise():
    base = _template_hash({"images": ["nginx:1.27", "redis:7"]})
    same_images = [
        {"images": ["docker.io/library/nginx:1.27", "docker.io/library/redis:7"]},  # same images, other spelling
        {"images": ["nginx:1.27", "redis:7"], "labels": {"team": "ml"}},
        {"images": ["nginx:1.27", "redis:7"], "node_selector": {"pool": "gpu"}},
        {"images": ["nginx:1.27", "redis:7"], "tolerations": [{"key": "gpu", "operator": "Exists"}]},
        {"images": ["nginx:1.27", "redis:7"], "max_unavailable": 3, "priority_class_name": "high"},
        {"images": ["nginx:1.27", "redis:7"], "resources": {"cpu_limit": "200m"}, "skip_await": True},
        {"images": ["nginx:1.27", "redis:7"], "image_pull_secrets": ["regcred"], "namespace": "other"},
    ]
    for args in same_images:
        assert _template_hash(args) == base, args


def test_user_annotations_cannot_stop_image_changes_from_rolling_the_pods():
    # Issue 2: "The pod template carries a hash of the image list, so changing the list rolls the pods."
    # A user annotation with the same key must either be rejected or not replace the hash.
    pin = {"prepull.dev/images-hash": "pinned"}
    try:
        hashes = [_template_hash({"images": images, "annotations": pin}) for images in (["a:1"], ["b:1"])]
    except prepull.PrePullInputError as err:
        assert err.field.startswith("annotations")
    else:
        assert hashes[0] != hashes[1]


@pytest.mark.parametrize("extra", [{}, {"lanes": 2}, {"image_platforms": {"a:1": ["linux/amd64"]}}])
def test_selector_never_changes_when_images_change(extra):
    def selectors(images):
        objs = prepull.manifests({"images": images, **extra}, "pp")
        return {d["metadata"]["name"]: d["spec"]["selector"] for d in daemon_sets(objs)}

    lists = [["a:1", "b:1", "c:1"], ["a:1", "x:2", "y:3", "z:4"], ["a:2", "a:1", "q:1"]]
    seen = {}
    for images in lists:
        for name, selector in selectors(images).items():
            seen.setdefault(name, []).append(selector)
    for name, sels in seen.items():
        assert all(s == sels[0] for s in sels), name


@pytest.mark.parametrize(
    "args",
    [
        {"images": IMAGES},
        {"images": IMAGES, "lanes": 3, "labels": {"team": "ml"}},
        {"images": [*IMAGES, {"image": "cuda:12", "platforms": ["linux/amd64"]}], "lanes": 2},
    ],
)
def test_each_selector_matches_its_own_pods_and_no_other_daemon_sets(args):
    dss = daemon_sets(prepull.manifests(args, "pp"))
    for a in dss:
        sel = a["spec"]["selector"]["matchLabels"]
        for b in dss:
            labels = b["spec"]["template"]["metadata"]["labels"]
            matches = all(labels.get(k) == v for k, v in sel.items())
            assert matches == (a is b), (a["metadata"]["name"], b["metadata"]["name"])


# --------------------------------------------------------------------------- scheduling inputs


def test_node_selector_is_merged_with_linux():
    assert pod(one_ds({"images": IMAGES}))["nodeSelector"] == {"kubernetes.io/os": "linux"}
    spec = pod(one_ds({"images": IMAGES, "node_selector": {"pool": "gpu", "kubernetes.io/os": "linux"}}))
    assert spec["nodeSelector"] == {"kubernetes.io/os": "linux", "pool": "gpu"}


def _with_default_operator(tols):
    return [{"operator": "Equal", **t} for t in tols]


def test_tolerations_are_mapped_to_the_kubernetes_shape():
    given = [
        {"key": "gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "dedicated", "value": "ml", "effect": TaintEffect.NO_EXECUTE, "toleration_seconds": 300},
        {"operator": TolerationOperator.EXISTS, "effect": "PreferNoSchedule"},
    ]
    tols = pod(one_ds({"images": IMAGES, "tolerations": given}))["tolerations"]
    assert _with_default_operator(tols) == [
        {"key": "gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoExecute", "tolerationSeconds": 300},
        {"operator": "Exists", "effect": "PreferNoSchedule"},
    ]
    # plain strings on the wire, never Enum members (YAML/JSON renderers and the engine need plain values)
    for t in tols:
        assert all(type(v) in (str, int) for v in t.values()), t


def test_no_tolerations_by_default():
    assert "tolerations" not in pod(one_ds({"images": IMAGES}))


def test_tolerate_all_taints_is_a_single_exists_toleration():
    tols = pod(one_ds({"images": IMAGES, "tolerate_all_taints": True}))["tolerations"]
    assert tols == [{"operator": "Exists"}]
    for taint in ({"key": "a", "effect": "NoSchedule"}, {"key": "b", "value": "x", "effect": "NoExecute"}):
        assert tolerates(tols[0], taint)


@pytest.mark.parametrize(
    "startup_taint, taint",
    [
        ({"key": "prepull.dev/not-ready"}, {"key": "prepull.dev/not-ready", "effect": "NoSchedule"}),
        (
            {"key": "prepull.dev/not-ready", "value": "true", "effect": "NoExecute"},
            {"key": "prepull.dev/not-ready", "value": "true", "effect": "NoExecute"},
        ),
    ],
)
@pytest.mark.parametrize("others", [[], [{"key": "gpu", "operator": "Exists"}]])
def test_startup_taint_is_tolerated(startup_taint, taint, others):
    tols = pod(one_ds({"images": IMAGES, "startup_taint": startup_taint, "tolerations": others}))["tolerations"]
    assert any(tolerates(t, taint) for t in tols)
    # the user's own tolerations are kept
    for o in others:
        assert any(t.get("key") == o["key"] for t in tols)
    # and the toleration is for that taint, not a blanket one
    assert not any(tolerates(t, {"key": "unrelated", "effect": "NoSchedule"}) for t in tols)


def test_image_pull_secrets():
    spec = pod(one_ds({"images": IMAGES, "image_pull_secrets": ["regcred", "ghcr"]}))
    assert spec["imagePullSecrets"] == [{"name": "regcred"}, {"name": "ghcr"}]
    assert "imagePullSecrets" not in pod(one_ds({"images": IMAGES}))


@pytest.mark.parametrize("policy", [PullPolicy.ALWAYS, PullPolicy.IF_NOT_PRESENT, "Always"])
def test_pull_policy_applies_to_pull_containers_only(policy):
    expected = PullPolicy(policy).value
    spec = pod(one_ds({"images": IMAGES, "pull_policy": policy}))
    assert {c["imagePullPolicy"] for c in pull_containers(spec)} == {expected}
    assert spec["initContainers"][0]["imagePullPolicy"] == "IfNotPresent"  # the helper copy step
    assert spec["containers"][0]["imagePullPolicy"] == "IfNotPresent"  # pause
    vol = pod(one_ds({"images": IMAGES, "pull_policy": policy, "method": "image-volume"}))
    assert {v["image"]["pullPolicy"] for v in vol["volumes"] if "image" in v} == {expected}
    assert vol["containers"][0]["imagePullPolicy"] == "IfNotPresent"


def test_default_pull_policy_is_if_not_present():
    assert {c["imagePullPolicy"] for c in pull_containers(pod(one_ds({"images": IMAGES})))} == {"IfNotPresent"}


# --------------------------------------------------------------------------- lanes and platforms


@pytest.mark.parametrize("n_images, lanes", [(7, 3), (4, 4), (5, 2), (3, 1)])
def test_lanes_split_images_round_robin(n_images, lanes):
    images = [f"registry.example.com/app{i}:1" for i in range(n_images)]
    canonical = [parse_image(i, "t").canonical for i in images]
    dss = daemon_sets(prepull.manifests({"images": images, "lanes": lanes}, "pp"))
    assert len(dss) == lanes
    names = [d["metadata"]["name"] for d in dss]
    assert len(set(names)) == lanes
    for lane, ds in enumerate(dss):
        assert images_pulled(ds) == canonical[lane::lanes]
    pulled = [i for ds in dss for i in images_pulled(ds)]
    assert sorted(pulled) == sorted(canonical)  # union is everything, each exactly once
    for ds in dss:
        assert pod(ds)["initContainers"][0]["name"] == "prepull-noop"


def _pulled_on(dss, arch):
    return [i for ds in dss if could_schedule(ds, linux_node(arch)) for i in images_pulled(ds)]


@pytest.mark.parametrize("lanes", [1, 2])
@pytest.mark.parametrize("style", ["dict-entries", "image-platforms"])
def test_platform_restricted_images_only_reach_matching_nodes(lanes, style):
    everywhere = ["nginx:1.27", "redis:7"]
    amd64_only = "nvcr.io/nvidia/cuda:12.6.2-base-ubuntu24.04"
    arm_and_amd = "ghcr.io/org/multi:1"
    if style == "dict-entries":
        args = {
            "images": [
                everywhere[0],
                {"image": amd64_only, "platforms": ["linux/amd64"]},
                {"image": arm_and_amd, "platforms": ["linux/arm64", "linux/amd64"]},
                everywhere[1],
            ]
        }
    else:
        args = {
            "images": [everywhere[0], amd64_only, arm_and_amd, everywhere[1]],
            "image_platforms": {arm_and_amd: ["linux/arm64", "linux/amd64"], amd64_only: ["linux/amd64"]},
        }
    args["lanes"] = lanes
    dss = daemon_sets(prepull.manifests(args, "pp"))
    c = lambda i: parse_image(i, "t").canonical  # noqa: E731
    want = {
        "amd64": {c(everywhere[0]), c(everywhere[1]), c(amd64_only), c(arm_and_amd)},
        "arm64": {c(everywhere[0]), c(everywhere[1]), c(arm_and_amd)},
    }
    for arch in KNOWN_ARCHES:
        pulled = _pulled_on(dss, arch)
        assert len(pulled) == len(set(pulled)), (arch, pulled)  # no image pulled twice on a node
        assert set(pulled) == want.get(arch, {c(everywhere[0]), c(everywhere[1])}), arch
    # an amd64-only image never sits in a DaemonSet that could schedule on arm64
    for ds in dss:
        if c(amd64_only) in images_pulled(ds):
            assert not could_schedule(ds, linux_node("arm64")), ds["metadata"]["name"]
    # arch-specific DaemonSets use nodeAffinity In; the "other" one uses NotIn for the arches already covered
    ops = {}
    for ds in dss:
        (term,) = pod(ds)["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        (expr,) = term["matchExpressions"]
        assert expr["key"] == "kubernetes.io/arch"
        ops.setdefault(expr["operator"], set()).add(tuple(expr["values"]))
    assert ops["In"] == {("amd64",), ("arm64",)}
    assert ops["NotIn"] == {("amd64", "arm64")}
    names = [d["metadata"]["name"] for d in dss]
    assert len(set(names)) == len(names)
    assert len(dss) == 3 * lanes


def test_no_other_daemon_set_when_every_image_is_restricted():
    dss = daemon_sets(prepull.manifests({"images": [{"image": "a:1", "platforms": ["linux/arm64"]}]}, "pp"))
    assert len(dss) == 1
    assert could_schedule(dss[0], linux_node("arm64"))
    for arch in set(KNOWN_ARCHES) - {"arm64"}:
        assert not could_schedule(dss[0], linux_node(arch))


def test_daemon_sets_never_schedule_on_windows():
    for ds in daemon_sets(prepull.manifests({"images": ["a:1", {"image": "b:1", "platforms": ["linux/amd64"]}]}, "pp")):
        assert not could_schedule(ds, {"kubernetes.io/os": "windows", "kubernetes.io/arch": "amd64"})


# --------------------------------------------------------------------------- other methods


def test_docker_socket_method_pulls_through_the_host_socket():
    spec = pod(one_ds({"images": IMAGES, "method": "docker-socket"}))
    (sock,) = [v for v in spec["volumes"] if "hostPath" in v]
    assert sock["hostPath"]["path"] == "/var/run/docker.sock"
    pulls = spec["initContainers"]
    assert len(pulls) == len(IMAGES)
    for c, image in zip(pulls, CANONICAL):
        assert c["command"][:2] == ["docker", "pull"] and c["command"][-1] == image
        assert any(m["name"] == sock["name"] and m["mountPath"] == "/var/run/docker.sock" for m in c["volumeMounts"])
        assert parse_image(c["image"], "t").path == "library/docker"


def test_image_volume_method_mounts_one_read_only_image_volume_per_image():
    spec = pod(one_ds({"images": IMAGES, "method": Method.IMAGE_VOLUME}))
    assert "initContainers" not in spec
    image_vols = [v for v in spec["volumes"] if "image" in v]
    assert [v["image"]["reference"] for v in image_vols] == CANONICAL
    assert len(spec["volumes"]) == len(IMAGES)
    (holder,) = spec["containers"]
    mounts = {m["name"]: m for m in holder["volumeMounts"]}
    assert set(mounts) == {v["name"] for v in image_vols}
    assert all(m["readOnly"] is True for m in mounts.values())
    assert len({m["mountPath"] for m in mounts.values()}) == len(mounts)


# --------------------------------------------------------------------------- metadata options


def test_priority_class_labels_annotations_max_unavailable_skip_await():
    args = {
        "images": IMAGES,
        "priority_class_name": "system-node-critical",
        "labels": {"team": "ml", "example.com/cost-center": "42"},
        "annotations": {"example.com/owner": "platform"},
        "max_unavailable": 5,
        "skip_await": True,
    }
    objs = prepull.manifests(args, "pp")
    ds = one_ds(args)
    spec = pod(ds)
    assert spec["priorityClassName"] == "system-node-critical"
    for meta in [o["metadata"] for o in objs] + [ds["spec"]["template"]["metadata"]]:
        assert meta["labels"]["team"] == "ml" and meta["labels"]["example.com/cost-center"] == "42"
        assert meta["annotations"]["example.com/owner"] == "platform"
    assert ds["spec"]["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 5}}
    assert ds["metadata"]["annotations"]["pulumi.com/skipAwait"] == "true"
    # the await is for the DaemonSet (its own annotation), not pushed to pods
    assert "pulumi.com/skipAwait" not in ds["spec"]["template"]["metadata"]["annotations"]


def test_defaults_for_metadata_options():
    ds = one_ds({"images": IMAGES})
    assert "priorityClassName" not in pod(ds)
    assert "pulumi.com/skipAwait" not in ds["metadata"]["annotations"]
    assert ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] == 1
    assert ds["metadata"]["namespace"] == "prepull"


def test_namespace_is_created_by_default_and_holds_the_daemon_sets():
    objs = prepull.manifests({"images": IMAGES, "namespace": "images"}, "pp")
    assert objs[0]["kind"] == "Namespace" and objs[0]["metadata"]["name"] == "images"
    assert all(d["metadata"]["namespace"] == "images" for d in daemon_sets(objs))


def test_create_namespace_false_creates_no_namespace():
    objs = prepull.manifests({"images": IMAGES, "namespace": "kube-system", "create_namespace": False}, "pp")
    assert [o for o in objs if o["kind"] == "Namespace"] == []
    assert [d["metadata"]["namespace"] for d in daemon_sets(objs)] == ["kube-system"]


def test_base_name_names_the_daemon_sets():
    assert one_ds({"images": IMAGES}, name="workers")["metadata"]["name"] == "workers"
    assert one_ds({"images": IMAGES, "base_name": "images"}, name="Not_A_Label")["metadata"]["name"] == "images"


def test_manifests_are_plain_data():
    # Enum inputs never leak: the output renders with the safe YAML dumper and round-trips through JSON.
    args = {
        **LARGE_ARGS,
        "method": Method.KUBELET,
        "pull_policy": PullPolicy.ALWAYS,
        "tolerations": [{"key": "gpu", "operator": TolerationOperator.EXISTS, "effect": TaintEffect.NO_SCHEDULE}],
    }
    objs = prepull.manifests(args, "pp")
    yaml.safe_dump_all(objs)
    assert json.loads(json.dumps(objs)) == objs

    def leaves(x):
        if isinstance(x, dict):
            for k, v in x.items():
                assert type(k) is str
                yield from leaves(v)
        elif isinstance(x, list):
            for v in x:
                yield from leaves(v)
        else:
            yield x

    assert {type(v) for o in objs for v in leaves(o)} <= {str, int, bool}


# --------------------------------------------------------------------------- determinism

_RENDER = r"""
import json, sys, yaml
sys.path.insert(0, sys.argv[1])
import prepull
variant = int(sys.argv[2])
labels = [("team", "ml"), ("app.kubernetes.io/part-of", "platform"), ("zone", "a")]
selector = [("pool", "gpu"), ("example.com/tier", "1"), ("kubernetes.io/os", "linux")]
annotations = [("z.example.com/x", "1"), ("a.example.com/y", "2")]
platforms = [("nvcr.io/nvidia/cuda:12", ["linux/amd64"]), ("ghcr.io/org/multi:1", ["linux/arm64", "linux/amd64"])]
if variant:
    labels, selector, annotations, platforms = labels[::-1], selector[::-1], annotations[::-1], platforms[::-1]
    platforms = [(k, v[::-1]) for k, v in platforms]
args = {
    "images": ["nginx:1.27", "nvcr.io/nvidia/cuda:12", {"image": "quay.io/a/b:2", "platforms": ["linux/arm64"]},
               "ghcr.io/org/multi:1", "redis:7", "busybox:1.37"],
    "image_platforms": dict(platforms),
    "labels": dict(labels),
    "node_selector": dict(selector),
    "annotations": dict(annotations),
    "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "startup_taint": {"key": "prepull.dev/not-ready"},
    "image_pull_secrets": ["regcred"],
    "lanes": 2,
}
objs = prepull.manifests(args, "pp")
sys.stdout.write(json.dumps(objs))
sys.stdout.write("\n---\n")
sys.stdout.write(yaml.safe_dump_all(objs, sort_keys=False))
"""


def test_output_is_byte_identical_across_hash_seeds_and_insertion_orders():
    outputs = {}
    for seed in ("0", "1", "2", "random"):
        for variant in ("0", "1"):
            env = {**os.environ, "PYTHONHASHSEED": seed}
            proc = subprocess.run(
                [sys.executable, "-c", _RENDER, str(ROOT / "components"), variant],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert proc.returncode == 0, proc.stderr
            outputs[(seed, variant)] = proc.stdout
    first = outputs[("0", "0")]
    assert '"kind": "DaemonSet"' in first and "kind: DaemonSet" in first
    for key, out in outputs.items():
        assert out == first, f"output differs for PYTHONHASHSEED/variant {key}"
