"""The policy pack, called directly: ``validate`` / ``remediate`` on hand-built ResourceValidationArgs.

Round trips through pulumi-policy's analyzer servicer (enforcement levels,
remediation, preview unknowns, the pre-puller's own manifests, the example
config files) are in test_policy_server.py.
"""

import pytest
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

import prepull_policies as pp
from prepull_policies import patterns

DIGEST = "sha256:" + "ab" * 32
OTHER_DIGEST = "sha256:" + "cd" * 32

# Where each kind keeps its PodSpec, written out here independently of prepull.core.workloads.
KINDS = {
    "kubernetes:core/v1:Pod": lambda spec: {"spec": spec},
    "kubernetes:core/v1:PodTemplate": lambda spec: {"template": {"spec": spec}},
    "kubernetes:core/v1:ReplicationController": lambda spec: {"spec": {"template": {"spec": spec}}},
    "kubernetes:apps/v1:ReplicaSet": lambda spec: {"spec": {"template": {"spec": spec}}},
    "kubernetes:apps/v1:Deployment": lambda spec: {"spec": {"template": {"spec": spec}}},
    "kubernetes:apps/v1:StatefulSet": lambda spec: {"spec": {"template": {"spec": spec}}},
    "kubernetes:apps/v1:DaemonSet": lambda spec: {"spec": {"template": {"spec": spec}}},
    "kubernetes:batch/v1:Job": lambda spec: {"spec": {"template": {"spec": spec}}},
    "kubernetes:batch/v1:CronJob": lambda spec: {"spec": {"jobTemplate": {"spec": {"template": {"spec": spec}}}}},
}
ALL_TYPES = sorted(KINDS) + sorted(t + "Patch" for t in KINDS)


def props_for(type_: str, spec: dict) -> dict:
    """Props of a ``type_`` resource (a ``*Patch`` type shares its kind's layout) whose PodSpec is ``spec``."""
    return KINDS[type_.removesuffix("Patch")](spec)


def deployment(*images: str, where: str = "containers") -> dict:
    return props_for("kubernetes:apps/v1:Deployment", {where: [{"name": f"c{i}", "image": img} for i, img in enumerate(images)]})


def make_args(type_: str, props, config=None, name: str = "web") -> ResourceValidationArgs:
    opts = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], parent=None)
    return ResourceValidationArgs(type_, props, f"urn:pulumi:dev::proj::{type_}::{name}", name, opts, None, config=config)


def policy(name: str):
    return next(p for p in pp.POLICIES if p.name == name)


RESOURCE_POLICIES = [p.name for p in pp.POLICIES if isinstance(p, ResourceValidationPolicy)]


def run(name: str, type_: str, props, config=None, rname: str = "web") -> list:
    """Violations (messages) one policy reports for one resource."""
    messages: list = []
    result = policy(name).validate(make_args(type_, props, config, rname), lambda msg, urn=None: messages.append(msg))
    assert result is None  # the validations are synchronous: nothing is left to await
    return messages


def allow(*patterns: str, **extra) -> dict:
    return {"allowedImages": list(patterns), **extra}


DEPLOY = "kubernetes:apps/v1:Deployment"


# --- the pack's shape ------------------------------------------------------------


def test_policies_are_the_documented_ones_with_their_default_levels():
    assert [p.name for p in pp.POLICIES] == ["image-allowlist", "forbid-latest", "require-digest", "no-runtime-socket", "pack-config"]
    assert RESOURCE_POLICIES == ["image-allowlist", "forbid-latest", "require-digest", "no-runtime-socket"]
    assert isinstance(policy("pack-config"), StackValidationPolicy)
    assert {p.name: p.enforcement_level.value for p in pp.POLICIES} == {
        "image-allowlist": "mandatory",
        "forbid-latest": "mandatory",
        "require-digest": "disabled",
        "no-runtime-socket": "mandatory",
        "pack-config": "mandatory",
    }


def test_schema_defaults_are_the_code_defaults_and_unknown_keys_are_closed():
    for p in pp.POLICIES:
        full = pp.config_schema(p.name)
        assert full["additionalProperties"] is False
        assert {k: v["default"] for k, v in full["properties"].items()} == pp.DEFAULTS[p.name]
        published = p.config_schema.properties if p.config_schema else {}
        assert published == full["properties"]


