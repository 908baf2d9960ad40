"""The component provider: golden schema, the plugin host, construct-style inputs and the YAML consumer.

No Pulumi CLI runs here. What is exercised is what the CLI would call: the
analyzer (``PrePullProvider().schema``), the plugin's own ``__main__.py``
answering ``GetSchema`` over gRPC, and ``construct`` (``map_inputs`` followed
by the constructor) under Pulumi mocks.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import grpc
import pulumi
import pytest
import yaml
from mock_helpers import RecordingMocks, RecordingMonitor, output
from google.protobuf import empty_pb2
from pulumi.errors import InputPropertyError
from pulumi.runtime import rpc
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

import prepull
from prepull.errors import PrePullInputError
from prepull.provider import PrePullProvider

ROOT = Path(__file__).resolve().parent.parent
COMPONENTS = ROOT / "components"
GOLDEN = COMPONENTS / "schema.json"
YAML_EXAMPLE = ROOT / "examples" / "yaml-consumer" / "Pulumi.yaml"
TOKEN = "prepull:index:ImagePrePuller"
DAEMONSET = "kubernetes:apps/v1:DaemonSet"
REGENERATE = "PYTHONPATH=components python -m prepull schema > components/schema.json"

# What a TypeScript program sends: camelCase names, enums as their string values,
# every number a JSON number (a float on the Python side).
TS_INPUTS = {
    "images": ["docker.io/library/python:3.13-slim", "nginx:1.27", "redis:7.4"],
    "baseName": "web",
    "namespace": "prepull-ts",
    "nodeSelector": {"prepull.dev/pool": "batch"},
    "tolerations": [
        {"key": "dedicated", "operator": "Equal", "value": "batch", "effect": "NoSchedule"},
        {"key": "spot", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300.0},
    ],
    "pullPolicy": "Always",
    "lanes": 2.0,
    "maxUnavailable": 3.0,
    "customTimeouts": {"create": "20m"},
    "resources": {"cpuRequest": "2m", "memoryRequest": "16Mi"},
    "runAsUser": 1000.0,
}


@pytest.fixture(scope="module")
def provider():
    return PrePullProvider()


@pytest.fixture(scope="module")
def golden():
    return json.loads(GOLDEN.read_text(encoding="utf-8"))


def component_def(provider):
    return provider._component_defs["ImagePrePuller"]


# ---------------------------------------------------------------- golden schema


def test_analyzer_still_produces_the_golden_schema_byte_for_byte():
    # In a fresh interpreter, as the plugin infers it (see tests/contracts/test_schema.py's schema fixture).
    assert GOLDEN.read_bytes().endswith(b"}\n")
    env = {"PYTHONPATH": str(COMPONENTS), "PATH": "/usr/bin:/bin"}
    code = "from prepull.cli.main import schema_text; import sys; sys.stdout.write(schema_text())"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout == GOLDEN.read_text(encoding="utf-8"), f"the public schema changed: review, then run `{REGENERATE}`"


def test_schema_subcommand_prints_the_golden_file():
    env = {"PYTHONPATH": str(COMPONENTS), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-m", "prepull", "schema"], cwd=ROOT, env=env, capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr.decode()
    assert out.stdout == GOLDEN.read_bytes()


def test_golden_schema_names_the_package_version_and_the_one_component(golden):
    assert golden["name"] == "prepull"
    assert golden["version"] == prepull.__version__
    assert list(golden["resources"]) == [TOKEN]
    assert golden["resources"][TOKEN]["isComponent"] is True


def test_images_is_the_only_required_input(golden, provider):
    resource = golden["resources"][TOKEN]
    assert resource["requiredInputs"] == ["images"]
    assert resource["inputProperties"]["images"] == {**resource["inputProperties"]["images"], "type": "array"}
    # construct() rejects a call without images before the constructor runs, whatever else is set.
    with pytest.raises(InputPropertyError, match="Missing required input 'images'"):
        provider.map_inputs({k: v for k, v in TS_INPUTS.items() if k != "images"}, component_def(provider))


# ---------------------------------------------------------------- the plugin host


def test_plugin_host_serves_the_golden_schema_over_grpc(golden):
    """Run components/__main__.py as the language host would and ask it what `pulumi package add` asks."""
    # The host needs an engine address argument but only dials it when a program runs.
    env = {"PATH": "/usr/bin:/bin"}  # no PYTHONPATH: __main__.py must find prepull next to itself
    proc = subprocess.Popen(
        [sys.executable, str(COMPONENTS / "__main__.py"), "127.0.0.1:1"],
        cwd=COMPONENTS,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        port = proc.stdout.readline().decode().strip()
        assert port.isdigit(), proc.stderr.read1().decode() if proc.poll() is not None else port
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = provider_pb2_grpc.ResourceProviderStub(channel)
            schema = json.loads(stub.GetSchema(provider_pb2.GetSchemaRequest(version=0), timeout=30).schema)
            info = stub.GetPluginInfo(empty_pb2.Empty(), timeout=30)
        assert schema == golden
        assert info.version == prepull.__version__
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()


def test_plugin_files():
    plugin = yaml.safe_load((COMPONENTS / "PulumiPlugin.yaml").read_text())
    assert plugin["runtime"]["name"] == "python"
    pins = [line.split("#")[0].strip() for line in (COMPONENTS / "requirements.txt").read_text().splitlines()]
    pins = [p for p in pins if p]
    assert pins and all("==" in p for p in pins), pins
    names = {p.split("==")[0].lower() for p in pins}
    assert {"pulumi", "pulumi-kubernetes", "docker-image-py"} <= names
    # The SDK pins are the versions this test run uses: the golden schema was generated with them.
    from importlib.metadata import version

    for pin in pins:
        name, wanted = pin.split("==")
        if name.lower() in ("pulumi", "pulumi-kubernetes", "docker-image-py"):
            assert version(name) == wanted, name


# ---------------------------------------------------------------- construct


def test_map_inputs_turns_wire_names_into_python_names(provider):
    mapped = provider.map_inputs(TS_INPUTS, component_def(provider))
    assert mapped["base_name"] == "web"
    assert mapped["node_selector"] == {"prepull.dev/pool": "batch"}
    assert mapped["pull_policy"] is prepull.PullPolicy.ALWAYS
    assert mapped["tolerations"][1] == {
        "key": "spot",
        "operator": prepull.TolerationOperator.EXISTS,
        "effect": prepull.TaintEffect.NO_EXECUTE,
        "toleration_seconds": 300.0,
    }
    assert mapped["resources"] == {"cpu_request": "2m", "memory_request": "16Mi"}
    # The whole mapped dict is what the constructor receives: it must validate as ImagePrePullerArgs.
    assert prepull.manifests(mapped, "from-ts")


def test_construct_builds_the_component_under_mocks(run_program, provider):
    """provider.construct(): map_inputs plus the constructor, exactly as for a TypeScript caller."""
    result = {}

    def program():
        res = provider.construct("from-ts", TOKEN, dict(TS_INPUTS))
        result["state"] = res.state
        return pulumi.Output.all(res.urn, res.state["daemonSetNames"], res.state["images"]).apply(
            lambda v: result.update(urn=v[0], names=v[1], images=v[2])
        )

    run = run_program(program)
    expected = prepull.manifests(provider.map_inputs(TS_INPUTS, component_def(provider)), "from-ts")
    expected_ds = [o for o in expected if o["kind"] == "DaemonSet"]
    registered = run.of_type(DAEMONSET)
    assert [r.name for r in registered] == ["from-ts-ds-l1", "from-ts-ds-l2"]
    states = [run.state(r) for r in registered]
    assert [s["metadata"]["name"] for s in states] == ["web-l1", "web-l2"] == [o["metadata"]["name"] for o in expected_ds]
    for state, obj in zip(states, expected_ds):
        assert state["spec"] == obj["spec"]
    pulled = [[c["image"] for c in s["spec"]["template"]["spec"]["initContainers"][1:]] for s in states]
    # Lanes are round-robin in the caller's order, images normalised.
    assert pulled == [
        ["docker.io/library/python:3.13-slim", "docker.io/library/redis:7.4"],
        ["docker.io/library/nginx:1.27"],
    ]
    spec = states[0]["spec"]
    assert spec["updateStrategy"]["rollingUpdate"]["maxUnavailable"] == 3
    assert spec["template"]["spec"]["securityContext"]["runAsUser"] == 1000
    assert spec["template"]["spec"]["tolerations"][1]["tolerationSeconds"] == 300
    assert all(s["metadata"]["namespace"] == "prepull-ts" for s in states)
    assert result["names"] == ["web-l1", "web-l2"]
    assert result["images"][0] == "docker.io/library/python:3.13-slim"
    assert result["urn"].endswith("::from-ts")


def test_construct_rejects_a_bad_enum_value_before_registering(run_program, provider):
    def program():
        provider.construct("bad", TOKEN, {"images": ["nginx:1.27"], "pullPolicy": "Sometimes"})

    with pytest.raises(InputPropertyError, match="pullPolicy"):
        run_program(program)


@pytest.mark.parametrize(
    "inputs, path, reason",
    [
        (
            {"maxUnavailable": -3},
            "maxUnavailable",
            "must be a whole number, at least 1, or a percentage from 1% to 100% such as '10%' (got -3)",
        ),
        # What YAML and TypeScript send: every number a float, reported as the whole number written.
        (
            {"maxUnavailable": -3.0},
            "maxUnavailable",
            "must be a whole number, at least 1, or a percentage from 1% to 100% such as '10%' (got -3)",
        ),
        (
            {"maxUnavailable": 2, "maxSurge": 1},
            "maxUnavailable",
            "conflicts with maxSurge, which replaces pods without taking any away (got 2)",
        ),
        (
            {"tolerations": [{"key": "a", "operator": "Exists", "effect": "NoSchedule", "tolerationSeconds": 5}]},
            "tolerations[0].tolerationSeconds",
            "is only allowed with effect NoExecute (got 5)",
        ),
        (
            {"nodeSelector": {"kubernetes.io/os": "windows"}},
            "nodeSelector['kubernetes.io/os']",
            "only Linux nodes are supported (got 'windows')",
        ),
    ],
)
def test_construct_reports_our_errors_as_input_errors_in_the_callers_spelling(run_program, provider, inputs, path, reason):
    """What the engine shows a TypeScript or YAML caller: a structured input error, the field as they wrote it."""

    def program():
        provider.construct("bad", TOKEN, {"images": ["nginx:1.27"], **inputs})

    with pytest.raises(InputPropertyError) as raised:
        run_program(program)
    assert (raised.value.property_path, raised.value.reason) == (path, reason)


def test_construct_reports_a_bad_output_value_as_an_input_error_when_it_resolves(provider):
    """Other languages pass outputs: a bad one fails on resolve, structured and camelCase, with no child created.

    The provider server serialises the construct result's state before anything else, so the state's
    error is the one the engine gets (pulumi.provider.server._construct_response).
    """
    mocks = RecordingMocks()
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project="prepull", stack="dev", monitor=monitor)
    got = {}

    def program():
        res = provider.construct("bad", TOKEN, {"images": ["nginx:1.27"], "imagePullSecrets": [output("Bad_Name")]})

        async def serialize_state():
            try:
                await rpc.serialize_properties(res.state, {})
            except Exception as err:  # noqa: BLE001
                got["error"] = err

        return serialize_state()

    with pytest.raises(PrePullInputError):  # the children's registrations fail too; the server has answered by then
        pulumi.runtime.test(program)()
    assert isinstance(got["error"], InputPropertyError), repr(got["error"])
    assert got["error"].property_path == "imagePullSecrets[0]"
    assert got["error"].reason.endswith("(got 'Bad_Name')")
    assert [r.type for r in monitor.requests] == [TOKEN]


def test_construct_resolves_output_inputs_into_the_objects(run_program, provider):
    def program():
        res = provider.construct("ts", TOKEN, {"images": output(["nginx:1.27"]), "nodeSelector": {"pool": output("gpu")}})
        return res.state["images"]

    run = run_program(program)
    ds = next(r for r in run.requests if r.type == "kubernetes:apps/v1:DaemonSet")
    spec = run.state(ds)["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"kubernetes.io/os": "linux", "pool": "gpu"}
    assert [c["image"] for c in spec["initContainers"]][-1] == "docker.io/library/nginx:1.27"


# ---------------------------------------------------------------- the YAML consumer


def schema_problems(schema: dict, value, prop: dict, path: str) -> list:
    """Where ``value`` does not fit schema property ``prop`` (a small subset of Pulumi schema typing)."""
    if isinstance(value, str) and value.startswith("${"):
        return []  # an interpolation: typed by the engine, not checkable here
    if prop.get("$ref") == "pulumi.json#/Any":
        return []  # any JSON value (maxUnavailable: 2 or "10%"): the component's own validation types it
    if "$ref" in prop:
        typ = schema["types"][prop["$ref"].removeprefix("#/types/")]
        if "enum" in typ:
            allowed = [e["value"] for e in typ["enum"]]
            return [] if value in allowed else [f"{path}: {value!r} is not one of {allowed}"]
        return object_problems(schema, value, typ.get("properties", {}), typ.get("required", []), path)
    kind = prop["type"]
    checks = {
        "string": lambda v: isinstance(v, str),
        "boolean": lambda v: isinstance(v, bool),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "array": lambda v: isinstance(v, list),
        "object": lambda v: isinstance(v, dict),
    }
    if not checks[kind](value):
        return [f"{path}: expected {kind}, got {value!r}"]
    if kind == "array":
        return [p for i, v in enumerate(value) for p in schema_problems(schema, v, prop["items"], f"{path}[{i}]")]
    if kind == "object" and "additionalProperties" in prop:
        return [p for k, v in value.items() for p in schema_problems(schema, v, prop["additionalProperties"], f"{path}.{k}")]
    return []


def object_problems(schema: dict, value, properties: dict, required: list, path: str) -> list:
    """Unknown names, missing required names and mistyped values of an object."""
    if not isinstance(value, dict):
        return [f"{path}: expected an object, got {value!r}"]
    problems = [f"{path}.{k}: unknown property" for k in value if k not in properties]
    problems += [f"{path}.{k}: required" for k in required if k not in value]
    for k, v in value.items():
        if k in properties:
            problems += schema_problems(schema, v, properties[k], f"{path}.{k}")
    return problems


@pytest.fixture(scope="module")
def yaml_program():
    return yaml.safe_load(YAML_EXAMPLE.read_text(encoding="utf-8"))


def prepuller_resources(program: dict) -> dict:
    return {n: r for n, r in program["resources"].items() if r["type"] == TOKEN}


def resolved(program: dict, value):
    """``value`` with each ``${resource.path}`` replaced by that resource's property, as the YAML engine resolves it."""
    if isinstance(value, dict):
        return {k: resolved(program, v) for k, v in value.items()}
    if isinstance(value, list):
        return [resolved(program, v) for v in value]
    match = re.fullmatch(r"\$\{(\w+)\.([^}]+)\}", value) if isinstance(value, str) else None
    if not match:
        return value
    node = program["resources"][match[1]]["properties"]
    for key, index in re.findall(r"(\w+)(?:\[(\d+)\])?", match[2]):
        node = node[key] if index == "" else node[key][int(index)]
    return node


