"""The gate with lanes: a node runs one pod per lane, and each lane's untaint step waits until the
untaint step of every lane's pod on its node has started (their pulls are then done) before it
removes the taint. Rendered by ``prepull.manifests()``; the script is run against a fake kubectl.
"""

import os
import shutil
import subprocess

import pytest
from gate_helpers import busybox_shell, of_kind, one, pod

import prepull

KEY = "prepull.dev/not-ready"
NS, BASE = "warmup", "gpu"
IMAGES = ["nginx:1.27", "ghcr.io/org/app:2", "quay.io/x/tool:3", "quay.io/x/other:4"]
NODE = "ip-10-0-1-7.ec2.internal"
PLATFORMS = {"nginx:1.27": ["linux/amd64"], "ghcr.io/org/app:2": ["linux/arm64"]}


def render(**extra):
    args = {"images": IMAGES, "namespace": NS, "base_name": BASE, "lanes": 2, "startup_taint": {"key": KEY}, "remove_startup_taint": True}
    return prepull.manifests({**args, **extra})


def untaint(ds):
    inits = pod(ds)["initContainers"]
    assert inits[-1]["name"] == "untaint", [c["name"] for c in inits]
    return inits[-1]


def script(ds):
    command = untaint(ds)["command"]
    return command[command.index("-c") + 1]


def waited_for(ds):
    """The DaemonSets a lane's untaint step waits for, read from its label selector."""
    text = script(ds)
    start = text.index("prepull.dev/daemonset in (") + len("prepull.dev/daemonset in (")
    return text[start : text.index(")", start)].split(",")


def test_each_lane_waits_for_every_lane_of_its_node_before_the_taint_call():
    dss = of_kind(render(), "DaemonSet")
    names = [ds["metadata"]["name"] for ds in dss]
    assert names == [f"{BASE}-l1", f"{BASE}-l2"]
    for ds in dss:
        text = script(ds)
        assert waited_for(ds) == names
        assert '--field-selector "spec.nodeName=$NODE_NAME"' in text and "-ge 2 ]" in text
        assert text.index("while :; do n=") < text.index("kubectl taint node")


def test_with_platforms_a_lane_waits_only_for_the_lanes_of_its_own_architectures():
    dss = of_kind(render(image_platforms=PLATFORMS), "DaemonSet")
    affinity = {ds["metadata"]["name"]: repr(pod(ds).get("affinity")) for ds in dss}
    for ds in dss:
        same = [n for n, a in affinity.items() if a == affinity[ds["metadata"]["name"]]]
        if len(same) > 1:
            assert waited_for(ds) == same
        else:  # one lane on those nodes (an architecture with one image, or none): nothing to wait for
            assert "lanes on" not in script(ds)


def test_lanes_add_a_role_listing_pods_for_the_untaint_account_and_one_lane_adds_none():
    objs = render()
    role, binding, sa = one(objs, "Role"), one(objs, "RoleBinding"), one(objs, "ServiceAccount")
    assert role["metadata"]["namespace"] == NS
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": NS}]
    assert not of_kind(render(lanes=1), "Role") and not of_kind(render(lanes=1), "RoleBinding")


# `get pods` prints the next of its answers (one a call, "|" for a line break); `taint` succeeds.
FAKE_KUBECTL = r"""#!/bin/sh
echo "$1 $2" >> "$FAKE_LOG"
case "$1" in
get) n=$(grep -c '^get pods$' "$FAKE_LOG"); echo "$FAKE_PODS" | cut -d';' -f"$n" | tr '|' '\n'; exit 0;;
taint) echo "node/$3 untainted"; exit 0;;
esac
exit 99
"""
FAKE_SLEEP = """#!/bin/sh
echo "sleep $1" >> "$FAKE_LOG"
"""
WAITING = '{"waiting":{"reason":"PodInitializing"}}'
RUNNING = '{"running":{"startedAt":"2026-12-07T12:00:00Z"}}'
DONE = '{"terminated":{"exitCode":0,"reason":"Completed"}}'


def run(tmp_path, answers, shell="/bin/sh"):
    if not os.access(shell, os.X_OK):
        pytest.fail(f"{shell} is required to run the untaint script under test, and is missing")
    bindir, log = tmp_path / "bin", tmp_path / "calls"
    bindir.mkdir()
    for name, text in (("kubectl", FAKE_KUBECTL), ("sleep", FAKE_SLEEP)):
        (bindir / name).write_text(text)
        (bindir / name).chmod(0o755)
    for tool in ("grep", "timeout", "cut", "tr", "sort", "wc"):
        (bindir / tool).symlink_to(shutil.which(tool))
    env = {"PATH": str(bindir), "NODE_NAME": NODE, "HOME": str(tmp_path), "FAKE_LOG": str(log), "FAKE_PODS": ";".join(answers)}
    ds = of_kind(render(), "DaemonSet")[0]
    proc = subprocess.run([shell, "-c", script(ds)], env=env, capture_output=True, text=True, timeout=30)
    return proc, log.read_text().splitlines()


L1, L2 = f"{BASE}-l1", f"{BASE}-l2"


def test_the_taint_is_removed_only_once_every_lane_started_its_untaint_step(tmp_path):
    # Another lane still pulling, then its pod not listed yet (a new node), then both past their pulls.
    answers = [f"{L1} {RUNNING}|{L2} {WAITING}", f"{L1} {RUNNING}", f"{L2} {WAITING}|{L1} {DONE}", f"{L1} {RUNNING}|{L2} {DONE}"]
    proc, calls = run(tmp_path, answers)
    assert proc.returncode == 0, proc.stderr
    assert calls == ["get pods", "sleep 2"] * 3 + ["get pods", "taint node"]
    # Said once, not on every try: the count did not change.
    assert proc.stderr.count(f"1 of 2 lanes on {NODE} have pulled; waiting") == 1, proc.stderr


def test_two_pods_of_one_lane_do_not_stand_in_for_another_lane(tmp_path):
    # A surge: the old and the new pod of lane 1 are both past their pulls; lane 2 is still pulling.
    answers = [f"{L1} {DONE}|{L1} {RUNNING}|{L2} {WAITING}", f"{L1} {DONE}|{L1} {RUNNING}|{L2} {RUNNING}"]
    proc, calls = run(tmp_path, answers)
    assert proc.returncode == 0, proc.stderr
    assert calls == ["get pods", "sleep 2", "get pods", "taint node"]


def test_an_unreachable_api_server_keeps_the_step_waiting(tmp_path):
    # An empty answer is what a failed kubectl call gives the count: zero lanes started.
    proc, calls = run(tmp_path, ["", "", f"{L1} {DONE}|{L2} {RUNNING}"])
    assert proc.returncode == 0, proc.stderr
    assert calls == ["get pods", "sleep 2", "get pods", "sleep 2", "get pods", "taint node"]


def test_the_wait_runs_under_busybox_sh_as_in_the_pod(tmp_path):
    # busybox sh runs its own grep, cut, sort, wc and sleep (one real 2 s pause here), and the fake kubectl from PATH.
    proc, calls = run(tmp_path, [f"{L1} {RUNNING}|{L2} {WAITING}", f"{L1} {RUNNING}|{L2} {DONE}"], shell=busybox_shell(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert calls == ["get pods", "get pods", "taint node"]