def test_defaults_hold_without_any_config():
    # The SDK passes no defaults: an empty allowlist allows nothing, and sockets are flagged.
    [msg] = run("image-allowlist", DEPLOY, deployment("nginx:1.27"), config=None)
    assert "allowedImages: none: allowedImages is empty" in msg
    socket = props_for(DEPLOY, {"containers": [], "volumes": [{"name": "s", "hostPath": {"path": "/var/run/docker.sock"}}]})
    assert len(run("no-runtime-socket", DEPLOY, socket)) == 1
    assert run("forbid-latest", DEPLOY, deployment("nginx:1.27")) == []


# --- every kind, every container list ------------------------------------------------


@pytest.mark.parametrize("type_", ALL_TYPES)
def test_every_workload_kind_and_its_patch_is_checked(type_):
    props = props_for(type_, {"containers": [{"name": "app", "image": "evil.io/miner:1"}, {"name": "ok", "image": "nginx:1.27"}]})
    messages = run("image-allowlist", type_, props, allow("nginx:*"), rname="res")
    assert len(messages) == 1
    kind = type_.rsplit(":", 1)[1]
    assert messages[0].startswith(f'{kind} "res", container "app" in containers: image "evil.io/miner:1"')
    assert run("image-allowlist", type_, props, allow("nginx:*", "evil.io/miner:1")) == []


@pytest.mark.parametrize("where", ["containers", "initContainers", "ephemeralContainers"])
def test_every_container_list_is_checked(where):
    props = deployment("nginx:1.27", "quay.io/evil/x:2", where=where)
    [msg] = run("image-allowlist", DEPLOY, props, allow("nginx:*"))
    assert f'container "c1" in {where}: image "quay.io/evil/x:2" (quay.io/evil/x:2) is not allowed' in msg


def test_image_volumes_are_checked():
    spec = {
        "containers": [{"name": "app", "image": "nginx:1.27"}],
        "volumes": [
            {"name": "data", "emptyDir": {}},
            {"name": "model", "image": {"reference": "quay.io/evil/weights:1", "pullPolicy": "IfNotPresent"}},
        ],
    }
    [msg] = run("image-allowlist", DEPLOY, props_for(DEPLOY, spec), allow("nginx:*"))
    assert 'volume "model" in volumes: image "quay.io/evil/weights:1"' in msg


def test_images_pulled_through_the_docker_socket_are_checked():
    # The docker-socket pre-pull method names the pulled image only in `docker pull <image>`.
    container = {"name": "pull-x", "image": "docker:27.5.1-cli", "command": ["docker", "pull", "--quiet", "quay.io/evil/x:1"]}
    [msg] = run("image-allowlist", DEPLOY, props_for(DEPLOY, {"initContainers": [container]}), allow("docker.io/library/docker:*"))
    assert 'container "pull-x" (its `docker pull` command): image "quay.io/evil/x:1"' in msg


def test_resources_that_are_not_workloads_are_ignored():
    for type_ in ("kubernetes:core/v1:Service", "kubernetes:core/v1:ConfigMap", "prepull:index:ImagePrePuller", "aws:s3/bucket:Bucket"):
        props = {"spec": {"template": "x", "containers": [{"image": "evil.io/x"}]}, "data": {"image": "evil"}}
        for name in RESOURCE_POLICIES:
            assert run(name, type_, props, {"bogus": 1}) == []
    # ...but they note their config, so pack-config reports its errors even on a stack without workloads.
    assert [name for name, _ in pp.take_noted_configs()] == RESOURCE_POLICIES


def test_a_violation_names_kubernetes_name_when_it_differs():
    props = deployment("evil.io/x:1")
    props["metadata"] = {"name": "web-7f9c"}
    [msg] = run("image-allowlist", DEPLOY, props, allow("nginx:*"))
    assert msg.startswith('Deployment "web" (metadata.name "web-7f9c"), container "c0" in containers: image "evil.io/x:1"')


# --- normalisation and the pattern grammar --------------------------------------------

