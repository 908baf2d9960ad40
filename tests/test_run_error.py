"""Bad input under the Pulumi CLI: its language host shows our one-line message, never a Python traceback.

The CLI runs a Python program through ``pulumi-language-python-exec``: the script wraps it in
``pulumi.runtime.run_in_stack`` and then prints just ``str(e)`` for a ``pulumi.RunError``, but
"Program failed with an unhandled exception" and a traceback for anything else. ``shown_by_the_cli``
runs a program the same way under the mocks; the last tests run the real script, where this machine
has one (the Go module cache or the cluster tier's build).
"""

import asyncio
import gc
import json
import os
import subprocess
import sys
import traceback
from concurrent import futures
from pathlib import Path

import grpc
import pulumi
import pulumi_kubernetes as k8s
import pytest
from mock_helpers import RecordingMocks, RecordingMonitor, Run, output
from pulumi.runtime import settings
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.proto import resource_pb2, resource_pb2_grpc

import prepull
from prepull import PrePullInputError
from prepull.program import main as stack_main

ROOT = Path(__file__).resolve().parent.parent
MAIN = ROOT / "__main__.py"
UNHANDLED = "Program failed with an unhandled exception:\n"
TYPE = "prepull:index:ImagePrePuller"


def shown_by_the_cli(program, config=None, preview=False) -> tuple[str, BaseException | None, Run]:
    """Run ``program`` as the exec script does; return (what it would print, the exception, the Run)."""
    mocks = RecordingMocks()
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project="prepull", stack="dev", preview=preview, monitor=monitor)
    pulumi.runtime.set_all_config(config or {})
    settings.set_root_resource(None)  # set_mocks made a Stack; run_in_stack makes the program's own, as under the CLI
    settings.SETTINGS.rpc_manager.clear()
    settings.SETTINGS.outputs.clear()
    try:
        asyncio.get_event_loop().run_until_complete(pulumi.runtime.run_in_stack(program))
    except pulumi.RunError as err:  # the script's two branches
        return str(err), err, Run(monitor, mocks)
    except Exception as err:  # noqa: BLE001 (what the script catches)
        return UNHANDLED + traceback.format_exc(), err, Run(monitor, mocks)
    return "", None, Run(monitor, mocks)


@pytest.fixture(autouse=True, scope="module")
def collect_failed_runs():
    """A failed run leaves futures whose exception nobody retrieved; collect them while pytest still captures their log lines."""
    yield
    gc.collect()


def stack_program() -> None:
    """What __main__.py runs. (__main__.py itself logs a PrePullRunError and exits 32: the real exec script test below.)"""
    from prepull.program import main

    main(stacks_dir=ROOT / "stacks")


def registered(run: Run) -> list[str]:
    return [r.type for r in run.requests if r.type != "pulumi:pulumi:Stack"]


def assert_one_line(shown: str, error: BaseException | None, expected: str) -> None:
    assert shown == expected, shown
    assert "\n" not in shown and "Traceback" not in shown
    assert isinstance(error, PrePullInputError) and isinstance(error, pulumi.RunError)


def pool_config(**pool) -> dict:
    pools = [{"name": "batch", "provider": "existing", "labels": {"prepull.dev/pool": "batch"}, **pool}]
    return {"prepull:images": json.dumps(["nginx:1.27"]), "prepull:nodePools": json.dumps(pools)}


# ---------------------------------------------------------------- the helper tells the branches apart


def test_any_other_exception_is_shown_with_a_traceback():
    # Guards the helper: what is not a RunError is shown the way the script shows it.
    def program():
        raise KeyError("x")

    shown, error, _ = shown_by_the_cli(program)
    assert isinstance(error, KeyError) and shown.startswith(UNHANDLED + "Traceback")


def test_a_good_stack_config_shows_nothing():
    shown, error, run = shown_by_the_cli(stack_program, pool_config())
    assert (shown, error) == ("", None)
    assert TYPE in registered(run)


# ---------------------------------------------------------------- (a) the stack program


def test_a_bad_taint_effect_in_the_stack_config_is_one_line():
    config = pool_config(taints=[{"key": "dedicated", "value": "batch", "effect": "NoRun"}])
    shown, error, run = shown_by_the_cli(stack_program, config)
    assert shown.startswith("nodePools.batch.taints[0].effect: must be one of ") and shown.endswith(" (got 'NoRun')")
    assert_one_line(shown, error, shown)
    assert registered(run) == []


def test_a_bad_pool_setting_for_the_component_is_one_line_in_camel_case():
    # Errors of the pool's pre-puller inputs are respelled as the stack file writes them.
    shown, error, run = shown_by_the_cli(stack_program, pool_config(maxUnavailable=0))
    assert shown.startswith("nodePools.batch.maxUnavailable: ") and shown.endswith(" (got 0)")
    assert_one_line(shown, error, shown)
    assert registered(run) == []


