"""``method: image-volume`` on the real node, which runs containerd 2 (issue 22).

Image volumes need containerd >= 2.1: Debian's containerd 1.6, the local cluster's default
runtime, has none. So this module runs only on a local cluster started with
``tests/cluster/up DIR --runtime containerd2`` (``DIR/env`` then sets
``PREPULL_TEST_RUNTIME=containerd2``); tests/cluster/ci runs it in its second stage, on such a
cluster. Elsewhere it is skipped, even with ``PREPULL_E2E_REQUIRED=1``: the tier's first stage
runs on containerd 1.6.

Every image pulled here is pushed fresh first (tests/e2e/slow_registry.py's push_unique_image:
random bytes), so containerd has none of it and each pull really happens. What it shows:

1. the real node reports containerd 2 as its runtime;
2. the pre-puller's pod is Ready with no pull containers at all (the kubelet pulls every image
   volume before it starts any container); containerd holds every image (``ctr -n k8s.io images
   ls``); each image is mounted read-only in the running holder at ``/images/<volume>``, with the
   image's own files in it (read through ``/proc/<holder pid>/root``), a multi-architecture index
   as its amd64 image. The time from ``kubectl apply`` to Ready is measured, and for comparison the
   same for ``method: kubelet`` on images of the same size;
3. the gate: with ``startup_taint`` and ``remove_startup_taint`` the node's taint comes off only
   once every image is present. A recorder reads containerd's images, then the node's taints,
   every half second while the images come through a slowed registry (as in test_faults.py); it
   must see the taint on while an image is missing, and never off while one is;
4. image garbage collection: the kubelet restarted with disk-usage collection as aggressive as it
   goes (test_image_gc.py's ``BY_DISK``). A control image, pulled by a pod that is then deleted, is
   collected in a pass, which shows collection ran, while every image of the image-volume pod
   stays: the kubelet counts an image mounted as a volume of a running container as in use. Once
   the DaemonSet is deleted, its images go in a later pass. The kubelet collects every 5 minutes
   and its first pass after a start cannot measure the disk, so this takes about 11 minutes.
"""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "cluster"))
import cluster  # noqa: E402
from cluster_env import CONTAINERD, LOCAL, Recorder, apply, as_list, kubectl, pods_of, poll, pull_control, ready_pod  # noqa: E402
from cluster_env import containerd_images as present  # noqa: E402
from slow_registry import SlowRegistry, push_unique_image  # noqa: E402

REGISTRY = os.environ.get("PREPULL_TEST_REGISTRY", "")
# DIR/env of tests/cluster/up says which runtime the real node runs (an older DIR/env: containerd 1.6).
RUNTIME = os.environ.get("PREPULL_TEST_RUNTIME", cluster.DEFAULT_RUNTIME)


def skip_reason() -> Optional[str]:
    if not LOCAL:
        return (
            "needs the local cluster on containerd 2 (tests/cluster/up DIR --runtime containerd2, then . DIR/env): "
            "image volumes, and it reads its containerd and restarts its kubelet"
        )
    if RUNTIME != "containerd2":
        return (
            f"the local cluster's real node runs {RUNTIME} (PREPULL_TEST_RUNTIME), which has no image volumes; skipped even with "
            "PREPULL_E2E_REQUIRED=1 because that tier's first stage runs on containerd 1.6: tests/cluster/ci runs this module "
            "in its second stage, on a cluster started with `tests/cluster/up DIR --runtime containerd2`"
        )
    return None


