"""``python -m prepull status`` on recorded API objects: every state and reason, times, summary, JSON, exit codes, API calls.

No cluster: the objects are built in the shape the API returns (tests/status_objects.py), and the
reader talks to a fake client that records each call.
"""

import io
import json
import re
from pathlib import Path

import pytest
import status_objects as so
import yaml

import prepull

from prepull.cli import status as status_cli
from prepull.cli.main import main
from prepull.core.gate import removed_taint, untaint_container
from prepull.cluster.client import Unreachable
from prepull.status.report import FAILED, NOT_SCHEDULED, PRESENT, PULLING, Snapshot, classify
from prepull.cluster.reader import ClusterReader
from prepull.core.labels import MANAGED_BY_SELECTOR as MANAGED_BY
from prepull.status.times import CACHED, DERIVED, EVENT, go_duration_seconds, parse_pulled
from prepull.status.view import duration, report_json, size, table

ROOT = Path(__file__).resolve().parents[2]


def report(daemon_sets, pods=(), nodes=(), events=()):
    return classify(Snapshot(so.NAMESPACE, list(daemon_sets), list(pods), list(nodes), list(events)))


def only_node(rep, name=None):
    nodes = [n for ds in rep.daemon_sets for n in ds.nodes if name is None or n.name == name]
    assert len(nodes) == 1, nodes
    return nodes[0]


def by_image(node_status):
    return {i.image: i for i in node_status.images if i.role == "pull"}


def one_node(ds, states=None, node_name="n1", events_for=None, **pod_kw):
    """The report for ``ds`` on a single node whose pod's init containers are in ``states``."""
    p = so.pod(ds, node_name, states, **pod_kw)
    events = events_for(p) if events_for else []
    return report([ds], [p], [so.node(node_name)], events), p


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


NOT_FOUND = ('rpc error: code = NotFound desc = failed to pull and unpack image "ghcr.io/astral-sh/uv:0.5.11": '
             'failed to resolve reference "ghcr.io/astral-sh/uv:0.5.11": ghcr.io/astral-sh/uv:0.5.11: not found')


@pytest.mark.parametrize("reason, message", [
    ("ErrImagePull", NOT_FOUND),
    ("ErrImagePull", 'failed to pull and unpack image "ghcr.io/astral-sh/uv:0.5.11": 401 Unauthorized'),
    ("ErrImagePull", 'no match for platform in manifest: not found'),
    ("InvalidImageName", 'Failed to apply default image tag "ghcr.io/Astral/uv": couldn\'t parse image name: invalid reference format'),
    ("ImagePullBackOff", f'Back-off pulling image "{so.UV}": ErrImagePull: {NOT_FOUND}'),
])
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
    rep, _ = one_node(ds, [so.terminated(2, 3), so.terminated(4, 5), so.waiting("ImagePullBackOff", back_off)],
                      events_for=lambda p: [so.event(p, uv_container, "Failed", f'Failed to pull image "{so.UV}": {NOT_FOUND}')])
    uv = by_image(only_node(rep))[so.UV]
    assert (uv.state, uv.reason, uv.message) == (FAILED, "ImagePullBackOff", f"{back_off}: {NOT_FOUND}")


