"""``python -m prepull status`` against a real cluster: the real node's kubelet, and kwok nodes.

Each test deploys a pre-puller of its own with ``prepull.manifests(args, name)``, applied by kubectl
as one List (no Pulumi: faster, and ``status`` reads only what the API says), in a namespace of its
own, then runs ``python -m prepull status`` as a user does (a subprocess, ``-o json``) and checks the
document and the exit code. Everything a test creates is deleted afterwards.

- A tag missing from the registry, on the real node (``PREPULL_TEST_REAL_NODE``): ``failed`` with the
  kubelet's reason and message, exit 1.
- A correct image list on the real node: ``present`` with the kubelet's times (``pull_policy:
  Always``, so the kubelet pulls and reports a time even if the images are already there), exit 0.
- A kwok node with a taint the pre-puller does not tolerate: ``not-scheduled``, ``UntoleratedTaint``,
  beside an untainted kwok node of the same pool that is ``present`` (kwok writes the pod's status).
- A kwok pod driven by our Stage (tests/cluster/stages) into ``ImagePullBackOff``: ``failed``, exit 1.
- 1,000 kwok nodes: every one ``present``, in five API calls a snapshot.

The first two need the local cluster's real node, the third its kwok controller: all three are
local-cluster only (``LOCAL``), and are skipped elsewhere with the reason.
"""

import json
import os
import re
import subprocess
import sys

import pytest
from cluster_env import CONTEXT, LOCAL, ROOT, apply, kubectl, kwok_node, marks, node_ready, poll, unreachable

import prepull

REAL_NODE = os.environ.get("PREPULL_TEST_REAL_NODE")
# docker.io is served by the local cluster's registry (docs/e2e.md, "The images"): this tag is not there.
MISSING = "docker.io/library/alpine:0.0-prepull-missing"
PRESENT_IMAGES = ["docker.io/library/alpine:3.21", "docker.io/library/python:3.13-slim"]
KWOK_POOL = "prepull.dev/status-e2e"
BLOCKING_TAINT = {"key": "prepull.dev/status-e2e", "value": "blocked", "effect": "NoSchedule"}
WATCH_TIMEOUT = os.environ.get("PREPULL_E2E_STATUS_TIMEOUT", "300s")

pytestmark = [
    *marks(unreachable(("kubectl",))),
    pytest.mark.skipif(not LOCAL, reason="needs the local cluster (tests/cluster/up DIR, then . DIR/env): its real node and kwok"),
]


def status(namespace: str, *extra) -> tuple:
    """(exit code, the JSON document or None, stderr) of ``python -m prepull status`` for ``namespace``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "components")}
    argv = [sys.executable, "-m", "prepull", "status", "--context", CONTEXT, "--namespace", namespace, "-o", "json", "--verbose", *extra]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
    return out.returncode, json.loads(out.stdout) if out.stdout.strip() else None, out.stderr


@pytest.fixture
def deploy(request):
    """deploy(name, args): apply the pre-puller's objects in namespace ``prepull-status-<name>``; deleted after the test."""
    namespaces = []

    def _deploy(name: str, args: dict) -> str:
        namespace = f"prepull-status-{name}"
        namespaces.append(namespace)
        apply(prepull.manifests({**args, "namespace": namespace}, name))
        return namespace

    yield _deploy
    for namespace in namespaces:
        kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def on_real_node(images: list, **args) -> dict:
    # The real node registers with the gate's startup taint (tests/cluster), which test_e2e may or may not have lifted.
    return {"images": images, "node_selector": {"kubernetes.io/hostname": REAL_NODE}, "tolerate_all_taints": True, **args}


def node_of(doc: dict, node: str) -> dict:
    nodes = [n for ds in doc["daemonSets"] for n in ds["nodes"] if n["name"] == node]
    assert len(nodes) == 1, json.dumps(doc, indent=2)[:3000]
    return nodes[0]


def image_of(node: dict, image: str) -> dict:
    return next(i for i in node["images"] if i["image"] == image)


