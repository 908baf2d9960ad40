"""``status``'s classification of recorded API objects: every state and reason, the gate, each method.

No cluster: the objects are built in the shape the API returns (tests/status_objects.py), and the
reader talks to a fake client that records each call.
"""

import pytest
import status_objects as so
from status_objects import by_image, one_node, only_node, report

import prepull

from prepull.core.gate import removed_taint, untaint_container
from prepull.status.report import FAILED, NOT_SCHEDULED, PRESENT, PULLING


# ---------------------------------------------------------------- present and pulling


def test_every_init_container_exited_zero_is_present_everywhere():
    ds = so.daemon_set()
    rep, _ = one_node(ds)
    node = only_node(rep)
    assert node.state == PRESENT and rep.state == PRESENT
    assert [(i.role, i.state) for i in node.images] == [("helper", PRESENT), ("pull", PRESENT), ("pull", PRESENT)]
    assert node.pulls_done == 2 and rep.daemon_sets[0].done == 1
    assert list(by_image(node)) == [so.PYTHON, so.UV]


def test_waiting_running_and_queued_are_pulling():
    ds = so.daemon_set()
    helper, python, uv = so.init_names(ds)
    rep, _ = one_node(ds, [so.terminated(2, 3), so.waiting("PodInitializing"), so.waiting("PodInitializing")])
    images = by_image(only_node(rep))
    assert (images[so.PYTHON].state, images[so.PYTHON].reason) == (PULLING, "PodInitializing")
    # Its turn has not come: the kubelet pulls one init container's image after the other.
    assert (images[so.UV].state, images[so.UV].reason, images[so.UV].message) == (PULLING, "Queued", f"after {python}")
    assert rep.state == PULLING

    rep, _ = one_node(ds, [so.terminated(2, 3), so.terminated(4, 5), so.running(6)])
    uv_status = by_image(only_node(rep))[so.UV]
    assert (uv_status.state, uv_status.reason) == (PULLING, "Running")


def test_a_pod_of_an_older_revision_is_still_pulling_the_new_image():
    old = so.daemon_set(images=[so.PYTHON])
    new = so.daemon_set(images=[so.PYTHON, so.UV])
    rep = report([new], [so.pod(old, "n1")], [so.node("n1")])
    images = by_image(only_node(rep))
    assert images[so.PYTHON].state == PRESENT
    assert (images[so.UV].state, images[so.UV].reason) == (PULLING, "OldRevision")


# ---------------------------------------------------------------- failed, with the kubelet's message


@pytest.mark.parametrize(
    "reason, message",
    [
        ("ErrImagePull", so.NOT_FOUND),
        ("ErrImagePull", 'failed to pull and unpack image "ghcr.io/astral-sh/uv:0.5.11": 401 Unauthorized'),
        ("ErrImagePull", "no match for platform in manifest: not found"),
        ("InvalidImageName", 'Failed to apply default image tag "ghcr.io/Astral/uv": couldn\'t parse image name: invalid reference format'),
        ("ImagePullBackOff", f'Back-off pulling image "{so.UV}": ErrImagePull: {so.NOT_FOUND}'),
    ],
)
def test_pull_errors_are_failed_with_the_kubelets_reason_and_message(reason, message):
    ds = so.daemon_set()
    rep, _ = one_node(ds, [so.terminated(2, 3), so.terminated(4, 5), so.waiting(reason, message)])
    uv = by_image(only_node(rep))[so.UV]
    assert (uv.state, uv.reason, uv.message) == (FAILED, reason, message)
    assert only_node(rep).state == FAILED and rep.state == FAILED


def test_a_back_off_without_the_error_takes_it_from_the_failed_event():
    """Kubelets before 1.32 say only "Back-off pulling image": the reason is in the Failed event."""
    ds = so.daemon_set()
    uv_container = so.init_names(ds)[2]
    back_off = f'Back-off pulling image "{so.UV}"'
    rep, _ = one_node(
        ds,
        [so.terminated(2, 3), so.terminated(4, 5), so.waiting("ImagePullBackOff", back_off)],
        events_for=lambda p: [so.event(p, uv_container, "Failed", f'Failed to pull image "{so.UV}": {so.NOT_FOUND}')],
    )
    uv = by_image(only_node(rep))[so.UV]
    assert (uv.state, uv.reason, uv.message) == (FAILED, "ImagePullBackOff", f"{back_off}: {so.NOT_FOUND}")


