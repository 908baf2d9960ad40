"""The README's own commands, run as a user runs them: the real `pulumi` CLI on a clean copy of the project.

Unlike test_e2e.py (the stack program served inline by the Automation API), here the CLI starts
``__main__.py`` through the Python language host (``pulumi-language-python``, built by
tests/cluster/build; docs/e2e.md says which host and how it differs from a current one), in the
virtualenv that ``Pulumi.yaml``'s ``virtualenv: .venv`` names, with nothing activated.

The dev quickstart's shell block is read from README.md and run as it is, with two changes only:
the kind cluster is the local one (its ``kind create cluster`` line is left out), and the dev
stack's context is pointed at it by ``pulumi config set`` before ``pulumi up``. The CLI runs
without a terminal, so ``PULUMI_SKIP_CONFIRMATIONS=true`` answers its "perform this update?"
prompt, as a user types "yes". Then, in order on that one stack: a preview with
``--expect-no-changes``; a changed image list rolled out by a second ``pulumi up``; bad input (a
stack file, and the component in a user's own program) failing with our one-line message and no
Python traceback, registering nothing; the policy pack as the README runs it; ``pulumi destroy``.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from checkout import copy_tracked
from cluster_env import CONTEXT, LOCAL, ROOT, containerd_images, kubectl, marks, unreachable
from slow_registry import SlowRegistry, push_unique_image
from test_e2e import (
    GATED_POOL,
    MANAGED_BY,
    POOL_LABEL,
    assert_pool_has_images,
    current_spec,
    expected_images,
    gate_taint,
    labelled_objects,
    node_taints,
    nodes_with,
    retaint_gated_nodes,
    wait_for,
)

STACK = "dev"
REGISTRY = os.environ.get("PREPULL_TEST_REGISTRY", "")
ADDED_IMAGE = "docker.io/library/alpine:3.21"
QUICKSTART_HEADING = "### dev: a local kind cluster"
POLICY_HEADING = "## Policy pack"
# What the language host prints for an exception that is not a pulumi.RunError.
TRACEBACK_MARKERS = ("Traceback (most recent call last)", "Program failed with an unhandled exception")

pytestmark = [
    *marks(unreachable(("pulumi", "pulumi-language-python", "kubectl", "git"))),
    pytest.mark.skipif(not LOCAL, reason="needs the local cluster (tests/cluster/up DIR, then . DIR/env): the README is run against it"),
]


def readme_block(heading: str) -> list:
    """The command lines of the first ```bash block after ``heading`` in README.md (comments kept: bash ignores them)."""
    text = (ROOT / "README.md").read_text()
    after = text[text.index(heading) :]
    block = re.search(r"```bash\n(.*?)```", after, re.S)
    assert block, f"README.md: no bash block after {heading!r}"
    return [line for line in block.group(1).splitlines() if line.strip()]


def user_environment() -> dict:
    """This process's environment as a user's shell has it: no virtualenv active, no backend or passphrase preset."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE", "PYTHONPATH")}
    venv_bins = {str(Path(sys.prefix) / "bin"), str(ROOT / ".venv" / "bin")}
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p not in venv_bins)
    env["PULUMI_SKIP_CONFIRMATIONS"] = "true"  # the "yes" a user types at the prompt
    return env


class Project:
    """The clean copy, driven with shell commands as a user types them."""

    def __init__(self, path: Path) -> None:
        copy_tracked((), path)  # the files a clone has: no .venv, no state, no built venvs
        self.path = path
        self.env = user_environment()

    def sh(self, script: str, check: bool = True) -> subprocess.CompletedProcess:
        """``script`` run by bash in the copy (errexit), stdout and stderr together."""
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=self.path,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=1800,
        )
        if check:
            assert done.returncode == 0, f"{script}\n--- exit {done.returncode}:\n{done.stdout[-6000:]}"
        return done

    def pulumi(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """One pulumi command with the README's passphrase (``export PULUMI_CONFIG_PASSPHRASE=``)."""
        return self.sh("export PULUMI_CONFIG_PASSPHRASE= && pulumi " + " ".join(args) + " --color never", check=check)

    def resource_types(self, stack: str) -> list:
        state = json.loads(self.pulumi("stack", "export", "--stack", stack).stdout)
        return sorted(r["type"] for r in state["deployment"].get("resources") or [])


def quickstart_script() -> str:
    """The README's dev quickstart, against the local cluster: its kind line left out, its context set before `pulumi up`."""
    lines = []
    for line in readme_block(QUICKSTART_HEADING):
        if line.startswith("kind create cluster"):
            continue
        if line.startswith(f"pulumi up --stack {STACK}"):
            lines.append(f"pulumi config set --stack {STACK} prepull:kubeContext {CONTEXT}")
        lines.append(line)
    assert any(line.startswith(f"pulumi up --stack {STACK}") for line in lines), lines
    return "\n".join(lines)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """The dev stack deployed by the README's quickstart through the CLI; destroyed afterwards whatever happened."""
    project = Project(tmp_path_factory.mktemp("readme") / "prepull")
    # Without the project's .venv, `python3` has no pulumi: the run below proves the host used .venv.
    assert project.sh("python3 -c 'import pulumi'", check=False).returncode != 0, "python3 on PATH has pulumi: the test would prove nothing"
    retaint_gated_nodes(current_spec(project.path))
    state = {"project": project, "destroyed": False}
    try:
        state["up"] = project.sh(quickstart_script())
        yield state
    finally:
        if not state["destroyed"]:
            project.pulumi("destroy", "--stack", STACK, "--yes", check=False)


def assert_no_traceback(output: str) -> None:
    for marker in TRACEBACK_MARKERS:
        assert marker not in output, output[-4000:]


def test_the_readme_quickstart_deploys_the_dev_stack_through_the_cli(project):
    p = project["project"]
    assert (p.path / ".venv" / "bin" / "python").exists()
    spec = current_spec(p.path)
    images = expected_images(spec)
    for pool in spec.pools:
        assert_pool_has_images(spec, pool.name, images[pool.name])
    outputs = json.loads(p.pulumi("stack", "output", "--stack", STACK, "--json").stdout)
    assert sorted(outputs) == sorted(pool.name for pool in spec.pools)
    assert all(outputs[pool.name]["ready"] is True for pool in spec.pools), outputs
    key = gate_taint(spec)["key"]
    for node in nodes_with(f"{POOL_LABEL}={GATED_POOL}"):
        assert not any(t["key"] == key for t in node_taints(node)), f"{node} still has the startup taint"


def test_a_second_preview_expects_no_changes(project):
    out = project["project"].pulumi("preview", "--stack", STACK, "--expect-no-changes").stdout
    assert_no_traceback(out)


def test_a_changed_image_list_rolls_out_with_a_second_up(project):
    p = project["project"]
    count = len(yaml.safe_load((p.path / "stacks" / f"Pulumi.{STACK}.yaml").read_text())["config"]["prepull:images"])
    p.pulumi("config", "set", "--path", "--stack", STACK, f"'prepull:images[{count}]'", ADDED_IMAGE)
    p.pulumi("up", "--stack", STACK)
    spec = current_spec(p.path)
    images = expected_images(spec)
    for pool in spec.pools:
        assert ADDED_IMAGE in images[pool.name]
        assert_pool_has_images(spec, pool.name, images[pool.name])
    p.pulumi("preview", "--stack", STACK, "--expect-no-changes")


INTERRUPTED = "interrupted"
INTERRUPTED_NAMESPACE = "prepull-interrupted"
CLUSTER_SCOPED = "clusterroles,clusterrolebindings,validatingadmissionpolicies,validatingadmissionpolicybindings"


def ours_in_cluster(namespace: str) -> list:
    """Our objects of the stack whose namespace is ``namespace``: in it, and cluster-scoped ones named after it."""
    listed = kubectl("get", "daemonsets,serviceaccounts,networkpolicies,pods", "-n", namespace, "-l", MANAGED_BY, "-o", "name")
    scoped = kubectl("get", CLUSTER_SCOPED, "-l", MANAGED_BY, "-o", "name").stdout.split()
    return sorted([*listed.stdout.split(), *(n for n in scoped if f".{namespace}." in n)])


def ours_in_state(p: Project, stack: str) -> list:
    """``kind/name`` of each Kubernetes object the stack's state holds (the form kubectl's ``-o name`` prints)."""
    state = json.loads(p.pulumi("stack", "export", "--stack", stack).stdout)["deployment"]
    assert not state.get("pending_operations"), state["pending_operations"]
    kinds = {"DaemonSet": "daemonset.apps", "ServiceAccount": "serviceaccount", "NetworkPolicy": "networkpolicy.networking.k8s.io"}
    kinds |= {
        "ClusterRole": "clusterrole.rbac.authorization.k8s.io",
        "ClusterRoleBinding": "clusterrolebinding.rbac.authorization.k8s.io",
        "ValidatingAdmissionPolicy": "validatingadmissionpolicy.admissionregistration.k8s.io",
        "ValidatingAdmissionPolicyBinding": "validatingadmissionpolicybinding.admissionregistration.k8s.io",
    }
    return sorted(
        f"{kinds[r['outputs']['kind']]}/{r['outputs']['metadata']['name']}"
        for r in state.get("resources") or []
        if r["type"].startswith("kubernetes:") and r.get("outputs", {}).get("kind") in kinds
    )


def test_an_interrupted_up_converges_when_run_again_with_no_orphan_or_duplicate(project, measured):
    """`pulumi up` sent Ctrl-C (SIGINT to its process group) while the DaemonSet rolls out, then run again.

    The stack's one pool is the real node's, pulling two fresh images through the slow registry so
    that the rollout lasts long enough to be interrupted.
    """
    p = project["project"]
    with SlowRegistry(Path(LOCAL), REGISTRY, 2 * 1024 * 1024) as slow:
        images = [f"{slow.host}/{push_unique_image(REGISTRY, 16)}" for _ in range(2)]
        pool = {"name": GATED_POOL, "provider": "existing", "labels": {POOL_LABEL: GATED_POOL}, "images": images}
        config = {"prepull:kubeContext": CONTEXT, "prepull:namespace": INTERRUPTED_NAMESPACE, "prepull:nodePools": [pool]}
        stack_file = p.path / "stacks" / f"Pulumi.{INTERRUPTED}.yaml"
        stack_file.write_text(yaml.safe_dump({"config": config}, sort_keys=False))
        p.pulumi("stack", "init", INTERRUPTED)
        try:
            first = interrupt_up(p, lambda: slow.served_bytes() > 2 * 1024 * 1024)
            assert first.returncode != 0, first.stdout[-3000:]
            assert set(images) - containerd_images(), "the pull had finished: the interrupt came too late to prove anything"
            print(first.stdout[-3000:])  # shown if the test fails: what the CLI said when interrupted
            started = time.monotonic()
            p.pulumi("up", "--stack", INTERRUPTED, "--yes")
            measured("pulumi up interrupted, then run again: converged", time.monotonic() - started)
            assert set(images) <= containerd_images()
            in_cluster, in_state = ours_in_cluster(INTERRUPTED_NAMESPACE), ours_in_state(p, INTERRUPTED)
            assert [n for n in in_cluster if not n.startswith("pod/")] == in_state  # nothing orphaned, nothing twice
            assert len([n for n in in_cluster if n.startswith("pod/")]) == 1, in_cluster  # one pod: the one real node
            p.pulumi("preview", "--stack", INTERRUPTED, "--expect-no-changes")
        finally:
            p.pulumi("destroy", "--stack", INTERRUPTED, "--yes", check=False)
    wait_for("the stack's objects to be gone", lambda: ours_in_cluster(INTERRUPTED_NAMESPACE))
    p.pulumi("stack", "rm", INTERRUPTED, "--yes")


def interrupt_up(p: Project, pulling) -> subprocess.CompletedProcess:
    """`pulumi up --yes`, sent SIGINT (a user's Ctrl-C) once ``pulling()`` and its DaemonSet exists; its result."""
    cmd = ["pulumi", "up", "--stack", INTERRUPTED, "--yes", "--color", "never"]
    env = {**p.env, "PULUMI_CONFIG_PASSPHRASE": ""}
    proc = subprocess.Popen(cmd, cwd=p.path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        ds = lambda: kubectl("get", "daemonsets", "-n", INTERRUPTED_NAMESPACE, "-o", "name", check=False).stdout  # noqa: E731
        wait_for("the DaemonSet to be created and its pull to start", lambda: [] if ds() and pulling() else ["not yet"], 300, 0.5)
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return subprocess.CompletedProcess(cmd, proc.returncode, out, "")


def bad_stack(p: Project, name: str, fault: str) -> str:
    """Stack ``name``: the dev stack's file with ``fault``; returns our expected message.

    ``taint``: the batch pool's taint effect misspelt; ``kubeconfig``: a kubeconfig path that names no
    file; ``context``: a context the kubeconfig lacks (the provider lets both through a preview).
    """
    config = yaml.safe_load((p.path / "stacks" / f"Pulumi.{STACK}.yaml").read_text())
    if fault == "taint":
        pool = next(pool for pool in config["config"]["prepull:nodePools"] if pool.get("taints"))
        pool["taints"][0]["effect"] = "NoRun"
        message = f"nodePools.{pool['name']}.taints[0].effect: must be one of 'NoSchedule', 'PreferNoSchedule', 'NoExecute' (got 'NoRun')"
    elif fault == "kubeconfig":
        config["config"]["prepull:kubeconfig"] = "/nonexistent/kubeconfig"
        message = (
            "prepull:kubeconfig: names no readable file: give the path of a kubeconfig file, or its contents "
            "(got '/nonexistent/kubeconfig')"
        )
    else:
        config["config"]["prepull:kubeContext"] = "no-such-context"
        kubeconfig = os.environ["KUBECONFIG"]
        contexts = sorted(c["name"] for c in yaml.safe_load(Path(kubeconfig).read_text())["contexts"])
        message = (
            f"prepull:kubeContext: is not a context of $KUBECONFIG ({kubeconfig}); "
            f"its contexts: {', '.join(contexts)} (got 'no-such-context')"
        )
    (p.path / "stacks" / f"Pulumi.{name}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return message


@pytest.mark.parametrize("fault", ["taint", "kubeconfig", "context"])
@pytest.mark.parametrize("command", ["preview", "up"])
def test_a_bad_stack_file_fails_with_one_line_and_registers_nothing(project, command, fault):
    p = project["project"]
    name = f"bad-{command}-{fault}"
    message = bad_stack(p, name, fault)
    p.pulumi("stack", "select", "--create", name)
    try:
        done = p.pulumi(command, "--stack", name, check=False)
        assert done.returncode != 0
        # Our line, once per place the CLI lists errors (the live view and Diagnostics), and no other error.
        errors = [line.strip() for line in done.stdout.splitlines() if "error:" in line]
        assert errors and all(line.endswith(f"error: {message}") for line in errors), done.stdout[-4000:]
        assert_no_traceback(done.stdout)
        assert [t for t in p.resource_types(name) if t != "pulumi:pulumi:Stack"] == []
    finally:
        p.pulumi("stack", "rm", name, "--yes", "--force", check=False)
        p.pulumi("stack", "select", STACK, check=False)


USER_PROGRAM = """\
import pulumi_kubernetes as k8s
import pulumi
from prepull import ImagePrePuller

provider = k8s.Provider("k8s", context={context!r})
ImagePrePuller("cache", {{"images": ["docker.io/library/busybox:1.37.0-musl", "busybox:1.37.0-musl"]}},
               opts=pulumi.ResourceOptions(providers=[provider]))
"""


def test_the_component_in_a_users_own_program_fails_with_one_line(project, tmp_path):
    """A user's program (its own project and venv with prepull installed) with a duplicate image: our line, no traceback."""
    p = project["project"]
    user = tmp_path / "user"
    user.mkdir()
    (user / "Pulumi.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "user-program",
                "runtime": {"name": "python", "options": {"toolchain": "pip", "virtualenv": "venv"}},
                "backend": {"url": "file://./state"},
            }
        )
    )
    (user / "__main__.py").write_text(USER_PROGRAM.format(context=CONTEXT))
    (user / "state").mkdir()
    # The user installs prepull (here from the copy, as `pip install "prepull @ git+..."` would from the repository).
    p.sh(f"cd {user} && python3 -m venv venv && venv/bin/pip install -q -r {p.path}/requirements.txt {p.path}")
    done = p.sh(
        f"cd {user} && export PULUMI_CONFIG_PASSPHRASE= && pulumi stack init dev && pulumi up --stack dev --color never", check=False
    )
    assert done.returncode != 0
    assert "images[1]: duplicate of images[0]" in done.stdout, done.stdout[-4000:]
    assert_no_traceback(done.stdout)
    state = json.loads(p.sh(f"cd {user} && PULUMI_CONFIG_PASSPHRASE= pulumi stack export --stack dev").stdout)
    assert [r["type"] for r in state["deployment"].get("resources") or [] if r["type"] != "pulumi:pulumi:Stack"] == []


def test_the_policy_pack_runs_as_the_readme_says(project):
    """The README's two policy lines (make the pack's venv, preview with the pack), the pack started by the host's RunPlugin.

    The dev stack passes the dev config; test_policy_cli.py shows the same route denying and remediating.
    """
    p = project["project"]
    script = "export PULUMI_CONFIG_PASSPHRASE=\n" + "\n".join(readme_block(POLICY_HEADING))
    done = p.sh(script)
    # The CLI lists each pack it ran, with where it came from: the folder, started by the host.
    assert "✅ prepull-policies@v0.1.0 (local: policies)" in done.stdout, done.stdout[-3000:]
    assert_no_traceback(done.stdout)


def test_destroy_leaves_nothing_of_ours(project):
    p = project["project"]
    namespace = current_spec(p.path).namespace
    p.pulumi("destroy", "--stack", STACK)
    project["destroyed"] = True
    wait_for(
        f"namespace {namespace} to be deleted",
        lambda: [] if "NotFound" in kubectl("get", "namespace", namespace, check=False).stderr else [f"{namespace} still exists"],
    )
    assert [t for t in p.resource_types(STACK) if t != "pulumi:pulumi:Stack"] == []
    assert labelled_objects() == []