MATCHES = [
    # implicit docker.io and library/
    ("nginx:1.27", "docker.io/library/nginx:1.27", True),
    ("docker.io/library/nginx:1.27", "nginx:1.27", True),
    ("library/nginx", "nginx:1.27", True),
    ("docker.io/library/nginx:*", "nginx", True),  # no tag means :latest
    ("docker.io/library/nginx:*", "index.docker.io/library/nginx:1", True),
    ("nginx:1.27", "nginx:1.27.1", False),
    ("nginx:1.27*", "nginx:1.27.1", True),
    ("nginx", "nginx:anything", True),  # no tag part: any tag
    ("nginx:*", "nginx@" + DIGEST, False),  # a tag part needs a tag
    ("nginx:*", "nginx:1@" + DIGEST, True),
    # the registry must match exactly: no prefix or suffix tricks
    ("registry.example.com/*", "registry.example.com/app:1", True),
    ("registry.example.com/*", "registry.example.com.evil.io/app:1", False),
    ("registry.example.com/*", "evil.io/registry.example.com/app:1", False),
    ("registry.example.com/**", "registry.example.com.evil.io/team/app:1", False),
    ("registry.example.com/**", "evil-registry.example.com/app:1", False),
    ("registry.example.com/**", "registry.example.com:5000/app:1", False),
    ("registry.example.com:5000/**", "registry.example.com:5000/team/app:1", True),
    ("registry.example.com:5000/**", "registry.example.com/app:1", False),
    ("Registry.Example.COM/**", "registry.example.com/app:1", True),  # host names are case-insensitive
    ("localhost:5000/**", "localhost:5000/a/b:1", True),
    ("localhost/**", "localhost:5000/a:1", False),
    ("nginx:1.27", "registry.example.com/library/nginx:1.27", False),  # `nginx` means docker.io
    # `*` stays within a path segment, `**` crosses them
    ("registry.example.com/*", "registry.example.com/team/app:1", False),
    ("registry.example.com/**", "registry.example.com/team/app:1", True),
    ("ghcr.io/org/*", "ghcr.io/org/app:1", True),
    ("ghcr.io/org/*", "ghcr.io/org-evil/app:1", False),
    ("ghcr.io/org/*", "ghcr.io/org/team/app:1", False),
    ("ghcr.io/org/*-base:v*", "ghcr.io/org/py-base:v3", True),
    ("ghcr.io/org/*-base:v*", "ghcr.io/org/py-base:3", False),
    ("docker.io/*", "redis:7", True),  # one-component Docker Hub names are library/<name>
    ("docker.io/*", "bitnami/redis:7", False),
    ("docker.io/**", "bitnami/redis:7", True),
    ("docker.io/**", "redis:7", True),
    ("*", "redis:7", True),
    ("*", "ghcr.io/org/app:1", False),
    # digests
    ("ghcr.io/org/app@sha256:*", "ghcr.io/org/app:1@" + DIGEST, True),
    ("ghcr.io/org/app@sha256:*", "ghcr.io/org/app@" + DIGEST, True),
    ("ghcr.io/org/app@sha256:*", "ghcr.io/org/app:1", False),
    ("ghcr.io/org/app@" + DIGEST, "ghcr.io/org/app@" + DIGEST, True),
    ("ghcr.io/org/app@" + DIGEST, "ghcr.io/org/app@" + OTHER_DIGEST, False),
    ("ghcr.io/org/app@sha512:*", "ghcr.io/org/app@" + DIGEST, False),
    ("quay.io/org/app:v*@sha256:*", "quay.io/org/app:v1@" + DIGEST, True),
    ("quay.io/org/app:v*@sha256:*", "quay.io/org/app@" + DIGEST, False),
]


@pytest.mark.parametrize("pattern,image,allowed", MATCHES, ids=[f"{p}~{i}" for p, i, _ in MATCHES])
def test_pattern_matching(pattern, image, allowed):
    messages = run("image-allowlist", DEPLOY, deployment(image), allow(pattern))
    assert len(messages) == (0 if allowed else 1)


BAD_PATTERNS = [
    ("*.example.com/app", "the registry cannot contain wildcards"),
    ("registry.*.com/app", "the registry cannot contain wildcards"),
    ("Nginx:1", "must be lowercase"),
    ("nginx:", "is not a valid tag pattern"),
    ("nginx:1.2/3", "is not a valid"),
    ("nginx@sha256:12", "a sha256 digest has 64 hex characters"),
    ("nginx@md5:*", "is not a digest pattern"),
    ("nginx@*", "is not a digest pattern"),
    ("", "must be non-empty"),
    (" nginx", "no surrounding spaces"),
    ("ngi nx", "is not a valid pattern"),
    (7, "a pattern must be a string"),
]


