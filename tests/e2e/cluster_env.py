"""What the e2e modules share: which cluster, whether it must be there, and kubectl against it.

``PREPULL_E2E_CONTEXT`` names the kubeconfig context (``DIR/env`` of tests/cluster/up sets
``prepull-local``; kind's is ``kind-prepull``). ``PREPULL_E2E_REQUIRED=1`` turns a missing tool or
cluster into a failure instead of a skip (the cluster tier and the e2e workflow set it).
``PREPULL_TEST_CLUSTER`` and ``PREPULL_TEST_CONTAINERD`` are set only on the local cluster.
"""

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

import pytest
import yaml

CONTEXT = os.environ.get("PREPULL_E2E_CONTEXT", "kind-prepull")
REQUIRED = os.environ.get("PREPULL_E2E_REQUIRED") == "1"
LOCAL = os.environ.get("PREPULL_TEST_CLUSTER")
# The local cluster's containerd, where the real node's images are (unset elsewhere).
CONTAINERD = os.environ.get("PREPULL_TEST_CONTAINERD")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "cluster"))
from cluster import REAL_NODE, kwok_node, node_ready  # noqa: E402,F401  (tests/cluster/cluster.py: one Node shape for every simulated node)


def copy_project(dest: Path, stack: str, backend: Path, edit: Optional[Callable[[dict], None]] = None) -> Path:
    """The project in ``dest``: Pulumi.yaml with its backend at ``backend``, and ``stack``'s file.

    ``edit`` changes the stack's ``config`` mapping in place first. The checkout is never touched.
    """
    stack_file = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text())
    if edit:
        edit(stack_file["config"])
    (dest / "stacks").mkdir(parents=True)
    (dest / "stacks" / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(stack_file, sort_keys=False))
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    project["backend"] = {"url": backend.as_uri()}
    (dest / "Pulumi.yaml").write_text(yaml.safe_dump(project, sort_keys=False))
    return dest


def kubectl(*args, input=None, check=True) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["kubectl", "--context", CONTEXT, *map(str, args)], input=input, check=check, capture_output=True, text=True, timeout=120
    )


def toolchain_venv(folder: Path) -> Path:
    """``folder``/venv, made as the CLI's pip toolchain makes a plugin's (kept when it exists).

    In the folder itself: ``python3 -m venv venv``, then ``pip install -r requirements.txt``.
    """
    venv = folder / "venv"
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", "venv"], cwd=folder, check=True)
        subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-r", "requirements.txt"], cwd=folder, check=True, timeout=600
        )
    return venv


def stack_program() -> None:
    """The stack program, run inline by the Automation API: what __main__.py runs."""
    from prepull.program import main

    main()


def as_list(objects: list) -> str:
    """Objects as one kubectl input document (a v1 List)."""
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})


def apply(objects: list) -> None:
    kubectl("apply", "-f", "-", input=as_list(objects))


def poll(what: str, problems: Callable[[], Any], timeout: float, every: float = 5.0) -> None:
    """Call ``problems()`` until it returns nothing (empty, None); fail naming ``what`` and the last problems."""
    deadline = time.monotonic() + timeout
    while True:
        last = problems()
        if not last:
            return
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}: {last}")
        time.sleep(every)


def containerd_images() -> set:
    """The image references the real node's containerd holds (the local cluster only)."""
    out = subprocess.run(["ctr", "--address", CONTAINERD, "-n", "k8s.io", "images", "ls", "-q"], check=True, capture_output=True, text=True)
    return set(out.stdout.split())


def pods_of(namespace: str, name: str) -> list:
    """The pods of the pre-puller ``name`` in ``namespace``, those being deleted left out."""
    out = kubectl("get", "pods", "-n", namespace, "-l", f"prepull.dev/daemonset={name}", "-o", "json").stdout
    return [p for p in json.loads(out)["items"] if not p["metadata"].get("deletionTimestamp")]


def ready_pod(namespace: str, name: str) -> str:
    """Problems keeping ``name``'s pod on the real node from being Ready ("" when it is), for poll."""
    pods = pods_of(namespace, name)
    if not pods:
        return f"no pod of {name} yet"
    conditions = {c["type"]: c["status"] for c in pods[0]["status"].get("conditions", [])}
    return "" if conditions.get("Ready") == "True" else f"{pods[0]['metadata']['name']} not Ready: {pods[0]['status'].get('phase')}"