def test_a_non_zero_exit_is_failed_with_its_code_and_message():
    ds = so.daemon_set()
    helper, python, uv = so.init_names(ds)
    exec_error = 'exec: "/.prepull/busybox": stat /.prepull/busybox: no such file or directory'
    rep, _ = one_node(ds, [so.terminated(2, 3), so.terminated(4, 5, code=128, reason="StartError", message=exec_error), so.waiting()])
    images = by_image(only_node(rep))
    assert (images[so.PYTHON].state, images[so.PYTHON].reason, images[so.PYTHON].message) == (FAILED, "StartError", f"exit code 128: {exec_error}")
    assert (images[so.UV].state, images[so.UV].reason) == (PULLING, "Queued")

    # Restarted and backing off: the failure is in lastState.
    rep, _ = one_node(ds, [so.terminated(2, 3), so.waiting("CrashLoopBackOff", "back-off 10s restarting failed container"), so.waiting()],
                      last_states={python: so.terminated(4, 5, code=1)})
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
    taints = [{"key": "dedicated", "value": "batch", "effect": "NoSchedule"},
              {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"},  # cordoned: DaemonSet pods tolerate it
              {"key": "spot", "value": "true", "effect": "PreferNoSchedule"}]      # a preference keeps no pod off
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
        "p-arm64": (["arm"], (so.PYTHON, so.UV)), "p-other": (["amd"], (so.PYTHON,))}


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
    denied = 'nodes "n1" is forbidden: ValidatingAdmissionPolicy denied request: the pre-puller may only change the node its own pod runs on'
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


# ---------------------------------------------------------------- times


@pytest.mark.parametrize("text, seconds", [("1.234s", 1.234), ("850ms", 0.85), ("1m2.5s", 62.5), ("1h0m0s", 3600.0), ("0s", 0.0),
                                           ("250µs", 0.00025), ("1.5", None), ("s", None), ("", None), ("2x", None)])
