"""The component from another language through the real pulumi CLI: examples/yaml-consumer, deployed.

The CLI runs the YAML program with ``pulumi-language-yaml`` and, for the example's ``packages:``
entry (``prepull: ../../components``), starts the component provider from source through the
Python language host's RunPlugin (``pulumi-language-python``; both built by tests/cluster/build,
docs/e2e.md), in ``components/venv``. One thing differs from the committed file: the copy's
``packages:`` path is absolute (the copy lives elsewhere), and its Kubernetes provider uses the
cluster's context instead of ``kind-prepull``. TypeScript: tests/e2e/test_typescript.py.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from cluster_env import CONTEXT, LOCAL, ROOT, kubectl, marks, toolchain_venv, unreachable

EXAMPLE = ROOT / "examples" / "yaml-consumer" / "Pulumi.yaml"
COMPONENTS = ROOT / "components"
# Only the local cluster's PATH carries the shim and the YAML host: skipped elsewhere even where the tier is required.
pytestmark = [
    *marks(unreachable(("pulumi", "pulumi-language-yaml", "pulumi-language-python", "kubectl"))),
    pytest.mark.skipif(not LOCAL, reason="needs the local cluster (tests/cluster/up DIR, then . DIR/env): its PATH has the hosts"),
]


@pytest.fixture(scope="module")
def components_venv() -> Path:
    """components/venv, installed from the plugin's own folder as the CLI's pip toolchain does."""
    return toolchain_venv(COMPONENTS)


class Project:
    """A copy of the example in its own directory and file backend, driven with the pulumi CLI."""

    def __init__(self, path: Path, edit=None, resources=None) -> None:
        program = yaml.safe_load(EXAMPLE.read_text())
        program["packages"]["prepull"] = str((EXAMPLE.parent / program["packages"]["prepull"]).resolve())
        program["resources"]["k8s"]["properties"]["context"] = CONTEXT
        program["resources"].update(resources or {})
        if edit:
            edit(program["resources"]["prepuller"]["properties"])
        self.path = path
        (path / "state").mkdir(parents=True)
        (path / "Pulumi.yaml").write_text(yaml.safe_dump(program, sort_keys=False))
        self.env = {**os.environ, "PULUMI_BACKEND_URL": (path / "state").as_uri(), "PULUMI_CONFIG_PASSPHRASE": "prepull-e2e"}
        self.pulumi("stack", "init", "dev")

    def pulumi(self, *args, check=True) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["pulumi", *args, "--non-interactive", "--color", "never"],
            cwd=self.path,
            env=self.env,
            capture_output=True,
            text=True,
            check=check,
            timeout=900,
        )

    def resource_types(self) -> list:
        state = json.loads(self.pulumi("stack", "export").stdout)
        return [r["type"] for r in state["deployment"].get("resources") or []]


@pytest.fixture
def deployed(components_venv, tmp_path):
    project = Project(tmp_path / "yaml")
    try:
        up = project.pulumi("up", "--yes", check=False)
        assert up.returncode == 0, up.stdout[-4000:] + up.stderr[-2000:]
        yield project
    finally:
        project.pulumi("destroy", "--yes", check=False)


def test_the_yaml_example_deploys_through_the_component_provider(deployed):
    program = yaml.safe_load(EXAMPLE.read_text())
    properties = program["resources"]["prepuller"]["properties"]
    # The first image is an output of the example's Deployment: the engine resolved it before construct.
    assert properties["images"][0] == "${api.spec.template.spec.containers[0].image}"
    images = [program["resources"]["api"]["properties"]["spec"]["template"]["spec"]["containers"][0]["image"], *properties["images"][1:]]
    outputs = json.loads(deployed.pulumi("stack", "output", "--json").stdout)
    assert outputs == {
        "namespace": properties["namespace"],
        "daemonSets": [f"{properties['baseName']}-l1", f"{properties['baseName']}-l2"],
        "images": images,
        "ready": True,
    }
    objects = json.loads(kubectl("get", "daemonsets", "-n", properties["namespace"], "-o", "json").stdout)["items"]
    assert sorted(o["metadata"]["name"] for o in objects) == outputs["daemonSets"]
    pulled = sorted(c["image"] for o in objects for c in o["spec"]["template"]["spec"]["initContainers"][1:])
    assert pulled == sorted(images), pulled
    for obj in objects:
        assert obj["metadata"]["labels"]["team"] == "platform"
        assert obj["spec"]["template"]["spec"]["nodeSelector"] == {**properties["nodeSelector"], "kubernetes.io/os": "linux"}
        # Every node the selector matches runs a ready pod (the general pool's is a kwok node: simulated).
        assert obj["status"]["desiredNumberScheduled"] >= 1
        assert obj["status"]["numberReady"] == obj["status"]["desiredNumberScheduled"], obj["status"]
    assert "prepull:index:ImagePrePuller" in deployed.resource_types()


def ours(project: Project) -> list:
    """What the component registered: itself and its children (the example's own Deployment is not ours)."""
    return [
        t
        for t in project.resource_types()
        if t.startswith("prepull:")
        or t in ("kubernetes:apps/v1:DaemonSet", "kubernetes:core/v1:Namespace", "kubernetes:networking.k8s.io/v1:NetworkPolicy")
    ]


def test_a_bad_input_fails_with_the_field_as_yaml_spells_it_and_registers_nothing(components_venv, tmp_path):
    project = Project(tmp_path / "bad", edit=lambda p: p.update(maxUnavailable=-3, namespace="prepull-yaml-bad"))
    try:
        up = project.pulumi("up", "--yes", check=False)
        out = up.stdout + up.stderr
        assert up.returncode != 0
        assert (
            "property maxUnavailable with value -3 has a problem: "
            "must be a whole number, at least 1, or a percentage from 1% to 100% such as '10%' (got -3)" in out
        ), out[-3000:]
        assert "Traceback" not in out and "max_unavailable" not in out, out[-3000:]
        assert not ours(project)
        assert "NotFound" in kubectl("get", "namespace", "prepull-yaml-bad", check=False).stderr
    finally:
        project.pulumi("destroy", "--yes", check=False)  # the example's Deployment, created before the component


def test_a_bad_output_value_fails_on_resolve_with_the_field_as_yaml_spells_it(components_venv, tmp_path):
    """An output (a ConfigMap's data) that resolves to a bad secret name: structured, camelCase, no DaemonSet."""
    config_map = {
        "type": "kubernetes:core/v1:ConfigMap",
        "options": {"provider": "${k8s}"},
        "properties": {"metadata": {"namespace": "default"}, "data": {"secret": "Bad_Name"}},
    }
    project = Project(
        tmp_path / "bad-output",
        resources={"names": config_map},
        edit=lambda p: p.update(imagePullSecrets=["${names.data.secret}"], namespace="prepull-yaml-bad-output"),
    )
    try:
        up = project.pulumi("up", "--yes", check=False)
        out = up.stdout + up.stderr
        assert up.returncode != 0
        assert "property imagePullSecrets[0] with value" in out and "(got 'Bad_Name')" in out, out[-3000:]
        assert "Traceback" not in out and "image_pull_secrets" not in out, out[-3000:]
        assert not ours(project)
        assert "NotFound" in kubectl("get", "namespace", "prepull-yaml-bad-output", check=False).stderr
    finally:
        project.pulumi("destroy", "--yes", check=False)
