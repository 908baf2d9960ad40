"""End to end on a real cluster: `pulumi up` the dev stack with the Automation API, then check the nodes.

Needs the `pulumi` CLI, `kubectl`, and a reachable cluster created from
examples/kind-dev.yaml (context ``$PREPULL_E2E_CONTEXT``, default
``kind-prepull``; for a ``kind-*`` context the `kind` CLI too). Without them
every test here is reported as skipped with the reason. See docs/e2e.md.

The project is copied into a temporary directory so the checkout is never
touched: state goes to a local file backend there, and config changes rewrite
only the copy's stack file. The tests run in order and share one stack:
deploy, the new-node gate lifted its taint (and its identity can touch no other
node), a node joins the pool, the image list changes, destroy.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from pulumi import automation as auto

ROOT = Path(__file__).resolve().parents[2]
CONTEXT = os.environ.get("PREPULL_E2E_CONTEXT", "kind-prepull")
STACK = "dev"
SPARE_LABEL = "prepull.dev/spare"
POOL_LABEL = "prepull.dev/pool"
ADDED_IMAGE = "docker.io/library/alpine:3.21"
GATED_POOL = "gated"
# The kubelet reports at most this many images in node.status.images (nodeStatusMaxImages, default 50),
# largest first: on a busy node a small image may be missing from the list although it is present.
NODE_STATUS_MAX_IMAGES = 50
WAIT_SECONDS = int(os.environ.get("PREPULL_E2E_WAIT", "300"))


def _skip_reason():
    """Why the e2e tests cannot run here, or None. Cheap: PATH lookups and one short kubectl call."""
    tools = ["pulumi", "kubectl"] + (["kind"] if CONTEXT.startswith("kind-") else [])
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        return f"e2e needs {', '.join(missing)} on PATH, not found (see docs/e2e.md)"
    try:
        subprocess.run(["kubectl", "--context", CONTEXT, "get", "nodes", "-o", "name"], check=True, capture_output=True, timeout=10)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
        return (
            f"no reachable cluster for kubectl context {CONTEXT!r} ({type(err).__name__}); create one with "
            "`kind create cluster --name prepull --config examples/kind-dev.yaml` (see docs/e2e.md)"
        )
    return None


SKIP_REASON = _skip_reason()
# In the e2e workflow a skip would look like a pass: there PREPULL_E2E_REQUIRED=1 turns it into a failure.
REQUIRED = os.environ.get("PREPULL_E2E_REQUIRED") == "1"
pytestmark = [pytest.mark.e2e, pytest.mark.skipif(SKIP_REASON is not None and not REQUIRED, reason=SKIP_REASON or "")]


# ---------------------------------------------------------------- kubectl helpers


def kubectl(*args, check=True) -> subprocess.CompletedProcess:
    return subprocess.run(["kubectl", "--context", CONTEXT, *args], check=check, capture_output=True, text=True, timeout=120)


def kget(*args) -> dict:
    return json.loads(kubectl("get", *args, "-o", "json").stdout)


def wait_for(what: str, problems, timeout: int = WAIT_SECONDS, every: float = 5.0) -> None:
    """Poll ``problems()`` until it returns an empty list; fail naming ``what`` and the last problems."""
    deadline = time.monotonic() + timeout
    last: list = []
    while time.monotonic() < deadline:
        last = problems()
        if not last:
            return
        time.sleep(every)
    pytest.fail(f"timed out after {timeout}s waiting for {what}: {last}")


def nodes_with(label: str) -> list:
    return sorted(n["metadata"]["name"] for n in kget("nodes", "-l", label)["items"])


def node_images(node: str) -> list:
    """``node.status.images``: a list of {names, sizeBytes}, capped by the kubelet (NODE_STATUS_MAX_IMAGES)."""
    return kget("node", node).get("status", {}).get("images") or []


def node_taints(node: str) -> list:
    return kget("node", node).get("spec", {}).get("taints") or []


def pull_problems(namespace: str, daemon_set: str, node: str, images: list) -> list:
    """What is still wrong with the pre-pull pod on ``node``; empty once it proves every image is there.

    The proof is the pod itself: it has an init container per image, every init
    container (the pulls, and in a gated pool the untaint step) terminated with
    exit code 0, and the pod is Ready. A pull container exits 0 only once the
    kubelet pulled its image. ``node.status.images`` is an extra check only while
    the node lists fewer than NODE_STATUS_MAX_IMAGES images: past the cap the
    kubelet keeps the largest ones, so a small image may be absent from a full list.
    """
    pods = [p for p in kget("pods", "-n", namespace, "-l", f"prepull.dev/daemonset={daemon_set}")["items"] if p["spec"].get("nodeName") == node]
    if len(pods) != 1:
        return [f"{len(pods)} pods of {daemon_set} on {node}"]
    pod = pods[0]
    name = pod["metadata"]["name"]
    if pod["metadata"].get("deletionTimestamp"):
        return [f"{name} is terminating"]
    problems = []
    init_containers = pod["spec"].get("initContainers") or []
    statuses = {s["name"]: s for s in pod.get("status", {}).get("initContainerStatuses") or []}
    pulled = {c["image"] for c in init_containers}
    problems += [f"{name} has no init container for {image}" for image in images if image not in pulled]
    for container in init_containers:
        state = statuses.get(container["name"], {}).get("state") or {}
        terminated = state.get("terminated")
        if not terminated or terminated.get("exitCode") != 0:
            problems.append(f"init container {container['name']} ({container['image']}) not terminated with exit 0: {state}")
    conditions = {c["type"]: c.get("status") for c in pod.get("status", {}).get("conditions") or []}
    if conditions.get("Ready") != "True":
        problems.append(f"{name} not Ready (phase {pod.get('status', {}).get('phase')}, conditions {conditions})")
    listed = node_images(node)
    if len(listed) < NODE_STATUS_MAX_IMAGES:
        # The list is complete (below the cap): every image must be in it. It is refreshed with the
        # node status (every few seconds to a minute), hence the polling.
        names = {n for image in listed for n in image.get("names") or []}
        missing = [i for i in images if i not in names]
        if missing:
            problems.append(f"{node} does not report {missing} in status.images yet")
    return problems


def assert_pool_has_images(spec, pool_name: str, images: list) -> None:
    nodes = nodes_with(f"{POOL_LABEL}={pool_name}")
    assert nodes, f"no node labelled {POOL_LABEL}={pool_name}: was the cluster created from examples/kind-dev.yaml?"
    for node in nodes:
        wait_for(f"{images} on {node}", lambda node=node: pull_problems(spec.namespace, pool_name, node, images))


# ---------------------------------------------------------------- the stack


def expected_images(spec) -> dict:
    """Pool name -> normalised images, as the core computes them (what the init containers must pull)."""
    from prepull.images import parse_image

    return {p.name: [parse_image(i, "image").canonical for i in p.images] for p in spec.pools}


def current_spec(project: Path):
    from prepull.cli import stack_config
    from prepull.pools import load_stack

    return load_stack(stack_config(project / "stacks" / f"Pulumi.{STACK}.yaml"))


def copy_project(dest: Path, backend: Path) -> Path:
    """The project in ``dest``, with its backend pointed at ``backend`` and this interpreter's virtualenv."""
    shutil.copytree(ROOT / "components", dest / "components", ignore=shutil.ignore_patterns("venv", "__pycache__", "*.egg-info"))
    (dest / "stacks").mkdir()
    shutil.copy2(ROOT / "stacks" / f"Pulumi.{STACK}.yaml", dest / "stacks")
    for name in ("__main__.py", "requirements.txt"):
        shutil.copy2(ROOT / name, dest / name)
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    project["backend"] = {"url": backend.as_uri()}
    options = project["runtime"].setdefault("options", {})
    if sys.prefix != sys.base_prefix:
        # Reuse the virtualenv running the tests: it already has requirements.txt installed.
        options["virtualenv"] = sys.prefix
    else:
        options.pop("virtualenv", None)
    (dest / "Pulumi.yaml").write_text(yaml.safe_dump(project, sort_keys=False))
    return dest


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    """The dev stack, up on the cluster; destroyed (and the spare node unlabelled) afterwards whatever happened."""
    if SKIP_REASON:
        pytest.fail(f"PREPULL_E2E_REQUIRED=1 but {SKIP_REASON}", pytrace=False)
    base = tmp_path_factory.mktemp("e2e")
    backend = base / "state"
    backend.mkdir()
    project = copy_project(base / "project", backend)
    env = {
        "PULUMI_CONFIG_PASSPHRASE": "prepull-e2e",
        "PULUMI_BACKEND_URL": backend.as_uri(),
        "PULUMI_SKIP_UPDATE_CHECK": "true",
    }
    stack = auto.create_or_select_stack(STACK, work_dir=str(project), opts=auto.LocalWorkspaceOptions(env_vars=env))
    stack.set_config("prepull:kubeContext", auto.ConfigValue(CONTEXT))
    state = {"stack": stack, "project": project, "destroyed": False, "spare": None, "denied_taint_on": None}
    # The gated worker registers with the startup taint (examples/kind-dev.yaml), and the gate removes
    # it for good. On a cluster an earlier run already used, put it back, as a new node would have it:
    # otherwise "the taint is gone" would prove nothing.
    gate = gate_taint(current_spec(project))
    for node in nodes_with(f"{POOL_LABEL}={GATED_POOL}"):
        if not any(t["key"] == gate["key"] for t in node_taints(node)):
            kubectl("taint", "node", node, f"{gate['key']}:{gate['effect']}")
    try:
        state["up"] = stack.up(on_output=print, color="never")
        yield state
    finally:
        if state["spare"]:
            kubectl("label", "node", state["spare"], f"{POOL_LABEL}-", check=False)
        if state["denied_taint_on"]:
            # Only there if the admission policy failed to deny it: do not leave it behind.
            kubectl("taint", "node", state["denied_taint_on"], f"{DENIED_TAINT_KEY}-", check=False)
        if not state["destroyed"]:
            stack.destroy(on_output=print, color="never")
        stack.workspace.remove_stack(STACK)


