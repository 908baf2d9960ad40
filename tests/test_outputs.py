"""Value inputs given as Pulumi Outputs (issue 11): resolved into the same objects, validated on resolve.

Every test compares the registered children with ``prepull.manifests()`` of the resolved inputs,
so the Output path has no objects of its own.
"""

import pulumi
import pytest
from mock_helpers import RecordingMocks, RecordingMonitor, output

import prepull
from prepull import PrePullInputError
from prepull.core.plan import build_plan

TYPE = "prepull:index:ImagePrePuller"


def children(run):
    return [r for r in run.requests if r.type.startswith("kubernetes:")]


def registered_objects(run):
    """The registered children as manifest dicts, in registration order."""
    out = []
    for r in children(run):
        state = run.state(r)
        out.append({k: state[k] for k in sorted(state) if k not in ("apiVersion", "kind")})
    return out


def expected_objects(args, name="pp"):
    return [{k: o[k] for k in sorted(o) if k not in ("apiVersion", "kind")} for o in prepull.manifests(args, name)]


def run_component(run_program, make_args, name="pp", preview=False):
    got = {}

    def program():
        c = prepull.ImagePrePuller(name, make_args())
        got["component"] = c
        return pulumi.Output.all(namespace=c.namespace, images=c.images, names=c.daemon_set_names).apply(got.update)

    return run_program(program, preview=preview), got


def failing_run(make_args, preview=False):
    """Run a program whose component must fail; return (the error, every registration request)."""
    mocks = RecordingMocks()
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project="prepull", stack="dev", preview=preview, monitor=monitor)

    def program():
        c = prepull.ImagePrePuller("pp", make_args())
        return c.images

    with pytest.raises(PrePullInputError) as err:
        pulumi.runtime.test(program)()
    return err.value, monitor.requests


@pytest.mark.parametrize(
    "make_args, resolved",
    [
        pytest.param(lambda: {"images": [output("nginx:1.27"), "redis:7"]}, {"images": ["nginx:1.27", "redis:7"]}, id="one image"),
        pytest.param(
            lambda: {"images": output(["nginx:1.27", "redis:7", "busybox:1"]), "lanes": 2},
            {"images": ["nginx:1.27", "redis:7", "busybox:1"], "lanes": 2},
            id="whole list with lanes",
        ),
        pytest.param(
            lambda: {"images": ["redis:7"], "node_selector": output({"pool": "gpu"}), "labels": {"team": output("a")}},
            {"images": ["redis:7"], "node_selector": {"pool": "gpu"}, "labels": {"team": "a"}},
            id="selector and label",
        ),
        pytest.param(
            lambda: {
                "images": [{"image": output("nvcr.io/nvidia/cuda:12"), "platforms": ["linux/amd64"]}, "redis:7"],
                "image_pull_secrets": [output("regcred")],
                "tolerations": [{"key": output("gpu"), "operator": "Exists"}],
            },
            {
                "images": [{"image": "nvcr.io/nvidia/cuda:12", "platforms": ["linux/amd64"]}, "redis:7"],
                "image_pull_secrets": ["regcred"],
                "tolerations": [{"key": "gpu", "operator": "Exists"}],
            },
            id="platforms, secret, toleration",
        ),
        pytest.param(
            lambda: {"images": ["redis:7"], "namespace": output("cache"), "resources": {"memory_limit": output("64Mi")}},
            {"images": ["redis:7"], "namespace": "cache", "resources": {"memory_limit": "64Mi"}},
            id="namespace and resources",
        ),
    ],
)
def test_output_values_reach_the_objects(run_program, make_args, resolved):
    run, got = run_component(run_program, make_args)
    assert registered_objects(run) == expected_objects(resolved)
    plan = build_plan(resolved, "pp")
    assert got["images"] == [r.canonical for r in plan.images]
    assert got["namespace"] == plan.namespace


def test_an_awaitable_is_an_input_too(run_program):
    async def image():
        return "nginx:1.27"

    run, got = run_component(run_program, lambda: {"images": [image()]})
    assert registered_objects(run) == expected_objects({"images": ["nginx:1.27"]})


