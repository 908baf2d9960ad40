"""Faults on the real node, and how long the pre-puller takes to heal from each (docs/reliability.md).

Runs on the local cluster only (tests/cluster): it stops and starts that cluster's registry and
kubelet, which kind does not let a test do. Each test prints the recovery time it measured in
the session's summary ("measured" section, tests/conftest.py). Covered so far:

1. the holder pod deleted (as an eviction would): the DaemonSet recreates it, and it pulls
   nothing again: every image is "already present on machine";
2. the registry unreachable when the pods pull, then back: the pod finishes with no action from
   us, after the kubelet's image-pull back-off (10 s, doubling to 5 min) runs out; deleting the
   pod retries at once; and with ``pull_retry_seconds`` the pod's own watchdog does that delete;
3. the kubelet, containerd, or the API server restarted in the middle of a gated pod's pulls
   (slowed by tests/e2e/slow_registry.py so that there is a middle): the images end up present,
   the pod Ready, and the node's startup taint stays on until every image is there. A recorder
   reads containerd's image list, then the node's taints, every half second: the taint must never
   be seen gone while an image is still missing. For the API server, the untaint step's own
   retries (every 2 s) must lift the taint within seconds of its return;
4. disk pressure (the kubelet restarted with an eviction threshold just under the free space): a
   workload writing far over its ephemeral-storage request is evicted, and the kubelet's own
   ranking (its log) puts our holder after it; the holder and its images stay.

The gate across two lanes is checked here too, with the same recorder (no fault).

`pulumi up` interrupted mid-rollout is in test_readme_cli.py: it needs the CLI and a project copy.
"""

import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Optional

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "cluster"))
import cluster  # noqa: E402
from cluster_env import LOCAL, Recorder, apply, as_list, kubectl, pods_of, poll, ready_pod  # noqa: E402
from cluster_env import containerd_images as present  # noqa: E402
from slow_registry import SlowRegistry, push_unique_image, skopeo_copy  # noqa: E402

REGISTRY = os.environ.get("PREPULL_TEST_REGISTRY", "")
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not LOCAL, reason="needs the local cluster (tests/cluster/up DIR, then . DIR/env): it stops its registry and kubelet"
    ),
]

NAMESPACE = "prepull-faults"
SOURCE = f"{REGISTRY}/prepull-test/busybox:1"
GATE = {"key": "prepull.dev/faults-gate", "effect": "NoSchedule"}
SLOW_RATE = 4 * 1024 * 1024  # bytes a second: two 24 MiB images take about 12 s through the proxy
SLOW_MIB = 24


def fresh_image() -> str:
    """A tag no node has pulled: the same image as SOURCE under a new name, so pulling it needs the registry."""
    image = f"{REGISTRY}/prepull-test/fault:{uuid.uuid4().hex[:12]}"
    skopeo_copy(f"docker://{SOURCE}", f"docker://{image}", "--src-tls-verify=false", "--dest-tls-verify=false", timeout=120)
    return image


def deploy(name: str, images: list, gate: bool = False, extra: Optional[dict] = None) -> list:
    """The pre-puller ``name`` of ``images`` on the real node (gated: it lifts GATE; ``extra``: more inputs); its objects."""
    from prepull import manifests

    args = {
        "images": images,
        "namespace": NAMESPACE,
        "create_namespace": False,
        "node_selector": {"kubernetes.io/hostname": cluster.REAL_NODE},
        "tolerate_all_taints": True,
        **({"startup_taint": GATE, "remove_startup_taint": True} if gate else {}),
        **(extra or {}),
    }
    objects = manifests(args, name)
    apply(objects)
    return objects


def another_pod(name: str, old: str) -> str:
    """ "" once ``name`` has a pod other than ``old`` (Ready or not), for poll.

    One read: between two, the old pod can get its deletionTimestamp before the new one exists.
    """
    pods = pods_of(NAMESPACE, name)
    return "" if pods and pods[0]["metadata"]["name"] != old else f"{old} not replaced yet"