def test_up_pulls_every_image_on_every_selected_node(deployment):
    up = deployment["up"]
    assert up.summary.result == "succeeded"
    spec = current_spec(deployment["project"])
    images = expected_images(spec)
    assert set(images) == {"general", "batch", GATED_POOL}
    for pool in spec.pools:
        # The program's `ready` output resolves only after pulumi-kubernetes awaited the rollout.
        assert up.outputs[pool.name].value["ready"] is True
        assert up.outputs[pool.name].value["images"] == images[pool.name]
        assert_pool_has_images(spec, pool.name, images[pool.name])
    # The batch pool tolerates its taint; the general pool's pods never land on the batch node.
    general_pods = kget("pods", "-n", spec.namespace, "-l", "prepull.dev/daemonset=general")["items"]
    assert {p["spec"]["nodeName"] for p in general_pods} == set(nodes_with(f"{POOL_LABEL}=general"))


def gate_taint(spec) -> dict:
    pool = next(p for p in spec.pools if p.name == GATED_POOL)
    assert pool.startup_gate and pool.gate_taint, f"pool {GATED_POOL!r} of stacks/Pulumi.{STACK}.yaml has no startupGate"
    return pool.gate_taint


DENIED_TAINT_KEY = "prepull.dev/e2e-must-be-denied"


