"""Every object we render, accepted by a real API server: server-side dry-run, strict field validation.

For every stack in stacks/ and a scenario per feature (each method, the gate, lanes, the
per-architecture split, the NetworkPolicy, labels and annotations), the objects the core renders
are sent with ``kubectl apply --server-side --dry-run=server --validate=strict``: the API server
runs its defaulting, validation and admission (Pod Security included) and persists nothing. Any
rejection, and any warning, fails the test, with one expected exception: the docker-socket
namespace warns that its pods would violate ``restricted`` (it enforces ``privileged`` and keeps
``warn: restricted`` on purpose), and that warning must be there.

Custom resources whose CRD the cluster lacks (Karpenter's NodePool in the prod stack) cannot be
validated by it: they are left out, listed by name, and the test asserts that nothing else was.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cluster_env import CONTEXT, as_list, kubectl, marks, unreachable

from prepull import manifests
from prepull.cli.common import stack_config
from prepull.stack.pools import load_stack, stack_manifests

ROOT = Path(__file__).resolve().parents[2]
pytestmark = marks(unreachable())

IMAGES = ["docker.io/library/python:3.13-slim", "gcr.io/distroless/static-debian12:nonroot"]
SCENARIOS = {
    "defaults": {"images": IMAGES},
    "gate": {"images": IMAGES, "remove_startup_taint": True, "startup_taint": {"key": "prepull.dev/not-ready", "effect": "NoSchedule"}},
    "lanes": {"images": [*IMAGES, "ghcr.io/astral-sh/uv:0.5.11"], "lanes": 2, "max_surge": 1},
    "per-arch": {"images": [*IMAGES, {"image": "nvcr.io/nvidia/cuda:12.6.2-base-ubuntu24.04", "platforms": ["linux/amd64"]}]},
    "labels": {
        "images": IMAGES,
        "labels": {"team": "ml"},
        "annotations": {"example.com/owner": "ml"},
        "priority_class_name": "system-node-critical",
        "tolerate_all_taints": True,
        "image_pull_secrets": ["regcred"],
    },
    "image-volume": {"images": IMAGES, "method": "image-volume"},
    "docker-socket": {"images": IMAGES, "method": "docker-socket"},
    "no-network-policy": {"images": IMAGES, "network_policy": False},
}
EXPECTED_WARNING = {"docker-socket": 'would violate PodSecurity "restricted:latest"'}


def served_kinds() -> set:
    """Every kind the API server serves (`kubectl api-resources`: KIND follows the NAMESPACED column)."""
    kinds = set()
    for line in kubectl("api-resources", "--no-headers", check=True).stdout.splitlines():
        cols = line.split()
        kinds.add(cols[next(i for i, c in enumerate(cols) if c in ("true", "false")) + 1])
    return kinds


def create_missing_namespaces(objects: list) -> list:
    """A namespaced dry-run needs its namespace: create those that do not exist yet, and say which."""
    created = []
    for obj in objects:
        name = obj["metadata"]["name"]
        if obj["kind"] == "Namespace" and "NotFound" in kubectl("get", "namespace", name, check=False).stderr:
            kubectl("apply", "--server-side", "--field-manager=prepull-e2e", "-f", "-", input=json.dumps(obj), check=True)
            created.append(name)
    return created


def namespaced(args: dict, name: str) -> dict:
    return {**args, "namespace": f"prepull-dry-{name}"}


def check(objects: list, allowed_warning: str = "") -> None:
    created = create_missing_namespaces(objects)
    try:
        out = kubectl(
            "apply",
            "--server-side",
            "--dry-run=server",
            "--validate=strict",
            "--field-manager=prepull-check",
            "-f",
            "-",
            input=as_list(objects),
            check=False,
        )
        assert out.returncode == 0, out.stderr
        warnings = [w for w in out.stderr.splitlines() if w.startswith("Warning:")]
        if allowed_warning:
            assert any(allowed_warning in w for w in warnings), f"expected the warning {allowed_warning!r}: {out.stderr}"
            warnings = [w for w in warnings if allowed_warning not in w]
        assert warnings == [], warnings
        assert len(out.stdout.strip().splitlines()) == len(objects), out.stdout
    finally:
        # Only what this test created: a namespace that was there before is left alone.
        for name in created:
            kubectl("delete", "namespace", name, "--wait=true", check=False)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_scenario_is_accepted_without_warnings(scenario):
    objects = manifests(namespaced(SCENARIOS[scenario], scenario), "dry")
    check(objects, EXPECTED_WARNING.get(scenario, ""))


@pytest.mark.parametrize("stack", sorted(p.name.split(".")[1] for p in (ROOT / "stacks").glob("Pulumi.*.yaml")))
def test_every_stack_is_accepted_without_warnings(stack):
    objects = stack_manifests(load_stack(stack_config(ROOT / "stacks" / f"Pulumi.{stack}.yaml")))
    kinds = served_kinds()
    unserved = [f"{o['kind']}/{o['metadata']['name']}" for o in objects if o["kind"] not in kinds]
    # Only custom resources may be missing from a plain cluster, and only Karpenter's NodePool is one here.
    assert all(u.startswith("NodePool/") for u in unserved), unserved
    check([o for o in objects if o["kind"] in kinds])


# ---------------------------------------------------------------- `python -m prepull check --server`, what users run


def cli_check(stack: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "prepull",
            "check",
            "--stack",
            stack,
            "--server",
            "--context",
            CONTEXT,
            "--stacks-dir",
            str(ROOT / "stacks"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_check_server_accepts_the_dev_stack_once_its_namespace_exists():
    objects = stack_manifests(load_stack(stack_config(ROOT / "stacks" / "Pulumi.dev.yaml")))
    created = create_missing_namespaces(objects)
    try:
        out = cli_check("dev")
        assert out.returncode == 0, out.stdout + out.stderr
        assert f"{len(objects)} accepted (0 warning(s)), 0 not checked, 0 rejected" in out.stdout, out.stdout
    finally:
        for name in created:
            kubectl("delete", "namespace", name, "--wait=true", check=False)


def test_check_server_names_what_it_could_not_check():
    namespace = stack_config(ROOT / "stacks" / "Pulumi.prod.yaml").get("namespace", "prepull")
    assert "NotFound" in kubectl("get", "namespace", namespace, check=False).stderr, "this test needs the namespace absent"
    out = cli_check("prod")
    assert out.returncode == 0, out.stdout + out.stderr
    not_checked = [line for line in out.stdout.splitlines() if line.startswith("NOT CHECKED")]
    assert any("NodePool/" in line and "is its CRD installed?" in line for line in not_checked), out.stdout
    assert any(f"namespace '{namespace}' does not exist yet" in line for line in not_checked), out.stdout
    assert "REJECTED" not in out.stdout


def test_check_server_reports_rejections_and_warnings():
    from prepull.kube.server_check import check_on_server, connect

    client = connect(None, CONTEXT)
    objects = manifests(namespaced(SCENARIOS["docker-socket"], "server-check"), "dry")
    bad = json.loads(json.dumps(next(o for o in objects if o["kind"] == "DaemonSet")))
    bad["metadata"]["name"] = "bad"
    bad["spec"]["template"]["spec"]["bogusField"] = True
    created = create_missing_namespaces(objects)
    try:
        report = check_on_server([*objects, bad], client)
    finally:
        for name in created:
            kubectl("delete", "namespace", name, "--wait=true", check=False)
    assert [oid for oid, _ in report.problems] == ["DaemonSet/prepull-dry-server-check/bad"], report.problems
    assert "bogusField" in report.problems[0][1], report.problems
    assert any('would violate PodSecurity "restricted:latest"' in text for _, text in report.warnings), report.warnings
    assert len(report.accepted) == len(objects)
