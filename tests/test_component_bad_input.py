"""Every bad input fails while the component is constructed, names the field and
the value, and registers no resource (checked through the mock monitor)."""

import pytest

import prepull
from prepull import PrePullInputError

OK = ["nginx:1.27"]
DIGEST = "sha256:" + "cd" * 32

# (id, args, resource name, field named in the error, value shown in the error)
CASES = [
    ("missing-images", {}, "pp", "images", None),
    ("empty-images", {"images": []}, "pp", "images", []),
    ("images-not-a-list", {"images": "nginx:1.27"}, "pp", "images", "nginx:1.27"),
    ("space-in-reference", {"images": ["ngi nx:1"]}, "pp", "images[0]", "ngi nx:1"),
    ("uppercase-repository", {"images": ["nginx:1", "Team/App:1"]}, "pp", "images[1]", "Team/App:1"),
    ("bad-digest", {"images": ["nginx@sha256:123"]}, "pp", "images[0]", "nginx@sha256:123"),
    ("empty-tag", {"images": ["nginx:"]}, "pp", "images[0]", "nginx:"),
    ("colon-at-misuse", {"images": ["nginx@1.27"]}, "pp", "images[0]", "nginx@1.27"),
    ("duplicate-exact", {"images": ["nginx:1", "nginx:1"]}, "pp", "images[1]", "nginx:1"),
    ("duplicate-normalised", {"images": ["nginx", "docker.io/library/nginx:latest"]}, "pp", "images[1]", "docker.io/library/nginx:latest"),
    ("dict-entry-unknown-key", {"images": [{"image": "nginx:1", "arch": "arm64"}]}, "pp", "images[0].arch", "arm64"),
    ("unknown-platform", {"images": [{"image": "nginx:1", "platforms": ["linux/sparc"]}]}, "pp", "images[0].platforms[0]", "linux/sparc"),
    (
        "windows-platform",
        {"images": OK, "image_platforms": {"nginx:1.27": ["windows/amd64"]}},
        "pp",
        "image_platforms['nginx:1.27'][0]",
        "windows/amd64",
    ),
    ("empty-platforms", {"images": OK, "image_platforms": {"nginx:1.27": []}}, "pp", "image_platforms['nginx:1.27']", []),
    (
        "platform-for-unlisted-image",
        {"images": OK, "image_platforms": {"redis:7": ["linux/amd64"]}},
        "pp",
        "image_platforms['redis:7']",
        "redis:7",
    ),
    (
        "platforms-given-twice",
        {"images": [{"image": "nginx:1.27", "platforms": ["linux/amd64"]}], "image_platforms": {"nginx:1.27": ["linux/arm64"]}},
        "pp",
        "image_platforms['nginx:1.27']",
        "nginx:1.27",
    ),
    ("unknown-input", {"images": OK, "imagePullPolicy": "Always"}, "pp", "imagePullPolicy", "Always"),
    ("unknown-method", {"images": OK, "method": "crictl"}, "pp", "method", "crictl"),
    ("unknown-pull-policy", {"images": OK, "pull_policy": "Never"}, "pp", "pull_policy", "Never"),
    ("bad-taint-effect", {"images": OK, "tolerations": [{"key": "gpu", "effect": "NoRun"}]}, "pp", "tolerations[0].effect", "NoRun"),
    ("bad-toleration-operator", {"images": OK, "tolerations": [{"key": "gpu", "operator": "In"}]}, "pp", "tolerations[0].operator", "In"),
    (
        "exists-with-value",
        {"images": OK, "tolerations": [{"key": "gpu", "operator": "Exists", "value": "x"}]},
        "pp",
        "tolerations[0].value",
        "x",
    ),
    ("equal-without-key", {"images": OK, "tolerations": [{"operator": "Equal", "value": "x"}]}, "pp", "tolerations[0].key", None),
    (
        "seconds-without-noexecute",
        {"images": OK, "tolerations": [{"key": "a", "effect": "NoSchedule", "toleration_seconds": 5}]},
        "pp",
        "tolerations[0].toleration_seconds",
        5,
    ),
    (
        "bad-toleration-key",
        {"images": OK, "tolerations": [{"key": "bad key", "operator": "Exists"}]},
        "pp",
        "tolerations[0].key",
        "bad key",
    ),
    (
        "unknown-toleration-field",
        {"images": OK, "tolerations": [{"key": "a", "tolerationSeconds": 5}]},
        "pp",
        "tolerations[0].tolerationSeconds",
        5,
    ),
    (
        "tolerations-and-tolerate-all",
        {"images": OK, "tolerate_all_taints": True, "tolerations": [{"key": "a", "operator": "Exists"}]},
        "pp",
        "tolerations",
        [{"key": "a", "operator": "Exists"}],
    ),
    ("startup-taint-without-key", {"images": OK, "startup_taint": {"effect": "NoSchedule"}}, "pp", "startup_taint.key", None),
    (
        "startup-taint-bad-effect",
        {"images": OK, "startup_taint": {"key": "prepull.dev/not-ready", "effect": "Sometimes"}},
        "pp",
        "startup_taint.effect",
        "Sometimes",
    ),
    (
        "startup-taint-prefer",
        {"images": OK, "startup_taint": {"key": "prepull.dev/not-ready", "effect": "PreferNoSchedule"}},
        "pp",
        "startup_taint.effect",
        "PreferNoSchedule",
    ),
    ("zero-lanes", {"images": OK, "lanes": 0}, "pp", "lanes", 0),
    ("negative-lanes", {"images": OK, "lanes": -2}, "pp", "lanes", -2),
    ("lanes-not-int", {"images": OK, "lanes": "2"}, "pp", "lanes", "2"),
    ("lanes-bool", {"images": OK, "lanes": True}, "pp", "lanes", True),
    ("more-lanes-than-images", {"images": ["a:1", "b:1"], "lanes": 3}, "pp", "lanes", 3),
    ("too-many-lanes", {"images": [f"img{i}:1" for i in range(40)], "lanes": 33}, "pp", "lanes", 33),
    ("zero-max-unavailable", {"images": OK, "max_unavailable": 0}, "pp", "max_unavailable", 0),
    ("negative-max-unavailable", {"images": OK, "max_unavailable": -1}, "pp", "max_unavailable", -1),
    ("invalid-resource-name", {"images": OK}, "Pre_Puller", "name", "Pre_Puller"),
    ("name-too-long", {"images": OK}, "p" * 64, "name", "p" * 64),
    ("name-too-long-for-lanes", {"images": ["a:1", "b:1"], "lanes": 2}, "p" * 61, "name", "p" * 61),
    ("bad-base-name", {"images": OK, "base_name": "-prepull"}, "pp", "base_name", "-prepull"),
    ("bad-namespace", {"images": OK, "namespace": "Pre.Pull"}, "pp", "namespace", "Pre.Pull"),
    ("bad-secret-name", {"images": OK, "image_pull_secrets": ["Reg Cred"]}, "pp", "image_pull_secrets[0]", "Reg Cred"),
    ("duplicate-secret", {"images": OK, "image_pull_secrets": ["a", "a"]}, "pp", "image_pull_secrets", ["a", "a"]),
    ("bad-priority-class", {"images": OK, "priority_class_name": "High!"}, "pp", "priority_class_name", "High!"),
    (
        "reserved-annotation",
        {"images": OK, "annotations": {"prepull.dev/images-hash": "pinned"}},
        "pp",
        "annotations['prepull.dev/images-hash']",
        "pinned",
    ),
    ("bad-label-value", {"images": OK, "labels": {"team": "a b"}}, "pp", "labels['team']", "a b"),
    ("bad-label-key", {"images": OK, "labels": {"a/b/c": "x"}}, "pp", "labels key", "a/b/c"),
    ("reserved-label", {"images": OK, "labels": {"app.kubernetes.io/name": "mine"}}, "pp", "labels['app.kubernetes.io/name']", "mine"),
    ("bad-node-selector-value", {"images": OK, "node_selector": {"pool": "gpu pool"}}, "pp", "node_selector['pool']", "gpu pool"),
    (
        "windows-node-selector",
        {"images": OK, "node_selector": {"kubernetes.io/os": "windows"}},
        "pp",
        "node_selector['kubernetes.io/os']",
        "windows",
    ),
    (
        "arch-selector-and-platforms",
        {"images": [{"image": "nginx:1", "platforms": ["linux/amd64"]}], "node_selector": {"kubernetes.io/arch": "arm64"}},
        "pp",
        "node_selector['kubernetes.io/arch']",
        "arm64",
    ),
    ("bad-timeout", {"images": OK, "custom_timeouts": {"create": "ten minutes"}}, "pp", "custom_timeouts.create", "ten minutes"),
    ("unknown-timeout", {"images": OK, "custom_timeouts": {"read": "5m"}}, "pp", "custom_timeouts.read", "5m"),
    (
        "timeouts-with-skip-await",
        {"images": OK, "skip_await": True, "custom_timeouts": {"create": "30m"}},
        "pp",
        "custom_timeouts",
        {"create": "30m"},
    ),
    ("bad-quantity", {"images": OK, "resources": {"memory_limit": "32 MB"}}, "pp", "resources.memory_limit", "32 MB"),
    ("bad-bool", {"images": OK, "create_namespace": "yes"}, "pp", "create_namespace", "yes"),
    ("root-uid", {"images": OK, "run_as_user": 0}, "pp", "run_as_user", 0),
    ("bad-pause-image", {"images": OK, "pause_image": "registry.k8s.io/PAUSE:3"}, "pp", "pause_image", "registry.k8s.io/PAUSE:3"),
    (
        "duplicate-by-digest",
        {"images": [f"nginx:1@{DIGEST}", f"docker.io/library/nginx@{DIGEST}"]},
        "pp",
        "images[1]",
        f"docker.io/library/nginx@{DIGEST}",
    ),
    (
        "duplicate-registry-case",
        {"images": ["Registry.Example.com/app:1", "registry.example.com/app:1"]},
        "pp",
        "images[1]",
        "registry.example.com/app:1",
    ),
    ("too-many-images-per-daemonset", {"images": [f"img{i}:1" for i in range(1001)]}, "pp", "images", "<1001 images>"),
    ("system-namespace", {"images": OK, "namespace": "kube-system"}, "pp", "namespace", "kube-system"),
    ("surge-and-unavailable", {"images": OK, "max_surge": 2, "max_unavailable": 3}, "pp", "max_unavailable", 3),
    ("negative-surge", {"images": OK, "max_surge": -1}, "pp", "max_surge", -1),
    (
        "docker-socket-if-not-present",
        {"images": OK, "method": "docker-socket", "pull_policy": "IfNotPresent"},
        "pp",
        "pull_policy",
        "IfNotPresent",
    ),
    (
        "request-above-limit",
        {"images": OK, "resources": {"memory_request": "1Gi", "memory_limit": "64Mi"}},
        "pp",
        "resources.memory_request",
        "1Gi",
    ),
    (
        "cpu-request-above-limit",
        {"images": OK, "resources": {"cpu_request": "0.5", "cpu_limit": "100m"}},
        "pp",
        "resources.cpu_request",
        "0.5",
    ),
    # Above by 1m in 10^14: equal as floats, compared exactly (tests/core/test_checks_quantities.py).
    (
        "cpu-request-above-limit-beyond-float-precision",
        {"images": OK, "resources": {"cpu_request": "100000000000000001m", "cpu_limit": "1e14"}},
        "pp",
        "resources.cpu_request",
        "100000000000000001m",
    ),
    ("quantity-exponent-without-digits", {"images": OK, "resources": {"cpu_limit": "1e"}}, "pp", "resources.cpu_limit", "1e"),
    (
        "reserved-annotation-prefix",
        {"images": OK, "annotations": {"pulumi.com/skipAwait": "true"}},
        "pp",
        "annotations['pulumi.com/skipAwait']",
        "true",
    ),
    (
        "checkov-annotation",
        {"images": OK, "annotations": {"checkov.io/skip1": "CKV_K8S_1=x"}},
        "pp",
        "annotations['checkov.io/skip1']",
        "CKV_K8S_1=x",
    ),
    ("annotations-too-large", {"images": OK, "annotations": {"big": "x" * 300_000}}, "pp", "annotations", "<300003 bytes>"),
    ("gate-without-taint", {"images": OK, "remove_startup_taint": True}, "pp", "remove_startup_taint", True),
    (
        "untaint-image-without-gate",
        {"images": OK, "untaint_image": "registry.k8s.io/kubectl:v1.32.3"},
        "pp",
        "untaint_image",
        "registry.k8s.io/kubectl:v1.32.3",
    ),
    (
        "bad-untaint-image",
        {"images": OK, "startup_taint": {"key": "t"}, "remove_startup_taint": True, "untaint_image": "kubectl:"},
        "pp",
        "untaint_image",
        "kubectl:",
    ),
    ("pull-retry-too-short", {"images": OK, "pull_retry_seconds": 5}, "pp", "pull_retry_seconds", 5),
    ("pull-retry-too-long", {"images": OK, "pull_retry_seconds": 7200}, "pp", "pull_retry_seconds", 7200),
    ("pull-retry-not-a-number", {"images": OK, "pull_retry_seconds": "30s"}, "pp", "pull_retry_seconds", "30s"),
    ("pull-retry-with-image-volume", {"images": OK, "method": "image-volume", "pull_retry_seconds": 30}, "pp", "pull_retry_seconds", 30),
    ("pull-retry-with-docker-socket", {"images": OK, "method": "docker-socket", "pull_retry_seconds": 30}, "pp", "pull_retry_seconds", 30),
    (
        "bad-untaint-image-for-pull-retry",
        {"images": OK, "pull_retry_seconds": 30, "untaint_image": "kubectl:"},
        "pp",
        "untaint_image",
        "kubectl:",
    ),
    ("bad-network-policy-flag", {"images": OK, "network_policy": "no"}, "pp", "network_policy", "no"),
    (
        "docker-socket-with-secrets",
        {"images": OK, "method": "docker-socket", "image_pull_secrets": ["regcred"]},
        "pp",
        "image_pull_secrets",
        ["regcred"],
    ),
    ("docker-socket-with-uid", {"images": OK, "method": "docker-socket", "run_as_user": 1000}, "pp", "run_as_user", 1000),
    (
        "helper-image-without-kubelet",
        {"images": OK, "method": "image-volume", "helper_image": "busybox:1.37.0-musl"},
        "pp",
        "helper_image",
        "busybox:1.37.0-musl",
    ),
    ("docker-cli-without-docker-socket", {"images": OK, "docker_cli_image": "docker:27-cli"}, "pp", "docker_cli_image", "docker:27-cli"),
]


