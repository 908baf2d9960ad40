"""The policy pack through pulumi-policy's own analyzer servicer, as the Pulumi CLI drives it.

No CLI runs here: analyzer_cli.py re-implements what the CLI does with a
``--policy-pack-config`` file, and the tests call ``Configure``, ``Remediate``,
``Analyze`` and ``AnalyzeStack`` on ``_PolicyAnalyzerServicer``. What ties the
pack to the repository it comes from (the docs' examples, the stacks' configs,
the prepull release pin) is tested there, in tests/contracts/test_policy_pack_checkout.py.
"""

import re
import runpy
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from analyzer_cli import (
    DIGEST_ONLY_MIRRORED,
    PACK,
    PROTO_TO_LEVEL,
    STACK,
    analyze,
    analyze_objects,
    analyze_stack,
    cli_config,
    configure,
    configure_raw,
    load_json,
    new_servicer,
    remediate,
    type_token,
)
from google.protobuf import json_format
from pulumi.runtime import proto

import prepull
import prepull_policies as pp
import pulumi_policy
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

DIGEST = "sha256:" + "ab" * 32
SECRET_SIG = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270"}


def deployment(*images: str) -> dict:
    return {"spec": {"template": {"spec": {"containers": [{"name": f"c{i}", "image": img} for i, img in enumerate(images)]}}}}


DEPLOY = "kubernetes:apps/v1:Deployment"
ALLOW = {"allowedImages": ["nginx:*", "ghcr.io/org/**"]}


# --- analyzer info ------------------------------------------------------------------------


def test_analyzer_info_publishes_levels_schemas_and_defaults():
    info = new_servicer().GetAnalyzerInfo(None, None)
    assert {p.name: PROTO_TO_LEVEL[p.enforcementLevel] for p in info.policies} == {
        name: level.value for name, level in pp.ENFORCEMENT_DEFAULTS.items()
    }
    for p in info.policies:
        props = json_format.MessageToDict(p.configSchema).get("properties", {})
        assert {k: v["default"] for k, v in props.items()} == pp.DEFAULTS[p.name]


def test_the_cli_fills_the_same_defaults_the_code_applies():
    config = cli_config(new_servicer(), {})
    assert {name: entry["props"] for name, entry in config.items()} == pp.DEFAULTS


def test_unknown_keys_pass_the_cli_schema_check_but_the_policy_reports_them():
    # The CLI's object schema has no additionalProperties: the code-side check is what catches typos.
    servicer = configure(new_servicer(), {"image-allowlist": {"allowedImage": ["nginx:*"]}})
    [(policy, level, message)] = analyze(servicer, DEPLOY, deployment("nginx:1.27"))
    assert (policy, level) == ("image-allowlist", "mandatory")
    assert (
        "invalid configuration of policy 'image-allowlist': unknown setting 'allowedImage'; known settings: allowedImages, mirrorRegistry"
        in message
    )


def test_the_full_schema_rejects_unknown_keys():
    with pytest.raises(jsonschema.ValidationError, match="allowedImage"):
        jsonschema.validate({"allowedImage": []}, pp.config_schema("image-allowlist"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"image-allowlist": {"allowedImage": []}}, pp.pack_config_schema())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"image-allowlst": "mandatory"}, pp.pack_config_schema())


def test_the_cli_rejects_wrongly_typed_settings_before_the_policy_runs():
    with pytest.raises(jsonschema.ValidationError):
        cli_config(new_servicer(), {"image-allowlist": {"allowedImages": "nginx:*"}})


# --- enforcement levels ----------------------------------------------------------------------


def test_default_levels_through_the_servicer():
    servicer = configure(new_servicer(), {"image-allowlist": ALLOW})
    diags = analyze(servicer, DEPLOY, deployment("evil.io/x:1", "nginx"))
    assert [(p, level) for p, level, _ in diags] == [("image-allowlist", "mandatory"), ("forbid-latest", "mandatory")]
    # The servicer prefixes the policy description to the violation message.
    assert diags[0][2].startswith(pp.POLICIES[0].description + '\nDeployment "web", container "c0" in containers: image "evil.io/x:1"')


