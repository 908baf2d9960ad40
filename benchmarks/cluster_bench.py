#!/usr/bin/env python
"""Figures on the local cluster, printed as markdown (a script, not a test).

    tests/cluster/up DIR --kwok-nodes 3 && . DIR/env
    python benchmarks/cluster_bench.py [--only scale,preview,pull] [--nodes 1000] [--rounds 2]

Needs the local cluster of tests/cluster (``PREPULL_TEST_CLUSTER`` set by ``DIR/env``): the real
pulumi CLI, engine and Kubernetes provider, a real API server, one real kubelet on containerd and
kwok nodes. The programs run inline through the Automation API (no Python language host here).

(e) ``pulumi up`` with N kwok nodes in 3 pools: this project's stack program against a program
    declaring the same objects by hand, alternately, as a ratio. kwok nodes are simulated: their
    pods become Ready without pulling anything, so this measures Pulumi, the API server and the
    controllers, not pulls.
(f) ``pulumi preview`` of 50 pools x 100 images, the same two programs, as a ratio.
(g) On the real node: images of random (incompressible) gzip layers, pulled by a pre-pull pod,
    from pod creation to all init containers done, next to ``ctr images pull`` of the same image
    on a cold containerd (the floor on this machine), and the kubelet's own "Successfully pulled
    ... in" figure.
"""

import argparse
import datetime
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Mapping

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "components"), str(ROOT / "tests" / "cluster"), str(ROOT / "benchmarks")]

from bench import bench_config, component_program, handwritten_program, machine, table  # noqa: E402

import prepull  # noqa: E402
from cluster import kwok_node, node_ready  # noqa: E402  (tests/cluster/cluster.py)

CONTEXT = os.environ.get("PREPULL_E2E_CONTEXT", "prepull-local")
SCALE_LABEL = "prepull.dev/bench-pool"
SCALE_POOLS = ("a", "b", "c")
PULL_NAMESPACE = "prepull-bench-pull"
# Layer sizes (MiB) of each pulled image: 200 MiB and 1 GiB, at most 128 MiB a layer.
PULL_IMAGES = {"200mib": (128, 72), "1024mib": (128,) * 8}
PULLED = re.compile(r'Successfully pulled image "([^"]+)" in ([0-9.]+)(ms|s)')


def kubectl(*args, input=None, check=True) -> subprocess.CompletedProcess:
    return subprocess.run(["kubectl", "--context", CONTEXT, *args], input=input, capture_output=True, text=True, check=check, timeout=600)


def apply(objects: list) -> None:
    kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))


def wait(what: str, done: Callable[[], bool], timeout: float = 900, every: float = 2) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(every)


# ---------------------------------------------------------------- Pulumi, inline


def stack(name: str, program: Callable[[], None], state: Path):
    from pulumi import automation as auto

    env = {"PULUMI_BACKEND_URL": state.as_uri(), "PULUMI_CONFIG_PASSPHRASE": "prepull-bench", "PULUMI_SKIP_UPDATE_CHECK": "true"}
    project = auto.ProjectSettings(name="prepull-bench", runtime="python")
    opts = auto.LocalWorkspaceOptions(work_dir=str(state), project_settings=project, env_vars=env)
    return auto.create_or_select_stack(name, project_name="prepull-bench", program=program, opts=opts)


def programs(config: Mapping) -> dict:
    return {"component": component_program(config), "hand-written": handwritten_program(config)}


def alternate(config: Mapping, rounds: int, operation: str, check: Callable[[], None] = lambda: None) -> dict:
    """Wall time of ``operation`` ("up" or "preview") per program, ABBA order; each up is checked, then destroyed."""
    times: dict = {"component": [], "hand-written": []}
    with tempfile.TemporaryDirectory() as tmp:
        stacks = {label: stack(label.replace("-", ""), program, Path(tmp)) for label, program in programs(config).items()}
        for r in range(rounds):
            for label in ("component", "hand-written") if r % 2 == 0 else ("hand-written", "component"):
                start = time.perf_counter()
                getattr(stacks[label], operation)(color="never")
                times[label].append(time.perf_counter() - start)
                if operation == "up":
                    check()
                    stacks[label].destroy(color="never")
    return times


def ratio_rows(times: dict) -> tuple:
    med = {label: statistics.median(t) for label, t in times.items()}
    rows = [[label, f"{med[label]:.1f}", ", ".join(f"{t:.1f}" for t in times[label])] for label in times]
    return rows, med["component"] / med["hand-written"]


# ---------------------------------------------------------------- (e) scale


def kwok_nodes(n: int) -> list:
    return [kwok_node(f"prepull-bench-{i}", {SCALE_LABEL: SCALE_POOLS[i % 3]}) for i in range(n)]


