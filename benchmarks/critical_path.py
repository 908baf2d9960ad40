#!/usr/bin/env python
"""The new-node critical path on the local cluster's real node, printed as markdown (a script, not a test).

    tests/cluster/up DIR [--runtime containerd2] && . DIR/env
    python benchmarks/critical_path.py [--counts 1,10,50] [--lanes 1,4] [--serialize true,false]
                                       [--methods kubelet,image-volume] [--pull-qps 5] [--rounds 1]

What a user buys is the time from "node registered" to "node takes workload pods, its images
present". Each round makes the real node new again: the kubelet stopped, the node object and its
pods deleted, every container removed and every image deleted from containerd (cold: the pause,
busybox and kubectl images too). The pre-puller's DaemonSets are applied first, then the kubelet
starts and registers the node with its startup taint (a new node's). A watcher reads, every
0.2 s, the node's existence and taints (API) and containerd's image list, and records:

- **registered**: the node object first seen;
- **images**: every listed image present in containerd;
- **open**: the gate lifted the taint (every round is gated; with lanes, each lane's untaint
  step waits for every lane of the node). A round in which the taint went before every image was
  present fails the run.

The floor is what pulling the same images costs the runtime alone, on the same cold containerd
(wiped again after the round): ``ctr images pull`` of each image (fetch and unpack, what the
kubelet's CRI pull does), one after another when pulls are serialised, and lane by lane in
parallel when they are not (each lane's images in turn); its wall time. The kubelet's own "pulled
in" figures would be the same measure, but its events stop after 25 per pod (client-go's spam
filter), so they cannot cover 50 images. The kubelet's ``registryPullQPS`` (default 5, burst 10) is a dimension too
(``--pull-qps 5,0``; 0 means no limit): a pull over that rate fails at once with "pull QPS
exceeded" and waits out the image back-off (10 s, then doubling). Ratio = (open - registered) / floor; overhead per image =
(open - registered - floor) / images. Images are fresh random layers of mixed sizes (1, 2, 8 and
32 MiB, in turn), pushed once per run, pulled from the loopback registry.
"""

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "components"), str(ROOT / "tests" / "cluster"), str(ROOT / "tests" / "e2e"), str(ROOT / "benchmarks")]

import cluster  # noqa: E402  (tests/cluster/cluster.py)
from bench import machine, table  # noqa: E402
from slow_registry import push_unique_image  # noqa: E402

import prepull  # noqa: E402

NAMESPACE = "prepull-critical-path"
SIZES_MIB = (1, 2, 8, 32)


def kubectl(*args, input=None, check=True) -> subprocess.CompletedProcess:
    argv = ["kubectl", "--context", cluster.CONTEXT, *args]
    return subprocess.run(argv, input=input, capture_output=True, text=True, check=check, timeout=600)


def ctr(*args) -> subprocess.CompletedProcess:
    sock = os.environ["PREPULL_TEST_CONTAINERD"]
    return subprocess.run(["ctr", "--address", sock, "-n", "k8s.io", *args], capture_output=True, text=True, check=True)


def present() -> set:
    return set(ctr("images", "ls", "-q").stdout.split())


# ---------------------------------------------------------------- a new node, each round


def new_node(d: Path) -> None:
    """The real node as a new one: no node object, no pods, no containers, no images; the kubelet stopped."""
    cluster.stop_pid(d, "kubelet")
    kubectl("delete", "pods", "-n", NAMESPACE, "--all", "--force", "--grace-period=0", check=False)
    kubectl("delete", "node", cluster.REAL_NODE, "--wait=true", check=False)
    cluster.remove_containers(d)
    refs = sorted(present())
    if refs:
        ctr("images", "rm", *refs)


class Watcher(threading.Thread):
    def __init__(self, images: list) -> None:
        super().__init__(daemon=True)
        self.images = set(images)
        self.times: dict = {}
        self.stopping = threading.Event()

    def mark(self, what: str) -> None:
        self.times.setdefault(what, time.monotonic())

    def run(self) -> None:
        while not self.stopping.is_set() and "open" not in self.times:
            self.tick()
            self.stopping.wait(0.2)

    def tick(self) -> None:
        # The images first: a tick that sees the taint gone saw them as they were just before, so an
        # early open shows as "open" without "images" (the untaint step needs a container start after
        # the last pull, far longer than the gap between the two reads).
        complete = self.images <= present()
        node = kubectl("get", "node", cluster.REAL_NODE, "-o", "json", check=False)
        if node.returncode:
            return
        self.mark("registered")
        if complete:
            self.mark("images")
        taints = json.loads(node.stdout)["spec"].get("taints") or []
        if not any(t["key"] == cluster.STARTUP_TAINT["key"] for t in taints):
            self.mark("open")


