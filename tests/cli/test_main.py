"""``python -m prepull render|check``, run as a user runs it: a subprocess, no Pulumi CLI, no cluster."""

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import prepull
from golden import regen
from prepull.cli.check import check_objects, supported_versions

ROOT = Path(__file__).resolve().parents[2]
STACKS = ROOT / "stacks"
STACK_FILES = sorted(STACKS.glob("Pulumi.*.yaml"))
STACK_NAMES = [p.name[len("Pulumi.") : -len(".yaml")] for p in STACK_FILES]


def cli(*args, cwd=ROOT):
    """Run ``python -m prepull`` with only the source tree on the path."""
    env = {"PYTHONPATH": str(ROOT / "components"), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    return subprocess.run([sys.executable, "-m", "prepull", *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def golden(stack: str) -> tuple:
    """(header line, the rest) of the stack's golden render (tests/golden/stacks/<stack>.yaml)."""
    header, body = (regen.HERE / "stacks" / f"{stack}.yaml").read_text(encoding="utf-8").split("\n", 1)
    return header, body


def golden_objects(stack: str) -> list:
    return list(yaml.safe_load_all(golden(stack)[1]))


def out_file_names(objects: list) -> list:
    """The files ``render --out`` writes for ``objects``, in order (docs/rendering.md: NNN-kind-name.yaml)."""
    return [f"{i:03d}-{o['kind'].lower()}-{o['metadata']['name']}.yaml" for i, o in enumerate(objects)]


def assert_usage_error(out, *needles):
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    assert out.stdout == ""
    for needle in needles:
        assert needle in out.stderr, out.stderr


def write_stack(directory: Path, name: str, config: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"Pulumi.{name}.yaml"
    path.write_text(yaml.safe_dump({"config": config}))
    return path


def dev_config() -> dict:
    return yaml.safe_load((STACKS / "Pulumi.dev.yaml").read_text())["config"]


# ---------------------------------------------------------------- render


def test_there_are_stack_files():
    assert {"dev", "prod"} <= set(STACK_NAMES)


@pytest.mark.parametrize("stack", STACK_NAMES)
def test_render_prints_exactly_the_golden_file(stack):
    # The real `python -m prepull` process (only the source tree on the path), byte for byte.
    out = cli("render", "--stack", stack)
    assert out.returncode == 0, out.stderr
    regen.assert_matches(f"stacks/{stack}.yaml", out.stdout)


@pytest.mark.parametrize("stack", STACK_NAMES)
def test_render_out_writes_one_file_per_object(stack, tmp_path):
    out = cli("render", "--stack", stack, "--out", tmp_path / "rendered")
    assert out.returncode == 0, out.stderr
    header, body = golden(stack)
    files = sorted((tmp_path / "rendered").iterdir())
    assert [f.name for f in files] == out_file_names(golden_objects(stack))
    # Each file is the header and one object, exactly as in the golden stream: together they are its body.
    texts = [f.read_text(encoding="utf-8") for f in files]
    assert all(text.startswith(header + "\n---\n") and text.count("\n---\n") == 1 for text in texts)
    assert "".join(text[len(header) + 1 :] for text in texts) == body
    assert out.stdout.split() == [str(f) for f in files]


def test_render_is_byte_identical_from_another_directory_and_stacks_dir(tmp_path):
    # --stacks-dir and the working directory change nothing in the output (no paths, no timestamps).
    there = cli("render", "--stack", "prod", "--stacks-dir", STACKS, cwd=tmp_path)
    assert there.returncode == 0, there.stderr
    regen.assert_matches("stacks/prod.yaml", there.stdout)


def test_render_out_removes_files_of_objects_that_are_gone_and_keeps_others(tmp_path):
    stacks, out_dir = tmp_path / "stacks", tmp_path / "out"
    config = dev_config()
    write_stack(stacks, "x", config)
    assert cli("render", "--stack", "x", "--stacks-dir", stacks, "--out", out_dir).returncode == 0
    (out_dir / "kustomization.yaml").write_text("resources: []\n")  # not ours: must survive
    before = {f.name for f in out_dir.iterdir()}
    assert any(name.endswith("-daemonset-batch.yaml") for name in before)
    config["prepull:nodePools"] = [p for p in config["prepull:nodePools"] if p["name"] != "batch"]
    write_stack(stacks, "x", config)
    out = cli("render", "--stack", "x", "--stacks-dir", stacks, "--out", out_dir)
    assert out.returncode == 0, out.stderr
    # dev's objects without the batch pool's (its NetworkPolicy and DaemonSet), renumbered.
    wanted = out_file_names([o for o in golden_objects("dev") if o["metadata"]["name"] != "batch"])
    assert sorted(f.name for f in out_dir.iterdir()) == sorted(wanted + ["kustomization.yaml"])
    assert not any("batch" in name for name in wanted)
    removed = before - set(wanted) - {"kustomization.yaml"}
    assert removed and all(name in out.stderr for name in removed)


def test_render_ignores_other_namespaces_and_decodes_json_strings(tmp_path):
    config = dev_config()
    config["kubernetes:context"] = "elsewhere"  # another provider's key: ignored
    config["prepull:images"] = '["docker.io/library/python:3.13-slim"]'  # as `pulumi config set` may store it
    config["prepull:kubeconfig"] = {"secure": "v1:abc"}  # encrypted, and not needed to render
    write_stack(tmp_path, "x", config)
    out = cli("render", "--stack", "x", "--stacks-dir", tmp_path)
    assert out.returncode == 0, out.stderr
    header, body = out.stdout.split("\n", 1)
    # dev's objects byte for byte; only the header names the other file.
    assert header == golden("dev")[0].replace("Pulumi.dev.yaml", "Pulumi.x.yaml").replace("--stack dev", "--stack x")
    assert body == golden("dev")[1]


def test_render_does_not_import_the_pulumi_sdk():
    # GitOps pipelines render without the Pulumi SDK: it must not even be imported.
    code = (
        "import sys, io, contextlib; from prepull.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()): rc = main(['render', '--stack', 'prod'])\n"
        "assert rc == 0, rc\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pulumi', 'pulumi_kubernetes', 'grpc')))"
    )
    env = {"PYTHONPATH": str(ROOT / "components"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------- check


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_check_passes_for_the_shipped_stacks(stack):
    out = cli("check", "--stack", stack)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 problem(s)" in out.stdout
    assert f"Kubernetes {supported_versions()[-1]}" in out.stdout
    assert "PROBLEM" not in out.stdout


def test_check_says_karpenter_node_pools_were_skipped_not_validated():
    out = cli("check", "--stack", "prod")
    skipped = [line for line in out.stdout.splitlines() if line.startswith("SKIPPED")]
    assert skipped == [
        "SKIPPED  NodePool/general: not validated: karpenter.sh/v1 has no upstream Kubernetes schema (custom resource)",
        "SKIPPED  NodePool/gpu: not validated: karpenter.sh/v1 has no upstream Kubernetes schema (custom resource)",
    ]
    assert "2 skipped (not validated)" in out.stdout
    assert not any(line.startswith("ok") and "NodePool" in line for line in out.stdout.splitlines())


GATE_POLICY_NEEDS_132 = (
    "spec.validations[0].expression: the new-node gate needs Kubernetes >= 1.32: this policy admits the untaint step "
    "only with the node-name claim of service-account tokens (authentication.kubernetes.io/node-name, KEP-4193, GA in 1.32)"
)


def problem_lines(stdout: str) -> list:
    return [line for line in stdout.splitlines() if line.startswith("PROBLEM")]


def test_check_oldest_version_flags_the_gate_policy_api_it_lacks():
    # prod's GPU pool uses the new-node gate: ValidatingAdmissionPolicy v1 is GA only from 1.30.
    out = cli("check", "--stack", "prod", "--kubernetes-version", "1.29")
    assert out.returncode == 1, out.stdout + out.stderr
    problems = problem_lines(out.stdout)
    assert len(problems) == 3, problems
    assert problems[0] == (
        "PROBLEM  ValidatingAdmissionPolicy/prepull-untaint.prepull.gpu: apiVersion: "
        "admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy is not served by Kubernetes 1.29"
    )
    assert problems[1].startswith("PROBLEM  ValidatingAdmissionPolicy/prepull-untaint.prepull.gpu: " + GATE_POLICY_NEEDS_132)
    assert problems[2] == (
        "PROBLEM  ValidatingAdmissionPolicyBinding/prepull-untaint.prepull.gpu: apiVersion: "
        "admissionregistration.k8s.io/v1 ValidatingAdmissionPolicyBinding is not served by Kubernetes 1.29"
    )


@pytest.mark.parametrize("stack, pool", [("prod", "gpu"), ("dev", "gated")])
@pytest.mark.parametrize("version", ["1.30", "v1.31.4"])
def test_check_flags_the_gate_below_1_32_though_its_schemas_are_valid(stack, pool, version):
    # The policy is a valid v1 object from 1.30 on, but it admits the untaint step only with the node-name
    # claim of service-account tokens (GA in 1.32): on 1.30/1.31 gated nodes could keep their taint forever.
    out = cli("check", "--stack", stack, "--kubernetes-version", version)
    assert out.returncode == 1, out.stdout + out.stderr
    problems = problem_lines(out.stdout)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"PROBLEM  ValidatingAdmissionPolicy/prepull-untaint.prepull.{pool}: " + GATE_POLICY_NEEDS_132)
    assert "gated nodes keep their startup taint" in problems[0]
    assert f"ok       ValidatingAdmissionPolicy/prepull-untaint.prepull.{pool}" not in out.stdout
    assert f"ok       ValidatingAdmissionPolicyBinding/prepull-untaint.prepull.{pool}" in out.stdout
    assert "1 problem(s)" in out.stdout


@pytest.mark.parametrize("stack", ["prod", "dev"])
def test_check_accepts_the_gate_from_1_32(stack):
    out = cli("check", "--stack", stack, "--kubernetes-version", "1.32")
    assert out.returncode == 0, out.stdout + out.stderr
    assert problem_lines(out.stdout) == []


def test_check_without_a_gate_has_no_version_problem_on_1_30(tmp_path):
    # Only a gated pool needs 1.32: the same stack without its gated pool is clean on 1.30.
    config = dev_config()
    config["prepull:nodePools"] = [p for p in config["prepull:nodePools"] if not p.get("startupGate")]
    assert len(config["prepull:nodePools"]) == len(dev_config()["prepull:nodePools"]) - 1
    write_stack(tmp_path, "nogate", config)
    out = cli("check", "--stack", "nogate", "--stacks-dir", tmp_path, "--kubernetes-version", "1.30")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ValidatingAdmissionPolicy" not in out.stdout and "0 problem(s)" in out.stdout


@pytest.mark.parametrize("version", ["1.32", "1.33"])
def test_check_dev_on_older_versions(version):
    out = cli("check", "--stack", "dev", "--kubernetes-version", version)
    assert out.returncode == 0, out.stdout
    assert f"Kubernetes {version} strict" in out.stdout


def test_check_dev_on_1_29_flags_only_the_gate():
    # dev's `gated` pool is the only thing 1.29 lacks (ValidatingAdmissionPolicy v1, the node-name claim).
    out = cli("check", "--stack", "dev", "--kubernetes-version", "1.29")
    assert out.returncode == 1, out.stdout
    problems = problem_lines(out.stdout)
    assert problems and all("prepull-untaint.prepull.gated" in line for line in problems), problems


def test_check_without_kubernetes_validate_says_which_extra_to_install(tmp_path):
    # A module named kubernetes_validate that fails to import, first on the path: as if the extra were missing.
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "kubernetes_validate.py").write_text("raise ImportError('No module named kubernetes_validate')\n")
    env = {"PYTHONPATH": os.pathsep.join([str(shadow), str(ROOT / "components")]), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    for extra in ([], ["--kubernetes-version", "1.33"]):
        out = subprocess.run(
            [sys.executable, "-m", "prepull", "check", "--stack", "dev", *extra],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert_usage_error(out, "check needs kubernetes-validate: pip install 'prepull[check]'")
        assert out.stderr.count("\n") == 1, out.stderr
    # render does not need it: the same environment renders.
    out = subprocess.run(
        [sys.executable, "-m", "prepull", "render", "--stack", "dev"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr


def test_check_objects_names_kind_name_and_field_of_each_problem():
    objects = golden_objects("dev")
    broken = copy.deepcopy(objects)
    daemon_sets = {o["metadata"]["name"]: o for o in broken if o["kind"] == "DaemonSet"}
    general, batch = daemon_sets["general"], daemon_sets["batch"]
    general["spec"]["template"]["spec"]["initContainers"][1]["imagePullPolicyy"] = "IfNotPresent"  # a typo
    batch["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = ["1m"]  # wrong type
    valid, skipped, problems = check_objects(broken, supported_versions()[-1])
    assert len(valid) == len(objects) - 2 and "Namespace/prepull" in valid and skipped == []
    assert problems[0] == (
        "DaemonSet/prepull/general",
        "spec.template.spec.initContainers[1].imagePullPolicyy",
        "unknown field (strict schema)",
    )
    assert problems[1][:2] == ("DaemonSet/prepull/batch", "spec.template.spec.containers[0].resources.requests.cpu")
    assert len(problems) == 2
    assert check_objects(objects, supported_versions()[-1])[2] == []


def test_broken_stacks_dir_fails_and_names_the_field(tmp_path):
    config = dev_config()
    config["prepull:nodePools"][1]["taints"][0]["effect"] = "NoScheduel"
    write_stack(tmp_path, "dev", config)
    for command in ("render", "check"):
        out = cli(command, "--stack", "dev", "--stacks-dir", tmp_path)
        assert_usage_error(out, "invalid configuration", "prepull:nodePools.batch.taints[0].effect", "NoScheduel")


# ---------------------------------------------------------------- bad arguments


@pytest.mark.parametrize("command", ["render", "check"])
def test_unknown_stack_lists_the_available_ones(command):
    out = cli(command, "--stack", "staging")
    assert_usage_error(out, "unknown stack 'staging'", "Available stacks", ", ".join(STACK_NAMES))


def test_unknown_stack_in_an_empty_dir(tmp_path):
    assert_usage_error(cli("render", "--stack", "dev", "--stacks-dir", tmp_path), "Available stacks", ": none")


def test_stack_name_cannot_escape_the_stacks_dir():
    assert_usage_error(cli("render", "--stack", "../stacks/Pulumi.dev"), "invalid stack name")


def test_unreadable_stack_file(tmp_path):
    (tmp_path / "Pulumi.dir.yaml").mkdir()  # exists but cannot be read as a file
    assert_usage_error(cli("render", "--stack", "dir", "--stacks-dir", tmp_path), "cannot read", "Pulumi.dir.yaml")


def test_stack_file_that_is_not_yaml(tmp_path):
    (tmp_path / "Pulumi.bad.yaml").write_text("config: [unclosed\n")
    assert_usage_error(cli("check", "--stack", "bad", "--stacks-dir", tmp_path), "is not valid YAML")


def test_stack_file_that_is_not_utf8(tmp_path):
    (tmp_path / "Pulumi.bin.yaml").write_bytes(b"config:\n  prepull:images: [\xff\xfe]\n")
    assert_usage_error(cli("render", "--stack", "bin", "--stacks-dir", tmp_path), "Pulumi.bin.yaml is not valid YAML", "utf-8")


def test_stack_file_without_a_config_mapping(tmp_path):
    (tmp_path / "Pulumi.list.yaml").write_text("config: [1, 2]\n")
    assert_usage_error(cli("render", "--stack", "list", "--stacks-dir", tmp_path), "`config:` must be a mapping")


def test_stack_without_node_pools_is_a_config_error(tmp_path):
    write_stack(tmp_path, "empty", {"prepull:images": ["nginx:1.27"]})
    assert_usage_error(
        cli("render", "--stack", "empty", "--stacks-dir", tmp_path), "prepull:nodePools", "must be a non-empty list of node pools"
    )


def test_encrypted_image_list_cannot_be_rendered(tmp_path):
    write_stack(tmp_path, "sec", {**dev_config(), "prepull:images": {"secure": "v1:abc"}})
    assert_usage_error(cli("render", "--stack", "sec", "--stacks-dir", tmp_path), "prepull:images is encrypted")


def test_out_that_is_a_file(tmp_path):
    (tmp_path / "f").write_text("")
    assert_usage_error(cli("render", "--stack", "dev", "--out", tmp_path / "f"), "cannot write to")


@pytest.mark.parametrize(
    "version, message",
    [
        ("1.28", "1.28 is older than the oldest supported"),
        ("1.99", "1.99 has no schemas in the installed kubernetes-validate"),
        ("latest", "invalid Kubernetes version 'latest'"),
    ],
)
def test_unsupported_kubernetes_version_lists_the_supported_ones(version, message):
    out = cli("check", "--stack", "dev", "--kubernetes-version", version)
    assert_usage_error(out, message, "supported: " + ", ".join(supported_versions()))
    assert supported_versions()[0] == "1.29"


@pytest.mark.parametrize("argv", [[], ["render"], ["check", "--stack"], ["render", "--stack", "dev", "--bogus"], ["deploy"]])
def test_malformed_command_lines_exit_2(argv):
    out = cli(*argv)
    assert out.returncode == 2 and "usage:" in out.stderr and "Traceback" not in out.stderr


def test_version_flag():
    out = cli("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"prepull {prepull.__version__}"


def test_render_out_writes_every_file_even_when_stdout_is_closed(tmp_path, monkeypatch):
    # `render --out DIR | head -1`: the reader going away must neither stop the render half way nor be
    # reported as "cannot write to DIR".
    from prepull.cli.main import main

    class ClosedPipe:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            pass

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert main(["render", "--stack", "prod", "--out", str(tmp_path / "out")]) == 0
    wanted = out_file_names(golden_objects("prod"))
    assert sorted(f.name for f in (tmp_path / "out").iterdir()) == wanted


# ---------------------------------------------------------------- check --server (no cluster here; the cluster tier runs it for real)


def test_check_server_says_when_the_kubeconfig_cannot_be_loaded(tmp_path):
    out = cli("check", "--stack", "dev", "--server", "--kubeconfig", tmp_path / "missing")
    assert out.returncode == 3, (out.stdout, out.stderr)
    assert "cannot reach the cluster of the current context" in out.stderr and "Traceback" not in out.stderr
    assert out.stdout == ""


def test_check_server_says_when_the_server_does_not_answer(down_kubeconfig):
    out = cli("check", "--stack", "dev", "--server", "--kubeconfig", down_kubeconfig, "--context", "down")
    assert out.returncode == 3, (out.stdout, out.stderr)
    assert "cannot reach the cluster of context 'down'" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("option", ["--context", "--kubeconfig"])
def test_check_refuses_cluster_options_without_server(option):
    """The offline check reads no cluster: a cluster option there is a mistake, not something to ignore."""
    out = cli("check", "--stack", "dev", option, "somewhere")
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert f"{option} somewhere: only used with --server" in out.stderr and out.stdout == ""
