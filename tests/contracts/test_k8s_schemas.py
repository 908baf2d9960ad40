"""Every object from ``manifests()`` validates strictly (unknown fields are errors) against the
Kubernetes OpenAPI schemas of the oldest supported version (1.29) and of the newest version the
installed kubernetes-validate ships."""

import kubernetes_validate
import pytest

import prepull

OLDEST = "1.29.0"
NEWEST = kubernetes_validate.latest_version()
# OCI image volumes (volumes[].image) entered the API in 1.31 (alpha) and are beta from 1.33
# (k8s_mechanics.md §3); the method needs at least 1.33 schemas.
IMAGE_VOLUME_MIN = "1.33.0"
# The new-node gate uses admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy, GA (v1) in 1.30;
# its input documents "Kubernetes >= 1.30".
GATE_MIN = "1.30.0"

IMAGES = ["nginx:1.27", "gcr.io/distroless/static:nonroot", "ghcr.io/org/app:1.0@sha256:" + "ab" * 32]
ALL_OPTIONS = {
    "images": IMAGES,
    "namespace": "images",
    "create_namespace": True,
    "base_name": "pre",
    "node_selector": {"pool": "gpu", "example.com/tier": "a"},
    "tolerations": [
        {"key": "gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "dedicated", "value": "ml", "effect": "NoExecute", "toleration_seconds": 300},
    ],
    "image_pull_secrets": ["regcred", "ghcr"],
    "pull_policy": "Always",
    "pause_image": "registry.k8s.io/pause:3.10",
    "helper_image": "docker.io/library/busybox:1.36.1-uclibc",
    "startup_taint": {"key": "prepull.dev/not-ready", "value": "true", "effect": "NoSchedule"},
    "lanes": 2,
    "priority_class_name": "system-node-critical",
    "labels": {"team": "ml"},
    "annotations": {"example.com/owner": "platform"},
    "max_unavailable": 3,
    "custom_timeouts": {"create": "30m", "update": "20m", "delete": "5m"},
    "resources": {"cpu_request": "2m", "memory_request": "16Mi", "cpu_limit": "0.5", "memory_limit": "64Mi"},
    "run_as_user": 1000,
}
LANES_PLATFORMS = {
    "images": [
        "nginx:1.27",
        {"image": "nvcr.io/nvidia/cuda:12.6.2-base-ubuntu24.04", "platforms": ["linux/amd64"]},
        "redis:7",
        "busybox:1.37",
    ],
    "image_platforms": {"busybox:1.37": ["linux/arm64", "linux/arm/v7"]},
    "lanes": 2,
}

CASES = {
    "defaults": {"images": IMAGES},
    "all-options": ALL_OPTIONS,
    "tolerate-all-no-namespace": {"images": IMAGES, "tolerate_all_taints": True, "create_namespace": False, "skip_await": True},
    "method-kubelet": {"images": IMAGES, "method": "kubelet"},
    "method-docker-socket": {"images": IMAGES, "method": "docker-socket"},
    "lanes-platforms": LANES_PLATFORMS,
    "max-unavailable-percent": {"images": IMAGES, "max_unavailable": "25%"},
    "max-surge-percent": {"images": IMAGES, "max_surge": "10%"},
}
IMAGE_VOLUME_CASES = {
    "method-image-volume": {"images": IMAGES, "method": "image-volume"},
    "image-volume-options": {**{k: v for k, v in ALL_OPTIONS.items() if k != "helper_image"}, "method": "image-volume"},
    "image-volume-lanes-platforms": {**LANES_PLATFORMS, "method": "image-volume"},
}


def _objects(args):
    objs = prepull.manifests(args, "pp")
    assert objs and any(o["kind"] == "DaemonSet" for o in objs)
    return objs


def test_newest_is_newer_than_oldest():
    as_tuple = lambda v: tuple(int(p) for p in v.split("."))  # noqa: E731
    assert as_tuple(NEWEST) > as_tuple(IMAGE_VOLUME_MIN) > as_tuple(OLDEST)


@pytest.mark.parametrize("version", [OLDEST, NEWEST])
@pytest.mark.parametrize("case", list(CASES))
def test_validates_strictly(case, version):
    for obj in _objects(CASES[case]):
        kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize("version", [IMAGE_VOLUME_MIN, NEWEST])
@pytest.mark.parametrize("case", list(IMAGE_VOLUME_CASES))
def test_image_volume_validates_from_1_33(case, version):
    for obj in _objects(IMAGE_VOLUME_CASES[case]):
        kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize("case", list(IMAGE_VOLUME_CASES))
def test_image_volume_is_rejected_by_1_29_schemas(case):
    # 1.29's Volume has no `image` field: strict validation must reject it. This documents that the
    # image-volume method needs a newer cluster, and shows the validator really rejects unknown fields.
    objs = _objects(IMAGE_VOLUME_CASES[case])
    for obj in objs:
        if obj["kind"] != "DaemonSet":
            kubernetes_validate.validate(obj, OLDEST, strict=True)
    for ds in (o for o in objs if o["kind"] == "DaemonSet"):
        with pytest.raises(kubernetes_validate.ValidationError) as exc:
            kubernetes_validate.validate(ds, OLDEST, strict=True)
        assert "'image' was unexpected" in str(exc.value)


def test_strict_mode_rejects_unknown_fields():
    # Guards the tests above: strict validation does fail on a field Kubernetes does not know.
    (ds,) = [o for o in _objects({"images": IMAGES}) if o["kind"] == "DaemonSet"]
    ds["spec"]["template"]["spec"]["initContainers"][1]["pullPolicy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(ds, NEWEST, strict=True)


@pytest.mark.parametrize("version", [GATE_MIN, NEWEST])
@pytest.mark.parametrize("method", ["kubelet", "image-volume"])
def test_startup_taint_gate_validates_from_1_30(method, version):
    if method == "image-volume" and version == GATE_MIN:
        version = IMAGE_VOLUME_MIN
    args = {"images": IMAGES, "method": method, "startup_taint": {"key": "prepull.dev/not-ready"}, "remove_startup_taint": True}
    objs = _objects(args)
    assert {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ValidatingAdmissionPolicy"} <= {o["kind"] for o in objs}
    for obj in objs:
        kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize("version", [GATE_MIN, NEWEST])
@pytest.mark.parametrize("gate", [False, True], ids=["retry", "retry-gate"])
def test_pull_retry_watchdog_validates_from_1_30(gate, version):
    # A native sidecar (restartPolicy on an init container, from 1.28) and a ValidatingAdmissionPolicy (v1 from 1.30).
    args = {"images": IMAGES, "pull_retry_seconds": 30, "untaint_image": "registry.k8s.io/kubectl:v1.33.0"}
    if gate:
        args |= {"startup_taint": {"key": "prepull.dev/not-ready"}, "remove_startup_taint": True}
    objs = _objects(args)
    assert {"ServiceAccount", "Role", "RoleBinding", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} <= {
        o["kind"] for o in objs
    }
    for obj in objs:
        kubernetes_validate.validate(obj, version, strict=True)