def replaced(name: str, old: str) -> str:
    """Problems keeping a pod other than ``old`` from being ``name``'s Ready pod ("" when one is), for poll."""
    pods = pods_of(NAMESPACE, name)
    if not pods or pods[0]["metadata"]["name"] == old:
        return f"{old} not replaced yet"
    return ready_pod(NAMESPACE, name)


def events(pod: str, reason: str) -> list:
    out = kubectl("get", "events", "-n", NAMESPACE, "--field-selector", f"involvedObject.name={pod},reason={reason}", "-o", "json").stdout
    return [e.get("message", "") for e in json.loads(out)["items"]]


def pull_not_failed(name: str) -> str:
    """ "" once ``name``'s pod has a Failed event (its pull failed), else why not, for poll."""
    pods = pods_of(NAMESPACE, name)
    return "" if pods and events(pods[0]["metadata"]["name"], "Failed") else "no failure yet"


@pytest.fixture(scope="module")
def node():
    """The test namespace; afterwards whatever a test stopped runs again, and the namespace is gone."""
    d = Path(LOCAL)
    kubectl("create", "namespace", NAMESPACE, check=False)
    try:
        yield d
    finally:
        if not cluster.recorded_pid(d, "registry"):
            cluster.start_registry(d)
        if not cluster.recorded_pid(d, "containerd"):
            cluster.start_containerd(d)
        if not cluster.recorded_pid(d, "kube-apiserver"):
            cluster.start_apiserver(d, d / "pki")
        if not cluster.recorded_pid(d, "kubelet"):
            cluster.restart_kubelet(d, {})
        kubectl("delete", "namespace", NAMESPACE, "--wait=true", check=False)


def test_a_deleted_holder_pod_is_recreated_and_pulls_nothing_again(node, measured):
    images = [fresh_image(), fresh_image()]
    deploy("holder", images)
    poll("the pre-pull pod to be Ready", lambda: ready_pod(NAMESPACE, "holder"), timeout=180, every=2)
    old = pods_of(NAMESPACE, "holder")[0]["metadata"]["name"]
    deleted = time.monotonic()
    kubectl("delete", "pod", "-n", NAMESPACE, old, "--wait=false")
    poll("a new pre-pull pod to be Ready", lambda: replaced("holder", old), timeout=180, every=1)
    recovery = time.monotonic() - deleted
    new = pods_of(NAMESPACE, "holder")[0]["metadata"]["name"]
    assert set(images) <= present()
    # The kubelet checks each image and finds it: no pull, whatever the registry does.
    pulled = events(new, "Pulled")
    assert not events(new, "Pulling"), events(new, "Pulling")
    assert all(any(image in m and "already present on machine" in m for m in pulled) for image in images), pulled
    measured("holder pod deleted: a new pod Ready, nothing pulled again", recovery)


def outage(node: Path, name: str, down: float) -> tuple[str, float]:
    """Deploy ``name`` of a fresh image with the registry stopped; start it again ``down`` s after the pull failed.

    Returns the image and when the registry was back (time.monotonic()).
    """
    image = fresh_image()
    cluster.stop_pid(node, "registry")
    try:
        deploy(name, [image])
        poll("the pull to fail", lambda: pull_not_failed(name), 120, 1)
        time.sleep(down)
    finally:
        cluster.start_registry(node)
    return image, time.monotonic()


def test_an_unreachable_registry_delays_the_pull_until_it_is_back_and_the_pod_then_finishes(node, measured):
    # 30 s: a few failed attempts, so the kubelet's back-off has grown past its first 10 s.
    image, back = outage(node, "offline", 30)
    poll("the pre-pull pod to be Ready once the registry is back", lambda: ready_pod(NAMESPACE, "offline"), timeout=330, every=1)
    recovery = time.monotonic() - back
    assert image in present()
    # No action from us: the same pod, pulling again after its back-off (at most 5 minutes).
    assert recovery < 305
    measured("registry unreachable, then back: image present (the kubelet's back-off)", recovery)


