#!/usr/bin/env python
"""Figures for the README, printed as markdown tables (a script, not a test).

    python benchmarks/bench.py [--rounds N] [--grid-rounds N]

Everything is computed from the objects the pure core renders, or timed under
Pulumi mocks (shared/reference perf_anchors.md §6, M1, M2, M4, M5). Nothing
here runs a cluster, a container runtime or the Pulumi engine, so nothing
here says how fast pods start:

(a) resident requests per node (Kubernetes' effective-request rule) as the
    image count grows, next to one-long-running-container-per-image pullers;
(b) sequential pull stages per node for lanes 1, 2 and 4;
(c) program time under mocks, this project's stack program against a
    hand-written pulumi-kubernetes program declaring the same objects,
    measured alternately in one process, and how it grows with pools x images;
(d) byte-identical rendered output across PYTHONHASHSEED values.
"""

import argparse
import asyncio
import datetime
import hashlib
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import yaml

ROOT = Path(__file__).resolve().parent.parent
# Run from a checkout without installing the package (as the stack's __main__.py does).
sys.path.insert(0, str(ROOT / "components"))

from prepull.stack.pools import load_stack, stack_manifests  # noqa: E402

IMAGE_COUNTS = (1, 10, 100, 500)
LANES = (1, 2, 4)
# The comparison puller: one long-running container per image (kubernetes-image-puller's defaults).
PER_IMAGE_CPU_M = 50
PER_IMAGE_MEMORY = 10 * 2**20
SEEDS = ("0", "1", "2", "3", "42", "random")
# Program time under mocks, component / hand-written, 50 pools x 100 images (issue 10).
TARGET_RATIO = 1.10