def test_yaml_consumer_is_a_yaml_program_using_the_local_package(yaml_program):
    assert yaml_program["runtime"] == "yaml"
    package_dir = (YAML_EXAMPLE.parent / yaml_program["packages"]["prepull"]).resolve()
    assert package_dir == COMPONENTS.resolve()
    assert (package_dir / "PulumiPlugin.yaml").is_file()
    assert len(prepuller_resources(yaml_program)) == 1
    # Every interpolation refers to a declared resource and one of its schema outputs.
    text = YAML_EXAMPLE.read_text()
    assert "${prepuller.daemonSetNames}" in text and "${k8s}" in text


def test_yaml_consumer_properties_are_valid_inputs_per_the_golden_schema(yaml_program, golden):
    resource = golden["resources"][TOKEN]
    for name, res in prepuller_resources(yaml_program).items():
        assert object_problems(golden, res["properties"], resource["inputProperties"], resource["requiredInputs"], name) == []
    outputs = {v.removeprefix("${prepuller.").removesuffix("}") for v in yaml_program["outputs"].values()}
    assert outputs <= set(resource["properties"])


@pytest.mark.parametrize(
    "change, problem",
    [
        ({"nodeSelecter": {"a": "b"}}, "nodeSelecter: unknown property"),
        ({"lanes": "two"}, "lanes: expected integer"),
        ({"pullPolicy": "Sometimes"}, "pullPolicy: 'Sometimes' is not one of"),
        ({"customTimeouts": {"create": 20}}, "customTimeouts.create: expected string"),
    ],
)
def test_the_schema_check_catches_mistakes(yaml_program, golden, change, problem):
    # Guards the checker above: a typo or a wrong type in the example would be reported.
    resource = golden["resources"][TOKEN]
    props = {**next(iter(prepuller_resources(yaml_program).values()))["properties"], **change}
    problems = object_problems(golden, props, resource["inputProperties"], resource["requiredInputs"], "p")
    assert any(problem in p for p in problems), problems


def test_yaml_consumer_inputs_build_valid_manifests(yaml_program, provider):
    """The example's properties, mapped as construct() maps them, give the objects a Python caller would get."""
    import kubernetes_validate

    props = resolved(yaml_program, next(iter(prepuller_resources(yaml_program).values()))["properties"])
    assert props["images"][0] == "docker.io/library/python:3.13-slim"  # the Deployment's image, an output
    objects = prepull.manifests(provider.map_inputs(props, component_def(provider)), "prepuller")
    daemon_sets = [o for o in objects if o["kind"] == "DaemonSet"]
    assert [d["metadata"]["name"] for d in daemon_sets] == ["yaml-general-l1", "yaml-general-l2"]
    for obj in objects:
        kubernetes_validate.validate(obj, kubernetes_validate.latest_version(), strict=True)