def test_the_gate_lifts_the_startup_taint_and_its_identity_can_touch_no_other_node(deployment):
    spec = current_spec(deployment["project"])
    taint = gate_taint(spec)
    gated = nodes_with(f"{POOL_LABEL}={GATED_POOL}")
    assert gated, f"no node labelled {POOL_LABEL}={GATED_POOL}: was the cluster created from examples/kind-dev.yaml?"
    for node in gated:
        # The untaint step is the pod's last init container: it ran only after every pull exited 0.
        images = expected_images(spec)[GATED_POOL]
        wait_for(f"the pre-pull pod on {node}", lambda node=node: pull_problems(spec.namespace, GATED_POOL, node, images))
        wait_for(
            f"the startup taint {taint['key']} to be removed from {node}",
            lambda node=node: [t for t in node_taints(node) if t["key"] == taint["key"]],
        )
    # Least privilege. RBAC lets the untaint identity patch any node (it cannot say "my node") ...
    identity = f"system:serviceaccount:{spec.namespace}:{GATED_POOL}-untaint"
    assert kubectl("auth", "can-i", "patch", "nodes", f"--as={identity}", check=False).stdout.strip() == "yes"
    # ... so what stops it is the ValidatingAdmissionPolicy: it admits a node update only from a token whose
    # node-name extra (authentication.kubernetes.io/node-name) names that node. `kubectl --as` impersonates
    # the username without any extra, so every node update by this identity, here to another node, must be
    # denied by the policy; a denial from RBAC or anything else would not prove the policy works.
    other = next(n for n in nodes_with(POOL_LABEL) if n not in gated)
    deployment["denied_taint_on"] = other
    out = kubectl("taint", "node", other, f"{DENIED_TAINT_KEY}=x:NoSchedule", f"--as={identity}", check=False)
    assert out.returncode != 0, f"the untaint identity tainted {other}: {out.stdout}"
    policy = f"prepull-untaint.{spec.namespace}.{GATED_POOL}"
    assert policy in out.stderr and "denied" in out.stderr, out.stderr
    assert "the pre-puller may only change the node its own pod runs on" in out.stderr, out.stderr
    assert not any(t["key"] == DENIED_TAINT_KEY for t in node_taints(other))
    deployment["denied_taint_on"] = None