@pytest.mark.parametrize("pattern,reason", BAD_PATTERNS, ids=[repr(p) for p, _ in BAD_PATTERNS])
def test_a_malformed_pattern_is_a_clear_config_error(pattern, reason):
    messages = run("image-allowlist", DEPLOY, deployment("nginx:1.27"), allow("nginx:*", pattern))
    assert len(messages) == 1  # the config error only: nothing is judged with a broken allowlist
    assert messages[0].startswith("invalid configuration of policy 'image-allowlist': allowedImages[1]: ")
    assert reason in messages[0]


# --- configuration errors ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["image-allowlist", "forbid-latest", "require-digest", "no-runtime-socket"])
def test_unknown_config_keys_are_reported_not_ignored(name):
    config = {**pp.DEFAULTS[name], "allowedImage": ["nginx:*"], "zzz": 1}
    messages = run(name, DEPLOY, deployment("nginx:1.27"), config)
    assert [m.split(": ", 1)[1].split(";")[0] for m in messages] == ["unknown setting 'allowedImage'", "unknown setting 'zzz'"]
    assert all(m.startswith(f"invalid configuration of policy {name!r}") for m in messages)


@pytest.mark.parametrize(
    "name,config,fragment",
    [
        ("image-allowlist", {"allowedImages": "nginx:*"}, "allowedImages must be a list of patterns"),
        ("image-allowlist", allow("nginx:*", mirrorRegistry="mirror"), "mirrorRegistry must be a registry host"),
        ("image-allowlist", allow("nginx:*", mirrorRegistry="mirror.example.com@x"), "mirrorRegistry must be a registry host"),
        ("image-allowlist", allow("nginx:*", mirrorRegistry=5), "mirrorRegistry must be a string"),
        ("no-runtime-socket", {"allowedHostPaths": ["var/run/docker.sock"]}, "allowedHostPaths[0] must be an absolute path"),
        ("no-runtime-socket", {"allowedHostPaths": "/var/run/docker.sock"}, "allowedHostPaths must be a list"),
    ],
)
def test_malformed_config_values_are_clear_errors(name, config, fragment):
    [msg] = run(name, DEPLOY, deployment("nginx:1.27"), config)
    assert fragment in msg


# Config values pulumi-policy hands over as lists and dicts: they cannot be cache keys, and must still be
# clear errors (the CLI's schema check rejects them, but the SDK and direct calls do not run it).
UNHASHABLE_CONFIGS = [
    (allow(["x"]), "allowedImages[0]: a pattern must be a string, got list ['x']"),
    (allow({"image": "nginx"}), "allowedImages[0]: a pattern must be a string, got dict {'image': 'nginx'}"),
    (allow("nginx:*", mirrorRegistry=["x"]), "mirrorRegistry must be a string such as 'mirror.example.com', got list ['x']"),
    (
        allow("nginx:*", mirrorRegistry={"host": "m.example.com"}),
        "mirrorRegistry must be a string such as 'mirror.example.com', got dict {'host': 'm.example.com'}",
    ),
]


@pytest.mark.parametrize("config,error", UNHASHABLE_CONFIGS, ids=["list-pattern", "dict-pattern", "list-mirror", "dict-mirror"])
def test_unhashable_config_values_are_clear_errors_not_crashes(config, error):
    assert pp.load_config("image-allowlist", config)[1] == [error]
    assert run("image-allowlist", DEPLOY, deployment("nginx:1.27"), config) == [
        f"invalid configuration of policy 'image-allowlist': {error}"
    ]
    assert pp.remediate_image_allowlist(make_args(DEPLOY, deployment("nginx:1.27"), config)) is None
    # ...and pack-config reports it once for the stack.
    assert run_pack_config() == [f"invalid configuration of policy 'image-allowlist': {error}"]


@pytest.mark.parametrize("value", [["x"], {"a": 1}, ("x",), None, 3])
def test_pattern_and_mirror_parsers_take_any_value(value):
    with pytest.raises(patterns.PatternError, match="must be a string"):
        patterns.parse_pattern(value)
    with pytest.raises(patterns.PatternError, match="must be a string"):
        patterns.parse_mirror(value)


def test_string_patterns_and_mirrors_are_still_parsed_once():
    assert patterns.parse_pattern("ghcr.io/cached/**") is patterns.parse_pattern("ghcr.io/cached/**")
    assert patterns.parse_mirror("mirror.example.com/cached") is patterns.parse_mirror("mirror.example.com/cached")


# --- pack-config, called directly (the servicer round trip is in test_policy_server.py) ---------------------