def test_a_non_zero_exit_is_failed_with_its_code_and_message():
    ds = so.daemon_set()
    helper, python, uv = so.init_names(ds)
    exec_error = 'exec: "/.prepull/busybox": stat /.prepull/busybox: no such file or directory'
    rep, _ = one_node(ds, [so.terminated(2, 3), so.terminated(4, 5, code=128, reason="StartError", message=exec_error), so.waiting()])
    images = by_image(only_node(rep))
    assert (images[so.PYTHON].state, images[so.PYTHON].reason, images[so.PYTHON].message) == (
        FAILED,
        "StartError",
        f"exit code 128: {exec_error}",
    )
    assert (images[so.UV].state, images[so.UV].reason) == (PULLING, "Queued")

    # Restarted and backing off: the failure is in lastState.
    rep, _ = one_node(
        ds,
        [so.terminated(2, 3), so.waiting("CrashLoopBackOff", "back-off 10s restarting failed container"), so.waiting()],
        last_states={python: so.terminated(4, 5, code=1)},
    )
    failed = by_image(only_node(rep))[so.PYTHON]
    assert (failed.state, failed.reason) == (FAILED, "Error")
    assert failed.message == "exit code 1 (back-off 10s restarting failed container)"


def test_a_failed_helper_fails_the_node_although_no_pull_failed():
    ds = so.daemon_set()
    rep, _ = one_node(ds, [so.waiting("ErrImagePull", "busybox: not found"), so.waiting(), so.waiting()])
    node = only_node(rep)
    assert node.state == FAILED and node.images[0].role == "helper" and node.images[0].reason == "ErrImagePull"
    assert all(i.state == PULLING and i.reason == "Queued" for i in node.pulls)


# ---------------------------------------------------------------- not scheduled, and not selected


def test_an_untolerated_taint_is_not_scheduled_and_not_waited_for():
    ds = so.daemon_set()
    nodes = [so.node("n1"), so.node("n2", taints=[{"key": "dedicated", "value": "batch", "effect": "NoSchedule"}])]
    rep = report([ds], [so.pod(ds, "n1")], nodes)
    tainted = only_node(rep, "n2")
    assert (tainted.state, tainted.reason, tainted.targeted) == (NOT_SCHEDULED, "UntoleratedTaint", False)
    assert "dedicated=batch:NoSchedule" in tainted.message
    assert all(i.state == NOT_SCHEDULED for i in tainted.images)
    # The DaemonSet controller leaves the node out, so it does not keep the report from being complete.
    assert rep.state == PRESENT and rep.daemon_sets[0].done == 1 and len(rep.daemon_sets[0].targeted) == 1


def test_tolerated_and_daemonset_taints_do_not_explain_a_missing_pod():
    ds = so.daemon_set(tolerations=[{"key": "dedicated", "operator": "Equal", "value": "batch", "effect": "NoSchedule"}])
    taints = [
        {"key": "dedicated", "value": "batch", "effect": "NoSchedule"},
        {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"},  # cordoned: DaemonSet pods tolerate it
        {"key": "spot", "value": "true", "effect": "PreferNoSchedule"},
    ]  # a preference keeps no pod off
    node = only_node(report([ds], [], [so.node("n1", taints=taints)]))
    assert (node.state, node.reason, node.targeted) == (NOT_SCHEDULED, "NoPod", True)
    assert node.message == "no pod yet: the DaemonSet controller has not created one"


def test_a_pending_pod_is_not_scheduled_with_the_schedulers_message():
    ds = so.daemon_set()
    message = "0/4 nodes are available: 1 Too many pods. preemption: 0/4 nodes are available: 1 No preemption victims found."
    condition = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}
    pending = so.pod(ds, "n1", scheduled=False, conditions=[condition])
    rep = report([ds], [pending], [so.node("n1")])
    node = only_node(rep)
    assert (node.state, node.reason, node.message, node.pod) == (NOT_SCHEDULED, "Unschedulable", message, pending["metadata"]["name"])
    assert rep.state == PULLING  # a targeted node without its images: not done


