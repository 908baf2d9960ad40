"""The multi-language schema Pulumi infers from ImagePrePullerArgs (pulumi_conventions.md §2.3)."""

import json
import re

import pytest
from pulumi.errors import InputPropertyError
from pulumi.provider.experimental.analyzer import Analyzer
from pulumi.provider.experimental.component import ComponentProvider
from pulumi.provider.experimental.util import camel_case

import prepull
from prepull.args import ImagePrePullerArgs

TOKEN = "prepull:index:ImagePrePuller"
DEFAULT_OR_REQUIRED = re.compile(r"\b(Default:|Required\b)")


@pytest.fixture(scope="module")
def provider():
    return ComponentProvider([prepull.ImagePrePuller], "prepull", version=prepull.__version__)


@pytest.fixture(scope="module")
def schema(provider):
    return json.loads(provider.schema)


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