def test_an_unusable_lock_file_is_one_line(tmp_path):
    (tmp_path / "prepull.dev.lock.yaml").write_text("version: 2\nimages: {}\n")
    shown, error, run = shown_by_the_cli(lambda: stack_main(stacks_dir=tmp_path), pool_config())
    assert shown.startswith(f"{tmp_path / 'prepull.dev.lock.yaml'}: version: unsupported lock file version") and shown.endswith(" (got 2)")
    assert_one_line(shown, error, shown)
    assert registered(run) == []


def test_a_bad_cloud_pool_setting_is_one_line():
    gke = {"cluster": "prod", "location": "europe-west4", "machineType": "g2-standard-8", "minNodes": 5, "maxNodes": 4}
    config = pool_config(provider="gke", gke=gke)
    shown, error, run = shown_by_the_cli(stack_program, config)
    assert_one_line(shown, error, "nodePools.batch.gke.minNodes: must not exceed maxNodes (4) (got 5)")
    assert registered(run) == []


# ---------------------------------------------------------------- (b) the component in a user's program

# (id, the inputs, the same inputs without Outputs: the pure core's message for them is the one expected)
PLAIN = [
    ("empty-list", lambda: {"images": []}, {"images": []}),
    ("malformed-reference", lambda: {"images": ["ngi nx:1"]}, {"images": ["ngi nx:1"]}),
    ("duplicate", lambda: {"images": ["nginx:1", "docker.io/library/nginx:1"]}, {"images": ["nginx:1", "docker.io/library/nginx:1"]}),
    (
        "bad-taint-effect",
        lambda: {"images": ["nginx:1"], "tolerations": [{"key": "gpu", "effect": "NoRun"}]},
        {"images": ["nginx:1"], "tolerations": [{"key": "gpu", "effect": "NoRun"}]},
    ),
    ("plain-error-beside-an-output", lambda: {"images": [output("nginx:1")], "lanes": 0}, {"images": ["nginx:1"], "lanes": 0}),
]


@pytest.mark.parametrize("make_args, plain", [c[1:] for c in PLAIN], ids=[c[0] for c in PLAIN])
def test_plain_bad_input_to_the_component_is_one_line(make_args, plain):
    with pytest.raises(PrePullInputError) as pure:
        prepull.manifests(plain, "pp")
    shown, error, run = shown_by_the_cli(lambda: prepull.ImagePrePuller("pp", make_args()))
    assert_one_line(shown, error, str(pure.value))  # field as the caller spelled it (snake_case), reason, value
    assert error.__cause__ is None and error.__suppress_context__  # raised `from None`: nothing chained
    assert registered(run) == []


# ---------------------------------------------------------------- (c) bad values that show when an Output resolves

RESOLVED = [
    ("image", lambda: {"images": [output("NGINX::1")]}, "images[0]", "NGINX::1"),
    ("namespace", lambda: {"images": ["redis:7"], "namespace": output("kube-system")}, "namespace", "kube-system"),
    (
        "taint-effect",
        lambda: {"images": ["redis:7"], "tolerations": [{"key": "a", "effect": output("NoRun")}]},
        "tolerations[0].effect",
        "NoRun",
    ),
]


@pytest.mark.parametrize("make_args, field, value", [c[1:] for c in RESOLVED], ids=[c[0] for c in RESOLVED])
def test_a_bad_output_value_is_one_line_when_it_resolves(make_args, field, value):
    def program():
        pulumi.export("images", prepull.ImagePrePuller("pp", make_args()).images)

    shown, error, run = shown_by_the_cli(program)
    assert isinstance(error, PrePullInputError) and (error.field, error.value) == (field, value)
    assert_one_line(shown, error, str(error))
    assert shown.startswith(f"{field}: ")
    # None of its children. The component itself may or may not reach the monitor: the failed Output ends the run
    # as soon as a registration awaits it, and which registration gets there first is not fixed.
    assert set(registered(run)) <= {TYPE}


def test_a_bad_image_found_by_images_from_is_one_line():
    def program():
        template = {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "web", "image": "Bad::Ref"}]}}
        api = k8s.apps.v1.Deployment("api", spec={"selector": {}, "template": template})
        prepull.ImagePrePuller("pp", {"images": prepull.images_from(api)})

    shown, error, run = shown_by_the_cli(program)
    assert shown.startswith("images_from(Deployment 'api': containers['web']): ") and shown.endswith(" (got 'Bad::Ref')")
    assert_one_line(shown, error, shown)
    types = registered(run)  # the workload, and none of the component's children (the component itself: see above)
    assert "kubernetes:apps/v1:Deployment" in types and set(types) <= {"kubernetes:apps/v1:Deployment", TYPE}


def test_an_unknown_output_value_at_preview_is_not_checked_yet():
    # Documents the limit: during preview an unknown value has no value to check; `up` reports it as above.
    def program():
        prepull.ImagePrePuller("pp", {"images": [output("NGINX::1", known=False)]})

    shown, error, run = shown_by_the_cli(program, preview=True)
    assert (shown, error) == ("", None)
    assert "kubernetes:apps/v1:DaemonSet" in registered(run)