def test_nodes_the_selector_does_not_match_are_not_listed():
    ds = so.daemon_set()
    other = so.node("batch-1", labels={"prepull.dev/pool": "batch"})
    windows = so.node("win-1", labels={"kubernetes.io/os": "windows"})
    rep = report([ds], [so.pod(ds, "n1")], [so.node("n1"), other, windows])
    assert [n.name for n in rep.daemon_sets[0].nodes] == ["n1"]


def test_per_platform_daemonsets_select_by_node_affinity():
    """image_platforms splits the pool by architecture: each node is listed under the one DaemonSet for its arch."""
    args = {"images": [so.PYTHON, so.UV], "node_selector": dict(so.POOL), "image_platforms": {so.UV: ["linux/arm64"]}}
    daemon_sets = [o for o in prepull.manifests(args, "p") if o["kind"] == "DaemonSet"]
    rep = report(daemon_sets, [], [so.node("amd"), so.node("arm", labels={"kubernetes.io/arch": "arm64"})])
    assert {ds.name: ([n.name for n in ds.nodes], ds.images) for ds in rep.daemon_sets} == {
        "p-arm64": (["arm"], (so.PYTHON, so.UV)),
        "p-other": (["amd"], (so.PYTHON,)),
    }


# ---------------------------------------------------------------- the gate


def test_the_gate_reports_whether_the_startup_taint_is_still_on_each_node():
    ds = so.gated_daemon_set()
    names = so.init_names(ds)
    assert names[-1] == "untaint"
    tainted, lifted = so.node("n1", taints=[dict(so.GATE_TAINT)]), so.node("n2")
    pods = [so.pod(ds, "n1", [*so.all_done(ds)[:-1], so.running(9)]), so.pod(ds, "n2")]
    rep = report([ds], pods, [tainted, lifted])
    assert rep.daemon_sets[0].gate_taint == "prepull.dev/not-ready:NoSchedule"
    n1, n2 = only_node(rep, "n1"), only_node(rep, "n2")
    assert (n1.gate.present, n2.gate.present) == (True, False)
    assert n1.state == PULLING and n1.images[-1].role == "untaint" and n1.pulls_done == 2
    assert n2.state == PRESENT


def test_a_denied_untaint_step_is_failed_and_the_taint_stays():
    ds = so.gated_daemon_set()
    denied = (
        'nodes "n1" is forbidden: ValidatingAdmissionPolicy denied request: the pre-puller may only change the node its own pod runs on'
    )
    states = [*so.all_done(ds)[:-1], so.terminated(9, 10, code=1, message=denied)]
    node = only_node(report([ds], [so.pod(ds, "n1", states)], [so.node("n1", taints=[dict(so.GATE_TAINT)])]))
    assert node.state == FAILED and node.gate.present
    assert (node.images[-1].role, node.images[-1].message) == ("untaint", f"exit code 1: {denied}")


def test_an_ungated_daemonset_has_no_gate():
    node = only_node(one_node(so.daemon_set())[0])
    assert node.gate is None


def test_the_gate_taint_is_read_back_from_the_untaint_script():
    taint = {"key": "startup-taint.cluster-autoscaler.kubernetes.io/prepull", "value": "x", "effect": "NoExecute"}
    container = untaint_container(taint, "kubectl")
    assert removed_taint(container) == {"key": taint["key"], "effect": "NoExecute"}
    assert removed_taint({**container, "name": "pull-x"}) is None


# ---------------------------------------------------------------- the pull-retry watchdog (a sidecar)


