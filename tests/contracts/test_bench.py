"""The arithmetic behind benchmarks/bench.py (no timing here: figures come from running the script)."""

import importlib.util
from pathlib import Path

import pytest

import prepull
from prepull.stack.pools import load_stack, stack_manifests

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("bench", ROOT / "benchmarks" / "bench.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def container(cpu, memory, **extra):
    return {"name": "c", "image": "x", "resources": {"requests": {"cpu": cpu, "memory": memory}}, **extra}


@pytest.mark.parametrize("quantity, millicores", [("1m", 1), ("100m", 100), ("0.5", 500), ("2", 2000), ("1.5m", 1.5)])
def test_cpu_quantities(quantity, millicores):
    assert bench.cpu_millicores(quantity) == millicores


@pytest.mark.parametrize(
    "quantity, size", [("8Mi", 8 * 2**20), ("1Gi", 2**30), ("1G", 10**9), ("512", 512), ("1.5Ki", 1536), ("10M", 10**7)]
)
def test_memory_quantities(quantity, size):
    assert bench.memory_bytes(quantity) == size


@pytest.mark.parametrize("bad", ["1x", "", "m", "-1"])
def test_bad_quantities_are_refused(bad):
    with pytest.raises(ValueError):
        bench.cpu_millicores(bad)
    with pytest.raises(ValueError):
        bench.memory_bytes(bad)


def test_effective_request_is_max_of_largest_init_and_sum_of_apps():
    pod = {
        "initContainers": [container("300m", "10Mi"), container("100m", "200Mi")],
        "containers": [container("100m", "50Mi"), container("150m", "50Mi")],
    }
    # CPU: max(300, 100 + 150) = 300; memory: max(200Mi, 100Mi) = 200Mi.
    assert bench.effective_request(pod) == (300, 200 * 2**20)
    assert bench.effective_request({"containers": [container("1m", "8Mi"), container("1m", "8Mi")]}) == (2, 16 * 2**20)


def test_containers_without_requests_count_as_zero():
    assert bench.effective_request({"initContainers": [{"name": "i", "image": "x"}], "containers": [container("5m", "1Mi")]}) == (5, 2**20)


def test_sidecar_init_containers_are_refused_not_miscounted():
    with pytest.raises(ValueError, match="sidecar"):
        bench.effective_request({"initContainers": [container("1m", "1Mi", restartPolicy="Always")], "containers": []})


def test_rendered_pod_reserves_one_container_whatever_the_image_count():
    # Default resources (1m / 8Mi per container): many init containers, one holder.
    few = stack_manifests(load_stack(bench.bench_config(1, 3)))
    many = stack_manifests(load_stack(bench.bench_config(1, 60)))
    assert bench.node_requests(few) == bench.node_requests(many) == (1, 8 * 2**20)
    assert bench.node_requests(stack_manifests(load_stack(bench.bench_config(1, 60, lanes=4)))) == (4, 32 * 2**20)


def test_node_requests_follow_custom_resources():
    objects = prepull.manifests(
        {"images": ["a:1", "b:1"], "lanes": 2, "resources": {"cpu_request": "10m", "memory_request": "1Gi", "memory_limit": "2Gi"}}, "x"
    )
    assert bench.node_requests(objects) == (20, 2 * 2**30)


def test_pull_stage_counts():
    objects = stack_manifests(load_stack(bench.bench_config(1, 10, lanes=4)))
    spec = bench.daemon_set_pods(objects)[0]
    fixed = (spec["initContainers"][0]["image"], spec["containers"][0]["image"])
    assert bench.pulled_images_per_pod(objects, exclude=fixed) == [3, 3, 2, 2]
    assert bench.pulled_images_per_pod(objects) == [5, 5, 4, 4]
    assert bench.distinct_images_on_node(objects) == 12


def test_bench_config_is_a_valid_stack():
    spec = load_stack(bench.bench_config(3, 5, lanes=2))
    assert [p.name for p in spec.pools] == ["pool-00", "pool-01", "pool-02"]
    assert len(set(bench.bench_images(500))) == 500


def test_table():
    assert bench.table(["a", "b"], [[1, 2]]) == "| a | b |\n|---|---|\n| 1 | 2 |"


def test_both_timed_programs_declare_the_same_kubernetes_objects():
    # The comparison is fair only if the hand-written program declares what the component does, minus the components.
    config = bench.bench_config(3, 4, lanes=2)
    _, ours = bench.run_mocked(bench.component_program(config))
    _, theirs = bench.run_mocked(bench.handwritten_program(config))
    objects = stack_manifests(load_stack(config))
    assert theirs == len(objects) + 1  # + the explicit Kubernetes provider
    assert ours == theirs + len(config["nodePools"])  # + one ImagePrePuller per pool