def test_after_a_registry_outage_deleting_the_pod_retries_at_once_instead_of_after_the_back_off(node, measured):
    # The user's remedy (docs/reliability.md): the kubelet's back-off is per pod and image, so a new pod pulls at once.
    # 45 s: failed attempts at about 0, 10, 30 s, so the next one is due about 40 s after that.
    image, back = outage(node, "remedy", 45)
    old = pods_of(NAMESPACE, "remedy")[0]["metadata"]["name"]
    kubectl("delete", "pod", "-n", NAMESPACE, old, "--wait=false")
    poll("a new pre-pull pod to be Ready", lambda: replaced("remedy", old), timeout=120, every=0.5)
    recovery = time.monotonic() - back
    assert image in present()
    assert recovery < 20, recovery  # the old pod's next try was still tens of seconds away
    measured("registry back, then the pod deleted: image present (no back-off to wait out)", recovery)


def delete_objects(objects: list) -> None:
    """Delete a test's objects, the cluster-scoped ones (admission policies) included: the namespace's deletion leaves those."""
    if objects:
        kubectl("delete", "--ignore-not-found", "--wait=false", "-f", "-", input=as_list(objects), check=False)


def test_with_pull_retry_a_registry_outage_heals_without_waiting_out_the_back_off(node, measured):
    # pull_retry_seconds (docs/reliability.md): the pod's watchdog deletes it while a pull backs off, so no
    # back-off is ever waited out; no delete from us.
    from prepull.args import DEFAULTS

    objects: list = []
    try:
        # The watchdog's kubectl and the helper's busybox come from the registry too: on the node before it stops.
        objects = deploy("retry-warm", [DEFAULTS["untaint_image"]])
        poll("the watchdog's image to be on the node", lambda: ready_pod(NAMESPACE, "retry-warm"), timeout=180, every=1)
        delete_objects(objects)
        image = fresh_image()
        cluster.stop_pid(node, "registry")
        try:
            objects = deploy("retry", [image], extra={"pull_retry_seconds": 10})
            poll("the pull to fail", lambda: pull_not_failed("retry"), 120, 1)
            first = pods_of(NAMESPACE, "retry")[0]["metadata"]["name"]
            # Its watchdog's delete is admitted (its own pod): the DaemonSet makes a new pod, which tries at once.
            poll("the watchdog to replace the pod", lambda: another_pod("retry", first), 60, 1)
            time.sleep(45)  # as long as the remedy test's outage: the kubelet's back-off alone would have grown to 40 s
        finally:
            cluster.start_registry(node)
        back = time.monotonic()
        poll("a pre-pull pod to be Ready once the registry is back", lambda: ready_pod(NAMESPACE, "retry"), timeout=120, every=0.5)
        recovery = time.monotonic() - back
        assert pods_of(NAMESPACE, "retry")[0]["metadata"]["name"] != first
        assert image in present()
        assert recovery < 30, recovery  # at most one watchdog period (10 s) and a pod start
        measured("registry back, with pull_retry_seconds 10: a Ready pod (the watchdog's delete, no back-off)", recovery)
    finally:
        delete_objects(objects)


@pytest.fixture
def gated(node):
    """Slow unique images, the real node tainted with GATE, a recorder; the pre-puller's objects removed afterwards."""
    with SlowRegistry(node, REGISTRY, SLOW_RATE) as slow:
        images = [f"{slow.host}/{push_unique_image(REGISTRY, SLOW_MIB)}" for _ in range(2)]
        kubectl("taint", "node", cluster.REAL_NODE, f"{GATE['key']}:{GATE['effect']}", "--overwrite")
        recorder = Recorder(images, GATE["key"])
        objects = []
        recorder.start()
        try:
            yield slow, images, recorder, objects
        finally:
            recorder.stop()
            kubectl("taint", "node", cluster.REAL_NODE, f"{GATE['key']}:{GATE['effect']}-", check=False)
            kubectl("delete", "--ignore-not-found", "--wait=false", "-f", "-", input=as_list(objects), check=False)


def start_gated_and_wait_for_the_pull(name: str, gated) -> float:
    """Deploy the gated pre-puller; return once the proxy has served a few MiB (a pull is under way)."""
    slow, images, recorder, objects = gated
    objects.extend(deploy(name, images, gate=True))
    poll("a pull to be under way", lambda: "" if slow.served_bytes() > 4 * 1024 * 1024 else f"{slow.served_bytes()} bytes served", 180, 0.2)
    assert set(images) - present(), "every image was already present: the fault would not be mid-pull"
    return time.monotonic()


