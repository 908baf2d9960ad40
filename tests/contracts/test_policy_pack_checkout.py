"""What ties the policy pack to this repository: the docs' examples, the stacks' configs, the release pin.

The pack (policies/) is published alone and its own tests travel with it
(policies/tests); these checks need the checkout around it, so they live here.
The standalone install of the folder is tested in test_policy_pack_standalone.py.
"""

import copy
import json
import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PACK = ROOT / "policies"
# The pack imports as `prepull_policies` from its folder; the servicer helpers are its tests'.
sys.path[:0] = [p for p in (str(PACK), str(PACK / "tests")) if p not in sys.path]

import prepull_policies as pp  # noqa: E402
from analyzer_cli import DIGEST_ONLY_MIRRORED, analyze_objects, analyze_stack, configure, load_json, new_servicer  # noqa: E402


@pytest.fixture(autouse=True)
def forget_noted_configs():
    # The resource policies note their config for pack-config: no test sees another test's.
    pp.take_noted_configs()
    yield
    pp.take_noted_configs()


# --- the release pin --------------------------------------------------------------------------------


def pins(path: Path) -> dict:
    """``{lowercased name: version}`` of the ``name==version`` lines of a requirements file."""
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    return {name.lower(): version for name, _, version in (line.partition("==") for line in lines if "==" in line)}


def test_the_pack_pins_the_prepull_release_of_this_checkout():
    from prepull.version import __version__

    assert pins(PACK / "requirements.txt")["prepull"] == __version__


def test_the_pack_pins_the_versions_the_repository_tests_with():
    repo = pins(ROOT / "requirements.txt") | pins(ROOT / "requirements-dev.txt")
    pack = pins(PACK / "requirements.txt") | pins(PACK / "requirements-test.txt")
    del pack["prepull"]
    assert pack and {name: repo.get(name) for name in pack} == pack


# --- docs/policies.md -------------------------------------------------------------------------------


# docs/policies.md shows config examples as ```json blocks, each directly after a label line:
#   <!-- file: policies/config.dev.json -->   the block is that file, exactly (as JSON)
#   <!-- example: DIGEST_ONLY_MIRRORED -->    the block is that example of policies/tests/analyzer_cli.py
DOC = ROOT / "docs" / "policies.md"
DOC_LABEL = re.compile(r"^<!-- (file|example): (\S+) -->$")
DOC_EXAMPLES = {"DIGEST_ONLY_MIRRORED": DIGEST_ONLY_MIRRORED}


def doc_json_blocks(text: str) -> list:
    """``(label line, block text)`` of every ```json block; the label is the last non-empty line before it."""
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if not lines[i].strip().startswith("```"):
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].strip().startswith("```"))
        if lines[i].strip() == "```json":
            label = next((line.strip() for line in reversed(lines[:i]) if line.strip()), "")
            blocks.append((label, "\n".join(lines[i + 1 : end])))
        i = end + 1
    return blocks


def doc_problems(doc: str, config_files: dict) -> list:
    """How the ```json blocks of ``doc`` differ from ``config_files`` (``{"policies/<name>": parsed JSON}``) and DOC_EXAMPLES."""
    problems, files, examples = [], {}, {}
    for label, body in doc_json_blocks(doc):
        m = DOC_LABEL.fullmatch(label)
        if not m:
            problems.append(f"a ```json block has no <!-- file: ... --> or <!-- example: ... --> label before it, but {label!r}")
            continue
        target = files if m.group(1) == "file" else examples
        if m.group(2) in target:
            problems.append(f"{m.group(2)} is shown twice")
        target[m.group(2)] = json.loads(body)
    for name in sorted(set(files) | set(config_files)):
        if files.get(name) != config_files.get(name):
            problems.append(f"{name}: the doc shows {files.get(name)!r}, the file is {config_files.get(name)!r}")
    if examples != DOC_EXAMPLES:
        problems.append(f"examples: the doc shows {examples!r}, the tests use {DOC_EXAMPLES!r}")
    return problems


def config_files() -> dict:
    # Read at test time: whoever changes a config file must change the doc with it.
    return {f"policies/{path.name}": json.loads(path.read_text()) for path in sorted(PACK.glob("config.*.json"))}


def test_the_doc_shows_every_config_file_exactly():
    files = config_files()
    assert sorted(files) == ["policies/config.dev.json", "policies/config.prod.json"]
    assert doc_problems(DOC.read_text(), files) == []


def test_the_doc_check_finds_a_changed_file_and_an_unlabelled_block():
    doc, files = DOC.read_text(), config_files()
    # Someone allows one more image in the dev config and leaves the doc alone.
    changed = copy.deepcopy(files)
    changed["policies/config.dev.json"]["image-allowlist"]["allowedImages"].append("quay.io/new-pool/**")
    [problem] = doc_problems(doc, changed)
    assert problem.startswith("policies/config.dev.json: the doc shows") and "quay.io/new-pool/**" in problem
    # A block that drops its label is neither trusted nor silently skipped.
    problems = doc_problems(doc.replace("<!-- file: policies/config.prod.json -->\n", ""), files)
    assert [p.split(",")[0] for p in problems] == [
        "a ```json block has no <!-- file: ... --> or <!-- example: ... --> label before it",
        "policies/config.prod.json: the doc shows None",
    ]


# --- the stacks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_each_stack_passes_its_example_config(env):
    from prepull.stack.pools import load_stack, stack_manifests

    raw = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{env}.yaml").read_text())["config"]
    objects = stack_manifests(load_stack({k.split(":", 1)[1]: v for k, v in raw.items()}))
    servicer = configure(new_servicer(), load_json(f"config.{env}.json"))
    # No mandatory violation: the stack deploys under its own policy (require-digest only advises in prod).
    assert [d for d in analyze_objects(servicer, objects) if d[1] == "mandatory"] == []
    # ...and its config has no error for the stack check to report.
    assert analyze_stack(servicer) == []
