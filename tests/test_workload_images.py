"""``prepull.images_from``: the images of the program's own workloads, as the component's ``images``."""

import pulumi_kubernetes as k8s
import pytest
from mock_helpers import output

import prepull
from prepull import PrePullInputError

POD = {"containers": [{"name": "app", "image": "ghcr.io/acme/api:1.4"}]}


def template(spec):
    return {"metadata": {"labels": {"app": "x"}}, "spec": spec}


def workloads():
    """One of each supported kind, plus things that must be ignored."""
    api = k8s.apps.v1.Deployment(
        "api",
        spec={
            "selector": {"match_labels": {"app": "x"}},
            "template": template(
                {
                    "init_containers": [{"name": "migrate", "image": "ghcr.io/acme/migrate:2"}],
                    "containers": [{"name": "app", "image": "ghcr.io/acme/api:1.4"}, {"name": "proxy", "image": "envoyproxy/envoy:v1.31"}],
                    "volumes": [{"name": "model", "image": {"reference": "ghcr.io/acme/model:7"}}],
                }
            ),
        },
    )
    worker = k8s.apps.v1.StatefulSet(
        "worker", spec={"selector": {}, "service_name": "w", "template": template({"containers": [{"name": "w", "image": "redis"}]})}
    )
    nightly = k8s.batch.v1.CronJob(
        "nightly",
        spec={
            "schedule": "@daily",
            "job_template": {"spec": {"template": template({"containers": [{"name": "j", "image": "busybox:1.37"}]})}},
        },
    )
    pod = k8s.core.v1.Pod(
        "debug",
        spec={
            "containers": [{"name": "d", "image": "docker.io/library/redis:latest"}],
            "ephemeral_containers": [{"name": "e", "image": "nicolaka/netshoot:v0.13"}],
        },
    )
    tmpl = k8s.core.v1.PodTemplate("tmpl", template=template({"containers": [{"name": "t", "image": "nginx:1.27"}]}))
    config = k8s.core.v1.ConfigMap("cfg", data={"image": "not/a-workload:1"})
    return api, worker, nightly, pod, tmpl, config


EXPECTED = [
    "ghcr.io/acme/migrate:2",
    "ghcr.io/acme/api:1.4",
    "envoyproxy/envoy:v1.31",
    "ghcr.io/acme/model:7",
    "redis",  # the Pod's docker.io/library/redis:latest is the same image: the first spelling stays
    "busybox:1.37",
    "nicolaka/netshoot:v0.13",
    "nginx:1.27",
]


def resolve(run_program, make):
    got = {}

    def program():
        return make().apply(lambda images: got.update(images=images))

    run = run_program(program)
    return got["images"], run


def test_every_container_kind_and_image_volume_in_order_without_duplicates(run_program):
    images, _ = resolve(run_program, lambda: prepull.images_from(*workloads()))
    assert images == EXPECTED


def test_lists_dicts_and_outputs_of_resources_like_a_charts(run_program):
    def make():
        api, worker, nightly, pod, tmpl, config = workloads()
        chart_resources = output([worker, config, [nightly]])  # what helm.v4.Chart(...).resources resolves to
        return prepull.images_from([api], chart_resources, {"a": pod, "b": tmpl})

    images, _ = resolve(run_program, make)
    assert images == EXPECTED


def test_prepulls_own_daemonsets_and_other_kinds_never_count(run_program):
    def make():
        own = prepull.ImagePrePuller("pp", {"images": ["nginx:1.27"]})
        ds = k8s.apps.v1.DaemonSet(
            "mine",
            metadata={"labels": {"prepull.dev/daemonset": "pp"}},
            spec={"selector": {}, "template": template({"containers": [{"name": "p", "image": "registry.k8s.io/pause:3.10.1"}]})},
        )
        other = k8s.apps.v1.DaemonSet(
            "agent", spec={"selector": {}, "template": template({"containers": [{"name": "a", "image": "fluent/fluent-bit:3"}]})}
        )
        return prepull.images_from(own, ds, other, k8s.core.v1.Namespace("ns"))

    images, _ = resolve(run_program, make)
    assert images == ["fluent/fluent-bit:3"]


def test_a_bad_reference_names_the_workload_and_container(run_program):
    def make():
        bad = k8s.apps.v1.Deployment(
            "api", spec={"selector": {}, "template": template({"containers": [{"name": "web", "image": "Bad::Ref"}]})}
        )
        return prepull.images_from(bad)

    with pytest.raises(PrePullInputError) as err:
        resolve(run_program, make)
    assert err.value.field == "images_from(Deployment 'api': containers['web'])"
    assert err.value.value == "Bad::Ref"


def test_the_component_pre_pulls_what_the_program_deploys(run_program):
    def program():
        c = prepull.ImagePrePuller("cache", {"images": prepull.images_from(*workloads()), "lanes": 2})
        return c.images

    run = run_program(program)
    daemon_sets = [r for r in run.requests if r.type == "kubernetes:apps/v1:DaemonSet"]
    expected = prepull.manifests({"images": EXPECTED, "lanes": 2}, "cache")
    assert [run.state(r)["spec"] for r in daemon_sets] == [o["spec"] for o in expected if o["kind"] == "DaemonSet"]


def test_unknown_during_preview_still_registers_the_daemonsets(run_program):
    got = {}

    def program():
        unknown = output(None, known=False)
        c = prepull.ImagePrePuller("cache", {"images": prepull.images_from(unknown), "lanes": 2})
        got["c"] = c

    run = run_program(program, preview=True)
    assert [r.name for r in run.requests if r.type == "kubernetes:apps/v1:DaemonSet"] == ["cache-ds-l1", "cache-ds-l2"]


def test_images_from_is_exported():
    assert "images_from" in prepull.__all__
    from prepull.workload_images import images_from

    assert prepull.images_from is images_from
