"""docs/languages.md lists the component's inputs and outputs as other languages see them: the golden schema's."""

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "components" / "schema.json").read_text())
RESOURCE = SCHEMA["resources"]["prepull:index:ImagePrePuller"]


def doc_paragraph() -> str:
    """The paragraph from "Names on the wire are camelCase:" to the end of its outputs sentence, on one line."""
    text = (ROOT / "docs" / "languages.md").read_text()
    match = re.search(r"Names on the wire are camelCase: (.*?)\n\n", text, re.S)
    assert match, "docs/languages.md no longer has the 'Names on the wire are camelCase:' paragraph"
    return " ".join(match.group(1).split())


def parse_names(listing: str) -> dict:
    """```a`, `b` (`x`, `y`), `c``` -> {"a": [], "b": ["x", "y"], "c": []} (nested names in parentheses)."""
    out: dict = {}
    last = None
    for match in re.finditer(r"\(([^()]*)\)|`([A-Za-z]+)`", listing):
        if match.group(1) is not None:
            assert last is not None, listing
            out[last] = re.findall(r"`([A-Za-z]+)`", match.group(1))
        else:
            last = match.group(2)
            assert last not in out, f"{last} listed twice"
            out[last] = []
    return out


def inputs_and_outputs() -> tuple:
    paragraph = doc_paragraph()
    inputs, rest = paragraph.split(" Only `images` is required.", 1)
    outputs = re.search(r"Outputs: (.*?)\.", rest)
    assert outputs, rest
    return parse_names(inputs), re.findall(r"`([A-Za-z]+)`", outputs.group(1))


def object_type(prop: dict):
    """The schema object type an input refers to (directly or as array items), or None."""
    ref = prop.get("$ref") or (prop.get("items") or {}).get("$ref")
    if not ref or not ref.startswith("#/types/"):
        return None  # no ref, or a built-in such as pulumi.json#/Any
    declared = SCHEMA["types"][ref.removeprefix("#/types/")]
    return declared if declared.get("type") == "object" else None


def test_parser_reads_nested_names():
    assert parse_names("`a`, `b` (`x`, `y`), `c`") == {"a": [], "b": ["x", "y"], "c": []}


def test_the_documented_inputs_are_exactly_the_schema_inputs():
    inputs, _ = inputs_and_outputs()
    assert sorted(inputs) == sorted(RESOURCE["inputProperties"])


def test_object_inputs_list_exactly_their_fields():
    inputs, _ = inputs_and_outputs()
    for name, prop in RESOURCE["inputProperties"].items():
        declared = object_type(prop)
        expected = sorted(declared["properties"]) if declared else []
        assert sorted(inputs[name]) == expected, name


def test_only_images_is_required_and_the_outputs_match():
    _, outputs = inputs_and_outputs()
    assert RESOURCE["requiredInputs"] == ["images"]
    assert sorted(outputs) == sorted(RESOURCE["properties"])