@pytest.mark.parametrize("args, name, field, value", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_names_field_and_value_and_registers_nothing(run_program, args, name, field, value):
    def program():
        prepull.ImagePrePuller(name, args)

    with pytest.raises(PrePullInputError) as exc:
        run_program(program)
    err = exc.value
    assert err.field == field
    assert err.value == value
    assert str(err).startswith(f"{field}: ")
    assert repr(value) in str(err)


@pytest.mark.parametrize("args, name, field, value", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_manifests_rejects_the_same_input(args, name, field, value):
    # The pure core and the component share one validation path.
    with pytest.raises(PrePullInputError) as exc:
        prepull.manifests(args, name)
    assert exc.value.field == field


def test_nothing_is_registered_when_input_is_bad(run_program):
    registered = {}

    def program():
        try:
            prepull.ImagePrePuller("pp", {"images": ["nginx:1", "nginx:1"]})
        except PrePullInputError as err:
            registered["error"] = err

    run = run_program(program)
    assert "error" in registered
    assert [r.type for r in run.requests if r.type != "pulumi:pulumi:Stack"] == []


def test_support_images_may_also_be_pre_pulled():
    # Listing the pause or busybox image (for the cluster's own workloads) is allowed.
    objs = prepull.manifests({"images": ["registry.k8s.io/pause:3.10.1", "docker.io/library/busybox:1.37.0-musl"]})
    ds = objs[-1]
    pulled = [c["image"] for c in ds["spec"]["template"]["spec"]["initContainers"] if c["name"].startswith("pull-")]
    assert pulled == ["registry.k8s.io/pause:3.10.1", "docker.io/library/busybox:1.37.0-musl"]


def test_a_good_input_does_register(run_program):
    # Guards the test above: the same harness does see registrations.
    run = run_program(lambda: prepull.ImagePrePuller("pp", {"images": ["nginx:1"]}))
    assert {r.type for r in run.requests} >= {"prepull:index:ImagePrePuller", "kubernetes:apps/v1:DaemonSet"}