def lanes_of(objs: list, images: list) -> list:
    """The listed images of each DaemonSet (lane), in its pull order."""
    out = []
    for ds in (o for o in objs if o["kind"] == "DaemonSet"):
        spec = ds["spec"]["template"]["spec"]
        refs = [c["image"] for c in spec.get("initContainers") or []] + [
            v["image"]["reference"] for v in spec.get("volumes") or [] if "image" in v
        ]
        out.append([r for r in refs if r in images])
    return out


def floor(d: Path, lanes: list, serialize: bool) -> float:
    """Wall time of ``ctr images pull`` of every lane's images on a cold containerd (lanes in parallel unless serialised)."""
    new_node(d)
    work = [sum(lanes, [])] if serialize else lanes

    def pull(refs: list) -> None:
        for ref in refs:
            ctr("images", "pull", "--plain-http", ref)

    threads = [threading.Thread(target=pull, args=(refs,)) for refs in work]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.monotonic() - started


# ---------------------------------------------------------------- one round


def objects(images: list, lanes: int, method: str) -> list:
    args: dict = {"images": images, "namespace": NAMESPACE, "create_namespace": False, "lanes": lanes, "method": method}
    args["node_selector"] = {"kubernetes.io/hostname": cluster.REAL_NODE}
    args |= {"startup_taint": cluster.STARTUP_TAINT, "remove_startup_taint": True}
    return prepull.manifests(args, "cp")


def one_round(d: Path, images: list, lanes: int, kubelet: dict, method: str) -> dict:
    objs = objects(images, lanes, method)
    new_node(d)
    kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objs}))
    watcher = Watcher(images)
    watcher.start()
    cluster.start_kubelet(d, d / "pki", kubelet)
    watcher.join(timeout=900)
    watcher.stopping.set()
    t = watcher.times
    if "open" not in t:
        raise TimeoutError(f"round {len(images)} images, lanes {lanes}: the node never opened ({sorted(t)})")
    if "images" not in t or t["open"] < t["images"]:
        raise AssertionError(f"round {len(images)} images, lanes {lanes}: the gate opened before every image was present")
    result = {"images": t["images"] - t["registered"], "open": t["open"] - t["registered"]}
    kubectl("delete", "-f", "-", "--wait=true", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objs}), check=False)
    result["floor"] = floor(d, lanes_of(objs, images), kubelet["serializeImagePulls"])
    return result


def row(n: int, lanes: int, kubelet: dict, method: str, runs: list) -> list:
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    cells = [n, lanes, str(kubelet["serializeImagePulls"]).lower(), kubelet["registryPullQPS"], method]
    cells += [f"{med['images']:.1f}", f"{med['open']:.1f}"]
    return cells + [f"{med['floor']:.1f}", f"{med['open'] / med['floor']:.2f}", f"{(med['open'] - med['floor']) / n:.2f}"]


def kubelet_settings(a: argparse.Namespace) -> list:
    """Every combination of the kubelet settings asked for, as kubelet configuration patches."""
    return [
        {"serializeImagePulls": serialize == "true", "registryPullQPS": int(qps)}
        for serialize in a.serialize.split(",")
        for qps in a.pull_qps.split(",")
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default="1,10,50")
    parser.add_argument("--lanes", default="1,4")
    parser.add_argument("--serialize", default="true,false")
    parser.add_argument("--methods", default="kubelet")
    parser.add_argument("--pull-qps", default="5", help="the kubelet's registryPullQPS values (5: its default; 0: no limit)")
    parser.add_argument("--rounds", type=int, default=1)
    a = parser.parse_args(argv)
    d = Path(os.environ["PREPULL_TEST_CLUSTER"])
    registry = os.environ["PREPULL_TEST_REGISTRY"]
    counts = [int(c) for c in a.counts.split(",")]
    pushed = [f"{registry}/{push_unique_image(registry, SIZES_MIB[i % len(SIZES_MIB)])}" for i in range(max(counts))]
    kubectl("create", "namespace", NAMESPACE, check=False)
    rows = []
    try:
        for method in a.methods.split(","):
            for n in counts:
                for lanes in [int(x) for x in a.lanes.split(",") if int(x) <= n]:  # no empty lanes (rejected)
                    for kubelet in kubelet_settings(a):
                        runs = [one_round(d, pushed[:n], lanes, kubelet, method) for _ in range(a.rounds)]
                        rows.append(row(n, lanes, kubelet, method, runs))
                        print(" | ".join(map(str, rows[-1])), file=sys.stderr, flush=True)
    finally:
        cluster.stop_pid(d, "kubelet")
        cluster.start_kubelet(d, d / "pki", {})
        kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)
    runtime = json.loads(kubectl("get", "node", cluster.REAL_NODE, "-o", "json").stdout)["status"]["nodeInfo"]["containerRuntimeVersion"]
    print(f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on {machine()}; the real node on {runtime}.\n")
    headers = ["images", "lanes", "serializeImagePulls", "registryPullQPS", "method", "registered → images (s)", "registered → open (s)"]
    headers += ["runtime-alone floor (s)", "ratio", "overhead per image (s)"]
    print(table(headers, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
