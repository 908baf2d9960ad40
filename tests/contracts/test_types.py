"""What a type checker makes of the inputs: users' programs (the README quickstart first) type-check.

args.py spells each input twice: for Pulumi's schema analyzer (Enums, no Union or Literal) and, under
``typing.TYPE_CHECKING``, for type checkers (an enum member or its string value, an ImageEntry dict in
``images``, an int or a percentage for ``max_unavailable``). One mypy run (default settings, as a user
would have; the package found on MYPYPATH through its py.typed) checks every program below: the README's
and a typed one must be clean, and each wrong one must be rejected where it is wrong.
"""

import os
import re
import subprocess
import sys
import typing
from pathlib import Path

import pulumi
import pytest

from prepull import args

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
QUICKSTART_HEADING = "### Your own program"

# A typed program using what §4 of issue 11 allows: Outputs for value inputs, enum strings, a percentage.
TYPED_PROGRAM = """
import pulumi

import prepull
from prepull import ImagePrePuller, ImagePrePullerArgs, TaintEffect, TolerationOperator

image = pulumi.Output.from_input("x:1")
args: ImagePrePullerArgs = {
    "images": [image, "nginx:1.27", {"image": "ghcr.io/acme/trainer:2.3.1", "platforms": ["linux/amd64"]}],
    "namespace": pulumi.Output.from_input("prepull"),
    "node_selector": {"pool": pulumi.Output.from_input("gpu")},
    "tolerations": [
        {"key": "dedicated", "operator": "Equal", "value": "batch", "effect": "NoSchedule"},
        {"operator": TolerationOperator.EXISTS, "effect": TaintEffect.NO_EXECUTE, "toleration_seconds": 300},
    ],
    "image_pull_secrets": pulumi.Output.from_input(["regcred"]),
    "pull_policy": "Always",
    "method": "image-volume",
    "startup_taint": {"key": "prepull.dev/not-ready", "effect": "NoExecute"},
    "max_unavailable": "10%",
    "resources": {"cpu_request": pulumi.Output.from_input("2m")},
    "labels": pulumi.Output.from_input({"team": "ml"}),
}
ImagePrePuller("typed", args)
ImagePrePuller("surge", {"images": pulumi.Output.from_input(["a:1", "b:2"]), "max_surge": 2, "lanes": 2})
ImagePrePuller("one", {"images": ["a:1"], "tolerations": [pulumi.Output.from_input({"operator": "Exists"})]})
prepull.manifests({"images": ["nginx:1.27"], "pull_policy": prepull.PullPolicy.ALWAYS, "max_surge": 1})
"""

# Programs mypy must reject: (source, the line of the error, a fragment of its message).
WRONG_PROGRAMS = {
    "operator_typo": (
        "from prepull import ImagePrePuller\n"
        'ImagePrePuller("a", {"images": ["a:1"], "tolerations": [{"key": "k", "operator": "Exist"}]})\n',
        2,
        "[list-item]",
    ),
    "images_not_a_list": ('from prepull import ImagePrePuller\nImagePrePuller("a", {"images": 5})\n', 2, 'TypedDict item "images"'),
    "unknown_pull_policy": (
        'from prepull import ImagePrePuller\nImagePrePuller("a", {"images": ["a:1"], "pull_policy": "Sometimes"})\n',
        2,
        'TypedDict item "pull_policy"',
    ),
    "output_for_a_plain_input": (
        "import pulumi\nfrom prepull import ImagePrePuller\n"
        'ImagePrePuller("a", {"images": ["a:1"], "lanes": pulumi.Output.from_input(2)})\n',
        3,
        'TypedDict item "lanes"',
    ),
    "fractional_max_unavailable": (
        'from prepull import ImagePrePuller\nImagePrePuller("a", {"images": ["a:1"], "max_unavailable": 1.5})\n',
        2,
        'TypedDict item "max_unavailable"',
    ),
    # An ImageEntry's platforms decide which DaemonSets exist: never inside an Output.
    "image_entry_inside_an_output": (
        "import pulumi\nfrom prepull import ImagePrePuller\n"
        'ImagePrePuller("a", {"images": pulumi.Output.from_input([{"image": "a:1", "platforms": ["linux/amd64"]}])})\n',
        3,
        "[list-item]",
    ),
    "misspelt_export": ("from prepull import ImagePrePuler\n", 1, '"ImagePrePuler"'),
}