def test_a_missing_tag_is_failed_with_the_kubelets_reason_and_exits_1(deploy):
    assert REAL_NODE, "PREPULL_TEST_REAL_NODE is not set: source DIR/env of tests/cluster/up"
    namespace = deploy("missing", on_real_node([PRESENT_IMAGES[0], MISSING]))
    code, doc, err = status(namespace, "--watch", "--timeout", WATCH_TIMEOUT)
    assert code == 1, (code, err, doc)
    node = node_of(doc, REAL_NODE)
    missing = image_of(node, MISSING)
    assert (doc["state"], node["state"], missing["state"]) == ("failed", "failed", "failed"), json.dumps(node, indent=2)
    assert missing["reason"] in ("ErrImagePull", "ImagePullBackOff"), missing
    assert "not found" in (missing["message"] or ""), missing
    assert image_of(node, PRESENT_IMAGES[0])["state"] == "present", node
    assert "API call(s)" in err


def test_a_correct_stack_is_present_with_the_kubelets_times_and_exits_0(deploy):
    namespace = deploy("present", on_real_node(PRESENT_IMAGES, pull_policy="Always"))
    code, doc, err = status(namespace, "--watch", "--timeout", WATCH_TIMEOUT)
    assert code == 0, (code, err, doc)
    node = node_of(doc, REAL_NODE)
    assert (doc["state"], node["state"], node["pullsDone"], node["pullsTotal"]) == ("present", "present", 2, 2)
    for image in PRESENT_IMAGES:
        pulled = image_of(node, image)
        # Always: the kubelet asks the registry on every start and reports "Successfully pulled ... in ...".
        assert pulled["timeSource"] == "event" and pulled["seconds"] is not None and pulled["seconds"] >= 0, pulled
        assert isinstance(pulled["sizeBytes"], int) and pulled["sizeBytes"] > 0, pulled
    summary = {s["image"]: s for s in doc["images"]}
    assert all(summary[i]["present"] == 1 and summary[i]["slowest"]["node"] == REAL_NODE for i in PRESENT_IMAGES), summary
    # One snapshot per poll, five calls each (docs/status.md).
    counted = re.search(r"prepull: (\d+) API call\(s\) in (\d+) snapshot\(s\)", err)
    assert counted and int(counted[1]) == 5 * int(counted[2]), err


@pytest.fixture
def kwok_nodes():
    """Two kwok nodes of a pool of their own, the second with a taint the pre-puller does not tolerate."""
    names = ["prepull-status-kwok-0", "prepull-status-kwok-1"]
    nodes = [kwok_node(name, {KWOK_POOL: "pool"}, [BLOCKING_TAINT] if i else []) for i, name in enumerate(names)]
    apply(nodes)
    yield names
    kubectl("delete", "node", *names, "--wait=false", check=False)


def test_a_kwok_node_with_an_untolerated_taint_is_not_scheduled(deploy, kwok_nodes):
    free, blocked = kwok_nodes
    namespace = deploy("taint", {"images": [PRESENT_IMAGES[0]], "node_selector": {KWOK_POOL: "pool"}})
    # kwok makes the nodes Ready and the free node's pod complete within seconds; until the node controller lifts
    # node.kubernetes.io/not-ready:NoSchedule, the free node is itself left out (and shown as such).
    last: dict = {}

    def free_node_not_present():
        last["code"], last["doc"], last["err"] = status(namespace)
        return None if last["doc"] and node_of(last["doc"], free)["state"] == "present" else (last["code"], last["err"][-500:])

    poll(f"{free} present in status", free_node_not_present, timeout=180, every=3)
    code, doc, err = last["code"], last["doc"], last["err"]
    assert code == 0, (code, err, doc)
    node = node_of(doc, blocked)
    assert (node["state"], node["reason"], node["targeted"], node["pod"]) == ("not-scheduled", "UntoleratedTaint", False, None), node
    assert "prepull.dev/status-e2e=blocked:NoSchedule" in node["message"], node
    ds = doc["daemonSets"][0]
    assert (ds["nodesSelected"], ds["nodesTargeted"], ds["nodesPresent"]) == (2, 1, 1), ds


