"""examples/built-image under mocks: a freshly built image, by digest, reaches the pre-pull DaemonSet."""

import runpy
from pathlib import Path

import pulumi
import pytest
from mock_helpers import RecordingMocks, RecordingMonitor

pytest.importorskip("pulumi_docker_build", reason="pulumi-docker-build (requirements-dev.txt) is not installed")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "built-image"
DIGEST = "sha256:" + "ab" * 32


class BuildMocks(RecordingMocks):
    """A docker-build Image resolves to its pushed, digest-pinned reference, as the real provider reports it."""

    def new_resource(self, args):
        name, state = super().new_resource(args)
        if args.typ == "docker-build:index:Image":
            state["ref"] = f"{args.inputs['tags'][0].rsplit(':', 1)[0]}@{DIGEST}"
        return name, state


def test_the_built_images_digest_is_what_the_daemonset_pulls():
    mocks = BuildMocks()
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project="prepull-built-image", stack="dev", monitor=monitor)
    pulumi.runtime.set_all_config({"prepull-built-image:registry": "ghcr.io/acme"})
    pulumi.runtime.test(lambda: runpy.run_path(str(EXAMPLE / "__main__.py")))()
    daemon_set = next(r for r in monitor.requests if r.type == "kubernetes:apps/v1:DaemonSet")
    from pulumi.runtime import rpc

    spec = rpc.deserialize_properties(daemon_set.object)["spec"]["template"]["spec"]
    pulled = [c["image"] for c in spec["initContainers"]]
    assert f"ghcr.io/acme/api@{DIGEST}" in pulled
    assert spec["nodeSelector"] == {"kubernetes.io/os": "linux", "pool": "general"}
