"""What the e2e modules share: which cluster, whether it must be there, and kubectl against it.

``PREPULL_E2E_CONTEXT`` names the kubeconfig context (``DIR/env`` of tests/cluster/up sets
``prepull-local``; kind's is ``kind-prepull``). ``PREPULL_E2E_REQUIRED=1`` turns a missing tool or
cluster into a failure instead of a skip (the cluster tier and the e2e workflow set it).
``PREPULL_TEST_CLUSTER`` and ``PREPULL_TEST_CONTAINERD`` are set only on the local cluster.
"""

import os
import shutil
import subprocess
from typing import Optional

import pytest

CONTEXT = os.environ.get("PREPULL_E2E_CONTEXT", "kind-prepull")
REQUIRED = os.environ.get("PREPULL_E2E_REQUIRED") == "1"
LOCAL = os.environ.get("PREPULL_TEST_CLUSTER")
# The local cluster's containerd, where the real node's images are (unset elsewhere).
CONTAINERD = os.environ.get("PREPULL_TEST_CONTAINERD")


def kubectl(*args, input=None, check=True) -> subprocess.CompletedProcess:
    return subprocess.run(["kubectl", "--context", CONTEXT, *map(str, args)], input=input, check=check, capture_output=True, text=True,
                          timeout=120)


def containerd_images() -> set:
    """The image references the real node's containerd holds (the local cluster only)."""
    out = subprocess.run(["ctr", "--address", CONTAINERD, "-n", "k8s.io", "images", "ls", "-q"], check=True, capture_output=True, text=True)
    return set(out.stdout.split())


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