@pytest.mark.parametrize("level", ["advisory", "mandatory"])
def test_configured_levels_are_reported(level):
    servicer = configure(new_servicer(), {"image-allowlist": {"enforcementLevel": level, **ALLOW}, "require-digest": level})
    diags = analyze(servicer, DEPLOY, deployment("evil.io/x:1"))
    assert [(p, lv) for p, lv, _ in diags] == [("image-allowlist", level), ("require-digest", level)]


def test_disabled_policies_do_not_run():
    servicer = configure(new_servicer(), {"all": "disabled"})
    assert analyze(servicer, DEPLOY, deployment("evil.io/x")) == []


def test_all_applies_one_level_to_every_policy_including_require_digest():
    servicer = configure(new_servicer(), {"all": "advisory", "image-allowlist": ALLOW})
    diags = analyze(servicer, DEPLOY, deployment("nginx"))
    assert [(p, lv) for p, lv, _ in diags] == [("forbid-latest", "advisory"), ("require-digest", "advisory")]


def test_require_digest_is_off_unless_configured():
    servicer = configure(new_servicer(), {"image-allowlist": ALLOW})
    assert analyze(servicer, DEPLOY, deployment("nginx:1.27")) == []
    servicer = configure(new_servicer(), {"image-allowlist": ALLOW, "require-digest": "mandatory"})
    assert [p for p, _, _ in analyze(servicer, DEPLOY, deployment("nginx:1.27"))] == ["require-digest"]


# --- remediation ---------------------------------------------------------------------------------

MIRRORED = {"image-allowlist": {"enforcementLevel": "remediate", **ALLOW, "mirrorRegistry": "mirror.example.com"}}


def test_remediate_then_analyze_like_the_engine():
    servicer = configure(new_servicer(), MIRRORED)
    props = deployment("nginx:1.27", "ghcr.io/org/app@" + DIGEST, "evil.io/x:1")
    response = remediate(servicer, DEPLOY, props)
    [fix] = response.remediations
    assert (fix.policyName, fix.diagnostic) == ("image-allowlist", "")
    fixed = json_format.MessageToDict(fix.properties)
    images = [c["image"] for c in fixed["spec"]["template"]["spec"]["containers"]]
    assert images == ["mirror.example.com/docker.io/library/nginx:1.27", f"mirror.example.com/ghcr.io/org/app@{DIGEST}", "evil.io/x:1"]
    # The engine analyzes the remediated properties; what is left is reported as mandatory.
    [(policy, level, message)] = analyze(servicer, DEPLOY, fixed)
    assert (policy, level) == ("image-allowlist", "mandatory")
    assert 'image "evil.io/x:1"' in message


def test_remediate_level_reports_unfixed_violations_as_mandatory():
    servicer = configure(new_servicer(), MIRRORED)
    diags = analyze(servicer, DEPLOY, deployment("nginx:1.27"))
    assert [(p, lv) for p, lv, _ in diags] == [("image-allowlist", "mandatory")]
    assert "must be pulled through the mirror mirror.example.com" in diags[0][2]


def test_remediation_runs_only_at_the_remediate_level():
    servicer = configure(new_servicer(), {"image-allowlist": {**MIRRORED["image-allowlist"], "enforcementLevel": "mandatory"}})
    assert list(remediate(servicer, DEPLOY, deployment("nginx:1.27")).remediations) == []


def test_nothing_to_remediate_sends_no_remediation():
    servicer = configure(new_servicer(), MIRRORED)
    response = remediate(servicer, DEPLOY, deployment("mirror.example.com/docker.io/library/nginx:1.27", "evil.io/x:1"))
    assert list(response.remediations) == []
    assert list(remediate(servicer, "kubernetes:core/v1:ConfigMap", {"data": {"image": "nginx:1"}}).remediations) == []