_CPU = re.compile(r"^([0-9.]+)(m?)$")
_MEMORY = re.compile(r"^([0-9.]+)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
_MEMORY_FACTORS = {
    None: 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}


# ---------------------------------------------------------------- helpers (also used by tests/contracts/test_bench.py)


def cpu_millicores(quantity: str) -> float:
    """``"100m"`` -> 100, ``"0.5"`` -> 500."""
    match = _CPU.match(str(quantity))
    if not match:
        raise ValueError(f"not a CPU quantity: {quantity!r}")
    value = float(match.group(1))
    return value if match.group(2) else value * 1000


def memory_bytes(quantity: str) -> float:
    """``"8Mi"`` -> 8388608, ``"1G"`` -> 10**9."""
    match = _MEMORY.match(str(quantity))
    if not match:
        raise ValueError(f"not a memory quantity: {quantity!r}")
    return float(match.group(1)) * _MEMORY_FACTORS[match.group(2)]


def _requests(container: Mapping) -> tuple:
    req = (container.get("resources") or {}).get("requests") or {}
    return cpu_millicores(req.get("cpu", "0")), memory_bytes(req.get("memory", "0"))


def effective_request(pod_spec: Mapping) -> tuple:
    """(CPU millicores, memory bytes) the scheduler reserves for a pod for its whole life.

    Kubernetes' rule for pods without sidecars: per resource, the larger of the
    largest init container request and the sum of the app container requests
    (pod overhead from a RuntimeClass would be added; these pods set none).
    """
    inits = pod_spec.get("initContainers") or []
    if any(c.get("restartPolicy") == "Always" for c in inits):
        # Sidecar init containers change the rule; the rendered pods have none, so it is not modelled.
        raise ValueError("restartable (sidecar) init containers are not modelled")
    init = [_requests(c) for c in inits]
    apps = [_requests(c) for c in pod_spec.get("containers") or []]
    return tuple(max([i[k] for i in init] + [sum(a[k] for a in apps)]) for k in (0, 1))


def daemon_set_pods(objects: Iterable[Mapping]) -> list:
    """The pod specs of every DaemonSet among ``objects``."""
    return [o["spec"]["template"]["spec"] for o in objects if o.get("kind") == "DaemonSet"]


def node_requests(objects: Iterable[Mapping]) -> tuple:
    """Effective requests summed over the DaemonSets (lanes) whose pods all land on one node of the pool."""
    pods = [effective_request(p) for p in daemon_set_pods(objects)]
    return sum(p[0] for p in pods), sum(p[1] for p in pods)


def pulled_images_per_pod(objects: Iterable[Mapping], exclude: Sequence[str] = ()) -> list:
    """Distinct images each DaemonSet pod pulls (init containers, containers, image volumes), minus ``exclude``."""
    counts = []
    for spec in daemon_set_pods(objects):
        refs = [c["image"] for c in (spec.get("initContainers") or []) + spec["containers"]]
        refs += [v["image"]["reference"] for v in spec.get("volumes") or [] if "image" in v]
        counts.append(len(set(refs) - set(exclude)))
    return counts


def distinct_images_on_node(objects: Iterable[Mapping]) -> int:
    """Distinct images all DaemonSet pods of one node pull together (the stage count when the kubelet serialises pulls)."""
    refs = set()
    for spec in daemon_set_pods(objects):
        refs.update(c["image"] for c in (spec.get("initContainers") or []) + spec["containers"])
        refs.update(v["image"]["reference"] for v in spec.get("volumes") or [] if "image" in v)
    return len(refs)


def bench_images(n: int) -> list:
    """``n`` distinct, valid image references."""
    return [f"registry.example.com/bench/app-{i:03d}:1.0" for i in range(n)]


def bench_config(pools: int, images: int, lanes: int = 1) -> dict:
    """A stack config (``prepull:`` prefix stripped): ``pools`` existing pools sharing ``images`` global images."""
    return {
        "namespace": "prepull",
        "images": bench_images(images),
        "nodePools": [
            {"name": f"pool-{p:02d}", "provider": "existing", "labels": {"prepull.dev/pool": f"pool-{p:02d}"}, "lanes": lanes}
            for p in range(pools)
        ],
    }


def mib(value: float) -> str:
    return f"{value / 2**20:g}Mi"


def table(headers: Sequence[str], rows: Iterable[Sequence]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------- (a) and (b)


def section_requests() -> str:
    rows = []
    for n in IMAGE_COUNTS:
        cells = [n]
        for lanes in LANES:
            if lanes > n:
                cells.append("–")
                continue
            cpu, mem = node_requests(stack_manifests(load_stack(bench_config(1, n, lanes))))
            cells.append(f"{cpu:g}m / {mib(mem)}")
        cells.append(f"{n * PER_IMAGE_CPU_M}m / {mib(n * PER_IMAGE_MEMORY)}")
        rows.append(cells)
    return table(
        ["images", "lanes 1", "lanes 2", "lanes 4", f"one container per image ({PER_IMAGE_CPU_M}m/{mib(PER_IMAGE_MEMORY)} each)"], rows
    )


def section_stages() -> str:
    rows = []
    for n in (10, 100, 500):
        for lanes in LANES:
            objects = stack_manifests(load_stack(bench_config(1, n, lanes)))
            spec = daemon_set_pods(objects)[0]
            helper = spec["initContainers"][0]["image"]
            pause = spec["containers"][0]["image"]
            own = pulled_images_per_pod(objects, exclude=(helper, pause))
            with_fixed = pulled_images_per_pod(objects)
            rows.append([n, lanes, len(own), max(own), max(with_fixed), distinct_images_on_node(objects)])
    return table(
        [
            "images",
            "lanes",
            "pods per node",
            "stages, parallel pulls (max listed images in one pod)",
            "same, incl. helper + pause",
            "stages, serializeImagePulls: true (every image on the node, one at a time)",
        ],
        rows,
    )


# ---------------------------------------------------------------- (c) program time under mocks


class CountingMocks:
    """Echo inputs as state and count registrations (set up lazily: the Pulumi SDK is imported here only)."""

    def __new__(cls):
        import pulumi

        class _Mocks(pulumi.runtime.Mocks):
            def __init__(self):
                self.count = 0

            def new_resource(self, args):
                self.count += 1
                return f"{args.name}-id", dict(args.inputs)

            def call(self, args):
                return {}

        return _Mocks()


def run_mocked(program: Callable[[], None]) -> tuple:
    """(seconds until every registration completed, resources registered) for one program under fresh mocks."""
    import pulumi

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    mocks = CountingMocks()
    pulumi.runtime.set_mocks(mocks, project="prepull", stack="bench", preview=False)
    try:
        start = time.perf_counter()
        pulumi.runtime.test(program)()
        return time.perf_counter() - start, mocks.count
    finally:
        loop.close()
        asyncio.set_event_loop(None)


def component_program(config: Mapping) -> Callable[[], None]:
    """This project's stack program: validate the config, then one ImagePrePuller per pool."""

    def program():
        from prepull.program import deploy

        deploy(load_stack(config))

    return program


def handwritten_program(config: Mapping) -> Callable[[], None]:
    """The same objects declared directly with pulumi-kubernetes, from the same dicts.

    The dicts are rendered before timing starts: a hand-written program has them as literals.
    """
    objects = stack_manifests(load_stack(config))

    def program():
        import pulumi
        import pulumi_kubernetes as k8s

        # The kinds a stack of existing pools renders (no gate, no NodePool in the benchmark config).
        kinds = {
            "DaemonSet": k8s.apps.v1.DaemonSet,
            "NetworkPolicy": k8s.networking.v1.NetworkPolicy,
            "ServiceAccount": k8s.core.v1.ServiceAccount,
        }
        provider = k8s.Provider("k8s")
        ns = k8s.core.v1.Namespace("prepull-namespace", metadata=objects[0]["metadata"], opts=pulumi.ResourceOptions(provider=provider))
        opts = pulumi.ResourceOptions(provider=provider, depends_on=[ns])
        for obj in objects[1:]:
            fields = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
            kinds[obj["kind"]](f"{obj['kind'].lower()}-{obj['metadata']['name']}", **fields, opts=opts)

    return program


def alternate(config: Mapping, rounds: int) -> dict:
    """Time both programs alternately (ABBA order, so drift hits both); medians and per-round ratios."""
    ours, theirs = component_program(config), handwritten_program(config)
    times = {"component": [], "hand-written": []}
    counts = {}
    run_mocked(ours)  # warm-up: first-call imports and caches are not what is compared
    run_mocked(theirs)
    for r in range(rounds):
        order = [("component", ours), ("hand-written", theirs)]
        for label, program in order if r % 2 == 0 else order[::-1]:
            seconds, count = run_mocked(program)
            times[label].append(seconds)
            counts[label] = count
    ratios = [a / b for a, b in zip(times["component"], times["hand-written"])]
    return {
        "component": statistics.median(times["component"]),
        "hand-written": statistics.median(times["hand-written"]),
        "ratio": statistics.median(times["component"]) / statistics.median(times["hand-written"]),
        "ratio_range": (min(ratios), max(ratios)),
        "counts": counts,
        "times": times,
    }


def container_specs(config: Mapping) -> int:
    return sum(len(p.get("initContainers") or []) + len(p["containers"]) for p in daemon_set_pods(stack_manifests(load_stack(config))))


def section_program_time(rounds: int, grid_rounds: int) -> str:
    out = []
    config = bench_config(50, 100)
    res = alternate(config, rounds)
    out.append(
        table(
            ["program (50 pools × 100 images)", "resources registered", f"median of {rounds} (s)", "all runs (s)"],
            [
                [label, res["counts"][label], f"{res[label]:.3f}", ", ".join(f"{t:.2f}" for t in res["times"][label])]
                for label in ("component", "hand-written")
            ],
        )
    )
    lo, hi = res["ratio_range"]
    verdict = "within" if res["ratio"] <= TARGET_RATIO else "OVER"
    out.append(
        f"\nRatio of medians component / hand-written: **{res['ratio']:.2f}×** (per-round ratios {lo:.2f}–{hi:.2f}; "
        f"target ≤ {TARGET_RATIO:.2f}×: {verdict}). Container specs declared: {container_specs(config)}.\n"
    )
    rows, points = [], []
    for pools in (1, 10, 50):
        for images in (10, 100):
            cfg = bench_config(pools, images)
            r = alternate(cfg, grid_rounds)
            specs = container_specs(cfg)
            points.append((specs, r["component"]))
            rows.append([pools, images, specs, f"{r['component']:.3f}", f"{r['hand-written']:.3f}", f"{r['ratio']:.2f}×"])
    out.append(table(["pools", "images", "container specs", "component (s)", "hand-written (s)", "ratio"], rows))
    slope, intercept = _fit(points)
    out.append(f"\nLeast-squares fit of the component's time: {intercept * 1000:.0f} ms + {slope * 1e6:.0f} µs per container spec.")
    return "\n".join(out)


def _fit(points: Sequence[tuple]) -> tuple:
    n = len(points)
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    slope = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)
    return slope, my - slope * mx


# ---------------------------------------------------------------- (d) determinism


def render_digest(stack: str, stacks_dir: Path, seed: str) -> str:
    """sha256 of ``python -m prepull render`` output in a fresh interpreter with PYTHONHASHSEED=seed."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT / "components"), "PYTHONHASHSEED": seed}
    out = subprocess.run(
        [sys.executable, "-m", "prepull", "render", "--stack", stack, "--stacks-dir", str(stacks_dir)],
        env=env,
        capture_output=True,
        check=True,
        timeout=300,
    )
    return hashlib.sha256(out.stdout).hexdigest()


def section_determinism() -> str:
    rows, verdicts = [], []
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp)
        config = {f"prepull:{k}": v for k, v in bench_config(50, 100, lanes=2).items()}
        (big / "Pulumi.bench.yaml").write_text(yaml.safe_dump({"config": config}))
        for label, stack, directory in (
            ("dev", "dev", ROOT / "stacks"),
            ("prod", "prod", ROOT / "stacks"),
            ("50 pools × 100 images, lanes 2", "bench", big),
        ):
            digests = {seed: render_digest(stack, directory, seed) for seed in SEEDS}
            for seed, digest in digests.items():
                rows.append([label, seed, digest])
            verdicts.append(f"{label}: {'identical' if len(set(digests.values())) == 1 else 'DIFFERENT'}")
    return table(["stack", "PYTHONHASHSEED", "sha256 of rendered YAML"], rows) + "\n\n" + "; ".join(verdicts) + "."


# ---------------------------------------------------------------- main


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}, Python {platform.python_version()}, "
        f"pulumi {dist_version('pulumi')}, pulumi-kubernetes {dist_version('pulumi-kubernetes')}"
    )


def main(argv=None) -> None:
    """Print every section as markdown."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=7, help="alternating rounds for the 50 × 100 comparison (default 7)")
    p.add_argument("--grid-rounds", type=int, default=3, help="alternating rounds per grid cell (default 3)")
    args = p.parse_args(argv)
    print(f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on {machine()}.\n")
    print("## (a) Resident requests per node (CPU / memory), one pool\n")
    print("Effective request per pod = max(largest init container, sum of app containers), summed over the pool's")
    print("DaemonSets (lanes), from the rendered manifests with default resources.\n")
    print(section_requests())
    print("\n## (b) Sequential pull stages per node\n")
    print("A pod pulls its images one after another; pods of different lanes pull in parallel only when the kubelet")
    print("has serializeImagePulls: false. Helper (busybox) and pause are small and shared by every lane.\n")
    print(section_stages())
    print("\n## (c) Program time under Pulumi mocks\n")
    print("Both programs run in this process under fresh mocks, alternately, after one warm-up each; the time is")
    print("from program start until every registration completed. The Pulumi engine, the Kubernetes provider and")
    print("the cluster are not involved.\n")
    print(section_program_time(args.rounds, args.grid_rounds))
    print("\n## (d) Byte-identical rendered output across PYTHONHASHSEED\n")
    print(section_determinism())


if __name__ == "__main__":
    main()
