"""The e2e test's proof that a node holds its images, checked offline against fabricated API objects.

No cluster here: ``kget`` is replaced by canned pods and nodes, so these run in
the unit suite (not marked e2e) and pin down what test_e2e accepts as proof.
"""

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("prepull_e2e_module", Path(__file__).with_name("test_e2e.py"))
e2e = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(e2e)

IMAGES = ["docker.io/library/python:3.13-slim", "docker.io/library/postgres:17.2"]
NODE = "prepull-worker"


def pod(exit_codes=(0, 0, 0), ready=True, images=IMAGES):
    """A pre-pull pod: a helper init container, one per image (exit codes in order), Ready or not."""
    containers = [{"name": "prepull-noop", "image": "docker.io/library/busybox:1.37.0-musl"}]
    containers += [{"name": f"pull-{i}", "image": image} for i, image in enumerate(images)]
    statuses = [
        {"name": c["name"], "state": {"terminated": {"exitCode": code}} if code is not None else {"waiting": {"reason": "PodInitializing"}}}
        for c, code in zip(containers, exit_codes)
    ]
    return {
        "metadata": {"name": "general-abcde"},
        "spec": {"nodeName": NODE, "initContainers": containers},
        "status": {
            "phase": "Running",
            "initContainerStatuses": statuses,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def node(listed, simulated=False):
    labels = {"prepull.dev/simulated": "true"} if simulated else {}
    return {"metadata": {"name": NODE, "labels": labels}, "status": {"images": [{"names": [name], "sizeBytes": 1} for name in listed]}}


@pytest.fixture
def cluster(monkeypatch):
    """Set ``cluster["pod"]`` and ``cluster["node"]``; ``kget`` answers with them."""
    state = {"pod": pod(), "node": node(IMAGES)}

    def kget(*args):
        if args[0] == "pods":
            return {"items": [state["pod"]]}
        assert args == ("node", NODE), args
        return state["node"]

    monkeypatch.setattr(e2e, "kget", kget)
    # Under the local cluster's env a real containerd is named: these fabricated nodes are not in it.
    monkeypatch.setattr(e2e, "CONTAINERD", None)
    return state


def problems():
    return e2e.pull_problems("prepull", "general", NODE, IMAGES)


def test_every_init_container_exited_0_and_ready_is_the_proof(cluster):
    assert problems() == []


def test_a_full_image_list_without_a_small_image_is_not_a_failure(cluster):
    # 50 larger images fill node.status.images: the kubelet drops the smaller ones from the list.
    cluster["node"] = node([f"registry.example.com/big:{i}" for i in range(e2e.NODE_STATUS_MAX_IMAGES)])
    assert problems() == []


def test_a_simulated_node_is_not_asked_for_images_it_cannot_hold(cluster):
    # kwok writes the pod's status; nothing is pulled, so node.status.images stays empty.
    cluster["node"] = node([], simulated=True)
    assert problems() == []
    cluster["pod"] = pod(exit_codes=(0, 1, 0))
    assert problems() and all("not terminated with exit 0" in p for p in problems())


def test_a_list_below_the_cap_must_hold_every_image(cluster):
    cluster["node"] = node(IMAGES[:1] + [f"registry.example.com/other:{i}" for i in range(10)])
    assert problems() == [f"{NODE} does not report {IMAGES[1:]} in status.images yet"]


@pytest.mark.parametrize("codes", [(0, 0, 1), (0, None, None), (1, 0, 0)])
def test_any_init_container_not_exited_0_is_a_problem(cluster, codes):
    cluster["pod"] = pod(exit_codes=codes)
    found = problems()
    assert found and all("not terminated with exit 0" in p for p in found), found


def test_a_pod_that_is_not_ready_is_a_problem(cluster):
    cluster["pod"] = pod(ready=False)
    assert len(problems()) == 1 and "not Ready" in problems()[0]


def test_an_image_without_init_container_is_a_problem(cluster):
    cluster["pod"] = pod(exit_codes=(0, 0), images=IMAGES[:1])
    assert problems() == [f"general-abcde has no init container for {IMAGES[1]}"]


def test_no_pod_on_the_node_is_a_problem(cluster, monkeypatch):
    monkeypatch.setattr(e2e, "kget", lambda *args: {"items": []})
    assert problems() == [f"0 pods of general on {NODE}"]