def retry_daemon_set(**args):
    ds = so.daemon_set(pull_retry_seconds=10, **args)
    assert so.init_names(ds)[:2] == ["prepull-noop", "prepull-retry"]
    return ds


def test_a_running_watchdog_is_present_and_not_counted_as_a_pull():
    ds = retry_daemon_set()
    states = [so.terminated(2, 3), so.running(3), so.terminated(4, 6), so.terminated(7, 9)]
    rep, _ = one_node(ds, states)
    node = only_node(rep)
    assert [(i.role, i.state) for i in node.images] == [("helper", PRESENT), ("retry", PRESENT), ("pull", PRESENT), ("pull", PRESENT)]
    assert node.state == PRESENT and rep.state == PRESENT
    assert node.pulls_done == len(node.pulls) == 2 and list(by_image(node)) == [so.PYTHON, so.UV]
    assert rep.daemon_sets[0].images == (so.PYTHON, so.UV) and [s.image for s in rep.images] == sorted([so.PYTHON, so.UV])
    # The first pull starts once the sidecar runs (not once it ends: it never does): its derived time counts from there.
    images = by_image(node)
    assert (images[so.PYTHON].seconds, images[so.PYTHON].time_source) == (1.0, "derived")
    assert images[so.UV].seconds == 1.0


def test_with_the_watchdog_running_a_pull_under_way_is_pulling_not_queued():
    ds = retry_daemon_set()
    rep, _ = one_node(ds, [so.terminated(2, 3), so.running(3), so.waiting("PodInitializing"), so.waiting("PodInitializing")])
    images = by_image(only_node(rep))
    assert (images[so.PYTHON].state, images[so.PYTHON].reason) == (PULLING, "PodInitializing")
    assert (images[so.UV].state, images[so.UV].reason) == (PULLING, "Queued")
    assert rep.state == PULLING


def test_a_watchdog_whose_image_cannot_be_pulled_fails_the_node_and_queues_the_pulls():
    ds = retry_daemon_set()
    message = 'Back-off pulling image "registry.k8s.io/kubectl:v1.32.3"'
    states = [so.terminated(2, 3), so.waiting("ImagePullBackOff", message), so.waiting("PodInitializing"), so.waiting("PodInitializing")]
    node = only_node(one_node(ds, states)[0])
    retry = node.images[1]
    assert (retry.role, retry.state, retry.reason, retry.message) == ("retry", FAILED, "ImagePullBackOff", message)
    assert node.state == FAILED and node.pulls_done == 0
    assert {(i.state, i.reason, i.message) for i in node.pulls} == {(PULLING, "Queued", "after prepull-retry")}


def test_the_watchdog_beside_the_gate_leaves_the_gate_report_as_it_was():
    ds = retry_daemon_set(startup_taint=dict(so.GATE_TAINT), remove_startup_taint=True)
    assert so.init_names(ds)[-1] == "untaint"
    states = [so.terminated(2, 3), so.running(3), so.terminated(4, 6), so.terminated(7, 9), so.running(10)]
    rep = report([ds], [so.pod(ds, "n1", states)], [so.node("n1", taints=[dict(so.GATE_TAINT)])])
    node = only_node(rep)
    assert rep.daemon_sets[0].gate_taint == "prepull.dev/not-ready:NoSchedule" and node.gate.present
    assert [i.role for i in node.images] == ["helper", "retry", "pull", "pull", "untaint"]
    assert node.state == PULLING and node.pulls_done == 2


# ---------------------------------------------------------------- other methods


def test_docker_socket_reports_the_image_docker_pulls_not_the_cli():
    ds = so.daemon_set(method="docker-socket", pull_policy="Always")
    p = so.pod(ds, "n1", [so.terminated(2, 3), so.waiting("PodInitializing")])
    node = only_node(report([ds], [p], [so.node("n1")]))
    assert [(i.image, i.state) for i in node.images] == [(so.PYTHON, PRESENT), (so.UV, PULLING)]