# ---------------------------------------------------------------- the real exec script, where there is one


def exec_scripts() -> list[Path]:
    """Copies of pulumi-language-python-exec on this machine: the Go module cache's, the cluster tier's build."""
    mod = Path(os.environ.get("GOMODCACHE") or Path(os.environ.get("GOPATH") or Path.home() / "go") / "pkg" / "mod")
    found = sorted(mod.glob("github.com/pulumi/pulumi/sdk/v3@*/python/cmd/pulumi-language-python-exec"))
    found += sorted((Path.home() / ".cache" / "prepull-cluster").glob("pulumi-python-*/bin/pulumi-language-python-exec"))
    distinct = {path.read_bytes(): path for path in reversed(found)}  # one per content (the build copies the cache's)
    return sorted(distinct.values())


class MonitorServer(resource_pb2_grpc.ResourceMonitorServicer):
    """The mock monitor over gRPC, for the exec script to connect to; records the types registered."""

    def __init__(self) -> None:
        self.mock = MockMonitor(RecordingMocks())
        self.types: list[str] = []

    def GetDeploymentInfo(self, request, context):  # noqa: N802 (gRPC method names)
        return self.mock.GetDeploymentInfo(request)

    def SupportsFeature(self, request, context):  # noqa: N802
        return resource_pb2.SupportsFeatureResponse(hasSupport=self.mock.SupportsFeature(request).hasSupport)

    def RegisterResource(self, request, context):  # noqa: N802
        self.types.append(request.type)
        return self.mock.RegisterResource(request)

    def RegisterResourceOutputs(self, request, context):  # noqa: N802
        return self.mock.RegisterResourceOutputs(request)

    def SignalAndWaitForShutdown(self, request, context):  # noqa: N802
        return self.mock.SignalAndWaitForShutdown(request)


@pytest.fixture
def run_exec_script():
    """Run a program file through a real exec script against the mock monitor; return (exit code, stderr, types registered)."""
    servers = []

    def run(script: Path, program: Path, config=None):
        monitor = MonitorServer()
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        resource_pb2_grpc.add_ResourceMonitorServicer_to_server(monitor, server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        env = {**os.environ, "PULUMI_CONFIG": json.dumps(config or {}), "PYTHONPATH": str(ROOT / "components")}
        args = ["--project", "prepull", "--stack", "dev", "--parallel", "4", "--dry_run", "false", "--pwd", str(ROOT)]
        cmd = [sys.executable, str(script), *args, "--monitor", f"127.0.0.1:{port}", str(program)]
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
        return out.returncode, out.stderr, [t for t in monitor.types if t != "pulumi:pulumi:Stack"]

    yield run
    for server in servers:
        server.stop(0)


SCRIPTS = exec_scripts()


def script_id(script: Path) -> str:
    """``v3@v3.68.0`` (module cache) or ``pulumi-python-v3.68.0-r1`` (cluster build)."""
    return script.parts[-4] if script.parent.name == "cmd" else script.parts[-3]


needs_script = pytest.mark.skipif(not SCRIPTS, reason="no pulumi-language-python-exec here (Go module cache, ~/.cache/prepull-cluster)")


@needs_script
@pytest.mark.parametrize("script", SCRIPTS or [None], ids=[script_id(s) for s in SCRIPTS] or ["none"])
def test_the_real_exec_script_prints_one_line(run_exec_script, tmp_path, script):
    program = tmp_path / "__main__.py"
    program.write_text("from prepull import ImagePrePuller\nImagePrePuller('x', {'images': []})\n")
    assert run_exec_script(script, program) == (1, "error: images: must be a non-empty list of image references (got [])\n", [])

    # The stack program logs the line itself and exits 32, the host's "already shown" code: no extra line from the host.
    code, stderr, types = run_exec_script(script, MAIN, pool_config(taints=[{"key": "k", "effect": "NoRun"}]))
    assert (code, types) == (32, []) and stderr.startswith("error: nodePools.batch.taints[0].effect: must be one of "), stderr
    assert stderr.endswith(" (got 'NoRun')\n") and stderr.count("\n") == 1

    program.write_text(
        "import pulumi\nfrom prepull import ImagePrePuller\nImagePrePuller('x', {'images': [pulumi.Output.from_input('NGINX::1')]})\n"
    )
    code, stderr, types = run_exec_script(script, program)
    assert code == 1 and stderr.startswith("error: images[0]: not a valid image reference") and stderr.count("\n") == 1, stderr
    # No child; the component itself may not reach the monitor either: the program ends on the first failed registration.
    assert set(types) <= {TYPE}

    program.write_text("from prepull import ImagePrePuller\nImagePrePuller('x', {'images': ['nginx:1']})\n")  # guards the harness
    code, stderr, types = run_exec_script(script, program)
    assert (code, stderr) == (0, "") and "kubernetes:apps/v1:DaemonSet" in types
