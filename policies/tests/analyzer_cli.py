"""The Pulumi CLI's side of the analyzer protocol, re-implemented for the pack's tests.

No CLI runs: :func:`cli_config` does what the CLI does with a
``--policy-pack-config`` file (pulumi/pulumi pkg/resource/analyzer/config.go:
schema defaults from GetAnalyzerInfo, then ``all``, then per-policy entries,
then a JSON-schema check of each policy's object), and the helpers call
``Configure``, ``Remediate``, ``Analyze`` and ``AnalyzeStack`` on
pulumi-policy's own ``_PolicyAnalyzerServicer``. Imported by the pack's tests
and by the checkout's tests that hold the pack against the docs and stacks.
"""

import copy
import json
from pathlib import Path

import jsonschema
from google.protobuf import json_format, struct_pb2
from pulumi.runtime import proto
from pulumi_policy import EnforcementLevel
from pulumi_policy.policy import _PolicyAnalyzerServicer

import prepull_policies as pp

PACK = Path(__file__).resolve().parent.parent
LEVEL_TO_PROTO = {"advisory": proto.ADVISORY, "mandatory": proto.MANDATORY, "remediate": proto.REMEDIATE, "disabled": proto.DISABLED}
PROTO_TO_LEVEL = {v: k for k, v in LEVEL_TO_PROTO.items()}


def new_servicer() -> _PolicyAnalyzerServicer:
    # The pack-level level is never used: every policy sets its own.
    return _PolicyAnalyzerServicer("prepull-policies", "0.1.0", list(pp.POLICIES), EnforcementLevel.ADVISORY)


def cli_config(servicer, file_config: dict) -> dict:
    """The per-policy config the CLI would send for ``file_config``; raises on what the CLI rejects."""
    info = servicer.GetAnalyzerInfo(None, None)
    result = {}
    for p in info.policies:
        schema = json_format.MessageToDict(p.configSchema).get("properties", {})
        result[p.name] = {
            "level": PROTO_TO_LEVEL[p.enforcementLevel],
            "props": {k: v["default"] for k, v in schema.items() if "default" in v},
        }
    given = copy.deepcopy(file_config)
    if isinstance(given.get("all"), str):
        for entry in result.values():
            entry["level"] = given["all"]
    for name, value in given.items():
        if name == "all":
            continue
        entry = result.setdefault(name, {"level": None, "props": {}})
        if isinstance(value, str):
            entry["level"] = value
        else:
            entry["level"] = value.pop("enforcementLevel", entry["level"])
            entry["props"].update(value)
    for p in info.policies:
        schema = json_format.MessageToDict(p.configSchema)
        # convertSchema(): the CLI wraps the published properties in an object schema of its own.
        jsonschema.validate(result[p.name]["props"], {"type": "object", **schema})
    return result


def configure(servicer, file_config: dict) -> _PolicyAnalyzerServicer:
    request = proto.ConfigureAnalyzerRequest()
    for name, entry in cli_config(servicer, file_config).items():
        pc = proto.PolicyConfig(enforcementLevel=LEVEL_TO_PROTO[entry["level"]])
        pc.properties.update(entry["props"])
        request.policyConfig[name].CopyFrom(pc)
    servicer.Configure(request, None)
    return servicer


def struct(props: dict) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(props)
    return s


def request(type_: str, props: dict, name: str = "web", cls=proto.AnalyzeRequest):
    return cls(type=type_, properties=struct(props), urn=f"urn:pulumi:dev::proj::{type_}::{name}", name=name)


def analyze(servicer, type_: str, props: dict, name: str = "web") -> list:
    """``(policy, level, message)`` of every diagnostic."""
    response = servicer.Analyze(request(type_, props, name), None)
    return [(d.policyName, PROTO_TO_LEVEL[d.enforcementLevel], d.message) for d in response.diagnostics]


def remediate(servicer, type_: str, props: dict, name: str = "web"):
    return servicer.Remediate(request(type_, props, name), None)


STACK = "pulumi:pulumi:Stack"


def analyze_stack(servicer, resources: list = ((STACK, {}, "proj-dev"),)) -> list:
    """``(policy, level, message)`` of every diagnostic of ``AnalyzeStack`` over ``(type, props, name)`` resources."""
    req = proto.AnalyzeStackRequest(
        resources=[
            proto.AnalyzerResource(type=t, properties=struct(p), urn=f"urn:pulumi:dev::proj::{t}::{n}", name=n) for t, p, n in resources
        ]
    )
    response = servicer.AnalyzeStack(req, None)
    return [(d.policyName, PROTO_TO_LEVEL[d.enforcementLevel], d.message) for d in response.diagnostics]


def configure_raw(servicer, policy_config: dict) -> _PolicyAnalyzerServicer:
    """``Configure`` with exactly ``{policy: (level, props)}``: no CLI defaults, no CLI schema check (as the SDK's own callers)."""
    request = proto.ConfigureAnalyzerRequest()
    for name, (level, props) in policy_config.items():
        pc = proto.PolicyConfig(enforcementLevel=LEVEL_TO_PROTO[level])
        pc.properties.update(props)
        request.policyConfig[name].CopyFrom(pc)
    servicer.Configure(request, None)
    return servicer


def type_token(obj: dict) -> str:
    """The pulumi-kubernetes type token of a Kubernetes object (``apps/v1`` DaemonSet -> ``kubernetes:apps/v1:DaemonSet``)."""
    group, _, version = obj["apiVersion"].rpartition("/")
    return f"kubernetes:{group or 'core'}/{version}:{obj['kind']}"


def analyze_objects(servicer, objects: list) -> list:
    """``(policy, level, message)`` of every diagnostic over Kubernetes objects (manifest dicts)."""
    out = []
    for obj in objects:
        out.extend(analyze(servicer, type_token(obj), obj, name=obj["metadata"]["name"]))
    return out


def load_json(name: str) -> dict:
    """A JSON file of the pack folder (``config.dev.json``, ...)."""
    return json.loads((PACK / name).read_text())


# A digest-only, mirrored config: tested here and shown in docs/policies.md.
DIGEST_ONLY_MIRRORED = {
    "image-allowlist": {
        "enforcementLevel": "remediate",
        "allowedImages": ["registry.k8s.io/pause@sha256:*", "docker.io/library/busybox@sha256:*", "ghcr.io/example-org/**@sha256:*"],
        "mirrorRegistry": "mirror.example.com/cache",
    },
    "forbid-latest": "mandatory",
    "require-digest": "mandatory",
}