def test_image_volumes_are_present_once_the_holder_runs_and_failed_by_name():
    ds = so.daemon_set(method="image-volume")
    assert "initContainers" not in ds["spec"]["template"]["spec"]
    p = so.pod(ds, "n1", [])
    p["status"]["containerStatuses"] = [{"name": "holder", "state": so.running(5)}]
    assert [(i.image, i.state) for i in only_node(report([ds], [p], [so.node("n1")])).images] == [(so.PYTHON, PRESENT), (so.UV, PRESENT)]
    p["status"]["containerStatuses"] = [
        {"name": "holder", "state": so.waiting("ErrImagePull", f'failed to pull image "{so.UV}": not found')}
    ]
    states = {i.image: i.state for i in only_node(report([ds], [p], [so.node("n1")])).images}
    assert states == {so.PYTHON: PULLING, so.UV: FAILED}


def test_with_image_volume_and_the_gate_the_helper_is_an_image_volume_of_its_own_not_a_listed_image():
    ds = so.daemon_set("gated", method="image-volume", startup_taint=dict(so.GATE_TAINT), remove_startup_taint=True)
    assert so.init_names(ds) == ["untaint"]  # no copy step: busybox comes from the helper image, mounted
    p = so.pod(ds, "n1", [so.running(9)])
    p["status"]["containerStatuses"] = [{"name": "holder", "state": so.waiting("PodInitializing")}]
    node = only_node(report([ds], [p], [so.node("n1", taints=[dict(so.GATE_TAINT)])]))
    # In the kubelet's order: the image volumes (all pulled before any container starts), then the gate's step.
    roles = [(i.image, i.role, i.state) for i in node.images]
    helper, kubectl = "docker.io/library/busybox:1.37.0-musl", "registry.k8s.io/kubectl:v1.32.3"
    assert roles == [(helper, "helper", PRESENT), (so.PYTHON, "pull", PRESENT), (so.UV, "pull", PRESENT), (kubectl, "untaint", PULLING)]
    assert node.gate.present and node.pulls_done == 2


def test_an_image_volume_the_started_gate_step_does_not_mount_is_not_taken_for_present():
    # As rendered before the step mounted every image volume: it mounted only busybox's. The kubelet
    # then starts it even when another volume's pull failed, so its start proves nothing of those.
    ds = so.daemon_set("gated", method="image-volume", startup_taint=dict(so.GATE_TAINT), remove_startup_taint=True)
    untaint = ds["spec"]["template"]["spec"]["initContainers"][0]
    untaint["volumeMounts"] = [m for m in untaint["volumeMounts"] if not m["name"].startswith("img-")]
    p = so.pod(ds, "n1", [so.terminated(9, 10)])
    p["status"]["containerStatuses"] = [
        {"name": "holder", "state": so.waiting("ErrImagePull", f'failed to pull image "{so.UV}": not found')}
    ]
    states = {i.image: i.state for i in only_node(report([ds], [p], [so.node("n1")])).images}
    assert states[so.UV] == FAILED and states[so.PYTHON] == PULLING
    assert states["docker.io/library/busybox:1.37.0-musl"] == PRESENT


def test_with_image_volume_and_the_gate_a_failed_volume_pull_shows_on_its_image_via_the_gate_step():
    # The gate's step mounts every volume and is the first container the kubelet tries: the failure is its waiting reason.
    ds = so.daemon_set("gated", method="image-volume", startup_taint=dict(so.GATE_TAINT), remove_startup_taint=True)
    p = so.pod(ds, "n1", [so.waiting("ErrImagePull", f'failed to pull image "{so.UV}": not found')])
    p["status"]["containerStatuses"] = [{"name": "holder", "state": so.waiting("PodInitializing")}]
    node = only_node(report([ds], [p], [so.node("n1", taints=[dict(so.GATE_TAINT)])]))
    states = {i.image: (i.state, i.reason) for i in node.images if i.role == "pull"}
    assert states == {so.UV: (FAILED, "ErrImagePull"), so.PYTHON: (PULLING, "Waiting")}
    assert node.state == FAILED and node.gate.present