def finish(name: str, gated, since: float, what: str, measured) -> None:
    """The pod Ready, every image present, the gate held until then; record the time from ``since``."""
    _, images, recorder, _ = gated
    try:
        poll(f"the pre-pull pod to be Ready after {what}", lambda: ready_pod(NAMESPACE, name), timeout=300, every=1)
    except pytest.fail.Exception:
        print(kubectl("describe", "pods", "-n", NAMESPACE, check=False).stdout)  # shown with the failure
        raise
    ready = time.monotonic()
    assert set(images) <= present()
    recorder.wait_taint_gone()
    recorder.check_gate_held()
    measured(f"{what} mid-pull: pod Ready, images present, gate held", ready - since)


def test_without_a_fault_the_same_gated_pull_takes_the_baseline_time(node, gated, measured):
    # The figure the faults below are compared with (docs/reliability.md): same images, same rate.
    since = start_gated_and_wait_for_the_pull("baseline", gated)
    finish("baseline", gated, since, "no fault (baseline)", measured)


def test_with_two_lanes_each_lane_waits_and_the_taint_goes_only_once_both_have_pulled(node, gated, measured):
    # Not a fault: the gate across lanes (one image a lane), with the same recorder as the faults.
    slow, images, recorder, objects = gated
    objects.extend(deploy("lanes", images, gate=True, extra={"lanes": 2}))
    since = time.monotonic()
    for lane in ("lanes-l1", "lanes-l2"):
        poll(f"{lane}'s pod to be Ready", lambda: ready_pod(NAMESPACE, lane), timeout=300, every=1)
    ready = time.monotonic()
    assert set(images) <= present()
    recorder.wait_taint_gone()
    recorder.check_gate_held()
    for lane in ("lanes-l1", "lanes-l2"):
        status = {s["name"]: s["state"] for s in pods_of(NAMESPACE, lane)[0]["status"]["initContainerStatuses"]}
        assert status["untaint"]["terminated"]["exitCode"] == 0, (lane, status["untaint"])
    measured("two lanes, gated: both pods Ready, images present, gate held", ready - since)


def test_a_kubelet_restart_mid_pull_ends_with_the_images_present_and_the_gate_held(node, gated, measured):
    since = start_gated_and_wait_for_the_pull("kubelet", gated)
    cluster.restart_kubelet(node, {})
    finish("kubelet", gated, since, "kubelet restarted", measured)


def test_a_containerd_restart_mid_pull_ends_with_the_images_present_and_the_gate_held(node, gated, measured):
    since = start_gated_and_wait_for_the_pull("containerd", gated)
    cluster.stop_pid(node, "containerd")
    cluster.start_containerd(node)
    finish("containerd", gated, since, "containerd restarted", measured)


def test_the_api_server_down_during_the_untaint_step_lifts_the_taint_once_it_is_back(node, gated, measured):
    _, images, recorder, _ = gated
    start_gated_and_wait_for_the_pull("apiserver", gated)
    cluster.stop_pid(node, "kube-apiserver")
    try:
        # Down until every image is present and the untaint step has had time to try, and fail.
        poll("the images to be present with the API server down", lambda: sorted(set(images) - present()), 300, 0.5)
        time.sleep(15)
    finally:
        restarted = time.monotonic()
        cluster.start_apiserver(node, node / "pki")
    poll("the taint to come off", lambda: "" if any(t is False and s > restarted for s, _, t in recorder.ticks) else "still on", 120, 0.5)
    lifted = recorder.check_gate_held()
    assert lifted > restarted
    measured("API server restarted: the untaint step lifted the taint (its own 2 s retries)", lifted - restarted)
    poll("the pre-pull pod to be Ready", lambda: ready_pod(NAMESPACE, "apiserver"), timeout=120, every=1)
    # It was the step's own retries, not the kubelet restarting it: one run that failed, then succeeded.
    pod = pods_of(NAMESPACE, "apiserver")[0]
    untaint = next(c for c in pod["status"]["initContainerStatuses"] if c["name"] == "untaint")
    assert untaint["restartCount"] == 0, untaint
    log = kubectl("logs", "-n", NAMESPACE, pod["metadata"]["name"], "-c", "untaint").stdout
    assert "refused" in log or "timed out" in log.lower(), log