SCALE_NODES = int(os.environ.get("PREPULL_E2E_STATUS_NODES", "1000"))


def ready_untainted(names: set) -> int:
    items = json.loads(kubectl("get", "nodes", "-l", f"{KWOK_POOL}=scale", "-o", "json").stdout)["items"]
    return sum(1 for n in items if node_ready(n) and n["metadata"]["name"] in names and not n["spec"].get("taints"))


@pytest.fixture
def many_kwok_nodes():
    """SCALE_NODES kwok nodes (simulated) in a pool of their own; the namespace using them goes first on teardown."""
    names = [f"prepull-status-scale-{i}" for i in range(SCALE_NODES)]
    nodes = [kwok_node(n, {KWOK_POOL: "scale"}) for n in names]
    for i in range(0, len(nodes), 200):
        apply(nodes[i : i + 200])
    cleanup: list = []
    yield names, cleanup
    for namespace in cleanup:  # while the nodes exist, kwok finishes the pods' deletion
        kubectl("delete", "namespace", namespace, "--wait=true", "--timeout=300s", check=False)
    kubectl("delete", "nodes", "-l", f"{KWOK_POOL}=scale", "--wait=false", check=False)


def test_a_thousand_nodes_take_five_api_calls(deploy, many_kwok_nodes):
    names, cleanup = many_kwok_nodes
    wanted = set(names)
    poll(f"{SCALE_NODES} kwok nodes Ready", lambda: None if ready_untainted(wanted) == SCALE_NODES else "not yet", timeout=300, every=5)
    # As benchmarks/cluster_bench.py does: the node controller lifts its not-ready taint slowly here.
    kubectl("taint", "nodes", "-l", f"{KWOK_POOL}=scale", "node.kubernetes.io/not-ready:NoSchedule-", check=False)
    poll(f"{SCALE_NODES} kwok nodes untainted", lambda: None if ready_untainted(wanted) == SCALE_NODES else "not yet", timeout=300, every=5)
    namespace = deploy("scale", {"images": PRESENT_IMAGES, "node_selector": {KWOK_POOL: "scale"}, "network_policy": False})
    cleanup.append(namespace)
    code, doc, err = status(namespace, "--watch", "--timeout", WATCH_TIMEOUT, "--interval", "10s")
    assert code == 0, (code, err[-2000:])
    ds = doc["daemonSets"][0]
    assert (ds["nodesSelected"], ds["nodesPresent"]) == (SCALE_NODES, SCALE_NODES), {k: v for k, v in ds.items() if k != "nodes"}
    counted = re.search(r"prepull: (\d+) API call\(s\) in (\d+) snapshot\(s\)", err)
    # Five list calls a snapshot (DaemonSets, pods, nodes, two event lists), whatever the node count.
    assert counted and int(counted[1]) == 5 * int(counted[2]), err[-2000:]


def test_a_kwok_pod_in_image_pull_backoff_is_failed(deploy):
    """tests/cluster/stages/pod-image-pull-backoff.yaml: kwok shows this pod's first pull failing, as a kubelet would."""
    args = {
        "images": PRESENT_IMAGES,
        "node_selector": {"prepull.dev/pool": "general"},
        "annotations": {"prepull.test/kwok-image-pull-backoff": "true"},
    }
    namespace = deploy("backoff", args)
    code, doc, err = status(namespace, "--watch", "--timeout", WATCH_TIMEOUT)
    assert code == 1, (code, err, doc)
    node = doc["daemonSets"][0]["nodes"][0]
    first, second = (image_of(node, image) for image in PRESENT_IMAGES)
    assert (node["state"], first["state"], first["reason"]) == ("failed", "failed", "ImagePullBackOff"), node
    assert f'Back-off pulling image "{PRESENT_IMAGES[0]}"' in first["message"], first
    assert (second["state"], second["reason"]) == ("pulling", "Queued"), second
