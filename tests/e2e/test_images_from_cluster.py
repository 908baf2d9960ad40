"""``images_from`` on the real node: a program pre-pulls exactly what it deploys, through the real CLI and engine.

The program (inline, Automation API) creates a namespace, a Deployment scaled to zero (as an
autoscaler would leave it) and an ImagePrePuller whose ``images`` is ``images_from(deployment)``
and whose ``namespace`` is the Namespace resource's output. The real node's containerd must then
hold the Deployment's image, which was removed from it first. Local cluster only (it reads
containerd and pulls from the loopback registry).
"""

import os
import subprocess
import sys
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s
import pytest
from cluster_env import CONTEXT, CONTAINERD, LOCAL, containerd_images, kubectl
from pulumi import automation as auto

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "cluster"))
import cluster  # noqa: E402

REGISTRY = os.environ.get("PREPULL_TEST_REGISTRY", "")
IMAGE = f"{REGISTRY}/prepull-test/multiarch:1"
NAMESPACE = "prepull-images-from"
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not LOCAL, reason="needs the local cluster (tests/cluster/up DIR, then . DIR/env): it reads the real node's containerd"
    ),
]


def program() -> None:
    import prepull

    provider = k8s.Provider("k8s", context=CONTEXT)
    on_cluster = pulumi.ResourceOptions(provider=provider)
    ns = k8s.core.v1.Namespace("ns", metadata={"name": NAMESPACE}, opts=on_cluster)
    labels = {"app": "api"}
    api = k8s.apps.v1.Deployment(
        "api",
        metadata={"namespace": ns.metadata.name},
        spec={
            "replicas": 0,  # scaled from zero later: its first pods must find the image on the node
            "selector": {"match_labels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "api", "image": IMAGE}]}},
        },
        opts=on_cluster,
    )
    cache = prepull.ImagePrePuller(
        "from-workloads",
        {
            "images": prepull.images_from(api),
            "namespace": ns.metadata.name,
            "create_namespace": False,
            "node_selector": {"kubernetes.io/hostname": cluster.REAL_NODE},
            "tolerate_all_taints": True,
        },
        opts=pulumi.ResourceOptions(providers=[provider]),
    )
    pulumi.export("images", cache.images)
    pulumi.export("daemon_sets", cache.daemon_set_names)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    base = tmp_path_factory.mktemp("images-from")
    env = {"PULUMI_CONFIG_PASSPHRASE": "prepull-e2e", "PULUMI_BACKEND_URL": base.as_uri(), "PULUMI_SKIP_UPDATE_CHECK": "true"}
    stack = auto.create_or_select_stack(
        "dev", project_name="prepull-images-from", program=program, opts=auto.LocalWorkspaceOptions(work_dir=str(base), env_vars=env)
    )
    try:
        yield stack
    finally:
        stack.destroy(on_output=print, color="never")
        stack.workspace.remove_stack("dev")
        kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true", check=False)


def test_the_deployed_image_is_pulled_onto_the_node(stack):
    subprocess.run(["ctr", "--address", CONTAINERD, "-n", "k8s.io", "images", "rm", IMAGE], capture_output=True)
    assert IMAGE not in containerd_images()
    preview = stack.preview(color="never")
    assert preview.change_summary.get("create", 0) >= 5, preview.change_summary  # provider, ns, deployment, component, DaemonSet
    up = stack.up(on_output=print, color="never")
    assert up.outputs["images"].value == [IMAGE]
    # `pulumi up` returned after the DaemonSet rolled out: the real node holds the image now.
    assert IMAGE in containerd_images()
    pod_images = kubectl(
        "get",
        "daemonset",
        "-n",
        NAMESPACE,
        *up.outputs["daemon_sets"].value,
        "-o",
        "jsonpath={.spec.template.spec.initContainers[*].image}",
    ).stdout.split()
    assert IMAGE in pod_images