def node_available_bytes() -> int:
    """The real node's filesystem's available bytes, as the kubelet's eviction manager sees them."""
    summary = json.loads(kubectl("get", "--raw", f"/api/v1/nodes/{cluster.REAL_NODE}/proxy/stats/summary").stdout)
    return int(summary["node"]["fs"]["availableBytes"])


# A workload pod with no ephemeral-storage limit that writes FILL_MIB to an emptyDir: far over its request.
FILL_MIB = 1024


def filler(name: str) -> dict:
    container = {
        "name": "fill",
        "image": SOURCE,
        "command": ["sh", "-c", f"dd if=/dev/zero of=/data/fill bs=1M count={FILL_MIB} && sleep 3600"],
        "resources": {"requests": {"ephemeral-storage": "10Mi", "cpu": "10m", "memory": "16Mi"}},
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    }
    spec = {
        "nodeName": cluster.REAL_NODE,
        "tolerations": [{"operator": "Exists"}],
        "containers": [container],
        "volumes": [{"name": "data", "emptyDir": {}}],
        "terminationGracePeriodSeconds": 1,
    }
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NAMESPACE}, "spec": spec}


@pytest.fixture
def disk_threshold(node):
    """The kubelet restarted with a disk-pressure eviction threshold 600 MiB below today's free space; restored after."""
    threshold = node_available_bytes() - 600 * 1024 * 1024
    eviction = {"memory.available": "100Mi", "nodefs.available": str(threshold), "imagefs.available": str(threshold)}
    # Volume usage measured every 5 s (default 1 min), pressure cleared 5 s after it ends (default 5 min).
    cluster.restart_kubelet(node, {"evictionHard": eviction, "evictionPressureTransitionPeriod": "5s", "volumeStatsAggPeriod": "5s"})
    try:
        yield threshold
    finally:
        cluster.restart_kubelet(node, {})


def pod_status(name: str) -> dict:
    return json.loads(kubectl("get", "pod", "-n", NAMESPACE, name, "-o", "json").stdout)["status"]


def pod_phase_reason(name: str) -> tuple:
    status = pod_status(name)
    return status.get("phase"), status.get("reason")


def test_under_disk_pressure_a_workload_over_its_request_is_evicted_before_the_holder(node, disk_threshold, measured):
    images = [fresh_image(), fresh_image()]
    deploy("evict", images)
    poll("the pre-pull pod to be Ready", lambda: ready_pod(NAMESPACE, "evict"), timeout=180, every=2)
    holder = pods_of(NAMESPACE, "evict")[0]["metadata"]["name"]
    kubelet_log = node / "logs" / "kubelet.log"
    log_start = kubelet_log.stat().st_size
    apply([filler("filler")])
    started = time.monotonic()
    evicted = ("Failed", "Evicted")
    poll("the filler to be evicted", lambda: "" if pod_phase_reason("filler") == evicted else pod_phase_reason("filler"), 300, 1)
    measured("disk pressure: the workload over its request evicted", time.monotonic() - started)
    # Evicted for the node's disk pressure, ranked by its use over its request (it has no limit to exceed).
    message = pod_status("filler").get("message", "")
    assert "low on resource: ephemeral-storage" in message, message
    # The kubelet's own ranking, from its log: the workload first, our holder after it.
    with kubelet_log.open() as log:
        log.seek(log_start)
        ranked = next(line for line in log if "pods ranked for eviction" in line)
    order = json.loads(ranked.split("pods=", 1)[1])
    assert order.index(f"{NAMESPACE}/filler") < order.index(f"{NAMESPACE}/{holder}"), order
    # The holder stays: same pod, never evicted, its images still present (in use, so image GC left them).
    assert pods_of(NAMESPACE, "evict")[0]["metadata"]["name"] == holder
    assert pod_phase_reason(holder) == ("Running", None)
    assert set(images) <= present()
    assert not events(holder, "Evicted")
    kubectl("delete", "pod", "-n", NAMESPACE, "filler", "--wait=false", check=False)