def test_a_node_joining_the_pool_gets_the_images(deployment):
    # kind cannot add a node to a running cluster. What a real new node does from the DaemonSet's point of
    # view is appear with the pool's labels; labelling the spare worker into the pool is exactly that event.
    spares = [n for n in nodes_with(SPARE_LABEL) if n not in nodes_with(POOL_LABEL)]
    assert spares, f"no worker labelled {SPARE_LABEL} without a pool: create the cluster from examples/kind-dev.yaml"
    spare = spares[0]
    spec = current_spec(deployment["project"])
    images = expected_images(spec)["general"]
    deployment["spare"] = spare
    kubectl("label", "node", spare, f"{POOL_LABEL}=general")
    wait_for(f"the pre-pull pod on {spare}", lambda: pull_problems(spec.namespace, "general", spare, images))
    ds = kget("daemonset", "-n", spec.namespace, "general")
    assert ds["status"]["desiredNumberScheduled"] == len(nodes_with(f"{POOL_LABEL}=general")) == 2


def test_changing_the_image_list_rolls_out_to_every_node(deployment):
    stack, project = deployment["stack"], deployment["project"]
    spec_before = current_spec(project)
    hashes_before = {
        p.name: kget("daemonset", "-n", spec_before.namespace, p.name)["spec"]["template"]["metadata"]["annotations"]["prepull.dev/images-hash"]
        for p in spec_before.pools
    }
    stack.set_config(f"prepull:images[{len(spec_before.images)}]", auto.ConfigValue(ADDED_IMAGE), path=True)
    up = stack.up(on_output=print, color="never")
    assert up.summary.result == "succeeded"
    assert up.summary.resource_changes.get("update", 0) >= len(spec_before.pools)
    spec = current_spec(project)
    images = expected_images(spec)
    for pool in spec.pools:
        assert ADDED_IMAGE in images[pool.name]
        ds = kget("daemonset", "-n", spec.namespace, pool.name)
        assert ds["spec"]["template"]["metadata"]["annotations"]["prepull.dev/images-hash"] != hashes_before[pool.name]
        status = ds["status"]
        assert status["observedGeneration"] >= ds["metadata"]["generation"]
        assert status["updatedNumberScheduled"] == status["desiredNumberScheduled"] == status["numberReady"]
        assert_pool_has_images(spec, pool.name, images[pool.name])
    # The rolled pod's untaint step found the taint already gone and succeeded (its init container
    # exited 0 above); nothing put the taint back.
    key = gate_taint(spec)["key"]
    for node in nodes_with(f"{POOL_LABEL}={GATED_POOL}"):
        assert not any(t["key"] == key for t in node_taints(node)), node


def test_destroy_removes_everything(deployment):
    stack = deployment["stack"]
    namespace = current_spec(deployment["project"]).namespace
    result = stack.destroy(on_output=print, color="never")
    deployment["destroyed"] = True
    assert result.summary.result == "succeeded"
    wait_for(
        f"namespace {namespace} to be deleted",
        lambda: [] if "NotFound" in kubectl("get", "namespace", namespace, check=False).stderr else [f"namespace {namespace} still exists"],
    )
    left = [r["urn"] for r in stack.export_stack().deployment.get("resources") or [] if r["type"].startswith("kubernetes:")]
    assert left == []