@pytest.mark.parametrize(
    "make_args, field, value",
    [
        (lambda: {"images": [output("NGINX::1")]}, "images[0]", "NGINX::1"),
        (lambda: {"images": output(["redis:7", "docker.io/library/redis:7"])}, "images[1]", "docker.io/library/redis:7"),
        (lambda: {"images": ["redis:7"], "image_pull_secrets": [output("Bad_Name")]}, "image_pull_secrets[0]", "Bad_Name"),
        (lambda: {"images": ["redis:7"], "namespace": output("kube-system")}, "namespace", "kube-system"),
        (lambda: {"images": output(["redis:7"]), "lanes": 2}, "lanes", 2),
        (
            lambda: {"images": ["redis:7"], "tolerations": [{"key": "a", "effect": output("Sometimes")}]},
            "tolerations[0].effect",
            "Sometimes",
        ),
    ],
)
def test_a_bad_output_value_fails_on_resolve_and_creates_no_child(make_args, field, value):
    error, requests = failing_run(make_args)
    assert (error.field, error.value) == (field, value)
    assert [r.type for r in requests] == [TYPE]


def test_preview_with_unknown_values_registers_every_child(run_program):
    make_args = lambda: {  # noqa: E731
        "images": [output(None, known=False), "redis:7"],
        "node_selector": {"pool": output(None, known=False)},
        "lanes": 2,
    }
    run, got = run_component(run_program, make_args, preview=True)
    shape = prepull.manifests({"images": ["a:1", "redis:7"], "lanes": 2}, "pp")
    assert [(r.type.rsplit(":", 1)[1], r.name) for r in children(run)] == [
        ("Namespace", "pp-ns"),
        ("NetworkPolicy", "pp-netpol"),
        ("DaemonSet", "pp-ds-l1"),
        ("DaemonSet", "pp-ds-l2"),
    ]
    assert len(children(run)) == len(shape)
    assert "images" not in got  # unknown during preview


def test_a_whole_unknown_image_list_previews_one_daemonset_per_lane(run_program):
    run, _ = run_component(run_program, lambda: {"images": output(None, known=False), "lanes": 3}, preview=True)
    assert [r.name for r in children(run) if r.type.endswith("DaemonSet")] == ["pp-ds-l1", "pp-ds-l2", "pp-ds-l3"]


def test_secret_values_stay_secret(run_program):
    run, _ = run_component(run_program, lambda: {"images": ["redis:7"], "image_pull_secrets": [output("regcred", secret=True)]})
    ds = next(r for r in children(run) if r.type.endswith("DaemonSet"))
    assert "4dabf18193072939515e22adb298388d" in str(ds.object)  # Pulumi's secret signature


@pytest.mark.parametrize(
    "make_args, field",
    [
        (lambda: {"images": ["redis:7"], "lanes": output(2)}, "lanes"),
        (lambda: {"images": ["redis:7"], "method": output("kubelet")}, "method"),
        (lambda: {"images": ["redis:7"], "startup_taint": {"key": output("k")}}, "startup_taint"),
        (lambda: {"images": ["redis:7"], "pull_retry_seconds": output(30)}, "pull_retry_seconds"),
        (lambda: {"images": [{"image": "redis:7", "platforms": output(["linux/amd64"])}]}, "images[0].platforms"),
    ],
)
def test_inputs_that_decide_the_objects_must_be_plain(make_args, field):
    error, requests = failing_run(make_args)
    assert error.field == field
    assert "must be a plain value" in error.reason
    assert requests == []  # raised in the constructor: not even the component registered


def test_platforms_cannot_name_an_image_given_as_an_output():
    error, requests = failing_run(lambda: {"images": [output("redis:7")], "image_platforms": {"redis:7": ["linux/amd64"]}})
    assert error.field == "image_platforms['redis:7']"
    assert "{image, platforms}" in error.reason
    error, _ = failing_run(lambda: {"images": output(["redis:7"]), "image_platforms": {"redis:7": ["linux/amd64"]}})
    assert error.field == "image_platforms"
    assert requests == []


def test_plain_problems_fail_at_construction_even_with_outputs():
    error, requests = failing_run(lambda: {"images": [output("redis:7"), "nginx::"]})
    assert error.field == "images[1]"
    assert requests == []