def test_go_durations(text, seconds):
    assert go_duration_seconds(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_pulled_messages_of_each_kubelet_generation():
    new = parse_pulled(f'Successfully pulled image "{so.UV}" in 1.234s (2.5s including waiting). Image size: 48213611 bytes.')
    assert (new.image, new.seconds, new.waiting_seconds, new.size_bytes, new.cached) == (so.UV, 1.234, 2.5, 48213611, False)
    older = parse_pulled(f'Successfully pulled image "{so.UV}" in 850ms (850ms including waiting)')
    assert (older.seconds, older.size_bytes) == (0.85, None)
    oldest = parse_pulled(f'Successfully pulled image "{so.UV}" in 1m2.5s')
    assert oldest.seconds == 62.5
    cached = parse_pulled(f'Container image "{so.UV}" already present on machine')
    assert cached.cached and cached.seconds is None
    assert parse_pulled(f'Pulling image "{so.UV}"') is None


def test_event_times_win_and_derived_times_are_marked():
    ds = so.daemon_set()
    helper, python, uv = so.init_names(ds)
    # helper 2..3, python 4..5, uv 9..10: uv's image took until 9, four seconds after python finished.
    states = [so.terminated(2, 3), so.terminated(4, 5), so.terminated(9, 10)]
    rep, _ = one_node(ds, states, events_for=lambda p: [so.pulled(p, python, so.PYTHON, "1.5s", size=48213611)])
    images = by_image(only_node(rep))
    assert (images[so.PYTHON].seconds, images[so.PYTHON].time_source, images[so.PYTHON].size_bytes) == (1.5, EVENT, 48213611)
    assert (images[so.UV].seconds, images[so.UV].time_source, images[so.UV].size_bytes) == (4.0, DERIVED, None)
    helper_status = only_node(rep).images[0]
    assert (helper_status.seconds, helper_status.time_source) == (1.0, DERIVED)  # from the pod's start (1) to its own (2)


def test_the_latest_event_counts_and_other_pods_events_do_not():
    ds = so.daemon_set()
    python = so.init_names(ds)[1]
    other = so.pod(ds, "n2")

    def events(p):
        return [so.pulled(p, python, so.PYTHON, "9s", at=5), so.pulled(p, python, so.PYTHON, "3s", at=50),
                so.pulled(other, python, so.PYTHON, "7s", at=90)]

    rep, _ = one_node(ds, events_for=events)
    assert by_image(only_node(rep))[so.PYTHON].seconds == 3.0


def test_an_image_already_on_the_node_is_cached_with_no_time():
    ds = so.daemon_set()
    python = so.init_names(ds)[1]
    rep, _ = one_node(ds, events_for=lambda p: [so.event(p, python, "Pulled", f'Container image "{so.PYTHON}" already present on machine')])
    image = by_image(only_node(rep))[so.PYTHON]
    assert (image.time_source, image.seconds) == (CACHED, None)


def test_summary_gives_the_median_and_the_slowest_node():
    ds = so.daemon_set()
    python = so.init_names(ds)[1]
    pods = [so.pod(ds, f"n{i}") for i in range(1, 5)]
    took = {"n1": "1s", "n2": "5s", "n3": "3s"}
    events = [so.pulled(p, python, so.PYTHON, took[p["spec"]["nodeName"]]) for p in pods[:3]]
    pods[3] = so.pod(ds, "n4", [so.terminated(2, 3), so.waiting("PodInitializing"), so.waiting()])
    rep = report([ds], pods, [so.node(f"n{i}") for i in range(1, 5)], events)
    python_summary = next(s for s in rep.images if s.image == so.PYTHON)
    assert (python_summary.pulls, python_summary.present, python_summary.timed) == (4, 3, 3)
    assert (python_summary.median_seconds, python_summary.slowest_node, python_summary.slowest_seconds) == (3.0, "n2", 5.0)
    uv = next(s for s in rep.images if s.image == so.UV)
    assert (uv.present, uv.timed, uv.median_seconds) == (3, 3, 1.0)  # derived: 1 s each in so.all_done


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
    p["status"]["containerStatuses"] = [{"name": "holder", "state": so.waiting("ErrImagePull", f'failed to pull image "{so.UV}": not found')}]
    states = {i.image: i.state for i in only_node(report([ds], [p], [so.node("n1")])).images}
    assert states == {so.PYTHON: PULLING, so.UV: FAILED}


# ---------------------------------------------------------------- JSON and the table


def mixed_report():
    """Two DaemonSets, four nodes, given in reverse order: present, failed, pulling, not scheduled, gated."""
    general, gated = so.daemon_set(), so.gated_daemon_set()
    python = so.init_names(general)[1]
    nodes = [so.node("n4", taints=[{"key": "dedicated", "value": "batch", "effect": "NoSchedule"}]), so.node("n3"), so.node("n2"),
             so.node("n1", taints=[dict(so.GATE_TAINT)])]
    pods = [so.pod(general, "n3", [so.terminated(2, 3), so.waiting(), so.waiting()]),
            so.pod(general, "n2", [so.terminated(2, 3), so.terminated(4, 5), so.waiting("ErrImagePull", NOT_FOUND)]),
            so.pod(general, "n1"), so.pod(gated, "n1"), so.pod(gated, "n2"), so.pod(gated, "n3")]
    events = [so.pulled(pods[2], python, so.PYTHON, "1.234s", size=1000)]
    return report([gated, general], pods, nodes, events)


def test_json_is_the_documented_structure_sorted_and_stable():
    doc = report_json(mixed_report())
    assert (doc["apiVersion"], doc["kind"], doc["namespace"], doc["state"]) == ("prepull.dev/v1alpha1", "PrePullStatus", "prepull", FAILED)
    assert [d["name"] for d in doc["daemonSets"]] == ["gated", "general"]
    general = doc["daemonSets"][1]
    assert [n["name"] for n in general["nodes"]] == ["n1", "n2", "n3", "n4"]
    assert (general["nodesSelected"], general["nodesTargeted"], general["nodesPresent"]) == (4, 3, 1)
    assert [n["state"] for n in general["nodes"]] == [PRESENT, FAILED, PULLING, NOT_SCHEDULED]
    n1 = general["nodes"][0]
    assert n1["images"][1] == {"image": so.PYTHON, "container": so.init_names(so.daemon_set())[1], "role": "pull", "state": PRESENT,
                               "reason": None, "message": None, "seconds": 1.234, "timeSource": "event", "sizeBytes": 1000}
    assert doc["daemonSets"][0]["nodes"][0]["gate"] == {"taint": "prepull.dev/not-ready:NoSchedule", "taintPresent": True}
    assert json.dumps(doc) == json.dumps(report_json(mixed_report()))


def test_the_documented_example_has_exactly_the_keys_we_print():
    """docs/status.md's example must not drift from the real structure."""
    text = (ROOT / "docs" / "status.md").read_text(encoding="utf-8")
    example = json.loads(re.search(r"```json\n(.*?)\n```", text, re.S).group(1))

    def merge(a, b):
        """Both shapes in one: an object beats a null (an ungated node's gate), lists merge item-wise."""
        if isinstance(a, dict) and isinstance(b, dict):
            return {k: merge(a.get(k), b.get(k)) for k in {**a, **b}}
        if isinstance(a, list) and isinstance(b, list):
            return [merge(a[0], b[0])]
        return a if b is None else b

    def shape(value):
        if isinstance(value, dict):
            return {k: shape(v) for k, v in value.items()}
        if isinstance(value, list):
            merged = None
            for item in value:
                merged = merge(merged, shape(item))
            return [merged]
        return None

    def keys(tree, prefix=""):
        if isinstance(tree, dict):
            return {k2 for k, v in tree.items() for k2 in {prefix + k} | keys(v, prefix + k + ".")}
        if isinstance(tree, list):
            return keys(tree[0], prefix) if tree else set()
        return set()

    assert keys(shape(example)) == keys(shape(report_json(mixed_report())))


def render(rep, width=200) -> str:
    from rich.console import Console

    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(table(rep))
    return console.file.getvalue()


def test_the_table_names_each_node_its_state_and_why():
    out = render(mixed_report())
    assert "general: 1/3 nodes" in out and "gated: 3/3 nodes, gate prepull.dev/not-ready:NoSchedule" in out
    line = next(x for x in out.splitlines() if x.lstrip().startswith("n2") and "failed" in x)
    assert "uv:0.5.11 (pull): ErrImagePull" in line and "2/2" not in line and "1/2" in line
    assert "python:3.13-slim 1.23s 1.0 kB" in out  # the event's time and size
    assert "UntoleratedTaint" in out and "tainted" in out and "lifted" in out
    assert "Pull times per image" in out and "* derived from init-container timestamps" in out


def test_durations_and_sizes_read_well():
    assert [duration(s) for s in (None, 0.842, 12.34, 365)] == ["-", "0.84s", "12.3s", "6m05s"]
    assert [size(b) for b in (None, 999, 48213611, 9_500_000_000)] == ["", "999 B", "48.2 MB", "9.5 GB"]


# ---------------------------------------------------------------- the reader: bounded calls


def test_a_thousand_nodes_take_five_calls():
    ds = so.daemon_set()
    nodes = [so.node(f"node-{i:04d}") for i in range(1000)]
    pods = [so.pod(ds, n["metadata"]["name"]) for n in nodes]
    python = so.init_names(ds)[1]
    events = [so.pulled(p, python, so.PYTHON, f"{1 + i % 7}s") for i, p in enumerate(pods)]
    api = so.FakeApi([ds], pods, nodes, events)
    reader = ClusterReader(api, api, so.NAMESPACE)
    rep = classify(reader.snapshot())
    assert reader.calls == len(api.calls) == 5
    assert [c[0] for c in api.calls] == ["daemonsets", "pods", "nodes", "events", "events"]
    assert api.calls[0][1]["label_selector"] == api.calls[1][1]["label_selector"] == MANAGED_BY == "app.kubernetes.io/managed-by=prepull"
    assert [c[1]["field_selector"] for c in api.calls[3:]] == ["involvedObject.kind=Pod,reason=Pulled", "involvedObject.kind=Pod,reason=Failed"]
    assert rep.state == PRESENT and rep.daemon_sets[0].done == 1000
    assert next(s for s in rep.images if s.image == so.PYTHON).median_seconds == 4.0
    # A second snapshot costs the same again, not more.
    reader.snapshot()
    assert reader.calls == 10


def test_no_daemonset_stops_after_one_call():
    from prepull.cluster.reader import NotFound

    api = so.FakeApi()
    reader = ClusterReader(api, api, "elsewhere")
    with pytest.raises(NotFound, match="no DaemonSet labelled app.kubernetes.io/managed-by=prepull in namespace 'elsewhere'"):
        reader.snapshot()
    assert reader.calls == 1


def test_api_errors_become_unreachable_with_the_servers_message():
    from kubernetes.client.exceptions import ApiException

    class Forbidden(so.FakeApi):
        def list_namespaced_daemon_set(self, namespace, **kwargs):
            err = ApiException(status=403, reason="Forbidden")
            err.body = json.dumps({"message": 'daemonsets.apps is forbidden: User "dev" cannot list resource "daemonsets"'})
            raise err

    api = Forbidden()
    with pytest.raises(Unreachable, match=r"cannot list DaemonSets in namespace 'prepull' \(HTTP 403\): daemonsets.apps is forbidden"):
        ClusterReader(api, api, "prepull").snapshot()


# ---------------------------------------------------------------- the command: exit codes, output, watch


def run_status(monkeypatch, capsys, api, *argv):
    """``python -m prepull status ARGV`` against the fake client; (exit code, stdout, stderr)."""
    monkeypatch.setattr(status_cli, "connect_reader",
                        lambda kubeconfig, context, namespace: ClusterReader(api, api, namespace, context))
    code = main(["status", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def api_with(states_by_node):
    ds = so.daemon_set()
    nodes = [so.node(n) for n in states_by_node]
    return so.FakeApi([ds], [so.pod(ds, n, s) for n, s in states_by_node.items()], nodes)


PULLING_STATES = [so.terminated(2, 3), so.waiting(), so.waiting()]
FAILED_STATES = [so.terminated(2, 3), so.waiting("ErrImagePull", NOT_FOUND), so.waiting()]


@pytest.mark.parametrize("states, code, state", [(None, 0, PRESENT), (FAILED_STATES, 1, FAILED), (PULLING_STATES, 2, PULLING)])
def test_exit_codes_and_json_output(monkeypatch, capsys, states, code, state):
    rc, out, err = run_status(monkeypatch, capsys, api_with({"n1": states}), "-o", "json")
    assert rc == code, err
    assert json.loads(out)["state"] == state


def test_exit_3_when_no_daemonset_or_no_cluster(monkeypatch, capsys):
    rc, out, err = run_status(monkeypatch, capsys, so.FakeApi(), "--namespace", "prepull-other")
    assert (rc, out) == (3, "")
    assert "prepull: error: no DaemonSet labelled app.kubernetes.io/managed-by=prepull in namespace 'prepull-other'" in err

    def unreachable(kubeconfig, context, namespace):
        raise Unreachable("cannot reach the cluster of context 'gone': MaxRetryError: connection refused")

    monkeypatch.setattr(status_cli, "connect_reader", unreachable)
    assert main(["status", "--context", "gone"]) == 3
    assert "cannot reach the cluster of context 'gone'" in capsys.readouterr().err


def test_verbose_prints_the_call_count(monkeypatch, capsys):
    rc, out, err = run_status(monkeypatch, capsys, api_with({"n1": None, "n2": None}), "-o", "json", "--verbose")
    assert rc == 0 and "prepull: 5 API call(s) in 1 snapshot(s) of namespace 'prepull'" in err


def test_the_table_is_printed_once_when_stdout_is_not_a_terminal(monkeypatch, capsys):
    rc, out, err = run_status(monkeypatch, capsys, api_with({"n1": FAILED_STATES}))
    assert rc == 1
    assert out.count("general: 0/1 nodes") == 1 and "ErrImagePull" in out


class Snapshots:
    """A reader whose snapshots follow a script of per-node states, repeating the last one."""

    def __init__(self, script):
        self.script, self.calls, self.snapshots = list(script), 0, 0

    def snapshot(self):
        api = api_with({"n1": self.script[min(self.snapshots, len(self.script) - 1)]})
        self.snapshots += 1
        return ClusterReader(api, api, so.NAMESPACE).snapshot()


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


@pytest.mark.parametrize("script, final, snapshots, slept", [
    ([PULLING_STATES, PULLING_STATES, None], PRESENT, 3, 10.0),  # until everything is present
    ([PULLING_STATES, FAILED_STATES], FAILED, 2, 5.0),           # or something fails
    ([PULLING_STATES], PULLING, 5, 12.0),                         # or the timeout passes: 0, 5, 10, 12
])
def test_watch_stops_when_done_failed_or_timed_out(script, final, snapshots, slept):
    reader, clock, shown = Snapshots(script), Clock(), []
    rep = status_cli.watch(lambda: classify(reader.snapshot()), shown.append, timeout=12, interval=5, clock=clock, sleep=clock.sleep)
    assert (rep.state, reader.snapshots, clock.now) == (final, snapshots - (1 if final == PULLING else 0), slept)
    assert len(shown) == reader.snapshots


def test_watch_with_timeout_exits_2_while_still_pulling(monkeypatch, capsys):
    monkeypatch.setattr("time.sleep", lambda s: None)
    rc, out, err = run_status(monkeypatch, capsys, api_with({"n1": PULLING_STATES}), "-o", "json", "--watch", "--timeout", "0.01",
                              "--interval", "0.001")
    assert rc == 2 and json.loads(out)["state"] == PULLING


@pytest.mark.parametrize("argv, message", [
    (["--timeout", "5m"], "--timeout: only used with --watch (got '5m')"),
    (["--watch", "--timeout", "soon"], "--timeout: must be a positive duration such as 90, 90s, 10m or 1h30m (got 'soon')"),
    (["--watch", "--interval", "0"], "--interval: must be a positive duration"),
    (["--namespace", "Bad_NS"], "--namespace: must be a DNS-1123 label"),
])
def test_bad_options_name_the_option_and_the_value(monkeypatch, capsys, argv, message):
    rc, out, err = run_status(monkeypatch, capsys, api_with({"n1": None}), "-o", "json", *argv)
    assert (rc, out) == (2, "") and message in err, err


# ---------------------------------------------------------------- where to look


def args_for(*argv):
    from prepull.cli.main import parser

    return parser().parse_args(["status", *argv])


def test_stack_config_gives_namespace_and_connection_and_options_win(tmp_path):
    config = {"prepull:namespace": "ml", "prepull:kubeContext": "prod-eu", "prepull:kubeconfig": "/etc/kube/prod",
              "prepull:nodePools": [], "other:key": 1}
    (tmp_path / "Pulumi.prod.yaml").write_text(yaml.safe_dump({"config": config}))
    target = status_cli.resolve_target(args_for("--stack", "prod", "--stacks-dir", str(tmp_path)))
    assert target == status_cli.Target("ml", "/etc/kube/prod", "prod-eu")
    target = status_cli.resolve_target(args_for("--stack", "prod", "--stacks-dir", str(tmp_path), "-n", "other", "--context", "mine"))
    assert (target.namespace, target.context) == ("other", "mine")
    assert status_cli.resolve_target(args_for()) == status_cli.Target("prepull", None, None)


def test_an_encrypted_kubeconfig_is_named_not_silently_replaced(tmp_path, capsys):
    config = {"prepull:kubeconfig": {"secure": "v1:abc"}, "prepull:kubeContext": {"secure": "v1:def"}, "prepull:nodePools": []}
    (tmp_path / "Pulumi.prod.yaml").write_text(yaml.safe_dump({"config": config}))
    target = status_cli.resolve_target(args_for("--stack", "prod", "--stacks-dir", str(tmp_path)))
    assert (target.kubeconfig, target.context) == (None, None)
    err = capsys.readouterr().err
    assert "Pulumi.prod.yaml: prepull:kubeconfig is encrypted (secure:) and not read here; pass --kubeconfig" in err
    assert "prepull:kubeContext is encrypted (secure:) and not read here; pass --context" in err
    # Given on the command line, nothing is missing: no warning.
    status_cli.resolve_target(args_for("--stack", "prod", "--stacks-dir", str(tmp_path), "--kubeconfig", "/k", "--context", "c"))
    assert capsys.readouterr().err == ""


def test_a_kubeconfig_given_as_contents_is_parsed(tmp_path):
    contents = yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "clusters": [], "contexts": [], "users": []})
    assert status_cli.kubeconfig_value(contents)["kind"] == "Config"
    assert status_cli.kubeconfig_value("/path/to/kubeconfig") == "/path/to/kubeconfig"
    assert status_cli.kubeconfig_value(None) is None


def test_an_unknown_stack_is_a_usage_error(capsys, tmp_path):
    assert main(["status", "--stack", "nope", "--stacks-dir", str(tmp_path)]) == 2
    assert "unknown stack 'nope'" in capsys.readouterr().err


def test_status_reaches_no_cluster_through_a_missing_kubeconfig(tmp_path, capsys):
    """The real client and the real message, as for `check --server`."""
    rc = main(["status", "--kubeconfig", str(tmp_path / "missing"), "-o", "json"])
    out, err = capsys.readouterr()
    assert (rc, out) == (3, "") and "cannot reach the cluster of the current context" in err and "Traceback" not in err


def test_ctrl_c_ends_a_watch_without_a_traceback(monkeypatch, capsys):
    def interrupted(seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr("time.sleep", interrupted)
    rc, out, err = run_status(monkeypatch, capsys, api_with({"n1": PULLING_STATES}), "-o", "json", "--watch")
    assert (rc, out) == (130, "") and "prepull: interrupted" in err


def test_in_a_terminal_watch_updates_a_live_table_until_present(monkeypatch, capsys):
    from rich.console import Console

    ds = so.daemon_set()
    script = [[so.pod(ds, "n1", PULLING_STATES)], [so.pod(ds, "n1")]]

    class Rolling(so.FakeApi):
        def list_namespaced_pod(self, namespace, **kwargs):
            self.objects["pods"] = script[min(sum(c[0] == "pods" for c in self.calls), len(script) - 1)]
            return super().list_namespaced_pod(namespace, **kwargs)

    screen = io.StringIO()
    monkeypatch.setattr(status_cli, "_console", lambda: Console(file=screen, force_terminal=True, width=160, color_system=None))
    monkeypatch.setattr("time.sleep", lambda s: None)
    rc, out, err = run_status(monkeypatch, capsys, Rolling([ds], [], [so.node("n1")]), "--watch", "--verbose")
    assert rc == 0, err
    drawn = screen.getvalue()
    # Both snapshots were drawn, in place (cursor movements), the last one complete.
    assert "general: 0/1 nodes" in drawn and "general: 1/1 nodes" in drawn and "\x1b[" in drawn
    assert "prepull: 10 API call(s) in 2 snapshot(s)" in err


def test_a_server_that_does_not_answer_exits_3_naming_the_context(down_kubeconfig, capsys):
    rc = main(["status", "--kubeconfig", str(down_kubeconfig), "--context", "down", "-o", "json", "-v"])
    out, err = capsys.readouterr()
    assert (rc, out) == (3, "") and "cannot reach the cluster of context 'down': MaxRetryError" in err and "Traceback" not in err
    assert "prepull: 1 API call(s)" in err
