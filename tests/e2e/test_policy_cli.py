"""The policy pack through the real pulumi CLI: `pulumi preview --policy-pack policies --policy-pack-config ...`.

The dev stack runs inline through the Automation API; the CLI starts the pack folder itself
through the Python language host's RunPlugin (``pulumi-language-python``, built by
tests/cluster/build: docs/e2e.md, "The language hosts"), with the python of ``policies/venv``
(PulumiPolicy.yaml). The engine, the analyzer protocol, ``--policy-pack-config``, enforcement
levels and remediation are the CLI's own.

The pack's virtualenv is made as the README says: ``python3 -m venv policies/venv`` and
``policies/venv/bin/pip install -e . -r policies/requirements.txt`` (the pack pins the prepull
release of this version, which is not on PyPI yet: the checkout's own satisfies the pin).
"""

import json
import subprocess
from pathlib import Path

import pytest
from cluster_env import CONTEXT, ROOT, copy_project, marks, stack_program, unreachable
from pulumi import automation as auto

STACK = "dev"
PACK = ROOT / "policies"
DISALLOWED = "quay.io/evil/miner:1.0"
MIRROR = "mirror.example.com/cache"
pytestmark = marks(unreachable(("pulumi", "pulumi-language-python", "kubectl")))


@pytest.fixture(scope="module")
def pack_venv() -> Path:
    """policies/venv, made by the README's command when missing (kept when it exists)."""
    venv = PACK / "venv"
    if not (venv / "bin" / "python").exists():
        subprocess.run(["python3", "-m", "venv", "policies/venv"], cwd=ROOT, check=True)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", "-e", ".", "-r", "policies/requirements.txt"], cwd=ROOT, check=True, timeout=600
        )
    return venv


def stack_with(tmp_path: Path, extra_image: str = None) -> auto.Stack:
    """The dev stack in a copy of the project, its general pool given ``extra_image`` when set."""

    def add_image(config: dict) -> None:
        next(p for p in config["prepull:nodePools"] if p["name"] == "general")["images"].append(extra_image)

    (tmp_path / "state").mkdir()
    project = copy_project(tmp_path / "project", STACK, tmp_path / "state", add_image if extra_image else None)
    env = {
        "PULUMI_CONFIG_PASSPHRASE": "prepull-e2e",
        "PULUMI_BACKEND_URL": (tmp_path / "state").as_uri(),
        "PULUMI_SKIP_UPDATE_CHECK": "true",
    }
    stack = auto.create_or_select_stack(
        STACK, project_name="prepull", program=stack_program, opts=auto.LocalWorkspaceOptions(work_dir=str(project), env_vars=env)
    )
    stack.set_config("prepull:kubeContext", auto.ConfigValue(CONTEXT))
    return stack


def preview(stack: auto.Stack, config: Path, events: list = None) -> auto.PreviewResult:
    return stack.preview(
        policy_packs=[str(PACK)], policy_pack_configs=[str(config)], color="never", on_event=events.append if events is not None else None
    )


def daemon_set_images(events: list) -> dict:
    """DaemonSet name -> every image of its pod template, as the engine would register it (after remediation)."""
    found = {}
    for event in events:
        step = event.resource_pre_event and event.resource_pre_event.metadata
        if step and step.type == "kubernetes:apps/v1:DaemonSet":
            pod = step.new.inputs["spec"]["template"]["spec"]
            containers = [*(pod.get("initContainers") or []), *pod["containers"]]
            found[step.urn.rsplit("::", 1)[1]] = [c["image"] for c in containers]
    return found


def test_a_disallowed_image_fails_the_preview_with_our_message(pack_venv, tmp_path):
    stack = stack_with(tmp_path, DISALLOWED)
    with pytest.raises(auto.CommandError) as failed:
        preview(stack, PACK / "config.dev.json")
    out = str(failed.value)
    assert "prepull-policies" in out and "[mandatory]  image-allowlist" in out, out[-3000:]
    assert f'image "{DISALLOWED}" ({DISALLOWED}) is not allowed; allowedImages: docker.io/library/*' in out, out[-3000:]
    # Only the offending image is reported: the pool's allowed images pass.
    assert out.count("is not allowed") == 1, out[-3000:]


def test_an_allowed_stack_passes_and_the_pack_ran(pack_venv, tmp_path):
    result = preview(stack_with(tmp_path), PACK / "config.dev.json")
    assert "Policies:" in result.stdout and "prepull-policies" in result.stdout, result.stdout[-3000:]
    assert "is not allowed" not in result.stdout


def test_mirror_remediation_rewrites_every_image_in_the_preview(pack_venv, tmp_path):
    config = json.loads((PACK / "config.dev.json").read_text())
    config["image-allowlist"].update(enforcementLevel="remediate", mirrorRegistry=MIRROR)
    (tmp_path / "config.json").write_text(json.dumps(config))
    events = []
    result = preview(stack_with(tmp_path), tmp_path / "config.json", events)
    images = daemon_set_images(events)
    assert set(images) == {"pool-general-ds", "pool-batch-ds", "pool-gated-ds"}, images
    for name, refs in images.items():
        assert refs and all(ref.startswith(f"{MIRROR}/") for ref in refs), (name, refs)
    # The original registry stays the first path component on the mirror.
    assert f"{MIRROR}/docker.io/library/postgres:17.2" in images["pool-general-ds"]
    assert "[remediate]  image-allowlist  (3 resources)" in result.stdout, result.stdout[-3000:]


def test_a_config_mistake_is_reported_per_workload_and_once_per_stack(pack_venv, tmp_path):
    """The CLI accepts the unknown key (the policy protocol carries no additionalProperties); our policies do not."""
    config = json.loads((PACK / "config.dev.json").read_text())
    config["image-allowlist"]["allowedImage"] = config["image-allowlist"].pop("allowedImages")
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(auto.CommandError) as failed:
        preview(stack_with(tmp_path), tmp_path / "config.json")
    out = str(failed.value)
    message = (
        "invalid configuration of policy 'image-allowlist': unknown setting 'allowedImage'; known settings: allowedImages, mirrorRegistry"
    )
    # By the policy for each of the three DaemonSets, and by pack-config once, on the stack.
    assert out.count(message) == 4, out[-3000:]
    assert out.count("[mandatory]  pack-config  (pulumi:pulumi:Stack: prepull-dev)") == 1, out[-3000:]
    assert out.count("[mandatory]  image-allowlist  (kubernetes:apps/v1:DaemonSet:") == 3, out[-3000:]