def run_pack_config(config=None) -> list:
    messages: list = []
    result = policy("pack-config").validate(StackValidationArgs([], config), lambda msg, urn=None: messages.append(msg))
    assert result is None
    return messages


def test_pack_config_reports_the_config_errors_of_every_policy_that_ran_once():
    # No workload at all: the resource policies report nothing, but note their config.
    for _ in range(3):
        for name, config in [
            ("image-allowlist", {"allowedImage": ["nginx:*"]}),
            ("forbid-latest", {"zzz": 1}),
            ("no-runtime-socket", None),
        ]:
            assert run(name, "kubernetes:core/v1:ConfigMap", {"data": {}}, config) == []
    assert run_pack_config() == [
        "invalid configuration of policy 'image-allowlist': unknown setting 'allowedImage'; known settings: allowedImages, mirrorRegistry",
        "invalid configuration of policy 'forbid-latest': unknown setting 'zzz'; this policy has no settings",
    ]
    # Reported once: what was noted is forgotten after the stack check.
    assert run_pack_config() == []


def test_pack_config_checks_its_own_settings_and_passes_valid_ones():
    run("image-allowlist", DEPLOY, deployment("nginx:1.27"), allow("nginx:*", mirrorRegistry="mirror.example.com"))
    run("no-runtime-socket", DEPLOY, deployment("nginx:1.27"), {"allowedHostPaths": ["/var/run/docker.sock"]})
    assert run_pack_config() == []
    assert run_pack_config({"enforcementLevel": "mandatory"}) == []
    assert run_pack_config({"allowedImages": []}) == [
        "invalid configuration of policy 'pack-config': unknown setting 'allowedImages'; this policy has no settings"
    ]


# --- message length ---------------------------------------------------------------------------------------

HUGE = 100_000


def assert_shortened(msg: str, value: str) -> None:
    assert len(msg) < 1_500, len(msg)
    assert f"{value[:200]}...[{len(value) - 200} more characters]" in msg
    assert value[:201] not in msg


@pytest.mark.parametrize("name", ["image-allowlist", "forbid-latest", "require-digest"])
def test_a_huge_unparsable_image_is_shortened_in_messages(name):
    image = "a" * HUGE
    [msg] = run(name, DEPLOY, deployment(image), allow("**") if name == "image-allowlist" else None)
    assert "cannot be parsed as an image reference" in msg
    assert_shortened(msg, image)


def test_long_parsable_images_are_shortened_too():
    image = "registry.example.com/" + "a" * 230 + ":" + "t" * 120
    [msg] = run("image-allowlist", DEPLOY, deployment(image), allow("nginx:*"))
    assert "is not allowed" in msg
    assert_shortened(msg, image)
    [msg] = run("require-digest", DEPLOY, deployment(image))
    assert "is not pinned by digest" in msg
    assert_shortened(msg, image)
    # Short images are quoted whole, with no marker.
    [msg] = run("require-digest", DEPLOY, deployment("nginx:1.27"))
    assert 'image "nginx:1.27" is not pinned' in msg and "more characters]" not in msg