ERROR = re.compile(r"^(?P<file>[\w.]+\.py):(?P<line>\d+): error: (?P<message>.*)$")


def readme_quickstart() -> str:
    """The first ```python block after the quickstart heading; fails loudly if the README changed shape."""
    text = README.read_text(encoding="utf-8")
    start = text.find(f"\n{QUICKSTART_HEADING}\n")
    assert start >= 0, f"README.md has no {QUICKSTART_HEADING!r} heading: update tests/contracts/test_types.py to find the quickstart"
    block = re.search(r"^```python\n(.*?)^```$", text[start:], re.S | re.M)
    assert block, f"README.md has no ```python block after {QUICKSTART_HEADING!r}"
    program = block.group(1)
    assert "ImagePrePuller(" in program and "from prepull import" in program, program
    return program


@pytest.fixture(scope="module")
def mypy_run(tmp_path_factory) -> tuple:
    """Run mypy once over every program; return (its output, {file name: [(line, message)]})."""
    work = tmp_path_factory.mktemp("typed-programs")
    programs = {"readme_quickstart.py": readme_quickstart(), "typed_program.py": TYPED_PROGRAM}
    programs.update({f"wrong_{name}.py": source for name, (source, _, _) in WRONG_PROGRAMS.items()})
    for name, source in programs.items():
        (work / name).write_text(source, encoding="utf-8")
    (work / "mypy.ini").write_text("[mypy]\n", encoding="utf-8")  # mypy's defaults, not the project's strict settings
    command = [
        sys.executable,
        "-m",
        "mypy",
        "--config-file",
        "mypy.ini",
        "--python-version",
        "3.11",
        # The package's own modules are checked (strictly) by CI's mypy step; here only the users' programs report.
        "--follow-imports=silent",
        "--cache-dir",
        str(work / ".mypy_cache"),
        "--show-error-codes",
        "--no-pretty",
        *sorted(programs),
    ]
    env = {**os.environ, "MYPYPATH": str(ROOT / "components")}
    out = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    output = out.stdout + out.stderr
    assert out.returncode in (0, 1), f"mypy did not run ({out.returncode}):\n{output}"
    errors: dict = {name: [] for name in programs}
    for line in output.splitlines():
        match = ERROR.match(line)
        if match:
            assert match["file"] in errors, f"mypy reported a file that is not a user program:\n{output}"
            errors[match["file"]].append((int(match["line"]), match["message"]))
    return output, errors


def test_readme_quickstart_type_checks(mypy_run):
    output, errors = mypy_run
    assert errors["readme_quickstart.py"] == [], f"the README quickstart does not type-check:\n{output}"


def test_typed_program_with_outputs_enum_strings_and_a_percentage_type_checks(mypy_run):
    output, errors = mypy_run
    assert errors["typed_program.py"] == [], output


@pytest.mark.parametrize("name", sorted(WRONG_PROGRAMS))
def test_wrong_program_is_rejected_where_it_is_wrong(mypy_run, name):
    output, errors = mypy_run
    _, line, fragment = WRONG_PROGRAMS[name]
    found = errors[f"wrong_{name}.py"]
    assert [lineno for lineno, _ in found] == [line], output
    assert fragment in found[0][1], output


def test_the_analyzer_input_is_pulumis():
    # args.py spells pulumi.Input itself so that the pure core never imports the SDK: it must stay the same type.
    for inner in (str, args.Toleration, typing.Sequence[str]):
        assert typing.get_args(args.Input[inner]) == typing.get_args(pulumi.Input[inner])


@pytest.mark.parametrize(
    "literal, enum",
    [
        (args.MethodName, args.Method),
        (args.PullPolicyName, args.PullPolicy),
        (args.TaintEffectName, args.TaintEffect),
        (args.TolerationOperatorName, args.TolerationOperator),
    ],
)
def test_string_values_type_checkers_accept_are_the_enum_values(literal, enum):
    assert typing.get_args(literal) == tuple(member.value for member in enum)


def test_image_entry_fields_are_documented():
    assert set(args.ImageEntry.__annotations__) == {"image", "platforms"}
    assert args.ImageEntry.__required_keys__ == {"image", "platforms"}
    assert args.ImageEntry.__doc__ and "image_platforms" in args.ImageEntry.__doc__
