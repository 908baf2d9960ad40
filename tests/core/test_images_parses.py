"""Each image reference is parsed once, where it is read: the stack file, the lock file, the component's inputs.

Counted at the one parser every path uses (docker-image-py's ``Reference.parse_normalized_named``,
called only by ``prepull.core.images.parse_image``), so a new re-parse anywhere on a path fails here.
"""

import json

import pytest
from docker_image.reference import Reference
from mock_helpers import output

from prepull.core.images import parse_image
from prepull.outputs import _STAND_IN
from prepull.lock.file import Lock, LockedPlatform, LockEntry, dump_lock, lock_stack
from prepull.stack.pools import stack_manifests, validate_stack, with_prepullers

GLOBAL = ["nginx:1.27", "docker.io/library/redis:7", "ghcr.io/acme/app:2"]
POOLS = [
    {"name": "general", "provider": "existing", "labels": {"pool": "general"}},
    # `redis` repeats a global image in another spelling: pulled once, parsed where written.
    {"name": "gpu", "provider": "existing", "labels": {"pool": "gpu"}, "images": ["cuda:12", "redis:7"], "lanes": 2},
    {
        "name": "arm",
        "provider": "existing",
        "labels": {"pool": "arm"},
        "startupGate": True,
        "existing": {"nodesRegisterWithTaint": True},
        "prepuller": {"imagePlatforms": {"ghcr.io/acme/app:2": ["linux/arm64"]}, "pauseImage": "registry.k8s.io/pause:3.10"},
    },
]
# Every image text the stack file holds: the global list, the pools' lists, the imagePlatforms key, pauseImage.
WRITTEN = len(GLOBAL) + 2 + 1 + 1
DIGEST = "sha256:" + "a" * 64


@pytest.fixture
def parses(monkeypatch) -> list:
    """The texts parsed from now on, in order."""
    seen: list = []
    real = Reference.parse_normalized_named

    def counting(text):
        seen.append(text)
        return real(text)

    monkeypatch.setattr(Reference, "parse_normalized_named", staticmethod(counting))
    return seen


def config(pools=POOLS) -> dict:
    return {"images": list(GLOBAL), "nodePools": json.loads(json.dumps(pools))}


def write_lock(tmp_path) -> int:
    """A lock file for every image of POOLS in tmp_path (stack "dev"); returns its number of entries."""
    canonical = {parse_image(i, "").canonical for i in GLOBAL + ["cuda:12"]}
    platforms = {"linux/amd64": LockedPlatform(DIGEST, 10), "linux/arm64": LockedPlatform(DIGEST, 20)}
    entries = {c: LockEntry(DIGEST, "application/vnd.oci.image.index.v1+json", platforms) for c in canonical}
    (tmp_path / "prepull.dev.lock.yaml").write_text(dump_lock(Lock(entries), "dev"))
    return len(entries)


def test_the_stack_path_parses_each_written_image_once(parses):
    spec = with_prepullers(validate_stack(config()))
    stack_manifests(spec)
    assert len(parses) == WRITTEN, parses
    # Not once per pool: the global images are carried to every pool, and the defaults parsed at import.
    assert sorted(parses) == sorted(GLOBAL + ["cuda:12", "redis:7", "ghcr.io/acme/app:2", "registry.k8s.io/pause:3.10"])


def test_more_pools_parse_nothing_more_than_their_own_images(parses):
    many = [{"name": f"p{i}", "provider": "existing", "labels": {"pool": f"p{i}"}} for i in range(20)]
    stack_manifests(with_prepullers(validate_stack(config(many))))
    assert len(parses) == len(GLOBAL)


def test_the_lock_file_hands_on_its_references_parsed_once(tmp_path, parses):
    entries = write_lock(tmp_path)
    parses.clear()
    spec = with_prepullers(lock_stack(validate_stack(config()), tmp_path, "dev"))
    objects = stack_manifests(spec)
    # The stack file's texts, then the lock file's keys; the locked `repo:tag@digest` references are built, not parsed.
    assert len(parses) == WRITTEN + entries, parses
    images = {
        c["image"] for o in objects if o["kind"] == "DaemonSet" for c in o["spec"]["template"]["spec"]["initContainers"] if "image" in c
    }
    assert f"docker.io/library/nginx:1.27@{DIGEST}" in images


def test_the_render_command_parses_each_written_image_once(tmp_path, parses, capsys):
    from prepull.cli.main import main

    stack = {"config": {f"prepull:{k}": v for k, v in config().items()}}
    (tmp_path / "Pulumi.dev.yaml").write_text(json.dumps(stack))
    parses.clear()
    assert main(["render", "--stack", "dev", "--stacks-dir", str(tmp_path)]) == 0
    assert len(parses) == WRITTEN
    assert "kind: DaemonSet" in capsys.readouterr().out


def test_the_stack_program_parses_each_written_image_once(run_program, parses):
    from prepull.program import main

    stack_config = {"prepull:images": json.dumps(GLOBAL), "prepull:nodePools": json.dumps(POOLS)}
    run = run_program(lambda: main(stacks_dir=None), config=stack_config)
    assert run.of_type("kubernetes:apps/v1:DaemonSet")
    assert len(parses) == WRITTEN


def test_the_component_parses_each_input_image_once(run_program, parses):
    from prepull import ImagePrePuller

    args = {"images": ["nginx:1.27", {"image": "redis:7", "platforms": ["linux/amd64"]}], "image_platforms": {}}
    run_program(lambda: ImagePrePuller("pp", args))
    assert parses == ["nginx:1.27", "redis:7"]


def test_with_outputs_a_plain_image_is_parsed_once_and_an_output_once_resolved(run_program, parses):
    from prepull import ImagePrePuller

    def program():
        ImagePrePuller("pp", {"images": ["nginx:1.27", output("redis:7"), {"image": "ghcr.io/acme/app:2"}]})

    run = run_program(program)
    assert run.of_type("kubernetes:apps/v1:DaemonSet")
    # The shape plan parses the plain images and the Output's stand-in; the plan of the resolved
    # inputs parses only the Output's value and takes the plain ones as the shape plan parsed them.
    assert parses == ["nginx:1.27", _STAND_IN.format(1), "ghcr.io/acme/app:2", "redis:7"]
