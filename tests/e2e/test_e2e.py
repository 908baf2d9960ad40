"""End to end on a real cluster: `pulumi up` the dev stack with the Automation API, then check the nodes.

Two clusters are supported (docs/e2e.md):

- **the local cluster** of tests/cluster (``. DIR/env`` sets ``PREPULL_TEST_CLUSTER``): a real
  kubelet node on containerd, pulling from a loopback registry, plus kwok nodes, which are
  *simulated* (labelled ``prepull.dev/simulated=true``): they run nothing and pull nothing, so
  only the real node's images are checked in containerd and in ``node.status.images``;
- **kind**, created from examples/kind-dev.yaml (context ``$PREPULL_E2E_CONTEXT``, default
  ``kind-prepull``), where every node is real.

The program runs *inline* (the stack program's ``main`` in this process, served by the SDK's
own language server), so no ``pulumi-language-python`` host is needed: the proxy these
machines build from does not serve it (docs/e2e.md). The CLI, the engine, the Kubernetes
provider and the cluster are the real ones. Without the tools or a cluster every test here is
reported as skipped with the reason.

The project is copied into a temporary directory so the checkout is never touched: state goes
to a local file backend there, and config changes rewrite only the copy's stack file. The tests
run in order and share one stack: deploy, the new-node gate lifted its taint before a workload
could schedule (and its identity can touch no other node), a node joins the pool, the image list
changes, destroy.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
import cluster_env
from cluster_env import CONTEXT, LOCAL, containerd_images, kubectl, marks, unreachable
from pulumi import automation as auto

# The local cluster's containerd (None elsewhere); a module global so the offline helper tests can unset it.
CONTAINERD = cluster_env.CONTAINERD
STACK = "dev"
SPARE_LABEL = "prepull.dev/spare"
POOL_LABEL = "prepull.dev/pool"
SIMULATED_LABEL = "prepull.dev/simulated"
MANAGED_BY = "app.kubernetes.io/managed-by=prepull"
ADDED_IMAGE = "docker.io/library/alpine:3.21"
# The dev stack's distroless image: no shell and no `true` (on the local cluster, a stand-in just as bare).
SHELL_LESS_IMAGE = "gcr.io/distroless/static-debian12:nonroot"
GATED_POOL = "gated"
WORKLOAD_NAMESPACE = "prepull-e2e-workload"
# The kubelet reports at most this many images in node.status.images (nodeStatusMaxImages, default 50),
# largest first: on a busy node a small image may be missing from the list although it is present.
NODE_STATUS_MAX_IMAGES = 50
WAIT_SECONDS = int(os.environ.get("PREPULL_E2E_WAIT", "300"))


SKIP_REASON = unreachable(("pulumi", "kubectl"))
pytestmark = marks(SKIP_REASON)


# ---------------------------------------------------------------- kubectl helpers


def kget(*args) -> dict:
    return json.loads(kubectl("get", *args, "-o", "json").stdout)


def wait_for(what: str, problems, timeout: int = WAIT_SECONDS, every: float = 5.0) -> None:
    """Poll ``problems()`` until it returns an empty list (cluster_env.poll, with this module's default wait)."""
    cluster_env.poll(what, problems, timeout, every)


def nodes_with(label: str) -> list:
    return sorted(n["metadata"]["name"] for n in kget("nodes", "-l", label)["items"])


def node_images(node: str) -> list:
    """``node.status.images``: a list of {names, sizeBytes}, capped by the kubelet (NODE_STATUS_MAX_IMAGES)."""
    return kget("node", node).get("status", {}).get("images") or []


def node_taints(node: str) -> list:
    return kget("node", node).get("spec", {}).get("taints") or []


def simulated(node: str) -> bool:
    """A kwok node: the API shows a Ready pod with every init container exited 0, but nothing ran or was pulled."""
    return kget("node", node)["metadata"].get("labels", {}).get(SIMULATED_LABEL) == "true"


def pull_problems(namespace: str, daemon_set: str, node: str, images: list) -> list:
    """What is still wrong with the pre-pull pod on ``node``; empty once it proves every image is there.

    The proof is the pod itself: it has an init container per image, every init
    container (the pulls, and in a gated pool the untaint step) terminated with
    exit code 0, and the pod is Ready. A pull container exits 0 only once the
    kubelet pulled its image. On a real node two more checks follow: the local
    cluster's containerd holds every image, and ``node.status.images`` lists them
    while it holds fewer than NODE_STATUS_MAX_IMAGES (past the cap the kubelet keeps
    the largest ones, so a small image may be absent from a full list). A
    simulated (kwok) node gets neither: kwok only writes the pod's status.
    """
    pods = [
        p for p in kget("pods", "-n", namespace, "-l", f"prepull.dev/daemonset={daemon_set}")["items"] if p["spec"].get("nodeName") == node
    ]
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
    if not simulated(node):
        problems += real_node_problems(node, images)
    return problems


def real_node_problems(node: str, images: list) -> list:
    problems = []
    if CONTAINERD:
        held = containerd_images()
        missing = [i for i in images if i not in held]
        if missing:
            problems.append(f"containerd of {node} does not hold {missing}")
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
    assert nodes, f"no node labelled {POOL_LABEL}={pool_name}: was the cluster created by tests/cluster/up or from examples/kind-dev.yaml?"
    for node in nodes:
        wait_for(f"{images} on {node}", lambda node=node: pull_problems(spec.namespace, pool_name, node, images))


# ---------------------------------------------------------------- the stack


def expected_images(spec) -> dict:
    """Pool name -> normalised images, as the core computes them (what the init containers must pull)."""
    return {p.name: [ref.canonical for ref in p.images] for p in spec.pools}


def current_spec(project: Path):
    from prepull.cli.common import stack_config
    from prepull.stack.pools import load_stack

    return load_stack(stack_config(project / "stacks" / f"Pulumi.{STACK}.yaml"))


def copy_project(dest: Path, backend: Path) -> Path:
    """The project in ``dest`` (cluster_env.copy_project), adapted to the local cluster.

    On the local cluster the one real node is the gated pool's, so the copy's gated pool also
    pulls every other pool's images: every image of the stack, the shell-less one included, is
    then really pulled by a kubelet (the other pools' nodes are simulated).
    """

    def gated_pulls_everything(config: dict) -> None:
        pools = config["prepull:nodePools"]
        others = [image for pool in pools if pool["name"] != GATED_POOL for image in pool.get("images") or []]
        next(p for p in pools if p["name"] == GATED_POOL)["images"] = others

    return cluster_env.copy_project(dest, STACK, backend, gated_pulls_everything if LOCAL else None)


def workload_pod(spec, taint: dict) -> dict:
    """A plain workload for the gated pool: it tolerates nothing, so it may schedule only once the taint is gone."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "after-the-gate", "namespace": WORKLOAD_NAMESPACE},
        "spec": {
            "nodeSelector": {POOL_LABEL: GATED_POOL},
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 0,
            "containers": [
                {
                    "name": "app",
                    "image": expected_images(spec)[GATED_POOL][0],
                    "command": ["sleep", "3600"],
                    "resources": {"limits": {"cpu": "50m", "memory": "32Mi"}},
                }
            ],
        },
    }


def retaint_gated_nodes(spec) -> None:
    """Give the gated nodes their startup taint, as a new node registers with it.

    The gate removes it for good; on a cluster an earlier run already used, the taint is put
    back, otherwise "the taint is gone" would prove nothing.
    """
    gate = gate_taint(spec)
    for node in nodes_with(f"{POOL_LABEL}={GATED_POOL}"):
        if not any(t["key"] == gate["key"] for t in node_taints(node)):
            kubectl("taint", "node", node, f"{gate['key']}:{gate['effect']}")


def pending_for_taint(pod: str) -> list:
    """Empty once the scheduler reported ``pod`` unschedulable because of an untolerated taint."""
    status = kget("pod", "-n", WORKLOAD_NAMESPACE, pod).get("status", {})
    scheduled = next((c for c in status.get("conditions") or [] if c["type"] == "PodScheduled"), {})
    if scheduled.get("status") == "False" and "untolerated taint" in scheduled.get("message", ""):
        return []
    return [f"{pod} is not (yet) unschedulable for a taint: {scheduled}"]


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
    opts = auto.LocalWorkspaceOptions(work_dir=str(project), env_vars=env)
    stack = auto.create_or_select_stack(STACK, project_name="prepull", program=cluster_env.stack_program, opts=opts)
    stack.set_config("prepull:kubeContext", auto.ConfigValue(CONTEXT))
    state = {"stack": stack, "project": project, "destroyed": False, "spare": None, "denied_taint_on": None}
    spec = current_spec(project)
    retaint_gated_nodes(spec)
    # A namespace left by an earlier run (its pod ran): start from none, as a new workload would.
    kubectl("delete", "namespace", WORKLOAD_NAMESPACE, "--ignore-not-found", "--wait=true")
    kubectl("create", "namespace", WORKLOAD_NAMESPACE)
    subprocess.run(
        ["kubectl", "--context", CONTEXT, "apply", "-f", "-"],
        input=json.dumps(workload_pod(spec, gate_taint(spec))),
        check=True,
        capture_output=True,
        text=True,
    )
    try:
        # Before the pre-puller exists, the workload must wait for the taint.
        wait_for("the workload pod to be held back by the startup taint", lambda: pending_for_taint("after-the-gate"), timeout=60, every=1)
        state["up"] = stack.up(on_output=print, color="never")
        yield state
    finally:
        kubectl("delete", "namespace", WORKLOAD_NAMESPACE, "--wait=true", check=False)
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
    # At least one real node pulled the shell-less image: its pull container ran the injected no-op.
    real = [n for n in nodes_with(POOL_LABEL) if not simulated(n)]
    pulled_for_real = [
        pool.name
        for pool in spec.pools
        for n in nodes_with(f"{POOL_LABEL}={pool.name}")
        if n in real and SHELL_LESS_IMAGE in images[pool.name]
    ]
    assert pulled_for_real, f"no real node's pool pulls {SHELL_LESS_IMAGE} (real nodes: {real})"


def gate_taint(spec) -> dict:
    pool = next(p for p in spec.pools if p.name == GATED_POOL)
    assert pool.startup_gate and pool.gate_taint, f"pool {GATED_POOL!r} of stacks/Pulumi.{STACK}.yaml has no startupGate"
    return pool.gate_taint


DENIED_TAINT_KEY = "prepull.dev/e2e-must-be-denied"


def untaint_started_at(spec, node: str) -> str:
    pod = next(
        p
        for p in kget("pods", "-n", spec.namespace, "-l", f"prepull.dev/daemonset={GATED_POOL}")["items"]
        if p["spec"].get("nodeName") == node
    )
    status = next(s for s in pod["status"]["initContainerStatuses"] if s["name"] == "untaint")
    return status["state"]["terminated"]["startedAt"]


def assert_workload_scheduled_after_the_gate(spec, gated: list) -> None:
    """The workload created before `pulumi up` waited for the taint; it was scheduled only after the untaint step started.

    That step is the last init container: it starts once every pull exited 0, and it is what removes the taint.
    """

    def not_scheduled():
        pod = kget("pod", "-n", WORKLOAD_NAMESPACE, "after-the-gate")
        return [] if pod["spec"].get("nodeName") else ["after-the-gate is not scheduled yet"]

    wait_for("the workload pod to be scheduled", not_scheduled)
    pod = kget("pod", "-n", WORKLOAD_NAMESPACE, "after-the-gate")
    node = pod["spec"]["nodeName"]
    assert node in gated
    scheduled_at = next(c["lastTransitionTime"] for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
    # RFC 3339 UTC timestamps of one format compare as strings; both have one-second resolution.
    assert scheduled_at >= untaint_started_at(spec, node), (scheduled_at, untaint_started_at(spec, node))


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
    assert_workload_scheduled_after_the_gate(spec, gated)
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
        p.name: kget("daemonset", "-n", spec_before.namespace, p.name)["spec"]["template"]["metadata"]["annotations"][
            "prepull.dev/images-hash"
        ]
        for p in spec_before.pools
    }
    global_images = yaml.safe_load((project / "stacks" / f"Pulumi.{STACK}.yaml").read_text())["config"]["prepull:images"]
    stack.set_config(f"prepull:images[{len(global_images)}]", auto.ConfigValue(ADDED_IMAGE), path=True)
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
    assert labelled_objects() == []


def labelled_objects() -> list:
    """Every object of every listable kind, in every namespace, that carries our managed-by label."""
    kinds = kubectl("api-resources", "--verbs=list", "-o", "name").stdout.split()
    # Events copy no labels; leave them out (they also expire on their own).
    kinds = [k for k in kinds if not k.startswith("events")]
    out = kubectl("get", ",".join(kinds), "--all-namespaces", "-l", MANAGED_BY, "-o", "name")
    return out.stdout.split()
