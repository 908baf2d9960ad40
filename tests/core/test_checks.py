"""The path-aware checks (prepull.core.checks): one wording per kind of value, wherever the value comes from."""

import enum

import pytest

from prepull import PrePullInputError
from prepull.core.checks import (
    Path,
    check_bool,
    check_choice,
    check_duration,
    check_enum,
    check_int,
    check_keys,
    check_list,
    check_mapping,
    check_required,
    check_str,
    check_string_map,
    check_taint,
)
from prepull.core.names import check_dns_label, check_label_value, check_qualified_name
from prepull.stack.pools import load_stack
from prepull.core.plan import build_plan


def error(check, *args) -> PrePullInputError:
    with pytest.raises(PrePullInputError) as raised:
        check(*args)
    return raised.value


def test_paths_are_built_one_way():
    assert Path().child("lanes") == "lanes"
    assert Path("tolerations").at(0).child("key") == "tolerations[0].key"
    assert Path("nodePools").child("gpu").child("taints").at(1).child("effect") == "nodePools.gpu.taints[1].effect"
    assert Path("labels").entry("team") == "labels['team']"
    assert Path("labels").map_key() == "labels key"
    # A Pulumi config namespace is followed by its key directly.
    assert Path("prepull:").child("kubeContext") == "prepull:kubeContext"


@pytest.mark.parametrize(
    "value, minimum, maximum, reason",
    [
        ("2", 1, None, "must be a whole number, at least 1"),
        (True, None, None, "must be a whole number"),
        (1.5, 0, None, "must be a whole number, at least 0"),
        (0, 1, 32, "must be a whole number from 1 to 32"),
        (33, 1, 32, "must be a whole number from 1 to 32"),
        (6, None, 5, "must be a whole number, at most 5"),
    ],
)
def test_a_whole_number_has_one_wording_naming_its_bounds(value, minimum, maximum, reason):
    err = error(check_int, value, "f", minimum, maximum)
    assert (err.field, err.value, err.reason) == ("f", value, reason)


def test_a_whole_number_may_arrive_as_an_integral_float():
    assert check_int(3.0, "f", 1) == 3 and type(check_int(3.0, "f", 1)) is int


def test_scalars_and_collections():
    class Colour(str, enum.Enum):
        RED = "red"

    assert error(check_bool, "yes", "f").reason == "must be true or false"
    assert error(check_str, "  ", "f").reason == "must be a non-empty string"
    assert error(check_str, 3, "f", True).reason == "must be a string"
    assert check_str("", "f", True) == ""
    assert error(check_choice, "X", ("A", "B"), "f").reason == "must be one of 'A', 'B'"
    assert error(check_enum, Colour, "blue", "f").reason == "must be one of 'red'"
    assert check_enum(Colour, "red", "f") is Colour.RED
    assert error(check_list, "a", "f").reason == "must be a list"
    assert error(check_list, [], "f", "image references", True).reason == "must be a non-empty list of image references"
    assert error(check_mapping, [], "f", "inputs").reason == "must be a mapping of inputs"
    err = error(check_keys, {"a": 1, "b": 2}, ("a",), "f")
    assert (err.field, err.value, err.reason) == ("f.b", 2, "unknown field; known: a")
    err = error(check_required, {"a": None}, ("a",), "f", " for provider 'eks'")
    assert (err.field, err.value, err.reason) == ("f.a", None, "is required for provider 'eks'")


def test_string_maps_name_the_key_or_the_entry():
    assert check_string_map({"b": "2", "a": "1"}, "labels") == (("a", "1"), ("b", "2"))
    assert error(check_string_map, {"a/b/c": "x"}, "labels").field == "labels key"
    err = error(check_string_map, {"team": 5}, "labels")
    assert (err.field, err.value, err.reason) == ("labels['team']", 5, "must be a string")
    assert error(check_string_map, {"team": "a b"}, "labels", check_label_value).field == "labels['team']"


@pytest.mark.parametrize(
    "taint, field, value",
    [
        ({"effect": "NoSchedule"}, "t.key", None),
        ({"key": "a b", "effect": "NoSchedule"}, "t.key", "a b"),
        ({"key": "a", "value": "x y", "effect": "NoSchedule"}, "t.value", "x y"),
        ({"key": "a"}, "t.effect", None),
        ({"key": "a", "effect": "NoRun"}, "t.effect", "NoRun"),
        ({"key": "a", "effect": "NoSchedule", "seconds": 1}, "t.seconds", 1),
    ],
)
def test_taints_are_checked_in_one_place(taint, field, value):
    err = error(check_taint, taint, "t")
    assert (err.field, err.value) == (field, value)