SKIP_REASON = skip_reason()
pytestmark = [pytest.mark.e2e, pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")]

NAMESPACE = "prepull-image-volume"
MIB = 16  # each fresh image: one layer of this many MiB of random bytes
MULTIARCH = f"{REGISTRY}/prepull-test/multiarch:1"  # an index of amd64 and arm64 images (tests/cluster/images.py)
GATE = {"key": "prepull.dev/image-volume-gate", "effect": "NoSchedule"}
SLOW_RATE = 4 * 1024 * 1024  # bytes a second: two 24 MiB images take about 12 s through the proxy
SLOW_MIB = 24
# test_image_gc.py's collection by disk usage: every pass tries to free everything it may.
BY_DISK = {"imageGCHighThresholdPercent": 1, "imageGCLowThresholdPercent": 0, "imageMinimumGCAge": "0s"}
GC_PERIOD = 300  # the kubelet's ImageGCPeriod: a constant, 5 minutes
SLACK = 45  # a pass takes a moment after its period; containerd then deletes asynchronously
CONTROL = f"{REGISTRY}/prepull-test/busybox:1"


# ---------------------------------------------------------------- helpers


def fresh_images(n: int, mib: int = MIB, registry: str = REGISTRY) -> list:
    """``n`` images no node has: fresh random layers pushed to the cluster's registry, named through ``registry``."""
    return [f"{registry}/{push_unique_image(REGISTRY, mib)}" for _ in range(n)]


class Node:
    """The test namespace on the real node; what was applied, and whether the kubelet's configuration was changed."""

    def __init__(self, d: Path) -> None:
        self.d, self.applied, self.kubelet_patched = d, [], False

    def deploy(self, name: str, images: list, **extra) -> list:
        """Apply the pre-puller ``name`` of ``images`` on the real node; its objects, the namespace left out."""
        from prepull import manifests

        args = {
            "images": images,
            "method": "image-volume",
            "namespace": NAMESPACE,
            "node_selector": {"kubernetes.io/hostname": cluster.REAL_NODE},
            "tolerate_all_taints": True,
            **extra,
        }
        objects = manifests(args, name)
        apply(objects)
        # Several pre-pullers share the namespace: deleting one's objects must not delete it.
        own = [o for o in objects if o["kind"] != "Namespace"]
        self.applied.extend(own)
        return own

    def remove(self, objects: list) -> None:
        kubectl("delete", "--ignore-not-found", "--wait=true", "-f", "-", input=as_list(objects), check=False)


@pytest.fixture(scope="module")
def node():
    """The real node; afterwards the kubelet's own configuration is back and every object applied is gone."""
    n = Node(Path(LOCAL))
    try:
        yield n
    finally:
        if n.kubelet_patched:
            # The kubelet first: without a running kubelet the namespace's pods never finish terminating.
            cluster.restart_kubelet(n.d, {})
        kubectl("delete", "--ignore-not-found", "--wait=false", "-f", "-", input=as_list(n.applied), check=False)
        kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true", check=False)


def wait_ready(name: str, timeout: float = 180) -> None:
    try:
        poll(f"the pre-pull pod {name} to be Ready", lambda: ready_pod(NAMESPACE, name), timeout=timeout, every=0.5)
    except pytest.fail.Exception:
        print(kubectl("describe", "pods", "-n", NAMESPACE, "-l", f"prepull.dev/daemonset={name}", check=False).stdout)
        raise


def daemon_set(objects: list) -> dict:
    return next(o for o in objects if o["kind"] == "DaemonSet")


def image_mounts(objects: list) -> dict:
    """Image reference -> the holder's mount path of its volume, from the rendered DaemonSet."""
    spec = daemon_set(objects)["spec"]["template"]["spec"]
    paths = {m["name"]: m["mountPath"] for m in spec["containers"][0].get("volumeMounts", [])}
    return {v["image"]["reference"]: paths[v["name"]] for v in spec["volumes"] if "image" in v}


def holder_pid(pod: dict) -> int:
    """The host PID of the pod's running holder container, from containerd's task list."""
    status = next(s for s in pod["status"]["containerStatuses"] if s["name"] == "holder")
    container_id = status["containerID"].split("://", 1)[1]
    out = subprocess.run(["ctr", "--address", CONTAINERD, "-n", "k8s.io", "tasks", "ls"], check=True, capture_output=True, text=True).stdout
    for line in out.splitlines()[1:]:
        task, pid, *_ = line.split()
        if task == container_id:
            return int(pid)
    raise AssertionError(f"no task {container_id} in containerd's tasks:\n{out}")


def mount_options(pid: int) -> dict:
    """Mount point (as the process sees it) -> its per-mount options, from /proc/PID/mountinfo."""
    lines = Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
    return {line.split()[4]: set(line.split()[5].split(",")) for line in lines}


# ---------------------------------------------------------------- 1-2: the runtime, the pulls, the mounts


def test_the_real_node_runs_containerd_2():
    info = json.loads(kubectl("get", "node", cluster.REAL_NODE, "-o", "json").stdout)["status"]["nodeInfo"]
    assert re.match(r"containerd://v?2\.", info["containerRuntimeVersion"]), info["containerRuntimeVersion"]


@pytest.fixture(scope="module")
def volumes(node):
    """The image-volume pre-puller ``volumes`` of two fresh images and the multi-architecture index, Ready.

    Kept until the garbage-collection test deletes it. Returns (its objects, its images, seconds from apply to Ready).
    """
    fresh = fresh_images(2)
    assert not set(fresh) & present(), "a fresh image was already present: its pull would prove nothing"
    images = [*fresh, MULTIARCH]
    started = time.monotonic()
    objects = node.deploy("volumes", images)
    wait_ready("volumes")
    return objects, images, time.monotonic() - started


def test_image_volumes_pull_every_image_and_the_holder_mounts_each_read_only(volumes, measured):
    objects, images, elapsed = volumes
    measured(f"image-volume: apply to Ready, {len(images) - 1} fresh {MIB} MiB images and a multi-arch index", elapsed)
    assert set(images) <= present()
    pod = pods_of(NAMESPACE, "volumes")[0]
    # No pull containers: the kubelet pulled every image volume before it started the holder.
    assert not pod["spec"].get("initContainers"), [c["name"] for c in pod["spec"]["initContainers"]]
    assert [c["name"] for c in pod["spec"]["containers"]] == ["holder"]
    pid = holder_pid(pod)
    mounts, root = mount_options(pid), Path(f"/proc/{pid}/root")
    for image, path in image_mounts(objects).items():
        assert path in mounts, f"{image} is not mounted at {path} in the holder: {sorted(mounts)}"
        assert "ro" in mounts[path], f"{path} is mounted {sorted(mounts[path])}, not read-only"
        # Every image of tests/cluster/images.py carries the path it was pushed to in this file.
        label = (root / path.lstrip("/") / "etc" / "prepull-stand-in").read_text()
        assert label == image.split("/", 1)[1] + "\n", (image, label)
        if image == MULTIARCH:
            assert (root / path.lstrip("/") / "arch.txt").read_text() == "amd64\n"
        else:
            assert (root / path.lstrip("/") / "data" / "blob").stat().st_size == MIB * 1024 * 1024


def test_for_comparison_method_kubelet_on_containerd_2(node, measured):
    images = fresh_images(2)
    started = time.monotonic()
    objects = node.deploy("kubelet", images, method="kubelet")
    wait_ready("kubelet")
    measured(f"kubelet method (containerd 2): apply to Ready, {len(images)} fresh {MIB} MiB images", time.monotonic() - started)
    assert set(images) <= present()
    node.remove(objects)


# ---------------------------------------------------------------- 3: the gate


def test_the_gate_lifts_the_taint_only_once_every_image_volume_is_present(node, measured):
    with SlowRegistry(node.d, REGISTRY, SLOW_RATE) as slow:
        images = fresh_images(2, SLOW_MIB, slow.host)
        kubectl("taint", "node", cluster.REAL_NODE, f"{GATE['key']}:{GATE['effect']}", "--overwrite")
        recorder = Recorder(images, GATE["key"])
        recorder.start()
        objects = []
        try:
            started = time.monotonic()
            objects = node.deploy("gated", images, startup_taint=GATE, remove_startup_taint=True)
            wait_ready("gated", timeout=300)
            ready = time.monotonic()
            recorder.wait_taint_gone()
        finally:
            recorder.stop()
            kubectl("taint", "node", cluster.REAL_NODE, f"{GATE['key']}:{GATE['effect']}-", check=False)
        assert set(images) <= present()
        early = [(round(t - started, 1), missing) for t, missing, tainted in recorder.ticks if tainted is False and missing]
        assert not early, f"the gate opened before every image was present: {early}"
        held = [t for t, missing, tainted in recorder.ticks if tainted and missing]
        assert held, "the taint was never seen on while an image was missing: the test proves nothing"
        # The pulls are image volumes, done before any container; the one init container is the gate's
        # step, which runs busybox from the helper image mounted as a volume (no copy step before it).
        pod = pods_of(NAMESPACE, "gated")[0]
        assert [c["name"] for c in pod["spec"]["initContainers"]] == ["untaint"], pod["spec"]["initContainers"]
        helper = next(v for v in pod["spec"]["volumes"] if v["name"] == "prepull-bin")
        assert helper["image"]["reference"] in present(), helper
        measured("image-volume with the gate: apply to Ready, 2 fresh 24 MiB images at 4 MiB/s, gate held", ready - started)
        node.remove(objects)


def test_a_failed_image_volume_pull_keeps_the_gate_step_from_running_and_the_taint_on(node):
    # The kubelet tries every image volume before any container, but a failed pull stops only the
    # containers that mount that volume: the gate's step mounts them all, so it must not start.
    images = [*fresh_images(1), f"{REGISTRY}/prepull-test/missing:{int(time.time())}"]
    kubectl("taint", "node", cluster.REAL_NODE, f"{GATE['key']}:{GATE['effect']}", "--overwrite")
    objects = []
    try:
        objects = node.deploy("failing", images, startup_taint=GATE, remove_startup_taint=True)

        def pull_failed() -> str:
            # The failure shows on the first container the kubelet tries to start: the gate's step.
            pods = pods_of(NAMESPACE, "failing")
            status = pods[0]["status"] if pods else {}
            statuses = [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]
            reasons = {((s.get("state") or {}).get("waiting") or {}).get("reason") for s in statuses}
            return "" if {"ErrImagePull", "ImagePullBackOff"} & reasons else f"waiting reasons {sorted(map(str, reasons))}"

        poll("the missing image's pull to fail", pull_failed, timeout=120, every=1)
        time.sleep(5)  # a moment for a wrongly started step to show, and to lift the taint
        pod = pods_of(NAMESPACE, "failing")[0]
        untaint = {s["name"]: s for s in pod["status"].get("initContainerStatuses") or []}["untaint"]
        assert "waiting" in untaint["state"], f"the gate's step started although a volume failed: {untaint['state']}"
        taints = kubectl("get", "node", cluster.REAL_NODE, "-o", "jsonpath={.spec.taints}").stdout
        assert GATE["key"] in taints, f"the taint went although a volume failed: {taints}"
        assert images[0] in present()
    finally:
        kubectl("taint", "node", cluster.REAL_NODE, f"{GATE['key']}:{GATE['effect']}-", check=False)
        node.remove(objects)


# ---------------------------------------------------------------- 4: image garbage collection


def wait_images(what: str, condition, timeout: float) -> None:
    poll(what, lambda: [] if condition() else f"containerd holds {sorted(present())}", timeout, 5)


def test_image_gc_leaves_the_volume_images_while_their_pod_lives_and_takes_them_after(node, volumes):
    objects, images, _ = volumes
    pull_control(NAMESPACE, CONTROL, every=1)
    node.kubelet_patched = True
    cluster.restart_kubelet(node.d, BY_DISK)
    # The first pass after a start cannot measure the disk (docs/image-gc.md): the control goes in the second.
    wait_images("the control image to be collected", lambda: CONTROL not in present(), timeout=2 * GC_PERIOD + SLACK)
    missing = set(images) - present()
    assert not missing, f"collected with the control, although the holder mounts them: {missing}"
    assert not ready_pod(NAMESPACE, "volumes"), "the image-volume pod is no longer Ready"
    node.remove([daemon_set(objects)])
    selector = "prepull.dev/daemonset=volumes"
    poll("the pre-pull pod to be gone", lambda: kubectl("get", "pods", "-n", NAMESPACE, "-l", selector, "-o", "name").stdout.strip(), 120)
    # Unused now: the next pass takes them.
    wait_images("the image-volume images to be collected once their pod is gone", lambda: not set(images) & present(), GC_PERIOD + SLACK)
