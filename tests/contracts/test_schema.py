"""The multi-language schema Pulumi infers from ImagePrePullerArgs (pulumi_conventions.md §2.3)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pulumi.errors import InputPropertyError
from pulumi.provider.experimental.analyzer import Analyzer
from pulumi.provider.experimental.component import ComponentProvider
from pulumi.provider.experimental.util import camel_case

import prepull
from prepull.args import ImagePrePullerArgs

TOKEN = "prepull:index:ImagePrePuller"
ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OR_REQUIRED = re.compile(r"\b(Default:|Required\b)")


@pytest.fixture(scope="module")
def provider():
    return ComponentProvider([prepull.ImagePrePuller], "prepull", version=prepull.__version__)


@pytest.fixture(scope="module")
def schema():
    """The schema as other languages get it: inferred in a fresh interpreter (the plugin, `prepull schema`).

    Not this process's: the analyzer reads docstrings with inspect and typing, whose process-wide
    caches earlier tests have filled (one in-process run out of several once lacked a docstring).
    """
    env = {"PYTHONPATH": str(ROOT / "components"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-m", "prepull", "schema"], cwd=ROOT, env=env, capture_output=True, timeout=120, check=True)
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def resource(schema):
    return schema["resources"][TOKEN]


def test_the_analyzer_accepts_the_component():
    # Fails loudly on `from __future__ import annotations`, Literal, Union, tuple... (conventions §2.2).
    Analyzer("prepull").analyze([prepull.ImagePrePuller])


def test_resource_token(schema, resource):
    assert schema["name"] == "prepull"
    assert list(schema["resources"]) == [TOKEN]
    assert resource["isComponent"] is True


def test_every_args_field_is_an_input(resource):
    assert set(resource["inputProperties"]) == {camel_case(f) for f in ImagePrePullerArgs.__annotations__}


def test_images_is_the_only_required_input(resource):
    assert resource.get("requiredInputs") == ["images"]


def test_every_input_states_its_default_or_that_it_is_required(schema, resource):
    missing = []
    for name, prop in resource["inputProperties"].items():
        if not DEFAULT_OR_REQUIRED.search(prop.get("description", "")):
            missing.append(name)
    for type_name, typ in schema["types"].items():
        for name, prop in (typ.get("properties") or {}).items():
            if not DEFAULT_OR_REQUIRED.search(prop.get("description", "")):
                missing.append(f"{type_name}.{name}")
    assert missing == []
    assert "Required" in resource["inputProperties"]["images"]["description"]


@pytest.mark.parametrize(
    "prop, type_name, enum",
    [
        ("method", "Method", prepull.Method),
        ("pullPolicy", "PullPolicy", prepull.PullPolicy),
    ],
)
def test_enum_inputs(schema, resource, prop, type_name, enum):
    assert resource["inputProperties"][prop]["$ref"] == f"#/types/prepull:index:{type_name}"
    typ = schema["types"][f"prepull:index:{type_name}"]
    assert typ["type"] == "string"
    assert [e["value"] for e in typ["enum"]] == [m.value for m in enum]


def test_taint_effect_and_operator_enums(schema):
    toleration = schema["types"]["prepull:index:Toleration"]["properties"]
    assert toleration["effect"]["$ref"] == "#/types/prepull:index:TaintEffect"
    assert toleration["operator"]["$ref"] == "#/types/prepull:index:TolerationOperator"
    assert "tolerationSeconds" in toleration
    effects = [e["value"] for e in schema["types"]["prepull:index:TaintEffect"]["enum"]]
    assert effects == ["NoSchedule", "PreferNoSchedule", "NoExecute"]
    startup = schema["types"]["prepull:index:StartupTaint"]["properties"]
    assert startup["effect"]["$ref"] == "#/types/prepull:index:TaintEffect"


def test_outputs(resource):
    props = resource["properties"]
    assert {"namespace", "daemonSetNames", "images", "ready"} <= set(props)
    assert props["namespace"]["type"] == "string"
    assert props["daemonSetNames"]["type"] == "array" and props["daemonSetNames"]["items"]["type"] == "string"
    assert props["images"]["type"] == "array" and props["images"]["items"]["type"] == "string"
    assert props["ready"]["type"] == "boolean"
    for name in ("namespace", "daemonSetNames", "images", "ready"):
        assert props[name].get("description"), name


def test_map_inputs_requires_images(provider):
    # What construct() does for an MLC caller that leaves `images` out: rejected before the constructor runs.
    with pytest.raises(InputPropertyError, match="Missing required input 'images'"):
        provider.map_inputs({}, provider._component_defs["ImagePrePuller"])
    with pytest.raises(InputPropertyError, match="images"):
        provider.map_inputs({"lanes": 2}, provider._component_defs["ImagePrePuller"])


def test_map_inputs_maps_names_and_enums(provider):
    mapped = provider.map_inputs(
        {"images": ["a:1"], "pullPolicy": "Always", "startupTaint": {"key": "k", "effect": "NoExecute"}},
        provider._component_defs["ImagePrePuller"],
    )
    assert mapped == {
        "images": ["a:1"],
        "pull_policy": prepull.PullPolicy.ALWAYS,
        "startup_taint": {"key": "k", "effect": prepull.TaintEffect.NO_EXECUTE},
    }


# Inputs that decide which objects exist, or how they are registered, must be known while the program
# runs; the others may be another resource's Output (issue 11 §4).
PLAIN_INPUTS = {
    "lanes",
    "method",
    "createNamespace",
    "removeStartupTaint",
    "startupTaint",
    "pullRetrySeconds",
    "networkPolicy",
    "tolerateAllTaints",
    "imagePlatforms",
    "imageSizes",
    "baseName",
    "customTimeouts",
    "skipAwait",
    "maxUnavailable",
    "maxSurge",
    "pullPolicy",
    "runAsUser",
}
OUTPUT_INPUTS = {
    "images",
    "nodeSelector",
    "tolerations",
    "imagePullSecrets",
    "labels",
    "annotations",
    "priorityClassName",
    "namespace",
    "resources",
    "pauseImage",
    "helperImage",
    "untaintImage",
    "dockerCliImage",
}


def test_plain_and_output_inputs(resource):
    props = resource["inputProperties"]
    assert PLAIN_INPUTS | OUTPUT_INPUTS == set(props)
    assert {name for name, prop in props.items() if prop.get("plain")} == PLAIN_INPUTS


@pytest.mark.parametrize("name", ["images", "nodeSelector", "tolerations", "imagePullSecrets", "labels", "annotations"])
def test_collection_inputs_accept_outputs_as_a_whole_and_per_entry(resource, name):
    prop = resource["inputProperties"][name]
    inner = prop.get("items") or prop.get("additionalProperties")
    assert not prop.get("plain") and not inner.get("plain"), prop


def test_nested_fields_follow_their_input(schema):
    def plain(type_name):
        return {name: bool(prop.get("plain")) for name, prop in schema["types"][f"prepull:index:{type_name}"]["properties"].items()}

    assert not any(plain("Toleration").values())
    assert not any(plain("ContainerResources").values())
    assert all(plain("StartupTaint").values())
    assert all(plain("CustomTimeouts").values())


def test_every_description_says_whether_it_accepts_an_output(schema, resource):
    """The docstring's last sentence matches the schema's plain flag (what other languages' SDKs are generated from)."""
    wrong = []
    fields = [(name, prop) for name, prop in resource["inputProperties"].items()]
    for type_name, typ in schema["types"].items():
        fields += [(f"{type_name}.{name}", prop) for name, prop in (typ.get("properties") or {}).items()]
    for name, prop in fields:
        description = prop.get("description", "")
        says_plain = "Plain value" in description and "Accepts an Output" not in description
        says_output = "Accepts an Output" in description and "Plain value" not in description
        if not (says_plain if prop.get("plain") else says_output):
            wrong.append(name)
    assert wrong == []


@pytest.mark.parametrize("name", ["maxUnavailable", "maxSurge"])
def test_node_counts_take_a_number_or_a_percentage(provider, resource, name):
    # The schema has no integer-or-string type: Any lets TypeScript and YAML pass 2 or "10%" unquoted/quoted as they are.
    assert resource["inputProperties"][name]["$ref"] == "pulumi.json#/Any"
    for value in (2, 2.0, "10%"):
        mapped = provider.map_inputs({"images": ["a:1"], name: value}, provider._component_defs["ImagePrePuller"])
        assert mapped[camel_to_snake(name)] == value


def camel_to_snake(name: str) -> str:
    return re.sub(r"[A-Z]", lambda m: "_" + m.group(0).lower(), name)