def test_a_taint_drops_an_empty_value():
    assert check_taint({"key": "a", "value": "", "effect": "NoExecute"}, "t") == {"key": "a", "effect": "NoExecute"}


@pytest.mark.parametrize(
    "check, value",
    [(check_dns_label, "abc\n"), (check_qualified_name, "a/b\n"), (check_label_value, "v\n"), (check_duration, "5m\n")],
)
def test_a_trailing_newline_is_not_a_valid_name(check, value):
    # A `$` anchor matches before a final newline; the API server would reject the value.
    assert error(check, value, "f").value == value


GOOD_POOL = {"name": "a", "provider": "existing", "labels": {"pool": "a"}}


def test_the_same_mistake_reads_the_same_in_component_inputs_and_stack_files():
    """An unknown key, a bad taint effect and a non-number: one wording each, whichever module checks them."""
    component = error(build_plan, {"images": ["nginx:1"], "tolerations": [{"key": "a", "effect": "NoRun"}]})
    stack = error(load_stack, {"images": ["nginx:1"], "nodePools": [{**GOOD_POOL, "taints": [{"key": "a", "effect": "NoRun"}]}]})
    assert component.reason == stack.reason == "must be one of 'NoSchedule', 'PreferNoSchedule', 'NoExecute'"
    assert stack.field == "nodePools.a.taints[0].effect"
    unknown_input = error(build_plan, {"images": ["nginx:1"], "imagePullPolicy": "Always"})
    unknown_pool_field = error(load_stack, {"images": ["nginx:1"], "nodePools": [{**GOOD_POOL, "taint": []}]})
    assert unknown_input.reason.startswith("unknown field; known: images, ")
    assert unknown_pool_field.reason.startswith("unknown field; known: name, ")
    lanes = error(build_plan, {"images": ["nginx:1"], "lanes": "2"})
    weight = error(
        load_stack,
        {
            "images": ["nginx:1"],
            "nodePools": [
                {
                    "name": "k",
                    "provider": "karpenter",
                    "labels": {"pool": "k"},
                    "karpenter": {"nodeClassRef": {"group": "g", "kind": "K", "name": "n"}, "weight": "2"},
                }
            ],
        },
    )
    assert (lanes.reason, weight.reason) == ("must be a whole number from 1 to 32", "must be a whole number from 1 to 100")


def test_an_unknown_stack_setting_is_named_as_its_config_key():
    err = error(load_stack, {"images": ["nginx:1"], "nodePools": [GOOD_POOL], "nodepools": []})
    assert (err.field, err.reason) == ("prepull:nodepools", "unknown field; known: images, namespace, nodePools, kubeconfig, kubeContext")


def test_one_mapping_between_python_and_schema_names_covers_every_schema_property():
    """Every property the schema names, at any depth, maps back to its Python name by the inverse of camel_case."""
    import json
    from pathlib import Path as FilePath

    from prepull.core.checks import INPUT_NAMES, PYTHON_NAMES
    from prepull.errors import camel_case

    schema = json.loads((FilePath(__file__).resolve().parents[2] / "components" / "schema.json").read_text())
    names = set(schema["resources"]["prepull:index:ImagePrePuller"]["inputProperties"])
    names |= {name for typ in schema["types"].values() for name in typ.get("properties", {})}
    assert names == set(PYTHON_NAMES)
    assert all(camel_case(PYTHON_NAMES[name]) == name and PYTHON_NAMES[name] in INPUT_NAMES for name in names)


def test_a_parsed_image_passes_through_and_a_bad_one_is_named_where_it_is():
    from prepull.core.checks import check_image

    # The stack config and the lock file hand on ImageRefs: checked, they are not parsed again
    # (tests/core/test_images_parses.py counts the parses on every path).
    ref = check_image("nginx:1.27", "images[0]")
    assert check_image(ref, "nodePools.a.images[3]") is ref and ref.canonical == "docker.io/library/nginx:1.27"
    for field in ("images[0]", "nodePools.a.images[1]"):
        assert error(check_image, "Bad Image", field).field == field
    assert error(check_image, 5, "images[2]").reason == "an image reference must be a string"