def bench_nodes() -> list:
    """The Ready bench nodes."""
    items = json.loads(kubectl("get", "nodes", "-l", SCALE_LABEL, "-o", "json").stdout)["items"]
    return [n for n in items if node_ready(n)]


def ready_bench_nodes() -> int:
    return len(bench_nodes())


def schedulable_bench_nodes() -> int:
    """Ready bench nodes without taints (the not-ready one included): those the DaemonSet controller counts."""
    return sum(1 for n in bench_nodes() if not n["spec"].get("taints"))


def check_ready(n: int) -> None:
    """Right after `pulumi up` returned: every simulated node runs a Ready pre-pull pod (one DaemonSet per pool)."""
    items = json.loads(kubectl("get", "daemonsets", "-n", "prepull-bench", "-o", "json").stdout)["items"]
    ready = sum(d["status"].get("numberReady", 0) for d in items)
    if ready != n:
        raise RuntimeError(f"`pulumi up` returned with {ready} of {n} pods Ready")


def section_scale(n: int, rounds: int) -> str:
    nodes = kwok_nodes(n)
    for i in range(0, n, 200):
        apply(nodes[i : i + 200])
    try:
        wait(f"{n} kwok nodes Ready", lambda: ready_bench_nodes() == n)
        # The node controller lifts its not-ready taint from Ready nodes at well under one node a second
        # here, and the DaemonSet controller leaves tainted nodes out (`pulumi up` would wait for fewer
        # pods): lift it once, as the controller would.
        kubectl("taint", "nodes", "-l", SCALE_LABEL, "node.kubernetes.io/not-ready:NoSchedule-", check=False)
        wait(f"{n} kwok nodes Ready and untainted", lambda: schedulable_bench_nodes() == n, every=5)
        images = ["docker.io/library/python:3.13-slim", "docker.io/library/postgres:17.2", "ghcr.io/astral-sh/uv:0.5.11"]
        config = {
            "namespace": "prepull-bench",
            "images": images,
            "kubeContext": CONTEXT,
            "nodePools": [{"name": f"bench-{p}", "provider": "existing", "labels": {SCALE_LABEL: p}} for p in SCALE_POOLS],
        }
        rows, ratio = ratio_rows(alternate(config, rounds, "up", check=lambda: check_ready(n)))
    finally:
        kubectl("delete", "nodes", "-l", SCALE_LABEL, "--wait=false", check=False)
    head = [f"program ({n} simulated nodes, 3 pools, 3 images)", f"median of {rounds} `pulumi up` (s)", "all runs (s)"]
    return table(head, rows) + f"\n\nRatio of medians component / hand-written: **{ratio:.2f}×**."


# ---------------------------------------------------------------- (f) preview


def section_preview(rounds: int) -> str:
    config = {**bench_config(50, 100), "kubeContext": CONTEXT}
    rows, ratio = ratio_rows(alternate(config, rounds, "preview"))
    head = ["program (50 pools × 100 images)", f"median of {rounds} `pulumi preview` (s)", "all runs (s)"]
    return table(head, rows) + f"\n\nRatio of medians component / hand-written: **{ratio:.2f}×**."


# ---------------------------------------------------------------- (g) the pull on the real node


def ctr(*args, check=True) -> subprocess.CompletedProcess:
    sock = os.environ["PREPULL_TEST_CONTAINERD"]
    return subprocess.run(["ctr", "--address", sock, "-n", "k8s.io", *args], capture_output=True, text=True, check=check, timeout=1800)


def push_random_images(work: Path) -> dict:
    """Tag -> reference of each image of PULL_IMAGES in the loopback registry (built once per cluster)."""
    import images as test_images  # tests/cluster/images.py

    registry = os.environ["PREPULL_TEST_REGISTRY"]
    refs = {tag: f"{registry}/prepull-bench/random:{tag}" for tag in PULL_IMAGES}
    marker = work / "pushed"
    if marker.exists():
        return refs
    layout = test_images.Layout(work / "layout")
    for tag, sizes in PULL_IMAGES.items():
        tars = [test_images.layer([(f"data/{i}", os.urandom(mib * 2**20), 0o644, "")]) for i, mib in enumerate(sizes)]
        layout.tag(tag, layout.image(tars, {}, refs[tag]))
        subprocess.run(
            ["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci:{layout.root}:{tag}", f"docker://{refs[tag]}"], check=True
        )
    marker.touch()
    return refs


def forget(ref: str) -> None:
    """Remove every name of ``ref``'s image from containerd and collect its content: the next pull is cold."""
    listed = [line.split() for line in ctr("images", "ls").stdout.splitlines()[1:]]
    digest = next((cols[2] for cols in listed if cols[0] == ref), None)
    names = [cols[0] for cols in listed if digest and cols[2] == digest]
    if names:
        ctr("images", "rm", "--sync", *names)


