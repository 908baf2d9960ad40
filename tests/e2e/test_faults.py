"""Faults on the real node, and how long the pre-puller takes to heal from each (docs/reliability.md).

Runs on the local cluster only (tests/cluster): it stops and starts that cluster's registry and
kubelet, which kind does not let a test do. Each test prints the recovery time it measured in
the session's summary ("measured" section, tests/conftest.py). Covered so far:

1. the holder pod deleted (as an eviction would): the DaemonSet recreates it, and it pulls
   nothing again: every image is "already present on machine";
2. the registry unreachable when the pods pull, then back: the pod finishes with no action from
   us, after the kubelet's image-pull back-off (10 s, doubling to 5 min) runs out;
3. the kubelet restarted while a pre-pull pod starts: the pod still ends Ready, its images present.
"""

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "cluster"))
import cluster  # noqa: E402
from cluster_env import LOCAL, apply, kubectl, poll  # noqa: E402
from cluster_env import containerd_images as present  # noqa: E402

REGISTRY = os.environ.get("PREPULL_TEST_REGISTRY", "")
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not LOCAL, reason="needs the local cluster (tests/cluster/up DIR, then . DIR/env): it stops its registry and kubelet"
    ),
]

NAMESPACE = "prepull-faults"
SOURCE = f"{REGISTRY}/prepull-test/busybox:1"


def fresh_image() -> str:
    """A tag no node has pulled: the same image as SOURCE under a new name, so pulling it needs the registry."""
    image = f"{REGISTRY}/prepull-test/fault:{uuid.uuid4().hex[:12]}"
    subprocess.run(
        ["skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false", f"docker://{SOURCE}", f"docker://{image}"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return image


def deploy(name: str, images: list) -> None:
    from prepull import manifests

    args = {
        "images": images,
        "namespace": NAMESPACE,
        "create_namespace": False,
        "node_selector": {"kubernetes.io/hostname": cluster.REAL_NODE},
        "tolerate_all_taints": True,
    }
    apply(manifests(args, name))


def pods_of(name: str) -> list:
    out = kubectl("get", "pods", "-n", NAMESPACE, "-l", f"prepull.dev/daemonset={name}", "-o", "json").stdout
    return [p for p in json.loads(out)["items"] if not p["metadata"].get("deletionTimestamp")]


def ready_pod(name: str) -> str:
    """Problems keeping ``name``'s pod on the real node from being Ready ("" when it is), for poll."""
    pods = pods_of(name)
    if not pods:
        return f"no pod of {name} yet"
    conditions = {c["type"]: c["status"] for c in pods[0]["status"].get("conditions", [])}
    return "" if conditions.get("Ready") == "True" else f"{pods[0]['metadata']['name']} not Ready: {pods[0]['status'].get('phase')}"


def replaced(name: str, old: str) -> str:
    """Problems keeping a pod other than ``old`` from being ``name``'s Ready pod ("" when one is), for poll."""
    pods = pods_of(name)
    if not pods or pods[0]["metadata"]["name"] == old:
        return f"{old} not replaced yet"
    return ready_pod(name)


def events(pod: str, reason: str) -> list:
    out = kubectl("get", "events", "-n", NAMESPACE, "--field-selector", f"involvedObject.name={pod},reason={reason}", "-o", "json").stdout
    return [e.get("message", "") for e in json.loads(out)["items"]]


@pytest.fixture(scope="module")
def node():
    """The test namespace; afterwards the registry and the kubelet run again, and the namespace is gone."""
    d = Path(LOCAL)
    kubectl("create", "namespace", NAMESPACE, check=False)
    try:
        yield d
    finally:
        if not cluster.recorded_pid(d, "registry"):
            cluster.start_registry(d)
        if not cluster.recorded_pid(d, "kubelet"):
            cluster.restart_kubelet(d, {})
        kubectl("delete", "namespace", NAMESPACE, "--wait=true", check=False)


def test_a_deleted_holder_pod_is_recreated_and_pulls_nothing_again(node, measured):
    images = [fresh_image(), fresh_image()]
    deploy("holder", images)
    poll("the pre-pull pod to be Ready", lambda: ready_pod("holder"), timeout=180, every=2)
    old = pods_of("holder")[0]["metadata"]["name"]
    deleted = time.monotonic()
    kubectl("delete", "pod", "-n", NAMESPACE, old, "--wait=false")
    poll("a new pre-pull pod to be Ready", lambda: replaced("holder", old), timeout=180, every=1)
    recovery = time.monotonic() - deleted
    new = pods_of("holder")[0]["metadata"]["name"]
    assert set(images) <= present()
    # The kubelet checks each image and finds it: no pull, whatever the registry does.
    pulled = events(new, "Pulled")
    assert not events(new, "Pulling"), events(new, "Pulling")
    assert all(any(image in m and "already present on machine" in m for m in pulled) for image in images), pulled
    measured("holder pod deleted: a new pod Ready, nothing pulled again", recovery)


def test_an_unreachable_registry_delays_the_pull_until_it_is_back_and_the_pod_then_finishes(node, measured):
    image = fresh_image()
    cluster.stop_pid(node, "registry")
    try:
        deploy("offline", [image])
        poll(
            "the pull to fail",
            lambda: "" if pods_of("offline") and events(pods_of("offline")[0]["metadata"]["name"], "Failed") else "no failure yet",
            120,
            1,
        )
        time.sleep(30)  # a few failed attempts: the kubelet's back-off has grown past its first 10 s
    finally:
        cluster.start_registry(node)
    back = time.monotonic()
    poll("the pre-pull pod to be Ready once the registry is back", lambda: ready_pod("offline"), timeout=330, every=1)
    recovery = time.monotonic() - back
    assert image in present()
    # No action from us: the same pod, pulling again after its back-off (at most 5 minutes).
    assert recovery < 305
    measured("registry unreachable, then back: image present (the kubelet's back-off)", recovery)


def test_a_kubelet_restart_while_the_pod_starts_still_ends_with_the_images_present(node, measured):
    images = [fresh_image(), fresh_image()]
    deploy("restart", images)
    poll("the pre-pull pod to exist", lambda: "" if pods_of("restart") else "none yet", 60, 0.5)
    started = time.monotonic()
    cluster.restart_kubelet(node, {})
    poll("the pre-pull pod to be Ready after the kubelet restarted", lambda: ready_pod("restart"), timeout=300, every=1)
    assert set(images) <= present()
    measured("kubelet restarted while the pod starts: pod Ready, images present", time.monotonic() - started)
