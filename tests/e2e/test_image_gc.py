"""The central claim, on the real node: images a pre-puller pulled survive the kubelet's image
garbage collection while its pods exist, and become collectable once they are gone.

Runs on the local cluster only (tests/cluster): it restarts that cluster's real kubelet with
aggressive image garbage collection, which kind does not let a test do. Two cases, each with
its own kubelet configuration:

1. by age: ``imageMaximumGCAge: 1m`` (and ``imageMinimumGCAge: 30s``, which must be smaller);
2. by disk usage: ``imageGCHighThresholdPercent: 1``, ``imageGCLowThresholdPercent: 0``,
   ``imageMinimumGCAge: 0s`` (every pass must try to free everything it may).

In each, a *control* image, pulled by a pod that was then deleted, must disappear in a
collection pass, which shows that collection really ran, while every image of the pre-puller
stays through that pass and the next. Then the pre-puller's DaemonSet is deleted, and its
images must go in a later pass. The kubelet collects every 5 minutes (ImageGCPeriod, fixed), so
this module takes about 25 minutes. What it observed is in docs/image-gc.md.
"""

import os
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "cluster"))
import cluster  # noqa: E402
from cluster_env import LOCAL, apply, kubectl, poll, pull_control  # noqa: E402
from cluster_env import containerd_images as present  # noqa: E402

REGISTRY = os.environ.get("PREPULL_TEST_REGISTRY", "")
# Only the local cluster lets a test restart its kubelet: elsewhere (kind, the e2e workflow) this module
# is skipped even where the cluster tier is required.
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not LOCAL, reason="needs the local cluster (tests/cluster/up DIR, then . DIR/env): it restarts its kubelet"),
]

GC_PERIOD = 300  # the kubelet's ImageGCPeriod: a constant, 5 minutes
SLACK = 45  # a pass takes a moment after its period; containerd then deletes asynchronously
NAMESPACE = "prepull-gc"
NAME = "gc"
# Ours: images nothing else on the node uses. The control: one a plain pod pulls and leaves.
OURS = [f"{REGISTRY}/prepull-test/shellless:1", f"{REGISTRY}/prepull-test/multiarch:1"]
CONTROL = f"{REGISTRY}/prepull-test/busybox:1"

# The kubelet requires imageMaximumGCAge > imageMinimumGCAge (default 2m).
BY_AGE = {"imageMaximumGCAge": "1m", "imageMinimumGCAge": "30s"}
BY_DISK = {"imageGCHighThresholdPercent": 1, "imageGCLowThresholdPercent": 0, "imageMinimumGCAge": "0s"}


def wait(what: str, condition, timeout: float, every: float = 5) -> None:
    poll(what, lambda: [] if condition() else f"containerd holds {sorted(present())}", timeout, every)


def sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))


def prepuller_objects() -> list:
    from prepull import manifests

    args = {
        "images": OURS,
        "namespace": NAMESPACE,
        "node_selector": {"kubernetes.io/hostname": cluster.REAL_NODE},
        "tolerate_all_taints": True,
    }
    return manifests(args, NAME)


def deploy_prepuller() -> None:
    apply(prepuller_objects())
    wait(
        "the pre-pull pod to be Ready",
        lambda: kubectl(
            "get",
            "pods",
            "-n",
            NAMESPACE,
            "-l",
            f"prepull.dev/daemonset={NAME}",
            "-o",
            "jsonpath={.items[*].status.conditions[?(@.type=='Ready')].status}",
        ).stdout
        == "True",
        timeout=180,
    )
    assert set(OURS) <= present()


@pytest.fixture(scope="module")
def node():
    """The pre-puller on the real node; afterwards the kubelet's own configuration is restored."""
    d = Path(LOCAL)
    deploy_prepuller()
    try:
        yield d
    finally:
        # The kubelet first: without a running kubelet the namespace's pods never finish terminating.
        cluster.restart_kubelet(d, {})
        kubectl("delete", "namespace", NAMESPACE, "--wait=true", check=False)


def survives_a_pass_that_collects_the_control(d: Path, patch: dict) -> float:
    """Restart the kubelet with ``patch``; return the start of the pass after the one that collected the control."""
    # A timeout while the control pod runs shows containerd's images, as the waits for collection do.
    pull_control(NAMESPACE, CONTROL, every=5, detail=lambda: f"containerd holds {sorted(present())}")
    started = cluster.restart_kubelet(d, patch)
    # The control goes in the first pass allowed to take it (by age: the first after 1m of uptime).
    wait("the control image to be collected", lambda: CONTROL not in present(), timeout=2 * GC_PERIOD + SLACK)
    collected = time.time()
    missing = set(OURS) - present()
    assert not missing, f"collected with the control, although their pod runs: {missing}"
    # The next pass: ours must stay too.
    passes = int((collected - started) // GC_PERIOD) + 1
    next_pass = started + passes * GC_PERIOD + SLACK
    sleep_until(next_pass)
    missing = set(OURS) - present()
    assert not missing, f"collected one pass after the control, although their pod runs: {missing}"
    return next_pass


def test_by_age_the_control_goes_and_the_prepulled_images_stay(node):
    survives_a_pass_that_collects_the_control(node, BY_AGE)


def test_by_disk_usage_the_control_goes_the_prepulled_images_stay_until_their_pods_go(node):
    survives_a_pass_that_collects_the_control(node, BY_DISK)
    kubectl("delete", "daemonset", "-n", NAMESPACE, "-l", f"app.kubernetes.io/instance={NAME}", "--wait=true")
    wait("the pre-pull pods to be gone", lambda: not kubectl("get", "pods", "-n", NAMESPACE, "-o", "name").stdout.strip(), timeout=120)
    # Unused now: the next pass takes them.
    wait("the pre-pulled images to be collected once their pods are gone", lambda: not set(OURS) & present(), timeout=GC_PERIOD + SLACK)