def floor_seconds(ref: str) -> float:
    forget(ref)
    hosts = Path(os.environ["PREPULL_TEST_CLUSTER"]) / "containerd" / "certs.d"
    start = time.perf_counter()
    ctr("images", "pull", "--hosts-dir", str(hosts), ref)
    seconds = time.perf_counter() - start
    forget(ref)
    return seconds


def pod_seconds(ref: str) -> tuple:
    """(pod created -> every init container terminated, the kubelet's "Successfully pulled" seconds) for a cold pull."""
    forget(ref)
    args = {
        "images": [ref],
        "namespace": PULL_NAMESPACE,
        "node_selector": {"kubernetes.io/hostname": os.environ["PREPULL_TEST_REAL_NODE"]},
        "tolerate_all_taints": True,
    }
    objects = prepull.manifests(args, "bench-pull")
    apply(objects)
    try:
        created, done = watch_pod()
        return done - created, kubelet_pull_seconds(ref)
    finally:
        kubectl("delete", "namespace", PULL_NAMESPACE, "--wait=true", check=False)


def watch_pod() -> tuple:
    """perf_counter() when the pre-pull pod was first seen, and when all its init containers had terminated."""
    from kubernetes import client, config, watch

    config.load_kube_config(context=CONTEXT)
    created = None
    for event in watch.Watch().stream(client.CoreV1Api().list_namespaced_pod, PULL_NAMESPACE, timeout_seconds=1800):
        now, pod = time.perf_counter(), event["object"]
        created = created or now
        statuses = pod.status.init_container_statuses or []
        if statuses and all(s.state.terminated for s in statuses):
            if any(s.state.terminated.exit_code for s in statuses):
                raise RuntimeError(f"init container failed: {statuses}")
            return created, now
    raise TimeoutError("the pre-pull pod did not finish")


def kubelet_pull_seconds(ref: str) -> float:
    events = json.loads(kubectl("get", "events", "-n", PULL_NAMESPACE, "-o", "json").stdout)["items"]
    for event in events:
        match = PULLED.search(event.get("message", ""))
        if match and match.group(1) == ref:
            return float(match.group(2)) / (1000 if match.group(3) == "ms" else 1)
    raise RuntimeError(f"no 'Successfully pulled' event for {ref}")


def section_pull(rounds: int) -> str:
    work = Path(os.environ["PREPULL_TEST_CLUSTER"]) / "bench-images"
    work.mkdir(exist_ok=True)
    refs = push_random_images(work)
    pod_seconds(refs["200mib"])  # warm-up: the helper and pause images are on the node before timing starts
    rows = []
    for tag, ref in refs.items():
        floors, pods, kubelets = [], [], []
        for _ in range(rounds):
            floors.append(floor_seconds(ref))
            pod, kubelet = pod_seconds(ref)
            pods.append(pod)
            kubelets.append(kubelet)
        floor, pod, kubelet = (statistics.median(x) for x in (floors, pods, kubelets))
        rows.append(
            [
                f"{sum(PULL_IMAGES[tag])} MiB, {len(PULL_IMAGES[tag])} layers",
                f"{floor:.2f}",
                f"{kubelet:.2f}",
                f"{pod:.2f}",
                f"{pod / floor:.2f}×",
                f"{pod - kubelet:.2f}",
                ", ".join(f"{f:.2f}/{k:.2f}/{p:.2f}" for f, k, p in zip(floors, kubelets, pods)),
            ]
        )
    head = [
        "image",
        "`ctr images pull`, cold (s)",
        'kubelet "pulled in" (s)',
        "pod created → init done (s)",
        "pod / ctr",
        "pod − kubelet pull (s)",
        f"all {rounds} runs ctr/kubelet/pod (s)",
    ]
    return table(head, rows)


SECTIONS = {
    "scale": ("(e) `pulumi up` at scale on simulated nodes", lambda a: section_scale(a.nodes, a.rounds)),
    "preview": ("(f) `pulumi preview`, 50 pools × 100 images", lambda a: section_preview(a.rounds)),
    "pull": ("(g) The pull itself on the real node", lambda a: section_pull(a.pull_rounds)),
}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections (default {','.join(SECTIONS)})")
    p.add_argument("--nodes", type=int, default=1000, help="kwok nodes for (e) (default 1000)")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds for (e) and (f) (default 2)")
    p.add_argument("--pull-rounds", type=int, default=3, help="rounds per image for (g) (default 3)")
    args = p.parse_args(argv)
    if not os.environ.get("PREPULL_TEST_CLUSTER"):
        sys.exit("needs the local cluster: tests/cluster/up DIR && . DIR/env")
    print(f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on {machine()}.\n")
    for key in args.only.split(","):
        title, run = SECTIONS[key]
        print(f"## {title}\n")
        print(run(args), flush=True)
        print()


if __name__ == "__main__":
    main()