def test_huge_names_paths_and_config_values_are_shortened():
    name = "n" * HUGE
    props = deployment("evil.io/x:1")
    props["metadata"] = {"name": "m" * HUGE}
    props["spec"]["template"]["spec"]["containers"][0]["name"] = "c" * HUGE
    [msg] = run("image-allowlist", DEPLOY, props, allow("nginx:*"), rname=name)
    assert len(msg) < 1_500 and msg.count("more characters]") == 3  # Pulumi name, metadata.name, container name

    path = "/" + "x/" * (HUGE // 2) + "docker.sock"
    [msg] = run("no-runtime-socket", DEPLOY, props_for(DEPLOY, {"containers": [], "volumes": [{"name": "s", "hostPath": {"path": path}}]}))
    assert len(msg) < 1_500 and msg.count("more characters]") == 2  # the path, quoted twice

    for config in [allow("a" * HUGE), allow("nginx:*", mirrorRegistry="m" * HUGE), {"allowedImages": "a" * HUGE}, {"x" * HUGE: 1}]:
        [msg] = run("image-allowlist", DEPLOY, deployment("nginx:1.27"), config)
        assert msg.startswith("invalid configuration of policy 'image-allowlist': ")
        assert len(msg) < 1_500 and "more characters]" in msg


def test_enforcement_level_in_config_is_accepted():
    # The CLI strips it, but a config handed over verbatim may still carry it.
    assert run("image-allowlist", DEPLOY, deployment("nginx:1.27"), allow("nginx:*", enforcementLevel="mandatory")) == []


# --- bad input in resources ------------------------------------------------------------------

BAD_IMAGES = [
    ("nginx:", "cannot be parsed"),
    ("Team/App:1", "must be lowercase"),
    ("nginx@sha256:123", "cannot be parsed"),
    ("", "cannot be parsed"),
    (" nginx:1", "no surrounding spaces"),
]


@pytest.mark.parametrize("name", ["image-allowlist", "forbid-latest", "require-digest"])
@pytest.mark.parametrize("image,fragment", BAD_IMAGES)
def test_malformed_images_are_violations(name, image, fragment):
    [msg] = run(name, DEPLOY, deployment(image), allow("**") if name == "image-allowlist" else None)
    assert f'container "c0" in containers: image "{image}" cannot be parsed as an image reference' in msg
    assert fragment in msg


BAD_SHAPES = [
    ({"spec": {"template": "oops"}}, "spec.template is a string, not an object: cannot find the pod template at spec.template.spec"),
    ({"spec": ["x"]}, "spec is a list, not an object: cannot find the pod template at spec.template.spec"),
    ({"spec": {"template": {"spec": 3}}}, "spec.template.spec is int, not an object (a PodSpec)"),
    (
        {"spec": {"template": {"spec": {"containers": {"name": "a", "image": "nginx"}}}}},
        "spec.template.spec.containers is an object, not a list",
    ),
    ({"spec": {"template": {"spec": {"initContainers": ["nginx:1"]}}}}, "spec.template.spec.initContainers[0] is a string, not an object"),
    (
        {"spec": {"template": {"spec": {"containers": [{"name": "a", "image": 42}]}}}},
        'the image of container "a" in containers is int, not a string',
    ),
    ({"spec": {"template": {"spec": {"containers": [{"name": "a"}]}}}}, 'container "a" in spec.template.spec.containers has no image'),
    (
        {"spec": {"template": {"spec": {"volumes": [{"name": "v", "image": "nginx:1"}]}}}},
        "spec.template.spec.volumes[0].image is a string, not an object",
    ),
    (
        {"spec": {"template": {"spec": {"volumes": [{"name": "v", "image": {}}]}}}},
        'image volume "v" in spec.template.spec.volumes has no image',
    ),
]


@pytest.mark.parametrize("name", ["image-allowlist", "forbid-latest", "require-digest"])
@pytest.mark.parametrize("props,fragment", BAD_SHAPES, ids=[f for _, f in BAD_SHAPES])
def test_unknown_pod_template_shapes_are_violations(name, props, fragment):
    [msg] = run(name, DEPLOY, props, allow("**") if name == "image-allowlist" else None)
    assert msg == f'Deployment "web": {fragment}'


def test_a_patch_may_leave_an_image_out():
    props = props_for("kubernetes:apps/v1:DeploymentPatch", {"containers": [{"name": "a", "resources": {}}]})
    assert run("image-allowlist", "kubernetes:apps/v1:DeploymentPatch", props, allow("nginx:*")) == []


def test_a_template_left_out_is_nothing_to_check():
    assert run("image-allowlist", "kubernetes:apps/v1:DaemonSetPatch", {"metadata": {"labels": {"a": "b"}}}, allow()) == []


def test_good_images_are_still_checked_next_to_bad_ones():
    props = props_for(DEPLOY, {"containers": [{"name": "a", "image": "nginx:"}, "junk", {"name": "b", "image": "evil.io/x:1"}]})
    messages = run("image-allowlist", DEPLOY, props, allow("nginx:*"))
    assert len(messages) == 3
    assert "initContainers" not in " ".join(messages)
    assert any('image "evil.io/x:1"' in m and "is not allowed" in m for m in messages)


# --- forbid-latest and require-digest -------------------------------------------------------


@pytest.mark.parametrize(
    "image,why",
    [
        ("nginx", 'no tag and no digest, which means "latest"'),
        ("registry.example.com:5000/app", 'no tag and no digest, which means "latest"'),
        ("nginx:latest", 'the tag "latest"'),
        ("registry.example.com:5000/app:latest", 'the tag "latest"'),
    ],
)
def test_forbid_latest_flags_moving_tags(image, why):
    [msg] = run("forbid-latest", DEPLOY, deployment(image))
    assert (
        msg == f'Deployment "web", container "c0" in containers: image "{image}" has {why}, '
        "which can move to another image; pin a version tag or a digest"
    )


@pytest.mark.parametrize(
    "image", ["nginx:1.27", "nginx:latest@" + DIGEST, "nginx@" + DIGEST, "nginx:Latest", "registry.example.com:5000/app:1"]
)
def test_forbid_latest_accepts_pinned_images(image):
    assert run("forbid-latest", DEPLOY, deployment(image)) == []


def test_require_digest():
    assert run("require-digest", DEPLOY, deployment("nginx@" + DIGEST, "ghcr.io/org/app:1@" + DIGEST)) == []
    [msg] = run("require-digest", DEPLOY, deployment("nginx@" + DIGEST, "ghcr.io/org/app:1"))
    assert msg == (
        'Deployment "web", container "c1" in containers: image "ghcr.io/org/app:1" is not pinned by digest; '
        'write it as "ghcr.io/org/app:1@sha256:<digest>"'
    )


# --- no-runtime-socket --------------------------------------------------------------------------


def socket_pod(*paths: str) -> dict:
    volumes = [{"name": f"v{i}", "hostPath": {"path": p, "type": "Socket"}} for i, p in enumerate(paths)]
    return props_for("kubernetes:core/v1:Pod", {"containers": [{"name": "a", "image": "nginx:1"}], "volumes": volumes})


@pytest.mark.parametrize(
    "path,directory_of",
    [
        ("/var/run/docker.sock", None),
        ("/run/containerd/containerd.sock", None),
        ("/var/run/crio/crio.sock", None),
        ("/var/run/cri-dockerd.sock", None),
        ("/opt/custom/docker.sock", None),  # a socket name anywhere
        ("//var/run//docker.sock/", None),
        ("/var/run/./../run/docker.sock", None),
        ("/var/run", "/var/run/containerd/containerd.sock"),  # a directory holding a socket
        ("/run/containerd", "/run/containerd/containerd.sock"),
        ("/", "/run/containerd/containerd.sock"),
    ],
)
def test_no_runtime_socket_flags_sockets_and_their_directories(path, directory_of):
    [msg] = run("no-runtime-socket", "kubernetes:core/v1:Pod", socket_pod("/var/log", path), rname="pp")
    contains = f", which contains the runtime socket {directory_of}" if directory_of else ""
    assert msg == (
        f'Pod "pp", volume "v1": hostPath "{path}"{contains} gives the pod control of the node\'s container runtime '
        f'(the legacy docker-socket pre-pull method); use method "kubelet", or list "{path}" in allowedHostPaths'
    )


@pytest.mark.parametrize("path", ["/var/log", "/var/lib/kubelet/pods", "/run/secrets", "/etc/docker.sock.d"])
def test_no_runtime_socket_ignores_other_host_paths(path):
    assert run("no-runtime-socket", "kubernetes:core/v1:Pod", socket_pod(path)) == []


def test_no_runtime_socket_allows_configured_paths_exactly():
    config = {"allowedHostPaths": ["//var/run/docker.sock/"]}
    assert run("no-runtime-socket", "kubernetes:core/v1:Pod", socket_pod("/var/run/docker.sock"), config) == []
    [msg] = run("no-runtime-socket", "kubernetes:core/v1:Pod", socket_pod("/var/run/docker.sock", "/run/docker.sock"), config)
    assert 'hostPath "/run/docker.sock"' in msg


def test_no_runtime_socket_reports_bad_shapes():
    props = props_for("kubernetes:core/v1:Pod", {"volumes": [{"name": "s", "hostPath": "/var/run/docker.sock"}]})
    [msg] = run("no-runtime-socket", "kubernetes:core/v1:Pod", props)
    assert msg == 'Pod "web": hostPath of volume "s" in spec.volumes is malformed: \'/var/run/docker.sock\''
    [msg] = run("no-runtime-socket", DEPLOY, {"spec": {"template": "oops"}})
    assert "spec.template is a string" in msg


# --- remediation, called directly --------------------------------------------------------------

MIRROR = allow("nginx:*", "ghcr.io/org/**", mirrorRegistry="mirror.example.com/cache")


def remediate(type_: str, props, config=MIRROR):
    return policy("image-allowlist").remediate(make_args(type_, props, config))


def test_remediation_rewrites_allowed_images_to_the_mirror_in_every_list():
    spec = {
        "initContainers": [{"name": "i", "image": "nginx:1.27"}],
        "containers": [{"name": "c", "image": "ghcr.io/org/app:1@" + DIGEST}, {"name": "x", "image": "evil.io/x:1"}],
        "ephemeralContainers": [{"name": "e", "image": "nginx"}],
        "volumes": [{"name": "v", "image": {"reference": "ghcr.io/org/model:2"}}],
    }
    new = remediate("kubernetes:batch/v1:CronJob", props_for("kubernetes:batch/v1:CronJob", spec))
    out = new["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert out["initContainers"][0]["image"] == "mirror.example.com/cache/docker.io/library/nginx:1.27"
    assert out["containers"][0]["image"] == "mirror.example.com/cache/ghcr.io/org/app:1@" + DIGEST
    assert out["containers"][1]["image"] == "evil.io/x:1"  # not allowed: left for the validation to report
    assert out["ephemeralContainers"][0]["image"] == "mirror.example.com/cache/docker.io/library/nginx:latest"
    assert out["volumes"][0]["image"]["reference"] == "mirror.example.com/cache/ghcr.io/org/model:2"


def test_remediation_rewrites_docker_pull_operands():
    container = {"name": "p", "image": "ghcr.io/org/docker:27", "command": ["docker", "pull", "--quiet", "nginx:1.27"]}
    new = remediate(DEPLOY, props_for(DEPLOY, {"initContainers": [container]}))
    c = new["spec"]["template"]["spec"]["initContainers"][0]
    assert c["command"] == ["docker", "pull", "--quiet", "mirror.example.com/cache/docker.io/library/nginx:1.27"]
    assert c["image"] == "mirror.example.com/cache/ghcr.io/org/docker:27"


def test_remediation_does_nothing_without_a_mirror_or_with_a_broken_config():
    props = deployment("nginx:1.27")
    assert remediate(DEPLOY, props, allow("nginx:*")) is None
    assert remediate(DEPLOY, props, {**MIRROR, "bogus": True}) is None
    assert remediate(DEPLOY, props, {**MIRROR, "allowedImages": ["*.x/y"]}) is None
    assert remediate("kubernetes:core/v1:Service", {"spec": {}}) is None
    assert remediate(DEPLOY, {"spec": {"template": "oops"}}) is None


def test_remediation_is_idempotent_and_mirrored_images_pass_validation():
    new = remediate(DEPLOY, deployment("nginx:1.27", "ghcr.io/org/app:1"))
    assert remediate(DEPLOY, new) is None
    assert run("image-allowlist", DEPLOY, new, MIRROR) == []


def test_with_a_mirror_allowed_images_elsewhere_are_violations_and_mirrored_ones_are_judged_by_origin():
    messages = run("image-allowlist", DEPLOY, deployment("nginx:1.27", "mirror.example.com/cache/quay.io/evil/x:1"), MIRROR)
    assert messages == [
        'Deployment "web", container "c0" in containers: image "nginx:1.27" must be pulled through the mirror mirror.example.com/cache: '
        'use "mirror.example.com/cache/docker.io/library/nginx:1.27" (enforcementLevel "remediate" rewrites it)',
        'Deployment "web", container "c1" in containers: image "mirror.example.com/cache/quay.io/evil/x:1" '
        "(mirror.example.com/cache/quay.io/evil/x:1) is not allowed; allowedImages: nginx:*, ghcr.io/org/**",
    ]


def test_images_from_registries_with_ports_cannot_be_mirrored():
    config = allow("registry.example.com:5000/**", mirrorRegistry="mirror.example.com")
    assert remediate(DEPLOY, deployment("registry.example.com:5000/app:1"), config) is None
    [msg] = run("image-allowlist", DEPLOY, deployment("registry.example.com:5000/app:1"), config)
    assert "cannot be written as a mirror path (its registry has a port)" in msg


def test_output_is_deterministic():
    props = props_for(DEPLOY, {"containers": [{"name": f"c{i}", "image": f"quay.io/x/app{i}:1"} for i in range(20)]})
    first = run("image-allowlist", DEPLOY, props, allow("nginx:*", "ghcr.io/**"))
    assert first == run("image-allowlist", DEPLOY, props, allow("nginx:*", "ghcr.io/**"))
    assert [m.split('"')[3] for m in first] == [f"c{i}" for i in range(20)]