def control_pod(namespace: str, image: str) -> dict:
    """The Pod ``control`` on the real node: it pulls ``image``, runs ``true`` and ends (restricted, like a workload)."""
    container = {
        "name": "c",
        "image": image,
        "command": ["true"],
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        "resources": {"limits": {"cpu": "10m", "memory": "16Mi"}},
    }
    spec = {
        "nodeName": REAL_NODE,
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 0,
        "tolerations": [{"operator": "Exists"}],
        "automountServiceAccountToken": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
    }
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "control", "namespace": namespace}, "spec": spec}


def pull_control(namespace: str, image: str, every: float, detail: Optional[Callable[[], Any]] = None) -> None:
    """A plain pod pulls the control ``image``, runs, and is deleted: the image is then unused.

    Polls every ``every`` seconds for the pod to finish; a timeout shows ``detail()``, by default the pod's phase
    (test_image_gc.py passes containerd's images: what its garbage-collection checks are about).
    """
    kubectl("apply", "-f", "-", input=json.dumps(control_pod(namespace, image)))

    def not_finished() -> Any:
        phase = kubectl("get", "pod", "-n", namespace, "control", "-o", "jsonpath={.status.phase}").stdout
        if phase == "Succeeded":
            return ""
        return detail() if detail else f"phase {phase or 'not set yet'}"

    poll("the control pod to finish", not_finished, timeout=120, every=every)
    kubectl("delete", "pod", "-n", namespace, "control", "--wait=true")
    assert image in containerd_images()


class Recorder(threading.Thread):
    """Every half second: containerd's images, then whether the real node has the taint ``key`` (both with their time).

    Reading the images first means a tick that sees the taint gone also saw the images as they
    were just before: the untaint step needs a container start after the last pull, far longer.
    """

    def __init__(self, images: list, key: str) -> None:
        super().__init__(daemon=True)
        self.images, self.key, self.ticks, self.stopping = set(images), key, [], threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                missing = self.images - containerd_images()
            except subprocess.CalledProcessError:  # containerd restarting: no tick, rather than a guess
                self.stopping.wait(0.5)
                continue
            taints = kubectl("get", "node", REAL_NODE, "-o", "jsonpath={.spec.taints}", check=False)
            tainted = None if taints.returncode else self.key in taints.stdout  # None: the API server did not answer
            self.ticks.append((time.monotonic(), sorted(missing), tainted))
            self.stopping.wait(0.5)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=30)

    def first(self, what) -> float:
        return next(t for t, missing, tainted in self.ticks if what(missing, tainted))

    def wait_taint_gone(self, timeout: float = 30) -> None:
        """Poll until a tick has seen the taint gone (the gate opened)."""
        poll("the recorder to see the taint gone", lambda: "" if any(t is False for _, _, t in self.ticks) else "still on", timeout, 0.5)

    def check_gate_held(self) -> float:
        """The first time the taint was seen gone, after every image was seen present; fails otherwise."""
        early = [(round(t, 1), missing) for t, missing, tainted in self.ticks if tainted is False and missing]
        assert not early, f"the gate opened before every image was present: {early}"
        assert any(tainted for _, _, tainted in self.ticks), "the taint was never seen on the node: the test proves nothing"
        return self.first(lambda missing, tainted: tainted is False)


def unreachable(tools=("kubectl",)) -> Optional[str]:
    """Why the tests cannot run here, or None. Cheap: PATH lookups and one short kubectl call."""
    tools = [*tools, *(["kind"] if CONTEXT.startswith("kind-") else [])]
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        return f"e2e needs {', '.join(missing)} on PATH, not found (see docs/e2e.md)"
    try:
        subprocess.run(["kubectl", "--context", CONTEXT, "get", "nodes", "-o", "name"], check=True, capture_output=True, timeout=10)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
        return (
            f"no reachable cluster for kubectl context {CONTEXT!r} ({type(err).__name__}); start the local one with "
            "`tests/cluster/up DIR && . DIR/env`, or create a kind one with "
            "`kind create cluster --name prepull --config examples/kind-dev.yaml` (see docs/e2e.md)"
        )
    return None


def marks(reason: Optional[str]) -> list:
    """The module's pytest marks: e2e, and skipped with ``reason`` unless the cluster is required."""
    return [pytest.mark.e2e, pytest.mark.skipif(reason is not None and not REQUIRED, reason=reason or "")]