def test_remediation_keeps_secret_images_secret():
    servicer = configure(new_servicer(), MIRRORED)
    props = {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": {**SECRET_SIG, "value": "nginx:1.27"}}]}}}}
    [fix] = remediate(servicer, DEPLOY, props).remediations
    image = json_format.MessageToDict(fix.properties)["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == {**SECRET_SIG, "value": "mirror.example.com/docker.io/library/nginx:1.27"}


# --- preview: unknown values -------------------------------------------------------------------------


def test_unknown_images_during_preview_do_not_hide_known_violations():
    servicer = configure(new_servicer(), {"image-allowlist": ALLOW})
    diags = analyze(servicer, DEPLOY, deployment("evil.io/x:1", UNKNOWN_STRING_VALUE))
    assert [(p, lv) for p, lv, _ in diags] == [
        ("image-allowlist", "mandatory"),
        ("image-allowlist", "advisory"),
        ("forbid-latest", "advisory"),
    ]
    assert 'image "evil.io/x:1"' in diags[0][2]
    assert diags[1][2] == (
        "can't run policy 'image-allowlist' from policy pack 'prepull-policies@v0.1.0' during preview: "
        "string value at .spec.template.spec.containers.c1.image can't be known during preview"
    )


def test_unknown_values_are_waited_for_only_by_the_policies_that_read_them():
    servicer = configure(new_servicer(), {"image-allowlist": ALLOW})
    props = deployment("nginx:1.27")
    props["spec"]["template"]["spec"]["volumes"] = [{"name": "h", "hostPath": {"path": UNKNOWN_STRING_VALUE}}]
    [(policy, level, message)] = analyze(servicer, DEPLOY, props)
    assert (policy, level) == ("no-runtime-socket", "advisory")
    assert "volumes.0.hostPath.path can't be known during preview" in message


def test_an_unknown_pod_template_is_reported_as_unknown_not_as_malformed():
    servicer = configure(new_servicer(), {"image-allowlist": ALLOW})
    diags = analyze(servicer, DEPLOY, {"spec": {"template": UNKNOWN_STRING_VALUE}})
    assert {lv for _, lv, _ in diags} == {"advisory"}
    assert all("during preview" in m for _, _, m in diags)


def test_malformed_resources_never_crash_the_servicer():
    servicer = configure(new_servicer(), {"image-allowlist": ALLOW, "require-digest": "mandatory"})
    image_policies = {"image-allowlist", "forbid-latest", "require-digest"}
    cases = [
        ({"spec": {"template": "x"}}, image_policies | {"no-runtime-socket"}),
        ({"spec": 5}, image_policies | {"no-runtime-socket"}),
        ({"spec": {"template": {"spec": {"containers": [1, "a", None]}}}}, image_policies),
        ({"spec": {"template": {"spec": {"volumes": "v"}}}}, image_policies | {"no-runtime-socket"}),
    ]
    for props, policies in cases:
        diags = analyze(servicer, DEPLOY, props)
        assert diags and all(lv == "mandatory" for _, lv, _ in diags)
        assert {p for p, _, _ in diags} == policies


# --- pack-config: config errors once per stack, mandatory ----------------------------------------------

PACK_DESCRIPTION = next(p.description for p in pp.POLICIES if p.name == "pack-config")


def test_pack_config_is_published_as_a_mandatory_stack_policy():
    info = new_servicer().GetAnalyzerInfo(None, None)
    [p] = [p for p in info.policies if p.name == "pack-config"]
    assert (p.policy_type, PROTO_TO_LEVEL[p.enforcementLevel]) == (proto.PolicyType.POLICY_TYPE_STACK, "mandatory")


def test_a_config_error_of_an_advisory_policy_fails_a_stack_without_workloads():
    servicer = configure(
        new_servicer(),
        {
            "image-allowlist": {"enforcementLevel": "advisory", "allowedImage": ["nginx:*"]},
            "forbid-latest": {"enforcementLevel": "advisory", "zzz": 1},
        },
    )
    # No workload: the resource policies report nothing for the stack resource or a ConfigMap...
    assert analyze(servicer, STACK, {}, "proj-dev") == []
    assert analyze(servicer, "kubernetes:core/v1:ConfigMap", {"data": {"image": "nginx"}}, "cm") == []
    # ...and the stack check reports each config error once, as mandatory.
    assert analyze_stack(servicer, [(STACK, {}, "proj-dev"), ("kubernetes:core/v1:ConfigMap", {}, "cm")]) == [
        (
            "pack-config",
            "mandatory",
            f"{PACK_DESCRIPTION}\ninvalid configuration of policy 'image-allowlist': unknown setting 'allowedImage'; "
            "known settings: allowedImages, mirrorRegistry",
        ),
        (
            "pack-config",
            "mandatory",
            f"{PACK_DESCRIPTION}\ninvalid configuration of policy 'forbid-latest': unknown setting 'zzz'; this policy has no settings",
        ),
    ]


def test_per_workload_config_errors_keep_the_policy_level_and_the_stack_check_reports_them_once():
    servicer = configure(new_servicer(), {"image-allowlist": {"enforcementLevel": "advisory", "allowedImage": ["nginx:*"]}})
    for name in ("a", "b", "c"):
        [(policy, level, message)] = analyze(servicer, DEPLOY, deployment("nginx:1.27"), name)
        assert (policy, level) == ("image-allowlist", "advisory")
        assert "unknown setting 'allowedImage'" in message
    [(policy, level, message)] = analyze_stack(servicer)
    assert (policy, level) == ("pack-config", "mandatory")
    assert "invalid configuration of policy 'image-allowlist': unknown setting 'allowedImage'" in message


def test_a_valid_config_passes_the_stack_check():
    servicer = configure(new_servicer(), {"image-allowlist": ALLOW, "require-digest": "advisory"})
    analyze(servicer, DEPLOY, deployment("nginx:1.27"))
    assert analyze_stack(servicer) == []


def test_the_stack_check_sees_only_policies_that_ran():
    # A disabled policy is never called, so its (unused) config is not checked: the documented limitation.
    servicer = configure(new_servicer(), {"image-allowlist": ALLOW, "forbid-latest": {"enforcementLevel": "disabled", "zzz": 1}})
    analyze(servicer, DEPLOY, deployment("nginx:1.27"))
    assert analyze_stack(servicer) == []
    # Without any resource analyzed first (the engine always sends the stack resource) there is nothing to check.
    servicer = configure(new_servicer(), {"image-allowlist": {"allowedImage": []}})
    assert analyze_stack(servicer) == []


def test_the_stack_check_can_be_set_to_another_level_or_disabled():
    bad = {"enforcementLevel": "advisory", "allowedImage": []}
    servicer = configure(new_servicer(), {"image-allowlist": bad, "pack-config": "advisory"})
    analyze(servicer, STACK, {}, "proj-dev")
    assert [(p, lv) for p, lv, _ in analyze_stack(servicer)] == [("pack-config", "advisory")]
    servicer = configure(new_servicer(), {"image-allowlist": bad, "pack-config": "disabled"})
    analyze(servicer, STACK, {}, "proj-dev")
    assert analyze_stack(servicer) == []


def test_pack_config_reports_its_own_unknown_settings():
    servicer = configure(new_servicer(), {"pack-config": {"enforcementLevel": "mandatory", "strict": True}})
    analyze(servicer, STACK, {}, "proj-dev")
    [(policy, level, message)] = analyze_stack(servicer)
    assert (policy, level) == ("pack-config", "mandatory")
    assert message.endswith("invalid configuration of policy 'pack-config': unknown setting 'strict'; this policy has no settings")


UNHASHABLE = [
    ({"allowedImages": [["x"]]}, "allowedImages[0]: a pattern must be a string, got list ['x']"),
    ({"allowedImages": [{"image": "nginx"}]}, "allowedImages[0]: a pattern must be a string, got dict {'image': 'nginx'}"),
    (
        {"allowedImages": ["nginx:*"], "mirrorRegistry": ["x"]},
        "mirrorRegistry must be a string such as 'mirror.example.com', got list ['x']",
    ),
    (
        {"allowedImages": ["nginx:*"], "mirrorRegistry": {"a": "b"}},
        "mirrorRegistry must be a string such as 'mirror.example.com', got dict {'a': 'b'}",
    ),
]


@pytest.mark.parametrize("props,error", UNHASHABLE, ids=["list-pattern", "dict-pattern", "list-mirror", "dict-mirror"])
@pytest.mark.parametrize("level", ["advisory", "remediate"])
def test_unhashable_config_values_are_reported_not_crashes(props, error, level):
    # The CLI's schema check refuses these; a config that skips it (the SDK's callers) must still not crash the pack.
    with pytest.raises(jsonschema.ValidationError):
        cli_config(new_servicer(), {"image-allowlist": props})
    servicer = configure_raw(new_servicer(), {"image-allowlist": (level, props)})
    assert list(remediate(servicer, DEPLOY, deployment("nginx:1.27")).remediations) == []
    diags = analyze(servicer, DEPLOY, deployment("nginx:1.27"))
    assert [(p, m.split("\n", 1)[1]) for p, _, m in diags] == [
        ("image-allowlist", f"invalid configuration of policy 'image-allowlist': {error}")
    ]
    assert analyze_stack(servicer) == [
        ("pack-config", "mandatory", f"{PACK_DESCRIPTION}\ninvalid configuration of policy 'image-allowlist': {error}")
    ]


def test_a_huge_image_gives_a_short_message_through_the_servicer():
    servicer = configure(new_servicer(), {"image-allowlist": ALLOW, "require-digest": "mandatory"})
    diags = analyze(servicer, DEPLOY, deployment("x" * 100_000))
    assert [p for p, _, _ in diags] == ["image-allowlist", "forbid-latest", "require-digest"]
    for _, _, message in diags:
        assert len(message) < 1_500
        assert "x" * 200 + "...[99800 more characters]" in message


# --- the pre-puller's own manifests ------------------------------------------------------------------

HELPERS = ["docker.io/library/busybox:*", "registry.k8s.io/pause:*"]
PREPULL_IMAGES = ["nginx:1.27", "ghcr.io/org/app:2.1@" + DIGEST]


def daemon_sets(objects: list) -> list:
    return [o for o in objects if o["kind"] == "DaemonSet"]


def test_a_compliant_pre_puller_passes():
    objects = prepull.manifests({"images": PREPULL_IMAGES, "lanes": 2})
    assert len(daemon_sets(objects)) == 2
    servicer = configure(new_servicer(), {"image-allowlist": {"allowedImages": ["nginx:*", "ghcr.io/org/**", *HELPERS]}})
    assert analyze_objects(servicer, objects) == []


def test_the_helper_images_must_be_allowed_too():
    servicer = configure(new_servicer(), {"image-allowlist": {"allowedImages": ["nginx:*", "ghcr.io/org/**"]}})
    diags = analyze_objects(servicer, prepull.manifests({"images": PREPULL_IMAGES}))
    flagged = sorted(m.split('image "')[1].split('"')[0] for _, _, m in diags)
    assert flagged == ["docker.io/library/busybox:1.37.0-musl", "registry.k8s.io/pause:3.10.1"]


def test_a_pre_puller_of_an_unlisted_image_fails():
    servicer = configure(new_servicer(), {"image-allowlist": {"allowedImages": ["nginx:*", *HELPERS]}})
    diags = analyze_objects(servicer, prepull.manifests({"images": ["nginx:1.27", "quay.io/evil/miner:1"]}))
    [(policy, level, message)] = diags
    assert (policy, level) == ("image-allowlist", "mandatory")
    assert 'DaemonSet "prepull"' in message
    assert 'in initContainers: image "quay.io/evil/miner:1" (quay.io/evil/miner:1) is not allowed' in message


def test_a_gated_pre_puller_needs_its_untaint_image_allowed():
    # The new-node gate adds a kubectl step (untaint_image); docs/policies.md lists it with the helpers.
    objects = prepull.manifests({"images": ["nginx:1.27"], "startup_taint": {"key": "prepull.dev/not-ready"}, "remove_startup_taint": True})
    servicer = configure(new_servicer(), {"image-allowlist": {"allowedImages": ["nginx:*", *HELPERS]}})
    flagged = [m.split('image "')[1].split('"')[0] for _, _, m in analyze_objects(servicer, objects)]
    assert flagged == ["registry.k8s.io/kubectl:v1.32.3"]
    servicer = configure(new_servicer(), {"image-allowlist": {"allowedImages": ["nginx:*", *HELPERS, "registry.k8s.io/kubectl:*"]}})
    assert analyze_objects(servicer, objects) == []


def test_image_volume_pre_pullers_are_checked():
    servicer = configure(new_servicer(), {"image-allowlist": {"allowedImages": ["nginx:*", *HELPERS]}})
    objects = prepull.manifests({"images": ["nginx:1.27", "quay.io/evil/miner:1"], "method": "image-volume"})
    [(_, _, message)] = analyze_objects(servicer, objects)
    assert 'in volumes: image "quay.io/evil/miner:1"' in message


def test_docker_socket_pre_pullers_are_flagged_and_their_pulled_images_checked():
    objects = prepull.manifests({"images": ["nginx:1.27", "quay.io/evil/miner:1"], "method": "docker-socket"})
    servicer = configure(new_servicer(), {"image-allowlist": {"allowedImages": ["nginx:*", "docker.io/library/docker:*", *HELPERS]}})
    diags = analyze_objects(servicer, objects)
    assert [p for p, _, _ in diags] == ["image-allowlist", "no-runtime-socket"]
    assert '(its `docker pull` command): image "quay.io/evil/miner:1"' in diags[0][2]
    assert 'volume "docker-socket": hostPath "/var/run/docker.sock"' in diags[1][2]
    # Explicitly allowing the socket clears it.
    servicer = configure(
        new_servicer(),
        {
            "image-allowlist": {"allowedImages": ["**", "quay.io/evil/*", "registry.k8s.io/**"]},
            "no-runtime-socket": {"allowedHostPaths": ["/var/run/docker.sock"]},
        },
    )
    assert analyze_objects(servicer, objects) == []


# --- the example config files and the pack's files ---------------------------------------------------


@pytest.mark.parametrize("name", ["config.dev.json", "config.prod.json", None])
def test_example_configs_are_valid(name):
    config = load_json(name) if name else DIGEST_ONLY_MIRRORED
    jsonschema.validate(config, pp.pack_config_schema())
    cli_config(new_servicer(), config)
    for policy, value in config.items():
        if isinstance(value, dict):
            assert pp.load_config(policy, value)[1] == []


def test_dev_config_passes_a_typical_pre_puller():
    objects = prepull.manifests(
        {"images": ["nginx:1.27", "registry.k8s.io/ingress-nginx/controller:v1.12.0", "ghcr.io/example-org/api:2.3.1"], "lanes": 2}
    )
    servicer = configure(new_servicer(), load_json("config.dev.json"))
    assert analyze_objects(servicer, objects) == []


def test_a_mirrored_digest_only_config_remediates_a_digest_pinned_pre_puller():
    pause = "registry.k8s.io/pause:3.10.1@" + DIGEST
    helper = "docker.io/library/busybox:1.37.0-musl@" + DIGEST
    objects = prepull.manifests({"images": ["ghcr.io/example-org/api:2.3.1@" + DIGEST], "pause_image": pause, "helper_image": helper})
    servicer = configure(new_servicer(), DIGEST_ONLY_MIRRORED)
    for obj in daemon_sets(objects):
        [fix] = remediate(servicer, type_token(obj), obj).remediations
        fixed = json_format.MessageToDict(fix.properties)
        spec = fixed["spec"]["template"]["spec"]
        assert all(c["image"].startswith("mirror.example.com/cache/") for c in spec["initContainers"] + spec["containers"])
        assert analyze(servicer, type_token(obj), fixed, obj["metadata"]["name"]) == []
    # Without digests the same pre-puller is refused.
    diags = analyze_objects(servicer, prepull.manifests({"images": ["ghcr.io/example-org/api:2.3.1"]}))
    assert {p for p, _, _ in diags} == {"image-allowlist", "require-digest"}


def test_the_prod_config_refuses_an_unlisted_image():
    servicer = configure(new_servicer(), load_json("config.prod.json"))
    diags = analyze_objects(servicer, prepull.manifests({"images": ["quay.io/evil/miner:1"]}))
    assert ("image-allowlist", "mandatory") in {(p, lvl) for p, lvl, _ in diags}


def test_pulumi_policy_yaml():
    doc = yaml.safe_load((PACK / "PulumiPolicy.yaml").read_text())
    assert doc["runtime"]["name"] == "python"
    assert isinstance(doc["version"], str) and doc["version"].count(".") == 2


def requirement_lines(name: str) -> list:
    lines = [line.split("#")[0].strip() for line in (PACK / name).read_text().splitlines()]
    return [line for line in lines if line]


def test_requirements_are_pinned_and_need_nothing_outside_the_folder():
    reqs = requirement_lines("requirements.txt")
    # Exact pins from an index only: no path, URL or editable line that reaches out of the folder.
    assert reqs and all(re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.]*", r) for r in reqs), reqs
    names = [r.split("==")[0].lower() for r in reqs]
    assert {"prepull", "pulumi-policy", "pulumi"} <= set(names) and len(names) == len(set(names))
    assert any(r.startswith("pulumi-policy==1.21.") for r in reqs)


def test_test_requirements_add_pinned_test_tools_to_the_pack_s():
    reqs = requirement_lines("requirements-test.txt")
    assert reqs[0] == "-r requirements.txt"
    assert reqs[1:] and all(re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.]*", r) for r in reqs[1:]), reqs
    assert {"pytest", "jsonschema"} <= {r.split("==")[0].lower() for r in reqs[1:]}


def test_publishing_leaves_out_the_virtualenv_and_bytecode():
    # `pulumi policy publish` honours the pack folder's own .gitignore; the repository's is not published with it.
    ignored = {line.strip() for line in (PACK / ".gitignore").read_text().splitlines() if line.strip() and not line.startswith("#")}
    assert {"venv/", "__pycache__/", "*.pyc"} <= ignored


def test_main_builds_exactly_one_pack_from_its_own_folder(monkeypatch):
    """As the CLI runs it (``runpy.run_path(<folder>)``): the folder alone makes ``prepull_policies`` importable."""
    built = []

    class FakePack:
        def __init__(self, **kwargs):
            built.append(kwargs)

    # PolicyPack would start a gRPC server and block; record the call instead.
    monkeypatch.setattr(pulumi_policy, "PolicyPack", FakePack)
    # Forget the pack and how the tests found it, so __main__.py imports it afresh through run_path alone.
    monkeypatch.setattr(sys, "path", [p for p in sys.path if Path(p or ".").resolve() != PACK])
    for name in [m for m in sys.modules if m == "prepull_policies" or m.startswith("prepull_policies.")]:
        monkeypatch.delitem(sys.modules, name)
    runpy.run_path(str(PACK), run_name="__main__")
    [kwargs] = built
    assert kwargs["name"] == "prepull-policies"
    assert [p.name for p in kwargs["policies"]] == [p.name for p in pp.POLICIES]
    assert Path(sys.modules["prepull_policies"].__file__).resolve() == PACK / "prepull_policies" / "__init__.py"
